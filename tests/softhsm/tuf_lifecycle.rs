//! The TUF root lifecycle against real SoftHSM2 tokens, one token per custodian: rotations
//! (key replacement, threshold change, re-sign) signed one custodian at a time through the CLI,
//! targets with custom metadata, online mode completed by an independent online signer, and
//! rootcellar's verifier and python-tuf agreeing on good and bad repositories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::*;

/// Custodian key names, each on its own token `custodian-N`.
const CUSTODIANS: [&str; 5] = ["c1", "c2", "c3", "c4", "c5"];

/// A rehearsal: five custodian tokens, an appliance token for targets/snapshot/timestamp, the
/// keys file naming them, target files, and (for online mode) software keys of the online side.
struct Ceremony {
    hsm: SoftHsm,
    uris: BTreeMap<String, String>,
    keys_file: PathBuf,
    online_keys_file: PathBuf,
    trusted_root: PathBuf,
    signing_config: PathBuf,
}

fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

impl Ceremony {
    fn new() -> Self {
        let hsm = SoftHsm::new("custodian-1");
        for n in 2..=5 {
            hsm.add_token(&format!("custodian-{n}"));
        }
        hsm.add_token("appliance");
        let mut uris = BTreeMap::new();
        for (n, name) in CUSTODIANS.iter().enumerate() {
            let token = format!("custodian-{}", n + 1);
            uris.insert(name.to_string(), hsm.generate(&token, "tuf-root", "p256"));
        }
        for role in ["targets", "snapshot", "timestamp"] {
            uris.insert(
                role.to_string(),
                hsm.generate("appliance", &format!("tuf-{role}"), "p256"),
            );
        }
        let keys_file = hsm.path("keys.toml");
        let mut text = String::from("[keys]\n");
        for (name, uri) in &uris {
            text.push_str(&format!("{name} = {}\n", toml::Value::String(uri.clone())));
        }
        std::fs::write(&keys_file, &text).unwrap();

        // The online side: software P-256 keys whose public halves the appliance receives as PEM.
        let online = hsm.path("online");
        std::fs::create_dir(&online).unwrap();
        let mut online_text = String::from("[keys]\n");
        for (name, uri) in &uris {
            if name != "snapshot" && name != "timestamp" {
                online_text.push_str(&format!("{name} = {}\n", toml::Value::String(uri.clone())));
            }
        }
        for role in ["snapshot", "timestamp"] {
            let key = online.join(format!("{role}.key"));
            let public = online.join(format!("{role}.pem"));
            software_key(&key, &public);
            online_text.push_str(&format!(
                "online-{role} = {{ public_key = {} }}\n",
                toml::Value::String(public.display().to_string())
            ));
        }
        let online_keys_file = hsm.path("online-keys.toml");
        std::fs::write(&online_keys_file, online_text).unwrap();

        let inputs = hsm.path("inputs");
        std::fs::create_dir(&inputs).unwrap();
        let trusted_root = inputs.join("trusted_root.json");
        std::fs::write(
            &trusted_root,
            br#"{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1", "tlogs": [], "certificateAuthorities": [], "ctlogs": [], "timestampAuthorities": []}"#,
        )
        .unwrap();
        let signing_config = inputs.join("signing_config.v0.2.json");
        std::fs::write(
            &signing_config,
            br#"{"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json"}"#,
        )
        .unwrap();
        Ceremony {
            hsm,
            uris,
            keys_file,
            online_keys_file,
            trusted_root,
            signing_config,
        }
    }

    /// Writes a policy: root keys and threshold as given, one appliance key for each other role
    /// (offline) or the online side's PEM keys for snapshot and timestamp (online).
    fn policy(&self, file: &str, root: &[&str], threshold: u64, online: bool) -> PathBuf {
        let names: Vec<String> = root.iter().map(|n| format!("{n:?}")).collect();
        let (mode, snapshot, timestamp) = if online {
            ("online", "online-snapshot", "online-timestamp")
        } else {
            ("offline", "snapshot", "timestamp")
        };
        let text = format!(
            "consistent_snapshot = true\nmode = \"{mode}\"\n\
             [roles.root]\nkeys = [{}]\nthreshold = {threshold}\nexpires_days = 182\nsigning_days = 42\n\
             [roles.targets]\nkeys = [\"targets\"]\nthreshold = 1\nexpires_days = 182\n\
             [roles.snapshot]\nkeys = [\"{snapshot}\"]\nthreshold = 1\nexpires_days = 21\nsigning_days = 7\n\
             [roles.timestamp]\nkeys = [\"{timestamp}\"]\nthreshold = 1\nexpires_days = 7\nsigning_days = 2\n",
            names.join(", ")
        );
        let path = self.hsm.path(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn keys_for(&self, online: bool) -> &Path {
        if online {
            &self.online_keys_file
        } else {
            &self.keys_file
        }
    }

    fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = self.hsm.rootcellar();
        cmd.args(args);
        cmd
    }

    fn json(&self, cmd: &mut Command) -> Value {
        let out = ok(cmd.arg("--json"));
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    fn init(&self, out: &Path, policy: &Path, online: bool, extra: &[&str]) -> Value {
        let mut cmd = self.cli(&["tuf", "init"]);
        cmd.arg("--policy")
            .arg(policy)
            .arg("--keys")
            .arg(self.keys_for(online))
            .arg("--out")
            .arg(out)
            .args(extra);
        self.json(&mut cmd)
    }

    fn rotate(&self, repo: &Path, policy: &Path, online: bool, extra: &[&str]) -> Value {
        let mut cmd = self.cli(&["tuf", "rotate", "--repo"]);
        cmd.arg(repo)
            .arg("--policy")
            .arg(policy)
            .arg("--keys")
            .arg(self.keys_for(online))
            .args(extra);
        self.json(&mut cmd)
    }

    fn sign_cmd(&self, repo: &Path, key: &str) -> Command {
        let mut cmd = self.cli(&["tuf", "sign", "--repo"]);
        cmd.arg(repo).arg("--key").arg(&self.uris[key]);
        cmd
    }

    fn sign(&self, repo: &Path, key: &str) -> Value {
        self.json(&mut self.sign_cmd(repo, key))
    }

    fn publish_cmd(&self, repo: &Path, policy: &Path, online: bool) -> Command {
        let mut cmd = self.cli(&["tuf", "publish", "--repo"]);
        cmd.arg(repo)
            .arg("--policy")
            .arg(policy)
            .arg("--keys")
            .arg(self.keys_for(online));
        cmd
    }

    fn publish(&self, repo: &Path, policy: &Path, online: bool) -> Value {
        self.json(&mut self.publish_cmd(repo, policy, online))
    }

    fn add_target(&self, repo: &Path, policy: &Path, file: &Path, custom: Option<&str>) -> Value {
        let mut cmd = self.cli(&["tuf", "targets", "add", "--repo"]);
        cmd.arg(repo).arg(file).arg("--policy").arg(policy);
        if let Some(custom) = custom {
            cmd.arg("--custom").arg(custom);
        }
        self.json(&mut cmd)
    }

    fn status(&self, repo: &Path) -> Value {
        let mut cmd = self.cli(&["tuf", "status", "--repo"]);
        cmd.arg(repo);
        self.json(&mut cmd)
    }

    /// `tuf status` as it will read at `at` (a check: any time may be given).
    fn status_at(&self, repo: &Path, at: &str) -> Value {
        let mut cmd = self.cli(&["tuf", "status", "--repo"]);
        cmd.arg(repo).args(["--time", at]);
        self.json(&mut cmd)
    }

    /// Runs the online side: python-tuf's metadata API signs the next snapshot and timestamp.
    fn online_signer(&self, repo: &Path, extra: &[&str]) {
        let online = self.hsm.path("online");
        let out = Command::new("python3")
            .arg(manifest_path("tests/python/online_signer.py"))
            .arg("--repo")
            .arg(repo)
            .arg("--snapshot-key")
            .arg(online.join("snapshot.key"))
            .arg("--timestamp-key")
            .arg(online.join("timestamp.key"))
            .args(extra)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "online signer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// rootcellar's verifier through the CLI, checking expiry at `at` (default: the clock): the
    /// JSON report, or the error message.
    fn verify(&self, repo: &Path, trusted: &Path, at: Option<&str>) -> Result<Value, String> {
        let mut cmd = self.cli(&["tuf", "verify", "--json", "--trusted-root"]);
        cmd.arg(trusted).arg(repo);
        if let Some(at) = at {
            cmd.args(["--time", at]);
        }
        let out = cmd.output().unwrap();
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// python-tuf's Updater over HTTP, downloading the named targets: the summary or the error.
    fn python(&self, repo: &Path, trusted: &Path, targets: &[&Path]) -> Result<Value, String> {
        self.python_at(repo, trusted, targets, None)
    }

    /// [`Ceremony::python`] judging expiry at `at` (python-tuf's reference time; default: the
    /// clock).
    fn python_at(
        &self,
        repo: &Path,
        trusted: &Path,
        targets: &[&Path],
        at: Option<&str>,
    ) -> Result<Value, String> {
        let downloads = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(manifest_path("tests/python/tuf_client.py"))
            .arg("--repo")
            .arg(repo)
            .arg("--root")
            .arg(trusted)
            .arg("--download-dir")
            .arg(downloads.path());
        if let Some(at) = at {
            cmd.args(["--time", at]);
        }
        for target in targets {
            let name = target.file_name().unwrap().to_str().unwrap();
            cmd.arg(format!("{name}={}", target.display()));
        }
        let out: Output = cmd.output().expect("python3 runs");
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn copy(&self, repo: &Path, name: &str) -> PathBuf {
        let to = self.hsm.path(name);
        copy_dir(repo, &to);
        to
    }

    /// A trusted copy of root v1, kept apart from the repository.
    fn trusted(&self, repo: &Path, name: &str) -> PathBuf {
        let path = self.hsm.path(name);
        std::fs::copy(repo.join("metadata/1.root.json"), &path).unwrap();
        path
    }
}

fn software_key(private: &Path, public: &Path) {
    let out = openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        private.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let out = openssl(&[
        "ec",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    assert!(out.status.success());
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

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn keyids(signed_json: &Value) -> Vec<String> {
    let mut ids: Vec<String> = signed_json["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["keyid"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The chain the agreement tests start from, in offline mode:
/// v1 root 2 of {c1,c2,c3};
/// v2 key loss: c3 replaced by c4, signed by c1, c2 (old) and c4 (cross-signing);
/// v3 threshold change: 3 of {c1,c2,c4,c5}, signed by c1, c2 (old: 2 of 3) and c5 (new: 3 of 4);
/// v4 re-sign with the same keys, signed by c1, c2, c5;
/// targets: trusted_root.json and signing_config.v0.2.json with custom metadata.
struct Chain {
    ceremony: Ceremony,
    repo: PathBuf,
    trusted: PathBuf,
}

fn build_chain() -> Chain {
    let c = Ceremony::new();
    let repo = c.hsm.path("repo");
    let p1 = c.policy("p1.toml", &["c1", "c2", "c3"], 2, false);
    c.init(&repo, &p1, false, &[]);
    let trusted = c.trusted(&repo, "trusted-v1.json");

    let p2 = c.policy("p2.toml", &["c1", "c2", "c4"], 2, false);
    let rotation = c.rotate(&repo, &p2, false, &[]);
    assert_eq!(rotation["kind"], "rotation");
    assert_eq!(rotation["changes"][0]["added"][0]["name"], "c4");
    for key in ["c1", "c2", "c4"] {
        c.sign(&repo, key);
    }
    c.add_target(&repo, &p2, &c.trusted_root, None);
    c.add_target(
        &repo,
        &p2,
        &c.signing_config,
        Some(r#"{"sigstore": {"usage": "SigningConfig", "status": "Active"}}"#),
    );
    c.sign(&repo, "targets");
    c.publish(&repo, &p2, false);

    let p3 = c.policy("p3.toml", &["c1", "c2", "c4", "c5"], 3, false);
    c.rotate(&repo, &p3, false, &[]);
    for key in ["c1", "c2", "c5"] {
        c.sign(&repo, key);
    }
    c.publish(&repo, &p3, false);

    let resign = c.rotate(&repo, &p3, false, &[]);
    assert_eq!(resign["kind"], "re-sign");
    for key in ["c1", "c2", "c5"] {
        c.sign(&repo, key);
    }
    c.publish(&repo, &p3, false);
    Chain {
        ceremony: c,
        repo,
        trusted,
    }
}

#[test]
fn tuf_python_follows_a_chain_of_rotations_and_both_clients_agree() {
    let chain = build_chain();
    let c = &chain.ceremony;
    let targets: [&Path; 2] = [&c.trusted_root, &c.signing_config];

    // Both clients accept the good repository and reach root v4.
    let ours = c.verify(&chain.repo, &chain.trusted, None).unwrap();
    assert_eq!(ours["root_version"], 4);
    assert_eq!(ours["trusted_root_version"], 1);
    let names: Vec<&str> = ours["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["signing_config.v0.2.json", "trusted_root.json"]);
    assert_eq!(
        ours["targets"][0]["custom"]["sigstore"]["usage"],
        "SigningConfig"
    );
    let theirs = c.python(&chain.repo, &chain.trusted, &targets).unwrap();
    assert_eq!(theirs["root_version"], 4);
    assert!(theirs["targets"]["trusted_root.json"].is_object());

    // Each published root carries its signers: v2 c1, c2, c4; v3 and v4 c1, c2, c5.
    let v3 = read_json(&chain.repo.join("metadata/3.root.json"));
    assert_eq!(v3["signed"]["roles"]["root"]["threshold"], 3);
    assert_eq!(keyids(&v3).len(), 3);
    assert!(!chain.repo.join("staged").exists(), "staged/ is cleared");

    // Each bad repository is refused by both clients.
    let cases = bad_repositories(&chain);
    for (name, repo, trusted, our_error, their_error) in cases {
        let ours = c.verify(&repo, &trusted, None);
        let theirs = c.python(&repo, &trusted, &targets);
        let ours = ours.expect_err(&format!("{name}: rootcellar accepted it"));
        let theirs = theirs.expect_err(&format!("{name}: python-tuf accepted it"));
        assert!(ours.contains(our_error), "{name}: rootcellar said {ours}");
        assert!(
            theirs.contains(their_error),
            "{name}: python-tuf said {theirs}"
        );
    }
}

type BadCase = (&'static str, PathBuf, PathBuf, &'static str, &'static str);

fn bad_repositories(chain: &Chain) -> Vec<BadCase> {
    let c = &chain.ceremony;
    let trusted = chain.trusted.clone();
    let mut cases = Vec::new();

    // Rollback: the file for v3 holds root v2 (validly signed, but older).
    let repo = c.copy(&chain.repo, "rollback");
    std::fs::copy(
        repo.join("metadata/2.root.json"),
        repo.join("metadata/3.root.json"),
    )
    .unwrap();
    cases.push((
        "rollback to an older root",
        repo,
        trusted.clone(),
        "holds root v2 where v3 must follow the trusted v2: a rollback",
        "BadVersionNumberError",
    ));

    // Skipped version: the file for v3 holds v4 (signed by a threshold of v2's keys too).
    let repo = c.copy(&chain.repo, "skipped");
    std::fs::copy(
        repo.join("metadata/4.root.json"),
        repo.join("metadata/3.root.json"),
    )
    .unwrap();
    std::fs::remove_file(repo.join("metadata/4.root.json")).unwrap();
    cases.push((
        "skipped version",
        repo,
        trusted.clone(),
        "holds root v4 where v3 must follow the trusted v2: a version was skipped",
        "BadVersionNumberError",
    ));

    // Root v5 that only one of v4's root keys signed (its own threshold is met), put in place
    // by hand: publish would refuse it.
    let repo = c.copy(&chain.repo, "old-threshold");
    let policy = c.policy("p5a.toml", &["c1", "c3"], 2, false);
    c.rotate(&repo, &policy, false, &[]);
    c.sign(&repo, "c1");
    c.sign(&repo, "c3");
    let err = fails(&mut c.publish_cmd(&repo, &policy, false));
    assert!(
        err.contains("cannot publish root v5") && err.contains("1 of the 3 signatures of root v4"),
        "{err}"
    );
    std::fs::copy(
        repo.join("staged/5.root.json"),
        repo.join("metadata/5.root.json"),
    )
    .unwrap();
    cases.push((
        "root missing the old threshold",
        repo,
        trusted.clone(),
        "root v5 (metadata/5.root.json) has valid signatures from 1 of the 3 keys of root v4",
        "root was signed by 1/3 keys",
    ));

    // Root v5 signed by v4's threshold but not by its own.
    let repo = c.copy(&chain.repo, "new-threshold");
    let policy = c.policy("p5b.toml", &["c1", "c2", "c3"], 3, false);
    c.rotate(&repo, &policy, false, &[]);
    for key in ["c1", "c2", "c5"] {
        c.sign(&repo, key);
    }
    let status = c.status(&repo);
    let root = &status["staged"][0];
    assert_eq!(root["thresholds"][0]["met"], true);
    assert_eq!(root["thresholds"][1]["met"], false);
    assert_eq!(root["thresholds"][1]["missing"][0]["name"], "c3");
    std::fs::copy(
        repo.join("staged/5.root.json"),
        repo.join("metadata/5.root.json"),
    )
    .unwrap();
    cases.push((
        "root missing its own threshold",
        repo,
        trusted.clone(),
        "root v5 (metadata/5.root.json) has valid signatures from 2 of the 3 keys of its own root keys",
        "root was signed by 2/3 keys",
    ));

    // A target file whose bytes differ from the listed hash (same length).
    let repo = c.copy(&chain.repo, "target-hash");
    let listed = read_json(&repo.join("metadata/2.targets.json"));
    let hash = listed["signed"]["targets"]["trusted_root.json"]["hashes"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = repo.join(format!("targets/{hash}.trusted_root.json"));
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[3] ^= 0x01;
    std::fs::write(&stored, bytes).unwrap();
    cases.push((
        "target whose hash differs",
        repo,
        trusted.clone(),
        "trusted_root.json has sha256",
        "LengthOrHashMismatchError",
    ));
    cases
}

#[test]
fn tuf_both_clients_refuse_expired_root_and_timestamp() {
    let c = Ceremony::new();
    let policy = c.policy("p.toml", &["c1", "c2"], 2, false);
    let targets: [&Path; 1] = [&c.trusted_root];

    // Signed now (a signing time may not precede the build), checked later: both clients are
    // given the time to judge expiry at.
    let repo = c.hsm.path("repo");
    let mut cmd = c.cli(&["tuf", "init", "--policy"]);
    cmd.arg(&policy)
        .arg("--keys")
        .arg(&c.keys_file)
        .arg("--out")
        .arg(&repo)
        .arg("--target")
        .arg(&c.trusted_root)
        .args(["--time", &clock_time()]);
    ok(&mut cmd);
    let trusted = c.trusted(&repo, "trusted.json");
    c.verify(&repo, &trusted, None).unwrap();
    c.python(&repo, &trusted, &targets).unwrap();

    // 200 days later the root (valid 182 days) has expired, and everything else with it; the
    // final root is checked first.
    let much_later = days_from_now(200);
    let ours = c.verify(&repo, &trusted, Some(&much_later)).unwrap_err();
    assert!(ours.contains("root v1 (trusted root) expired at"), "{ours}");
    let theirs = c
        .python_at(&repo, &trusted, &targets, Some(&much_later))
        .unwrap_err();
    assert!(theirs.contains("Final root.json is expired"), "{theirs}");

    // Ten days later: root and targets valid, timestamp (7 days) expired.
    let later = days_from_now(10);
    let ours = c.verify(&repo, &trusted, Some(&later)).unwrap_err();
    assert!(
        ours.contains("timestamp v1 (metadata/timestamp.json) expired at"),
        "{ours}"
    );
    let theirs = c
        .python_at(&repo, &trusted, &targets, Some(&later))
        .unwrap_err();
    assert!(theirs.contains("timestamp.json is expired"), "{theirs}");
    // Five days later it is still valid, to both.
    let sooner = days_from_now(5);
    let report = c.verify(&repo, &trusted, Some(&sooner)).unwrap();
    assert_eq!(report["roles"][1]["role"], "timestamp");
    c.python_at(&repo, &trusted, &targets, Some(&sooner))
        .unwrap();

    // An offline refresh ten days later (the time far from the clock, so typed again) re-signs
    // snapshot and timestamp with the appliance's keys alone (the keys file names no root or
    // targets key), and both clients accept it again at that time.
    let status = c.status_at(&repo, &later);
    assert_eq!(status["published"][3]["state"], "expired");
    let refresh_keys = c.hsm.path("refresh-keys.toml");
    std::fs::write(
        &refresh_keys,
        format!(
            "[keys]\nsnapshot = {:?}\ntimestamp = {:?}\n",
            c.uris["snapshot"], c.uris["timestamp"]
        ),
    )
    .unwrap();
    let refresh = |policy: &Path, keys: &Path, time: &str| {
        let mut cmd = c.cli(&["tuf", "refresh", "--repo"]);
        cmd.arg(&repo)
            .arg("--policy")
            .arg(policy)
            .arg("--keys")
            .arg(keys)
            .args(time_typed_again(time));
        cmd
    };
    let refreshed = c.json(&mut refresh(&policy, &refresh_keys, &later));
    let roles: Vec<&str> = refreshed["published"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["snapshot", "timestamp"], "{refreshed}");
    let report = c.verify(&repo, &trusted, Some(&later)).unwrap();
    assert_eq!(report["roles"][1]["version"], 2, "{report}");
    c.python_at(&repo, &trusted, &targets, Some(&later))
        .unwrap();

    // A refresh signs nothing else: with a draft staged, or in online mode, it is refused and
    // the repository is left as it was.
    c.add_target(&repo, &policy, &c.signing_config, None);
    let before = tree_of(&repo);
    let out = refresh(&policy, &refresh_keys, &later).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("holds staged drafts (targets v2): a refresh re-signs only what is published"),
        "{err}"
    );
    let online = c.policy("online.toml", &["c1", "c2"], 2, true);
    let out = refresh(&online, &c.online_keys_file, &later)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is in online mode"), "{err}");
    assert_eq!(tree_of(&repo), before);
}

/// Every file under `dir` with its bytes.
fn tree_of(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn tuf_online_mode_is_completed_by_the_online_signer() {
    let c = Ceremony::new();
    let policy = c.policy("online.toml", &["c1", "c2", "c3"], 2, true);
    let repo = c.hsm.path("repo");
    let report = c.init(&repo, &policy, true, &[]);
    let roles: Vec<&str> = report["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["root", "targets"]);
    assert!(!repo.join("metadata/timestamp.json").exists());
    let root = read_json(&repo.join("metadata/1.root.json"));
    assert_eq!(keyids(&root).len(), 3);

    // The appliance stages and signs targets; the online side signs snapshot and timestamp.
    c.add_target(
        &repo,
        &policy,
        &c.trusted_root,
        Some(r#"{"sigstore": {"usage": "Unknown"}}"#),
    );
    c.sign(&repo, "targets");
    let published = c.publish(&repo, &policy, true);
    let roles: Vec<&str> = published["published"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["targets"]);
    c.online_signer(&repo, &[]);
    let trusted = c.trusted(&repo, "trusted.json");
    let targets: [&Path; 1] = [&c.trusted_root];
    let ours = c.verify(&repo, &trusted, None).unwrap();
    assert_eq!(ours["roles"][3]["version"], 2);
    c.python(&repo, &trusted, &targets).unwrap();

    // Mix-and-match: a (validly signed) snapshot lists targets v3, whose file holds v2.
    let mixed = c.copy(&repo, "mixed");
    std::fs::copy(
        mixed.join("metadata/2.targets.json"),
        mixed.join("metadata/3.targets.json"),
    )
    .unwrap();
    c.online_signer(&mixed, &["--targets-version", "3", "--without-hashes"]);
    let ours = c.verify(&mixed, &trusted, None).unwrap_err();
    assert!(
        ours.contains("metadata/3.targets.json holds targets v2, but snapshot lists v3"),
        "{ours}"
    );
    let theirs = c.python(&mixed, &trusted, &targets).unwrap_err();
    assert!(theirs.contains("Expected targets v3, got v2"), "{theirs}");

    // A timestamp signed by a key the root does not list for timestamp.
    let foreign = c.copy(&repo, "foreign");
    let online = c.hsm.path("online");
    software_key(&online.join("rogue.key"), &online.join("rogue.pem"));
    let out = Command::new("python3")
        .arg(manifest_path("tests/python/online_signer.py"))
        .arg("--repo")
        .arg(&foreign)
        .arg("--snapshot-key")
        .arg(online.join("snapshot.key"))
        .arg("--timestamp-key")
        .arg(online.join("rogue.key"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let ours = c.verify(&foreign, &trusted, None).unwrap_err();
    assert!(
        ours.contains(
            "timestamp v2 (metadata/timestamp.json) has valid signatures from 0 of the 1 keys"
        ) && ours.contains("signatures from keys not entitled to sign it"),
        "{ours}"
    );
    let theirs = c.python(&foreign, &trusted, &targets).unwrap_err();
    assert!(
        theirs.contains("timestamp was signed by 0/1 keys"),
        "{theirs}"
    );

    // The appliance never signs snapshot or timestamp in online mode, and refuses to publish
    // with nothing staged.
    let err = fails(&mut c.publish_cmd(&repo, &policy, true));
    assert!(err.contains("nothing is staged"), "{err}");
}

#[test]
fn tuf_three_custodians_in_two_orders_give_the_same_root() {
    let c = Ceremony::new();
    let p1 = c.policy("p1.toml", &["c1", "c2", "c3"], 2, false);
    let base = c.hsm.path("base");
    c.init(&base, &p1, false, &[]);
    let trusted = c.trusted(&base, "trusted.json");
    let p2 = c.policy("p2.toml", &["c1", "c2", "c3"], 3, false);
    let now = clock_time();

    let mut roots = Vec::new();
    for (name, order) in [
        ("first", ["c1", "c2", "c3"]),
        ("second", ["c3", "c1", "c2"]),
    ] {
        let repo = c.copy(&base, name);
        let draft = c.rotate(&repo, &p2, false, &["--time", &now]);
        for (n, key) in order.iter().enumerate() {
            let signed = c.sign(&repo, key);
            let status = &signed["signed"][0]["status"];
            assert_eq!(
                status["thresholds"][1]["signed"].as_array().unwrap().len(),
                n + 1
            );
            assert_eq!(status["ready"], n + 1 == 3, "{name} after {key}");
        }
        let published = c.publish(&repo, &p2, false);
        assert_eq!(published["published"][0]["role"], "root");
        let ours = c.verify(&repo, &trusted, None).unwrap();
        assert_eq!(ours["root_version"], 2);
        c.python(&repo, &trusted, &[]).unwrap();
        roots.push((draft, read_json(&repo.join("metadata/2.root.json"))));
    }
    let (first_draft, first) = &roots[0];
    let (second_draft, second) = &roots[1];
    assert_eq!(
        first_draft["payload_sha256"], second_draft["payload_sha256"],
        "the same policy at the same time drafts the same payload"
    );
    assert_eq!(first["signed"], second["signed"]);
    assert_eq!(keyids(first), keyids(second));
    assert_eq!(keyids(first).len(), 3);
}

#[test]
fn tuf_signing_refuses_strangers_and_counts_each_key_once() {
    let c = Ceremony::new();
    let p1 = c.policy("p1.toml", &["c1", "c2", "c3"], 2, false);
    let repo = c.hsm.path("repo");
    c.init(&repo, &p1, false, &[]);

    let err = fails(&mut c.sign_cmd(&repo, "c1"));
    assert!(err.contains("nothing is staged"), "{err}");

    let p2 = c.policy("p2.toml", &["c1", "c2", "c4"], 2, false);
    let rotation = c.rotate(&repo, &p2, false, &[]);
    let c3 = rotation["changes"][0]["removed"][0]["keyid"].clone();
    let mut again = c.cli(&["tuf", "rotate", "--repo"]);
    again
        .arg(&repo)
        .arg("--policy")
        .arg(&p2)
        .arg("--keys")
        .arg(&c.keys_file);
    let err = fails(&mut again);
    assert!(err.contains("root v2 is already staged"), "{err}");

    // c5 holds no root key, old or new: refused before its token signs anything.
    let err = fails(&mut c.sign_cmd(&repo, "c5"));
    assert!(
        err.contains("may not sign any staged draft") && err.contains("root v2 may be signed by"),
        "{err}"
    );
    // The removed key c3 may still sign: it counts for the old threshold only (the new policy
    // does not name it, so it is shown by key id).
    let signed = c.sign(&repo, "c3");
    let status = &signed["signed"][0]["status"];
    assert_eq!(status["thresholds"][0]["signed"][0]["keyid"], c3);
    assert!(status["thresholds"][1]["signed"]
        .as_array()
        .unwrap()
        .is_empty());
    let again = c.sign(&repo, "c3");
    assert_eq!(again["signed"][0]["already_signed"], true);
    let draft = read_json(&repo.join("staged/2.root.json"));
    assert_eq!(keyids(&draft).len(), 1, "one signature per key id");

    // Below threshold: publish names the keys that could still sign.
    let err = fails(&mut c.publish_cmd(&repo, &p2, false));
    assert!(
        err.contains("cannot publish root v2")
            && err.contains("1 more needed from: c1")
            && err.contains("2 more needed from: c1"),
        "{err}"
    );
    assert!(!repo.join("metadata/2.root.json").exists());

    // The new key c4 counts for the new threshold only.
    c.sign(&repo, "c4");
    let status = c.status(&repo);
    assert_eq!(
        status["staged"][0]["thresholds"][1]["signed"][0]["name"],
        "c4"
    );
    c.sign(&repo, "c1");
    let status = c.status(&repo);
    assert_eq!(status["staged"][0]["ready"], true);
    c.publish(&repo, &p2, false);
    let status = c.status(&repo);
    assert_eq!(status["published"][0]["version"], 2);
    assert!(status["staged"].as_array().unwrap().is_empty());
}

#[test]
fn tuf_targets_are_added_replaced_and_removed() {
    let c = Ceremony::new();
    let policy = c.policy("p.toml", &["c1", "c2"], 2, false);
    let repo = c.hsm.path("repo");
    c.init(
        &repo,
        &policy,
        false,
        &["--target", c.trusted_root.to_str().unwrap()],
    );
    let trusted = c.trusted(&repo, "trusted.json");

    // Replace trusted_root.json (custom metadata given) and add the signing config.
    let newer = c.hsm.path("inputs/newer");
    std::fs::create_dir(&newer).unwrap();
    let replacement = newer.join("trusted_root.json");
    std::fs::write(&replacement, br#"{"mediaType": "replaced"}"#).unwrap();
    let staged = c.add_target(&repo, &policy, &replacement, Some(r#"{"n": 2}"#));
    assert_eq!(staged["change"], "replaced trusted_root.json");
    assert_eq!(staged["version"], 2);
    c.add_target(&repo, &policy, &c.signing_config, None);
    // Editing a signed draft drops its signatures.
    c.sign(&repo, "targets");
    let mut cmd = c.cli(&["tuf", "targets", "remove", "--repo"]);
    cmd.arg(&repo)
        .arg("signing_config.v0.2.json")
        .arg("--policy")
        .arg(&policy);
    let removed = c.json(&mut cmd);
    assert_eq!(removed["dropped_signatures"].as_array().unwrap().len(), 1);
    c.add_target(&repo, &policy, &c.signing_config, None);
    c.sign(&repo, "targets");
    let published = c.publish(&repo, &policy, false);
    let roles: Vec<&str> = published["published"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["targets", "snapshot", "timestamp"]);

    let report = c.verify(&repo, &trusted, None).unwrap();
    assert_eq!(report["roles"][3]["version"], 2);
    assert_eq!(report["roles"][2]["version"], 2);
    assert_eq!(report["targets"][1]["name"], "trusted_root.json");
    assert_eq!(report["targets"][1]["custom"]["n"], 2);
    let replaced: [&Path; 2] = [&replacement, &c.signing_config];
    c.python(&repo, &trusted, &replaced).unwrap();

    // Removing an unknown target, or a name with a slash, is refused by name.
    let mut cmd = c.cli(&["tuf", "targets", "remove", "--repo"]);
    cmd.arg(&repo)
        .arg("absent.json")
        .arg("--policy")
        .arg(&policy);
    let err = fails(&mut cmd);
    assert!(
        err.contains("target \"absent.json\": targets v2 does not list it"),
        "{err}"
    );
    let mut cmd = c.cli(&["tuf", "targets", "add", "--repo"]);
    cmd.arg(&repo)
        .arg(&c.trusted_root)
        .args(["--name", "../escape.json", "--policy"])
        .arg(&policy);
    let err = fails(&mut cmd);
    assert!(err.contains("without slashes"), "{err}");
}
