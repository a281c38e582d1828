#!/usr/bin/env python3
"""`make image-test`: boot the appliance image under QEMU (TCG) and check what issue 7 promises.

1. UEFI boot of the disk image (OVMF), with a state disk (ext4, label RCSTATE) attached: the
   console (`rootcellar ceremony console`) comes up on the serial line with the image's manifest
   id and no shell item. From its menu, by scripted keystrokes on the serial line: the root-init
   rehearsal (the state goes to the state disk), whose response is written to a USB stick
   labelled RCSNEAKER plugged in when the console asks for it; the stick is pulled out, and on
   the host the test reads the response (verified with `rootcellar bundle verify`), takes root.pem
   out of it and writes a request bundle (root.pem and two CSRs, signed by a requester key, with
   that key's public half beside it) onto the stick; plugged in again, the issue-intermediate
   rehearsal reads the request, the requester key is accepted by its fingerprint, and the
   response goes back to the stick; then power-off from the menu.
   On the host: both response bundles verify against the bundle key, the intermediates verify
   under the root with `openssl verify -x509_strict` and certify the CSRs' keys, the TUF metadata
   parses (and verifies with python-tuf when it is installed), and the journal on the state disk
   verifies.
2. Direct boot of the same kernel and initramfs with rootcellar.debug=1: the shell item appears,
   and from it the test checks that only lo exists while a network card is attached, that / is
   mounted read-only and refuses writes, and that the stick attached at boot is not mounted.
3. A second build into another directory gives bit-identical outputs.

Usage: image_test.py [--skip-rebuild]   (needs `make image` first; logs under images/build/test)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from qemu import Machine

HERE = Path(__file__).resolve().parent
IMAGES = HERE.parent
OUT = Path(os.environ.get("OUT", IMAGES / "out"))
LOGS = IMAGES / "build" / "test"
LABEL = "RCSNEAKER"
STATE_LABEL = "RCSTATE"
READY = "console ready on /dev/ttyS0"
INSERT = f"sneakernet: insert the disk labelled {LABEL}"
# The ceremony time is the host's clock when the console asks for it (clock_now), never a fixed
# date: what is signed at it (TUF timestamp metadata lasts 90 days) is checked on the host against
# the real clock, and the console is to refuse a time before its binary's build and one far from
# its own clock. The guest's RTC follows the host's clock (qemu.py: -rtc base=utc,clock=host).
CLOCK_TOLERANCE = 600  # seconds the appliance's clock may differ from the host's
# Timeouts: generous for a loaded 2-core machine under TCG (a warm, quiet run boots in 3-10 s and
# answers each prompt within a few seconds), finite so that a hang fails the test.
BOOT_TIMEOUT = 300
STEP_TIMEOUT = 300
SHORT_TIMEOUT = 120
MTOOLS = dict(os.environ, MTOOLS_SKIP_CHECK="1")

results: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    results.append((name, ok, detail))
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


def clock_now() -> str:
    """The host's UTC clock, truncated to whole seconds, in RFC 3339 with a Z."""
    return datetime.now(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_info(key: str) -> list[str]:
    """The values of KEY in the last build's build-info.txt ("KEY value" lines)."""
    return [line.split(" ", 1)[1] for line in (OUT / "build-info.txt").read_text().splitlines()
            if line.startswith(key + " ")]


def rootcellar() -> str:
    """The rootcellar binary the image was built with (build-info.txt), for the host side."""
    found = build_info("rootcellar-bin")
    if not found:
        raise RuntimeError("build-info.txt names no rootcellar binary")
    return found[0]


def phase(name: str, body, *args) -> dict[str, float]:
    """Run one part of the test; an exception (a timeout, a tool that failed) is a failed check
    rather than the end of the run, so that the summary line is always printed."""
    try:
        return body(*args)
    except Exception as error:  # noqa: BLE001 - any failure of a phase is reported the same way
        detail = f"{type(error).__name__}: {error}"
        if isinstance(error, subprocess.CalledProcessError) and error.stderr:
            detail += "\n" + error.stderr.strip()  # the tool's own message (run captures it)
        check(f"{name} ran to the end", False, detail)
        return {}


def fat_disk(path: Path, label: str, mib: int) -> None:
    """An empty FAT disk image (no partition table) made with mtools."""
    with open(path, "wb") as f:
        f.truncate(mib << 20)
    run("mformat", "-i", str(path), "-v", label, "-T", str(mib * 2048), "-h", "64", "-s", "32", "::",
        env=MTOOLS)


def ext4_disk(path: Path, label: str, mib: int) -> None:
    """An empty ext4 disk image (no partition table)."""
    with open(path, "wb") as f:
        f.truncate(mib << 20)
    run("mkfs.ext4", "-q", "-F", "-L", label, str(path))


def copy_from(disk: Path, source: str, dest: Path) -> bool:
    """mcopy -s ::SOURCE into DEST (a new directory); False if the disk has no SOURCE."""
    dest.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mcopy", "-s", "-n", "-i", str(disk), f"::{source}", str(dest)],
                          env=MTOOLS, capture_output=True, text=True)
    return done.returncode == 0


def banner_checks(console: str, manifest_id: str, debug: bool) -> None:
    check("console shows the image manifest id", f"image manifest sha256:{manifest_id}" in console,
          f"expected sha256:{manifest_id}")
    shown = re.search(r"^clock (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?Z ", console, re.M)
    if shown:
        clock = datetime.strptime(shown.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        drift = abs((clock - datetime.now(timezone.utc)).total_seconds())
        check(f"the appliance clock follows the host clock (within {CLOCK_TOLERANCE} s)",
              drift <= CLOCK_TOLERANCE, f"console clock {shown.group(1)}Z, host {clock_now()}")
    else:
        check("the console shows its clock", False, console[-1500:])
    check("console lists the ceremony scripts", "(root-init)" in console and "(issue-intermediate)" in console)
    has_shell = "shell (debug boot)" in console
    if debug:
        check("debug boot offers the shell", has_shell)
    else:
        check("normal boot offers no shell", not has_shell)


def choose(vm: Machine, menu: str, ceremony: str) -> None:
    """Pick CEREMONY on the menu (the prompt is showing) as a rehearsal."""
    found = re.search(rf"^\s*(\d+)\s+.*\({re.escape(ceremony)}\)", menu, re.M)
    if not found:
        raise RuntimeError(f"{ceremony} is not on the menu:\n{menu}")
    vm.send(found.group(1) + "\n")
    vm.prompt(SHORT_TIMEOUT)
    vm.send("r\n")


def converse(vm: Machine, stick: Path | None = None) -> str:
    """Answer the console as the operator would until the menu is back; plug STICK in when the
    console asks for the sneakernet disk. The ceremony time is the host's clock when the console
    first asks for it, the same answer for every time prompt of this ceremony. Returns everything
    printed."""
    session = ""
    confirmed: str | None = None
    while True:
        pending = vm.prompt(STEP_TIMEOUT, events=(INSERT,))
        session += pending
        if INSERT in pending:
            # rc-media waits for the disk (a stick plugged in already may still be settling).
            if stick is not None:
                vm.plug_stick(stick)
                stick = None
            continue
        last = pending.rstrip("\r\n").splitlines()[-1] if pending.strip() else ""
        if last.endswith("choice: "):
            return session
        code = re.search(r"Type ([0-9a-f]{8}) to perform step", last)
        if "Type ram to keep the state" in last:
            answer = "ram"
        elif "type the correct UTC time" in last or last.startswith("Confirm "):
            if confirmed is None:
                confirmed = clock_now()
            answer = confirmed
        elif last.startswith("Name of operator 1"):
            answer = "Olga Operator"
        elif last.startswith("Name of witness 1"):
            answer = "Wim Witness"
        elif last.startswith("Name of witness 2"):
            answer = "Wanda Witness"
        elif last.startswith("Name of custodian-") and "(required)" in last:
            # Each custodian role the script names has its own person.
            answer = "Custodian " + last[len("Name of custodian-")]
        elif last.startswith("Name of "):
            answer = ""
        elif code:
            answer = code.group(1)
        elif re.search(r"(Enter to write the share down instead|Press Enter to show the share"
                       r"|press Enter to clear the screen): ?$", last):
            # No age recipient: each custodian writes their share down.
            answer = ""
        elif "type your share back" in last:
            # Typed back from the paper: the numbered lines of groups just shown.
            shown = session[session.rfind("Press Enter to show the share"):]
            answer = " ".join(re.findall(r"^\s*\d+: ((?:[0-9a-f]{3,5} ?)+?)\s*$", shown, re.M))
        elif last.startswith("Type its first 8 characters"):
            answer = re.search(r"SHA256:([0-9a-f]{8})", session.split("No requester key")[-1]).group(1)
        else:
            raise RuntimeError(f"unexpected prompt {last!r}")
        vm.send(answer + "\n")


def make_request(stick: Path, scratch: Path, tool: str) -> Path | None:
    """The online side: root.pem out of root-init's response on the stick, two CSRs, and a
    request bundle signed by a requester key, written to the stick with that key's public half.
    Returns the directory holding root-init's delivery (copied from the stick)."""
    got = scratch / "after-root-init"
    if not copy_from(stick, "/rootcellar", got):
        check("root-init delivered its response to the stick", False)
        return None
    delivered = sorted((got / "rootcellar").glob("root-init-*"))
    check("root-init delivered its response to the stick", len(delivered) == 1, str(delivered))
    if len(delivered) != 1:
        return None
    root_init = delivered[0]
    pin = root_init / "bundle-key.pub.pem"
    verified = subprocess.run([tool, "bundle", "verify", str(root_init / "response.rcb"), "--pin", str(pin),
                               "--kind", "response"], capture_output=True, text=True)
    check("root-init's response.rcb verifies against the bundle key", verified.returncode == 0,
          verified.stdout + verified.stderr)
    run(tool, "bundle", "extract", str(root_init / "response.rcb"), "--pin", str(pin),
        "--out", str(scratch / "root-init"))
    online = scratch / "online"
    online.mkdir()
    for name, curve in (("fulcio", "secp384r1"), ("tsa", "prime256v1"), ("requester", "prime256v1")):
        run("openssl", "ecparam", "-name", curve, "-genkey", "-noout", "-out", str(online / f"{name}.key"))
    for name in ("fulcio", "tsa"):
        run("openssl", "req", "-new", "-key", str(online / f"{name}.key"),
            "-subj", f"/O=rootcellar image test/CN={name} intermediate", "-out", str(online / f"{name}.csr"))
    run("openssl", "ec", "-in", str(online / "requester.key"), "-pubout", "-out", str(online / "requester.pub.pem"))
    run(tool, "bundle", "new", "--sign-key", str(online / "requester.key"), "--out", str(online / "request.rcb"),
        "--ceremony", "issue-intermediate", "--time", clock_now(),
        "--certificate", f"root.pem={scratch / 'root-init' / 'root.pem'}",
        "--csr", f"fulcio.csr={online / 'fulcio.csr'}", f"tsa.csr={online / 'tsa.csr'}")
    for name in ("request.rcb", "requester.pub.pem"):
        run("mcopy", "-i", str(stick), str(online / name), f"::/{name}", env=MTOOLS)
    return root_init


def uefi_ceremonies(scratch: Path, stick: Path, state: Path, manifest_id: str) -> dict[str, float]:
    timings: dict[str, float] = {}
    tool = rootcellar()
    with Machine(LOGS / "uefi-boot.log", disk=OUT / "rootcellar-appliance.img", stick=state) as vm:
        console = vm.expect(READY, BOOT_TIMEOUT)
        timings["UEFI boot to the console"] = vm.elapsed()
        banner_checks(console, manifest_id, debug=False)
        menu = console + vm.prompt(SHORT_TIMEOUT)
        vm.send("s\n")
        refused = vm.prompt(SHORT_TIMEOUT)
        check("the shell item is refused on a normal boot", '"s" is not on the menu' in refused, refused[-300:])

        started = time.monotonic()
        choose(vm, menu, "root-init")
        session = converse(vm, stick)
        timings["root-init rehearsal"] = time.monotonic() - started
        check("root-init: the state went to the state disk", "rootcellar-state" in session
              and "IN RAM" not in session)
        check("root-init rehearsal completed", "ceremony complete" in session, session[-1500:])
        check("root-init: response delivered to the stick, which was then unmounted",
              "delivered to the sneakernet disk" in session
              and session.rfind("sneakernet: unmounted") > session.rfind("sneakernet: mounted") >= 0)
        vm.unplug_stick()
        root_init = make_request(stick, scratch, tool)
        vm.plug_stick(stick, "stick2")

        started = time.monotonic()
        choose(vm, session, "issue-intermediate")
        session = converse(vm)
        timings["issue-intermediate rehearsal"] = time.monotonic() - started
        check("issue-intermediate: the request verified, its signer accepted by fingerprint",
              "request /media/sneaker/request.rcb verified" in session
              and "pinned requester key" in session, session[-2000:])
        check("issue-intermediate rehearsal completed", "ceremony complete" in session, session[-1500:])
        check("issue-intermediate: response delivered to the stick", "delivered to the sneakernet disk" in session)

        vm.send("p\n")
        vm.prompt(SHORT_TIMEOUT)
        vm.send("yes\n")
        vm.expect("powering off", SHORT_TIMEOUT)
        status = vm.wait_exit(SHORT_TIMEOUT)
        check("power-off from the menu ends the machine", status == 0, f"QEMU exit status {status}")
    if root_init is not None:
        host_checks(stick, state, scratch, tool, root_init)
    return timings


def host_checks(stick: Path, state: Path, scratch: Path, tool: str, root_init: Path) -> None:
    got = scratch / "after-issue"
    copy_from(stick, "/rootcellar", got)
    issued = sorted((got / "rootcellar").glob("issue-intermediate-*"))
    check("issue-intermediate delivered one response to the stick", len(issued) == 1, str(issued))
    if len(issued) != 1:
        return
    pin = root_init / "bundle-key.pub.pem"
    check("the bundle key sent with issue-intermediate is root-init's",
          (issued[0] / "bundle-key.pub.pem").read_bytes() == pin.read_bytes())
    verified = subprocess.run([tool, "bundle", "verify", str(issued[0] / "response.rcb"), "--pin", str(pin),
                               "--kind", "response"], capture_output=True, text=True)
    check("issue-intermediate's response.rcb verifies against the bundle key", verified.returncode == 0,
          verified.stdout + verified.stderr)
    outputs = scratch / "issued"
    run(tool, "bundle", "extract", str(issued[0] / "response.rcb"), "--pin", str(pin), "--out", str(outputs))
    root = scratch / "root-init" / "root.pem"
    for name in ("fulcio", "tsa"):
        cert = outputs / f"intermediate-{name}.pem"
        verified = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(root), str(cert)],
                                  capture_output=True, text=True)
        check(f"openssl verify -x509_strict: {name} intermediate under the root",
              verified.returncode == 0, verified.stdout + verified.stderr)
        cert_key = run("openssl", "x509", "-in", str(cert), "-noout", "-pubkey").stdout
        csr_key = run("openssl", "req", "-in", str(scratch / "online" / f"{name}.csr"), "-noout", "-pubkey").stdout
        check(f"{name} intermediate certifies the CSR's key from the request", cert_key == csr_key)
    self_signed = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(root), str(root)],
                                 capture_output=True, text=True)
    check("openssl verify -x509_strict: root", self_signed.returncode == 0, self_signed.stderr)
    tuf_checks(scratch / "root-init")

    kept = scratch / "state-disk"
    kept.mkdir()
    subprocess.run(["debugfs", "-R", f"rdump /rootcellar-state {kept}", str(state)], capture_output=True)
    if (kept / "rootcellar-state").is_dir():
        journal = subprocess.run([tool, "journal", "verify", "--state", str(kept / "rootcellar-state")],
                                 capture_output=True, text=True)
        check("the journal on the state disk verifies", journal.returncode == 0, journal.stdout + journal.stderr)
        # Pinned by a rehearsal: kept apart from what a real ceremony pins.
        pinned = list((kept / "rootcellar-state" / "rehearsal" / "trust" / "requesters").glob("*.pem"))
        check("the requester key is pinned on the state disk", len(pinned) == 1, str(pinned))
        real = kept / "rootcellar-state" / "trust" / "requesters"
        check("a rehearsal pins nothing for the real ceremonies", not real.exists(), str(real))
    else:
        check("the state disk holds rootcellar-state", False)


def tuf_checks(outputs: Path) -> None:
    """The TUF metadata root-init's response carries (flattened: N.ROLE.json, timestamp.json)."""
    try:
        documents = {p.name: json.loads(p.read_text()) for p in sorted(outputs.glob("*.json"))
                     if p.name != "journal-segment.json"}
    except (OSError, ValueError) as error:
        check("TUF metadata parses as JSON", False, str(error))
        return
    roles = {doc.get("signed", {}).get("_type") for doc in documents.values()}
    check("TUF metadata parses: root, targets, snapshot, timestamp",
          {"root", "targets", "snapshot", "timestamp"} <= roles, f"{sorted(documents)} {sorted(map(str, roles))}")
    root = documents.get("1.root.json", {})
    threshold = root.get("signed", {}).get("roles", {}).get("root", {}).get("threshold", 0)
    check("TUF root is signed by at least its threshold of keys",
          threshold >= 1 and len(root.get("signatures", [])) >= threshold)
    try:
        from tuf.api.metadata import Metadata  # python-tuf, when `make test` has installed it
    except ImportError:
        print("     (python-tuf not installed: TUF signatures checked by count only)")
        return
    try:
        root_md = Metadata.from_file(str(outputs / "1.root.json"))
        root_md.signed.verify_delegate("root", root_md.signed_bytes, root_md.signatures)
        for role in ("targets", "snapshot", "timestamp"):
            name = next(n for n, d in documents.items() if d["signed"]["_type"] == role)
            delegated = Metadata.from_file(str(outputs / name))
            root_md.signed.verify_delegate(role, delegated.signed_bytes, delegated.signatures)
        check("python-tuf verifies every role's signatures against root", True)
    except Exception as error:  # python-tuf raises several kinds; any of them is a failure
        check("python-tuf verifies every role's signatures against root", False, repr(error))


def debug_boot(stick: Path, manifest_id: str) -> dict[str, float]:
    timings: dict[str, float] = {}
    append = (OUT / "cmdline.txt").read_text().strip() + " rootcellar.debug=1"
    with Machine(LOGS / "direct-boot.log", kernel=OUT / "vmlinux", initrd=OUT / "initrd.img",
                 append=append, stick=stick) as vm:
        console = vm.expect(READY, BOOT_TIMEOUT)
        timings["direct boot to the console"] = vm.elapsed()
        banner_checks(console, manifest_id, debug=True)
        vm.prompt(SHORT_TIMEOUT)
        vm.send("s\n")
        vm.expect("shell (debug boot)", SHORT_TIMEOUT)

        def shell(command: str, timeout: float = 120) -> str:
            # The markers are split in the typed command so that the terminal's echo of the
            # command never matches them.
            vm.send(f"echo RC-'BEGIN'; {command}; echo RC-'END'\n")
            vm.expect("RC-BEGIN", timeout)
            return vm.expect("RC-END", timeout)[: -len("RC-END")].strip()

        # Let the background driver loading finish, and the USB stick attached at boot settle.
        shell("i=0; while [ ! -e /run/rootcellar/drivers-loaded ] && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done", 180)
        interfaces = shell("ls /sys/class/net").split()
        check("only lo exists (with a virtio-net card attached)", interfaces == ["lo"], str(interfaces))
        # virtio_pci binds every virtio PCI function (the disk needs it); the network driver
        # would bind the virtio device behind it (device id 1 = network).
        nic = shell("for d in /sys/bus/virtio/devices/*; do "
                    "[ \"$(cat $d/device)\" = 0x0001 ] && "
                    "{ [ -e $d/driver ] && echo \"nic ${d##*/} bound\" || echo \"nic ${d##*/} unbound\"; }; done")
        check("the network card has no driver", nic.startswith("nic ") and nic.endswith(" unbound"),
              nic or "no network card seen")
        mounts = shell("cat /proc/mounts")
        root_lines = [line for line in mounts.splitlines() if line.split()[1:2] == ["/"]]
        check("/ is mounted read-only", bool(root_lines) and root_lines[-1].split()[3].split(",")[0] == "ro",
              str(root_lines))
        write = shell("touch /usr/probe 2>&1; echo status=$?")
        check("writing to / fails", "Read-only file system" in write and "status=1" in write, write)
        check("the stick is not mounted outside a step", "/media/sneaker" not in mounts)
        present = shell("for i in 1 2 3 4 5 6 7 8 9 10; do rc-media status | grep -q present && break; "
                        "sleep 1; done; rc-media status", 180)
        check("rc-media finds the stick by its label", "present: /dev/" in present, present)
        vm.send("exit\n")
        vm.expect(READY, SHORT_TIMEOUT)
        vm.prompt(SHORT_TIMEOUT)
        vm.send("p\n")
        vm.prompt(SHORT_TIMEOUT)
        vm.send("yes\n")
        vm.wait_exit(SHORT_TIMEOUT)
    return timings


def rebuild_and_compare() -> float:
    started = time.monotonic()
    rebuild = IMAGES / "build" / "rebuild"
    # The same inputs: the rootcellar binary the first build used (others may be changing the
    # source tree meanwhile), the same packages.lock, scripts and ceremony files.
    info = dict(line.split(" ", 1) for line in (OUT / "build-info.txt").read_text().splitlines()
                if line.startswith(("rootcellar-bin ", "rustc ")))
    # The same lock too: a scratch lock when the first build had to replace superseded packages
    # (build.sh --allow-superseded); their .debs are in the cache by now.
    lock = build_info("lock")
    env = dict(os.environ, OUT=str(rebuild / "out"), WORK=str(rebuild / "work"),
               ROOTCELLAR_BIN=info["rootcellar-bin"], ROOTCELLAR_RUSTC=info["rustc"])
    if lock:
        env["LOCK"] = lock[0]
    subprocess.run([str(IMAGES / "build.sh")], env=env, check=True, stdout=subprocess.DEVNULL)
    first = (OUT / "SHA256SUMS").read_text()
    second = (rebuild / "out" / "SHA256SUMS").read_text()
    check("a second build is bit-identical (image, vmlinux, initramfs, manifest)", first == second,
          f"\n{first}\nvs\n{second}")
    return time.monotonic() - started


def main() -> int:
    skip_rebuild = "--skip-rebuild" in sys.argv[1:]
    image = OUT / "rootcellar-appliance.img"
    if not image.exists():
        print(f"image-test: {image} is missing: run make image first", file=sys.stderr)
        return 1
    LOGS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    manifest_id = sha256(OUT / "manifest.txt")
    image_sha = sha256(image)
    size = image.stat().st_size
    print(f"image {image} ({size / 1048576:.1f} MiB) sha256:{image_sha}")
    check("image is at most 64 MiB", size <= 64 << 20, f"{size} bytes")
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="rootcellar-image-test-") as tmp:
        scratch = Path(tmp)
        stick = scratch / "stick.img"
        state = scratch / "state.img"
        fat_disk(stick, LABEL, 64)
        ext4_disk(state, STATE_LABEL, 128)
        timings.update(phase("UEFI boot and ceremonies", uefi_ceremonies, scratch, stick, state, manifest_id))
        timings.update(phase("direct boot", debug_boot, stick, manifest_id))
    if not skip_rebuild:
        timings.update(phase("second build", lambda: {"second build": rebuild_and_compare()}))
    timings["image-test total"] = time.monotonic() - started

    print()
    for name, seconds in timings.items():
        print(f"  {name:40} {seconds:7.1f} s")
    superseded = build_info("superseded")
    if superseded:
        # Not a failure (the code is not at fault), but it must not go unnoticed.
        print("\nimage-test: WARNING: built from a scratch lock: images/packages.lock pins versions the "
              "Debian archive no longer has; run images/build.sh --relock and commit packages.lock:")
        for line in superseded:
            print(f"image-test: WARNING:   {line}")
    passed = sum(ok for _, ok, _ in results)
    failed = len(results) - passed
    print(f"image-test: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
