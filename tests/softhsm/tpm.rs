//! rootcellar against a second, independent PKCS#11 implementation: a software TPM 2.0 behind
//! tpm2-pkcs11 (`tpm_token.rs`). Keys are generated in the TPM, a root certificate signed
//! there verifies with openssl, a real ceremony runs on it and records the TPM as the device,
//! and what the TPM token does not enforce of the keys' protection is said, not assumed.

use crate::common::{ok, openssl, openssl_verify};
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

/// tpm2-pkcs11 makes only token objects (`CKA_TOKEN=false` is refused), so rootcellar's probe
/// of what the token enforces, made on throwaway session objects, cannot run: `key show` says
/// that nothing is shown to be enforced, and why, rather than claiming protection.
#[test]
fn what_the_tpm_token_enforces_is_reported_not_assumed() {
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
}

#[test]
fn a_real_ceremony_on_a_tpm_token_signs_a_root_and_records_the_tpm() {
    let tpm = tpm_or_skip!("tpm-root");
    let listed = listed_device(tpm.pkcs11_tool(), &tpm.module, "tpm-root");
    let (state, out) = run_small_root(
        tpm.rootcellar(),
        &tpm.path("ceremony"),
        "tpm-root",
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
    let shown = key_json(&tpm, &["key", "show", &tpm.uri(Some("root-ca"))]);
    assert_eq!(pem.trim(), shown["public_key_pem"].as_str().unwrap().trim());
    assert_provenance_recorded(tpm.rootcellar(), &state, &out, &listed);
}
