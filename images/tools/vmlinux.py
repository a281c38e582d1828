#!/usr/bin/env python3
"""Extract the uncompressed kernel (vmlinux, an ELF file) from a bzImage such as Debian's vmlinuz.

QEMU boots the ELF directly through its PVH entry point, about twice as fast under TCG as the
compressed bzImage, so the boot tests and the benchmark use it. The payload is located through
the boot protocol header (payload_offset / payload_length), not by scanning for magic bytes.

Usage: vmlinux.py VMLINUZ OUT
"""
import bz2
import gzip
import io
import lzma
import struct
import sys


def payload(image: bytes) -> bytes:
    if image[0x202:0x206] != b"HdrS":
        sys.exit("vmlinux.py: not a bzImage (no HdrS header)")
    setup_sects = image[0x1F1] or 4
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    return image[start : start + length]


def decompress(data: bytes) -> bytes:
    if data.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
    if data.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=io.BytesIO(data)).read()
    if data.startswith(b"BZh"):
        return bz2.BZ2Decompressor().decompress(data)
    if data.startswith(b"\x5d\x00\x00"):
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)
    sys.exit("vmlinux.py: unsupported kernel compression (magic %s)" % data[:6].hex())


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    with open(sys.argv[1], "rb") as f:
        elf = decompress(payload(f.read()))
    if not elf.startswith(b"\x7fELF"):
        sys.exit("vmlinux.py: the decompressed payload is not an ELF file")
    with open(sys.argv[2], "wb") as f:
        f.write(elf)


if __name__ == "__main__":
    main()
