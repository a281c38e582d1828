#!/usr/bin/env bash
# `make demo` on an already-built tree, timed (issue #19's figure; goal ≤ 2.5 s): RUNS runs
# (default 3) into one scratch directory, each replacing the previous output as a second
# `make demo` does, printed beside the startup of `rootcellar --version` measured in the same run
# (the demo starts about 40 rootcellar processes). Run by `make bench`.
#
# Usage: scripts/demo-bench.sh [RUNS]
set -euo pipefail

runs=${1:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# The built tree: building is not timed.
make --no-print-directory -s build >/dev/null 2>"$scratch/stderr" ||
  { cat "$scratch/stderr" >&2; exit 1; }
rootcellar="$repo/target/debug/rootcellar"

median() {
  sort -g | awk '{ v[NR] = $1 }
    END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", b - a }'; }

version=()
for _ in $(seq 20); do
  start=$EPOCHREALTIME
  "$rootcellar" --version >/dev/null
  version+=("$(seconds_since "$start")")
done

demo=()
for _ in $(seq "$runs"); do
  start=$EPOCHREALTIME
  make --no-print-directory -s demo OUT="$scratch/demo" >/dev/null 2>"$scratch/stderr" ||
    { cat "$scratch/stderr" >&2; exit 1; }
  demo+=("$(seconds_since "$start")")
done

version_median=$(printf '%s\n' "${version[@]}" | median)
demo_median=$(printf '%s\n' "${demo[@]}" | median)
awk -v n="$runs" -v d="$demo_median" -v v="$version_median" -v runs="${demo[*]}" 'BEGIN {
  printf "make demo on the built tree (debug build), median of %d runs\n", n
  printf "  rootcellar --version (median of 20) : %8.1f ms\n", v * 1000
  printf "  make demo                           : %8.2f s    (runs: %s s; goal <= 2.5 s)\n", d, runs
  printf "  ratio (demo / --version)            : %8.0f\n", d / v
}'
