"""Reads a trusted_root.json and signing_config.v0.2.json with sigstore-python's models (an
independent Sigstore implementation) and prints what it understood, as JSON, for the Rust test
to compare with the inputs. Exits non-zero with the library's error if it refuses either file."""

import base64
import json
import sys

from cryptography.hazmat.primitives.serialization import Encoding
from sigstore._internal.trust import KeyringPurpose
from sigstore.models import SigningConfig, TrustedRoot


def main() -> None:
    trusted_root_path, signing_config_path = sys.argv[1], sys.argv[2]
    root = TrustedRoot.from_file(trusted_root_path)
    # Constructing the keyrings parses every log key; they raise if none is usable.
    root.rekor_keyring(KeyringPurpose.VERIFY)
    root.ct_keyring(KeyringPurpose.VERIFY)
    der = lambda cert: base64.b64encode(cert.public_bytes(Encoding.DER)).decode()
    report = {
        "fulcio_certs": [der(c) for c in root.get_fulcio_certs()],
        "timestamp_authorities": [
            [der(c) for c in tsa.certificates(allow_expired=True)]
            for tsa in root.get_timestamp_authorities()
        ],
    }
    config = SigningConfig.from_file(signing_config_path)
    report["fulcio_url"] = config.get_fulcio().url
    report["oidc_url"] = config.get_oidc_url()
    report["tlogs"] = len(config.get_tlogs())
    report["tsas"] = len(config.get_tsas())
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
