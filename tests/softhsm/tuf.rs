//! `rootcellar tuf init` against real SoftHSM2 tokens, read back by python-tuf (the reference
//! client) and checked field by field; bad policies and existing outputs refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rootcellar::keys::PublicKey;
use sha2::{Digest, Sha256};

use crate::common::*;

/// The committed policy: 2 of 3 root keys, one key each for targets, snapshot, timestamp.
fn committed_policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tuf-repo/policy.toml")
}

/// A rehearsal: two custodian tokens holding the three root keys, an online token holding the
/// targets, snapshot and timestamp keys, a keys file naming them, and two target files.
struct Rehearsal {
    hsm: SoftHsm,
    keys: BTreeMap<String, String>,
    keys_file: PathBuf,
    targets: Vec<PathBuf>,
}

impl Rehearsal {
    fn new() -> Self {
        let hsm = SoftHsm::new("custodian-1");
        hsm.add_token("custodian-2");
        hsm.add_token("online");
        let mut keys = BTreeMap::new();
        for (name, token) in [
            ("root-custodian-1", "custodian-1"),
            ("root-custodian-2", "custodian-2"),
            ("root-custodian-3", "custodian-2"),
            ("targets", "online"),
            ("snapshot", "online"),
            ("timestamp", "online"),
        ] {
            keys.insert(name.to_string(), hsm.generate(token, name, "p256"));
        }
        let keys_file = hsm.path("keys.toml");
        write_keys(&keys_file, &keys);
        let inputs = hsm.path("inputs");
        std::fs::create_dir(&inputs).unwrap();
        let json = inputs.join("trusted_root.json");
        std::fs::write(
            &json,
            br#"{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#,
        )
        .unwrap();
        let binary = inputs.join("ctfe.der");
        std::fs::write(&binary, (0..=255u8).cycle().take(3000).collect::<Vec<_>>()).unwrap();
        Rehearsal {
            hsm,
            keys,
            keys_file,
            targets: vec![json, binary],
        }
    }

    /// `tuf init` with the committed policy into `out`, plus `extra` arguments.
    fn init(&self, out: &Path, extra: &[&str]) -> Command {
        let mut cmd = self.hsm.rootcellar();
        cmd.args(["tuf", "init", "--policy"])
            .arg(committed_policy())
            .arg("--keys")
            .arg(&self.keys_file)
            .arg("--out")
            .arg(out);
        for target in &self.targets {
            cmd.arg("--target").arg(target);
        }
        cmd.args(extra);
        cmd
    }

    /// Runs `tuf init --json` into a new directory and returns the directory and the report.
    fn init_ok(&self, extra: &[&str]) -> (PathBuf, serde_json::Value) {
        let out = self.hsm.path("repo");
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let output = ok(&mut self.init(&out, &args));
        let report = serde_json::from_slice(&output.stdout).expect("report is JSON");
        (out, report)
    }

    /// A copy of the repository to tamper with, as a mirror could.
    fn served_copy(&self, repo: &Path, name: &str) -> PathBuf {
        let copy = self.hsm.path(name);
        copy_dir(repo, &copy);
        copy
    }

    /// Runs the python-tuf client against `served`, trusting `trusted_root`, downloading every
    /// target into `download_dir`.
    fn python_client(&self, served: &Path, trusted_root: &Path, download_dir: &Path) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/tuf_client.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg("--repo")
            .arg(served)
            .arg("--root")
            .arg(trusted_root)
            .arg("--download-dir")
            .arg(download_dir);
        for target in &self.targets {
            let name = target.file_name().unwrap().to_str().unwrap();
            cmd.arg(format!("{name}={}", target.display()));
        }
        cmd.output()
            .expect("python3 runs (`make test` installs python-tuf)")
    }

    /// A trusted copy of root v1, kept apart from the served repository (the out-of-band copy).
    fn trusted_root(&self, repo: &Path) -> PathBuf {
        let trusted = self.hsm.path("trusted-root.json");
        std::fs::copy(repo.join("metadata/1.root.json"), &trusted).unwrap();
        trusted
    }
}

fn write_keys(path: &Path, keys: &BTreeMap<String, String>) {
    let mut text = String::from("[keys]\n");
    for (name, uri) in keys {
        text.push_str(&format!("{name} = {}\n", toml::Value::String(uri.clone())));
    }
    std::fs::write(path, text).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Changes one hex character inside the `n`th signature of a metadata file.
fn flip_signature(path: &Path, n: usize) {
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let sig = doc["signatures"][n]["sig"].as_str().unwrap().to_string();
    let mut chars: Vec<char> = sig.chars().collect();
    // Past the DER header, inside r: still well-formed hex DER, but a wrong signature.
    chars[20] = if chars[20] == '0' { '1' } else { '0' };
    doc["signatures"][n]["sig"] = chars.into_iter().collect::<String>().into();
    // Rewritten as tough writes it; clients verify the canonical form of "signed", not the bytes.
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap();
    bytes.push(b'\n');
    std::fs::write(path, bytes).unwrap();
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// No temporary build directory is left beside `out`.
fn assert_no_leftovers(out: &Path) {
    let parent = out.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[test]
fn python_tuf_reads_the_repository_and_downloads_every_target() {
    let rehearsal = Rehearsal::new();
    let (repo, report) = rehearsal.init_ok(&[]);
    let root = &report["roles"][0];
    assert_eq!(root["role"], "root");
    assert_eq!(root["threshold"], 2);
    assert_eq!(root["keys"].as_array().unwrap().len(), 3);

    let trusted = rehearsal.trusted_root(&repo);
    let downloads = rehearsal.hsm.path("downloads");
    let output = rehearsal.python_client(&repo, &trusted, &downloads);
    assert!(
        output.status.success(),
        "python-tuf refused the repository: {}",
        stderr(&output)
    );
    for target in &rehearsal.targets {
        let name = target.file_name().unwrap();
        assert_eq!(
            std::fs::read(downloads.join(name)).unwrap(),
            std::fs::read(target).unwrap(),
            "downloaded {name:?} differs from the original"
        );
    }
}

#[test]
fn python_tuf_refuses_a_flipped_timestamp_signature() {
    let rehearsal = Rehearsal::new();
    let (repo, _) = rehearsal.init_ok(&[]);
    let trusted = rehearsal.trusted_root(&repo);
    let served = rehearsal.served_copy(&repo, "served");
    flip_signature(&served.join("metadata/timestamp.json"), 0);

    let output = rehearsal.python_client(&served, &trusted, &rehearsal.hsm.path("downloads"));
    assert!(
        !output.status.success(),
        "python-tuf accepted a bad timestamp signature"
    );
    let err = stderr(&output);
    assert!(err.contains("UnsignedMetadataError"), "{err}");
    assert!(err.contains("timestamp was signed by 0/1 keys"), "{err}");
}

#[test]
fn python_tuf_refuses_a_tampered_targets_signature() {
    let rehearsal = Rehearsal::new();
    let (repo, _) = rehearsal.init_ok(&[]);
    let trusted = rehearsal.trusted_root(&repo);
    let served = rehearsal.served_copy(&repo, "served");
    flip_signature(&served.join("metadata/1.targets.json"), 0);

    // The signed snapshot pins the targets file's hash, so the client stops there, before even
    // looking at the signature.
    let output = rehearsal.python_client(&served, &trusted, &rehearsal.hsm.path("downloads"));
    assert!(
        !output.status.success(),
        "python-tuf accepted tampered targets metadata"
    );
    let err = stderr(&output);
    assert!(err.contains("LengthOrHashMismatchError"), "{err}");
}

#[test]
fn python_tuf_counts_root_signatures_against_the_threshold() {
    let rehearsal = Rehearsal::new();
    let (repo, _) = rehearsal.init_ok(&[]);
    // python-tuf never fetches the root version it was given, so a tampered root only matters
    // as the trusted root: 2 of 3 is enough, 1 of 3 is not.
    let one_bad = rehearsal.served_copy(&repo, "one-bad");
    flip_signature(&one_bad.join("metadata/1.root.json"), 0);
    let output = rehearsal.python_client(
        &one_bad,
        &one_bad.join("metadata/1.root.json"),
        &rehearsal.hsm.path("downloads-1"),
    );
    assert!(
        output.status.success(),
        "2 good root signatures of a 2-of-3 root were refused: {}",
        stderr(&output)
    );

    let two_bad = rehearsal.served_copy(&repo, "two-bad");
    flip_signature(&two_bad.join("metadata/1.root.json"), 0);
    flip_signature(&two_bad.join("metadata/1.root.json"), 1);
    let output = rehearsal.python_client(
        &two_bad,
        &two_bad.join("metadata/1.root.json"),
        &rehearsal.hsm.path("downloads-2"),
    );
    assert!(
        !output.status.success(),
        "a root below its threshold was accepted"
    );
    let err = stderr(&output);
    assert!(err.contains("root was signed by 1/2 keys"), "{err}");
}

#[test]
fn metadata_structure_is_what_clients_expect() {
    let rehearsal = Rehearsal::new();
    // A ceremony time with nanoseconds (the clock's second plus 0.987654321 s): none may reach
    // the metadata.
    let now = clock();
    let given = now
        .checked_add(jiff::SignedDuration::from_nanos(987_654_321))
        .unwrap()
        .to_string();
    assert!(given.ends_with(".987654321Z"), "{given}");
    let (repo, report) = rehearsal.init_ok(&["--time", &given]);
    let metadata = repo.join("metadata");

    // Exactly what a consistent-snapshot repository serves.
    let mut expected_files: Vec<String> = [
        "metadata/1.root.json",
        "metadata/1.snapshot.json",
        "metadata/1.targets.json",
        "metadata/timestamp.json",
    ]
    .map(String::from)
    .to_vec();
    for target in &rehearsal.targets {
        let name = target.file_name().unwrap().to_str().unwrap();
        let hash = sha256_hex(&std::fs::read(target).unwrap());
        expected_files.push(format!("targets/{hash}.{name}"));
    }
    expected_files.sort();
    let reported: Vec<String> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert_eq!(reported, expected_files);

    let root = read_json(&metadata.join("1.root.json"));
    let signed = &root["signed"];
    assert_eq!(signed["_type"], "root");
    assert_eq!(signed["spec_version"], "1.0.0");
    assert_eq!(signed["consistent_snapshot"], true);
    assert_eq!(signed["version"], 1);

    // Every key: ecdsa / ecdsa-sha2-nistp256 / PEM SPKI of the very key in the token.
    let tuf_keys = signed["keys"].as_object().unwrap();
    assert_eq!(tuf_keys.len(), 6);
    let mut points = BTreeMap::new();
    for (keyid, key) in tuf_keys {
        assert_eq!(keyid.len(), 64, "{keyid}");
        assert_eq!(key["keytype"], "ecdsa", "{key}");
        assert_eq!(key["scheme"], "ecdsa-sha2-nistp256", "{key}");
        let pem = key["keyval"]["public"].as_str().unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
        let public = PublicKey::from_spki(pem.as_bytes()).expect("PEM SPKI");
        points.insert(public.point().to_vec(), keyid.clone());
    }
    let mut key_ids = BTreeMap::new();
    for (name, uri) in &rehearsal.keys {
        let shown = ok(rehearsal
            .hsm
            .rootcellar()
            .args(["key", "show", uri, "--json"]));
        let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
        let public =
            PublicKey::from_spki(shown["public_key_pem"].as_str().unwrap().as_bytes()).unwrap();
        let keyid = points
            .get(public.point())
            .unwrap_or_else(|| panic!("key {name} is not in root.json"));
        key_ids.insert(name.as_str(), keyid.clone());
    }

    // Roles, thresholds and key ids as the policy says.
    let roles = &signed["roles"];
    let ids = |names: &[&str]| -> Vec<serde_json::Value> {
        names.iter().map(|n| key_ids[n].clone().into()).collect()
    };
    assert_eq!(roles["root"]["threshold"], 2);
    let mut root_ids: Vec<_> = roles["root"]["keyids"].as_array().unwrap().clone();
    root_ids.sort_by_key(|v| v.as_str().unwrap().to_string());
    let mut want = ids(&["root-custodian-1", "root-custodian-2", "root-custodian-3"]);
    want.sort_by_key(|v| v.as_str().unwrap().to_string());
    assert_eq!(root_ids, want);
    for role in ["targets", "snapshot", "timestamp"] {
        assert_eq!(roles[role]["threshold"], 1, "{role}");
        assert_eq!(
            roles[role]["keyids"].as_array().unwrap(),
            &ids(&[role]),
            "{role}"
        );
    }

    // Whole-second expiries, counted from the ceremony time (its whole second) by the policy's
    // days.
    let days = |n: i64| {
        now.checked_add(jiff::SignedDuration::from_hours(n * 24))
            .unwrap()
            .to_string()
    };
    let expected_expiry = [
        ("1.root.json", days(182)),
        ("1.targets.json", days(182)),
        ("1.snapshot.json", days(90)),
        ("timestamp.json", days(90)),
    ];
    for (file, expires) in expected_expiry {
        assert!(!expires.contains('.'), "{expires}");
        let doc = read_json(&metadata.join(file));
        assert_eq!(doc["signed"]["expires"], expires.as_str(), "{file}");
        assert_eq!(doc["signed"]["version"], 1, "{file}");
        let raw = std::fs::read_to_string(metadata.join(file)).unwrap();
        assert!(!raw.contains(".987"), "{file} carries fractional seconds");
    }

    // Signatures: hex DER, one from each key of the role (all three custodians for root).
    for (file, count) in [
        ("1.root.json", 3),
        ("1.targets.json", 1),
        ("1.snapshot.json", 1),
        ("timestamp.json", 1),
    ] {
        let doc = read_json(&metadata.join(file));
        let signatures = doc["signatures"].as_array().unwrap();
        assert_eq!(signatures.len(), count, "{file}");
        for signature in signatures {
            let der = hex::decode(signature["sig"].as_str().unwrap()).expect("hex signature");
            p256::ecdsa::Signature::from_der(&der).expect("DER ECDSA signature");
            assert!(tuf_keys.contains_key(signature["keyid"].as_str().unwrap()));
        }
    }

    // The chain of hashes: timestamp pins snapshot, snapshot pins targets, targets pin files.
    let timestamp = read_json(&metadata.join("timestamp.json"));
    let snapshot_bytes = std::fs::read(metadata.join("1.snapshot.json")).unwrap();
    let pinned = &timestamp["signed"]["meta"]["snapshot.json"];
    assert_eq!(pinned["version"], 1);
    assert_eq!(pinned["length"], snapshot_bytes.len());
    assert_eq!(pinned["hashes"]["sha256"], sha256_hex(&snapshot_bytes));

    let snapshot = read_json(&metadata.join("1.snapshot.json"));
    let targets_bytes = std::fs::read(metadata.join("1.targets.json")).unwrap();
    let pinned = &snapshot["signed"]["meta"]["targets.json"];
    assert_eq!(pinned["version"], 1);
    if let Some(hash) = pinned["hashes"]["sha256"].as_str() {
        assert_eq!(hash, sha256_hex(&targets_bytes));
    }

    let targets = read_json(&metadata.join("1.targets.json"));
    let listed = targets["signed"]["targets"].as_object().unwrap();
    assert_eq!(listed.len(), rehearsal.targets.len());
    for target in &rehearsal.targets {
        let name = target.file_name().unwrap().to_str().unwrap();
        let bytes = std::fs::read(target).unwrap();
        let hash = sha256_hex(&bytes);
        assert_eq!(listed[name]["length"], bytes.len(), "{name}");
        assert_eq!(listed[name]["hashes"]["sha256"], hash.as_str(), "{name}");
        let stored = std::fs::read(repo.join(format!("targets/{hash}.{name}"))).unwrap();
        assert_eq!(stored, bytes, "{name}");
    }
}

/// A fixture for refusals that happen before any key is opened: one token, dummy URIs.
fn light_fixture() -> (SoftHsm, PathBuf) {
    let hsm = SoftHsm::new("unused");
    let keys: BTreeMap<String, String> = [
        "root-custodian-1",
        "root-custodian-2",
        "root-custodian-3",
        "targets",
        "snapshot",
        "timestamp",
    ]
    .iter()
    .map(|n| (n.to_string(), hsm.uri("unused", Some(n))))
    .collect();
    let keys_file = hsm.path("keys.toml");
    write_keys(&keys_file, &keys);
    (hsm, keys_file)
}

/// Runs `tuf init` with a policy derived from the committed one, which must fail; returns
/// stderr after checking that the output directory was not created.
fn init_fails_with_policy(
    hsm: &SoftHsm,
    edit: impl Fn(String) -> String,
    keys_file: &Path,
) -> String {
    let policy = hsm.path("policy.toml");
    std::fs::write(
        &policy,
        edit(std::fs::read_to_string(committed_policy()).unwrap()),
    )
    .unwrap();
    let out = hsm.path("repo");
    let err = fails(
        hsm.rootcellar()
            .args(["tuf", "init", "--policy"])
            .arg(&policy)
            .arg("--keys")
            .arg(keys_file)
            .arg("--out")
            .arg(&out),
    );
    assert!(!out.exists(), "{} was created", out.display());
    assert_no_leftovers(&out);
    err
}

#[test]
fn policy_threshold_above_key_count_is_refused_by_field() {
    let (hsm, keys_file) = light_fixture();
    let err = init_fails_with_policy(
        &hsm,
        |p| p.replacen("threshold = 2", "threshold = 4", 1),
        &keys_file,
    );
    assert!(
        err.contains("policy.toml: roles.root.threshold: 4 exceeds the 3 keys listed"),
        "{err}"
    );
}

#[test]
fn policy_unknown_field_is_refused_by_name() {
    let (hsm, keys_file) = light_fixture();
    let err = init_fails_with_policy(
        &hsm,
        |p| p.replacen("expires_days = 90", "expires_days = 90\nexpiry_days = 7", 1),
        &keys_file,
    );
    assert!(err.contains("unknown field `expiry_days`"), "{err}");
    assert!(err.contains("line"), "{err}");
}

#[test]
fn policy_key_without_uri_is_refused_by_role_and_name() {
    let (hsm, _) = light_fixture();
    let keys_file = hsm.path("partial-keys.toml");
    let keys: BTreeMap<String, String> =
        ["root-custodian-1", "root-custodian-2", "root-custodian-3"]
            .iter()
            .chain(["targets", "snapshot"].iter())
            .map(|n| (n.to_string(), hsm.uri("unused", Some(n))))
            .collect();
    write_keys(&keys_file, &keys);
    let err = init_fails_with_policy(&hsm, |p| p, &keys_file);
    assert!(err.contains("roles.timestamp.keys"), "{err}");
    assert!(err.contains("key \"timestamp\" has no URI"), "{err}");
}

#[test]
fn existing_output_directory_is_refused_and_untouched() {
    let rehearsal = Rehearsal::new();
    let out = rehearsal.hsm.path("repo");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), b"operator's file").unwrap();
    let err = fails(&mut rehearsal.init(&out, &[]));
    assert!(err.contains("exists already"), "{err}");
    let entries: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        std::fs::read(out.join("keep.txt")).unwrap(),
        b"operator's file"
    );
    assert_no_leftovers(&out);

    // An empty directory is refused too: rootcellar never writes into a directory it did not make.
    let empty = rehearsal.hsm.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = fails(&mut rehearsal.init(&empty, &[]));
    assert!(err.contains("exists already"), "{err}");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn p384_key_is_refused_for_tuf() {
    let rehearsal = Rehearsal::new();
    let mut keys = rehearsal.keys.clone();
    keys.insert(
        "timestamp".into(),
        rehearsal.hsm.generate("online", "timestamp-p384", "p384"),
    );
    write_keys(&rehearsal.keys_file, &keys);
    let out = rehearsal.hsm.path("repo");
    let err = fails(&mut rehearsal.init(&out, &[]));
    assert!(err.contains("TUF key \"timestamp\""), "{err}");
    assert!(err.contains("must be ECDSA P-256"), "{err}");
    assert!(!out.exists());
    assert_no_leftovers(&out);
}

#[test]
fn same_key_under_two_names_in_a_role_is_refused() {
    let rehearsal = Rehearsal::new();
    let mut keys = rehearsal.keys.clone();
    // The same token object, named once by label and id and once by label alone.
    let second = keys["root-custodian-2"].clone();
    let by_label = second
        .split_once(";id=")
        .map(|(head, tail)| format!("{head}?{}", tail.split_once('?').unwrap().1))
        .unwrap();
    keys.insert("root-custodian-3".into(), by_label);
    write_keys(&rehearsal.keys_file, &keys);
    let out = rehearsal.hsm.path("repo");
    let err = fails(&mut rehearsal.init(&out, &[]));
    assert!(
        err.contains(
            "roles.root.keys: \"root-custodian-2\" and \"root-custodian-3\" are the same key"
        ),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn missing_target_is_refused_before_signing() {
    let mut rehearsal = Rehearsal::new();
    rehearsal
        .targets
        .push(rehearsal.hsm.path("inputs/absent.json"));
    let out = rehearsal.hsm.path("repo");
    let err = fails(&mut rehearsal.init(&out, &[]));
    assert!(
        err.contains("target ") && err.contains("absent.json"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn tuf_signing_commands_journal_what_they_wrote_when_given_a_state_directory() {
    let rehearsal = Rehearsal::new();
    let state = rehearsal.hsm.path("state");
    let (repo, _) = rehearsal.init_ok(&["--state", state.to_str().unwrap()]);
    let out = ok(rehearsal
        .hsm
        .rootcellar()
        .args(["journal", "show", "--json", "--state"])
        .arg(&state));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let record = &doc["records"][0];
    assert_eq!(record["action"], "tuf.init");
    let outputs = record["outputs"].as_array().unwrap();
    // Every metadata file written is in the record, with its SHA-256 as it is on disk.
    let root = repo.join("metadata/1.root.json");
    let digest = sha256_hex(&std::fs::read(&root).unwrap());
    assert!(
        outputs
            .iter()
            .any(|o| o["name"] == root.display().to_string() && o["sha256"] == digest),
        "{outputs:#?}"
    );
    assert!(outputs.len() >= 4, "{outputs:#?}");
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_tuf_command_journals_what_it_writes_before_the_files_appear() {
    // Killed right after its journal record was made: the record is there, with the digests of
    // the files it was about to write, and no repository appeared.
    let rehearsal = Rehearsal::new();
    let state = rehearsal.hsm.path("state");
    let (first, _) = rehearsal.init_ok(&["--state", state.to_str().unwrap()]);
    let out = rehearsal.hsm.path("second");
    let killed = rehearsal
        .init(&out, &["--state", state.to_str().unwrap()])
        .env("ROOTCELLAR_TEST_CRASH_AT", "tuf.init:recorded")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&killed.stderr).contains("aborting at tuf.init:recorded"),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    assert!(!out.exists(), "the repository appeared before the hook");
    let journal = ok(rehearsal
        .hsm
        .rootcellar()
        .args(["journal", "show", "--json", "--state"])
        .arg(&state));
    let doc: serde_json::Value = serde_json::from_slice(&journal.stdout).unwrap();
    let records = doc["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[1]["action"], "tuf.init");
    let names: Vec<&str> = records[1]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    let root = out.join("metadata/1.root.json");
    assert!(names.contains(&root.to_str().unwrap()), "{names:#?}");
    // The first repository's files are recorded under its own path, not the second's.
    assert!(records[0]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["name"]
            .as_str()
            .unwrap()
            .starts_with(first.to_str().unwrap())));
}
