#!/usr/bin/env bash
# Runs every test binary again with the clock moved ahead (libfaketime), once per offset given
# (default +40d and +400d): the suite must pass on any day it runs, not only the day it was
# written. The binaries are the ones `cargo test` just built; cargo itself is not run under
# faketime (it waits on its own timers there).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v faketime >/dev/null || { echo "faketime is missing (Debian package faketime; make deps installs it)" >&2; exit 1; }
offsets=("$@")
[ ${#offsets[@]} -gt 0 ] || offsets=(+40d +400d)

mapfile -t binaries < <(cargo test --locked --features test-hooks --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"])
')
[ ${#binaries[@]} -gt 0 ] || { echo "no test binaries found" >&2; exit 1; }

# The tests that stop a run at every crash point or fault and resume it are skipped here: they
# test resumption, not the date (each signs at the clock like every other ceremony test, which
# run here), and they are the slowest of the suite. `cargo test` runs them.
skip=(--skip crash_points:: --skip faults:: --skip _resumes_after_a_crash_at_every_point)

for offset in "${offsets[@]}"; do
  echo "== the test suite with the clock at $offset ($(faketime -f "$offset" date -u +%Y-%m-%dT%H:%M:%SZ))"
  for binary in "${binaries[@]}"; do
    echo "-- $(basename "$binary")"
    # --quiet: one character per test; failures are printed in full.
    faketime -f "$offset" "$binary" --quiet "${skip[@]}"
  done
done
