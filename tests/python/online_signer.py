#!/usr/bin/env python3
"""Plays the online snapshot/timestamp service of a rootcellar repository in online mode.

Written with python-tuf's metadata API and securesystemslib's CryptoSigner (software P-256 keys),
independently of rootcellar: it reads the latest root and targets that rootcellar published, then
writes the next `N.snapshot.json` and `timestamp.json`.

    online_signer.py --repo REPO --snapshot-key PEM --timestamp-key PEM [--expires-days N]
                     [--targets-version V] [--without-hashes]

`--targets-version` lists another targets version than the latest (to build a mix-and-match
repository in tests); `--without-hashes` lists versions only, as TUF allows. A key that the root
does not list for the role signs under its own key id (to build a wrongly signed repository).
Prints a JSON summary; on failure prints `online_signer: <ErrorType>: <message>` and exits 1.
"""

import argparse
import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import MetaFile, Metadata, Snapshot, Timestamp
from tuf.api.serialization.json import JSONSerializer


def latest(metadata_dir, role):
    """The highest N of metadata_dir/N.<role>.json, or 0."""
    versions = [
        int(m.group(1))
        for name in os.listdir(metadata_dir)
        if (m := re.fullmatch(rf"(\d+)\.{role}\.json", name))
    ]
    return max(versions, default=0)


def signer_for(root, pem_path):
    """A CryptoSigner for the private key in pem_path, under the key id the root gives it."""
    with open(pem_path, "rb") as f:
        private = load_pem_private_key(f.read(), password=None)
    numbers = private.public_key().public_numbers()
    for keyid, key in root.signed.keys.items():
        public = key.keyval.get("public", "")
        try:
            listed = load_pem_public_key(public.encode())
        except ValueError:
            continue
        if listed.public_numbers() == numbers:
            return CryptoSigner(private, SSlibKey(keyid, key.keytype, key.scheme, key.keyval))
    return CryptoSigner(private)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--snapshot-key", required=True, help="PEM private key")
    parser.add_argument("--timestamp-key", required=True, help="PEM private key")
    parser.add_argument("--expires-days", type=int, default=7)
    parser.add_argument("--targets-version", type=int, default=None)
    parser.add_argument("--without-hashes", action="store_true")
    args = parser.parse_args()

    metadata_dir = os.path.join(args.repo, "metadata")
    root_version = latest(metadata_dir, "root")
    root = Metadata.from_file(os.path.join(metadata_dir, f"{root_version}.root.json"))
    expires = (datetime.now(timezone.utc) + timedelta(days=args.expires_days)).replace(
        microsecond=0
    )
    serializer = JSONSerializer(compact=False)

    targets_version = args.targets_version or latest(metadata_dir, "targets")
    targets_path = os.path.join(metadata_dir, f"{targets_version}.targets.json")
    if args.without_hashes or not os.path.exists(targets_path):
        targets_meta = MetaFile(version=targets_version)
    else:
        with open(targets_path, "rb") as f:
            targets_meta = MetaFile.from_data(targets_version, f.read(), ["sha256"])

    snapshot_version = latest(metadata_dir, "snapshot") + 1
    snapshot = Metadata(
        Snapshot(
            version=snapshot_version,
            spec_version="1.0.0",
            expires=expires,
            meta={"targets.json": targets_meta},
        )
    )
    snapshot.sign(signer_for(root, args.snapshot_key))
    snapshot_bytes = snapshot.to_bytes(serializer)
    with open(os.path.join(metadata_dir, f"{snapshot_version}.snapshot.json"), "wb") as f:
        f.write(snapshot_bytes)

    timestamp_path = os.path.join(metadata_dir, "timestamp.json")
    timestamp_version = 1
    if os.path.exists(timestamp_path):
        timestamp_version = Metadata.from_file(timestamp_path).signed.version + 1
    timestamp = Metadata(
        Timestamp(
            version=timestamp_version,
            spec_version="1.0.0",
            expires=expires,
            snapshot_meta=MetaFile.from_data(snapshot_version, snapshot_bytes, ["sha256"]),
        )
    )
    timestamp.sign(signer_for(root, args.timestamp_key))
    with open(timestamp_path, "wb") as f:
        f.write(timestamp.to_bytes(serializer))

    print(
        json.dumps(
            {
                "root_version": root_version,
                "targets_version": targets_version,
                "snapshot_version": snapshot_version,
                "timestamp_version": timestamp_version,
            }
        )
    )


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 (report any failure as one line and exit non-zero)
        print(f"online_signer: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
