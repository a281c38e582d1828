//! Bundles through the public API: a round trip with every entry type, byte-identical
//! re-serialisation, and tampering of every kind (every byte flipped, every truncation, appended
//! bytes, an unpinned signer) refused with nothing extracted.

use std::path::Path;

use rootcellar::bundle::{
    Bundle, BundleBuilder, BundleError, BundleKind, EntryType, JournalHead, Limits, PinnedKeys,
    SoftwareKey,
};
use rootcellar::journal::{Digest, Journal, Record, Selection};
use rootcellar::keys::Signer;

fn time() -> jiff::Timestamp {
    "2026-11-25T10:00:00Z".parse().unwrap()
}

/// The bundle's time, confirmed as it would be by an appliance whose clock (and build) said
/// exactly that: the bytes compared below are made at a fixed time on any day the test runs.
fn confirmed() -> rootcellar::time::ConfirmedTime {
    let reference = rootcellar::time::Reference {
        clock: time(),
        build_time: time(),
        latest_record: None,
        policy: rootcellar::time::TimePolicy::default(),
    };
    match rootcellar::time::check(time(), &reference).unwrap() {
        rootcellar::time::Checked::Confirmed(t) => t,
        rootcellar::time::Checked::FarFromClock(_) => unreachable!("the clock is the time"),
    }
}

/// A software key with a self-signed certificate, both made by rcgen (independent of the
/// bundle code).
struct Requester {
    key: SoftwareKey,
    cert_pem: String,
    csr_pem: String,
}

fn requester() -> Requester {
    let pair = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["requester.example".into()]).unwrap();
    let csr_pem = params.serialize_request(&pair).unwrap().pem().unwrap();
    let cert_pem = params.self_signed(&pair).unwrap().pem();
    let key = SoftwareKey::from_pem(&pair.serialize_pem(), "test:requester").unwrap();
    Requester {
        key,
        cert_pem,
        csr_pem,
    }
}

fn pins_of(key: &dyn Signer) -> PinnedKeys {
    PinnedKeys::new(vec![key.public_key().clone()])
}

/// A journal segment and its head, from a real journal.
fn segment() -> (Vec<u8>, JournalHead) {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    for action in ["key.generate", "x509.root", "tuf.init"] {
        journal
            .append(
                Record::new(confirmed(), "alice", action)
                    .ceremony("test")
                    .output(Digest::of("out", action.as_bytes())),
            )
            .unwrap();
    }
    let segment = journal.export(&Selection::All).unwrap();
    let head = segment.journal_head();
    (
        segment.to_json(),
        JournalHead {
            seq: head.seq,
            sha256: head.hash,
        },
    )
}

/// Every entry type once, with contents that pass the producer's checks.
fn every_entry(r: &Requester) -> Vec<(EntryType, &'static str, Vec<u8>)> {
    let (segment, _) = segment();
    vec![
        (EntryType::Csr, "fulcio.csr", r.csr_pem.clone().into_bytes()),
        (
            EntryType::PublicKey,
            "rekor.pub",
            r.key.public_key().spki_pem().into_bytes(),
        ),
        (
            EntryType::TufMetadata,
            "1.root.json",
            br#"{"signed":{"_type":"root"},"signatures":[]}"#.to_vec(),
        ),
        (
            EntryType::Certificate,
            "tsa-chain.pem",
            r.cert_pem.clone().into_bytes(),
        ),
        (
            EntryType::TrustedRoot,
            "trusted_root.json",
            br#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#
                .to_vec(),
        ),
        (
            EntryType::Transcript,
            "transcript.txt",
            b"#1 key.generate by alice\n".to_vec(),
        ),
        (EntryType::JournalSegment, "journal-segment.json", segment),
        (EntryType::OpaqueFile, "notes.bin", vec![0, 1, 2, 255]),
    ]
}

fn build(
    signer: &dyn Signer,
    entries: &[(EntryType, &'static str, Vec<u8>)],
    head: Option<JournalHead>,
) -> Vec<u8> {
    let mut builder = BundleBuilder::new(BundleKind::Response, confirmed())
        .id("0123456789abcdef0123456789abcdef")
        .ceremony("test");
    if let Some(head) = head {
        builder = builder.journal_head(head);
    }
    for (entry_type, name, data) in entries {
        builder.add(*entry_type, name, data.clone()).unwrap();
    }
    builder.sign(signer).unwrap()
}

#[test]
fn round_trip_with_every_entry_type_and_byte_identical_reserialisation() {
    let r = requester();
    let entries = every_entry(&r);
    let (_, head) = segment();
    let bytes = build(&r.key, &entries, Some(head));

    let bundle = Bundle::decode(&bytes, &Limits::default()).unwrap();
    assert_eq!(
        bundle.to_bytes(),
        bytes,
        "re-serialisation is byte-identical"
    );
    assert_eq!(bundle.signature_algorithm(), "ES256");
    assert_eq!(bundle.signer_key_id(), r.key.public_key().fingerprint());
    let manifest = bundle.manifest().clone();
    assert_eq!(manifest.kind, BundleKind::Response);
    assert_eq!(manifest.ceremony.as_deref(), Some("test"));
    assert_eq!(manifest.journal_head, Some(head));
    assert_eq!(manifest.created, time());
    let mut types: Vec<_> = manifest.entries.iter().map(|e| e.entry_type).collect();
    types.sort_by_key(|t| t.name());
    let mut all = EntryType::ALL.to_vec();
    all.sort_by_key(|t| t.name());
    assert_eq!(types, all, "every entry type is carried");
    let names: Vec<_> = manifest.entries.iter().map(|e| e.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are sorted by name");

    let verified = bundle.verify(&pins_of(&r.key)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("extracted");
    let written = verified.extract(&out).unwrap();
    assert_eq!(written.len(), entries.len());
    for (_, name, data) in &entries {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), data, "{name}");
        assert_eq!(verified.entry(name), Some(data.as_slice()));
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary directory is left behind");

    // Extraction never overwrites, not even an empty directory.
    let err = verified.extract(&out).unwrap_err();
    assert!(matches!(err, BundleError::TargetExists(_)), "{err}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = verified.extract(&empty).unwrap_err();
    assert!(matches!(err, BundleError::TargetExists(_)), "{err}");
}

#[test]
fn serialisation_is_deterministic() {
    let r = requester();
    let entries = every_entry(&r);
    let mut reversed = entries.clone();
    reversed.reverse();
    // RFC 6979 signatures are deterministic, so whole files compare equal.
    let a = build(&r.key, &entries, None);
    let b = build(&r.key, &reversed, None);
    assert_eq!(
        a, b,
        "the same content gives the same bytes, whatever the order added"
    );
}

#[test]
fn p384_keys_sign_es384() {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let key = SoftwareKey::from_pem(&pair.serialize_pem(), "test:p384").unwrap();
    let bytes = build(&key, &[(EntryType::OpaqueFile, "x", b"x".to_vec())], None);
    let bundle = Bundle::decode(&bytes, &Limits::default()).unwrap();
    assert_eq!(bundle.signature_algorithm(), "ES384");
    bundle.verify(&pins_of(&key)).unwrap();
}

#[test]
fn a_certificate_pins_its_key() {
    let r = requester();
    let bytes = build(&r.key, &[(EntryType::OpaqueFile, "x", b"x".to_vec())], None);
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("signer.pem");
    std::fs::write(&cert, &r.cert_pem).unwrap();
    let pins = PinnedKeys::from_files(&[cert]).unwrap();
    Bundle::decode(&bytes, &Limits::default())
        .unwrap()
        .verify(&pins)
        .unwrap();
}

/// Decodes, verifies and extracts into a fresh directory; returns the error and asserts that
/// nothing at all was written.
fn refused(bytes: &[u8], pins: &PinnedKeys, dir: &Path) -> BundleError {
    let out = dir.join("out");
    let result = Bundle::decode(bytes, &Limits::default())
        .and_then(|b| b.verify(pins))
        .and_then(|v| v.extract(&out));
    let err = result.expect_err("a tampered bundle was accepted");
    assert!(
        std::fs::read_dir(dir).unwrap().next().is_none(),
        "something was written for a refused bundle ({err})"
    );
    err
}

#[test]
fn every_single_byte_flip_is_refused_and_nothing_extracted() {
    let r = requester();
    let entries = every_entry(&r);
    let bytes = build(&r.key, &entries, None);
    assert!(
        (2048..8192).contains(&bytes.len()),
        "a bundle of a few KiB ({} bytes)",
        bytes.len()
    );
    let pins = pins_of(&r.key);
    let dir = tempfile::tempdir().unwrap();
    let mut checks = std::collections::BTreeMap::<String, usize>::new();
    for position in 0..bytes.len() {
        for mask in [0xff, 0x01] {
            let mut tampered = bytes.clone();
            tampered[position] ^= mask;
            let err = refused(&tampered, &pins, dir.path());
            let check = err.to_string();
            let check = check.split(" check").next().unwrap_or_default().to_string();
            *checks.entry(check).or_default() += 1;
        }
    }
    // The refusals are spread over the checks, the signature among them.
    eprintln!("refusals by check: {checks:?}");
    assert!(checks.contains_key("signature"), "{checks:?}");
    assert!(checks.contains_key("hash"), "{checks:?}");
}

#[test]
fn every_truncation_is_refused() {
    let r = requester();
    let bytes = build(&r.key, &every_entry(&r)[..3], None);
    let pins = pins_of(&r.key);
    let dir = tempfile::tempdir().unwrap();
    for len in 0..bytes.len() {
        let err = refused(&bytes[..len], &pins, dir.path());
        if len > 0 {
            assert!(matches!(err, BundleError::Truncated), "at {len}: {err}");
        }
    }
}

#[test]
fn appended_bytes_are_refused() {
    let r = requester();
    let bytes = build(&r.key, &every_entry(&r)[..2], None);
    let pins = pins_of(&r.key);
    let dir = tempfile::tempdir().unwrap();
    for tail in [&b"\0"[..], b"\n", b"rootcellar", &bytes] {
        let mut longer = bytes.clone();
        longer.extend_from_slice(tail);
        let err = refused(&longer, &pins, dir.path());
        assert!(
            matches!(err, BundleError::TrailingBytes { count } if count == tail.len()),
            "{err}"
        );
        assert!(err.to_string().contains("trailing-data check"), "{err}");
    }
}

#[test]
fn a_bundle_signed_by_an_unpinned_key_is_refused() {
    let trusted = requester();
    let intruder = requester();
    let bytes = build(&intruder.key, &every_entry(&intruder)[..2], None);
    let dir = tempfile::tempdir().unwrap();
    let err = refused(&bytes, &pins_of(&trusted.key), dir.path());
    assert!(matches!(err, BundleError::UnpinnedSigner { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&intruder.key.public_key().fingerprint()),
        "{err}"
    );
    let err = refused(&bytes, &PinnedKeys::default(), dir.path());
    assert!(matches!(err, BundleError::NoPinnedKey), "{err}");
}

#[test]
fn random_files_are_not_bundles() {
    let dir = tempfile::tempdir().unwrap();
    let pins = pins_of(&requester().key);
    for junk in [&b""[..], b"hello", b"\x83\x61x", &[0xff; 64]] {
        let err = refused(junk, &pins, dir.path());
        assert!(matches!(err, BundleError::NotABundle(_)), "{junk:?}: {err}");
    }
}
