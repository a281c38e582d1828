//! The YubiHSM2 backend against the `yubihsm` crate's MockHsm, in process.
//!
//! Each test registers its own mock devices (`yubihsm::Connector::mockhsm()`) under fresh names
//! in an `HsmConfig`, each with its provider (`Hsm`), then reaches them only through `yubihsm:`
//! URIs and the library's public seam (`Hsm::backend`, `Hsm::signer`, x509, tuf), as production
//! code does.
//! A second clone of each connector lets a test look at the device from outside rootcellar.
//! The mock's default authentication key is 0x0001 with the password "password".

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rootcellar::keys::yubihsm::{
    audit_log, backup_keys, mark_audit_log_read, restore_keys, KeySpec, WrappedKeys, YubiHsm,
};
use rootcellar::keys::{
    self, Hsm, HsmConfig, KeyAlgorithm, KeyBackend, KeyError, KeyLocation, PublicKey, ShareError,
    Signer, YubiHsmUri,
};

/// Each registered mock's provider, by connector name: a device keeps its sessions across the
/// calls of a test, as in a process that opened it once.
fn providers() -> &'static Mutex<HashMap<String, Arc<Hsm>>> {
    static PROVIDERS: OnceLock<Mutex<HashMap<String, Arc<Hsm>>>> = OnceLock::new();
    PROVIDERS.get_or_init(Default::default)
}

/// The provider whose configuration has the connector `uri` names (an empty one for a name
/// nobody registered).
fn provider(uri: &str) -> Arc<Hsm> {
    let name = match KeyLocation::parse(uri) {
        Ok(KeyLocation::YubiHsm(parsed)) => parsed.connector.to_string(),
        _ => String::new(),
    };
    providers()
        .lock()
        .unwrap()
        .get(&name)
        .cloned()
        .unwrap_or_else(|| Arc::new(HsmConfig::default().open()))
}

fn at(uri: &str) -> KeyLocation {
    KeyLocation::parse(uri).unwrap()
}

fn open_backend(uri: &str) -> Result<Box<dyn KeyBackend>, KeyError> {
    provider(uri).backend(&KeyLocation::parse(uri)?)
}

fn open_signer(uri: &str) -> Result<Arc<dyn Signer>, KeyError> {
    provider(uri).signer(&KeyLocation::parse(uri)?)
}

/// A registered mock YubiHSM2, with a password file for its default authentication key.
struct Mock {
    name: String,
    outside: yubihsm::Connector,
    dir: tempfile::TempDir,
}

impl Mock {
    fn new(what: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("{what}-{}", COUNT.fetch_add(1, Ordering::SeqCst));
        let connector = yubihsm::Connector::mockhsm();
        let outside = connector.clone();
        let mut config = HsmConfig::default();
        config.register_connector(&name, connector).unwrap();
        providers()
            .lock()
            .unwrap()
            .insert(name.clone(), Arc::new(config.open()));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), "password\n").unwrap();
        Mock { name, outside, dir }
    }

    /// A URI on this device with path attributes `attrs` (`;id=…`), logging in as 0x0001.
    fn uri(&self, attrs: &str) -> String {
        format!(
            "yubihsm:connector={}{attrs}?auth-key=0x0001&password-source={}",
            self.name,
            self.dir.path().join("password").display()
        )
    }

    fn device(&self) -> Arc<YubiHsm> {
        let uri = self.uri("");
        at(&uri).yubihsm(&provider(&uri)).unwrap().unwrap()
    }

    /// Generates a key through the backend seam and returns its URI (with the query).
    fn generate(&self, label: &str) -> String {
        open_backend(&self.uri(&format!(";label={label}")))
            .unwrap()
            .generate(label, KeyAlgorithm::EcdsaP256)
            .unwrap()
            .uri
    }

    /// Registers this device in `config` too (a provider reaching several devices).
    fn register_in(&self, config: &mut HsmConfig) {
        config
            .register_connector(&self.name, self.outside.clone())
            .unwrap();
    }

    /// A client of our own on the same device, for checks from outside rootcellar.
    fn outside_client(&self) -> yubihsm::Client {
        yubihsm::Client::open(self.outside.clone(), Default::default(), false).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn id_of(uri: &str) -> u16 {
    YubiHsmUri::parse(uri).unwrap().id.unwrap()
}

#[test]
fn generated_keys_are_sign_only_and_found_by_id_and_label() {
    let mock = Mock::new("gen");
    let backend = open_backend(&mock.uri("")).unwrap();
    let info = backend
        .generate("tuf-root-1", KeyAlgorithm::EcdsaP256)
        .unwrap();
    assert_eq!(info.label, "tuf-root-1");
    assert_eq!(info.public_key.algorithm(), KeyAlgorithm::EcdsaP256);
    let protection = info.protection.clone().unwrap();
    assert!(protection.is_hardened(), "{}", protection.summary());
    let uri = YubiHsmUri::parse(&info.uri).unwrap();
    assert_eq!(uri.serial.as_deref(), Some("0123456789"));
    assert_eq!(uri.label.as_deref(), Some("tuf-root-1"));
    let id = uri.id.unwrap();

    // The device's own view: sign-ecdsa only, generated inside, in domain 1.
    let device = mock.device();
    let details = device.key_details(id).unwrap();
    assert_eq!(details.capabilities, ["sign-ecdsa"]);
    assert_eq!(details.origin, "generated");
    assert_eq!(details.domains, 1);
    let info_outside = mock
        .outside_client()
        .get_object_info(id, yubihsm::object::Type::AsymmetricKey)
        .unwrap();
    assert_eq!(info_outside.capabilities, yubihsm::Capability::SIGN_ECDSA);

    // Found by id alone, by label alone, and by both; listed.
    let by_id = backend
        .show(&at(
            &mock.uri(&format!(";id={}", keys::yubihsm::format_id(id)))
        ))
        .unwrap();
    let by_label = backend.show(&at(&mock.uri(";label=tuf-root-1"))).unwrap();
    assert_eq!(by_id.public_key, info.public_key);
    assert_eq!(by_label.public_key, info.public_key);
    assert_eq!(backend.show(&at(&info.uri)).unwrap().uri, info.uri);
    let second = backend
        .generate("tuf-root-2", KeyAlgorithm::EcdsaP256)
        .unwrap();
    let listed: Vec<String> = backend
        .list()
        .unwrap()
        .into_iter()
        .map(|k| k.label)
        .collect();
    assert_eq!(listed, ["tuf-root-1", "tuf-root-2"]);
    assert_ne!(second.public_key, info.public_key);

    // Exportable only when asked; labels and ids are never reused.
    let exportable = device
        .generate_key(&KeySpec {
            id: Some(0x0777),
            exportable_under_wrap: true,
            ..KeySpec::new("backed-up", KeyAlgorithm::EcdsaP256)
        })
        .unwrap();
    assert_eq!(exportable.id, 0x0777);
    assert_eq!(
        exportable.capabilities,
        ["sign-ecdsa", "exportable-under-wrap"]
    );
    assert!(!exportable.protection().is_hardened());
    let err = backend
        .generate("tuf-root-1", KeyAlgorithm::EcdsaP256)
        .unwrap_err();
    assert!(matches!(err, KeyError::LabelExists { .. }), "{err}");
    let err = open_backend(&mock.uri(";id=0x0777"))
        .unwrap()
        .generate("other", KeyAlgorithm::EcdsaP256)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("already holds an asymmetric key with id 0x0777"),
        "{err}"
    );
}

#[test]
fn signatures_are_der_over_sha256_and_verify_with_p256() {
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;

    let mock = Mock::new("sign");
    let uri = mock.generate("signer");
    let signer = open_signer(&uri).unwrap();
    // The recorded URI names the key but not how to log in.
    assert!(
        !signer.key_uri().contains("password-source"),
        "{}",
        signer.key_uri()
    );
    assert!(signer.key_uri().starts_with("yubihsm:connector="));
    for message in [&b""[..], b"rootcellar", &[0xa5; 10_000][..]] {
        let der = signer.sign(message).unwrap();
        assert!(signer.public_key().verify(message, &der));
        assert!(!signer.public_key().verify(b"something else", &der));
        // Independently of rootcellar's PublicKey: p256 from the SPKI, signature from DER.
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(&signer.public_key().spki_der())
            .unwrap();
        let signature = p256::ecdsa::Signature::from_der(&der).unwrap();
        key.verify(message, &signature).unwrap();
    }
    // The recorded URI has no auth key: opening a device needs one, and says so.
    let err = open_signer(&signer.key_uri()).err().unwrap();
    assert!(
        err.to_string().contains("auth-key=0xNNNN is required"),
        "{err}"
    );
}

#[test]
fn wrong_password_is_one_clear_error_and_not_retried() {
    let mock = Mock::new("wrongpw");
    let wrong = mock.path("wrong");
    std::fs::write(&wrong, "passw0rd\n").unwrap();
    let uri = format!(
        "yubihsm:connector={};label=k?auth-key=0x0001&password-source={}",
        mock.name,
        wrong.display()
    );
    let err = open_signer(&uri).err().expect("wrong password refused");
    assert!(matches!(err, KeyError::WrongPassword { .. }), "{err:?}");
    let message = err.to_string();
    assert_eq!(
        message,
        format!(
            "wrong password for authentication key 0x0001 on YubiHSM2 (connector={}) (not retried)",
            mock.name
        )
    );
    assert!(!message.contains("passw0rd"));
    // The right password still works afterwards: nothing was cached from the failure.
    mock.generate("k");
    open_signer(&mock.uri(";label=k")).unwrap();
}

#[test]
fn a_dedicated_authentication_key_logs_in_with_its_own_password() {
    let mock = Mock::new("authkey");
    let client = mock.outside_client();
    let operator = yubihsm::authentication::Key::derive_from_password(b"operator pass");
    client
        .put_authentication_key(
            0x0002,
            "operator".into(),
            yubihsm::Domain::DOM1,
            yubihsm::Capability::GENERATE_ASYMMETRIC_KEY
                | yubihsm::Capability::SIGN_ECDSA
                | yubihsm::Capability::GET_LOG_ENTRIES,
            yubihsm::Capability::SIGN_ECDSA | yubihsm::Capability::EXPORTABLE_UNDER_WRAP,
            yubihsm::authentication::Algorithm::YubicoAes,
            operator,
        )
        .unwrap();
    let password = mock.path("operator");
    std::fs::write(&password, "operator pass\n").unwrap();
    let uri = |password_file: &Path| {
        format!(
            "yubihsm:connector={};label=custodian?auth-key=0x0002&password-source={}",
            mock.name,
            password_file.display()
        )
    };
    // The default key's password does not open the operator's key.
    let err = open_backend(&uri(&mock.path("password"))).err().unwrap();
    assert!(matches!(err, KeyError::WrongPassword { .. }), "{err}");
    assert!(
        err.to_string().contains("authentication key 0x0002"),
        "{err}"
    );
    let info = open_backend(&uri(&password))
        .unwrap()
        .generate("custodian", KeyAlgorithm::EcdsaP256)
        .unwrap();
    assert!(info.uri.contains("auth-key=0x0002"), "{}", info.uri);
    let signer = open_signer(&info.uri).unwrap();
    assert!(signer
        .public_key()
        .verify(b"m", &signer.sign(b"m").unwrap()));
}

#[test]
fn unknown_keys_and_devices_are_clear_errors() {
    let mock = Mock::new("unknown");
    mock.generate("present");
    let err = open_signer(&mock.uri(";id=0x0999")).err().unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "no private key matching yubihsm:connector={0};id=0x0999 on token \"YubiHSM2 0123456789 (connector={0})\"",
            mock.name
        )
    );
    let err = open_signer(&mock.uri(";label=absent")).err().unwrap();
    assert!(matches!(err, KeyError::KeyNotFound { .. }), "{err}");
    // id and label both given must both match.
    let present = id_of(&mock.generate("second"));
    let err = open_signer(&mock.uri(&format!(
        ";id={};label=present",
        keys::yubihsm::format_id(present)
    )))
    .err()
    .unwrap();
    assert!(matches!(err, KeyError::KeyNotFound { .. }), "{err}");
    // A URI that names no key, a device that is not registered, a serial that does not match.
    let err = open_signer(&mock.uri("")).err().unwrap();
    assert!(err.to_string().contains("names no key"), "{err}");
    let err = open_signer("yubihsm:connector=never-registered;id=0x0001?auth-key=0x0001")
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("no YubiHSM2 connector named \"never-registered\""),
        "{err}"
    );
    let err = open_signer(&mock.uri(";serial=0000000001;label=present"))
        .err()
        .unwrap();
    assert!(matches!(err, KeyError::SerialMismatch { .. }), "{err}");
    let err = open_signer(&mock.uri(";label=present").replace("?", "?password=x&"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("password is refused"), "{err}");
}

/// This machine's clock, confirmed as the appliance confirms a time (it is never far from itself).
fn clock_time() -> rootcellar::time::ConfirmedTime {
    use rootcellar::time::{check, Checked, Reference, TimePolicy};
    match check(
        jiff::Timestamp::now(),
        &Reference::this_machine(None, TimePolicy::default()),
    ) {
        Ok(Checked::Confirmed(t)) => t,
        other => panic!("the clock was not confirmed: {other:?}"),
    }
}

#[test]
fn x509_root_signed_by_a_yubihsm_key_passes_openssl_verify() {
    let mock = Mock::new("x509");
    let signer = open_signer(&mock.generate("root-ca")).unwrap();
    let subject = rootcellar::x509::parse_subject("CN=YubiHSM2 Test Root,O=rootcellar").unwrap();
    let validity = rootcellar::x509::Validity {
        not_before: clock_time(),
        days: 3652,
    };
    let root = rootcellar::x509::issue_root_ca(
        signer.as_ref(),
        subject,
        &validity,
        &rootcellar::x509::Serial::random(),
    )
    .unwrap();
    let pem = mock.path("root.pem");
    std::fs::write(&pem, root.pem()).unwrap();
    let pem = pem.to_str().unwrap();
    let out = Command::new("openssl")
        .args([
            "verify",
            "-x509_strict",
            "-check_ss_sig",
            "-CAfile",
            pem,
            pem,
        ])
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in", pem])
        .output()
        .unwrap();
    let certified = PublicKey::from_spki(&out.stdout).unwrap();
    assert_eq!(&certified, signer.public_key());
}

/// Runs the python-tuf client over `repo` (served on localhost), trusting `trusted_root`.
fn python_tuf(repo: &Path, trusted_root: &Path, downloads: &Path, targets: &[PathBuf]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/tuf_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg("--repo")
        .arg(repo)
        .arg("--root")
        .arg(trusted_root)
        .arg("--download-dir")
        .arg(downloads);
    for target in targets {
        let name = target.file_name().unwrap().to_str().unwrap();
        cmd.arg(format!("{name}={}", target.display()));
    }
    let out = cmd
        .output()
        .expect("python3 runs (`make test` installs python-tuf)");
    assert!(
        out.status.success(),
        "python-tuf refused the repository: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tuf_repository_signed_by_yubihsm_keys_is_accepted_by_python_tuf() {
    // Two custodians, each with their own device, hold root 2-of-2; an online device holds the
    // other roles.
    let custodian_1 = Mock::new("tuf-c1");
    let custodian_2 = Mock::new("tuf-c2");
    let online = Mock::new("tuf-online");
    let policy_text = r#"
        consistent_snapshot = true
        [roles.root]
        keys = ["root-1", "root-2"]
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
    let mut keys_text = String::from("[keys]\n");
    for (name, mock) in [
        ("root-1", &custodian_1),
        ("root-2", &custodian_2),
        ("targets", &online),
        ("snapshot", &online),
        ("timestamp", &online),
    ] {
        let uri = mock.generate(name);
        keys_text.push_str(&format!("{name} = {}\n", toml::Value::String(uri)));
    }
    let dir = online.dir.path();
    let mut policy =
        rootcellar::tuf::Policy::from_toml(policy_text, &dir.join("policy.toml")).unwrap();
    policy
        .add_keys_toml(&keys_text, &dir.join("keys.toml"))
        .unwrap();
    policy.validate().unwrap();
    let target = dir.join("trusted_root.json");
    std::fs::write(&target, br#"{"mediaType": "test"}"#).unwrap();
    let repo = dir.join("repo");
    let mut config = HsmConfig::default();
    for mock in [&custodian_1, &custodian_2, &online] {
        mock.register_in(&mut config);
    }
    let report = rootcellar::tuf::init_repository(
        &policy,
        std::slice::from_ref(&target),
        &repo,
        &config.open(),
        clock_time(),
        &mut rootcellar::tuf::Unrecorded,
    )
    .unwrap();
    let report = report.to_json();
    let root_keys = report["roles"][0]["keys"].as_array().unwrap();
    assert!(
        root_keys
            .iter()
            .all(|k| k["uri"].as_str().unwrap().starts_with("yubihsm:")),
        "{report}"
    );
    let trusted = dir.join("trusted-root.json");
    std::fs::copy(repo.join("metadata/1.root.json"), &trusted).unwrap();
    python_tuf(&repo, &trusted, &dir.join("downloads"), &[target]);
}

#[test]
fn wrapped_backup_restores_into_a_second_device_and_signs_verifiably() {
    let source = Mock::new("backup-a");
    let target = Mock::new("backup-b");
    let device_a = source.device();
    // Through the backend seam, as a ceremony generates a key its policy backs up.
    let generated = open_backend(&source.uri(""))
        .unwrap()
        .generate_for_backup("root-ca", KeyAlgorithm::EcdsaP256)
        .unwrap();
    let key = device_a.key_details(id_of(&generated.uri)).unwrap();
    assert_eq!(key.capabilities, ["sign-ecdsa", "exportable-under-wrap"]);
    let sealed = device_a
        .generate_key(&KeySpec::new("never-leaves", KeyAlgorithm::EcdsaP256))
        .unwrap();

    // A key generated without exportable-under-wrap cannot be backed up, and nothing is left on
    // the device by the attempt.
    let err = backup_keys(&device_a, &[key.id, sealed.id], 2, 3).unwrap_err();
    assert!(matches!(err, KeyError::NotExportable { .. }), "{err}");
    let err = backup_keys(&device_a, &[key.id], 1, 3).unwrap_err();
    assert!(
        err.to_string().contains("threshold must be at least 2"),
        "{err}"
    );

    let backup = backup_keys(&device_a, &[key.id], 2, 3).unwrap();
    assert_eq!(backup.wrap_key_shares.len(), 3);
    assert_eq!(backup.keys.threshold, 2);
    assert_eq!(backup.keys.source_serial, "0123456789");
    let wrap_keys = |mock: &Mock| {
        mock.outside_client()
            .list_objects(&[yubihsm::object::Filter::Type(
                yubihsm::object::Type::WrapKey,
            )])
            .unwrap()
            .len()
    };
    assert_eq!(wrap_keys(&source), 0, "the wrap key stays on the device");

    // The wrapped keys travel as JSON; shares as their own encoding.
    let json = serde_json::to_vec(&backup.keys.to_json()).unwrap();
    let carried = WrappedKeys::from_json(&json).unwrap();
    let shares: Vec<_> = backup
        .wrap_key_shares
        .iter()
        .map(|s| keys::Share::from_bytes(&s.to_bytes()).unwrap())
        .collect();

    let device_b = target.device();
    // One share is not enough, and shares of another backup are refused.
    let err = restore_keys(&device_b, &carried, &shares[..1]).unwrap_err();
    assert!(
        matches!(
            err,
            KeyError::Shares(ShareError::NotEnoughShares {
                needed: 2,
                given: 1
            })
        ),
        "{err}"
    );
    let other = keys::split_secret(&[7u8; 32], 2, 3).unwrap();
    let err = restore_keys(&device_b, &carried, &other[..2]).unwrap_err();
    assert!(err.to_string().contains("belongs to split"), "{err}");

    let restored =
        restore_keys(&device_b, &carried, &[shares[2].clone(), shares[0].clone()]).unwrap();
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].id, key.id);
    assert_eq!(restored[0].public_key, key.public_key);
    assert_eq!(restored[0].origin, "wrapped-generated");
    assert_eq!(wrap_keys(&target), 0, "the wrap key stays on the device");

    // The restored key signs on the second device, verifiably with the original public key.
    let on_b = open_signer(&target.uri(";label=root-ca")).unwrap();
    let der = on_b.sign(b"restored").unwrap();
    assert!(key.public_key.verify(b"restored", &der));
    assert!(on_b
        .key_uri()
        .contains(&format!("connector={}", target.name)));

    // Restoring twice would replace the key: refused.
    let err = restore_keys(&device_b, &carried, &shares[1..]).unwrap_err();
    assert!(matches!(err, KeyError::IdInUse { .. }), "{err}");

    // A wrapped key altered in storage fails the device's authenticated decryption; the
    // temporary wrap key is removed all the same.
    let third = Mock::new("backup-c");
    let mut altered = carried.clone();
    let last = altered.keys[0].wrapped.len() - 1;
    altered.keys[0].wrapped[last] ^= 0x01;
    let err = restore_keys(&third.device(), &altered, &shares[..2]).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "backup refused: key {}",
            keys::yubihsm::format_id(key.id)
        )),
        "{err}"
    );
    assert_eq!(wrap_keys(&third), 0, "the wrap key stays on the device");
}

#[test]
fn audit_log_is_read_summarized_and_marked() {
    let mock = Mock::new("audit");
    mock.generate("k");
    let device = mock.device();
    let log = audit_log(&device).unwrap();
    // The MockHsm keeps no log (README: what remains to check on hardware); the call path,
    // the summary and the marking run all the same.
    assert_eq!(log.device_serial, "0123456789");
    assert!(log.entries.is_empty());
    let summary = log.summary();
    assert!(summary.chain_intact);
    assert!(
        summary.to_text().contains("no entries"),
        "{}",
        summary.to_text()
    );
    assert_eq!(log.to_json()["device_serial"], "0123456789");
    mark_audit_log_read(&device, 0).unwrap();
}

/// A free port on 127.0.0.1 (nothing listens on it once this returns).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn http_connector_reaches_a_device_served_like_yubihsm_connector() {
    // The yubihsm crate's yubihsm-connector-compatible server, in front of a MockHsm, on
    // loopback: the same HTTP path an operator's yubihsm-connector takes.
    let port = free_port();
    let config = yubihsm::HttpConfig {
        addr: "127.0.0.1".into(),
        port,
        ..Default::default()
    };
    let server =
        yubihsm::connector::http::Server::new(&config, yubihsm::Connector::mockhsm()).unwrap();
    std::thread::spawn(move || server.run());

    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "password\n").unwrap();
    let uri = format!(
        "yubihsm:connector=http://127.0.0.1:{port};label=over-http?auth-key=0x0001&password-source={}",
        password.display()
    );
    let info = open_backend(&uri)
        .unwrap()
        .generate("over-http", KeyAlgorithm::EcdsaP256)
        .unwrap();
    assert!(
        info.uri.starts_with(&format!(
            "yubihsm:connector=http://127.0.0.1:{port};serial="
        )),
        "{}",
        info.uri
    );
    let signer = open_signer(&info.uri).unwrap();
    let der = signer.sign(b"over http").unwrap();
    assert!(info.public_key.verify(b"over http", &der));
}

#[test]
fn an_absent_connector_is_a_clear_error() {
    let uri = format!(
        "yubihsm:connector=http://127.0.0.1:{};id=0x0001?auth-key=0x0001&password-source=/nonexistent",
        free_port()
    );
    // The password is read first (the session needs it): an unreadable file is named as such.
    let err = open_signer(&uri).err().unwrap();
    assert!(matches!(err, KeyError::PasswordUnavailable { .. }), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "password\n").unwrap();
    let uri = uri.replace("/nonexistent", password.to_str().unwrap());
    let err = open_signer(&uri).err().unwrap();
    assert!(matches!(err, KeyError::DeviceUnreachable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("cannot reach YubiHSM2 (connector=http://127.0.0.1:"),
        "{err}"
    );
}

#[test]
fn a_password_change_replaces_the_key_and_clears_an_interrupted_one() {
    use yubihsm::{authentication, object, Capability, Credentials, Domain};
    let mock = Mock::new("password-change");
    let device = mock.device();
    let signer = open_signer(&mock.generate("kept")).unwrap();
    // What an earlier change cut off after its first step leaves: a temporary key.
    let stale = yubihsm::Client::open(
        mock.outside.clone(),
        Credentials::from_password(1, b"password"),
        false,
    )
    .unwrap();
    stale
        .put_authentication_key(
            0x0777,
            object::Label::from_bytes(keys::yubihsm::TEMPORARY_AUTH_KEY_LABEL.as_bytes()).unwrap(),
            Domain::all(),
            Capability::all(),
            Capability::all(),
            authentication::Algorithm::YubicoAes,
            authentication::Key::derive_from_password(b"an older password"),
        )
        .unwrap();

    let new = keys::yubihsm::Password::new(zeroize::Zeroizing::new("a new random one".into()));
    let replaced = device.change_password(&new).unwrap();

    let open = |password: &[u8]| {
        yubihsm::Client::open(
            mock.outside.clone(),
            Credentials::from_password(1, password),
            false,
        )
    };
    assert!(open(b"password").is_err(), "the old password still works");
    let session = open(b"a new random one").expect("the new password opens 0x0001");
    let auth_keys: Vec<u16> = session
        .list_objects(&[object::Filter::Type(object::Type::AuthenticationKey)])
        .unwrap()
        .iter()
        .map(|e| e.object_id)
        .collect();
    assert_eq!(auth_keys, [1], "the stale and the temporary key are gone");
    let info = session
        .get_object_info(1, object::Type::AuthenticationKey)
        .unwrap();
    assert_eq!(info.capabilities, Capability::all(), "capabilities kept");
    // Later opens in the process reach the new session; signers made before still sign.
    assert!(Arc::ptr_eq(&mock.device(), &replaced));
    let message = b"after the change";
    assert!(signer
        .public_key()
        .verify(message, &signer.sign(message).unwrap()));
}

#[test]
fn who_can_export_a_key_follows_the_authentication_keys_capabilities() {
    // The factory key 0x0001 has every capability: anyone with its password can put a wrap key
    // of their own and export an exportable-under-wrap key under it.
    let mock = Mock::new("enforce");
    let factory = open_backend(&mock.uri(""))
        .unwrap()
        .enforcement()
        .unwrap()
        .unwrap();
    assert!(
        factory.fixed_attributes && factory.copy_refused,
        "{factory:?}"
    );
    assert!(!factory.wrap_only_trusted, "{factory:?}");
    assert!(
        factory.basis.contains("authentication key 0x0001"),
        "{factory:?}"
    );

    // An operator key that signs and makes keys but cannot put wrap keys: only another
    // authentication key (the backup's) can make the wrap key an export needs.
    let client = mock.outside_client();
    client
        .put_authentication_key(
            0x0003,
            "signer".into(),
            yubihsm::Domain::DOM1,
            yubihsm::Capability::GENERATE_ASYMMETRIC_KEY
                | yubihsm::Capability::SIGN_ECDSA
                | yubihsm::Capability::EXPORT_WRAPPED,
            yubihsm::Capability::SIGN_ECDSA | yubihsm::Capability::EXPORTABLE_UNDER_WRAP,
            yubihsm::authentication::Algorithm::YubicoAes,
            yubihsm::authentication::Key::derive_from_password(b"signer pass"),
        )
        .unwrap();
    std::fs::write(mock.path("signer"), "signer pass\n").unwrap();
    let signer = open_backend(&format!(
        "yubihsm:connector={}?auth-key=0x0003&password-source={}",
        mock.name,
        mock.path("signer").display()
    ))
    .unwrap();
    let enforcement = signer.enforcement().unwrap().unwrap();
    assert!(enforcement.wrap_only_trusted, "{enforcement:?}");

    // What the MockHsm itself enforces: a key without exportable-under-wrap is not exported,
    // whatever wrap key is used; a key's capabilities show as fixed and not copyable.
    let uri = mock.generate("fixed");
    let info = open_backend(&uri).unwrap().show(&at(&uri)).unwrap();
    let protection = info.protection.unwrap();
    assert!(
        !protection.modifiable && !protection.copyable,
        "{protection:?}"
    );
    let refused = backup_keys(&mock.device(), &[id_of(&uri)], 2, 3).unwrap_err();
    assert!(
        matches!(refused, KeyError::NotExportable { .. }),
        "{refused}"
    );
    let wrap_key = [7u8; 32];
    client
        .put_wrap_key(
            0x0042,
            "ad-hoc".into(),
            yubihsm::Domain::DOM1,
            yubihsm::Capability::EXPORT_WRAPPED,
            yubihsm::Capability::all(),
            yubihsm::wrap::Algorithm::Aes256Ccm,
            wrap_key.to_vec(),
        )
        .unwrap();
    let exported = client.export_wrapped(0x0042, yubihsm::object::Type::AsymmetricKey, id_of(&uri));
    assert!(
        exported.is_err(),
        "the device exported a key without exportable-under-wrap"
    );
}
