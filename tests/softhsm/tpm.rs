//! rootcellar against a second, independent PKCS#11 implementation: a software TPM 2.0 behind
//! tpm2-pkcs11 (`tpm_token.rs`). Keys are generated in the TPM, a root certificate signed
//! there verifies with openssl, a real ceremony runs on it and records the TPM as the device,
//! and what the TPM token does not enforce of the keys' protection is said, not assumed.

use crate::common::{ok, openssl, openssl_verify, repo_file};
use crate::provenance::{assert_provenance_recorded, listed_device, run_small_root};
use crate::tpm_token::TpmToken;

/// Starts a TPM token for a test, or skips the test (said on stderr) where swtpm cannot run.
macro_rules! tpm_or_skip {
    ($label:expr) => {
        match TpmToken::start($label) {
            Some(tpm) => tpm,
            None => return,
        }
    };
}

fn key_json(tpm: &TpmToken, args: &[&str]) -> serde_json::Value {
    let out = ok(tpm.rootcellar().args(args).arg("--json"));
    serde_json::from_slice(&out.stdout).expect("key JSON")
}

#[test]
fn keys_generated_in_a_tpm_are_sign_only_and_fixed_and_a_root_signed_there_verifies() {
    let tpm = tpm_or_skip!("tpm-keys");
    for (label, algorithm) in [("root-ca", "p384"), ("tuf-root", "p256")] {
        let key = key_json(
            &tpm,
            &[
                "key",
                "generate",
                &tpm.uri(Some(label)),
                "--algorithm",
                algorithm,
            ],
        );
        assert_eq!(key["label"], label);
        assert_eq!(key["algorithm"], format!("ecdsa-{algorithm}"));
        let protection = &key["protection"];
        for (attribute, expected) in [
            ("token", true),
            ("sensitive", true),
            ("always_sensitive", true),
            ("extractable", false),
            ("never_extractable", true),
            ("sign", true),
            ("decrypt", false),
            ("unwrap", false),
            ("derive", false),
            ("modifiable", false),
            ("copyable", false),
        ] {
            assert_eq!(
                protection[attribute], expected,
                "{label}: {attribute}: {key:#}"
            );
        }
    }
    // A second token on the same TPM is told apart by its label, as on SoftHSM2.
    tpm.add_token("tpm-second");
    let second = key_json(
        &tpm,
        &[
            "key",
            "generate",
            &tpm.uri_on("tpm-second", Some("root-ca")),
            "--algorithm",
            "p256",
        ],
    );
    assert!(
        second["uri"]
            .as_str()
            .unwrap()
            .starts_with("pkcs11:token=tpm-second;object=root-ca;"),
        "{second:#}"
    );
    let first = key_json(&tpm, &["key", "list", &tpm.uri(None)]);
    assert_eq!(first.as_array().map(Vec::len), Some(2), "{first:#}");
    // A label in use is refused, as on SoftHSM2.
    let refused = tpm
        .rootcellar()
        .args([
            "key",
            "generate",
            &tpm.uri(Some("root-ca")),
            "--algorithm",
            "p256",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());

    let root = tpm.path("root.pem");
    ok(tpm
        .rootcellar()
        .args(["x509", "root", "--key", &tpm.uri(Some("root-ca"))])
        .args(["--subject", "CN=TPM Root CA,O=rootcellar tests", "--out"])
        .arg(&root));
    let verified = openssl_verify(&root, &root);
    assert!(
        verified.status.success(),
        "openssl: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    // The certificate carries the TPM key's public half.
    let shown = key_json(&tpm, &["key", "show", &tpm.uri(Some("root-ca"))]);
    let from_cert = openssl(&["x509", "-in", root.to_str().unwrap(), "-noout", "-pubkey"]);
    assert_eq!(
        String::from_utf8_lossy(&from_cert.stdout).trim(),
        shown["public_key_pem"].as_str().unwrap().trim()
    );
}

/// tpm2-pkcs11 keeps a key's PKCS#11 attributes in its own store beside the TPM: measured,
/// it accepts `C_SetAttributeValue` on a `CKA_MODIFIABLE=false` key (turning on decrypt,
/// derive, unwrap, extractable), while it refuses `C_CopyObject` and makes no AES key to wrap
/// under. rootcellar's probe of what a token enforces runs on session objects, which
/// tpm2-pkcs11 refuses to make (`CKA_TOKEN` must be true), so `key show` says that nothing is
/// shown to be enforced, and why, rather than claiming protection; and after the attack it
/// shows the changed attributes, while the TPM key itself (made sign-only, fixed to the TPM)
/// still signs as before.
#[test]
fn what_the_tpm_token_does_not_enforce_is_reported_and_the_tpm_key_still_signs() {
    let tpm = tpm_or_skip!("tpm-enforce");
    key_json(
        &tpm,
        &[
            "key",
            "generate",
            &tpm.uri(Some("k")),
            "--algorithm",
            "p256",
        ],
    );
    let shown = key_json(&tpm, &["key", "show", &tpm.uri(Some("k"))]);
    let enforcement = &shown["enforcement"];
    assert_eq!(enforcement["fixed_attributes"], false, "{shown:#}");
    assert_eq!(enforcement["copy_refused"], false, "{shown:#}");
    assert_eq!(enforcement["wrap_only_trusted"], false, "{shown:#}");
    assert!(
        enforcement["basis"]
            .as_str()
            .unwrap()
            .contains("would not make a session key"),
        "{shown:#}"
    );

    let attack = std::process::Command::new("python3")
        .arg(repo_file("tests/python/pkcs11_attack.py"))
        .arg("--module")
        .arg(&tpm.module)
        .args(["--token", "tpm-enforce", "--label", "k", "--pin-file"])
        .arg(&tpm.pin_file)
        .envs(tpm.env())
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&attack.stdout).unwrap_or_else(|_| {
        panic!(
            "pkcs11_attack.py: {}{}",
            String::from_utf8_lossy(&attack.stdout),
            String::from_utf8_lossy(&attack.stderr)
        )
    });
    let attempts = &report["attempts"];
    for set in ["set-CKA_DECRYPT", "set-CKA_DERIVE", "set-CKA_EXTRACTABLE"] {
        assert_eq!(attempts[set], "accepted", "{report:#}");
    }
    assert_eq!(attempts["copy"], "CKR_FUNCTION_NOT_SUPPORTED", "{report:#}");
    assert!(
        attempts["wrap"].as_str().unwrap().starts_with("no AES key"),
        "{report:#}"
    );
    assert!(report.get("recovered").is_none(), "{report:#}");

    let after = key_json(&tpm, &["key", "show", &tpm.uri(Some("k"))]);
    assert_eq!(after["protection"]["extractable"], true, "{after:#}");
    assert_eq!(after["protection"]["decrypt"], true, "{after:#}");
    let root = tpm.path("after-attack.pem");
    ok(tpm
        .rootcellar()
        .args(["x509", "root", "--key", &tpm.uri(Some("k"))])
        .args(["--subject", "CN=After,O=rootcellar tests", "--out"])
        .arg(&root));
    assert!(openssl_verify(&root, &root).status.success());
}

#[test]
fn a_real_ceremony_on_a_tpm_token_signs_a_root_and_records_the_tpm() {
    let tpm = tpm_or_skip!("tpm-root");
    let listed = listed_device(tpm.pkcs11_tool(), &tpm.module, "tpm-root");
    let (state, out) = run_small_root(
        tpm.rootcellar(),
        &tpm.path("ceremony"),
        "tpm-root",
        true,
        &tpm.module,
        &tpm.pin_file,
    );
    let root = out.join("root.pem");
    let verified = openssl_verify(&root, &root);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let pem = std::fs::read_to_string(out.join("root-ca.pub.pem")).unwrap();
    let from_cert = openssl(&["x509", "-in", root.to_str().unwrap(), "-noout", "-pubkey"]);
    assert_eq!(
        pem.trim(),
        String::from_utf8_lossy(&from_cert.stdout).trim()
    );
    assert_provenance_recorded(tpm.rootcellar(), &state, &out, &listed);
    // The token's PIN was replaced (C_SetPIN) by one split among the custodians, whose written
    // shares are three: the PIN it had opens it no more.
    let shares = std::fs::read_dir(tpm.path("ceremony/shares"))
        .unwrap()
        .count();
    assert_eq!(shares, 3);
    let refused = tpm
        .rootcellar()
        .args(["key", "show", &tpm.uri(Some("root-ca"))])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("PIN"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!refused.status.success());
}
