//! Unit tests of the bundle format: hostile manifests are built here with the internal encoder,
//! which (unlike [`BundleBuilder`]) does not refuse them, signed by a trusted key, and must each
//! be refused by the reader with its own message, with nothing extracted.

use std::collections::BTreeSet;

use ciborium::value::Value;

use super::build::assemble;
use super::cose::sign_manifest;
use super::format::{canonical_bytes, Manifest};
use super::*;

fn key() -> SoftwareKey {
    SoftwareKey::p256_from_bytes(&[42u8; 32], "test:requester").unwrap()
}

fn pins() -> PinnedKeys {
    PinnedKeys::new(vec![crate::keys::Signer::public_key(&key()).clone()])
}

fn time() -> jiff::Timestamp {
    "2026-11-25T10:00:00Z".parse().unwrap()
}

fn confirmed() -> crate::time::ConfirmedTime {
    crate::time::tests::confirmed_at("2026-11-25T10:00:00Z")
}

fn entry(name: &str, data: &[u8]) -> (EntryInfo, Vec<u8>) {
    use sha2::Digest;
    (
        EntryInfo {
            entry_type: EntryType::OpaqueFile,
            name: name.to_string(),
            media_type: "application/octet-stream".into(),
            length: data.len() as u64,
            sha256: sha2::Sha256::digest(data).into(),
        },
        data.to_vec(),
    )
}

fn manifest(entries: &[(EntryInfo, Vec<u8>)]) -> Manifest {
    Manifest {
        version: FORMAT_VERSION,
        kind: BundleKind::Request,
        id: "test".into(),
        created: time(),
        ceremony: None,
        journal_head: None,
        rehearsal: false,
        entries: entries.iter().map(|(i, _)| i.clone()).collect(),
    }
}

/// Signs raw manifest bytes with the trusted key, bypassing every producer-side check.
fn raw_bundle(manifest_bytes: Vec<u8>, contents: Vec<Vec<u8>>) -> Vec<u8> {
    assemble(sign_manifest(manifest_bytes, &key()).unwrap(), contents)
}

fn bundle_of(entries: Vec<(EntryInfo, Vec<u8>)>) -> Vec<u8> {
    let m = manifest(&entries);
    raw_bundle(m.to_bytes(), entries.into_iter().map(|(_, d)| d).collect())
}

/// A bundle whose manifest value is edited by `edit` before signing.
fn edited(edit: impl FnOnce(&mut Vec<(Value, Value)>)) -> Vec<u8> {
    let entries = vec![entry("a.txt", b"alpha")];
    let mut value = manifest(&entries).to_value();
    let Value::Map(fields) = &mut value else {
        unreachable!()
    };
    edit(fields);
    raw_bundle(canonical_bytes(value), vec![b"alpha".to_vec()])
}

fn field<'a>(fields: &'a mut [(Value, Value)], key: &str) -> &'a mut Value {
    &mut fields
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some(key))
        .unwrap()
        .1
}

/// Reads, verifies and extracts `bytes` with `limits`; must fail, and write nothing.
fn refused_with(bytes: &[u8], limits: &Limits) -> BundleError {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let result = Bundle::decode(bytes, limits)
        .and_then(|b| b.verify(&pins()))
        .and_then(|v| v.extract(&out));
    let err = result.expect_err("hostile bundle accepted");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing may be written for a refused bundle ({err})"
    );
    err
}

fn refused(bytes: &[u8]) -> BundleError {
    refused_with(bytes, &Limits::default())
}

#[test]
fn a_well_formed_raw_bundle_is_accepted() {
    let bytes = bundle_of(vec![entry("a.txt", b"alpha"), entry("b.txt", b"beta")]);
    let verified = Bundle::decode(&bytes, &Limits::default())
        .unwrap()
        .verify(&pins())
        .unwrap();
    assert_eq!(verified.entry("b.txt"), Some(&b"beta"[..]));
    assert_eq!(verified.bundle().to_bytes(), bytes);
}

#[test]
fn hostile_names_are_each_refused_with_their_own_message() {
    let mut messages = BTreeSet::new();
    for (name, expected) in [
        ("../x", "parent directory"),
        ("/etc/passwd", "absolute path"),
        ("a/b", "path separator"),
        ("", "empty"),
        ("bell\u{7}.txt", "control"),
        ("line\nbreak", "control"),
        ("..", "parent directory"),
        (".", "\".\""),
    ] {
        let err = refused(&bundle_of(vec![entry(name, b"x")]));
        let message = err.to_string();
        assert!(
            matches!(err, BundleError::UnsafeEntryName { .. }),
            "{name:?}: {message}"
        );
        assert!(message.contains(expected), "{name:?}: {message}");
        assert!(message.contains("entry-name check"), "{message}");
        messages.insert(message);
    }
    assert_eq!(messages.len(), 8, "every hostile name has its own message");

    let err = refused(&bundle_of(vec![entry("a.pem", b"1"), entry("a.pem", b"2")]));
    assert!(
        matches!(err, BundleError::DuplicateEntryName { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("duplicate-name check"), "{err}");
    let err = refused(&bundle_of(vec![entry("A.pem", b"1"), entry("a.pem", b"2")]));
    assert!(
        matches!(err, BundleError::DuplicateEntryName { .. }),
        "{err}"
    );
}

#[test]
fn unsorted_entries_are_refused() {
    let err = refused(&bundle_of(vec![entry("b", b"1"), entry("a", b"2")]));
    assert!(
        matches!(err, BundleError::EntriesOutOfOrder { .. }),
        "{err}"
    );
}

#[test]
fn unknown_version_kind_and_entry_type_are_refused() {
    let err = refused(&edited(|f| *field(f, "version") = Value::from(2u64)));
    assert!(
        matches!(err, BundleError::UnsupportedVersion { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("version 2 is not supported"),
        "{err}"
    );

    let err = refused(&edited(|f| {
        *field(f, "kind") = Value::Text("invoice".into())
    }));
    assert!(matches!(err, BundleError::UnknownKind(_)), "{err}");
    assert!(err.to_string().contains("\"invoice\""), "{err}");

    let err = refused(&edited(|f| {
        let Value::Array(entries) = field(f, "entries") else {
            unreachable!()
        };
        let Value::Map(e) = &mut entries[0] else {
            unreachable!()
        };
        *field(e, "type") = Value::Text("x509-crl".into());
    }));
    assert!(matches!(err, BundleError::UnknownEntryType { .. }), "{err}");
    assert!(err.to_string().contains("x509-crl"), "{err}");

    let err = refused(&edited(|f| {
        f.push((Value::Text("extra".into()), Value::Bool(true)));
    }));
    assert!(err.to_string().contains("unknown field \"extra\""), "{err}");

    let err = refused(&edited(|f| f.retain(|(k, _)| k.as_text() != Some("id"))));
    assert!(err.to_string().contains("\"id\" is missing"), "{err}");

    let err = refused(&edited(|f| {
        *field(f, "created") = Value::Text("2026-11-25T10:00:00.5Z".into())
    }));
    assert!(err.to_string().contains("canonical form"), "{err}");

    let err = refused(&edited(|f| {
        *field(f, "id") = Value::Text("a\u{1b}[2J".into())
    }));
    assert!(err.to_string().contains("control"), "{err}");
}

#[test]
fn limits_are_enforced_with_their_own_messages() {
    let entries: Vec<_> = (0..5)
        .map(|i| entry(&format!("e{i}"), &[i as u8; 100]))
        .collect();
    let bytes = bundle_of(entries);
    let defaults = Limits::default();

    let err = refused_with(
        &bytes,
        &Limits {
            max_entries: 4,
            ..defaults
        },
    );
    assert!(
        matches!(err, BundleError::TooManyEntries { count: 5, limit: 4 }),
        "{err}"
    );
    assert!(err.to_string().contains("entry-count check"), "{err}");

    let err = refused_with(
        &bytes,
        &Limits {
            max_entry_size: 99,
            ..defaults
        },
    );
    assert!(
        matches!(err, BundleError::EntryTooLarge { length: 100, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("entry-size check"), "{err}");

    let err = refused_with(
        &bytes,
        &Limits {
            max_bundle_size: bytes.len() as u64 - 1,
            ..defaults
        },
    );
    assert!(matches!(err, BundleError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("size check"), "{err}");

    // The builder never makes what a reader with the same limits refuses.
    let mut builder = BundleBuilder::new(BundleKind::Request, confirmed()).limits(Limits {
        max_entries: 1,
        max_entry_size: 3,
        ..defaults
    });
    let err = builder
        .add(EntryType::OpaqueFile, "big", vec![0; 4])
        .unwrap_err();
    assert!(matches!(err, BundleError::EntryTooLarge { .. }), "{err}");
    builder
        .add(EntryType::OpaqueFile, "one", vec![0; 3])
        .unwrap();
    let err = builder
        .add(EntryType::OpaqueFile, "two", vec![0; 3])
        .unwrap_err();
    assert!(matches!(err, BundleError::TooManyEntries { .. }), "{err}");
}

#[test]
fn the_builder_refuses_hostile_names_and_duplicates() {
    let mut builder = BundleBuilder::new(BundleKind::Request, confirmed());
    for name in ["../x", "/etc/passwd", "a/b", "", "a\u{0}b"] {
        let err = builder
            .add(EntryType::OpaqueFile, name, b"x".to_vec())
            .unwrap_err();
        assert!(matches!(err, BundleError::UnsafeEntryName { .. }), "{err}");
    }
    builder
        .add(EntryType::OpaqueFile, "x", b"1".to_vec())
        .unwrap();
    let err = builder
        .add(EntryType::OpaqueFile, "X", b"2".to_vec())
        .unwrap_err();
    assert!(
        matches!(err, BundleError::DuplicateEntryName { .. }),
        "{err}"
    );
    let err = builder
        .add(EntryType::Csr, "req.csr", b"not a csr".to_vec())
        .unwrap_err();
    assert!(
        err.to_string().contains("certificate signing request"),
        "{err}"
    );
}

#[test]
fn lengths_hashes_and_counts_are_checked_against_the_manifest() {
    let entries = vec![entry("a", b"alpha")];
    let m = manifest(&entries);
    let err = refused(&raw_bundle(m.to_bytes(), vec![b"alpha!".to_vec()]));
    assert!(
        matches!(err, BundleError::EntryLengthMismatch { .. }),
        "{err}"
    );
    let err = refused(&raw_bundle(m.to_bytes(), vec![b"alphA".to_vec()]));
    assert!(
        matches!(err, BundleError::EntryHashMismatch { .. }),
        "{err}"
    );
    let err = refused(&raw_bundle(m.to_bytes(), vec![]));
    assert!(
        matches!(err, BundleError::EntryCountMismatch { .. }),
        "{err}"
    );
}

#[test]
fn non_canonical_encodings_are_refused() {
    // The same manifest with its map keys in declaration order instead of canonical order.
    let entries = vec![entry("a", b"alpha")];
    let mut raw = Vec::new();
    ciborium::ser::into_writer(&manifest(&entries).to_value(), &mut raw).unwrap();
    let err = refused(&raw_bundle(raw, vec![b"alpha".to_vec()]));
    assert!(
        matches!(err, BundleError::NotCanonical("manifest")),
        "{err}"
    );

    // A length given in a longer form than needed (0x18 0x05 instead of 0x05).
    let bytes = bundle_of(entries);
    let at = bytes.len() - 6;
    assert_eq!(&bytes[at..at + 1], &[0x45], "a 5-byte string at the end");
    let mut long_form = bytes[..at].to_vec();
    long_form.extend_from_slice(&[0x58, 0x05]);
    long_form.extend_from_slice(b"alpha");
    let err = refused(&long_form);
    assert!(matches!(err, BundleError::NotCanonical("bundle")), "{err}");
}

#[test]
fn unprotected_headers_and_foreign_algorithms_are_refused() {
    use coset::{AsCborValue, CoseSign1, TaggedCborSerializable};
    let entries = vec![entry("a", b"alpha")];
    let mut sign1 = sign_manifest(manifest(&entries).to_bytes(), &key()).unwrap();
    sign1.unprotected.key_id = b"smuggled".to_vec();
    let value = Value::Array(vec![
        Value::Text("rootcellar-bundle".into()),
        Value::Tag(CoseSign1::TAG, Box::new(sign1.to_cbor_value().unwrap())),
        Value::Array(vec![Value::Bytes(b"alpha".to_vec())]),
    ]);
    let err = refused(&canonical_bytes(value));
    assert!(
        err.to_string().contains("unprotected header must be empty"),
        "{err}"
    );
}

#[test]
fn sealed_bundles_open_with_the_right_identity_only() {
    let bytes = bundle_of(vec![entry("a", b"alpha")]);
    let ids: Vec<_> = (0..3).map(|_| age::x25519::Identity::generate()).collect();
    let sealed =
        seal::seal_to_recipients(&bytes, &[ids[0].to_public(), ids[1].to_public()]).unwrap();
    assert!(seal::is_sealed(&sealed));
    assert!(matches!(
        Bundle::decode(&sealed, &Limits::default()),
        Err(BundleError::Sealed)
    ));
    for id in &ids[..2] {
        let opener = seal::Opener::Identities(vec![Box::new(id.clone())]);
        assert_eq!(seal::unseal(&sealed, &opener, 1 << 20).unwrap(), bytes);
    }
    let opener = seal::Opener::Identities(vec![Box::new(ids[2].clone())]);
    let err = seal::unseal(&sealed, &opener, 1 << 20).unwrap_err();
    assert!(matches!(err, BundleError::WrongIdentity), "{err}");
    let err = seal::unseal(&sealed, &opener, 10).unwrap_err();
    assert!(matches!(err, BundleError::WrongIdentity), "{err}");
    let opener = seal::Opener::Identities(vec![Box::new(ids[0].clone())]);
    let err = seal::unseal(&sealed, &opener, 10).unwrap_err();
    assert!(matches!(err, BundleError::TooLarge { .. }), "{err}");
}

#[test]
fn passphrase_sealing_needs_the_same_passphrase() {
    let bytes = bundle_of(vec![entry("a", b"alpha")]);
    let pass = |p: &str| seal::Passphrase::new(zeroize::Zeroizing::new(p.to_string()));
    let sealed = seal::seal_with_passphrase(&bytes, &pass("correct horse")).unwrap();
    let opened = seal::unseal(
        &sealed,
        &seal::Opener::Passphrase(pass("correct horse")),
        1 << 20,
    )
    .unwrap();
    assert_eq!(opened, bytes);
    let err = seal::unseal(&sealed, &seal::Opener::Passphrase(pass("wrong")), 1 << 20).unwrap_err();
    assert!(matches!(err, BundleError::WrongPassphrase), "{err}");
    let id = age::x25519::Identity::generate();
    let err = seal::unseal(
        &sealed,
        &seal::Opener::Identities(vec![Box::new(id)]),
        1 << 20,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("sealed with a passphrase"),
        "{err}"
    );
}

#[test]
fn hostile_sizes_are_refused_before_anything_large_is_built() {
    // A contents array of a million small integers instead of byte strings: refused at its
    // first item, never materialised.
    let mut bytes = bundle_of(vec![]);
    assert_eq!(
        bytes.pop(),
        Some(0x80),
        "an empty contents array ends the bundle"
    );
    bytes.extend_from_slice(&[0x9a, 0x00, 0x0f, 0x42, 0x40]);
    bytes.resize(bytes.len() + 1_000_000, 0);
    let err = refused(&bytes);
    assert!(matches!(err, BundleError::InvalidStructure(_)), "{err}");
    assert!(err.to_string().contains("expected byte"), "{err}");

    // A manifest larger than the entry limit allows is not parsed.
    let big = edited(|f| f.push((Value::Text("padding".into()), Value::Text("x".repeat(6000)))));
    let err = refused_with(
        &big,
        &Limits {
            max_entries: 1,
            ..Limits::default()
        },
    );
    assert!(
        matches!(err, BundleError::ManifestTooLarge { limit: 5120, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("manifest-size check"), "{err}");
}

#[test]
fn the_rehearsal_mark_is_read_back_and_has_one_encoding() {
    let marked = edited(|fields| fields.push((Value::Text("rehearsal".into()), Value::Bool(true))));
    let verified = Bundle::decode(&marked, &Limits::default())
        .unwrap()
        .verify(&pins())
        .unwrap();
    assert!(verified.manifest().rehearsal);
    assert_eq!(verified.bundle().to_bytes(), marked);
    let unmarked = bundle_of(vec![entry("a.txt", b"alpha")]);
    assert!(
        !Bundle::decode(&unmarked, &Limits::default())
            .unwrap()
            .manifest()
            .rehearsal
    );
    // `false` is written by leaving the field out.
    let spelt_out =
        edited(|fields| fields.push((Value::Text("rehearsal".into()), Value::Bool(false))));
    let err = refused(&spelt_out).to_string();
    assert!(
        err.contains("\"rehearsal\" must be true when present"),
        "{err}"
    );
}
