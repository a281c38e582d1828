//! Bundles through the CLI: a response bundle signed by a key in a real SoftHSM2 token, checked
//! by rootcellar and independently (openssl over the COSE Sig_structure); request bundles signed
//! by an openssl key; refusals with one message and nothing extracted; age-sealed bundles.

use std::path::{Path, PathBuf};
use std::process::Output;

use ciborium::value::Value;

use crate::common::*;

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes the public key of the token key `uri` (from `key show --json`) to `name`.
fn public_key_file(hsm: &SoftHsm, uri: &str, name: &str) -> PathBuf {
    let info = json(&ok(hsm.rootcellar().args(["key", "show", uri, "--json"])));
    let path = hsm.path(name);
    std::fs::write(&path, info["public_key_pem"].as_str().unwrap()).unwrap();
    path
}

/// What the demo puts in a response bundle: certificates, TUF metadata, a transcript.
fn ceremony_outputs(hsm: &SoftHsm) -> Vec<(String, PathBuf)> {
    let dir = hsm.path("outputs");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("root.key");
    let cert = dir.join("root.pem");
    let out = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=test root",
        "-days",
        "30",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let root = dir.join("1.root.json");
    std::fs::write(
        &root,
        br#"{"signed":{"_type":"root","version":1},"signatures":[]}"#,
    )
    .unwrap();
    let timestamp = dir.join("timestamp.json");
    std::fs::write(
        &timestamp,
        br#"{"signed":{"_type":"timestamp"},"signatures":[]}"#,
    )
    .unwrap();
    let transcript = dir.join("transcript.txt");
    std::fs::write(&transcript, "ceremony test: root CA created\n").unwrap();
    vec![
        ("--certificate".into(), cert),
        ("--tuf-metadata".into(), root),
        ("--tuf-metadata".into(), timestamp),
        ("--transcript".into(), transcript),
    ]
}

fn entry_args(outputs: &[(String, PathBuf)]) -> Vec<String> {
    outputs
        .iter()
        .flat_map(|(flag, path)| [flag.clone(), path.display().to_string()])
        .collect()
}

/// Checks the COSE_Sign1 signature of a bundle with openssl, from the bytes alone: rebuilds the
/// RFC 9052 Sig_structure, converts r‖s to DER and asks `openssl dgst -verify`.
fn openssl_verifies_cose_signature(bundle: &Path, public_key: &Path, digest: &str) {
    let bytes = std::fs::read(bundle).unwrap();
    let value: Value = ciborium::de::from_reader(bytes.as_slice()).unwrap();
    let Value::Array(parts) = value else {
        panic!("not an array")
    };
    assert_eq!(parts[0], Value::Text("rootcellar-bundle".into()));
    let Value::Tag(18, envelope) = &parts[1] else {
        panic!("not COSE_Sign1")
    };
    let Value::Array(sign1) = envelope.as_ref() else {
        panic!("not an array")
    };
    let (protected, payload, signature) = (&sign1[0], &sign1[2], &sign1[3]);
    let tbs = Value::Array(vec![
        Value::Text("Signature1".into()),
        protected.clone(),
        Value::Bytes(b"rootcellar-bundle manifest".to_vec()),
        payload.clone(),
    ]);
    let mut tbs_bytes = Vec::new();
    ciborium::ser::into_writer(&tbs, &mut tbs_bytes).unwrap();
    let raw = signature.as_bytes().unwrap();
    let der = match raw.len() {
        64 => p256::ecdsa::Signature::from_slice(raw)
            .unwrap()
            .to_der()
            .as_bytes()
            .to_vec(),
        96 => p384::ecdsa::Signature::from_slice(raw)
            .unwrap()
            .to_der()
            .as_bytes()
            .to_vec(),
        n => panic!("signature of {n} bytes"),
    };
    let dir = tempfile::tempdir().unwrap();
    let (tbs_path, sig_path) = (dir.path().join("tbs"), dir.path().join("sig"));
    std::fs::write(&tbs_path, &tbs_bytes).unwrap();
    std::fs::write(&sig_path, der).unwrap();
    let out = openssl(&[
        "dgst",
        digest,
        "-verify",
        public_key.to_str().unwrap(),
        "-signature",
        sig_path.to_str().unwrap(),
        tbs_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "openssl does not verify the COSE signature: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

#[test]
fn response_bundle_signed_by_a_softhsm_key_verifies_extracts_and_carries_the_journal() {
    let hsm = SoftHsm::new("appliance");
    let key = hsm.generate("appliance", "bundle-key", "p256");
    let pin = public_key_file(&hsm, &key, "bundle-key.pub");
    let state = hsm.path("state");
    // The journal's records and the bundle at the clock: a confirmed time may not precede the
    // build, nor the journal's latest record.
    let journaled = clock_time();
    for action in ["key.generate", "x509.root"] {
        ok(hsm
            .rootcellar()
            .args(["journal", "append", "--actor", "alice"])
            .args([
                "--action",
                action,
                "--ceremony",
                "test",
                "--time",
                &journaled,
                "--state",
                state.to_str().unwrap(),
            ]));
    }
    let outputs = ceremony_outputs(&hsm);
    let bundle = hsm.path("response.rcb");
    let created = clock_time();
    ok(hsm
        .rootcellar()
        .args(["bundle", "respond", "--key", &key, "--ceremony", "test"])
        .args(["--time", &created, "--actor", "alice"])
        .args(["--state", state.to_str().unwrap()])
        .args(["--out", bundle.to_str().unwrap()])
        .args(entry_args(&outputs)));

    let info = json(&ok(hsm
        .rootcellar()
        .args(["bundle", "inspect", bundle.to_str().unwrap(), "--json"])
        .args(["--pin", pin.to_str().unwrap()])));
    assert_eq!(info["kind"], "response");
    assert_eq!(info["ceremony"], "test");
    assert_eq!(info["created"], created.as_str());
    assert_eq!(info["signature"]["algorithm"], "ES256");
    assert_eq!(info["signature"]["verified"], true);
    assert_eq!(info["journal_head"]["seq"], 2);
    let names: Vec<_> = info["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "1.root.json",
            "journal-segment.json",
            "root.pem",
            "timestamp.json",
            "transcript.txt"
        ]
    );

    let out = ok(hsm
        .rootcellar()
        .args(["bundle", "verify", bundle.to_str().unwrap()])
        .args(["--pin", pin.to_str().unwrap(), "--kind", "response"])
        .args(["--state", state.to_str().unwrap()]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("journal segment checked"), "{text}");
    openssl_verifies_cose_signature(&bundle, &pin, "-sha256");

    let extracted = hsm.path("imported");
    ok(hsm
        .rootcellar()
        .args(["bundle", "extract", bundle.to_str().unwrap()])
        .args(["--pin", pin.to_str().unwrap()])
        .args(["--out", extracted.to_str().unwrap()])
        .args(["--state", state.to_str().unwrap()]));
    for (_, path) in &outputs {
        let name = path.file_name().unwrap();
        assert_eq!(
            std::fs::read(extracted.join(name)).unwrap(),
            std::fs::read(path).unwrap()
        );
    }
    ok(hsm
        .rootcellar()
        .args(["journal", "verify", "--segment"])
        .arg(extracted.join("journal-segment.json")));

    // The export, verification and import are journaled, and the chain holds.
    let journal =
        ok(hsm
            .rootcellar()
            .args(["journal", "show", "--state", state.to_str().unwrap()]));
    let journal = String::from_utf8_lossy(&journal.stdout);
    for action in ["bundle.export", "bundle.verify", "bundle.import"] {
        assert!(journal.contains(action), "{action} missing from\n{journal}");
    }
    ok(hsm
        .rootcellar()
        .args(["journal", "verify", "--state", state.to_str().unwrap()]));
}

#[test]
fn p384_token_key_signs_es384() {
    let hsm = SoftHsm::new("appliance");
    let key = hsm.generate("appliance", "bundle-key", "p384");
    let pin = public_key_file(&hsm, &key, "bundle-key.pub");
    let outputs = ceremony_outputs(&hsm);
    let bundle = hsm.path("response.rcb");
    ok(hsm
        .rootcellar()
        .args(["bundle", "respond", "--key", &key])
        .args(["--out", bundle.to_str().unwrap()])
        .args(entry_args(&outputs)));
    let info = json(&ok(hsm
        .rootcellar()
        .args(["bundle", "verify", bundle.to_str().unwrap(), "--json"])
        .args(["--pin", pin.to_str().unwrap()])));
    assert_eq!(info["signature"]["algorithm"], "ES384");
    openssl_verifies_cose_signature(&bundle, &pin, "-sha384");
}

/// An openssl key pair for the online side: private key (SEC1 PEM) and public key file.
fn online_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let out = openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = openssl(&[
        "ec",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    (key, public)
}

/// A request bundle as the online side makes it: CSRs, online and log keys, a TSA chain.
fn request_bundle(hsm: &SoftHsm) -> (PathBuf, PathBuf) {
    let dir = hsm.dir.path();
    let (requester, requester_pub) = online_key(dir, "requester");
    let (_, rekor_pub) = online_key(dir, "rekor");
    let (_, ctlog_pub) = online_key(dir, "ctlog");
    let fulcio_csr = openssl_csr(dir, "fulcio", "secp384r1", "/CN=fulcio");
    let tsa_csr = openssl_csr(dir, "tsa", "prime256v1", "/CN=tsa");
    let outputs = ceremony_outputs(hsm);
    let bundle = hsm.path("request.rcb");
    ok(hsm
        .rootcellar()
        .args(["bundle", "new", "--sign-key", requester.to_str().unwrap()])
        .args(["--ceremony", "2026-q4", "--out", bundle.to_str().unwrap()])
        .args(["--csr", fulcio_csr.to_str().unwrap()])
        .args(["--csr", tsa_csr.to_str().unwrap()])
        .arg("--public-key")
        .arg(format!("online.pub={}", requester_pub.display()))
        .arg("--log-key")
        .arg(format!("rekor.pub={}", rekor_pub.display()))
        .arg("--log-key")
        .arg(format!("ctlog.pub={}", ctlog_pub.display()))
        .args(["--tsa-chain", outputs[0].1.to_str().unwrap()]));
    (bundle, requester_pub)
}

#[test]
fn request_bundle_from_the_online_side_verifies_against_its_pinned_key() {
    let hsm = SoftHsm::new("appliance");
    let (bundle, pin) = request_bundle(&hsm);
    let info = json(&ok(hsm
        .rootcellar()
        .args(["bundle", "verify", bundle.to_str().unwrap(), "--json"])
        .args(["--pin", pin.to_str().unwrap(), "--kind", "request"])));
    let types: Vec<_> = info["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            "public-key:ctlog.pub",
            "csr:fulcio.csr",
            "public-key:online.pub",
            "public-key:rekor.pub",
            "certificate:root.pem",
            "csr:tsa.csr"
        ]
    );
    let text = String::from_utf8_lossy(
        &ok(hsm
            .rootcellar()
            .args(["bundle", "inspect", bundle.to_str().unwrap()]))
        .stdout,
    )
    .into_owned();
    assert!(text.contains("not checked"), "{text}");
    assert!(text.contains("ceremony:    2026-q4"), "{text}");
}

/// Runs `bundle extract` and asserts it fails with one message containing `expected`, and
/// that nothing was extracted.
fn extract_refused(hsm: &SoftHsm, bundle: &Path, pin: &Path, extra: &[&str], expected: &str) {
    let out = hsm.path("refused-out");
    let result = hsm
        .rootcellar()
        .args(["bundle", "extract", bundle.to_str().unwrap()])
        .args([
            "--pin",
            pin.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap();
    let message = stderr(&result);
    assert!(
        !result.status.success(),
        "extracted a bad bundle ({expected})"
    );
    assert!(
        message.contains(expected),
        "expected {expected:?} in {message}"
    );
    assert_eq!(
        message.trim_end().lines().count(),
        1,
        "one message: {message}"
    );
    assert!(!out.exists(), "nothing may be extracted ({expected})");
    let strays: Vec<_> = std::fs::read_dir(hsm.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(strays.is_empty(), "temporary directories left: {strays:?}");
}

#[test]
fn damaged_or_foreign_bundles_are_refused_by_the_cli_with_one_message() {
    let hsm = SoftHsm::new("appliance");
    let (bundle, pin) = request_bundle(&hsm);
    let bytes = std::fs::read(&bundle).unwrap();
    let variant = |name: &str, data: &[u8]| {
        let path = hsm.path(name);
        std::fs::write(&path, data).unwrap();
        path
    };

    let mut flipped = bytes.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 0x20;
    extract_refused(
        &hsm,
        &variant("flipped.rcb", &flipped),
        &pin,
        &[],
        "hash check failed",
    );
    extract_refused(
        &hsm,
        &variant("short.rcb", &bytes[..bytes.len() / 2]),
        &pin,
        &[],
        "truncation check failed",
    );
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"PS: one more thing");
    extract_refused(
        &hsm,
        &variant("long.rcb", &longer),
        &pin,
        &[],
        "trailing-data check failed",
    );
    let (_, other_pub) = online_key(hsm.dir.path(), "other");
    extract_refused(&hsm, &bundle, &other_pub, &[], "pinned-key check failed");
    extract_refused(
        &hsm,
        &bundle,
        &pin,
        &["--kind", "response"],
        "kind check failed",
    );
    extract_refused(
        &hsm,
        &bundle,
        &pin,
        &["--max-entries", "5"],
        "entry-count check failed",
    );
    extract_refused(
        &hsm,
        &bundle,
        &pin,
        &["--max-entry-size", "100"],
        "entry-size check failed",
    );
    extract_refused(
        &hsm,
        &bundle,
        &pin,
        &["--max-size", "1000"],
        "size check failed",
    );
    extract_refused(
        &hsm,
        &variant("text.rcb", b"hello"),
        &pin,
        &[],
        "not a rootcellar bundle",
    );

    // The appliance signs responses with a token key only.
    let message = fails(
        hsm.rootcellar()
            .args(["bundle", "respond", "--key", pin.to_str().unwrap()])
            .args(["--out", hsm.path("x.rcb").to_str().unwrap()]),
    );
    assert!(message.contains("lives in a token"), "{message}");
    // Outputs are never overwritten.
    let message = fails(
        hsm.rootcellar()
            .args(["bundle", "new", "--sign-key", pin.to_str().unwrap()])
            .args(["--out", bundle.to_str().unwrap()]),
    );
    assert!(message.contains("exists already"), "{message}");
}

fn age_identity(hsm: &SoftHsm, name: &str) -> (PathBuf, String) {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let path = hsm.path(name);
    std::fs::write(&path, format!("{}\n", identity.to_string().expose_secret())).unwrap();
    (path, identity.to_public().to_string())
}

#[test]
fn sealed_bundles_open_for_each_recipient_and_refuse_a_third_identity() {
    let hsm = SoftHsm::new("appliance");
    let (bundle, pin) = request_bundle(&hsm);
    let (custodian_1, recipient_1) = age_identity(&hsm, "custodian-1.age");
    let (custodian_2, recipient_2) = age_identity(&hsm, "custodian-2.age");
    let (stranger, _) = age_identity(&hsm, "stranger.age");
    let sealed = hsm.path("request.rcb.age");
    ok(hsm
        .rootcellar()
        .args(["bundle", "seal", bundle.to_str().unwrap()])
        .args(["--recipient", &recipient_1, "--recipient", &recipient_2])
        .args(["--out", sealed.to_str().unwrap()]));
    assert!(std::fs::read(&sealed)
        .unwrap()
        .starts_with(b"age-encryption.org/v1"));

    for (i, identity) in [&custodian_1, &custodian_2].into_iter().enumerate() {
        ok(hsm
            .rootcellar()
            .args(["bundle", "verify", sealed.to_str().unwrap()])
            .args(["--pin", pin.to_str().unwrap()])
            .args(["--identity", identity.to_str().unwrap()]));
        let opened = hsm.path(&format!("opened-{i}.rcb"));
        ok(hsm
            .rootcellar()
            .args(["bundle", "unseal", sealed.to_str().unwrap()])
            .args(["--identity", identity.to_str().unwrap()])
            .args(["--out", opened.to_str().unwrap()]));
        assert_eq!(
            std::fs::read(&opened).unwrap(),
            std::fs::read(&bundle).unwrap()
        );
    }
    extract_refused(
        &hsm,
        &sealed,
        &pin,
        &["--identity", stranger.to_str().unwrap()],
        "identity check failed",
    );
    extract_refused(&hsm, &sealed, &pin, &[], "the bundle is sealed");

    // A passphrase from a file, never from the command line.
    let passphrase = hsm.path("passphrase");
    std::fs::write(&passphrase, "correct horse battery staple\n").unwrap();
    let wrong = hsm.path("wrong-passphrase");
    std::fs::write(&wrong, "incorrect horse\n").unwrap();
    let backup = hsm.path("backup.rcb.age");
    ok(hsm
        .rootcellar()
        .args(["bundle", "new", "--kind", "backup"])
        .args(["--sign-key", hsm.path("requester.key").to_str().unwrap()])
        .args([
            "--file",
            hsm.path("outputs/transcript.txt").to_str().unwrap(),
        ])
        .args(["--seal-passphrase-file", passphrase.to_str().unwrap()])
        .args(["--out", backup.to_str().unwrap()]));
    ok(hsm
        .rootcellar()
        .args([
            "bundle",
            "verify",
            backup.to_str().unwrap(),
            "--kind",
            "backup",
        ])
        .args(["--pin", pin.to_str().unwrap()])
        .args(["--passphrase-file", passphrase.to_str().unwrap()]));
    extract_refused(
        &hsm,
        &backup,
        &pin,
        &["--passphrase-file", wrong.to_str().unwrap()],
        "passphrase check failed",
    );
}
