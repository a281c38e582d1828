//! Ceremony scripts and answers files, as text: each input is read as both. Neither reader may
//! panic. A script that is refused names at least one problem; a script that parses is checked
//! (`problems()`, which also reads the TUF policies its steps name: the script is taken to sit
//! beside the real ones in `ceremony/`; one naming a policy outside `ceremony/` and `tuf-repo/`
//! is not checked, so that the fuzzer reads no device nor the build's binaries). An answers file
//! that parses answers for those present as it lists them, and confirms steps as it says.
#![no_main]

use std::ffi::OsStr;
use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use rootcellar::ceremony::{Action, Answers, CeremonyError, Prompter, Script};

/// Where the script is taken to be: beside the real ones, so that the policies they name
/// (`config/tuf-policy-rotated.toml`, `../tuf-repo/policy.toml`) are found.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ceremony/fuzz.toml");

/// Whether every TUF policy the script's steps name is under `ceremony/` or `tuf-repo/` (read
/// lexically: the script is in `ceremony/`), where the real policies are.
fn policies_known(script: &Script) -> bool {
    script.steps.iter().all(|step| {
        let policy = match &step.action {
            Action::TufInit(a) => &a.policy,
            Action::TufTargets(a) => &a.policy,
            Action::TufRotate(a) => &a.0.policy,
            Action::TufPublish(a) => &a.0.policy,
            _ => return true,
        };
        let mut path = vec![OsStr::new("ceremony")];
        for component in policy.components() {
            match component {
                Component::Normal(name) => path.push(name),
                Component::CurDir => {}
                Component::ParentDir if path.pop().is_some() => {}
                _ => return false,
            }
        }
        matches!(
            path.first().and_then(|c| c.to_str()),
            Some("ceremony" | "tuf-repo")
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Script::parse(text, Path::new(SCRIPT)) {
        Ok(script) => {
            assert_eq!(script.path, Path::new(SCRIPT));
            if policies_known(&script) {
                for problem in script.problems() {
                    assert!(!problem.is_empty());
                }
            }
        }
        Err(CeremonyError::ScriptInvalid { problems, .. }) => assert!(!problems.is_empty()),
        Err(e) => panic!("a script's text is invalid or not: {e}"),
    }
    match Answers::parse(text, Path::new("answers.toml")) {
        Ok(mut answers) => {
            for (role, names) in answers.present.clone() {
                assert_eq!(answers.names(&role, names.len()).unwrap(), names);
                assert!(answers.names(&role, names.len() + 1).is_err());
            }
            assert_eq!(
                answers.confirm_step("step", "code").is_ok(),
                answers.confirm
            );
        }
        Err(CeremonyError::BadAnswers { .. }) => {}
        Err(e) => panic!("an answers file's text is bad or not: {e}"),
    }
});
