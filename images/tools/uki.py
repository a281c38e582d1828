#!/usr/bin/env python3
"""Assemble a unified kernel image (UKI): systemd-boot's EFI stub with the kernel, its command
line, the initramfs and an os-release added as PE sections, so that UEFI firmware boots one
file, \\EFI\\BOOT\\BOOTX64.EFI, and the command line cannot be edited at boot.

binutils' objcopy adds the sections. It also writes the wall clock into the PE header's
TimeDateStamp, which would make every build differ: that field and the (unchecked) PE checksum
are set to zero afterwards.

Usage: uki.py STUB OSREL CMDLINE LINUX INITRD OUT
"""
import struct
import subprocess
import sys

PAGE = 0x1000


def align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def pe_header(image: bytes) -> int:
    pe = struct.unpack_from("<I", image, 0x3C)[0]
    if image[pe : pe + 4] != b"PE\0\0":
        sys.exit("uki.py: the stub is not a PE file")
    return pe


def image_end(image: bytes) -> int:
    """The first virtual address after the stub's own sections."""
    pe = pe_header(image)
    (sections,) = struct.unpack_from("<H", image, pe + 6)
    (optional_size,) = struct.unpack_from("<H", image, pe + 20)
    table = pe + 24 + optional_size
    end = 0
    for i in range(sections):
        virtual_size, virtual_address = struct.unpack_from("<II", image, table + 40 * i + 8)
        end = max(end, virtual_address + virtual_size)
    image_base = struct.unpack_from("<Q", image, pe + 24 + 24)[0]
    return image_base + end


def main() -> None:
    if len(sys.argv) != 7:
        sys.exit(__doc__.strip().splitlines()[-1])
    stub, osrel, cmdline, linux, initrd, out = sys.argv[1:]
    with open(stub, "rb") as f:
        address = align(image_end(f.read()), PAGE)
    args = ["objcopy"]
    for name, path, alignment in (
        (".osrel", osrel, PAGE),
        (".cmdline", cmdline, PAGE),
        (".linux", linux, 0x200000),
        (".initrd", initrd, PAGE),
    ):
        address = align(address, alignment)
        args += [
            "--add-section", f"{name}={path}",
            "--change-section-vma", f"{name}={address:#x}",
        ]
        with open(path, "rb") as f:
            address += len(f.read())
    subprocess.run(args + [stub, out], check=True)

    with open(out, "r+b") as f:
        image = bytearray(f.read())
        pe = pe_header(image)
        struct.pack_into("<I", image, pe + 8, 0)  # COFF TimeDateStamp
        struct.pack_into("<I", image, pe + 24 + 64, 0)  # optional header CheckSum
        f.seek(0)
        f.write(image)


if __name__ == "__main__":
    main()
