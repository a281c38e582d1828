//! Kill-anywhere: the eight ceremony scripts rehearsed in sequence on one appliance state
//! (root-init, issue-intermediate, rotate-tuf-root, publish-trust-root, issue-crl, backup-keys,
//! restore-keys, refresh-timestamp), each killed with SIGKILL at random moments (as a power cut or a person closing
//! the wrong window would), then resumed by running the same command again, until it finishes.
//! After each round: the journal verifies; the tokens hold exactly the keys a clean run makes
//! (both halves of each, none twice); no certificate serial or TUF version is used twice; and
//! every output verifies: certificates and the CRL with openssl (the CRL revokes exactly the
//! listed serial, numbered by the ceremony time), the TUF repositories with rootcellar and the
//! published one with python-tuf, the trust root against the PKI, the backup (one wrapped key,
//! its split delivered) restored into a new token whose key signs for the root certificate.
//!
//! `ROOTCELLAR_CRASH_ROUNDS` (default 6) sets the rounds; `ROOTCELLAR_CRASH_SEED` repeats a run
//! (the seed is printed). A failed round's directory is kept and named. `make test` runs a few
//! rounds, `make crash-test ROUNDS=N` more.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use rand::{Rng, SeedableRng};

use crate::common::*;

/// One appliance state: a rehearsal state directory, the answers file, and the requests its
/// ceremonies take.
pub(crate) struct Appliance {
    dir: tempfile::TempDir,
    /// The time every run of this appliance confirms (the answers file's).
    time: jiff::Timestamp,
}

/// The ceremonies of a round, in order: (script, output directory, request directory).
const SEQUENCE: [(&str, &str, Option<&str>); 8] = [
    ("root-init", "root-init", None),
    (
        "issue-intermediate",
        "intermediates",
        Some("intermediate-request"),
    ),
    ("rotate-tuf-root", "rotated", Some("rotate-request")),
    ("publish-trust-root", "published", Some("publish-request")),
    ("issue-crl", "crl", Some("crl-request")),
    ("backup-keys", "backup", None),
    ("restore-keys", "restored", Some("restore-request")),
    ("refresh-timestamp", "refreshed", Some("refresh-request")),
];

/// What the online side gives `trustroot build` (paths relative to the appliance directory):
/// the Fulcio chain the appliance issued.
const TRUSTROOT_CONFIG: &str = "[[certificate_authorities]]\nuri = \"https://fulcio.example\"\n\
    chain = [\"intermediates/intermediate-fulcio.pem\", \"root-init/root.pem\"]\n\
    [signing_config]\noperator = \"example\"\nca_urls = [\"https://fulcio.example\"]\n\
    oidc_urls = [\"https://oidc.example\"]\nrekor_urls = [\"https://rekor.example\"]\n";

/// Copies a directory tree with `cp -r`.
fn copy_dir(from: &Path, to: &Path) {
    let copied = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(
        copied.success(),
        "cp -r {} {}",
        from.display(),
        to.display()
    );
}

/// A certificate's serial as openssl prints it (hex, upper case, whole bytes).
fn raw_serial(cert: &Path) -> String {
    let out = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-serial"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    printed.trim().trim_start_matches("serial=").to_string()
}

/// A certificate's serial, to compare (hex, upper case, no leading zeros).
fn serial(cert: &Path) -> String {
    normal_serial(&raw_serial(cert))
}

fn normal_serial(hex: &str) -> String {
    let hex = hex.trim().to_uppercase();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.to_string()
    }
}

impl Appliance {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let time = clock();
        std::fs::write(
            dir.path().join("answers.toml"),
            answers_toml(&time.to_string(), None),
        )
        .unwrap();
        Appliance { dir, time }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn command(&self, script: &str, out: &str, request: Option<&str>) -> Command {
        let mut cmd = rootcellar();
        cmd.args(["ceremony", "run"])
            .arg(repo_file(&format!("ceremony/{script}.toml")))
            .arg("--rehearsal")
            .arg("--state")
            .arg(self.path("state"))
            .arg("--answers")
            .arg(self.path("answers.toml"))
            .arg("--out")
            .arg(self.path(out));
        if let Some(request) = request {
            cmd.arg("--inputs").arg(self.path(request));
        }
        cmd
    }

    /// Lays out the request a ceremony takes from what earlier ones delivered (and, for the
    /// trust root, what the online side builds from them).
    pub(crate) fn prepare(&self, script: &str) {
        let Some((_, _, Some(request))) = SEQUENCE.iter().find(|(s, _, _)| *s == script) else {
            return;
        };
        let request = self.path(request);
        std::fs::create_dir_all(&request).unwrap();
        match script {
            "issue-intermediate" => {
                std::fs::copy(self.path("root-init/root.pem"), request.join("root.pem")).unwrap();
                for name in ["fulcio", "tsa"] {
                    let csr = openssl_csr(
                        self.dir.path(),
                        name,
                        "prime256v1",
                        &format!("/O=Example/CN={name}"),
                    );
                    std::fs::rename(csr, request.join(format!("{name}.csr"))).unwrap();
                }
            }
            "rotate-tuf-root" => copy_dir(&self.path("root-init/tuf"), &request.join("tuf")),
            "publish-trust-root" => {
                copy_dir(&self.path("rotated/tuf-rotated"), &request.join("tuf"));
                std::fs::write(self.path("trustroot.toml"), TRUSTROOT_CONFIG).unwrap();
                let built = rootcellar()
                    .args(["trustroot", "build", "--config"])
                    .arg(self.path("trustroot.toml"))
                    .arg("--out")
                    .arg(&request)
                    .output()
                    .unwrap();
                assert!(built.status.success(), "trustroot build: {}", text(&built));
            }
            "issue-crl" => {
                std::fs::copy(self.path("root-init/root.pem"), request.join("root.pem")).unwrap();
                let tsa = raw_serial(&self.path("intermediates/intermediate-tsa.pem"));
                std::fs::write(
                    request.join("revoke.txt"),
                    format!("# the TSA intermediate\n{tsa}\n"),
                )
                .unwrap();
            }
            "refresh-timestamp" => {
                copy_dir(&self.path("published/tuf-published"), &request.join("tuf"))
            }
            "restore-keys" => {
                std::fs::copy(
                    self.path("backup/root-ca.backup.json"),
                    request.join("root-ca.backup.json"),
                )
                .unwrap();
            }
            _ => {}
        }
    }

    /// The keys on each rehearsal token as the token itself shows them: label → (public
    /// halves by label, private halves by label). Private halves are listed with the token's
    /// rehearsal PIN; the root token's PIN is split by root-init, so its private halves are
    /// listed as `None` (its public halves still count). (SoftHSM2 can leave the file of an
    /// object it was writing when killed, empty or cut short; it does not load it, and neither
    /// is a key, so files are not counted.)
    pub(crate) fn token_keys(&self) -> BTreeMap<String, KeyHalves> {
        let conf = self.path("state/rehearsal/softhsm2.conf");
        let pkcs11_tool = |args: &[&str]| {
            let out = Command::new("pkcs11-tool")
                .env("SOFTHSM2_CONF", &conf)
                .args(["--module", softhsm_module().to_str().unwrap()])
                .args(args)
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let labels_of = |listing: &str| {
            let mut labels = BTreeMap::new();
            for line in listing.lines() {
                if let Some(l) = line.trim().strip_prefix("label:") {
                    *labels.entry(l.trim().to_string()).or_insert(0) += 1;
                }
            }
            labels
        };
        let mut found = BTreeMap::new();
        for line in pkcs11_tool(&["--list-token-slots"]).1.lines() {
            let Some(label) = line.trim().strip_prefix("token label") else {
                continue;
            };
            let label = label.trim_start_matches([' ', ':']).trim().to_string();
            let list = |kind: &str, pin: Option<&str>| {
                let mut args = vec!["--token-label", &label, "--list-objects", "--type", kind];
                if let Some(pin) = pin {
                    args.extend(["--login", "--pin", pin]);
                }
                pkcs11_tool(&args)
            };
            let public = labels_of(&list("pubkey", None).1);
            let pin =
                std::fs::read_to_string(self.path(&format!("state/rehearsal/pins/{label}.pin")))
                    .unwrap_or_default();
            let private = match list("privkey", Some(pin.trim())) {
                (true, listing) if label != "root-ca" => Some(labels_of(&listing)),
                _ => None,
            };
            found.insert(label, KeyHalves { public, private });
        }
        found
    }
}

/// A token's keys: public and private halves counted by label.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KeyHalves {
    public: BTreeMap<String, usize>,
    private: Option<BTreeMap<String, usize>>,
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, killing it with SIGKILL after `delay` if it is still running; true when it was
/// killed.
fn run_and_kill(mut cmd: Command, delay: Duration) -> bool {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if start.elapsed() >= delay {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// What a round ended with.
#[derive(Debug, Default)]
struct Round {
    kills: usize,
    unresumable: Vec<String>,
}

fn check_outputs(appliance: &Appliance) -> Vec<String> {
    let mut problems = Vec::new();
    check_certificates(appliance, &mut problems);
    check_tuf(appliance, &mut problems);
    check_trust_root(appliance, &mut problems);
    check_crl(appliance, &mut problems);
    check_backup_and_restore(appliance, &mut problems);
    let journal = rootcellar()
        .args(["journal", "verify", "--state"])
        .arg(appliance.path("state"))
        .output()
        .unwrap();
    if !journal.status.success() {
        problems.push(format!("journal verify: {}", text(&journal)));
    }
    problems
}

/// The root and the intermediates verify, and no two carry the same serial.
fn check_certificates(appliance: &Appliance, problems: &mut Vec<String>) {
    let root = appliance.path("root-init/root.pem");
    if !openssl_verify(&root, &root).status.success() {
        problems.push("root.pem does not verify".into());
    }
    let mut serials = BTreeMap::new();
    serials.insert(serial(&root), "root.pem");
    for name in ["intermediate-fulcio.pem", "intermediate-tsa.pem"] {
        let cert = appliance.path(&format!("intermediates/{name}"));
        let out = openssl_verify(&root, &cert);
        if !out.status.success() {
            problems.push(format!("{name} does not verify: {}", text(&out)));
        }
        if let Some(other) = serials.insert(serial(&cert), name) {
            problems.push(format!("{name} has the serial of {other}"));
        }
    }
}

/// Every (role, version) among the metadata files of `repos` → the distinct `signed` parts
/// published under it.
fn tuf_versions(repos: &[PathBuf]) -> BTreeMap<(String, u64), BTreeSet<String>> {
    let mut versions: BTreeMap<(String, u64), BTreeSet<String>> = BTreeMap::new();
    for repo in repos {
        let Ok(entries) = std::fs::read_dir(repo.join("metadata")) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let Ok(doc) = serde_json::from_slice::<serde_json::Value>(
                &std::fs::read(&path).unwrap_or_default(),
            ) else {
                continue;
            };
            let signed = &doc["signed"];
            let (Some(role), Some(version)) =
                (signed["_type"].as_str(), signed["version"].as_u64())
            else {
                continue;
            };
            versions
                .entry((role.to_string(), version))
                .or_default()
                .insert(signed.to_string());
        }
    }
    versions
}

/// The rotated and the published repositories verify from root v1 (rootcellar; the published
/// one with python-tuf too, downloading the trust root), and no TUF version was signed twice
/// with different contents across root-init, the rotation and the publication.
fn check_tuf(appliance: &Appliance, problems: &mut Vec<String>) {
    let repos = [
        appliance.path("root-init/tuf"),
        appliance.path("rotated/tuf-rotated"),
        appliance.path("published/tuf-published"),
        appliance.path("refreshed/tuf-refreshed"),
    ];
    for repo in &repos[1..] {
        let name = repo.file_name().unwrap().to_string_lossy().into_owned();
        if repo.join("metadata/3.root.json").exists() {
            problems.push(format!("{name}: a TUF root version was used twice"));
        }
        let verified = rootcellar()
            .args(["tuf", "verify", "--trusted-root"])
            .arg(repo.join("metadata/1.root.json"))
            .arg(repo)
            .output()
            .unwrap();
        let walked = String::from_utf8_lossy(&verified.stdout).contains("root v1 → v2");
        if !verified.status.success() || !walked {
            problems.push(format!("tuf verify {name}: {}", text(&verified)));
        }
    }
    for ((role, version), contents) in tuf_versions(&repos) {
        if contents.len() > 1 {
            problems.push(format!(
                "TUF {role} version {version} was signed {} times with different contents",
                contents.len()
            ));
        }
    }
    let request = appliance.path("publish-request");
    if let Err(refusal) = python_tuf_check(
        &repos[3],
        &[
            &request.join("trusted_root.json"),
            &request.join("signing_config.v0.2.json"),
            &appliance.path("root-init/root.pem"),
        ],
    ) {
        problems.push(format!("python-tuf: {refusal}"));
    }
}

/// The published `trusted_root.json` (python-tuf checked it is the one built) parses, and its
/// certificate authority's chain is the Fulcio intermediate and the root the appliance issued.
fn check_trust_root(appliance: &Appliance, problems: &mut Vec<String>) {
    let path = appliance.path("publish-request/trusted_root.json");
    let doc: serde_json::Value =
        match serde_json::from_slice(&std::fs::read(&path).unwrap_or_default()) {
            Ok(doc) => doc,
            Err(e) => return problems.push(format!("trusted_root.json: {e}")),
        };
    let der = |name: &str| {
        let pem = std::fs::read(appliance.path(name)).unwrap();
        x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents
    };
    let expected = [
        der("intermediates/intermediate-fulcio.pem"),
        der("root-init/root.pem"),
    ];
    let chain: Vec<Vec<u8>> = doc["certificateAuthorities"][0]["certChain"]["certificates"]
        .as_array()
        .map(|certs| {
            certs
                .iter()
                .filter_map(|c| c["rawBytes"].as_str())
                .filter_map(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .collect()
        })
        .unwrap_or_default();
    if chain != expected {
        problems.push(format!(
            "trusted_root.json: the CA chain is not the Fulcio intermediate and the root ({} \
             certificates)",
            chain.len()
        ));
    }
}

/// The CRL verifies against the root, is numbered by the ceremony's time, revokes exactly the
/// TSA intermediate: openssl refuses it and still accepts the Fulcio intermediate.
fn check_crl(appliance: &Appliance, problems: &mut Vec<String>) {
    let root = appliance.path("root-init/root.pem");
    let crl = appliance.path("crl/root.crl.pem");
    let (root_arg, crl_arg) = (root.to_str().unwrap(), crl.to_str().unwrap());
    let verified = openssl(&[
        "crl", "-in", crl_arg, "-CAfile", root_arg, "-noout", "-verify",
    ]);
    if !verified.status.success() {
        problems.push(format!("the CRL does not verify: {}", text(&verified)));
    }
    let number = openssl(&["crl", "-in", crl_arg, "-noout", "-crlnumber"]);
    let number = String::from_utf8_lossy(&number.stdout);
    let number = number.trim().trim_start_matches("crlNumber=");
    let number = u64::from_str_radix(number.trim_start_matches("0x"), 16).ok();
    if number != Some(appliance.time.as_second() as u64) {
        problems.push(format!(
            "CRL number {number:?}, expected the ceremony time {}",
            appliance.time.as_second()
        ));
    }
    let listing = openssl(&["crl", "-in", crl_arg, "-noout", "-text"]);
    let revoked: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Serial Number:"))
        .map(normal_serial)
        .collect();
    let tsa = appliance.path("intermediates/intermediate-tsa.pem");
    if revoked != [serial(&tsa)] {
        problems.push(format!(
            "the CRL revokes {revoked:?}, expected the TSA intermediate {}",
            serial(&tsa)
        ));
    }
    for (name, revoked) in [
        ("intermediate-tsa.pem", true),
        ("intermediate-fulcio.pem", false),
    ] {
        let cert = appliance.path(&format!("intermediates/{name}"));
        let checked = openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            root_arg,
            "-CRLfile",
            crl_arg,
            cert.to_str().unwrap(),
        ]);
        if checked.status.success() == revoked {
            problems.push(format!(
                "{name} with the CRL: {}",
                if revoked { "still verifies" } else { "refused" }
            ));
        }
    }
}

/// The backup holds the root CA key once, wrapped, and its split was delivered; the restore
/// rebuilt that key (same fingerprint) in the new token, where it signs a CRL that verifies
/// against the original root certificate.
fn check_backup_and_restore(appliance: &Appliance, problems: &mut Vec<String>) {
    let original = std::fs::read(appliance.path("root-init/root-ca.pub.pem")).unwrap();
    let original = rootcellar::keys::PublicKey::from_spki(&original).unwrap();
    let backup: serde_json::Value = match serde_json::from_slice(
        &std::fs::read(appliance.path("backup/root-ca.backup.json")).unwrap_or_default(),
    ) {
        Ok(backup) => backup,
        Err(e) => return problems.push(format!("root-ca.backup.json: {e}")),
    };
    let keys = backup["keys"].as_array().cloned().unwrap_or_default();
    let wrapped: Vec<(String, Option<String>)> = keys
        .iter()
        .map(|k| {
            let fingerprint = k["public_key_pem"]
                .as_str()
                .and_then(|p| rootcellar::keys::PublicKey::from_spki(p.as_bytes()).ok())
                .map(|p| p.fingerprint());
            (k["label"].as_str().unwrap_or("").to_string(), fingerprint)
        })
        .collect();
    if wrapped != [("root-ca".to_string(), Some(original.fingerprint()))] {
        problems.push(format!(
            "the backup holds {wrapped:?}, expected the root CA key once"
        ));
    }
    let set = backup["set_id"].as_str().unwrap_or("");
    let shares = std::fs::read_dir(appliance.path(&format!("state/rehearsal/shares/backup/{set}")))
        .map(|d| d.count())
        .unwrap_or(0);
    if shares != 3 {
        problems.push(format!(
            "the backup's split {set}: {shares} shares delivered, expected 3"
        ));
    }
    let report =
        std::fs::read_to_string(appliance.path("restored/restored-keys.txt")).unwrap_or_default();
    let expected = format!("root-ca SHA256:{}", original.fingerprint());
    if report.trim() != expected {
        problems.push(format!(
            "restored-keys.txt says {:?}, expected {expected:?}",
            report.trim()
        ));
    }
    let uri = format!(
        "pkcs11:token=root-ca-2;object=root-ca?module-path={}&pin-source={}",
        softhsm_module().display(),
        appliance
            .path("state/rehearsal/pins/root-ca-2.pin")
            .display()
    );
    let root = appliance.path("root-init/root.pem");
    let crl = appliance.path("restored.crl.pem");
    let _ = std::fs::remove_file(&crl);
    let signed = rootcellar()
        .env(
            "SOFTHSM2_CONF",
            appliance.path("state/rehearsal/softhsm2.conf"),
        )
        .args(["x509", "crl", "--issuer-cert"])
        .arg(&root)
        .args(["--issuer-key", &uri, "--out"])
        .arg(&crl)
        .output()
        .unwrap();
    if !signed.status.success() {
        return problems.push(format!("the restored key does not sign: {}", text(&signed)));
    }
    let verified = openssl(&[
        "crl",
        "-in",
        crl.to_str().unwrap(),
        "-CAfile",
        root.to_str().unwrap(),
        "-noout",
        "-verify",
    ]);
    if !verified.status.success() {
        problems.push(format!(
            "a CRL signed by the restored key does not verify: {}",
            text(&verified)
        ));
    }
}

/// Runs the sequence once without kills: how long each ceremony takes, and the keys it makes.
fn clean_run() -> (Vec<Duration>, BTreeMap<String, KeyHalves>) {
    let appliance = Appliance::new();
    let mut durations = Vec::new();
    for (script, out, request) in SEQUENCE {
        appliance.prepare(script);
        let start = Instant::now();
        let output = appliance.command(script, out, request).output().unwrap();
        assert!(output.status.success(), "{script}: {}", text(&output));
        durations.push(start.elapsed());
    }
    assert_eq!(check_outputs(&appliance), Vec::<String>::new());
    (durations, appliance.token_keys())
}

/// Runs `script` killed 1 to 3 times at random moments up to 1.2 times its clean duration, then
/// without kills until it finishes; three failed runs in a row without a kill is a ceremony
/// that cannot be resumed (returned as what its last run said).
fn run_killed(
    appliance: &Appliance,
    (script, out, request): (&str, &str, Option<&str>),
    duration: Duration,
    rng: &mut impl Rng,
    kills: &mut usize,
) -> Result<(), String> {
    let kills_here = rng.gen_range(1..=3);
    for _ in 0..kills_here {
        let limit = duration.as_micros() as u64 * 12 / 10;
        let delay = Duration::from_micros(rng.gen_range(0..=limit.max(1)));
        if run_and_kill(appliance.command(script, out, request), delay) {
            *kills += 1;
        }
    }
    let mut last = None;
    for _ in 0..3 {
        if appliance.path(out).exists() {
            return Ok(());
        }
        let output = appliance.command(script, out, request).output().unwrap();
        if output.status.success() {
            return Ok(());
        }
        last = Some(text(&output));
    }
    if appliance.path(out).exists() {
        return Ok(());
    }
    let last = last.unwrap_or_default();
    let tail: Vec<&str> = last.lines().rev().take(3).collect();
    Err(format!(
        "{script}: {}",
        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
    ))
}

#[test]
#[ignore = "kill-anywhere rounds: make test runs a few, make crash-test ROUNDS=N more (needs --features test-hooks)"]
fn ceremonies_killed_at_random_moments_resume_to_the_same_result() {
    let rounds: usize = std::env::var("ROOTCELLAR_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(6);
    let seed: u64 = std::env::var("ROOTCELLAR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| jiff::Timestamp::now().as_nanosecond() as u64);
    println!("kill-anywhere: {rounds} rounds, seed {seed} (ROOTCELLAR_CRASH_SEED to repeat)");
    let started = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (durations, expected_keys) = clean_run();
    println!(
        "clean run: {}",
        SEQUENCE
            .iter()
            .zip(&durations)
            .map(|((script, _, _), d)| format!("{script} {} ms", d.as_millis()))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut failures = Vec::new();
    let mut kills = 0;
    for round in 0..rounds {
        let appliance = Appliance::new();
        let mut result = Round::default();
        for (i, ceremony) in SEQUENCE.into_iter().enumerate() {
            appliance.prepare(ceremony.0);
            if let Err(e) = run_killed(
                &appliance,
                ceremony,
                durations[i],
                &mut rng,
                &mut result.kills,
            ) {
                result.unresumable.push(e);
                break;
            }
        }
        kills += result.kills;
        let mut problems = result.unresumable.clone();
        if problems.is_empty() {
            problems.extend(check_outputs(&appliance));
            let keys = appliance.token_keys();
            if keys != expected_keys {
                problems.push(format!(
                    "tokens differ from a clean run: {keys:?}, expected {expected_keys:?}"
                ));
            }
        }
        if !problems.is_empty() {
            let kept = appliance.dir.keep();
            println!("round {round} (kept in {}): {problems:?}", kept.display());
            failures.push((round, problems));
        }
    }
    println!(
        "kill-anywhere: {rounds} rounds, {kills} kills, {} rounds failed, {} s (seed {seed})",
        failures.len(),
        started.elapsed().as_secs()
    );
    assert!(failures.is_empty(), "seed {seed}: {failures:#?}");
}

impl Appliance {
    /// Runs root-init with the crash hook at `point`, and checks that it fired.
    fn root_init_killed_at(&self, point: &str) {
        let crashed = self
            .command("root-init", "root-init", None)
            .env("ROOTCELLAR_TEST_CRASH_AT", point)
            .output()
            .unwrap();
        assert!(!crashed.status.success(), "the crash hook did not fire");
    }

    /// Runs root-init again, as the operator resumes it, and checks that it finished.
    fn root_init_resumed(&self) {
        let resumed = self
            .command("root-init", "root-init", None)
            .output()
            .unwrap();
        assert!(resumed.status.success(), "{}", text(&resumed));
    }

    /// How many halves labelled `label` token `token` holds: (public, private).
    fn halves(&self, token: &str, label: &str) -> (Option<usize>, Option<usize>) {
        let keys = self.token_keys();
        let halves = &keys[token];
        (
            halves.public.get(label).copied(),
            halves.private.as_ref().and_then(|p| p.get(label).copied()),
        )
    }
}

/// The intended id recorded for key `name` in the ceremony's progress record.
fn intended_id(appliance: &Appliance, name: &str) -> String {
    let dir = std::fs::read_dir(appliance.path("state/ceremonies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    std::fs::read_to_string(dir.join("progress.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "key-intent" && e["name"] == name)
        .map(|e| e["intent"]["id"].as_str().unwrap().to_string())
        .expect("the intent was recorded before the token was asked")
}

pub(crate) fn journal_actions(appliance: &Appliance) -> Vec<String> {
    let out = rootcellar()
        .args(["journal", "show", "--json", "--state"])
        .arg(appliance.path("state"))
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["action"].as_str().unwrap(),
                r["detail"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_key_made_but_not_recorded_is_adopted_not_made_again() {
    // Killed after the token made custodian 2's key, before anything recorded it: the resume
    // finds the key under its intended id and adopts it.
    let appliance = Appliance::new();
    appliance.root_init_killed_at("generate-keys:made-key-tuf-root-2");
    appliance.root_init_resumed();
    let actions = journal_actions(&appliance);
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("key.adopt") && a.contains("token=custodian-2")),
        "{actions:#?}"
    );
    assert_eq!(
        appliance.halves("custodian-2", "tuf-root"),
        (Some(1), Some(1))
    );
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_lone_half_under_the_intended_id_is_removed_and_the_key_made_again() {
    // Killed with the intent recorded and the token not yet asked; then a lone public half
    // appears under the intended id (what a kill inside C_GenerateKeyPair leaves), written with
    // OpenSC's pkcs11-tool. The resume removes it and makes the key.
    let appliance = Appliance::new();
    appliance.root_init_killed_at("generate-keys:intent-key-tuf-root-1");
    let id = intended_id(&appliance, "tuf-root-1");
    let der = appliance.path("lone.der");
    let key = openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        appliance.path("lone.key").to_str().unwrap(),
    ]);
    assert!(key.status.success());
    let public = openssl(&[
        "ec",
        "-in",
        appliance.path("lone.key").to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ]);
    assert!(public.status.success());
    let pin =
        std::fs::read_to_string(appliance.path("state/rehearsal/pins/custodian-1.pin")).unwrap();
    let written = Command::new("pkcs11-tool")
        .env(
            "SOFTHSM2_CONF",
            appliance.path("state/rehearsal/softhsm2.conf"),
        )
        .args([
            "--module",
            softhsm_module().to_str().unwrap(),
            "--token-label",
            "custodian-1",
        ])
        .args([
            "--login",
            "--pin",
            pin.trim(),
            "--write-object",
            der.to_str().unwrap(),
        ])
        .args(["--type", "pubkey", "--id", &id, "--label", "tuf-root"])
        .output()
        .unwrap();
    assert!(written.status.success(), "{}", text(&written));
    appliance.root_init_resumed();
    let actions = journal_actions(&appliance);
    assert!(
        actions.iter().any(|a| a.starts_with("key.discard")
            && a.contains("token=custodian-1")
            && a.contains("left 1 public and 0 private")),
        "{actions:#?}"
    );
    assert_eq!(
        appliance.halves("custodian-1", "tuf-root"),
        (Some(1), Some(1))
    );
    // The key made is the token's own, not the one written in: it signed the TUF root.
    let verified = rootcellar()
        .args(["tuf", "verify", "--trusted-root"])
        .arg(appliance.path("root-init/tuf/metadata/1.root.json"))
        .arg(appliance.path("root-init/tuf"))
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", text(&verified));
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_rehearsal_token_made_before_a_kill_is_finished_with_its_recorded_pin() {
    // Killed after C_InitToken made custodian 1's rehearsal token, before its PIN file was
    // in place: the resume opens it with the PIN recorded beforehand.
    let appliance = Appliance::new();
    appliance.root_init_killed_at("rehearsal:made-token-custodian-1");
    assert!(appliance
        .path("state/rehearsal/pins/custodian-1.pin.new")
        .exists());
    assert!(!appliance
        .path("state/rehearsal/pins/custodian-1.pin")
        .exists());
    appliance.root_init_resumed();
    assert!(appliance
        .path("state/rehearsal/pins/custodian-1.pin")
        .exists());
    assert_eq!(
        appliance.halves("custodian-1", "tuf-root"),
        (Some(1), Some(1))
    );
}

impl Appliance {
    /// The directory of rehearsal token `label`: SoftHSM2 names it by a UUID and keeps the
    /// label, blank-padded to 32 bytes, in its `token.object`.
    fn token_dir(&self, label: &str) -> PathBuf {
        let field = format!("{label:<32}");
        std::fs::read_dir(self.path("state/rehearsal/tokens"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|dir| {
                std::fs::read(dir.join("token.object"))
                    .unwrap_or_default()
                    .windows(32)
                    .any(|w| w == field.as_bytes())
            })
            .unwrap_or_else(|| panic!("no rehearsal token {label}"))
    }

    /// Rewrites the private key object on rehearsal token `label` as SoftHSM2 leaves it when
    /// killed inside `C_GenerateKeyPair` or `C_UnwrapKey` after it wrote the object's template
    /// (label, id) and before the key material: `CKA_EC_PARAMS` and `CKA_VALUE` empty, and
    /// `CKA_LOCAL` false. (Met in the kill-anywhere rounds once in a few hundred, as
    /// `CKR_GENERAL_ERROR` from `C_Sign` once the resume had adopted the key.) SoftHSM2's object
    /// file: a generation number, then each attribute as its type, its kind and its value (1: a
    /// byte; 2: a number; 3 and 4: a length and that many bytes; 5: a count and as many
    /// numbers), every number 8 bytes big-endian.
    fn strip_private_key_material(&self, label: &str) {
        const CKA_CLASS: u64 = 0x0;
        const CKA_VALUE: u64 = 0x11;
        const CKA_LOCAL: u64 = 0x163;
        const CKA_EC_PARAMS: u64 = 0x180;
        const CKO_PRIVATE_KEY: u64 = 3;
        let number =
            |bytes: &[u8], at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        let mut stripped = 0;
        for entry in std::fs::read_dir(self.token_dir(label)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "object")
                || path.file_name().is_some_and(|n| n == "token.object")
            {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            if bytes.len() < 8 {
                continue;
            }
            let (mut out, mut at, mut class) = (bytes[..8].to_vec(), 8, None);
            while at < bytes.len() {
                let (kind_of, kind) = (number(&bytes, at), number(&bytes, at + 8));
                out.extend_from_slice(&bytes[at..at + 16]);
                at += 16;
                let len = match kind {
                    1 => 1,
                    2 => 8,
                    3 | 4 => 8 + number(&bytes, at) as usize,
                    5 => 8 + 8 * number(&bytes, at) as usize,
                    _ => panic!("{}: unknown attribute kind {kind}", path.display()),
                };
                let value = &bytes[at..at + len];
                at += len;
                match kind_of {
                    CKA_CLASS => class = Some(number(value, 0)),
                    CKA_VALUE | CKA_EC_PARAMS => {
                        out.extend_from_slice(&0u64.to_be_bytes());
                        continue;
                    }
                    CKA_LOCAL => {
                        out.push(0);
                        continue;
                    }
                    _ => {}
                }
                out.extend_from_slice(value);
            }
            if class == Some(CKO_PRIVATE_KEY) {
                std::fs::write(&path, out).unwrap();
                stripped += 1;
            }
        }
        assert_eq!(stripped, 1, "private key objects on {label}");
    }

    /// A `pkcs11:` URI for key `object` on rehearsal token `token`, with its module and the
    /// token's rehearsal PIN file.
    fn rehearsal_uri(&self, token: &str, object: &str) -> String {
        format!(
            "pkcs11:token={token};object={object}?module-path={}&pin-source={}",
            softhsm_module().display(),
            self.path(&format!("state/rehearsal/pins/{token}.pin"))
                .display()
        )
    }
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_key_pair_without_its_key_material_is_made_again_not_adopted() {
    // Killed after the token made custodian 1's key, before anything recorded it, with the
    // private half as SoftHSM2 leaves it when killed between writing its template and its key.
    let appliance = Appliance::new();
    appliance.root_init_killed_at("generate-keys:made-key-tuf-root-1");
    appliance.strip_private_key_material("custodian-1");
    // Such a key is refused for signing, named, with what to do, before the token would
    // answer C_Sign with a bare CKR_GENERAL_ERROR.
    let signed = rootcellar()
        .env(
            "SOFTHSM2_CONF",
            appliance.path("state/rehearsal/softhsm2.conf"),
        )
        .args(["x509", "root", "--subject", "CN=x", "--key"])
        .arg(appliance.rehearsal_uri("custodian-1", "tuf-root"))
        .arg("--out")
        .arg(appliance.path("x.pem"))
        .output()
        .unwrap();
    let said = text(&signed);
    assert!(
        !signed.status.success()
            && said.contains("object=tuf-root")
            && said.contains("holds no key material")
            && said.contains("restore it from its backup"),
        "{said}"
    );
    // The resume does not adopt it: it is removed (journaled) and the key made again, which
    // signs TUF root v1.
    appliance.root_init_resumed();
    let actions = journal_actions(&appliance);
    assert!(
        actions.iter().any(|a| a.starts_with("key.discard")
            && a.contains("token=custodian-1")
            && a.contains("left 1 public and 1 private")),
        "{actions:#?}"
    );
    assert_eq!(
        appliance.halves("custodian-1", "tuf-root"),
        (Some(1), Some(1))
    );
    let verified = rootcellar()
        .args(["tuf", "verify", "--trusted-root"])
        .arg(appliance.path("root-init/tuf/metadata/1.root.json"))
        .arg(appliance.path("root-init/tuf"))
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", text(&verified));
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn an_interrupted_restore_adopts_the_whole_key_and_removes_what_a_kill_left() {
    // (where the restore is stopped, what is done to the token then, what the resume journals)
    let cases: [(&str, bool, &str); 3] = [
        // Restored whole, not yet recorded: adopted.
        ("unwrap:after-hsm", false, "key.adopt"),
        // Unwrapped, its public half not yet made: the lone private half is removed.
        (
            "pkcs11:after-C_UnwrapKey-root-ca-2/root-ca",
            false,
            "left 0 public and 1 private",
        ),
        // Unwrapped as a kill inside C_UnwrapKey leaves it, without its key: removed.
        ("unwrap:after-hsm", true, "left 1 public and 1 private"),
    ];
    for (point, strip, journaled) in cases {
        let appliance = Appliance::new();
        for ceremony in [SEQUENCE[0], SEQUENCE[5]] {
            let (script, out, request) = ceremony;
            let output = appliance.command(script, out, request).output().unwrap();
            assert!(output.status.success(), "{script}: {}", text(&output));
        }
        let (script, out, request) = SEQUENCE[6];
        appliance.prepare(script);
        let stopped = appliance
            .command(script, out, request)
            .env("ROOTCELLAR_TEST_CRASH_AT", point)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&stopped.stderr).contains(&format!("aborting at {point}")),
            "{point}: {}",
            text(&stopped)
        );
        if strip {
            appliance.strip_private_key_material("root-ca-2");
        }
        let resumed = appliance.command(script, out, request).output().unwrap();
        assert!(resumed.status.success(), "{point}: {}", text(&resumed));
        let actions = journal_actions(&appliance);
        assert!(
            actions
                .iter()
                .any(|a| a.contains("token=root-ca-2") && a.contains(journaled)),
            "{point}: {actions:#?}"
        );
        assert_eq!(
            appliance.halves("root-ca-2", "root-ca"),
            (Some(1), Some(1)),
            "{point}"
        );
        let mut problems = Vec::new();
        check_backup_and_restore(&appliance, &mut problems);
        assert!(problems.is_empty(), "{point}: {problems:#?}");
    }
}
