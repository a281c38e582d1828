"""Boot the appliance image (or the benchmark baseline) under QEMU with software emulation (TCG:
these machines have no usable KVM) and drive its serial console.

The serial line is QEMU's stdio. A reader thread collects everything the guest prints into a
buffer (and a log file); `expect` waits, with a timeout, for a string to appear after what was
already matched. Tests match sentinel lines the appliance prints, never shell prompts (busybox
ash sends terminal queries after its prompt). A QMP socket lets a test plug in a USB stick while
the guest runs, as an operator would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


class Timeout(Exception):
    """The guest did not print what was expected in time."""


class Machine:
    """One QEMU guest. Use as a context manager: the process is killed on exit if still alive."""

    def __init__(
        self,
        log: Path,
        *,
        disk: Path | None = None,
        kernel: Path | None = None,
        initrd: Path | None = None,
        append: str | None = None,
        nic: bool = True,
        stick: Path | None = None,
        memory_mb: int = 1024,
    ) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="rootcellar-qemu-"))
        self.qmp_path = self.scratch / "qmp.sock"
        args = [
            "qemu-system-x86_64",
            "-accel", "tcg",
            "-M", "q35",
            "-smp", "2",
            "-m", str(memory_mb),
            "-display", "none",
            "-vga", "std",
            "-monitor", "none",
            "-serial", "stdio",
            "-no-reboot",
            # The guest's clock starts from the host's (QEMU's default, made explicit): the image
            # test types the host's clock as the ceremony time, which the console compares with its own.
            "-rtc", "base=utc,clock=host",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-device", "qemu-xhci,id=xhci",
        ]
        if disk is not None:
            vars_copy = self.scratch / "OVMF_VARS.fd"
            shutil.copyfile(OVMF_VARS, vars_copy)
            args += [
                "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
                "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
                # The boot medium is read-only to the guest, and pinned first: a stick that is
                # plugged in can never take over the boot.
                "-drive", f"if=none,id=boot,format=raw,readonly=on,file={disk}",
                "-device", "virtio-blk-pci,drive=boot,bootindex=0",
            ]
        if kernel is not None:
            args += ["-kernel", str(kernel), "-initrd", str(initrd), "-append", append or ""]
        if nic:
            # A network card the guest could use if it had a driver: it must stay driverless.
            args += [
                "-netdev", "user,id=net0,restrict=on",
                "-device", "virtio-net-pci,netdev=net0",
            ]
        if stick is not None:
            args += [
                "-drive", f"if=none,id=stick,format=raw,file={stick}",
                "-device", "usb-storage,bus=xhci.0,drive=stick",
            ]
        self.log_path = log
        self.log = open(log, "wb")
        self.buffer = b""
        self.cursor = 0
        self.lock = threading.Condition()
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while True:
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                break
            self.log.write(chunk)
            self.log.flush()
            with self.lock:
                self.buffer += chunk
                self.lock.notify_all()
        with self.lock:
            self.lock.notify_all()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def expect(self, text: str, timeout: float) -> str:
        """Wait for TEXT after the last match; return what the guest printed up to its end."""
        return self.expect_any([text], timeout)[1]

    def expect_any(self, texts: list[str], timeout: float) -> tuple[str, str]:
        """Wait for the first of TEXTS to appear after the last match; return it and what the
        guest printed up to its end."""
        needles = [text.encode() for text in texts]
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                hits = [(self.buffer.find(n, self.cursor), n) for n in needles]
                hits = [(at, n) for at, n in hits if at >= 0]
                if hits:
                    at, needle = min(hits)
                    end = at + len(needle)
                    seen = self.buffer[self.cursor : end]
                    self.cursor = end
                    return needle.decode(), seen.decode(errors="replace")
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self.reader.is_alive()):
                    tail = self.buffer[-2000:].decode(errors="replace")
                    raise Timeout(
                        f"none of {texts!r} after {timeout:.0f}s (log: {self.log_path}); "
                        f"last output:\n{tail}"
                    )
                self.lock.wait(min(left, 1.0))

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode())
        self.process.stdin.flush()

    def qmp(self, *commands: dict) -> list[dict]:
        """Run QMP commands in order (after the capabilities handshake); return their replies."""
        replies = []
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.qmp_path))
            stream = sock.makefile("rwb")

            def reply() -> dict:
                while True:
                    message = json.loads(stream.readline())
                    if "event" not in message:
                        return message

            reply()  # greeting
            for command in ({"execute": "qmp_capabilities"},) + commands:
                stream.write(json.dumps(command).encode() + b"\n")
                stream.flush()
                answer = reply()
                if "error" in answer:
                    raise RuntimeError(f"QMP {command['execute']}: {answer['error']}")
                replies.append(answer)
        return replies[1:]

    def plug_stick(self, image: Path, name: str = "hotstick") -> None:
        """Plug a USB stick (a raw disk image) into the running guest; NAME identifies it for
        unplug_stick."""
        self.qmp(
            {
                "execute": "blockdev-add",
                "arguments": {
                    "driver": "raw",
                    "node-name": name,
                    "file": {"driver": "file", "filename": str(image)},
                },
            },
            {
                "execute": "device_add",
                "arguments": {"driver": "usb-storage", "id": f"{name}dev", "bus": "xhci.0",
                              "drive": name},
            },
        )

    def unplug_stick(self, name: str = "hotstick", timeout: float = 120) -> None:
        """Pull the stick NAME out (the guest must have unmounted it), and let go of its file."""
        self.qmp({"execute": "device_del", "arguments": {"id": f"{name}dev"}})
        deadline = time.monotonic() + timeout
        while True:
            # The block node is free once the device is gone.
            try:
                self.qmp({"execute": "blockdev-del", "arguments": {"node-name": name}})
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def prompt(self, timeout: float, events: tuple[str, ...] = (), quiet: float = 0.7) -> str:
        """Wait until the guest waits for input: what it printed since the last match ends with
        ": " and nothing more arrives for QUIET seconds; or until one of EVENTS appears. Return
        what was printed (and move past it)."""
        deadline = time.monotonic() + timeout
        needles = [e.encode() for e in events]
        with self.lock:
            while True:
                pending = self.buffer[self.cursor :]
                if any(n in pending for n in needles):
                    self.cursor = len(self.buffer)
                    return pending.decode(errors="replace")
                if pending.endswith(b": "):
                    size = len(self.buffer)
                    self.lock.wait(quiet)
                    if len(self.buffer) == size:
                        self.cursor = size
                        return pending.decode(errors="replace")
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self.reader.is_alive()):
                    tail = self.buffer[-2000:].decode(errors="replace")
                    raise Timeout(f"no prompt after {timeout:.0f}s (log: {self.log_path}); "
                                  f"last output:\n{tail}")
                self.lock.wait(min(left, 1.0))

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired as error:
            raise Timeout(f"QEMU still running after {timeout:.0f}s (log: {self.log_path})") from error

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=5)
        self.log.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
