//! The ceremonies of `ceremony/` with YubiHSM2 keys (mock devices), selected only by the key
//! URIs in the scripts: root-init with the root CA on one YubiHSM2 (its authentication key's
//! password replaced by a random one split 2 of 3) and one custodian's TUF root key on another,
//! beside SoftHSM2 tokens for the rest (the mixed rehearsal); issue-intermediate unlocking the
//! YubiHSM2 with the custodians' shares; backup-keys and restore-keys the YubiHSM2 way into a
//! third device. Outputs are checked by openssl and python-tuf; the devices' audit logs are in
//! the journal and the transcripts.
//!
//! SoftHSM2 reads its configuration once per process and connector names are registered once,
//! so this file is its own test binary with a single test.

mod support;

use std::path::Path;
use std::process::Command;

use rootcellar::keys::{self, HsmConfig, KeyLocation, Share};

fn at(uri: &str) -> KeyLocation {
    KeyLocation::parse(uri).unwrap()
}
use support::{openssl, python_tuf_accepts, rootcellar, run_ok, Workspace, MOCK_PASSWORD};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The script at `path` with its key for backup (the root CA's) accepting a device that cannot
/// enforce wrap-with-trusted.
fn allow_untrusted_wrap(path: std::path::PathBuf) -> std::path::PathBuf {
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("backup = true\n"), "{text}");
    let text = text.replace(
        "backup = true\n",
        "backup = true\nallow_untrusted_wrap = true\n",
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The shares a rehearsal handed out for `device`'s current split.
fn rehearsal_shares(state: &Path, group: &str) -> Vec<Share> {
    let dir = state.join("rehearsal/shares").join(group);
    let sets: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(sets.len(), 1, "one split of {group}");
    let set = sets.into_iter().next().unwrap().unwrap().path();
    ["custodian-1", "custodian-3"]
        .iter()
        .map(|c| {
            let text = std::fs::read_to_string(set.join(format!("{c}.share"))).unwrap();
            Share::from_text(text.trim()).unwrap()
        })
        .collect()
}

#[test]
fn ceremonies_run_with_yubihsm_keys_beside_softhsm_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let root_device = yubihsm::Connector::mockhsm();
    let mut hsm = HsmConfig::default();
    for (name, connector) in [
        ("mock-root", root_device.clone()),
        ("mock-custodian-2", yubihsm::Connector::mockhsm()),
        ("mock-root-2", yubihsm::Connector::mockhsm()),
        ("mock-custodian-4", yubihsm::Connector::mockhsm()),
    ] {
        hsm.register_connector(name, connector).unwrap();
    }
    let root_ca = "yubihsm:connector=mock-root;label=root-ca?auth-key=0x0001";
    let custodian_2 = "yubihsm:connector=mock-custodian-2;label=tuf-root?auth-key=0x0001";
    let mut ws = Workspace::new(
        dir,
        &[
            "yubihsm-mock-root-auth-0x0001",
            "yubihsm-mock-custodian-2-auth-0x0001",
            "yubihsm-mock-root-2-auth-0x0001",
            "yubihsm-mock-custodian-4-auth-0x0001",
        ],
    );
    ws.hsm = hsm.clone();
    let state = ws.state.clone();
    let answers = ws.answers.clone();

    // root-init: the root CA on a YubiHSM2, custodian 2's TUF key on another, the rest on
    // SoftHSM2. The root CA key is for backup, and authentication key 0x0001 can put a wrap
    // key of its own and export under it (as rootcellar's backup on a YubiHSM2 needs): the
    // device cannot keep the key from being exported by whoever holds that key's password, so
    // the script as it is refuses it before any key is made, and says how to accept it.
    let mut refused_ws = Workspace::new(
        &dir.join("refused"),
        &[
            "yubihsm-mock-root-auth-0x0001",
            "yubihsm-mock-custodian-2-auth-0x0001",
        ],
    );
    refused_ws.hsm = hsm.clone();
    let refused_script = refused_ws.script(
        "root-init",
        &[("root-ca", root_ca), ("tuf-root-2", custodian_2)],
    );
    let refused = refused_ws
        .run(&refused_script, None, &dir.join("refused/out"), None)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("cannot enforce wrap-with-trusted")
            && refused.contains("allow_untrusted_wrap = true under [keys.root-ca]"),
        "{refused}"
    );
    let root_init = allow_untrusted_wrap(ws.script(
        "root-init",
        &[("root-ca", root_ca), ("tuf-root-2", custodian_2)],
    ));
    let init_out = dir.join("root-init");
    ws.run(&root_init, None, &init_out, Some("bundle-key"))
        .unwrap();

    // The root certificate is self-signed by the key in the YubiHSM2 and passes openssl.
    let root_pem = init_out.join("root.pem");
    let root_pem_s = root_pem.to_str().unwrap();
    let verified = openssl(&["verify", "-x509_strict", "-CAfile", root_pem_s, root_pem_s]);
    assert!(verified.contains(": OK"), "{verified}");
    // The TUF root lists custodian 2's key from the YubiHSM2, and python-tuf accepts the
    // repository and downloads the root certificate from it.
    let custodian_2_pem = std::fs::read_to_string(init_out.join("tuf-root-2.pub.pem")).unwrap();
    let device_custodian_key = ws
        .provider()
        .backend(&at(&format!(
            "yubihsm:connector=mock-custodian-2?auth-key=0x0001&password-source={}",
            ws.dir.join("mock.password").display()
        )))
        .unwrap()
        .list()
        .unwrap();
    assert_eq!(device_custodian_key.len(), 1);
    assert_eq!(
        device_custodian_key[0].public_key.spki_pem(),
        custodian_2_pem
    );
    let tuf_root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(init_out.join("tuf/metadata/1.root.json")).unwrap())
            .unwrap();
    let public_keys: Vec<&str> = tuf_root["signed"]["keys"]
        .as_object()
        .unwrap()
        .values()
        .map(|k| k["keyval"]["public"].as_str().unwrap())
        .collect();
    assert!(
        public_keys
            .iter()
            .any(|k| k.trim() == custodian_2_pem.trim()),
        "custodian 2's YubiHSM2 key is not in root v1"
    );
    python_tuf_accepts(
        &init_out.join("tuf"),
        &init_out.join("tuf/metadata/1.root.json"),
        &dir.join("downloads"),
        "root.pem",
        &root_pem,
    );

    // The split replaced the root device's password: the factory password no longer opens a
    // session, the password rebuilt from 2 of the 3 custodians' shares does.
    let old = yubihsm::Client::open(
        root_device.clone(),
        yubihsm::Credentials::from_password(1, MOCK_PASSWORD.as_bytes()),
        false,
    );
    assert!(old.is_err(), "the initial password still opens the device");
    let rebuilt =
        keys::combine_shares(&rehearsal_shares(&state, "yubihsm-mock-root-auth-0x0001")).unwrap();
    let root_client = yubihsm::Client::open(
        root_device.clone(),
        yubihsm::Credentials::from_password(1, &rebuilt),
        false,
    )
    .expect("the rebuilt password opens the device");
    // The key's provenance, as the device describes itself to a client of its own.
    let info = root_client.device_info().unwrap();
    let provenance = format!(
        "key root-ca device: manufacturer \"Yubico\", model \"YubiHSM2\", serial \"{}\", \
         firmware {}.{}.{}",
        info.serial_number, info.major_version, info.minor_version, info.build_version
    );
    drop(root_client);

    // The certificate's key is the one on the device (the ceremony logged out at its end: the
    // test logs in with the rebuilt password).
    let rebuilt_file = dir.join("rebuilt.password");
    std::fs::write(&rebuilt_file, &rebuilt).unwrap();
    let root_ca_login = format!("{root_ca}&password-source={}", rebuilt_file.display());
    let device_key = ws
        .provider()
        .backend(&at(&root_ca_login))
        .unwrap()
        .show(&at(&root_ca_login))
        .unwrap();
    let cert_key = openssl(&["x509", "-in", root_pem_s, "-noout", "-pubkey"]);
    assert_eq!(cert_key, device_key.public_key.spki_pem());
    assert!(
        device_key
            .uri
            .starts_with("yubihsm:connector=mock-root;serial="),
        "{}",
        device_key.uri
    );

    // Each device's audit log is in the transcript beside rootcellar's count of signatures (the
    // root CA signed its certificate once; custodian 2 signed root v1 once), and in the
    // journal; the full logs travel in the response bundle, which verifies.
    let transcript = std::fs::read_to_string(init_out.join("transcript.md")).unwrap();
    assert!(transcript.contains("## HSM audit logs"), "{transcript}");
    assert!(
        transcript.contains(&provenance),
        "{provenance}\n{transcript}"
    );
    assert_eq!(
        transcript
            .matches("rootcellar asked this device for 1 signature(s) in this run")
            .count(),
        2,
        "{transcript}"
    );
    let journal = run_ok(
        rootcellar()
            .args(["journal", "show", "--state"])
            .arg(&state),
    );
    assert_eq!(journal.matches("yubihsm.audit").count(), 2, "{journal}");
    let inspected = run_ok(
        rootcellar()
            .args(["bundle", "verify", "--kind", "response", "--pin"])
            .arg(init_out.join("bundle-key.pub.pem"))
            .arg(init_out.join("response.rcb")),
    );
    assert!(
        inspected.contains("every hash checked, signed by pinned key"),
        "{inspected}"
    );
    let listing = run_ok(
        rootcellar()
            .args(["bundle", "inspect", "--pin"])
            .arg(init_out.join("bundle-key.pub.pem"))
            .arg(init_out.join("response.rcb")),
    );
    assert_eq!(listing.matches(".audit-log.json").count(), 2, "{listing}");

    // issue-intermediate: the root CA's YubiHSM2 is unlocked by the custodians' shares.
    let request = dir.join("request");
    std::fs::create_dir(&request).unwrap();
    std::fs::copy(&root_pem, request.join("root.pem")).unwrap();
    for (name, cn) in [("fulcio", "Example Fulcio"), ("tsa", "Example TSA")] {
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            dir.join(format!("{name}.key")).to_str().unwrap(),
            "-out",
            request.join(format!("{name}.csr")).to_str().unwrap(),
            "-subj",
            &format!("/O=Example/CN={cn}"),
        ]);
    }
    let intermediate = ws.script("issue-intermediate", &[("root-ca", root_ca)]);
    let issued = dir.join("intermediates");
    ws.run(&intermediate, Some(&request), &issued, None)
        .unwrap();
    let fulcio = issued.join("intermediate-fulcio.pem");
    let verified = openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        root_pem_s,
        fulcio.to_str().unwrap(),
    ]);
    assert!(verified.contains(": OK"), "{verified}");
    let transcript = std::fs::read_to_string(issued.join("transcript.md")).unwrap();
    assert!(
        transcript.contains("rootcellar asked this device for 2 signature(s) in this run"),
        "two intermediates; the root certificate was another ceremony's:\n{transcript}"
    );

    // issue-crl: the root CA's YubiHSM2 signs a CRL revoking the Fulcio intermediate.
    let crl_request = dir.join("crl-request");
    std::fs::create_dir(&crl_request).unwrap();
    std::fs::copy(&root_pem, crl_request.join("root.pem")).unwrap();
    let serial = openssl(&["x509", "-in", fulcio.to_str().unwrap(), "-noout", "-serial"]);
    let serial = serial.trim().trim_start_matches("serial=").to_lowercase();
    std::fs::write(crl_request.join("revoke.txt"), format!("{serial}\n")).unwrap();
    let issue_crl = ws.script("issue-crl", &[("root-ca", root_ca)]);
    let crl_out = dir.join("crl");
    ws.run(&issue_crl, Some(&crl_request), &crl_out, None)
        .unwrap();
    let crl = crl_out.join("root.crl.pem");
    let crl_text = run_ok(
        Command::new("openssl")
            .args([
                "crl", "-noout", "-text", "-verify", "-CAfile", root_pem_s, "-in",
            ])
            .arg(&crl),
    );
    assert!(
        crl_text.to_lowercase().replace(':', "").contains(&serial),
        "{serial} not revoked:\n{crl_text}"
    );

    // rotate-tuf-root: custodian 2 signs root v2 on the YubiHSM2, custodian 4's new key is
    // generated on another; python-tuf follows v1 → v2.
    let rotate_request = dir.join("rotate-request");
    std::fs::create_dir(&rotate_request).unwrap();
    copy_dir(&init_out.join("tuf"), &rotate_request.join("tuf"));
    let rotate = ws.script(
        "rotate-tuf-root",
        &[
            ("tuf-root-2", custodian_2),
            (
                "tuf-root-4",
                "yubihsm:connector=mock-custodian-4;label=tuf-root?auth-key=0x0001",
            ),
        ],
    );
    let rotated = dir.join("rotated");
    ws.run(&rotate, Some(&rotate_request), &rotated, None)
        .unwrap();
    let verified = run_ok(
        rootcellar()
            .args(["tuf", "verify", "--trusted-root"])
            .arg(init_out.join("tuf/metadata/1.root.json"))
            .arg(rotated.join("tuf-rotated")),
    );
    assert!(verified.contains("root v1 → v2"), "{verified}");
    python_tuf_accepts(
        &rotated.join("tuf-rotated"),
        &init_out.join("tuf/metadata/1.root.json"),
        &dir.join("downloads-rotated"),
        "root.pem",
        &root_pem,
    );
    let transcript = std::fs::read_to_string(rotated.join("transcript.md")).unwrap();
    assert!(
        transcript.contains("tuf-root-2 signed root v2")
            && transcript.contains("tuf-root-4 signed root v2"),
        "{transcript}"
    );

    // backup-keys the YubiHSM2 way, restore-keys into a second device.
    let backup = allow_untrusted_wrap(ws.script("backup-keys", &[("root-ca", root_ca)]));
    let backed_up = dir.join("backup");
    ws.run(&backup, None, &backed_up, None).unwrap();
    let backup_file = backed_up.join("root-ca.backup.json");
    let backup_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&backup_file).unwrap()).unwrap();
    assert_eq!(backup_json["threshold"], 2, "{backup_json}");
    assert_eq!(backup_json["keys"][0]["label"], "root-ca", "{backup_json}");

    let restore_request = dir.join("restore-request");
    std::fs::create_dir(&restore_request).unwrap();
    std::fs::copy(&backup_file, restore_request.join("root-ca.backup.json")).unwrap();

    // A YubiHSM2 backup does not go into a PKCS#11 token: refused by name. (Run by the command
    // line: the rehearsal's new SoftHSM2 token is seen by a process that starts after it.)
    let into_softhsm = ws.script("restore-keys", &[]);
    let out = rootcellar()
        .args(["ceremony", "run", "--rehearsal", "--state"])
        .arg(&state)
        .arg("--answers")
        .arg(&answers)
        .arg("--inputs")
        .arg(&restore_request)
        .arg("--out")
        .arg(dir.join("restored-wrong"))
        .arg(&into_softhsm)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is a YubiHSM2 backup"), "{err}");
    assert!(!dir.join("restored-wrong").exists());

    let restore = ws.script(
        "restore-keys",
        &[(
            "replacement",
            "yubihsm:connector=mock-root-2;label=root-ca?auth-key=0x0001",
        )],
    );
    let restored = dir.join("restored");
    ws.run(&restore, Some(&restore_request), &restored, None)
        .unwrap();
    let report = std::fs::read_to_string(restored.join("restored-keys.txt")).unwrap();
    assert_eq!(
        report.trim(),
        format!("root-ca SHA256:{}", device_key.public_key.fingerprint())
    );
    // The restored key signs for the root certificate's public key.
    let signer = ws
        .provider()
        .signer(&at(&format!(
            "yubihsm:connector=mock-root-2;label=root-ca?auth-key=0x0001&password-source={}",
            ws.dir.join("mock.password").display()
        )))
        .unwrap();
    let message = b"signed by the restored root CA key";
    let signature = signer.sign(message).unwrap();
    assert!(device_key.public_key.verify(message, &signature));
}
