#!/usr/bin/env python3
"""Writes the seeds of the tuf_verify, csr_parse, ceremony_input and request_layout fuzz targets
into fuzz/corpus/TARGET/seed-* from a demo's output (`make demo`, default demo-out/).

Each target's input format is described at the top of its source in fuzz_targets/. The seeds are
the demo's own files: its TUF repositories, its CSRs, the scripts it runs and its answers file,
and its ceremony requests as the entries of request bundles. Two kinds are made here: a TUF
repository of the fixed test keys tuf_verify signs with, and CertificationRequestInfos of the
test key csr_parse signs with (the targets sign them afresh, so mutations get past signatures).

Usage: fuzz/make-seeds.py [DEMO_OUT]   (needs python3-cryptography and openssl)
"""

import glob
import hashlib
import json
import os
import subprocess
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FUZZ = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(FUZZ)
CORPUS = os.path.join(FUZZ, "corpus")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)
    print(f"{target}/{name}: {len(data)} bytes")


def parts(items):
    """`=HEADER` lines, each followed by its contents (the format tuf_verify and request_layout read)."""
    return b"\n".join(b"=" + header.encode() + b"\n" + contents for header, contents in items)


def tuf_repository(repo, trusted_version=1):
    """A repository directory as tuf_verify's parts: the chain from the trusted root on, the
    timestamp and the snapshot and targets it leads to, and each target file."""
    md = os.path.join(repo, "metadata")
    items = [("trusted", read(f"{md}/{trusted_version}.root.json"))]
    version = trusted_version + 1
    while os.path.exists(f"{md}/{version}.root.json"):
        items.append(("root", read(f"{md}/{version}.root.json")))
        version += 1
    timestamp = read(f"{md}/timestamp.json")
    snapshot_version = json.loads(timestamp)["signed"]["meta"]["snapshot.json"]["version"]
    snapshot = read(f"{md}/{snapshot_version}.snapshot.json")
    targets_version = json.loads(snapshot)["signed"]["meta"]["targets.json"]["version"]
    targets = read(f"{md}/{targets_version}.targets.json")
    items += [("timestamp", timestamp), ("snapshot", snapshot), ("targets", targets)]
    for name, info in sorted(json.loads(targets)["signed"]["targets"].items()):
        stored = f"{repo}/targets/{info['hashes']['sha256']}.{name}"
        items.append((f"target {name}", read(stored)))
    return parts(items)


def test_key(byte):
    return ec.derive_private_key(int.from_bytes(bytes([byte]) * 32, "big"), ec.SECP256R1())


def tuf_key(byte):
    """The TUF key id and JSON of the test key with scalar `byte` * 32, as rootcellar lists it."""
    pem = test_key(byte).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode().rstrip("\n")
    key = {"keytype": "ecdsa", "keyval": {"public": pem}, "scheme": "ecdsa-sha2-nistp256"}
    # OLPC canonical JSON, over which key ids are computed, writes a newline in a string raw.
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":")).replace("\\n", "\n")
    return hashlib.sha256(canonical.encode()).hexdigest(), key


def test_key_repository():
    """Root v1 (key A) rotated to v2 (key B, signed by both), the other roles under key C; no
    hashes in the listings, so that a mutated file signed afresh is still the one listed. The
    signatures are placeholders: tuf_verify makes them."""
    a, b, c = tuf_key(0x11), tuf_key(0x22), tuf_key(0x33)
    expires = "2027-06-06T00:00:00Z"

    def root(version, root_keys):
        roles = {"root": {"keyids": [k[0] for k in root_keys], "threshold": 1}}
        for role in ["timestamp", "snapshot", "targets"]:
            roles[role] = {"keyids": [c[0]], "threshold": 1}
        return {"_type": "root", "consistent_snapshot": True, "expires": expires,
                "keys": {k[0]: k[1] for k in root_keys + [c]}, "roles": roles,
                "spec_version": "1.0.0", "version": version}

    def metadata(signed, signers):
        signatures = [{"keyid": k[0], "sig": "00"} for k in signers]
        return (json.dumps({"signatures": signatures, "signed": signed}, indent=2) + "\n").encode()

    def listing(role, listed):
        return {"_type": role, "expires": expires, "meta": {listed: {"version": 1}},
                "spec_version": "1.0.0", "version": 1}

    target = b"rootcellar fuzz target file\n"
    targets = {"_type": "targets", "expires": expires, "spec_version": "1.0.0", "version": 1,
               "targets": {"notes.txt": {
                   "hashes": {"sha256": hashlib.sha256(target).hexdigest()},
                   "length": len(target),
                   "custom": {"sigstore": {"usage": "TrustedRoot", "status": "Active"}}}}}
    return parts([
        ("trusted", metadata(root(1, [a]), [a])),
        ("root", metadata(root(2, [b]), [a, b])),
        ("timestamp", metadata(listing("timestamp", "snapshot.json"), [c])),
        ("snapshot", metadata(listing("snapshot", "targets.json"), [c])),
        ("targets", metadata(targets, [c])),
        ("target notes.txt", target),
    ])


def certification_request_info(names, extensions):
    """`CRI:` and the DER of a CertificationRequestInfo carrying csr_parse's test key."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(oid, value) for oid, value in names]))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return b"CRI:" + builder.sign(test_key(0x2A), hashes.SHA256()).tbs_certrequest_bytes


def repository_entries(repo):
    """A repository as `bundle new --tuf-metadata REPO/metadata/*.json --file REPO/targets/*`
    packs it."""
    entries = [("tuf-metadata " + os.path.basename(f), read(f))
               for f in sorted(glob.glob(f"{repo}/metadata/*.json"))]
    entries += [("opaque-file " + os.path.basename(f), read(f))
                for f in sorted(glob.glob(f"{repo}/targets/*"))]
    return entries


def main():
    demo = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "demo-out"))
    ceremonies = os.path.join(demo, "ceremonies")

    write("tuf_verify", "seed-demo", tuf_repository(f"{demo}/tuf"))
    write("tuf_verify", "seed-root-init", tuf_repository(f"{ceremonies}/root-init/tuf"))
    write("tuf_verify", "seed-test-keys", test_key_repository())

    write("csr_parse", "seed-fulcio-p384.csr", read(f"{demo}/online/fulcio.csr"))
    write("csr_parse", "seed-tsa-p256.csr", read(f"{demo}/online/tsa.csr"))
    der = subprocess.run(["openssl", "req", "-in", f"{demo}/online/tsa-leaf.csr", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    write("csr_parse", "seed-tsa-leaf.der", der)
    o, cn = NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME
    key_usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False)
    write("csr_parse", "seed-cri-extensions", certification_request_info(
        [(o, "rootcellar demo"), (cn, "fulcio intermediate")],
        [(x509.BasicConstraints(ca=True, path_length=0), True), (key_usage, True),
         (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False),
         (x509.SubjectAlternativeName([x509.DNSName("fulcio.example")]), False)]))
    write("csr_parse", "seed-cri-subject", certification_request_info(
        [(NameOID.COUNTRY_NAME, "NL"), (o, "rootcellar demo"),
         (NameOID.ORGANIZATIONAL_UNIT_NAME, "tsa"), (cn, "tsa intermediate")], []))

    for script in ["root-init", "publish-trust-root", "backup-keys", "issue-crl"]:
        write("ceremony_input", f"seed-{script}.toml", read(f"{REPO}/ceremony/{script}.toml"))
    write("ceremony_input", "seed-answers.toml", read(f"{ceremonies}/answers.toml"))

    request = f"{ceremonies}/request"
    write("request_layout", "seed-issue-intermediate", parts([
        ("certificate root.pem", read(f"{request}/root.pem")),
        ("csr fulcio.csr", read(f"{request}/fulcio.csr")),
        ("csr tsa.csr", read(f"{request}/tsa.csr")),
    ]))
    write("request_layout", "seed-rotate-tuf-root",
          parts(repository_entries(f"{ceremonies}/rotate-request/tuf")))
    publish = f"{ceremonies}/publish-request"
    write("request_layout", "seed-publish-trust-root", parts(
        repository_entries(f"{publish}/tuf") + [
            ("trusted-root trusted_root.json", read(f"{publish}/trusted_root.json")),
            ("opaque-file signing_config.v0.2.json", read(f"{publish}/signing_config.v0.2.json")),
        ]))


if __name__ == "__main__":
    main()
