#!/usr/bin/env bash
# A full rehearsal on a throwaway SoftHSM2: tokens for the root CA, three TUF root custodians and
# the appliance's own roles; keys born inside them; a root CA; Fulcio and TSA intermediates from
# CSRs sent by a software "online side"; and a TUF repository signed by the tokens.
#
# Usage: scripts/demo.sh [OUT]   (default demo-out; `make demo OUT=dir` sets it)
set -euo pipefail

out=${1:-demo-out}
repo=$(cd "$(dirname "$0")/.." && pwd)
rootcellar="$repo/target/debug/rootcellar"
[ -x "$rootcellar" ] || { echo "build first: cargo build" >&2; exit 1; }

# A previous demo's output is replaced; anything else at that path is left alone.
if [ -e "$out" ]; then
  if [ -f "$out/.rootcellar-demo" ]; then
    rm -rf "$out"
  else
    echo "demo: $out exists and is not a previous demo's output; choose another OUT" >&2
    exit 1
  fi
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
touch "$out/.rootcellar-demo"

module=""
for candidate in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
  [ -e "$candidate" ] && { module=$candidate; break; }
done
[ -n "$module" ] || { echo "demo: SoftHSM2 is not installed (make demo installs it)" >&2; exit 1; }

step() { printf '\n== %s\n' "$*"; }

step "throwaway SoftHSM2 under $out/token"
mkdir -p "$out/token/tokens" "$out/token/pins"
chmod 700 "$out/token/pins"
export SOFTHSM2_CONF="$out/token/softhsm2.conf"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$out/token/tokens" > "$SOFTHSM2_CONF"
# Rehearsal only: softhsm2-util takes PINs as arguments. rootcellar itself reads them from the
# pin-source files (or a no-echo prompt), never from its command line.
for token in root-ca custodian-1 custodian-2 custodian-3 custodian-4 appliance; do
  pin=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
  (umask 077; printf '%s\n' "$pin" > "$out/token/pins/$token.pin")
  softhsm2-util --init-token --free --label "$token" --pin "$pin" --so-pin "so-$pin" >/dev/null
  echo "token $token"
done

uri() { # token object
  printf 'pkcs11:token=%s;object=%s?module-path=%s&pin-source=%s' \
    "$1" "$2" "$module" "$out/token/pins/$1.pin"
}
generate() { # token object algorithm -> prints the key's full URI
  "$rootcellar" key generate "$(uri "$1" "$2")" --algorithm "$3" --json |
    jq -er .uri
}

step "keys generated inside the tokens (sensitive, never extractable, sign only)"
root_ca=$(generate root-ca root-ca p384)
custodian_1=$(generate custodian-1 tuf-root p256)
custodian_2=$(generate custodian-2 tuf-root p256)
custodian_3=$(generate custodian-3 tuf-root p256)
targets=$(generate appliance tuf-targets p256)
snapshot=$(generate appliance tuf-snapshot p256)
timestamp=$(generate appliance tuf-timestamp p256)
"$rootcellar" key show "$root_ca"

step "the online side: software keys and CSRs for the Fulcio and TSA intermediates"
mkdir -p "$out/online"
openssl ecparam -name secp384r1 -genkey -noout -out "$out/online/fulcio.key"
openssl req -new -key "$out/online/fulcio.key" -subj "/O=rootcellar demo/CN=fulcio intermediate" \
  -out "$out/online/fulcio.csr"
openssl ecparam -name prime256v1 -genkey -noout -out "$out/online/tsa.key"
openssl req -new -key "$out/online/tsa.key" -subj "/O=rootcellar demo/CN=tsa intermediate" \
  -out "$out/online/tsa.csr"
echo "wrote $out/online/{fulcio,tsa}.csr"

now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
step "root CA and intermediates (ceremony time $now)"
mkdir -p "$out/pki"
"$rootcellar" x509 root --key "$root_ca" --subject "O=rootcellar demo,CN=rootcellar demo root CA" \
  --time "$now" --days 3652 --out "$out/pki/root.pem"
for profile in fulcio tsa; do
  "$rootcellar" x509 issue --profile "$profile" --csr "$out/online/$profile.csr" \
    --issuer-cert "$out/pki/root.pem" --issuer-key "$root_ca" \
    --time "$now" --days 1826 --out "$out/pki/intermediate-$profile.pem"
done
for profile in fulcio tsa; do
  openssl verify -x509_strict -CAfile "$out/pki/root.pem" "$out/pki/intermediate-$profile.pem"
done

step "the online side's log keys and TSA signing certificate; trusted_root.json and signing config"
openssl ecparam -name prime256v1 -genkey -noout -out "$out/online/rekor.key"
openssl ec -in "$out/online/rekor.key" -pubout -out "$out/online/rekor.pub" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$out/online/ctfe.key"
openssl ec -in "$out/online/ctfe.key" -pubout -out "$out/online/ctfe.pub" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$out/online/tsa-leaf.key"
openssl req -new -key "$out/online/tsa-leaf.key" -subj "/O=rootcellar demo/CN=tsa signer" \
  -out "$out/online/tsa-leaf.csr"
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n' \
  > "$out/online/tsa-leaf.ext"
openssl x509 -req -in "$out/online/tsa-leaf.csr" -CA "$out/pki/intermediate-tsa.pem" \
  -CAkey "$out/online/tsa.key" -set_serial 1 -days 365 -extfile "$out/online/tsa-leaf.ext" \
  -out "$out/online/tsa-leaf.pem" 2>/dev/null
sed 's#\.\./\.\./demo-out/#./#g' "$repo/ceremony/config/trustroot.example.toml" > "$out/trustroot.toml"
"$rootcellar" trustroot build --config "$out/trustroot.toml" --time "$now" --out "$out"

step "TUF repository: root 2-of-3 custodians, targets/snapshot/timestamp on the appliance"
cat > "$out/keys.toml" <<TOML
# Key URIs for tuf-repo/policy.toml in this rehearsal.
[keys]
root-custodian-1 = "$custodian_1"
root-custodian-2 = "$custodian_2"
root-custodian-3 = "$custodian_3"
targets = "$targets"
snapshot = "$snapshot"
timestamp = "$timestamp"
TOML
"$rootcellar" tuf init --policy "$repo/tuf-repo/policy.toml" --keys "$out/keys.toml" \
  --time "$now" --out "$out/tuf" \
  --target "$out/pki/root.pem" \
  --target "$out/pki/intermediate-fulcio.pem" \
  --target "$out/pki/intermediate-tsa.pem"

step "TUF root rotation: custodian 3's key replaced by custodian 4's, cross-signed"
custodian_4=$(generate custodian-4 tuf-root p256)
printf 'root-custodian-4 = "%s"\n' "$custodian_4" >> "$out/keys.toml"
sed 's/"root-custodian-3"\]/"root-custodian-4"]/' "$repo/tuf-repo/policy.toml" > "$out/policy-v2.toml"
"$rootcellar" tuf rotate --repo "$out/tuf" --policy "$out/policy-v2.toml" --keys "$out/keys.toml" --time "$now"
# One custodian at a time, each with their own token: 2 of the old root's keys and 2 of the new.
for key in "$custodian_1" "$custodian_2" "$custodian_4"; do
  "$rootcellar" tuf sign --repo "$out/tuf" --key "$key" --time "$now"
done

step "publishing trusted_root.json and the signing config as TUF targets"
"$rootcellar" tuf targets add --repo "$out/tuf" "$out/trusted_root.json" \
  --custom '{"sigstore": {"usage": "TrustedRoot", "status": "Active"}}' \
  --policy "$out/policy-v2.toml" --keys "$out/keys.toml" --time "$now"
"$rootcellar" tuf targets add --repo "$out/tuf" "$out/signing_config.v0.2.json" \
  --custom '{"sigstore": {"usage": "SigningConfig", "status": "Active"}}' \
  --policy "$out/policy-v2.toml" --keys "$out/keys.toml" --time "$now"
"$rootcellar" tuf sign --repo "$out/tuf" --key "$targets" --time "$now"
"$rootcellar" tuf status --repo "$out/tuf" --policy "$out/policy-v2.toml" --keys "$out/keys.toml" --time "$now"
"$rootcellar" tuf publish --repo "$out/tuf" --policy "$out/policy-v2.toml" --keys "$out/keys.toml" --time "$now"

step "verifying the repository from root v1: rootcellar's client, then python-tuf"
"$rootcellar" tuf verify --trusted-root "$out/tuf/metadata/1.root.json" "$out/tuf"
# python-tuf runs on the other core while the demo goes on (nothing after this changes the
# repository it reads: its interpreter start-up alone was a third of a second); its verdict is
# awaited before the demo ends, and a refusal fails the demo.
python3 "$repo/tests/python/tuf_client.py" --repo "$out/tuf" --root "$out/tuf/metadata/1.root.json" \
  --download-dir "$out/downloads" "trusted_root.json=$out/trusted_root.json" \
  "signing_config.v0.2.json=$out/signing_config.v0.2.json" >/dev/null 2>"$out/python-tuf.log" &
python_tuf=$!
echo "python-tuf: refreshing from root v1 (its verdict is awaited before the end)"

step "response bundle: the demo's outputs, signed by the appliance's bundle key"
bundle_key=$(generate appliance bundle-key p256)
"$rootcellar" key show "$bundle_key" --json |
  jq -jer .public_key_pem > "$out/bundle-key.pub"
"$rootcellar" journal append --state "$out/state" --ceremony demo --time "$now" --actor demo \
  --action demo.rehearsal --output "$out/pki/root.pem" --output "$out/trusted_root.json" >/dev/null
"$rootcellar" journal show --state "$out/state" > "$out/transcript.txt"
"$rootcellar" bundle respond --key "$bundle_key" --state "$out/state" --ceremony demo --time "$now" \
  --actor demo --out "$out/response.rcb" --transcript "$out/transcript.txt" \
  --certificate "$out"/pki/*.pem --tuf-metadata "$out"/tuf/metadata/*.json \
  --trusted-root "$out/trusted_root.json" --file "$out/signing_config.v0.2.json" >/dev/null
"$rootcellar" bundle verify "$out/response.rcb" --pin "$out/bundle-key.pub" --kind response
"$rootcellar" bundle inspect "$out/response.rcb" --pin "$out/bundle-key.pub"

step "cluster side: the response bundle imported from the pinned TUF root v1 into $out/import"
"$rootcellar" import --bundle "$out/response.rcb" --root "$out/tuf/metadata/1.root.json" \
  --bundle-key "$out/bundle-key.pub" --state "$out/import-state" --out "$out/import" \
  --image 'registry.demo.internal/**' --issuer https://oidc.demo.internal \
  --identity release@demo.internal
# The verified copy replaces the one built before publishing (they are the same bytes).
cp "$out/import/trusted_root.json" "$out/trusted_root.json"

step "the same flow as console ceremonies, rehearsed unattended (ceremony/*.toml)"
mkdir -p "$out/ceremonies"
cat > "$out/ceremonies/answers.toml" <<TOML
time = "$now"
confirm = true
[present]
operator = ["Demo Operator"]
witness = ["Demo Witness 1", "Demo Witness 2"]
custodian-1 = ["Custodian One"]
custodian-2 = ["Custodian Two"]
custodian-3 = ["Custodian Three"]
custodian-4 = ["Custodian Four"]
TOML
c="$out/ceremonies"
run_ceremony() { # script out [inputs]
  "$rootcellar" ceremony run "$repo/ceremony/$1.toml" --rehearsal --state "$c/state" \
    --answers "$c/answers.toml" --out "$c/$2" ${3:+--inputs "$3"} > "$c/$2.log"
  echo "ceremony $1: outputs and transcript in $c/$2"
}
run_ceremony root-init root-init
mkdir -p "$c/request"
cp "$c/root-init/root.pem" "$c/request/"
cp "$out/online/fulcio.csr" "$out/online/tsa.csr" "$c/request/"
run_ceremony issue-intermediate intermediates "$c/request"
mkdir -p "$c/rotate-request" && cp -r "$c/root-init/tuf" "$c/rotate-request/tuf"
run_ceremony rotate-tuf-root rotated "$c/rotate-request"
mkdir -p "$c/publish-request" && cp -r "$c/rotated/tuf-rotated" "$c/publish-request/tuf"
cp "$out/trusted_root.json" "$out/signing_config.v0.2.json" "$c/publish-request/"
run_ceremony publish-trust-root published "$c/publish-request"
"$rootcellar" tuf verify --trusted-root "$c/published/tuf-published/metadata/1.root.json" \
  "$c/published/tuf-published" | head -1
"$rootcellar" journal verify --state "$c/state"

if ! wait "$python_tuf"; then
  cat "$out/python-tuf.log" >&2
  echo "demo: python-tuf refused the repository" >&2
  exit 1
fi
echo "python-tuf: refreshed to the rotated root and downloaded trusted_root.json"

step "done"
cat <<TXT
outputs in $out:
  pki/root.pem                     root CA certificate (key in token root-ca)
  pki/intermediate-fulcio.pem      Fulcio intermediate (codeSigning, pathlen 0)
  pki/intermediate-tsa.pem         TSA intermediate (timeStamping, pathlen 0)
  trusted_root.json                Sigstore trusted root (also a TUF target)
  signing_config.v0.2.json         Sigstore signing config (also a TUF target)
  trust_config.json                both as one client trust config (sigstore verify --trust-config)
  tuf/metadata/                    TUF metadata: root v1, rotated root v2, targets, snapshot, timestamp
  tuf/targets/                     TUF targets under consistent-snapshot names
  token/                           the SoftHSM2 tokens, their config and PIN files
  keys.toml                        the key URIs used for the TUF roles
  online/                          the online side's software keys and CSRs
  response.rcb, bundle-key.pub     the signed response bundle and the key to pin when verifying it
  transcript.txt, state/           the demo's journal, as carried in the bundle
  import/, import-state/           the cluster side: TUF mirror, verified trusted_root.json and
                                   trust_config.json,
                                   policy-controller and Kyverno manifests, change report
  ceremonies/                      the same flow as rehearsed console ceremonies, with transcripts
check them:
  $rootcellar bundle verify $out/response.rcb --pin $out/bundle-key.pub --kind response
  openssl verify -x509_strict -CAfile $out/pki/root.pem $out/pki/intermediate-fulcio.pem
  SOFTHSM2_CONF=$out/token/softhsm2.conf $rootcellar key list '$(uri root-ca root-ca | sed 's/;object=root-ca//')'
TXT
