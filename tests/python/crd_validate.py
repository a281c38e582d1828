#!/usr/bin/env python3
"""Validates Kubernetes manifests against the CustomResourceDefinitions that define them.

    crd_validate.py --crds DIR MANIFEST...

Reads every CRD in DIR (*.yaml), then each MANIFEST (YAML, one or more documents). Each document
is checked against the `openAPIV3Schema` of the CRD version its `apiVersion` names (group and
version) for its `kind`, as the API server would with strict field validation
(`kubectl apply --validate=strict`):

- the version must be served;
- unknown fields are errors (the server would prune them; strict validation rejects them), except
  under `x-kubernetes-preserve-unknown-fields` or `additionalProperties`;
- `metadata.name` must be a DNS subdomain; a cluster-scoped kind takes no namespace;
- `x-kubernetes-int-or-string` and `nullable` are honoured.

Exits 0 and prints, as JSON, the documents it validated (each with the CRD it matched); otherwise
prints `crd_validate: FILE: DOC PATH: MESSAGE` for the first error of each failing document on
stderr and exits 1.
"""

import argparse
import copy
import glob
import json
import os
import sys

import jsonschema
import yaml

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def load_crds(directory):
    """(group, kind) -> {"scope", "versions": {name: version}, "file"}."""
    crds = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                key = (spec["group"], spec["names"]["kind"])
                crds[key] = {
                    "scope": spec.get("scope", "Namespaced"),
                    "versions": {v["name"]: v for v in spec["versions"]},
                    "file": os.path.basename(path),
                }
    return crds


def strict(schema):
    """The structural schema with the API server's strictness made explicit for jsonschema."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        if node.pop("x-kubernetes-int-or-string", False):
            node.pop("type", None)
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
        if "properties" in node and "additionalProperties" not in node and not preserve:
            node["additionalProperties"] = False
        for key, value in node.items():
            if key in ("properties", "patternProperties", "definitions"):
                for child in value.values():
                    walk(child)
            elif key in ("items", "additionalProperties", "not"):
                walk(value)
            elif key in ("allOf", "anyOf", "oneOf"):
                walk(value)

    walk(schema)
    properties = schema.setdefault("properties", {})
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    # ObjectMeta is the server's own schema: checked here for the fields manifests set.
    properties["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    schema["additionalProperties"] = False
    schema.setdefault("required", [])
    for field in ("apiVersion", "kind", "metadata"):
        if field not in schema["required"]:
            schema["required"].append(field)
    return schema


def validate(doc, crds):
    """The CRD matched, or raises ValueError with the first problem."""
    if not isinstance(doc, dict):
        raise ValueError("the document is not a mapping")
    api_version = doc.get("apiVersion", "")
    if "/" not in api_version:
        raise ValueError(f"apiVersion {api_version!r} names no group")
    group, version = api_version.split("/", 1)
    kind = doc.get("kind")
    crd = crds.get((group, kind))
    if crd is None:
        raise ValueError(f"no CRD defines kind {kind!r} in group {group!r}")
    served = crd["versions"].get(version)
    if served is None or not served.get("served", False):
        raise ValueError(f"{crd['file']} serves no version {version!r} of {kind}")
    if crd["scope"] == "Cluster" and "namespace" in (doc.get("metadata") or {}):
        raise ValueError(f"{kind} is cluster-scoped: metadata.namespace is not allowed")
    schema = strict(served["schema"]["openAPIV3Schema"])
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        path = "/".join(str(p) for p in first.absolute_path) or "(document)"
        raise ValueError(f"{path}: {first.message}")
    return {"crd": crd["file"], "apiVersion": api_version, "kind": kind}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crds", required=True, help="directory of CRD YAML files")
    parser.add_argument("manifests", nargs="+")
    args = parser.parse_args()
    crds = load_crds(args.crds)
    if not crds:
        print(f"crd_validate: no CRDs found in {args.crds}", file=sys.stderr)
        sys.exit(1)
    validated, failed = [], False
    for path in args.manifests:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        if not docs:
            print(f"crd_validate: {path}: no document", file=sys.stderr)
            failed = True
        for n, doc in enumerate(docs):
            try:
                matched = validate(doc, crds)
            except ValueError as e:
                print(f"crd_validate: {path}: document {n}: {e}", file=sys.stderr)
                failed = True
                continue
            validated.append({"file": path, "document": doc, **matched})
    if failed:
        sys.exit(1)
    print(json.dumps(validated, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
