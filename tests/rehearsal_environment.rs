//! A rehearsal reaches its throwaway SoftHSM2 tokens through a provider of its own, and the
//! process is left as it was: the appliance console runs ceremony after ceremony in one
//! process, and a real ceremony that follows must neither find the rehearsal's tokens nor stay
//! logged in to them, nor find its own configuration changed.
//!
//! Its own test binary: it sets the process environment a real ceremony would read.

mod support;

use std::path::Path;

use rootcellar::keys::{HsmConfig, KeyError, KeyLocation, MODULE_ENV};

/// SoftHSM2 is one library per process, loaded by one provider at a time: these tests take
/// turns.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const SOFTHSM_MODULES: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];

#[test]
fn a_rehearsal_leaves_the_process_as_it_found_it() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut workspace = support::Workspace::new(d, &[]);
    let softhsm = SOFTHSM_MODULES
        .iter()
        .find(|m| Path::new(m).exists())
        .expect("SoftHSM2 is installed");
    // The "real" set-up: SoftHSM2 as the real module, with a configuration that has no tokens.
    let real_tokens = d.join("real-tokens");
    std::fs::create_dir(&real_tokens).unwrap();
    let real_conf = d.join("real-softhsm2.conf");
    std::fs::write(
        &real_conf,
        format!("directories.tokendir = {}\n", real_tokens.display()),
    )
    .unwrap();
    std::env::set_var("SOFTHSM2_CONF", &real_conf);
    std::env::set_var(MODULE_ENV, softhsm);
    let real = HsmConfig::from_environment();
    workspace.hsm = real.clone();

    let script = workspace.script("root-init", &[]);
    let report = workspace.run(&script, None, &d.join("out"), Some("bundle-key"));
    assert!(report.is_ok(), "{:?}", report.err());
    assert!(d.join("out/root.pem").is_file());
    assert!(d.join("state/rehearsal/tokens").is_dir());

    // The environment is as it was, whatever the rehearsal pointed SoftHSM2 at.
    assert_eq!(
        std::env::var_os("SOFTHSM2_CONF").as_deref(),
        Some(real_conf.as_os_str())
    );
    assert_eq!(
        std::env::var_os(MODULE_ENV).as_deref(),
        Some(Path::new(softhsm).as_os_str())
    );
    // A real provider made afterwards loads SoftHSM2 afresh (the rehearsal's provider was
    // dropped, which finalized it) with the real configuration: the rehearsal's root CA token
    // is out of its reach, and no session of the rehearsal's is left to use.
    let root_ca = KeyLocation::parse("pkcs11:token=root-ca;object=root-ca").unwrap();
    let err = real
        .open()
        .signer(&root_ca)
        .err()
        .expect("the rehearsal's token is out of reach");
    assert!(
        matches!(&err, KeyError::TokenNotFound { present, .. } if !present.contains("root-ca")),
        "{err}"
    );
}

#[test]
fn a_rehearsal_never_loads_the_module_a_script_names() {
    let _turn = one_at_a_time();
    // A script whose root CA names the production module: rehearsed, the key is made in the
    // rehearsal's own SoftHSM2 token of that label, and the production module is never loaded
    // (here it does not even exist, so loading it would fail the run).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut workspace = support::Workspace::new(d, &[]);
    workspace.hsm = HsmConfig::with_module(Some(d.join("production-hsm.so")));
    let production = format!(
        "pkcs11:token=root-ca;object=root-ca?module-path={}",
        d.join("production-hsm.so").display()
    );
    let script = workspace.script("root-init", &[("root-ca", &production)]);
    let report = workspace.run(&script, None, &d.join("out"), Some("bundle-key"));
    assert!(report.is_ok(), "{:?}", report.err());
    let text = std::fs::read_to_string(d.join("out/transcript.md")).unwrap();
    assert!(!text.contains("production-hsm.so"), "{text}");
    assert!(d.join("state/rehearsal/pins/root-ca.pin").is_file());
}
