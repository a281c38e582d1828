//! Keys fixed at birth (issue #15), checked from outside rootcellar. After a rehearsed
//! root-init, `tests/python/pkcs11_attack.py` (PyKCS11, with only the user PIN) tries what was
//! done to a rehearsal token: wrap the root CA key under an ad-hoc session AES key and decrypt
//! it, turn on CKA_DERIVE/DECRYPT/UNWRAP/EXTRACTABLE, mark a key trusted, copy the key. Each is
//! refused, while the same attempts on a key made as before succeed (the private key comes out
//! in the clear). `pkcs11-tool` lists the keys sign-only and sensitive. The backup still backs
//! up, under a wrap key the security officer made trusted that is gone from the token
//! afterwards; a wrap key left on the token is removed (journaled); a backup stopped at any of
//! its token changes resumes to one backup and no wrap key left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;
use crate::crash::{journal_actions, text, Appliance};

/// An appliance after a rehearsed root-init.
fn after_root_init() -> Appliance {
    let appliance = Appliance::new();
    let run = appliance
        .command("root-init", "root-init", None)
        .output()
        .unwrap();
    assert!(run.status.success(), "root-init: {}", text(&run));
    appliance
}

/// The root token's user PIN now: root-init replaced it by a random one split among the
/// custodians, so it is rebuilt from two of the rehearsal's shares (as a custodian quorum, or
/// an attacker who has their shares, would) and written to a file.
fn root_pin_file(appliance: &Appliance) -> PathBuf {
    let sets = appliance.path("state/rehearsal/shares/root-ca");
    let set = std::fs::read_dir(&sets)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let shares: Vec<_> = ["custodian-1", "custodian-2"]
        .iter()
        .map(|c| {
            let text = std::fs::read_to_string(set.join(format!("{c}.share"))).unwrap();
            rootcellar::keys::Share::from_text(text.trim()).unwrap()
        })
        .collect();
    let pin = rootcellar::keys::combine_shares(&shares).unwrap();
    let file = appliance.path("root-ca.pin");
    std::fs::write(&file, &pin[..]).unwrap();
    file
}

fn softhsm_conf(appliance: &Appliance) -> PathBuf {
    appliance.path("state/rehearsal/softhsm2.conf")
}

/// Runs the attack script on `label` in `token`; its JSON report and whether every attempt
/// was refused.
fn attack(
    appliance: &Appliance,
    token: &str,
    pin_file: &Path,
    label: &str,
    control: bool,
) -> (serde_json::Value, Output) {
    let mut cmd = Command::new("python3");
    cmd.arg(repo_file("tests/python/pkcs11_attack.py"))
        .env("SOFTHSM2_CONF", softhsm_conf(appliance))
        .args(["--module", softhsm_module().to_str().unwrap()])
        .args(["--token", token, "--label", label])
        .arg("--pin-file")
        .arg(pin_file);
    if control {
        cmd.arg("--control");
    }
    let out = cmd.output().unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("pkcs11_attack.py: {e}: {}", text(&out)));
    (report, out)
}

/// `pkcs11-tool --list-objects` on `token`, logged in with `pin_file` when given.
fn pkcs11_tool_list(
    appliance: &Appliance,
    token: &str,
    kind: &str,
    pin_file: Option<&Path>,
) -> String {
    let mut cmd = Command::new("pkcs11-tool");
    cmd.env("SOFTHSM2_CONF", softhsm_conf(appliance))
        .args(["--module", softhsm_module().to_str().unwrap()])
        .args(["--token-label", token, "--list-objects", "--type", kind]);
    if let Some(pin_file) = pin_file {
        let pin = std::fs::read_to_string(pin_file).unwrap();
        cmd.args(["--login", "--pin", pin.trim()]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "pkcs11-tool: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The secret-key objects anyone can see on `token` without logging in: a wrap key the
/// security officer makes is public, so one left behind shows here.
fn public_secret_keys(appliance: &Appliance, token: &str) -> String {
    pkcs11_tool_list(appliance, token, "secrkey", None)
}

#[test]
fn with_the_user_pin_the_root_key_cannot_be_wrapped_changed_or_copied() {
    let appliance = after_root_init();
    let pin = root_pin_file(&appliance);

    let (report, out) = attack(&appliance, "root-ca", &pin, "root-ca", false);
    assert!(out.status.success(), "an attempt was accepted: {report:#}");
    let attributes = &report["attributes"];
    for (name, expected) in [
        ("CKA_SENSITIVE", true),
        ("CKA_EXTRACTABLE", true),
        ("CKA_MODIFIABLE", false),
        ("CKA_COPYABLE", false),
        ("CKA_WRAP_WITH_TRUSTED", true),
        ("CKA_SIGN", true),
        ("CKA_DECRYPT", false),
        ("CKA_UNWRAP", false),
        ("CKA_DERIVE", false),
    ] {
        assert_eq!(attributes[name], expected, "{name}: {report:#}");
    }
    assert_eq!(
        report["public_attributes"]["CKA_MODIFIABLE"], false,
        "{report:#}"
    );
    let attempts = &report["attempts"];
    assert_eq!(attempts["wrap"], "CKR_KEY_NOT_WRAPPABLE", "{report:#}");
    assert!(report.get("recovered").is_none(), "{report:#}");
    for name in ["trusted-new-key", "trusted-set"] {
        assert_eq!(
            attempts[name], "CKR_ATTRIBUTE_READ_ONLY",
            "{name}: {report:#}"
        );
    }
    for name in [
        "set-CKA_DERIVE",
        "set-CKA_DECRYPT",
        "set-CKA_UNWRAP",
        "set-CKA_SIGN_RECOVER",
        "set-CKA_EXTRACTABLE",
        "set-public-CKA_WRAP",
        "copy",
        "copy-with-CKA_DERIVE",
    ] {
        assert_eq!(
            attempts[name], "CKR_ACTION_PROHIBITED",
            "{name}: {report:#}"
        );
    }
    for name in ["CKA_DECRYPT", "CKA_UNWRAP", "CKA_DERIVE"] {
        assert_eq!(report["after"][name], false, "{name}: {report:#}");
    }

    // The same attempts on a key made as rootcellar made keys for backup before: every one
    // works, and the private key comes out in the clear. (So the refusals above are the
    // token enforcing the attributes, not the script failing.)
    let (control, out) = attack(&appliance, "root-ca", &pin, "root-ca", true);
    assert!(!out.status.success(), "{control:#}");
    assert_eq!(control["recovered"], true, "{control:#}");
    assert_eq!(control["attempts"]["wrap"], "accepted", "{control:#}");
    assert_eq!(
        control["attempts"]["set-CKA_DERIVE"], "accepted",
        "{control:#}"
    );
    assert_eq!(control["attempts"]["copy"], "accepted", "{control:#}");

    // A custodian's TUF key, never to leave its token: not extractable at all, and fixed.
    let custodian_pin = appliance.path("state/rehearsal/pins/custodian-1.pin");
    let (report, out) = attack(&appliance, "custodian-1", &custodian_pin, "tuf-root", false);
    assert!(out.status.success(), "an attempt was accepted: {report:#}");
    assert_eq!(report["attributes"]["CKA_EXTRACTABLE"], false, "{report:#}");
    assert_eq!(report["attributes"]["CKA_MODIFIABLE"], false, "{report:#}");
    assert_eq!(
        report["attempts"]["wrap"], "CKR_KEY_UNEXTRACTABLE",
        "{report:#}"
    );
    assert_eq!(
        report["attempts"]["set-CKA_EXTRACTABLE"],
        "CKR_ACTION_PROHIBITED"
    );

    // OpenSC's pkcs11-tool, another reader of the same token: sign-only, sensitive since
    // birth, and (the root key) extractable only wrapped. (pkcs11-tool 0.23 does not print
    // CKA_MODIFIABLE, CKA_COPYABLE or CKA_WRAP_WITH_TRUSTED; PyKCS11 read them above.)
    let listed = pkcs11_tool_list(&appliance, "root-ca", "privkey", Some(&pin));
    assert!(listed.contains("label:      root-ca"), "{listed}");
    assert!(listed.contains("Usage:      sign\n"), "{listed}");
    assert!(
        listed.contains("Access:     sensitive, always sensitive, extractable, local"),
        "{listed}"
    );
    let listed = pkcs11_tool_list(&appliance, "custodian-1", "privkey", Some(&custodian_pin));
    assert!(listed.contains("Usage:      sign\n"), "{listed}");
    assert!(listed.contains("never extractable"), "{listed}");

    // rootcellar's own listing says what the key has and what the token was seen to enforce.
    let uri = format!(
        "pkcs11:token=root-ca;object=root-ca?module-path={}&pin-source={}",
        softhsm_module().display(),
        pin.display()
    );
    let shown = rootcellar()
        .env("SOFTHSM2_CONF", softhsm_conf(&appliance))
        .args(["key", "show", &uri, "--json"])
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", text(&shown));
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["protection"]["modifiable"], false, "{shown:#}");
    assert_eq!(shown["protection"]["copyable"], false, "{shown:#}");
    assert_eq!(shown["protection"]["wrap_with_trusted"], true, "{shown:#}");
    for what in ["fixed_attributes", "copy_refused", "wrap_only_trusted"] {
        assert_eq!(shown["enforcement"][what], true, "{what}: {shown:#}");
    }
    let basis = shown["enforcement"]["basis"].as_str().unwrap();
    assert!(basis.contains("CKR_KEY_NOT_WRAPPABLE"), "{basis}");
    let listed = rootcellar()
        .env("SOFTHSM2_CONF", softhsm_conf(&appliance))
        .args([
            "key",
            "list",
            &format!(
                "pkcs11:token=root-ca?module-path={}&pin-source={}",
                softhsm_module().display(),
                pin.display()
            ),
        ])
        .output()
        .unwrap();
    let listed = text(&listed);
    assert!(
        listed.contains("!modifiable !copyable wrap-with-trusted")
            && listed.contains(
                "enforced:    attributes fixed, copy refused, wrap only under a trusted key"
            ),
        "{listed}"
    );
}

#[test]
fn the_backup_wraps_under_a_trusted_key_that_is_gone_afterwards_and_a_leftover_is_removed() {
    let appliance = after_root_init();
    // A wrap key of a backup left on the token as a token object (as a tool that makes it so
    // would leave it when killed): the security officer's, trusted, able to wrap the root key.
    let so_pin = format!(
        "so-{}",
        std::fs::read_to_string(appliance.path("state/rehearsal/pins/root-ca.pin"))
            .unwrap()
            .trim()
    );
    let planted = Command::new("python3")
        .env("SOFTHSM2_CONF", softhsm_conf(&appliance))
        .args([
            "-c",
            PLANT_WRAP_KEY,
            softhsm_module().to_str().unwrap(),
            &so_pin,
        ])
        .output()
        .unwrap();
    assert!(planted.status.success(), "{}", text(&planted));
    assert!(public_secret_keys(&appliance, "root-ca").contains("rootcellar-backup-wrap"));

    let run = appliance
        .command("backup-keys", "backup", None)
        .output()
        .unwrap();
    assert!(run.status.success(), "backup-keys: {}", text(&run));
    let backup: serde_json::Value = serde_json::from_slice(
        &std::fs::read(appliance.path("backup/root-ca.backup.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(backup["keys"][0]["label"], "root-ca", "{backup:#}");
    // Nothing able to wrap is left on the token.
    let left = public_secret_keys(&appliance, "root-ca");
    assert!(!left.contains("rootcellar-backup-wrap"), "{left}");
    let actions = journal_actions(&appliance);
    assert!(
        actions.iter().any(|a| a.starts_with("key.discard")
            && a.contains("1 wrap key(s) labelled rootcellar-backup-wrap")),
        "{actions:#?}"
    );
    assert!(
        actions.iter().any(|a| a.starts_with("backup.wrap-key")
            && a.contains("trusted (CKA_TRUSTED) under the security officer's login")),
        "{actions:#?}"
    );
}

/// Creates, as the root token's security officer, a trusted AES token object labelled as a
/// backup's wrap key (argv: module, SO PIN).
const PLANT_WRAP_KEY: &str = r#"
import os, sys, PyKCS11
lib = PyKCS11.PyKCS11Lib(); lib.load(sys.argv[1])
slot = [s for s in lib.getSlotList(tokenPresent=True) if lib.getTokenInfo(s).label.strip() == "root-ca"][0]
session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
session.login(sys.argv[2], user_type=PyKCS11.CKU_SO)
session.createObject([
    (PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
    (PyKCS11.CKA_VALUE, os.urandom(32)), (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_PRIVATE, False),
    (PyKCS11.CKA_WRAP, True), (PyKCS11.CKA_TRUSTED, True), (PyKCS11.CKA_LABEL, "rootcellar-backup-wrap"),
])
session.logout()
"#;

/// Copies a directory tree with `cp -a`.
fn copy_dir(from: &Path, to: &Path) {
    let copied = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(
        copied.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_backup_stopped_at_any_token_change_resumes_with_no_wrap_key_left() {
    let template = after_root_init();
    let clean = Appliance::new();
    copy_dir(&template.path("state"), &clean.path("state"));
    let log = clean.path("points.txt");
    let run = clean
        .command("backup-keys", "backup", None)
        .env("ROOTCELLAR_TEST_CRASH_LOG", &log)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let listed = std::fs::read_to_string(&log).unwrap();
    let points: Vec<&str> = listed
        .lines()
        .filter(|p| p.starts_with("pkcs11:") || p.starts_with("wrap:"))
        .collect();
    for call in ["C_CreateObject", "C_DestroyObject"] {
        assert!(
            points
                .iter()
                .any(|p| *p == format!("pkcs11:before-{call}-root-ca/rootcellar-backup-wrap")),
            "no crash point before {call} of the wrap key: {points:#?}"
        );
    }
    assert!(points.len() >= 7, "{points:#?}");
    let mut failures = Vec::new();
    for point in &points {
        let appliance = Appliance::new();
        copy_dir(&template.path("state"), &appliance.path("state"));
        let stopped = appliance
            .command("backup-keys", "backup", None)
            .env("ROOTCELLAR_TEST_CRASH_AT", point)
            .output()
            .unwrap();
        if !text(&stopped).contains(&format!("aborting at {point}")) {
            failures.push(format!("{point}: did not stop there: {}", text(&stopped)));
            continue;
        }
        let resumed = appliance
            .command("backup-keys", "backup", None)
            .output()
            .unwrap();
        if !resumed.status.success() {
            failures.push(format!("{point}: the resume failed: {}", text(&resumed)));
            continue;
        }
        let left = public_secret_keys(&appliance, "root-ca");
        if left.contains("Secret Key Object") {
            failures.push(format!(
                "{point}: a secret key is left on the token: {left}"
            ));
        }
        let backup = std::fs::read_to_string(appliance.path("backup/root-ca.backup.json"))
            .unwrap_or_default();
        if !backup.contains("\"label\": \"root-ca\"") {
            failures.push(format!("{point}: no backup of the root key: {backup}"));
        }
        let journal = rootcellar()
            .args(["journal", "verify", "--state"])
            .arg(appliance.path("state"))
            .output()
            .unwrap();
        if !journal.status.success() {
            failures.push(format!("{point}: journal verify: {}", text(&journal)));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Creates, as the user, a key on the root token made as rootcellar made keys for backup
/// before issue #15 (extractable, modifiable, copyable, not wrap-with-trusted), labelled
/// `legacy` (argv: module, user PIN).
const PLANT_LEGACY_KEY: &str = r#"
import sys, PyKCS11
lib = PyKCS11.PyKCS11Lib(); lib.load(sys.argv[1])
slot = [s for s in lib.getSlotList(tokenPresent=True) if lib.getTokenInfo(s).label.strip() == "root-ca"][0]
session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
session.login(sys.argv[2])
common = [(PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_LABEL, "legacy"), (PyKCS11.CKA_ID, b"legacy-key-id")]
session.generateKeyPair(
    common + [(PyKCS11.CKA_VERIFY, True), (PyKCS11.CKA_EC_PARAMS, bytes.fromhex("06052b81040022"))],
    common + [(PyKCS11.CKA_PRIVATE, True), (PyKCS11.CKA_SENSITIVE, True), (PyKCS11.CKA_EXTRACTABLE, True),
              (PyKCS11.CKA_SIGN, True), (PyKCS11.CKA_DECRYPT, False), (PyKCS11.CKA_UNWRAP, False),
              (PyKCS11.CKA_DERIVE, False)],
    PyKCS11.Mechanism(PyKCS11.CKM_EC_KEY_PAIR_GEN),
)
session.logout()
"#;

#[test]
fn a_key_that_is_not_wrap_with_trusted_is_backed_up_only_when_the_script_accepts_it() {
    let appliance = after_root_init();
    let pin = std::fs::read_to_string(root_pin_file(&appliance)).unwrap();
    let planted = Command::new("python3")
        .env("SOFTHSM2_CONF", softhsm_conf(&appliance))
        .args([
            "-c",
            PLANT_LEGACY_KEY,
            softhsm_module().to_str().unwrap(),
            pin.trim(),
        ])
        .output()
        .unwrap();
    assert!(planted.status.success(), "{}", text(&planted));
    // backup-keys as it is, for the legacy key.
    let script = std::fs::read_to_string(repo_file("ceremony/backup-keys.toml"))
        .unwrap()
        .replace("object=root-ca\"", "object=legacy\"");
    let path = appliance.path("backup-legacy.toml");
    std::fs::write(&path, &script).unwrap();
    let run = |script: &Path, out: &str| {
        rootcellar()
            .args(["ceremony", "run"])
            .arg(script)
            .arg("--rehearsal")
            .arg("--state")
            .arg(appliance.path("state"))
            .arg("--answers")
            .arg(appliance.path("answers.toml"))
            .arg("--out")
            .arg(appliance.path(out))
            .output()
            .unwrap()
    };
    let refused = run(&path, "refused");
    assert!(!refused.status.success());
    let said = text(&refused);
    assert!(
        said.contains("keys.root-ca on token \"root-ca\" is not wrap-with-trusted")
            && said.contains("allow_untrusted_wrap = true under [keys.root-ca]"),
        "{said}"
    );
    assert!(!appliance.path("refused").exists());

    let accepting = appliance.path("backup-legacy-accepted.toml");
    std::fs::write(
        &accepting,
        script.replace(
            "backup = true\n",
            "backup = true\nallow_untrusted_wrap = true\n",
        ),
    )
    .unwrap();
    let run = run(&accepting, "backup");
    assert!(run.status.success(), "{}", text(&run));
    let backup = std::fs::read_to_string(appliance.path("backup/root-ca.backup.json")).unwrap();
    assert!(backup.contains("\"label\": \"legacy\""), "{backup}");
    let actions = journal_actions(&appliance);
    assert!(
        actions.iter().any(|a| a.starts_with("backup.wrap-key")
            && a.contains("as an ordinary session key (allow_untrusted_wrap")),
        "{actions:#?}"
    );
}
