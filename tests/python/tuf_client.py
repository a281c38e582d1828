#!/usr/bin/env python3
"""Reads a rootcellar TUF repository with python-tuf, the reference client.

Serves REPO over HTTP on 127.0.0.1 (an ephemeral port, in a thread), bootstraps a
`tuf.ngclient.Updater` with the trusted root given out of band, refreshes the top-level
metadata and downloads each named target into DOWNLOAD_DIR, checking it against the file given.

    tuf_client.py --repo REPO --root TRUSTED_ROOT --download-dir DIR NAME=EXPECTED_FILE...
                  [--max-root-rotations N] [--time RFC3339]

With --time, expiry is judged at that time instead of this machine's clock (python-tuf's
reference time), as `rootcellar tuf verify --time` does: a test signs at the clock and checks
at a later time to see metadata expire.

Exits 0 and prints a JSON summary when every target verifies (the root version reached, the
timestamp version, the targets, and, for the benchmark, `seconds` and `cpu_seconds`: the wall
time and the client thread's CPU time from creating the Updater to the last download);
otherwise prints `tuf_client: <ErrorType>: <message>` on stderr
and exits 1.
"""

import argparse
import datetime
import functools
import http.server
import inspect
import json
import os
import shutil
import sys
import tempfile
import threading
import time

# The repository is on localhost; a proxy from the environment must not intercept it.
for _name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    os.environ.pop(_name, None)

from tuf.ngclient import Updater, UpdaterConfig  # noqa: E402


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging every request to stderr."""

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def serve(directory):
    """Starts a server for `directory` on 127.0.0.1 and returns it.

    `shutdown()` waits for the serving loop to notice, which it checks every poll interval
    (0.5 s by default: half of `make demo`'s python-tuf check was that wait)."""
    handler = functools.partial(QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    loop = functools.partial(server.serve_forever, poll_interval=0.01)
    threading.Thread(target=loop, daemon=True).start()
    return server


def reference_time(text):
    """An RFC 3339 time as an aware UTC datetime (argparse type)."""
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: {e}") from e
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: no UTC offset")
    return parsed.astimezone(datetime.timezone.utc)


def set_reference_time(updater, when):
    """Makes the updater judge expiry at `when`: python-tuf's Updater checks every expiry during
    refresh() against its trusted set's `reference_time` (set to the clock when the Updater is
    created, and not used before refresh)."""
    trusted_set = getattr(updater, "_trusted_set", None)
    if trusted_set is None or not hasattr(trusted_set, "reference_time"):
        raise RuntimeError("this python-tuf has no reference time to set (--time)")
    trusted_set.reference_time = when


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="repository directory (metadata/, targets/)")
    parser.add_argument("--root", required=True, help="trusted root metadata, given out of band")
    parser.add_argument("--download-dir", required=True, help="where targets are saved")
    parser.add_argument(
        "--max-root-rotations",
        type=int,
        default=None,
        help="how many root versions to follow (python-tuf's default is 256)",
    )
    parser.add_argument(
        "--time",
        type=reference_time,
        default=None,
        metavar="RFC3339",
        help="judge expiry at this time instead of the clock",
    )
    parser.add_argument("targets", nargs="*", metavar="NAME=EXPECTED_FILE")
    args = parser.parse_args()
    config = UpdaterConfig()
    if args.max_root_rotations is not None:
        config.max_root_rotations = args.max_root_rotations

    server = serve(args.repo)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with tempfile.TemporaryDirectory() as metadata_dir:
            with open(args.root, "rb") as f:
                trusted_root = f.read()
            if "bootstrap" in inspect.signature(Updater.__init__).parameters:
                # python-tuf >= 6 takes the trusted root as an argument ...
                bootstrap = {"bootstrap": trusted_root}
            else:
                # ... older releases read it from the metadata directory.
                shutil.copyfile(args.root, os.path.join(metadata_dir, "root.json"))
                bootstrap = {}
            os.makedirs(args.download_dir, exist_ok=True)
            started = time.perf_counter()
            started_cpu = time.thread_time()
            updater = Updater(
                metadata_dir=metadata_dir,
                metadata_base_url=f"{base}/metadata/",
                target_dir=args.download_dir,
                target_base_url=f"{base}/targets/",
                config=config,
                **bootstrap,
            )
            if args.time is not None:
                set_reference_time(updater, args.time)
            updater.refresh()
            downloaded = {}
            for spec in args.targets:
                name, _, expected_path = spec.partition("=")
                info = updater.get_targetinfo(name)
                if info is None:
                    raise LookupError(f"target {name!r} is not listed in the targets metadata")
                path = updater.download_target(info, os.path.join(args.download_dir, name))
                with open(path, "rb") as got, open(expected_path, "rb") as expected:
                    if got.read() != expected.read():
                        raise ValueError(f"target {name!r} differs from {expected_path}")
                downloaded[name] = {"length": info.length, "sha256": info.hashes["sha256"]}
            seconds = time.perf_counter() - started
            cpu_seconds = time.thread_time() - started_cpu
            with open(os.path.join(metadata_dir, "timestamp.json"), "rb") as f:
                timestamp = json.load(f)
            with open(os.path.join(metadata_dir, "root.json"), "rb") as f:
                root = json.load(f)
            print(
                json.dumps(
                    {
                        "root_version": root["signed"]["version"],
                        "timestamp_version": timestamp["signed"]["version"],
                        "targets": downloaded,
                        "seconds": seconds,
                        "cpu_seconds": cpu_seconds,
                    },
                    indent=2,
                    sort_keys=True,
                )
            )
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 (report any failure as one line and exit non-zero)
        print(f"tuf_client: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
