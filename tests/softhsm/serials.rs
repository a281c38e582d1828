//! Certificates signed under serials chosen in advance. The serial is recorded (progress record
//! and journal) before the key signs; a ceremony killed after that settles the intent on
//! resume: the certificate the killed run left, checked, is adopted; anything else is journaled
//! as discarded before a new serial is chosen. Every serial ever intended is then either the
//! delivered certificate's or journaled as discarded.

use std::path::{Path, PathBuf};

use crate::common::*;
use crate::crash::{journal_actions, text, Appliance};

impl Appliance {
    /// Runs a ceremony with the crash hook at `point`, and checks that it fired.
    fn killed_at(&self, script: &str, out: &str, request: Option<&str>, point: &str) {
        let crashed = self
            .command(script, out, request)
            .env("ROOTCELLAR_TEST_CRASH_AT", point)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&crashed.stderr).contains(&format!("aborting at {point}")),
            "the crash hook {point} did not fire: {}",
            text(&crashed)
        );
    }

    /// Runs a ceremony again, as the operator resumes it, and checks that it finished.
    fn resumed(&self, script: &str, out: &str, request: Option<&str>) {
        let resumed = self.command(script, out, request).output().unwrap();
        assert!(resumed.status.success(), "{}", text(&resumed));
    }

    /// The serials the journal names for `output` under `action` (`x509.intent`, …), in order.
    fn journaled_serials(&self, action: &str, output: &str) -> Vec<String> {
        journal_actions(self)
            .iter()
            .filter_map(|a| a.strip_prefix(&format!("{action} {output}: serial ")))
            .map(|rest| rest.split([' ', ',', ':']).next().unwrap().to_string())
            .collect()
    }

    /// The scratch directory of step `id` in the ceremony instance that has one.
    fn scratch(&self, id: &str) -> PathBuf {
        std::fs::read_dir(self.path("state/ceremonies"))
            .unwrap()
            .map(|e| e.unwrap().path().join("work").join(format!(".step-{id}")))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no scratch directory for step {id}"))
    }
}

/// A certificate's serial as lower-case hex, read by openssl.
fn serial_of(cert: &Path) -> String {
    let out = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-serial"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_lowercase()
}

fn root_verifies(appliance: &Appliance) {
    let root = appliance.path("root-init/root.pem");
    let verified = openssl_verify(&root, &root);
    assert!(verified.status.success(), "{}", text(&verified));
}

/// Stops root-init at `point`, after the root key signed, and resumes it: the certificate it
/// left is found, checked against the recorded serial and delivered, nothing signed again.
fn signed_then_stopped_is_adopted(point: &str) {
    let appliance = Appliance::new();
    appliance.killed_at("root-init", "root-init", None, point);
    appliance.resumed("root-init", "root-init", None);
    let intended = appliance.journaled_serials("x509.intent", "root.pem");
    assert_eq!(intended.len(), 1, "{:#?}", journal_actions(&appliance));
    assert_eq!(
        appliance.journaled_serials("x509.adopt", "root.pem"),
        intended
    );
    assert!(appliance
        .journaled_serials("x509.discard", "root.pem")
        .is_empty());
    assert_eq!(
        serial_of(&appliance.path("root-init/root.pem")),
        intended[0]
    );
    root_verifies(&appliance);
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_certificate_signed_before_a_kill_is_adopted_under_its_serial() {
    // Written to the step's scratch, not yet moved into place.
    signed_then_stopped_is_adopted("root-certificate:signed-root.pem");
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_certificate_moved_into_place_but_not_recorded_is_adopted() {
    signed_then_stopped_is_adopted("root-certificate:after-outputs");
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_serial_recorded_but_not_found_is_journaled_as_discarded_and_never_reused() {
    // Killed after the serial was recorded, before the key signed: nothing is left, but the
    // key might have signed, so the serial is journaled as discarded and a new one is used.
    let appliance = Appliance::new();
    appliance.killed_at(
        "root-init",
        "root-init",
        None,
        "root-certificate:intent-root.pem",
    );
    appliance.resumed("root-init", "root-init", None);
    let intended = appliance.journaled_serials("x509.intent", "root.pem");
    assert_eq!(intended.len(), 2, "{:#?}", journal_actions(&appliance));
    assert_ne!(intended[0], intended[1]);
    assert_eq!(
        appliance.journaled_serials("x509.discard", "root.pem"),
        vec![intended[0].clone()]
    );
    let actions = journal_actions(&appliance);
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("x509.discard") && a.contains("left no certificate")),
        "{actions:#?}"
    );
    assert_eq!(
        serial_of(&appliance.path("root-init/root.pem")),
        intended[1]
    );
    root_verifies(&appliance);
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_left_certificate_that_is_not_the_intended_one_is_discarded_not_adopted() {
    // The Fulcio intermediate was signed and left in scratch when the run was killed; before
    // the resume, the file is replaced by another certificate (the root's: a real, valid
    // certificate from the same key, under another serial). It is not adopted: the intent is
    // discarded, naming why, and a new intermediate is signed under a new serial.
    let appliance = Appliance::new();
    appliance.resumed("root-init", "root-init", None);
    appliance.prepare("issue-intermediate");
    let request = Some("intermediate-request");
    appliance.killed_at(
        "issue-intermediate",
        "intermediates",
        request,
        "fulcio:signed-intermediate-fulcio.pem",
    );
    let left = appliance.scratch("fulcio").join("intermediate-fulcio.pem");
    std::fs::copy(appliance.path("root-init/root.pem"), &left).unwrap();
    appliance.resumed("issue-intermediate", "intermediates", request);
    let output = "intermediate-fulcio.pem";
    let root_serial = serial_of(&appliance.path("root-init/root.pem"));
    let intended = appliance.journaled_serials("x509.intent", output);
    assert_eq!(intended.len(), 2, "{:#?}", journal_actions(&appliance));
    assert_eq!(
        appliance.journaled_serials("x509.discard", output),
        vec![intended[0].clone()]
    );
    assert!(appliance.journaled_serials("x509.adopt", output).is_empty());
    let actions = journal_actions(&appliance);
    assert!(
        actions.iter().any(|a| a.starts_with("x509.discard")
            && a.contains("was refused: the certificate found is not the one intended")
            && a.contains(&format!("its serial is {root_serial}, not {}", intended[0]))),
        "{actions:#?}"
    );
    let cert = appliance.path(&format!("intermediates/{output}"));
    assert_eq!(serial_of(&cert), intended[1]);
    let verified = openssl_verify(&appliance.path("root-init/root.pem"), &cert);
    assert!(verified.status.success(), "{}", text(&verified));
}
