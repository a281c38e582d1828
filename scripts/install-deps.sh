#!/usr/bin/env bash
# Installs what rootcellar's demo and tests need and the machine lacks: SoftHSM2 (the PKCS#11
# token), OpenSC's pkcs11-tool, openssl and age (independent checkers), p11-kit's PKCS#11 header,
# jq, Chromium and poppler's pdftotext (the printed transcript), swtpm and tpm2-pkcs11 (a TPM as a
# second token), python-tuf (the TUF reference client), PyKCS11 (drives a token from outside
# rootcellar) and, with npm, sigstore-js and tuf-js (tests/node).
# Idempotent: a machine that has everything is left alone.
set -euo pipefail

need_apt=()
command -v softhsm2-util >/dev/null 2>&1 || need_apt+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || need_apt+=(opensc)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v faketime >/dev/null 2>&1 || need_apt+=(faketime)
# The demo reads rootcellar's --json output with it.
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
# The age CLI: custodians' sealed shares are checked to open with it, as they will at home.
command -v age >/dev/null 2>&1 || need_apt+=(age)
# tmux: a console test drives the console in a real terminal, as a person would.
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
# PKCS#11 headers: the fault tests build a module in front of SoftHSM2 with them.
[ -f /usr/include/p11-kit-1/p11-kit/pkcs11.h ] || need_apt+=(libp11-kit-dev)
# The transcript's print test: a real browser prints transcript.html to PDF, read back as text.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v pdftotext >/dev/null 2>&1 || need_apt+=(poppler-utils)
# A second, independent PKCS#11 token for the tests: a software TPM 2.0 (swtpm) behind
# tpm2-pkcs11, with tpm2-abrmd on a private D-Bus as its resource manager (a TPM holds only three
# loaded objects); tpm2-tools tells when it is ready.
command -v swtpm >/dev/null 2>&1 || need_apt+=(swtpm)
command -v tpm2_getcap >/dev/null 2>&1 || need_apt+=(tpm2-tools)
command -v tpm2-abrmd >/dev/null 2>&1 || [ -x /usr/sbin/tpm2-abrmd ] || need_apt+=(tpm2-abrmd)
command -v dbus-daemon >/dev/null 2>&1 || need_apt+=(dbus-daemon)
compgen -G "/usr/lib/*/pkcs11/libtpm2_pkcs11.so" >/dev/null || need_apt+=(libtpm2-pkcs11-1)
compgen -G "/usr/lib/*/libtss2-tcti-tabrmd.so.0" >/dev/null || need_apt+=(libtss2-tcti-tabrmd0)
compgen -G "/usr/lib/*/libtss2-tcti-swtpm.so.0" >/dev/null || need_apt+=(libtss2-tcti-swtpm0)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python=${PYTHON:-python3}
# find_spec finds each module without running it (importing them all took 0.5 s, every make).
if ! "$python" -c '
import importlib.util, sys
modules = ("tuf.ngclient", "sigstore.models", "securesystemslib", "cryptography", "jsonschema",
           "yaml", "PyKCS11")
sys.exit(any(importlib.util.find_spec(m) is None for m in modules))' >/dev/null 2>&1; then
  echo "installing python-tuf, sigstore-python and PyKCS11 (independent clients the tests check against)"
  "$python" -m pip install --quiet --disable-pip-version-check -r "$(dirname "$0")/../tests/python/requirements.txt"
fi

# sigstore-js's verifier and tuf-js: the JavaScript clients the tests check rootcellar's trust
# root with (exact versions in tests/node/package-lock.json; they need Node >= 20.17). `npm ci`
# runs only when the installed tree is not the locked one, so an offline machine that has it
# is left alone.
node_dir="$(cd "$(dirname "$0")/../tests/node" && pwd)"
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number);
              process.exit(a > 20 || (a === 20 && b >= 17) ? 0 : 1)' >/dev/null 2>&1; then
  echo "install-deps: Node.js >= 20.17 is needed for tests/node (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
if ! cmp -s "$node_dir/package-lock.json" "$node_dir/node_modules/.rootcellar-installed-lock"; then
  echo "installing sigstore-js's verifier and tuf-js (npm ci in tests/node)"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$node_dir/package-lock.json" "$node_dir/node_modules/.rootcellar-installed-lock"
fi
