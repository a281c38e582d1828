//! Certificates signed by a key in the token: chains verified by openssl, profile fields read
//! back with a certificate parser, and every bad input refused with nothing written.

use std::path::{Path, PathBuf};

use x509_parser::prelude::*;

use crate::common::*;

struct Pki {
    hsm: SoftHsm,
    root_key: String,
    root_pem: PathBuf,
}

fn pki() -> Pki {
    let hsm = SoftHsm::new("ca");
    let root_key = hsm.generate("ca", "root-ca", "p384");
    let root_pem = hsm.path("root.pem");
    ok(hsm
        .rootcellar()
        .args(["x509", "root", "--key", &root_key])
        .args([
            "--subject",
            "CN=Test Root CA,O=rootcellar tests",
            "--out",
            root_pem.to_str().unwrap(),
        ]));
    Pki {
        hsm,
        root_key,
        root_pem,
    }
}

impl Pki {
    fn issue(&self, profile: &str, csr: &Path, out: &str) -> (std::process::Output, PathBuf) {
        let out = self.hsm.path(out);
        let result = self
            .hsm
            .rootcellar()
            .args([
                "x509",
                "issue",
                "--profile",
                profile,
                "--csr",
                csr.to_str().unwrap(),
            ])
            .args([
                "--issuer-cert",
                self.root_pem.to_str().unwrap(),
                "--issuer-key",
                &self.root_key,
            ])
            .args(["--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        (result, out)
    }

    fn refuses(&self, profile: &str, csr: &Path, expected: &str) {
        let (result, out) = self.issue(profile, csr, "refused.pem");
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "issued despite bad input");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
        assert!(!out.exists(), "nothing may be written on refusal");
    }
}

fn der_of(pem_path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(pem_path).unwrap();
    x509_parser::pem::parse_x509_pem(&bytes).unwrap().1.contents
}

#[test]
fn root_certificate_has_the_root_profile() {
    let pki = pki();
    let der = der_of(&pki.root_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(cert.version(), X509Version::V3);
    assert_eq!(
        cert.subject().to_string(),
        "CN=Test Root CA, O=rootcellar tests"
    );
    assert_eq!(cert.issuer(), cert.subject());
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca);
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(
        ku.critical
            && ku.value.key_cert_sign()
            && ku.value.crl_sign()
            && !ku.value.digital_signature()
    );
    assert!(cert.extended_key_usage().unwrap().is_none());
    assert!(cert.extensions().iter().any(|e| matches!(
        e.parsed_extension(),
        ParsedExtension::SubjectKeyIdentifier(_)
    )));
    let serial = cert.raw_serial();
    assert!(
        (16..=20).contains(&serial.len()) && serial[0] & 0x80 == 0,
        "{serial:?}"
    );
    // Self-signed: openssl accepts it as its own trust anchor under strict checks.
    let verified = openssl_verify(&pki.root_pem, &pki.root_pem);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // The key in the certificate is the HSM key.
    let shown = ok(pki
        .hsm
        .rootcellar()
        .args(["key", "show", &pki.root_key, "--json"]));
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let key = rootcellar::keys::PublicKey::from_spki(
        shown["public_key_pem"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    assert_eq!(cert.public_key().raw, key.spki_der().as_slice());
}

#[test]
fn fulcio_and_tsa_intermediates_chain_to_the_root_with_their_profiles() {
    let pki = pki();
    let dir = pki.hsm.dir.path();
    for (profile, curve) in [("fulcio", "prime256v1"), ("tsa", "secp384r1")] {
        let csr = openssl_csr(
            dir,
            profile,
            curve,
            &format!("/CN={profile} intermediate/O=online"),
        );
        let (result, out) = pki.issue(profile, &csr, &format!("{profile}.pem"));
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        let verified = openssl_verify(&pki.root_pem, &out);
        assert!(
            verified.status.success(),
            "{profile}: {}",
            String::from_utf8_lossy(&verified.stderr)
        );

        let der = der_of(&out);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let root_der = der_of(&pki.root_pem);
        let (_, root) = X509Certificate::from_der(&root_der).unwrap();
        assert_eq!(cert.issuer(), root.subject());
        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(
            bc.critical && bc.value.ca && bc.value.path_len_constraint == Some(0),
            "{profile}"
        );
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(
            ku.critical
                && ku.value.key_cert_sign()
                && ku.value.crl_sign()
                && !ku.value.digital_signature()
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        match profile {
            "fulcio" => {
                assert!(eku.code_signing && !eku.time_stamping && eku.other.is_empty() && !eku.any)
            }
            _ => {
                assert!(eku.time_stamping && !eku.code_signing && eku.other.is_empty() && !eku.any)
            }
        }
        let skid = |c: &X509Certificate<'_>| {
            c.extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                    _ => None,
                })
        };
        let akid = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            });
        assert!(skid(&cert).is_some());
        assert_eq!(akid, skid(&root), "AKID is the root's SKID");
        assert!(cert.validity().not_after <= root.validity().not_after);
        assert!(cert.validity().not_before >= root.validity().not_before);
        assert_ne!(cert.raw_serial(), root.raw_serial());
    }
}

#[test]
fn a_csr_asking_for_more_ca_rights_gets_only_the_profile() {
    let pki = pki();
    let dir = pki.hsm.dir.path();
    let key = dir.join("greedy.key");
    let csr = dir.join("greedy.csr");
    assert!(openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        key.to_str().unwrap()
    ])
    .status
    .success());
    let made = openssl(&[
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        "/CN=greedy",
        "-addext",
        "basicConstraints=critical,CA:TRUE,pathlen:9",
        "-addext",
        "keyUsage=critical,keyCertSign,digitalSignature,keyEncipherment",
        "-addext",
        "extendedKeyUsage=serverAuth,anyExtendedKeyUsage",
        "-addext",
        "subjectAltName=DNS:example.com",
        "-out",
        csr.to_str().unwrap(),
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (result, out) = pki.issue("fulcio", &csr, "greedy.pem");
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        stdout.contains("ignored from CSR: basicConstraints (CA:true, pathlen:9)"),
        "{stdout}"
    );

    let der = der_of(&out);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        cert.basic_constraints()
            .unwrap()
            .unwrap()
            .value
            .path_len_constraint,
        Some(0)
    );
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(!ku.digital_signature() && !ku.key_encipherment());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.code_signing && !eku.server_auth && !eku.any);
    assert!(cert.subject_alternative_name().unwrap().is_none());
}

#[test]
fn bad_csrs_are_refused_and_nothing_is_written() {
    let pki = pki();
    let dir = pki.hsm.dir.path();

    let garbage = dir.join("garbage.csr");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----\n",
    )
    .unwrap();
    pki.refuses("fulcio", &garbage, "malformed CSR");

    let not_pem = dir.join("text.csr");
    std::fs::write(&not_pem, "hello").unwrap();
    pki.refuses("fulcio", &not_pem, "malformed CSR");

    // Flip a bit in the last byte of the signature of an otherwise good CSR.
    let good = openssl_csr(dir, "good", "prime256v1", "/CN=good");
    let der_path = dir.join("good.der");
    assert!(openssl(&[
        "req",
        "-in",
        good.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        der_path.to_str().unwrap()
    ])
    .status
    .success());
    let mut der = std::fs::read(&der_path).unwrap();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let tampered = dir.join("tampered.der");
    std::fs::write(&tampered, der).unwrap();
    pki.refuses("fulcio", &tampered, "signature does not verify");

    // A key type the profiles do not certify.
    let rsa_key = dir.join("rsa.key");
    let rsa_csr = dir.join("rsa.csr");
    assert!(openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        rsa_key.to_str().unwrap()
    ])
    .status
    .success());
    assert!(openssl(&[
        "req",
        "-new",
        "-key",
        rsa_key.to_str().unwrap(),
        "-subj",
        "/CN=rsa",
        "-out",
        rsa_csr.to_str().unwrap()
    ])
    .status
    .success());
    pki.refuses("fulcio", &rsa_csr, "unsupported key type in CSR: RSA");
    let ed_csr = openssl_csr_ed25519(dir);
    pki.refuses("tsa", &ed_csr, "unsupported key type in CSR: Ed25519");

    pki.refuses(
        "codesign-everything",
        &good,
        "unknown profile \"codesign-everything\"",
    );

    // A subject with a newline in it (openssl writes what -subj is given), which would forge a
    // line wherever the name is printed.
    let forged = openssl_csr(dir, "forged", "prime256v1", "/CN=a\nwitness: signed");
    pki.refuses(
        "fulcio",
        &forged,
        "contains the control or bidirectional character U+000A",
    );
}

fn openssl_csr_ed25519(dir: &Path) -> PathBuf {
    let key = dir.join("ed.key");
    let csr = dir.join("ed.csr");
    assert!(openssl(&[
        "genpkey",
        "-algorithm",
        "ED25519",
        "-out",
        key.to_str().unwrap()
    ])
    .status
    .success());
    assert!(openssl(&[
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        "/CN=ed",
        "-out",
        csr.to_str().unwrap()
    ])
    .status
    .success());
    csr
}

#[test]
fn wrong_pin_unknown_token_and_existing_output_are_refused_without_writing() {
    let pki = pki();
    let dir = pki.hsm.dir.path();
    let csr = openssl_csr(dir, "f", "prime256v1", "/CN=f");
    let run = |key: &str, out: &Path| {
        pki.hsm
            .rootcellar()
            .args([
                "x509",
                "issue",
                "--profile",
                "fulcio",
                "--csr",
                csr.to_str().unwrap(),
            ])
            .args([
                "--issuer-cert",
                pki.root_pem.to_str().unwrap(),
                "--issuer-key",
                key,
            ])
            .args(["--out", out.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = dir.join("never.pem");

    let wrong_pin = pki.hsm.uri_with_pin("ca", Some("root-ca"), "111111");
    let result = run(&wrong_pin, &out);
    assert!(String::from_utf8_lossy(&result.stderr).contains("wrong PIN for token \"ca\""));
    assert!(!result.status.success() && !out.exists());

    let unknown = pki.hsm.uri("no-such-token", Some("root-ca"));
    let result = run(&unknown, &out);
    assert!(String::from_utf8_lossy(&result.stderr).contains("no token labelled \"no-such-token\""));
    assert!(!result.status.success() && !out.exists());

    // An existing output is never overwritten, and is checked before the HSM signs.
    std::fs::write(&out, "precious").unwrap();
    let result = run(&pki.root_key, &out);
    assert!(
        String::from_utf8_lossy(&result.stderr).contains("exists already; refusing to overwrite")
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious");

    // The same for the root certificate.
    let err = fails(
        pki.hsm
            .rootcellar()
            .args(["x509", "root", "--key", &pki.root_key, "--subject", "CN=x"])
            .args(["--out", pki.root_pem.to_str().unwrap()]),
    );
    assert!(err.contains("exists already"), "{err}");

    // A lifetime beyond the issuer's is refused before signing.
    let long = dir.join("long.pem");
    let err = fails(
        pki.hsm
            .rootcellar()
            .args([
                "x509",
                "issue",
                "--profile",
                "tsa",
                "--csr",
                csr.to_str().unwrap(),
                "--days",
                "5000",
            ])
            .args([
                "--issuer-cert",
                pki.root_pem.to_str().unwrap(),
                "--issuer-key",
                &pki.root_key,
            ])
            .args(["--out", long.to_str().unwrap()]),
    );
    assert!(
        err.contains("pre-signing lint refused") && err.contains("after the issuer's"),
        "{err}"
    );
    assert!(!long.exists());

    // A key that is not the issuer certificate's key.
    let other = pki.hsm.generate("ca", "other", "p256");
    let result = run(&other, &out.with_extension("other"));
    assert!(String::from_utf8_lossy(&result.stderr).contains("does not match the issuer key"));
}

#[test]
fn a_crl_revoking_an_intermediate_verifies_with_openssl() {
    let pki = pki();
    let dir = pki.hsm.dir.path();
    let csr = openssl_csr(dir, "revoked", "prime256v1", "/CN=revoked");
    let (result, cert) = pki.issue("fulcio", &csr, "revoked.pem");
    assert!(result.status.success());
    let serial = String::from_utf8_lossy(
        &openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-serial"]).stdout,
    )
    .trim()
    .trim_start_matches("serial=")
    .to_string();
    let crl = dir.join("root.crl.pem");
    ok(pki
        .hsm
        .rootcellar()
        .args([
            "x509",
            "crl",
            "--issuer-cert",
            pki.root_pem.to_str().unwrap(),
        ])
        .args([
            "--issuer-key",
            &pki.root_key,
            "--revoke",
            &serial,
            "--out",
            crl.to_str().unwrap(),
        ]));
    let verified = openssl(&[
        "crl",
        "-in",
        crl.to_str().unwrap(),
        "-CAfile",
        pki.root_pem.to_str().unwrap(),
        "-noout",
        "-verify",
    ]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // openssl now refuses the revoked intermediate when asked to check the CRL.
    let checked = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        pki.root_pem.to_str().unwrap(),
        "-CRLfile",
        crl.to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert!(!checked.status.success());
    assert!(
        String::from_utf8_lossy(&checked.stdout).contains("revoked")
            || String::from_utf8_lossy(&checked.stderr).contains("revoked")
    );
    // A bad serial is refused before anything is signed.
    let err = fails(
        pki.hsm
            .rootcellar()
            .args([
                "x509",
                "crl",
                "--issuer-cert",
                pki.root_pem.to_str().unwrap(),
            ])
            .args([
                "--issuer-key",
                &pki.root_key,
                "--revoke",
                "not-hex",
                "--out",
                dir.join("x.pem").to_str().unwrap(),
            ]),
    );
    assert!(err.contains("is not hex"), "{err}");
    assert!(!dir.join("x.pem").exists());
}

#[test]
fn key_generation_and_signatures_outside_ceremonies_are_journaled() {
    let hsm = SoftHsm::new("journaled");
    let state = hsm.path("state");
    let key = {
        let out = ok(hsm.rootcellar().env("ROOTCELLAR_STATE", &state).args([
            "key",
            "generate",
            &hsm.uri("journaled", Some("root")),
            "--algorithm",
            "p256",
            "--json",
        ]));
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        info["uri"].as_str().unwrap().to_string()
    };
    let root = hsm.path("root.pem");
    ok(hsm
        .rootcellar()
        .env("ROOTCELLAR_STATE", &state)
        .args(["x509", "root", "--key", &key])
        .args(["--subject", "CN=journaled", "--out", root.to_str().unwrap()]));
    let shown = ok(hsm
        .rootcellar()
        .args(["journal", "show", "--state", state.to_str().unwrap()]));
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("key.generate") && shown.contains("x509.root"),
        "{shown}"
    );
    ok(hsm
        .rootcellar()
        .args(["journal", "verify", "--state", state.to_str().unwrap()]));
}
