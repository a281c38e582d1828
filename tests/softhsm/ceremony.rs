//! Ceremonies: scripts checked, rehearsals that verify, and crashes at every step boundary and
//! inside HSM steps, each followed by a resume that completes without repeating HSM work.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

/// A state directory and answers file for unattended rehearsals.
struct Rehearsal {
    dir: tempfile::TempDir,
}

impl Rehearsal {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("answers.toml"),
            answers_toml(&clock_time(), None),
        )
        .unwrap();
        Rehearsal { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(
        &self,
        script: &str,
        inputs: Option<&Path>,
        out: &str,
        crash_at: Option<&str>,
    ) -> Output {
        let mut cmd = rehearsal_command(
            script,
            &self.path("state"),
            &self.path("answers.toml"),
            inputs,
            &self.path(out),
        );
        if let Some(point) = crash_at {
            cmd.env("ROOTCELLAR_TEST_CRASH_AT", point);
        }
        cmd.output().unwrap()
    }

    /// The key pairs on a rehearsal token, counted by their public halves as OpenSC's
    /// pkcs11-tool lists them (no login: the root token's PIN is split by then).
    fn key_pairs(&self, token: &str) -> usize {
        let out = Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", self.path("state/rehearsal/softhsm2.conf"))
            .args([
                "--module",
                softhsm_module().to_str().unwrap(),
                "--token-label",
                token,
            ])
            .args(["--list-objects", "--type", "pubkey"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .matches("Public Key Object")
            .count()
    }

    fn progress(&self, ceremony: &str) -> Vec<serde_json::Value> {
        let dir = std::fs::read_dir(self.path("state/ceremonies"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(ceremony)
            })
            .unwrap();
        std::fs::read_to_string(dir.join("progress.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "ceremony failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn serial(cert: &Path) -> String {
    let out = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-serial"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn every_script_in_ceremony_passes_check() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo_file("ceremony")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = rootcellar()
                .args(["ceremony", "check", path.to_str().unwrap()])
                .output()
                .unwrap();
            assert_ok(&out);
            checked += 1;
        }
    }
    assert!(checked >= 2, "only {checked} scripts found");
}

#[test]
fn broken_scripts_report_every_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(repo_file("ceremony/root-init.toml")).unwrap();
    let policy = repo_file("tuf-repo/policy.toml");
    let base = base.replace("../tuf-repo/policy.toml", policy.to_str().unwrap());
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "several",
            base.replace("quorum = 2", "quorum = 5")
                .replace(
                    "uri = \"pkcs11:token=root-ca;object=root-ca\"",
                    "uri = \"pkcs11:object=root-ca\"",
                )
                .replace("keys = [\"root-ca\",", "keys = [\"root-cA\","),
            vec![
                "4 problem(s)",
                "roles.quorum: 5 exceeds the 3 custodians",
                "keys.root-ca.uri",
                "key \"root-cA\" is not in [keys]",
            ],
        ),
        (
            "unknown-field",
            base.replace("days = 3652", "days = 3652\nlifetime = 1"),
            vec!["unknown field `lifetime`"],
        ),
        (
            "unknown-fields-everywhere",
            base.replace("days = 3652", "days = 3652\nlifetime = 1")
                .replace("[ceremony]\n", "[ceremony]\ncolour = \"red\"\n")
                .replace(
                    "uri = \"pkcs11:token=root-ca;object=root-ca\"",
                    "url = \"x\"",
                ),
            vec![
                "unknown field `lifetime`",
                "ceremony: unknown field `colour`",
                "keys.root-ca: unknown field `url`",
            ],
        ),
        (
            "pin-in-uri",
            base.replace(
                "object=tuf-targets\"",
                "object=tuf-targets?pin-source=/tmp/pin\"",
            ),
            vec!["names a file holding its PIN: secrets are entered at the ceremony"],
        ),
        (
            "yubihsm-password-in-uri-and-no-auth-key",
            base.replace(
                "uri = \"pkcs11:token=custodian-1;object=tuf-root\"",
                "uri = \"yubihsm:connector=usb;label=tuf-root?password-source=/tmp/pw\"",
            ),
            vec![
                "keys.tuf-root-1.uri names a file holding its authentication key password",
                "keys.tuf-root-1.uri: a YubiHSM2 key needs auth-key=0xNNNN",
            ],
        ),
        (
            "missing-input",
            base.replace("targets = [\"root.pem\"]", "targets = [\"request.csr\"]"),
            vec!["\"request.csr\" is neither an input nor the output of an earlier step"],
        ),
        (
            "unproduced-output",
            base.replace(
                "outputs = [\"root.pem\",",
                "outputs = [\"crl.pem\", \"root.pem\",",
            ),
            vec!["outputs: \"crl.pem\" is not produced by any step"],
        ),
        (
            "duplicate-step",
            base.replace("id = \"root-certificate\"", "id = \"generate-keys\""),
            vec!["the id is used twice"],
        ),
        (
            "bad-subject",
            base.replace(
                "subject = \"O=Example,CN=Example Root CA\"",
                "subject = \"Example Root\"",
            ),
            vec!["subject: invalid subject"],
        ),
        (
            "unmapped-policy-key",
            base.replace("root-custodian-3 = \"tuf-root-3\"\n", ""),
            vec!["root-custodian-3"],
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = rootcellar()
            .args(["ceremony", "check", path.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: accepted");
        for e in expected {
            assert!(err.contains(e), "{name}: expected {e:?} in:\n{err}");
        }
    }
}

#[test]
fn a_refresh_that_would_unlock_more_than_the_appliance_keys_is_refused_by_check() {
    // refresh-timestamp binds only snapshot and timestamp; binding a custodian's root key (its
    // token would be unlocked for nothing) or leaving the timestamp key unbound is a problem.
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(repo_file("ceremony/refresh-timestamp.toml")).unwrap();
    let policy = repo_file("tuf-repo/policy.toml");
    let base = base.replace("../tuf-repo/policy.toml", policy.to_str().unwrap());
    let cases = [
        (
            "root-key-bound",
            base.replace(
                "timestamp = \"tuf-timestamp\"\n",
                "timestamp = \"tuf-timestamp\"\nroot-custodian-1 = \"tuf-root-1\"\n",
            ) + "\n[keys.tuf-root-1]\nuri = \"pkcs11:token=custodian-1;object=tuf-root\"\n",
            "key \"root-custodian-1\" is not a snapshot or timestamp key",
        ),
        (
            "timestamp-unbound",
            base.replace("timestamp = \"tuf-timestamp\"\n", ""),
            "roles.timestamp.keys: key \"timestamp\" has no URI",
        ),
        (
            "timestamp-key-absent",
            base.replace(
                "output = \"tuf-refreshed\"\n",
                "output = \"tuf-refreshed\"\nabsent = { tuf-timestamp = \"tuf\" }\n",
            ),
            "absent: \"tuf-timestamp\" listed, but a refresh is signed by the appliance's own",
        ),
    ];
    for (name, text, expected) in cases {
        assert_ne!(text, base, "{name}: the script was not changed");
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = rootcellar()
            .args(["ceremony", "check", path.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: accepted");
        assert!(
            err.contains(expected),
            "{name}: expected {expected:?} in:\n{err}"
        );
    }
}

#[test]
fn root_init_and_intermediates_rehearsal_outputs_verify() {
    let r = Rehearsal::new();
    let out = r.run("ceremony/root-init.toml", None, "root-init", None);
    assert_ok(&out);
    let root = r.path("root-init/root.pem");
    let verified = openssl_verify(&root, &root);
    assert!(verified.status.success());
    let subject = openssl(&["x509", "-in", root.to_str().unwrap(), "-noout", "-subject"]);
    assert!(
        String::from_utf8_lossy(&subject.stdout).contains("REHEARSAL"),
        "rehearsal outputs say so"
    );
    python_tuf_accepts(&r.path("root-init/tuf"), &[&root]);
    let transcript = std::fs::read_to_string(r.path("root-init/transcript.md")).unwrap();
    assert!(
        transcript.contains("REHEARSAL")
            && transcript.contains("Olga")
            && transcript.contains("Witness 2:")
    );
    assert!(std::fs::read_to_string(r.path("root-init/transcript.html"))
        .unwrap()
        .starts_with("<!DOCTYPE html>"));

    // The online side's CSRs, and the root certificate, form the request.
    let request = r.path("request");
    std::fs::create_dir(&request).unwrap();
    std::fs::copy(&root, request.join("root.pem")).unwrap();
    for name in ["fulcio", "tsa"] {
        let csr = openssl_csr(
            r.dir.path(),
            name,
            "prime256v1",
            &format!("/O=Example/CN={name}"),
        );
        std::fs::rename(csr, request.join(format!("{name}.csr"))).unwrap();
    }
    let out = r.run(
        "ceremony/issue-intermediate.toml",
        Some(&request),
        "intermediates",
        None,
    );
    assert_ok(&out);
    for name in ["intermediate-fulcio.pem", "intermediate-tsa.pem"] {
        let cert = r.path(&format!("intermediates/{name}"));
        let verified = openssl_verify(&root, &cert);
        assert!(
            verified.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&verified.stderr)
        );
    }
    // Before signing, the preview showed each request's subject and the fingerprint of its
    // key, as openssl computes it from the CSR, for the witnesses to compare with the
    // requester's form.
    let transcript = std::fs::read_to_string(r.path("intermediates/transcript.md")).unwrap();
    for name in ["fulcio", "tsa"] {
        let der = openssl(&[
            "req",
            "-in",
            request.join(format!("{name}.csr")).to_str().unwrap(),
            "-pubkey",
            "-noout",
        ]);
        let pem = r.path(&format!("{name}.pub.pem"));
        std::fs::write(&pem, &der.stdout).unwrap();
        let read_aloud = openssl_fingerprint_read_aloud(&pem);
        let step = transcript
            .split("\n### ")
            .find(|s| s.contains(&format!("certifies O=Example, CN={name}, key ecdsa-p256")))
            .unwrap_or_else(|| panic!("{name}: {transcript}"));
        assert!(
            step.contains(&format!("request key: {read_aloud}")),
            "{step}"
        );
    }

    // A finished ceremony is not run twice.
    let again = r.run("ceremony/root-init.toml", None, "root-init-again", None);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already been completed"));
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn root_init_resumes_after_a_crash_at_every_point() {
    let script = std::fs::read_to_string(repo_file("ceremony/root-init.toml")).unwrap();
    let mut points: Vec<String> = Vec::new();
    for step in [
        "generate-keys",
        "split-root-pin",
        "root-certificate",
        "tuf-root-v1",
    ] {
        for point in ["before", "after-hsm", "after-outputs"] {
            points.push(format!("{step}:{point}"));
        }
    }
    for key in ["root-ca", "tuf-root-2", "tuf-timestamp"] {
        points.push(format!("generate-keys:after-key-{key}"));
    }
    assert!(script.contains("id = \"tuf-root-v1\""));
    for point in points {
        let r = Rehearsal::new();
        let crashed = r.run("ceremony/root-init.toml", None, "out", Some(&point));
        assert!(
            !crashed.status.success(),
            "{point}: the crash hook did not fire"
        );
        assert!(
            !r.path("out").exists(),
            "{point}: outputs delivered by a crashed run"
        );

        let resumed = r.run("ceremony/root-init.toml", None, "out", None);
        assert_ok(&resumed);
        let root = r.path("out/root.pem");
        let v = openssl_verify(&root, &root);
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
        python_tuf_accepts(&r.path("out/tuf"), &[&root]);

        // No key was generated twice, and each step completed exactly once.
        assert_eq!(r.key_pairs("root-ca"), 1, "{point}");
        assert_eq!(r.key_pairs("appliance"), 4, "{point}");
        for custodian in ["custodian-1", "custodian-2", "custodian-3"] {
            assert_eq!(r.key_pairs(custodian), 1, "{point}");
        }
        let events = r.progress("root-init");
        let completed: Vec<&str> = events
            .iter()
            .filter(|e| e["event"] == "complete")
            .map(|e| e["step"].as_str().unwrap())
            .collect();
        assert_eq!(
            completed,
            [
                "generate-keys",
                "split-root-pin",
                "root-certificate",
                "tuf-root-v1"
            ],
            "{point}"
        );
        let keys: BTreeSet<&str> = events
            .iter()
            .filter(|e| e["event"] == "key")
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(keys.len(), 8, "{point}: every key recorded once");
        // The certificate's key is the one recorded when it was generated.
        let generated = events
            .iter()
            .find(|e| e["event"] == "key" && e["name"] == "root-ca")
            .unwrap()["fingerprint"]
            .as_str()
            .unwrap()
            .to_string();
        // The audit journal's chain is intact across the crash, and records every step.
        let verified = rootcellar()
            .args(["journal", "verify", "--state"])
            .arg(r.path("state"))
            .output()
            .unwrap();
        assert_ok(&verified);
        let shown = rootcellar()
            .args(["journal", "show", "--state"])
            .arg(r.path("state"))
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert_eq!(shown.matches("ceremony.finish").count(), 1, "{point}");
        assert!(shown.matches("key.generate").count() >= 7, "{point}");
        let public = std::fs::read(r.path("out/root-ca.pub.pem")).unwrap();
        assert_eq!(
            rootcellar::keys::PublicKey::from_spki(&public)
                .unwrap()
                .fingerprint(),
            generated
        );
    }
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn an_interrupted_intermediate_ceremony_delivers_the_certificate_it_signed_once() {
    let r = Rehearsal::new();
    assert_ok(&r.run("ceremony/root-init.toml", None, "root-init", None));
    let request = r.path("request");
    std::fs::create_dir(&request).unwrap();
    std::fs::copy(r.path("root-init/root.pem"), request.join("root.pem")).unwrap();
    for name in ["fulcio", "tsa"] {
        let csr = openssl_csr(r.dir.path(), name, "prime256v1", &format!("/CN={name}"));
        std::fs::rename(csr, request.join(format!("{name}.csr"))).unwrap();
    }
    // The TSA certificate is signed, then the power fails before it is in place.
    let crashed = r.run(
        "ceremony/issue-intermediate.toml",
        Some(&request),
        "out",
        Some("tsa:after-hsm"),
    );
    assert!(!crashed.status.success());
    let instance = std::fs::read_dir(r.path("state/ceremonies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("issue-intermediate"))
        .unwrap();
    let fulcio_before = serial(&instance.join("work/intermediate-fulcio.pem"));
    let signed_tsa = serial(&instance.join("work/.step-tsa/intermediate-tsa.pem"));

    let resumed = r.run(
        "ceremony/issue-intermediate.toml",
        Some(&request),
        "out",
        None,
    );
    assert_ok(&resumed);
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("step fulcio: already completed"));
    let fulcio_after = serial(&r.path("out/intermediate-fulcio.pem"));
    let tsa_after = serial(&r.path("out/intermediate-tsa.pem"));
    assert_eq!(
        fulcio_before, fulcio_after,
        "the completed step was not redone"
    );
    assert_eq!(
        signed_tsa, tsa_after,
        "the certificate signed before the crash is adopted, not signed again"
    );
    assert_ne!(fulcio_after, tsa_after);
    let root = r.path("root-init/root.pem");
    for cert in ["out/intermediate-fulcio.pem", "out/intermediate-tsa.pem"] {
        let verified = openssl_verify(&root, &r.path(cert));
        assert!(verified.status.success());
    }
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_tampered_output_of_a_completed_step_stops_the_resume() {
    let r = Rehearsal::new();
    let crashed = r.run(
        "ceremony/root-init.toml",
        None,
        "out",
        Some("tuf-root-v1:before"),
    );
    assert!(!crashed.status.success());
    let instance = std::fs::read_dir(r.path("state/ceremonies"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(instance.join("work/root.pem"), "swapped").unwrap();
    let resumed = r.run("ceremony/root-init.toml", None, "out", None);
    assert!(!resumed.status.success());
    assert!(String::from_utf8_lossy(&resumed.stderr)
        .contains("output root.pem of completed step root-certificate was altered"));
    assert!(!r.path("out").exists());
}

/// Runs root-init, then prepares the issue-intermediate request; returns the rehearsal and the
/// directory of the root token's current shares.
fn after_root_init() -> (Rehearsal, PathBuf) {
    let r = Rehearsal::new();
    assert_ok(&r.run("ceremony/root-init.toml", None, "root-init", None));
    let request = r.path("request");
    std::fs::create_dir(&request).unwrap();
    std::fs::copy(r.path("root-init/root.pem"), request.join("root.pem")).unwrap();
    for name in ["fulcio", "tsa"] {
        let csr = openssl_csr(r.dir.path(), name, "prime256v1", &format!("/CN={name}"));
        std::fs::rename(csr, request.join(format!("{name}.csr"))).unwrap();
    }
    let sets = r.path("state/rehearsal/shares/root-ca");
    let set = std::fs::read_dir(&sets)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    (r, set)
}

#[test]
fn the_root_pin_is_split_and_only_a_quorum_of_valid_shares_unlocks_it() {
    let (r, set) = after_root_init();
    let shares: Vec<String> = (1..=3)
        .map(|i| std::fs::read_to_string(set.join(format!("custodian-{i}.share"))).unwrap())
        .collect();
    assert!(
        shares.iter().all(|s| s.starts_with("rootcellar-share:")),
        "{shares:?}"
    );
    // The token's original rehearsal PIN no longer opens it: the split replaced it.
    let old_pin = std::fs::read_to_string(r.path("state/rehearsal/pins/root-ca.pin")).unwrap();
    let login = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", r.path("state/rehearsal/softhsm2.conf"))
        .args([
            "--module",
            softhsm_module().to_str().unwrap(),
            "--token-label",
            "root-ca",
        ])
        .args([
            "--login",
            "--pin",
            old_pin.trim(),
            "--list-objects",
            "--type",
            "privkey",
        ])
        .output()
        .unwrap();
    assert!(!login.status.success(), "the old PIN still works");

    let run_with = |kept: &[usize], corrupt: Option<usize>| {
        // Move the rehearsal shares aside so only the chosen custodians can answer.
        let aside = r.path("aside");
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::create_dir(&aside).unwrap();
        for i in 1..=3 {
            let name = format!("custodian-{i}.share");
            if set.join(&name).exists() {
                std::fs::rename(set.join(&name), aside.join(&name)).unwrap();
            }
        }
        for &i in kept {
            let name = format!("custodian-{i}.share");
            let mut text = std::fs::read_to_string(aside.join(&name)).unwrap();
            if corrupt == Some(i) {
                let flipped = if text.as_bytes()[10] == b'A' {
                    "B"
                } else {
                    "A"
                };
                text.replace_range(10..11, flipped);
            }
            std::fs::write(set.join(&name), text).unwrap();
        }
        let out = r.run(
            "ceremony/issue-intermediate.toml",
            Some(&r.path("request")),
            "intermediates",
            None,
        );
        for i in 1..=3 {
            let name = format!("custodian-{i}.share");
            let _ = std::fs::remove_file(set.join(&name));
            std::fs::rename(aside.join(&name), set.join(&name)).unwrap();
        }
        out
    };

    let too_few = run_with(&[2], None);
    assert!(
        String::from_utf8_lossy(&too_few.stderr).contains("only 1 of the 2 shares"),
        "{}",
        String::from_utf8_lossy(&too_few.stderr)
    );
    let corrupted = run_with(&[1, 3], Some(3));
    let err = String::from_utf8_lossy(&corrupted.stderr);
    assert!(err.contains("the share of custodian-3 is refused"), "{err}");
    assert!(!r.path("intermediates").exists());

    let quorum = run_with(&[1, 3], None);
    assert_ok(&quorum);
    let root = r.path("root-init/root.pem");
    let cert = r.path("intermediates/intermediate-fulcio.pem");
    assert!(openssl_verify(&root, &cert).status.success());
}

#[test]
fn shares_from_another_split_are_refused() {
    let (r, set) = after_root_init();
    let (other, other_set) = after_root_init();
    for i in 1..=3 {
        let name = format!("custodian-{i}.share");
        std::fs::copy(other_set.join(&name), set.join(&name)).unwrap();
    }
    let out = r.run(
        "ceremony/issue-intermediate.toml",
        Some(&r.path("request")),
        "intermediates",
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("belongs to split")
            && err.contains("not to token \"root-ca\"'s current split"),
        "{err}"
    );
    drop(other);
}

#[test]
fn an_interactive_run_at_a_real_terminal_completes() {
    let r = Rehearsal::new();
    let out = Command::new("python3")
        .arg(repo_file("tests/python/console_driver.py"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_rootcellar"))
        .args([
            "ceremony",
            "run",
            repo_file("ceremony/root-init.toml").to_str().unwrap(),
            "--rehearsal",
        ])
        .arg("--state")
        .arg(r.path("state"))
        .arg("--out")
        .arg(r.path("out"))
        .env_remove("ROOTCELLAR_TEST_CRASH_AT")
        .output()
        .unwrap();
    let session = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        session.contains("That is not the confirmation code."),
        "a wrong code is refused"
    );
    assert!(session.contains("ceremony complete"));
    let transcript = std::fs::read_to_string(r.path("out/transcript.md")).unwrap();
    assert!(transcript.contains("Olga Operator") && transcript.contains("Wanda Witness"));
    let root = r.path("out/root.pem");
    assert!(openssl_verify(&root, &root).status.success());
}

#[test]
fn the_crl_ceremony_revokes_an_intermediate() {
    let (r, _) = after_root_init();
    assert_ok(&r.run(
        "ceremony/issue-intermediate.toml",
        Some(&r.path("request")),
        "intermediates",
        None,
    ));
    let tsa = r.path("intermediates/intermediate-tsa.pem");
    let serial = serial(&tsa).trim_start_matches("serial=").to_string();
    let request = r.path("crl-request");
    std::fs::create_dir(&request).unwrap();
    std::fs::copy(r.path("root-init/root.pem"), request.join("root.pem")).unwrap();
    std::fs::write(
        request.join("revoke.txt"),
        format!("# the TSA intermediate\n{serial}\n"),
    )
    .unwrap();
    assert_ok(&r.run("ceremony/issue-crl.toml", Some(&request), "crl", None));
    let root = r.path("root-init/root.pem");
    let crl = r.path("crl/root.crl.pem");
    let checked = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        root.to_str().unwrap(),
        "-CRLfile",
        crl.to_str().unwrap(),
        tsa.to_str().unwrap(),
    ]);
    assert!(
        !checked.status.success(),
        "the revoked intermediate still verifies"
    );
    let fulcio = r.path("intermediates/intermediate-fulcio.pem");
    let checked = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        root.to_str().unwrap(),
        "-CRLfile",
        crl.to_str().unwrap(),
        fulcio.to_str().unwrap(),
    ]);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn a_backup_restored_into_a_fresh_token_signs_for_the_original_key() {
    let (r, _) = after_root_init();
    assert_ok(&r.run("ceremony/backup-keys.toml", None, "backup", None));
    let backup = r.path("backup/root-ca.backup.json");
    let text = std::fs::read_to_string(&backup).unwrap();
    assert!(
        text.contains("\"wrapped\"") && !text.contains("PRIVATE KEY"),
        "{text}"
    );

    let request = r.path("restore-request");
    std::fs::create_dir(&request).unwrap();
    std::fs::copy(&backup, request.join("root-ca.backup.json")).unwrap();
    assert_ok(&r.run(
        "ceremony/restore-keys.toml",
        Some(&request),
        "restored",
        None,
    ));
    let original = std::fs::read(r.path("root-init/root-ca.pub.pem")).unwrap();
    let original = rootcellar::keys::PublicKey::from_spki(&original).unwrap();
    let report = std::fs::read_to_string(r.path("restored/restored-keys.txt")).unwrap();
    assert_eq!(
        report.trim(),
        format!("root-ca SHA256:{}", original.fingerprint())
    );

    // The restored key signs a CRL that verifies against the original root certificate: the
    // CLI refuses a key that is not the certificate's, and openssl checks the signature.
    let pin = r.path("state/rehearsal/pins/root-ca-2.pin");
    let uri = format!(
        "pkcs11:token=root-ca-2;object=root-ca?module-path={}&pin-source={}",
        softhsm_module().display(),
        pin.display()
    );
    let root = r.path("root-init/root.pem");
    let crl = r.path("restored.crl.pem");
    let out = rootcellar()
        .env("SOFTHSM2_CONF", r.path("state/rehearsal/softhsm2.conf"))
        .args([
            "x509",
            "crl",
            "--issuer-cert",
            root.to_str().unwrap(),
            "--issuer-key",
            &uri,
        ])
        .args(["--out", crl.to_str().unwrap()])
        .output()
        .unwrap();
    assert_ok(&out);
    let verified = openssl(&[
        "crl",
        "-in",
        crl.to_str().unwrap(),
        "-CAfile",
        root.to_str().unwrap(),
        "-noout",
        "-verify",
    ]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // The restored key is as protected as a generated one.
    let shown = rootcellar()
        .env("SOFTHSM2_CONF", r.path("state/rehearsal/softhsm2.conf"))
        .args(["key", "show", &uri, "--json"])
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["protection"]["extractable"], false);
    assert_eq!(shown["protection"]["sensitive"], true);
    assert_eq!(shown["protection"]["modifiable"], false, "{shown:#}");
    assert_eq!(shown["protection"]["copyable"], false, "{shown:#}");
    assert_eq!(shown["protection"]["sign"], true, "{shown:#}");
    assert_eq!(shown["protection"]["derive"], false, "{shown:#}");

    // The custodians' TUF keys were generated non-extractable: a script backing them up fails
    // its check before any token is touched.
    let script = std::fs::read_to_string(repo_file("ceremony/backup-keys.toml"))
        .unwrap()
        .replace("backup = true", "backup = false");
    let path = r.path("bad-backup.toml");
    std::fs::write(&path, script).unwrap();
    let out = rootcellar()
        .args(["ceremony", "check", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("a non-extractable key cannot leave its token"));
}

#[test]
fn rotation_and_trust_root_ceremonies_verify_with_both_clients() {
    let r = Rehearsal::new();
    assert_ok(&r.run("ceremony/root-init.toml", None, "root-init", None));
    let request = r.path("rotate-request");
    std::fs::create_dir(&request).unwrap();
    let copy = |from: &Path, to: &Path| {
        let status = Command::new("cp")
            .arg("-r")
            .arg(from)
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success());
    };
    copy(&r.path("root-init/tuf"), &request.join("tuf"));
    assert_ok(&r.run(
        "ceremony/rotate-tuf-root.toml",
        Some(&request),
        "rotated",
        None,
    ));
    let rotated = r.path("rotated/tuf-rotated");
    assert!(rotated.join("metadata/2.root.json").exists());

    // The online side builds the trust root; the appliance publishes it.
    let publish = r.path("publish-request");
    std::fs::create_dir(&publish).unwrap();
    copy(&rotated, &publish.join("tuf"));
    std::fs::copy(r.path("root-init/root.pem"), r.dir.path().join("root.pem")).unwrap();
    std::fs::write(
        r.path("trustroot.toml"),
        "[[certificate_authorities]]\nuri = \"https://fulcio.example\"\nchain = [\"root.pem\"]\n\
         [signing_config]\noperator = \"example\"\nca_urls = [\"https://fulcio.example\"]\n\
         oidc_urls = [\"https://oidc.example\"]\nrekor_urls = [\"https://rekor.example\"]\n",
    )
    .unwrap();
    let built = rootcellar()
        .args(["trustroot", "build", "--config"])
        .arg(r.path("trustroot.toml"))
        .arg("--out")
        .arg(&publish)
        .output()
        .unwrap();
    assert_ok(&built);
    assert_ok(&r.run(
        "ceremony/publish-trust-root.toml",
        Some(&publish),
        "published",
        None,
    ));
    let repo = r.path("published/tuf-published");

    // Our verifier walks v1 → v2 from the root custodians trusted at root-init.
    let verified = rootcellar()
        .args(["tuf", "verify", "--trusted-root"])
        .arg(repo.join("metadata/1.root.json"))
        .arg(&repo)
        .output()
        .unwrap();
    assert_ok(&verified);
    assert!(String::from_utf8_lossy(&verified.stdout).contains("root v1 → v2"));
    // python-tuf agrees, and downloads the trust root.
    python_tuf_accepts(
        &repo,
        &[
            &publish.join("trusted_root.json"),
            &publish.join("signing_config.v0.2.json"),
        ],
    );
    let transcript = std::fs::read_to_string(r.path("rotated/transcript.md")).unwrap();
    assert!(
        transcript.contains("Dana") && transcript.contains("tuf-root-4 signed root v2"),
        "{transcript}"
    );
    // Before each custodian signed, the preview showed what root v2 changes: custodian 4's
    // key added and custodian 3's removed, each with the fingerprint of its public key (as
    // openssl computes it from the PEM the ceremony delivered), and the payload's digest.
    let read_aloud = |pem: &Path| openssl_fingerprint_read_aloud(pem);
    let added = read_aloud(&r.path("rotated/tuf-root-4.pub.pem"));
    let removed = read_aloud(&r.path("root-init/tuf-root-3.pub.pem"));
    for custodian in ["sign-custodian-1", "sign-custodian-2", "sign-custodian-4"] {
        let step = transcript
            .split("\n### ")
            .find(|s| s.contains(&format!("(`{custodian}`)")))
            .unwrap_or_else(|| panic!("{custodian}: {transcript}"));
        assert!(step.contains("signs root v2 (a rotation of v1)"), "{step}");
        assert!(step.contains("root: threshold 2 (unchanged)"), "{step}");
        assert!(
            step.contains("+ root-custodian-4 (") && step.contains(&added),
            "{step}"
        );
        assert!(step.contains(&format!(": {removed}")), "{step}");
        assert!(step.contains("root v2 payload: SHA-256 "), "{step}");
    }
    // And the custodian signing targets v2 saw what trusted_root.json changes.
    let published = std::fs::read_to_string(r.path("published/transcript.md")).unwrap();
    assert!(
        published.contains("trusted_root.json: certificate authority added: ")
            && published.contains("https://fulcio.example"),
        "{published}"
    );
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn rotate_tuf_root_resumes_after_a_crash_at_every_point() {
    let steps = [
        "generate-custodian-4",
        "draft",
        "sign-custodian-1",
        "sign-custodian-2",
        "sign-custodian-4",
        "publish",
    ];
    for step in steps {
        for point in ["before", "after-hsm", "after-outputs"] {
            let point = format!("{step}:{point}");
            let r = Rehearsal::new();
            assert_ok(&r.run("ceremony/root-init.toml", None, "root-init", None));
            let request = r.path("request");
            std::fs::create_dir(&request).unwrap();
            let status = Command::new("cp")
                .arg("-r")
                .arg(r.path("root-init/tuf"))
                .arg(request.join("tuf"))
                .status()
                .unwrap();
            assert!(status.success());
            let crashed = r.run(
                "ceremony/rotate-tuf-root.toml",
                Some(&request),
                "out",
                Some(&point),
            );
            assert!(
                !crashed.status.success(),
                "{point}: the crash hook did not fire"
            );
            let resumed = r.run("ceremony/rotate-tuf-root.toml", Some(&request), "out", None);
            assert_ok(&resumed);
            let repo = r.path("out/tuf-rotated");
            let verified = rootcellar()
                .args(["tuf", "verify", "--trusted-root"])
                .arg(repo.join("metadata/1.root.json"))
                .arg(&repo)
                .output()
                .unwrap();
            assert_ok(&verified);
            python_tuf_accepts(&repo, &[&r.path("root-init/root.pem")]);
            // One key for custodian 4, one root v2, and the journal chain intact.
            assert_eq!(r.key_pairs("custodian-4"), 1, "{point}");
            assert!(
                !repo.join("metadata/3.root.json").exists(),
                "{point}: a version was used twice"
            );
            let journal = rootcellar()
                .args(["journal", "verify", "--state"])
                .arg(r.path("state"))
                .output()
                .unwrap();
            assert_ok(&journal);
        }
    }
}

#[test]
fn a_ceremony_delivers_a_signed_response_bundle_with_its_journal_segment() {
    let r = Rehearsal::new();
    let out = rootcellar()
        .args([
            "ceremony",
            "run",
            repo_file("ceremony/root-init.toml").to_str().unwrap(),
            "--rehearsal",
        ])
        .args(["--bundle-key", "bundle-key", "--state"])
        .arg(r.path("state"))
        .arg("--answers")
        .arg(r.path("answers.toml"))
        .arg("--out")
        .arg(r.path("out"))
        .output()
        .unwrap();
    assert_ok(&out);
    let bundle = r.path("out/response.rcb");
    let pin = r.path("out/bundle-key.pub.pem");
    let verified = rootcellar()
        .args(["bundle", "verify"])
        .arg(&bundle)
        .arg("--pin")
        .arg(&pin)
        .args(["--kind", "response", "--json"])
        .output()
        .unwrap();
    assert_ok(&verified);
    let extracted = r.path("extracted");
    let status = rootcellar()
        .args(["bundle", "extract"])
        .arg(&bundle)
        .arg("--pin")
        .arg(&pin)
        .arg("--out")
        .arg(&extracted)
        .output()
        .unwrap();
    assert_ok(&status);
    for name in [
        "root.pem",
        "1.root.json",
        "timestamp.json",
        "transcript.md",
        "journal-segment.json",
    ] {
        assert!(
            extracted.join(name).exists(),
            "{name} missing from the bundle"
        );
    }
    assert_eq!(
        std::fs::read(extracted.join("root.pem")).unwrap(),
        std::fs::read(r.path("out/root.pem")).unwrap()
    );
    let segment = rootcellar()
        .args(["journal", "verify", "--segment"])
        .arg(extracted.join("journal-segment.json"))
        .output()
        .unwrap();
    assert_ok(&segment);
    // A bundle signed by another key is refused.
    let other = r.path("out/tuf-root-1.pub.pem");
    let refused = rootcellar()
        .args(["bundle", "verify"])
        .arg(&bundle)
        .arg("--pin")
        .arg(&other)
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[test]
fn a_rehearsal_moves_a_usb_yubihsm_key_to_a_throwaway_token() {
    let r = Rehearsal::new();
    std::fs::create_dir(r.path("ceremony")).unwrap();
    std::fs::create_dir(r.path("tuf-repo")).unwrap();
    std::fs::copy(
        repo_file("tuf-repo/policy.toml"),
        r.path("tuf-repo/policy.toml"),
    )
    .unwrap();
    let script = std::fs::read_to_string(repo_file("ceremony/root-init.toml"))
        .unwrap()
        .replace(
            "uri = \"pkcs11:token=root-ca;object=root-ca\"",
            "uri = \"yubihsm:connector=usb;serial=0012345678;label=root-ca?auth-key=0x0002\"",
        );
    let path = r.path("ceremony/root-init.toml");
    std::fs::write(&path, script).unwrap();
    // No YubiHSM2 is plugged in here: the run completes only if the rehearsal never reaches
    // for the device.
    let out = r.run(path.to_str().unwrap(), None, "root-init", None);
    assert_ok(&out);
    let root = r.path("root-init/root.pem");
    assert!(openssl_verify(&root, &root).status.success());
    assert_eq!(r.key_pairs("yubihsm-0012345678-auth-0x0002"), 1);
    let transcript = std::fs::read_to_string(r.path("root-init/transcript.md")).unwrap();
    assert!(
        transcript.contains("pkcs11:token=yubihsm-0012345678-auth-0x0002;object=root-ca")
            && !transcript.contains("HSM audit logs"),
        "{transcript}"
    );
}

#[test]
fn each_person_present_holds_one_role_and_every_custodian_role_is_held() {
    let r = Rehearsal::new();
    let answers = answers_toml(&clock_time(), None);
    for (changed, said) in [
        (
            answers.replace(
                "witness = [\"Wim\", \"Wanda\"]",
                "witness = [\"Wim\", \"Olga\"]",
            ),
            "\"Olga\" is named as operator and as witness",
        ),
        (
            answers.replace(
                "witness = [\"Wim\", \"Wanda\"]",
                "witness = [\"Wim\", \"Wim\"]",
            ),
            "\"Wim\" is named twice as witness",
        ),
        (
            answers.replace("custodian-2 = [\"Chidi\"]", "custodian-2 = [\"Carol\"]"),
            "\"Carol\" is named as custodian-1 and as custodian-2",
        ),
        (
            answers.replace("custodian-3 = [\"Cem\"]\n", ""),
            "present.custodian-3 names 0 people; the ceremony needs at least 1",
        ),
    ] {
        assert_ne!(changed, answers);
        std::fs::write(r.path("answers.toml"), &changed).unwrap();
        let refused = r.run("ceremony/root-init.toml", None, "out", None);
        assert!(!refused.status.success());
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(err.contains(said), "{err}");
        // Refused before the ceremony left a trace: no instance, no token, nothing delivered.
        assert!(!r.path("state/ceremonies").exists());
        assert!(!r.path("out").exists());
    }
}
