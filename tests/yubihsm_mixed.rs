//! A mixed rehearsal: the root CA on a SoftHSM2 token, one TUF root custodian on a mock
//! YubiHSM2, the other custodian and the online roles on SoftHSM2. The certificate is checked
//! by openssl and the repository by python-tuf; x509 and tuf see only key URIs.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once per process, when the module is first initialised, so
//! this file is its own test binary and holds a single test with a single SoftHSM2 fixture.

use std::path::{Path, PathBuf};
use std::process::Command;

use rootcellar::keys::{self, open_backend, open_signer, KeyAlgorithm};

const PIN: &str = "246810";
const SO_PIN: &str = "13579111";

fn softhsm_module() -> PathBuf {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("SoftHSM2 is not installed (apt-get install softhsm2); `make test` installs it")
}

/// A SoftHSM2 configuration in `dir` with the tokens `labels`, made the process's configuration.
fn softhsm(dir: &Path, labels: &[&str]) -> (PathBuf, PathBuf) {
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    for label in labels {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", label])
            .args(["--pin", PIN, "--so-pin", SO_PIN])
            .output()
            .expect("softhsm2-util runs");
        assert!(
            out.status.success(),
            "softhsm2-util: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let pin_file = dir.join("user.pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    (softhsm_module(), pin_file)
}

#[test]
fn root_ca_on_softhsm_and_a_custodian_on_a_mock_yubihsm() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (module, pin_file) = softhsm(dir, &["root-ca", "custodian-1", "online"]);
    let pkcs11 = |token: &str, object: &str| {
        format!(
            "pkcs11:token={token};object={object}?module-path={}&pin-source={}",
            module.display(),
            pin_file.display()
        )
    };
    let generate = |uri: &str, label: &str, algorithm| {
        open_backend(uri)
            .unwrap()
            .generate(label, algorithm)
            .unwrap()
            .uri
    };

    // Custodian 2 brings a YubiHSM2 (here a mock), with a password file for its auth key.
    keys::yubihsm::register_connector("custodian-2", yubihsm::Connector::mockhsm()).unwrap();
    let password = dir.join("custodian-2.password");
    std::fs::write(&password, "password\n").unwrap();
    let custodian_2 = generate(
        &format!(
            "yubihsm:connector=custodian-2;label=root-custodian-2?auth-key=0x0001&password-source={}",
            password.display()
        ),
        "root-custodian-2",
        KeyAlgorithm::EcdsaP256,
    );

    // The root CA: P-384 on SoftHSM2, checked by openssl.
    let root_key = open_signer(&generate(
        &pkcs11("root-ca", "root-ca"),
        "root-ca",
        KeyAlgorithm::EcdsaP384,
    ))
    .unwrap();
    let root = rootcellar::x509::issue_root_ca(
        root_key.as_ref(),
        rootcellar::x509::parse_subject("CN=Mixed Rehearsal Root,O=rootcellar").unwrap(),
        &rootcellar::x509::Validity {
            not_before: jiff::Timestamp::now(),
            days: 3652,
        },
    )
    .unwrap();
    let root_pem = dir.join("root.pem");
    std::fs::write(&root_pem, root.pem()).unwrap();
    let pem = root_pem.to_str().unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile", pem, pem])
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // TUF: root 2-of-2 across the two backends; the online roles on SoftHSM2.
    let mut keys_text = String::from("[keys]\n");
    for (name, uri) in [
        (
            "root-custodian-1",
            generate(
                &pkcs11("custodian-1", "root-custodian-1"),
                "root-custodian-1",
                KeyAlgorithm::EcdsaP256,
            ),
        ),
        ("root-custodian-2", custodian_2),
        (
            "targets",
            generate(
                &pkcs11("online", "targets"),
                "targets",
                KeyAlgorithm::EcdsaP256,
            ),
        ),
        (
            "snapshot",
            generate(
                &pkcs11("online", "snapshot"),
                "snapshot",
                KeyAlgorithm::EcdsaP256,
            ),
        ),
        (
            "timestamp",
            generate(
                &pkcs11("online", "timestamp"),
                "timestamp",
                KeyAlgorithm::EcdsaP256,
            ),
        ),
    ] {
        keys_text.push_str(&format!("{name} = {}\n", toml::Value::String(uri)));
    }
    let policy_text = r#"
        consistent_snapshot = true
        [roles.root]
        keys = ["root-custodian-1", "root-custodian-2"]
        threshold = 2
        expires_days = 182
        [roles.targets]
        keys = ["targets"]
        threshold = 1
        expires_days = 182
        [roles.snapshot]
        keys = ["snapshot"]
        threshold = 1
        expires_days = 21
        [roles.timestamp]
        keys = ["timestamp"]
        threshold = 1
        expires_days = 7
    "#;
    let mut policy =
        rootcellar::tuf::Policy::from_toml(policy_text, &dir.join("policy.toml")).unwrap();
    policy
        .add_keys_toml(&keys_text, &dir.join("keys.toml"))
        .unwrap();
    policy.validate().unwrap();
    let repo = dir.join("repo");
    let report = rootcellar::tuf::init_repository(
        &policy,
        std::slice::from_ref(&root_pem),
        &repo,
        jiff::Timestamp::now(),
    )
    .unwrap()
    .to_json();
    let schemes: Vec<&str> = report["roles"][0]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["uri"].as_str().unwrap().split(':').next().unwrap())
        .collect();
    assert_eq!(schemes, ["pkcs11", "yubihsm"], "{report}");

    let trusted = dir.join("trusted-root.json");
    std::fs::copy(repo.join("metadata/1.root.json"), &trusted).unwrap();
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/tuf_client.py"))
        .arg("--repo")
        .arg(&repo)
        .arg("--root")
        .arg(&trusted)
        .arg("--download-dir")
        .arg(dir.join("downloads"))
        .arg(format!("root.pem={}", root_pem.display()))
        .output()
        .expect("python3 runs (`make test` installs python-tuf)");
    assert!(
        out.status.success(),
        "python-tuf refused the mixed repository: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
