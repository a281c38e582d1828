#!/usr/bin/env python3
"""Verifies a Sigstore bundle offline with sigstore-python against a client trust config.

    sigstore_verify.py --trust-config trust_config.json --bundle B --identity EMAIL
                       --issuer URL --artifact FILE

A bundle with a DSSE envelope is verified as an attestation (its in-toto subject digest must be
the artifact's); any other as a signature over the artifact. The summary lists the sources
of verified time (the log's integrated time, and an RFC 3161 timestamp's when one verifies). Prints {"verified": ...} and exits
0, or prints {"refused": "<sigstore-python's message>"} and exits 1.
"""

import argparse
import hashlib
import json
import sys

from sigstore.models import Bundle, ClientTrustConfig
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("trust-config", "bundle", "identity", "issuer", "artifact"):
        p.add_argument(f"--{name}", required=True)
    args = p.parse_args()
    with open(args.trust_config) as f:
        config = ClientTrustConfig.from_json(f.read())
    with open(args.artifact, "rb") as f:
        artifact = f.read()
    policy = Identity(identity=args.identity, issuer=args.issuer)
    try:
        with open(args.bundle) as f:
            bundle = Bundle.from_json(f.read())
        verifier = Verifier(trusted_root=config.trusted_root)
        if bundle._dsse_envelope is not None:
            payload_type, payload = verifier.verify_dsse(bundle, policy)
            statement = json.loads(payload)
            digests = [s["digest"].get("sha256") for s in statement["subject"]]
            if hashlib.sha256(artifact).hexdigest() not in digests:
                raise ValueError("the statement's subject is not the artifact")
            result = {"payload_type": payload_type, "predicate_type": statement["predicateType"]}
        else:
            verifier.verify_artifact(artifact, bundle, policy)
            result = {"artifact_sha256": hashlib.sha256(artifact).hexdigest()}
        # Which sources of time verified: sigstore-python counts a timestamp that fails to
        # verify as no timestamp (the log's time suffices), so list them to see the TSA's.
        names = {"TIMESTAMP_AUTHORITY": "timestamp-authority", "TRANSPARENCY_SERVICE": "transparency-log"}
        result["times"] = sorted(names[t.source.name] for t in verifier._establish_time(bundle))
    except Exception as e:  # noqa: BLE001 (every refusal is reported the same way)
        print(json.dumps({"refused": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
    print(json.dumps({"verified": result}))


if __name__ == "__main__":
    main()
