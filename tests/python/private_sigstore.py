#!/usr/bin/env python3
"""TEST ONLY: a private Sigstore deployment played from the online side's software keys.

Plays Fulcio (a short-lived code-signing leaf under the Fulcio intermediate the appliance
issued, with the OIDC-issuer extensions, an email SAN and an SCT signed by the CT log key),
a signer (an artifact signed cosign sign-blob style, and an in-toto SLSA provenance statement
in a DSSE envelope), and Rekor v1 (a one-entry log per signature, signed by the Rekor key:
the entry's inclusion promise (SET) and an inclusion proof with a signed checkpoint). Writes
standard Sigstore bundles (application/vnd.dev.sigstore.bundle.v0.3+json) for independent
verifiers to check against rootcellar's trusted_root.json / trust_config.json.

    private_sigstore.py --fulcio-cert PEM --fulcio-key PEM --rekor-key PEM --ct-key PEM
                        --rekor-url URL --identity EMAIL --issuer URL --signed-at UNIX
                        --artifact FILE --out DIR [--impostor-ca] [--impostor-log]
                        [--tsa-chain PEM --tsa-key PEM]

--impostor-ca issues the leaf from a fresh software root and intermediate with the same names
as the real ones; --impostor-log records the entry in a log with a fresh key (an honest log,
but not ours). With --tsa-chain (the TSA's signing certificate first) and its key, each
signature also gets an RFC 3161 timestamp from `openssl ts -reply`, at the clock. Writes DIR/artifact.sigstore.json and DIR/provenance.sigstore.json and prints
a JSON summary. Formats follow sigstore/protobuf-specs and what sigstore-python 4.5.1 and
sigstore-js check: log ids are the SHA-256 of the DER SPKI; the SET signs the RFC 8785 JSON of
body, integratedTime, logID (hex) and logIndex; the checkpoint is a signed note whose signature
line is "— <host> base64(keyid[:4] || signature)".
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import secrets
import struct
import subprocess
import tempfile
from urllib.parse import urlparse

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO = "application/vnd.in-toto+json"


def b64(data):
    return base64.b64encode(data).decode()


def der_length(n):
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der(tag, body):
    return bytes([tag]) + der_length(len(body)) + body


def spki_der(public_key):
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def log_id(public_key):
    """A log's id: SHA-256 of its DER SubjectPublicKeyInfo."""
    return hashlib.sha256(spki_der(public_key)).digest()


def hash_for(key):
    return hashes.SHA384() if key.curve.key_size >= 384 else hashes.SHA256()


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def load_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


def impostor_chain(real_intermediate, at):
    """A fresh software root and intermediate named like the real ones: only the keys differ."""
    root_key = ec.generate_private_key(ec.SECP384R1())
    inter_key = ec.generate_private_key(ec.SECP384R1())
    root_name = real_intermediate.issuer
    start, end = utc(at - 86400), utc(at + 86400 * 365)

    def ca(subject, key, issuer, issuer_key, path_length):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
            )
        )
        return builder.sign(issuer_key, hashes.SHA384())

    ca(root_name, root_key, root_name, root_key, 1)
    intermediate = ca(real_intermediate.subject, inter_key, root_name, root_key, 0)
    return intermediate, inter_key


def sct_list_extension_value(sct_bytes):
    """The SCT list extension's value: an OCTET STRING around the TLS-encoded list."""
    item = struct.pack(">H", len(sct_bytes)) + sct_bytes
    return der(0x04, struct.pack(">H", len(item)) + item)


def issue_leaf(issuer_cert, issuer_key, ct_key, identity, oidc_issuer, at):
    """Fulcio's part: a 10-minute code-signing certificate with an embedded SCT (RFC 6962 §3.2:
    the CT log signs the precertificate, i.e. the TBS without the SCT list, bound to the
    issuer's key hash)."""
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()

    def build(sct_value):
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(issuer_cert.subject)
            .public_key(leaf_key.public_key())
            .serial_number(serial)
            .not_valid_before(utc(at - 60))
            .not_valid_after(utc(at + 540))
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    issuer_cert.extensions.get_extension_for_class(
                        x509.SubjectKeyIdentifier
                    ).value
                ),
                False,
            )
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(identity)]), True)
            .add_extension(
                x509.UnrecognizedExtension(OIDC_ISSUER_V1, oidc_issuer.encode()), False
            )
            .add_extension(
                x509.UnrecognizedExtension(OIDC_ISSUER_V2, der(0x0C, oidc_issuer.encode())),
                False,
            )
            .add_extension(x509.UnrecognizedExtension(SCT_LIST, sct_value), False)
            .sign(issuer_key, hash_for(issuer_key))
        )

    precert_tbs = build(sct_list_extension_value(b"\0" * 8)).tbs_precertificate_bytes
    timestamp_ms = at * 1000
    issuer_key_hash = hashlib.sha256(spki_der(issuer_cert.public_key())).digest()
    signed = (
        b"\x00\x00"  # v1, certificate_timestamp
        + struct.pack(">Q", timestamp_ms)
        + b"\x00\x01"  # precert_entry
        + issuer_key_hash
        + struct.pack(">I", len(precert_tbs))[1:]
        + precert_tbs
        + b"\x00\x00"  # no extensions
    )
    signature = ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    sct = (
        b"\x00"
        + log_id(ct_key.public_key())
        + struct.pack(">Q", timestamp_ms)
        + b"\x00\x00"
        + b"\x04\x03"  # sha256, ecdsa
        + struct.pack(">H", len(signature))
        + signature
    )
    leaf = build(sct_list_extension_value(sct))
    assert leaf.tbs_precertificate_bytes == precert_tbs
    return leaf, leaf_key


def pem_b64(cert):
    """How Rekor v1 bodies carry the signer: base64 of the PEM certificate."""
    return b64(cert.public_bytes(serialization.Encoding.PEM))


def log_entry(body, kind, rekor_key, rekor_url, at):
    """Rekor's part: a one-entry log holding `body` at index 0, integrated at `at`."""
    canonical_body = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    key_id = log_id(rekor_key.public_key())
    set_payload = rfc8785.dumps(
        {
            "body": b64(canonical_body),
            "integratedTime": at,
            "logID": key_id.hex(),
            "logIndex": 0,
        }
    )
    inclusion_promise = rekor_key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
    # RFC 6962 leaf hash; with one entry it is the root.
    root_hash = hashlib.sha256(b"\x00" + canonical_body).digest()
    host = urlparse(rekor_url).hostname
    note = f"{host} - {int.from_bytes(key_id[:8], 'big') >> 1}\n1\n{b64(root_hash)}\n"
    note_signature = rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
    checkpoint = f"{note}\n\u2014 {host} {b64(key_id[:4] + note_signature)}\n"
    return {
        "logIndex": "0",
        "logId": {"keyId": b64(key_id)},
        "kindVersion": {"kind": kind, "version": "0.0.1"},
        "integratedTime": str(at),
        "inclusionPromise": {"signedEntryTimestamp": b64(inclusion_promise)},
        "inclusionProof": {
            "logIndex": "0",
            "rootHash": b64(root_hash),
            "treeSize": "1",
            "hashes": [],
            "checkpoint": {"envelope": checkpoint},
        },
        "canonicalizedBody": b64(canonical_body),
    }


TSA_CONFIG = """[tsa]
default_tsa = tsa_config
[tsa_config]
serial = {serial}
crypto_device = builtin
signer_digest = sha256
default_policy = 1.3.6.1.4.1.57264.2
digests = sha256
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def timestamp(signature, tsa):
    """The TSA's part: an RFC 3161 TimeStampResp over the signature bytes, by openssl ts."""
    chain, key = tsa
    with tempfile.TemporaryDirectory() as work:
        path = lambda name: os.path.join(work, name)  # noqa: E731
        with open(path("signature"), "wb") as f:
            f.write(signature)
        with open(path("ts.cnf"), "w") as f:
            f.write(TSA_CONFIG.format(serial=path("serial")))
        with open(path("serial"), "w") as f:
            f.write("01\n")
        run = lambda *args: subprocess.run(  # noqa: E731
            ["openssl", "ts", *args], check=True, capture_output=True
        )
        run("-query", "-data", path("signature"), "-sha256", "-cert", "-out", path("req"))
        # Only the signing certificate travels in the token (the query's -cert): with the chain
        # too, openssl writes the certificates SET unsorted, which is not DER and which
        # sigstore-python's parser refuses; verifiers take the chain from trusted_root.json.
        with open(chain, "rb") as f:
            signer = x509.load_pem_x509_certificates(f.read())[0]
        with open(path("signer.pem"), "wb") as f:
            f.write(signer.public_bytes(serialization.Encoding.PEM))
        run("-reply", "-config", path("ts.cnf"), "-queryfile", path("req"),
            "-signer", path("signer.pem"), "-inkey", key, "-out", path("resp"))
        with open(path("resp"), "rb") as f:
            return f.read()


def bundle(leaf, entry, content, signature, tsa):
    material = {
        "certificate": {"rawBytes": b64(leaf.public_bytes(serialization.Encoding.DER))},
        "tlogEntries": [entry],
    }
    if tsa:
        material["timestampVerificationData"] = {
            "rfc3161Timestamps": [{"signedTimestamp": b64(timestamp(signature, tsa))}]
        }
    return {"mediaType": BUNDLE_MEDIA_TYPE, "verificationMaterial": material, **content}


def sign_blob(artifact, leaf, leaf_key, rekor_key, rekor_url, at, tsa):
    digest = hashlib.sha256(artifact).digest()
    signature = leaf_key.sign(artifact, ec.ECDSA(hashes.SHA256()))
    body = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {"content": b64(signature), "publicKey": {"content": pem_b64(leaf)}},
        },
    }
    entry = log_entry(body, "hashedrekord", rekor_key, rekor_url, at)
    return bundle(
        leaf,
        entry,
        {
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
                "signature": b64(signature),
            }
        },
        signature,
        tsa,
    )


def pae(payload_type, payload):
    """DSSE's pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign_provenance(artifact, name, leaf, leaf_key, rekor_key, rekor_url, at, tsa):
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": hashlib.sha256(artifact).hexdigest()}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://rootcellar.invalid/test-build/v1",
                "externalParameters": {"artifact": name},
            },
            "runDetails": {"builder": {"id": "https://rootcellar.invalid/test-builder"}},
        },
    }
    payload = json.dumps(statement, separators=(",", ":")).encode()
    signature = leaf_key.sign(pae(IN_TOTO, payload), ec.ECDSA(hashes.SHA256()))
    envelope = {
        "payload": b64(payload),
        "payloadType": IN_TOTO,
        "signatures": [{"sig": b64(signature), "keyid": ""}],
    }
    body = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {
                "algorithm": "sha256",
                "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest(),
            },
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": [{"signature": b64(signature), "verifier": pem_b64(leaf)}],
        },
    }
    entry = log_entry(body, "dsse", rekor_key, rekor_url, at)
    return bundle(leaf, entry, {"dsseEnvelope": envelope}, signature, tsa)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("fulcio-cert", "fulcio-key", "rekor-key", "ct-key", "rekor-url"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--identity", required=True, help="the signer's email (the SAN)")
    p.add_argument("--issuer", required=True, help="the OIDC issuer URL")
    p.add_argument("--signed-at", type=int, required=True, help="Unix seconds")
    p.add_argument("--artifact", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--impostor-ca", action="store_true")
    p.add_argument("--impostor-log", action="store_true")
    p.add_argument("--tsa-chain", help="the TSA's certificates, its signing certificate first")
    p.add_argument("--tsa-key", help="the TSA signing certificate's key")
    args = p.parse_args()
    tsa = (args.tsa_chain, args.tsa_key) if args.tsa_chain else None

    at = args.signed_at
    fulcio_cert, fulcio_key = load_cert(args.fulcio_cert), load_key(args.fulcio_key)
    if args.impostor_ca:
        fulcio_cert, fulcio_key = impostor_chain(fulcio_cert, at)
    rekor_key = load_key(args.rekor_key)
    if args.impostor_log:
        rekor_key = ec.generate_private_key(ec.SECP256R1())
    leaf, leaf_key = issue_leaf(
        fulcio_cert, fulcio_key, load_key(args.ct_key), args.identity, args.issuer, at
    )
    with open(args.artifact, "rb") as f:
        artifact = f.read()
    name = os.path.basename(args.artifact)
    os.makedirs(args.out, exist_ok=True)
    written = {}
    for file, content in (
        (
            "artifact.sigstore.json",
            sign_blob(artifact, leaf, leaf_key, rekor_key, args.rekor_url, at, tsa),
        ),
        (
            "provenance.sigstore.json",
            sign_provenance(artifact, name, leaf, leaf_key, rekor_key, args.rekor_url, at, tsa),
        ),
    ):
        path = os.path.join(args.out, file)
        with open(path, "w") as f:
            json.dump(content, f, indent=2)
        written[file] = path
    print(
        json.dumps(
            {
                "bundles": written,
                "leaf_serial": format(leaf.serial_number, "x"),
                "rekor_log_id": b64(log_id(rekor_key.public_key())),
                "signed_at": utc(at).isoformat(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
