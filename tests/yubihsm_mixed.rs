//! The mixed rehearsal: `ceremony/root-init.toml` with the root CA on a SoftHSM2 token and one
//! custodian's TUF root key on a (mock) YubiHSM2, the other custodians and the online roles on
//! SoftHSM2 — only that key's URI differs from the committed script. The certificate is checked
//! by openssl and the repository by python-tuf; x509 and tuf see only key URIs.
//!
//! SoftHSM2 reads its configuration once per process, so this file is its own test binary and
//! holds a single test.

mod support;

use rootcellar::keys::KeyLocation;
use support::{openssl, python_tuf_accepts, Workspace};

#[test]
fn root_init_with_the_root_ca_on_softhsm_and_a_custodian_on_a_mock_yubihsm() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut ws = Workspace::new(dir, &["yubihsm-mock-custodian-2-auth-0x0001"]);
    ws.hsm
        .register_connector("mock-custodian-2", yubihsm::Connector::mockhsm())
        .unwrap();
    let custodian_2 = "yubihsm:connector=mock-custodian-2;label=tuf-root?auth-key=0x0001";
    let script = ws.script("root-init", &[("tuf-root-2", custodian_2)]);
    let out = dir.join("root-init");
    ws.run(&script, None, &out, Some("bundle-key")).unwrap();

    // The root CA is the SoftHSM2 token's P-384 key (the committed script's), self-signed.
    let root_pem = out.join("root.pem");
    let root = root_pem.to_str().unwrap();
    let verified = openssl(&["verify", "-x509_strict", "-CAfile", root, root]);
    assert!(verified.contains(": OK"), "{verified}");
    let text = openssl(&["x509", "-in", root, "-noout", "-text"]);
    assert!(text.contains("NIST CURVE: P-384"), "{text}");

    // Root v1 holds custodian 2's key from the YubiHSM2 (as the device reports it) beside the
    // SoftHSM2 custodians', and python-tuf accepts it and downloads the root certificate.
    // The ceremony logged out at its end: the test logs in with the password file.
    let login = format!(
        "{custodian_2}&password-source={}",
        ws.dir.join("mock.password").display()
    );
    let device_keys = ws
        .provider()
        .backend(&KeyLocation::parse(&login).unwrap())
        .unwrap()
        .list()
        .unwrap();
    assert_eq!(device_keys.len(), 1);
    let from_device = device_keys[0].public_key.spki_pem();
    assert_eq!(
        std::fs::read_to_string(out.join("tuf-root-2.pub.pem")).unwrap(),
        from_device
    );
    let root_v1: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("tuf/metadata/1.root.json")).unwrap())
            .unwrap();
    let root_keys = root_v1["signed"]["roles"]["root"]["keyids"]
        .as_array()
        .unwrap();
    assert_eq!(root_keys.len(), 3);
    let public: Vec<String> = root_keys
        .iter()
        .map(|id| {
            root_v1["signed"]["keys"][id.as_str().unwrap()]["keyval"]["public"]
                .as_str()
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    assert!(
        public.contains(&from_device.trim().to_string()),
        "{public:?}"
    );
    python_tuf_accepts(
        &out.join("tuf"),
        &out.join("tuf/metadata/1.root.json"),
        &dir.join("downloads"),
        "root.pem",
        &root_pem,
    );

    // Only the YubiHSM2's audit log is in the transcript: custodian 2 signed root v1 once.
    let transcript = std::fs::read_to_string(out.join("transcript.md")).unwrap();
    assert_eq!(transcript.matches("YubiHSM2 ").count(), 1, "{transcript}");
    assert!(
        transcript.contains("rootcellar asked this device for 1 signature(s) in this run"),
        "{transcript}"
    );
}
