//! The verifier against repositories built in memory with software keys: a good one, and one
//! for each thing that must be refused, each refused with the error that names it.

use std::collections::BTreeMap;

use p256::ecdsa::signature::Signer as _;
use serde_json::{json, Value};

use super::*;
use crate::keys::{KeyAlgorithm, KeyError, Signer};
use crate::tuf::metadata::{sha256_hex, TufKey};

struct Soft {
    key: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl Signer for Soft {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let sig: p256::ecdsa::Signature = self.key.sign(message);
        Ok(sig.to_der().as_bytes().to_vec())
    }
    fn key_uri(&self) -> String {
        "soft:test".into()
    }
}

fn soft(seed: u8) -> Soft {
    let key = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
    let point = key.verifying_key().to_encoded_point(false);
    let public = PublicKey::from_point(KeyAlgorithm::EcdsaP256, point.as_bytes()).unwrap();
    Soft { key, public }
}

fn id(key: &Soft) -> String {
    TufKey::from_public(&key.public).unwrap().key_id
}

#[derive(Default)]
struct Memory(BTreeMap<String, Vec<u8>>);

impl RepositorySource for Memory {
    fn read(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
        match self.0.get(path) {
            Some(b) if b.len() as u64 > limit => Err(ReadError::TooLarge),
            other => Ok(other.cloned()),
        }
    }
}

const FUTURE: &str = "2030-01-01T00:00:00Z";
const AT: &str = "2027-01-01T00:00:00Z";

struct Keys {
    custodians: Vec<Soft>,
    targets: Soft,
    snapshot: Soft,
    timestamp: Soft,
}

fn keys() -> Keys {
    Keys {
        custodians: (1..=5).map(soft).collect(),
        targets: soft(20),
        snapshot: soft(21),
        timestamp: soft(22),
    }
}

fn root(version: u64, root_keys: &[&Soft], threshold: u64, expires: &str, k: &Keys) -> Value {
    let mut table = serde_json::Map::new();
    let mut ids = |set: &[&Soft]| -> Vec<String> {
        set.iter()
            .map(|s| {
                let t = TufKey::from_public(&s.public).unwrap();
                table.insert(t.key_id.clone(), t.json);
                t.key_id
            })
            .collect()
    };
    let root_ids = ids(root_keys);
    let targets = ids(&[&k.targets]);
    let snapshot = ids(&[&k.snapshot]);
    let timestamp = ids(&[&k.timestamp]);
    json!({
        "_type": "root", "spec_version": "1.0.0", "consistent_snapshot": true,
        "version": version, "expires": expires, "keys": table,
        "roles": {
            "root": {"keyids": root_ids, "threshold": threshold},
            "targets": {"keyids": targets, "threshold": 1},
            "snapshot": {"keyids": snapshot, "threshold": 1},
            "timestamp": {"keyids": timestamp, "threshold": 1},
        },
    })
}

fn signed(payload: Value, signers: &[&Soft]) -> Vec<u8> {
    let mut md = SignedMetadata::new(payload).unwrap();
    for s in signers {
        md.sign_with(*s).unwrap();
    }
    md.to_bytes()
}

fn meta(version: u64, bytes: &[u8]) -> Value {
    json!({"version": version, "length": bytes.len(), "hashes": {"sha256": sha256_hex(bytes)}})
}

const TARGET: &[u8] = b"{\"mediaType\": \"trusted root\"}";

/// Writes targets (listing `TARGET`), snapshot and timestamp for the given versions.
fn top(repo: &mut Memory, k: &Keys, targets_version: u64, listed: u64, ts_expires: &str) {
    let hash = sha256_hex(TARGET);
    repo.0
        .insert(format!("targets/{hash}.trusted_root.json"), TARGET.to_vec());
    let targets = signed(
        json!({"_type": "targets", "spec_version": "1.0.0", "version": targets_version,
               "expires": FUTURE, "targets": {"trusted_root.json": {
                   "length": TARGET.len(), "hashes": {"sha256": hash}, "custom": {"a": 1}}}}),
        &[&k.targets],
    );
    repo.0
        .insert(format!("metadata/{listed}.targets.json"), targets.clone());
    let snapshot = signed(
        json!({"_type": "snapshot", "spec_version": "1.0.0", "version": 1, "expires": FUTURE,
               "meta": {"targets.json": {"version": listed}}}),
        &[&k.snapshot],
    );
    repo.0
        .insert("metadata/1.snapshot.json".into(), snapshot.clone());
    let timestamp = signed(
        json!({"_type": "timestamp", "spec_version": "1.0.0", "version": 1, "expires": ts_expires,
               "meta": {"snapshot.json": meta(1, &snapshot)}}),
        &[&k.timestamp],
    );
    repo.0.insert("metadata/timestamp.json".into(), timestamp);
}

/// v1: 2 of {c1,c2,c3}; v2: c3 replaced by c4 (c1, c2, c4 sign); v3: 3 of {c1,c2,c4,c5}
/// (c1, c2, c5 sign).
fn good() -> (Vec<u8>, Memory, Keys) {
    let k = keys();
    let c = &k.custodians;
    let mut repo = Memory::default();
    let v1 = signed(
        root(1, &[&c[0], &c[1], &c[2]], 2, FUTURE, &k),
        &[&c[0], &c[1], &c[2]],
    );
    repo.0.insert("metadata/1.root.json".into(), v1.clone());
    let v2 = signed(
        root(2, &[&c[0], &c[1], &c[3]], 2, FUTURE, &k),
        &[&c[0], &c[1], &c[3]],
    );
    repo.0.insert("metadata/2.root.json".into(), v2);
    let v3 = signed(
        root(3, &[&c[0], &c[1], &c[3], &c[4]], 3, FUTURE, &k),
        &[&c[0], &c[1], &c[4]],
    );
    repo.0.insert("metadata/3.root.json".into(), v3);
    top(&mut repo, &k, 1, 1, FUTURE);
    (v1, repo, k)
}

fn at() -> VerifyOptions {
    VerifyOptions::at(AT.parse().unwrap())
}

fn refused(trusted: &[u8], repo: &Memory) -> VerifyError {
    verify_source(trusted, repo, &at()).unwrap_err()
}

#[test]
fn a_good_chain_verifies_with_its_report() {
    let (trusted, repo, k) = good();
    let report = verify_source(&trusted, &repo, &at()).unwrap();
    assert_eq!(report.trusted_root_version, 1);
    assert_eq!(report.root_version(), 3);
    assert_eq!(report.role(Role::Root).signed_by.len(), 3);
    assert_eq!(report.role(Role::Targets).signed_by, [id(&k.targets)]);
    assert_eq!(report.targets.len(), 1);
    assert_eq!(report.targets[0].custom, Some(json!({"a": 1})));
    assert_eq!(report.targets[0].hashes["sha256"], sha256_hex(TARGET));
    assert_eq!(&report.root_bytes, &repo.0["metadata/3.root.json"]);
    assert_eq!(report.to_json()["root_version"], 3);
}

#[test]
fn the_trusted_root_must_meet_its_own_threshold() {
    let k = keys();
    let c = &k.custodians;
    let v1 = signed(root(1, &[&c[0], &c[1], &c[2]], 2, FUTURE, &k), &[&c[0]]);
    let err = refused(&v1, &Memory::default());
    assert!(
        matches!(&err, VerifyError::ThresholdNotMet { signers: Signers::Itself, count, .. } if count.valid.len() == 1),
        "{err}"
    );
}

#[test]
fn rollback_and_skipped_versions_are_named() {
    let (trusted, mut repo, _) = good();
    let v2 = repo.0["metadata/2.root.json"].clone();
    repo.0.insert("metadata/3.root.json".into(), v2);
    let err = refused(&trusted, &repo);
    assert_eq!(
        err,
        VerifyError::RootVersion {
            file: "metadata/3.root.json".into(),
            expected: 3,
            found: 2
        }
    );
    assert!(err.to_string().contains("rollback"), "{err}");

    let (trusted, mut repo, _) = good();
    let v3 = repo.0.remove("metadata/3.root.json").unwrap();
    repo.0.insert("metadata/2.root.json".into(), v3);
    let err = refused(&trusted, &repo);
    assert!(
        matches!(
            err,
            VerifyError::RootVersion {
                expected: 2,
                found: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("skipped"), "{err}");
}

#[test]
fn both_thresholds_are_required_at_every_step() {
    let (trusted, mut repo, k) = good();
    let c = &k.custodians;
    // v4 signed by its own keys only: one of v3's root keys (c1) is among them.
    let v4 = signed(
        root(4, &[&c[0], &c[2], &soft(9)], 2, FUTURE, &k),
        &[&c[0], &c[2], &soft(9)],
    );
    repo.0.insert("metadata/4.root.json".into(), v4);
    let err = refused(&trusted, &repo);
    match &err {
        VerifyError::ThresholdNotMet {
            role: Role::Root,
            version: 4,
            signers: Signers::Root(3),
            count,
            ..
        } => {
            assert_eq!(count.threshold, 3);
            assert_eq!(count.valid, [id(&c[0])]);
            assert_eq!(count.foreign.len(), 2);
        }
        other => panic!("{other}"),
    }

    // v4 signed by v3's threshold, but not its own (3 of {c1,c2,c3}, only c1 and c2).
    let (trusted, mut repo, k) = good();
    let c = &k.custodians;
    let v4 = signed(
        root(4, &[&c[0], &c[1], &c[2]], 3, FUTURE, &k),
        &[&c[0], &c[1], &c[4]],
    );
    repo.0.insert("metadata/4.root.json".into(), v4);
    let err = refused(&trusted, &repo);
    assert!(
        matches!(&err, VerifyError::ThresholdNotMet { signers: Signers::Itself, version: 4, count, .. } if count.unsigned == [id(&c[2])]),
        "{err}"
    );
}

#[test]
fn a_forged_signature_counts_for_nothing() {
    let (trusted, mut repo, k) = good();
    let c = &k.custodians;
    let mut v4 =
        SignedMetadata::new(root(4, &[&c[0], &c[1], &c[3], &c[4]], 3, FUTURE, &k)).unwrap();
    for s in [&c[0], &c[1]] {
        v4.sign_with(s).unwrap();
    }
    // c5's key id, but a signature by another key.
    let other = soft(77).sign(v4.canonical_signed()).unwrap();
    v4.add_signature(&id(&c[4]), &other);
    repo.0.insert("metadata/4.root.json".into(), v4.to_bytes());
    let err = refused(&trusted, &repo);
    assert!(
        matches!(&err, VerifyError::ThresholdNotMet { signers: Signers::Root(3), count, .. } if count.valid.len() == 2),
        "{err}"
    );
}

#[test]
fn keys_of_other_types_count_for_nothing() {
    let k = keys();
    let c = &k.custodians;
    let mut payload = root(1, &[&c[0], &c[1]], 2, FUTURE, &k);
    let c2 = id(&c[1]);
    payload["keys"][&c2]["keytype"] = json!("ed25519");
    payload["keys"][&c2]["scheme"] = json!("ed25519");
    let v1 = signed(payload, &[&c[0], &c[1]]);
    let err = refused(&v1, &Memory::default());
    assert!(
        matches!(&err, VerifyError::ThresholdNotMet { count, .. } if count.unsigned == std::slice::from_ref(&c2)),
        "{err}"
    );
}

#[test]
fn the_final_root_must_not_have_expired_but_intermediate_ones_may() {
    let (trusted, mut repo, k) = good();
    let c = &k.custodians;
    let past = "2026-01-01T00:00:00Z";
    let v4 = signed(
        root(4, &[&c[0], &c[1], &c[3], &c[4]], 3, past, &k),
        &[&c[0], &c[1], &c[4]],
    );
    repo.0.insert("metadata/4.root.json".into(), v4);
    let err = refused(&trusted, &repo);
    assert!(
        matches!(
            err,
            VerifyError::Expired {
                role: Role::Root,
                version: 4,
                ..
            }
        ),
        "{err}"
    );
    let v5 = signed(
        root(5, &[&c[0], &c[1], &c[3], &c[4]], 3, FUTURE, &k),
        &[&c[0], &c[1], &c[4]],
    );
    repo.0.insert("metadata/5.root.json".into(), v5);
    assert_eq!(
        verify_source(&trusted, &repo, &at())
            .unwrap()
            .root_version(),
        5
    );
}

#[test]
fn an_expired_timestamp_is_refused_at_the_time_given() {
    let (trusted, mut repo, k) = good();
    top(&mut repo, &k, 1, 1, "2026-06-01T00:00:00Z");
    let err = refused(&trusted, &repo);
    assert!(
        matches!(
            err,
            VerifyError::Expired {
                role: Role::Timestamp,
                ..
            }
        ),
        "{err}"
    );
    let earlier = VerifyOptions::at("2026-05-01T00:00:00Z".parse().unwrap());
    verify_source(&trusted, &repo, &earlier).unwrap();
}

#[test]
fn mix_and_match_and_hash_mismatches_are_refused() {
    // The snapshot lists targets v2; the file for v2 holds v1.
    let (trusted, mut repo, k) = good();
    top(&mut repo, &k, 1, 2, FUTURE);
    let err = refused(&trusted, &repo);
    assert_eq!(
        err,
        VerifyError::VersionMismatch {
            file: "metadata/2.targets.json".into(),
            role: Role::Targets,
            parent: Role::Snapshot,
            expected: 2,
            found: 1
        }
    );

    // The snapshot differs from the hash the timestamp lists.
    let (trusted, mut repo, _) = good();
    let snapshot = repo.0.get_mut("metadata/1.snapshot.json").unwrap();
    let at = snapshot.len() - 2;
    snapshot.insert(at, b' ');
    let err = refused(&trusted, &repo);
    assert!(
        matches!(
            err,
            VerifyError::LengthMismatch {
                parent: Role::Timestamp,
                ..
            }
        ),
        "{err}"
    );

    // A target's bytes differ from its hash.
    let (trusted, mut repo, _) = good();
    let path = format!("targets/{}.trusted_root.json", sha256_hex(TARGET));
    repo.0.get_mut(&path).unwrap()[0] = b'[';
    let err = refused(&trusted, &repo);
    assert!(
        matches!(&err, VerifyError::HashMismatch { file, parent: Role::Targets, .. } if file == &path),
        "{err}"
    );

    // A target file that is missing.
    let (trusted, mut repo, _) = good();
    repo.0.remove(&path);
    assert!(matches!(
        refused(&trusted, &repo),
        VerifyError::Missing { .. }
    ));
}

#[test]
fn a_signature_from_a_key_not_in_the_role_is_refused() {
    let (trusted, mut repo, k) = good();
    let ts = SignedMetadata::from_slice(&repo.0["metadata/timestamp.json"]).unwrap();
    let forged = signed(ts.signed().clone(), &[&k.snapshot]);
    repo.0.insert("metadata/timestamp.json".into(), forged);
    let err = refused(&trusted, &repo);
    assert!(
        matches!(&err, VerifyError::ThresholdNotMet { role: Role::Timestamp, count, .. }
            if count.valid.is_empty() && count.foreign == [id(&k.snapshot)]),
        "{err}"
    );
}

#[test]
fn malformed_metadata_and_unsafe_names_are_refused() {
    let (trusted, mut repo, _) = good();
    let dup = br#"{"signed": {"_type": "root"}, "signatures": [{"keyid": "a", "sig": "00"}, {"keyid": "a", "sig": "00"}]}"#;
    repo.0.insert("metadata/2.root.json".into(), dup.to_vec());
    assert!(matches!(
        refused(&trusted, &repo),
        VerifyError::Malformed {
            role: Role::Root,
            ..
        }
    ));

    let (trusted, mut repo, k) = good();
    let ts = SignedMetadata::from_slice(&repo.0["metadata/timestamp.json"]).unwrap();
    let mut payload = ts.signed().clone();
    payload["expires"] = json!("2030-01-01T00:00:00.5Z");
    repo.0.insert(
        "metadata/timestamp.json".into(),
        signed(payload, &[&k.timestamp]),
    );
    assert!(matches!(
        refused(&trusted, &repo),
        VerifyError::Malformed {
            role: Role::Timestamp,
            ..
        }
    ));

    let (trusted, mut repo, k) = good();
    let ts = SignedMetadata::from_slice(&repo.0["metadata/timestamp.json"]).unwrap();
    repo.0.insert(
        "metadata/timestamp.json".into(),
        signed(ts.signed().clone(), &[&k.timestamp]),
    );
    let targets = signed(
        json!({"_type": "targets", "spec_version": "1.0.0", "version": 1, "expires": FUTURE,
               "targets": {"../../etc/passwd": {"length": 1, "hashes": {"sha256": "00"}}}}),
        &[&k.targets],
    );
    repo.0.insert("metadata/1.targets.json".into(), targets);
    assert!(matches!(
        refused(&trusted, &repo),
        VerifyError::UnsafeTargetName { .. }
    ));
}

#[test]
fn a_target_hash_that_is_not_hex_is_refused_before_it_names_a_path() {
    // Found by the tuf_verify fuzzer: under consistent snapshots a listed hash names the file
    // asked for (`targets/<hash>.<name>`), and "/2659…" or "../../x" made the client ask for
    // paths outside the targets directory.
    for hash in [
        format!("/{}", sha256_hex(TARGET)),
        "../../../etc/passwd".to_string(),
        String::new(),
    ] {
        let (trusted, mut repo, k) = good();
        let targets = signed(
            json!({"_type": "targets", "spec_version": "1.0.0", "version": 1, "expires": FUTURE,
                   "targets": {"trusted_root.json": {
                       "length": TARGET.len(), "hashes": {"sha256": hash}}}}),
            &[&k.targets],
        );
        repo.0.insert("metadata/1.targets.json".into(), targets);
        let err = refused(&trusted, &repo);
        assert!(
            matches!(
                &err,
                VerifyError::MalformedTargetHash { name, algorithm, .. }
                    if name == "trusted_root.json" && algorithm == "sha256"
            ),
            "{hash:?}: {err}"
        );
    }
}

#[test]
fn nothing_past_the_first_absent_root_counts() {
    // Roots are read ahead in batches: a file after the end of the chain (here junk, and a
    // copy of v3 under a later number) may be read, but must neither fail nor extend the walk.
    let (trusted, mut repo, _) = good();
    repo.0
        .insert("metadata/5.root.json".into(), b"not json".to_vec());
    let v3 = repo.0["metadata/3.root.json"].clone();
    repo.0.insert("metadata/6.root.json".into(), v3);
    let verified = verify_source(&trusted, &repo, &at()).unwrap();
    assert_eq!(verified.root_version(), 3);
}

#[test]
fn the_walk_stops_at_the_rotation_limit() {
    let (trusted, repo, _) = good();
    let options = VerifyOptions {
        max_root_rotations: 1,
        ..at()
    };
    assert_eq!(
        verify_source(&trusted, &repo, &options).unwrap_err(),
        VerifyError::TooManyRoots { limit: 1 }
    );
}

#[test]
fn aws_lc_and_p256_give_the_same_answers() {
    let key = soft(33);
    let verifying = VerifyingKey::new(key.public.clone()).unwrap();
    for n in 0..20u8 {
        let message = vec![n; 40 + usize::from(n)];
        let der = key.sign(&message).unwrap();
        assert!(verifying.verify(&message, &der) && key.public.verify(&message, &der));
        let mut other = message.clone();
        other[0] ^= 1;
        assert!(!verifying.verify(&other, &der) && !key.public.verify(&other, &der));
        let mut bad = der.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            verifying.verify(&message, &bad),
            key.public.verify(&message, &bad)
        );
        // Raw r||s is not DER: both refuse it.
        let raw = p256::ecdsa::Signature::from_der(&der).unwrap().to_bytes();
        assert!(!verifying.verify(&message, &raw) && !key.public.verify(&message, &raw));
    }
    assert!(!soft(34).public.verify(b"m", &key.sign(b"m").unwrap()));
}

#[test]
fn a_long_chain_is_checked_in_order_across_batches() {
    let k = keys();
    let c = &k.custodians;
    let set = [&c[0], &c[1], &c[2]];
    let mut repo = Memory::default();
    let trusted = signed(root(1, &set, 2, FUTURE, &k), &set);
    for version in 2..=70 {
        let signers: &[&Soft] = if version == 66 {
            &[&c[0]]
        } else {
            &[&c[0], &c[1]]
        };
        let bytes = signed(root(version, &set, 2, FUTURE, &k), signers);
        repo.0
            .insert(format!("metadata/{version}.root.json"), bytes);
    }
    repo.0
        .insert("metadata/69.root.json".into(), b"not json".to_vec());
    top(&mut repo, &k, 1, 1, FUTURE);
    let err = refused(&trusted, &repo);
    assert!(
        matches!(
            &err,
            VerifyError::ThresholdNotMet {
                version: 66,
                signers: Signers::Root(65),
                ..
            }
        ),
        "{err}"
    );

    let bytes = signed(root(66, &set, 2, FUTURE, &k), &[&c[1], &c[2]]);
    repo.0.insert("metadata/66.root.json".into(), bytes);
    let err = refused(&trusted, &repo);
    assert!(
        matches!(&err, VerifyError::Malformed { file, .. } if file == "metadata/69.root.json"),
        "{err}"
    );

    let bytes = signed(root(69, &set, 2, FUTURE, &k), &set);
    repo.0.insert("metadata/69.root.json".into(), bytes);
    let report = verify_source(&trusted, &repo, &at()).unwrap();
    assert_eq!(report.root_version(), 70);
}

#[test]
fn one_key_under_two_ids_is_refused_not_counted_twice() {
    // Root v4 lists custodian 1's key a second time under a made-up id and sets the threshold
    // to 3; custodian 1 signs under both ids and custodian 2 once: three signatures, two keys.
    // (python-tuf counts it as 3 of 3; a threshold counts keys.)
    let (trusted, mut repo, k) = good();
    let c = &k.custodians;
    let mut payload = root(4, &[&c[0], &c[1], &c[3]], 3, FUTURE, &k);
    let twin = "f".repeat(64);
    payload["keys"][&twin] = payload["keys"][&id(&c[0])].clone();
    payload["roles"]["root"]["keyids"]
        .as_array_mut()
        .unwrap()
        .push(json!(twin));
    let mut v4 = SignedMetadata::new(payload).unwrap();
    for s in [&c[0], &c[1], &c[3]] {
        v4.sign_with(s).unwrap();
    }
    let again = c[0].sign(v4.canonical_signed()).unwrap();
    v4.add_signature(&twin, &again);
    repo.0.insert("metadata/4.root.json".into(), v4.to_bytes());
    let err = refused(&trusted, &repo);
    assert!(
        matches!(&err, VerifyError::Malformed { file, reason, .. }
            if file == "metadata/4.root.json"
                && reason.contains("one public key under two key ids")
                && reason.contains(&twin)),
        "{err}"
    );
    // The same root as the trusted root is refused too.
    let err = refused(&repo.0["metadata/4.root.json"].clone(), &Memory::default());
    assert!(matches!(&err, VerifyError::Malformed { .. }), "{err}");
}

#[test]
fn a_key_id_that_names_another_key_than_before_is_refused() {
    // Root v4 keeps custodian 5's key id but gives it another key, whose holder signs under
    // that id; the other custodians' signatures meet both thresholds.
    let (trusted, mut repo, k) = good();
    let c = &k.custodians;
    let impostor = soft(78);
    let mut payload = root(4, &[&c[0], &c[1], &c[3], &c[4]], 3, FUTURE, &k);
    payload["keys"][&id(&c[4])] = TufKey::from_public(&impostor.public).unwrap().json;
    let mut v4 = SignedMetadata::new(payload).unwrap();
    for s in [&c[0], &c[1], &c[3]] {
        v4.sign_with(s).unwrap();
    }
    let by_impostor = impostor.sign(v4.canonical_signed()).unwrap();
    v4.add_signature(&id(&c[4]), &by_impostor);
    repo.0.insert("metadata/4.root.json".into(), v4.to_bytes());
    let err = refused(&trusted, &repo);
    assert!(
        matches!(&err, VerifyError::Malformed { file, reason, .. }
            if file == "metadata/4.root.json"
                && reason.contains(&format!("key id {} names another key than it did in root v3", id(&c[4])))),
        "{err}"
    );
}

#[test]
fn a_rotation_replacing_one_key_costs_threshold_verifications() {
    // 3 of 5; root v2 replaces c1 by c6. The outgoing c1 signs too, and comes first in v1's key
    // order: the old threshold is met with the kept keys c2, c3, c4, whose checks count again
    // for v2's threshold, so c1's and c6's signatures are never verified.
    let k = keys();
    let c = &k.custodians;
    let c6 = soft(6);
    let mut cache = KeyCache::default();
    let v1 = root(1, &[&c[0], &c[1], &c[2], &c[3], &c[4]], 3, FUTURE, &k);
    let v1 = parse_root(
        "1.root.json",
        &signed(v1, &[&c[0], &c[1], &c[2]]),
        &mut cache,
    )
    .unwrap();
    let v2 = root(2, &[&c6, &c[1], &c[2], &c[3], &c[4]], 3, FUTURE, &k);
    let v2 = signed(v2, &[&c[0], &c[1], &c[2], &c[3], &c6]);
    let v2 = parse_root("2.root.json", &v2, &mut cache).unwrap();
    let (old, own, verified) = rotation_tallies(&v1, &v2);
    assert!(old.met() && own.met());
    assert_eq!(old.valid, [id(&c[1]), id(&c[2]), id(&c[3])]);
    assert_eq!(own.valid, [id(&c[1]), id(&c[2]), id(&c[3])]);
    assert_eq!(verified, 3);

    // Signatures in another order in the file: the same three checks.
    let v2 = root(2, &[&c6, &c[1], &c[2], &c[3], &c[4]], 3, FUTURE, &k);
    let v2 = signed(v2, &[&c[0], &c[1], &c[4], &c6, &c[2]]);
    let v2 = parse_root("2.root.json", &v2, &mut cache).unwrap();
    let (old, own, verified) = rotation_tallies(&v1, &v2);
    assert!(old.met() && own.met(), "{old:?} {own:?}");
    assert_eq!(verified, 3);
    let v2 = root(2, &[&c6, &c[1], &c[2], &c[3], &c[4]], 3, FUTURE, &k);
    let v2 = signed(v2, &[&c[0], &c[1], &c6, &c[4]]);
    let v2 = parse_root("2.root.json", &v2, &mut cache).unwrap();
    let (old, own, verified) = rotation_tallies(&v1, &v2);
    // Only two kept keys sign: old counts c2 and c5, then c1; new counts c2 and c5 again, then
    // c6. Four checks, each key once.
    assert!(old.met() && own.met(), "{old:?} {own:?}");
    assert_eq!(verified, 4);
}

#[test]
fn walking_many_rotations_keeps_only_the_keys_still_in_use() {
    // 150 rotations (more than two batches), each replacing one of five root keys: 155 root
    // keys were seen, the cache ends with the final root's five and its three online keys.
    let k = keys();
    let mut root_keys: Vec<Soft> = (1..=5).map(soft).collect();
    let mut repo = Memory::default();
    let v1 = root(1, &root_keys.iter().collect::<Vec<_>>(), 3, FUTURE, &k);
    let trusted_bytes = signed(v1, &root_keys.iter().collect::<Vec<_>>());
    for version in 2..=151u64 {
        let replaced = version as usize % 5;
        // Seeds 30..: distinct from the online keys' 20..22.
        root_keys[replaced] = soft(28 + version as u8);
        let listed: Vec<&Soft> = root_keys.iter().collect();
        let payload = root(version, &listed, 3, FUTURE, &k);
        repo.0.insert(
            format!("metadata/{version}.root.json"),
            signed(payload, &listed),
        );
    }
    let mut cache = KeyCache::default();
    let trusted = load_trusted_root(&trusted_bytes, &mut cache).unwrap();
    let last = walk_roots(trusted, &repo, 1000, &mut cache).unwrap();
    assert_eq!(last.version, 151);
    assert_eq!(cache.len(), 5 + 3);
}
