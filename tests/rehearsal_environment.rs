//! A rehearsal points the process at throwaway SoftHSM2 tokens (`SOFTHSM2_CONF` and the
//! PKCS#11 module). The appliance console runs ceremony after ceremony in one process, so when a
//! rehearsal ends every token session is closed and the environment put back: a real ceremony
//! that follows must not find, or stay logged in to, the rehearsal's tokens.
//!
//! Its own test binary: it changes the process environment.

mod support;

use std::path::Path;

use rootcellar::keys;

const SOFTHSM_MODULES: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];

#[test]
fn a_rehearsal_leaves_the_process_as_it_found_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let workspace = support::Workspace::new(d, &[]);
    // The "real" set-up: another module, and a SoftHSM2 configuration with no tokens.
    let real_module = d.join("real-module.so");
    let real_tokens = d.join("real-tokens");
    std::fs::create_dir(&real_tokens).unwrap();
    let real_conf = d.join("real-softhsm2.conf");
    std::fs::write(
        &real_conf,
        format!("directories.tokendir = {}\n", real_tokens.display()),
    )
    .unwrap();
    std::env::set_var(keys::MODULE_ENV, &real_module);
    std::env::set_var("SOFTHSM2_CONF", &real_conf);

    let script = workspace.script("root-init", &[]);
    let report = workspace.run(&script, None, &d.join("out"), Some("bundle-key"));
    assert!(report.is_ok(), "{:?}", report.err());
    assert!(d.join("out/root.pem").is_file());
    assert!(d.join("state/rehearsal/tokens").is_dir());

    assert_eq!(
        std::env::var_os(keys::MODULE_ENV).as_deref(),
        Some(real_module.as_os_str())
    );
    assert_eq!(
        std::env::var_os("SOFTHSM2_CONF").as_deref(),
        Some(real_conf.as_os_str())
    );
    // The root CA's URI now reaches the real module, which is not there.
    let err = keys::open_signer("pkcs11:token=root-ca;object=root-ca")
        .err()
        .expect("the rehearsal's token is out of reach");
    assert!(err.to_string().contains("real-module.so"), "{err}");
    // Even through SoftHSM2 named explicitly: the module was unloaded (the session the
    // rehearsal logged in with is gone) and reads the real configuration, which has no tokens.
    let softhsm = SOFTHSM_MODULES
        .iter()
        .find(|m| Path::new(m).exists())
        .expect("SoftHSM2 is installed");
    let err = keys::open_signer(&format!(
        "pkcs11:token=root-ca;object=root-ca?module-path={softhsm}"
    ))
    .err()
    .expect("no session outlives the rehearsal");
    assert!(
        err.to_string().contains("no token labelled \"root-ca\""),
        "{err}"
    );
}
