#!/usr/bin/env bash
# Regenerates docs/examples/root-init-rehearsal/: what a ceremony produces for the record, from
# a rehearsal root-init on throwaway SoftHSM2 tokens (unattended: the answers below stand for
# the operator, the witnesses and the custodians) at this machine's clock:
#   transcript.md    the transcript, as signed into the response bundle
#   transcript.html  the same, to print
#   transcript.pdf   transcript.html printed by headless Chromium (its default paper, Letter)
# Usage: scripts/example-transcript.sh [OUT]   (default docs/examples/root-init-rehearsal)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$repo/docs/examples/root-init-rehearsal}
command -v chromium >/dev/null && command -v softhsm2-util >/dev/null ||
  { echo "example-transcript: run scripts/install-deps.sh first" >&2; exit 1; }
(cd "$repo" && cargo build --locked --quiet)
rootcellar=${CARGO_TARGET_DIR:-$repo/target}/debug/rootcellar

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/answers.toml" <<ANSWERS
time = "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
confirm = true
[present]
operator = ["Olga Operator"]
witness = ["Wim Witness", "Wanda Witness"]
custodian-1 = ["Carol Custodian"]
custodian-2 = ["Chidi Custodian"]
custodian-3 = ["Cem Custodian"]
ANSWERS
"$rootcellar" ceremony run "$repo/ceremony/root-init.toml" --rehearsal --bundle-key bundle-key \
  --state "$work/state" --answers "$work/answers.toml" --out "$work/out" >/dev/null

mkdir -p "$dest"
cp "$work/out/transcript.md" "$work/out/transcript.html" "$dest/"
# --no-pdf-header-footer: the page numbers and the ceremony's name are the stylesheet's.
chromium --headless --no-sandbox --disable-gpu --no-pdf-header-footer \
  --user-data-dir="$work/chromium" --print-to-pdf="$dest/transcript.pdf" \
  "file://$dest/transcript.html" >/dev/null 2>&1
[ -s "$dest/transcript.pdf" ] || { echo "example-transcript: chromium printed nothing" >&2; exit 1; }
echo "example-transcript: $dest/transcript.{md,html,pdf}"
