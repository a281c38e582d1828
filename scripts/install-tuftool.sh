#!/usr/bin/env bash
# Installs tuftool (awslabs/tough's TUF command line), the third client `make bench` compares
# rootcellar's TUF verifier with, and prints the path of its binary on stdout (progress and
# errors go to stderr). The bench only: `make test` and CI never need it.
#
# It goes into a cache outside the repository, built by `cargo install --locked` at a pinned
# version, and only when that version is not there yet:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/rootcellar-bench/tuftool/bin/tuftool
# The build never uses the caller's CARGO_TARGET_DIR (tuftool's ~230 crates would churn
# rootcellar's): it goes to TUFTOOL_TARGET_DIR when that is set (kept, so a second build is
# quick), else to cargo install's own temporary directory, removed once installed.
#
# Usage: scripts/install-tuftool.sh            install if missing, print the binary's path
#        scripts/install-tuftool.sh --installed  print the path if installed, else exit 1
set -euo pipefail

# The newest tuftool published, on 2026-12-06 (it depends on tough 0.24; builds with rustc 1.95).
version=0.17.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/rootcellar-bench"
root="$cache/tuftool"
bin="$root/bin/tuftool"

installed() {
  # cargo install's own record of what it put in this root, with the version.
  [ -x "$bin" ] && grep -q "\"tuftool $version (" "$root/.crates2.json" 2>/dev/null
}

if installed; then
  echo "$bin"
  exit 0
fi
if [ "${1:-}" = "--installed" ]; then
  echo "tuftool $version is not installed in $root (scripts/install-tuftool.sh installs it)" >&2
  exit 1
fi

echo "installing tuftool $version into $root (cargo install --locked; several minutes)" >&2
mkdir -p "$cache"
started=$(date +%s)
# From the cache, so no project's .cargo/config applies.
cd "$cache"
unset CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR
if [ -n "${TUFTOOL_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR="$TUFTOOL_TARGET_DIR"
fi
if ! cargo install --locked tuftool --version "$version" --root "$root" >&2; then
  echo "tuftool $version could not be installed: cargo install --locked failed (above)" >&2
  exit 1
fi
installed || { echo "cargo install finished but $bin is not tuftool $version" >&2; exit 1; }
echo "installed tuftool $version in $(($(date +%s) - started)) s" >&2
echo "$bin"
