//! Deterministic crash points. A clean rehearsal of root-init lists every crash point it passes
//! (`ROOTCELLAR_TEST_CRASH_LOG`): the step boundaries, each key and certificate intent, each
//! rehearsal token, and both sides of every PKCS#11 call that changes a token (`C_InitToken`,
//! `C_InitPIN`, `C_GenerateKeyPair`, `C_SetPIN`). Then, for each point, a fresh appliance runs
//! root-init stopped there, as a power cut would stop it, and resumes it once: it must finish
//! with exactly the keys of the clean run, the journal verifying, the root certificate and the
//! TUF repository verifying, and every serial it intended either delivered or journaled as
//! discarded.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::common::*;
use crate::crash::{journal_actions, text, Appliance};

const SCRIPT: (&str, &str, Option<&str>) = ("root-init", "root-init", None);

/// What is wrong after stopping root-init at `point` and resuming it; nothing when all holds.
fn stopped_and_resumed(point: &str, clean_keys: &impl std::fmt::Debug) -> Vec<String> {
    let (script, out, request) = SCRIPT;
    let appliance = Appliance::new();
    let stopped = appliance
        .command(script, out, request)
        .env("ROOTCELLAR_TEST_CRASH_AT", point)
        .output()
        .unwrap();
    if !String::from_utf8_lossy(&stopped.stderr).contains(&format!("aborting at {point}")) {
        return vec![format!("the run did not stop there: {}", text(&stopped))];
    }
    let resumed = appliance.command(script, out, request).output().unwrap();
    if !resumed.status.success() {
        return vec![format!("the resume failed: {}", text(&resumed))];
    }
    let mut problems = Vec::new();
    let keys = format!("{:?}", appliance.token_keys());
    if keys != format!("{clean_keys:?}") {
        problems.push(format!("tokens differ from a clean run: {keys}"));
    }
    let journal = rootcellar()
        .args(["journal", "verify", "--state"])
        .arg(appliance.path("state"))
        .output()
        .unwrap();
    if !journal.status.success() {
        problems.push(format!("journal verify: {}", text(&journal)));
    }
    let root = appliance.path("root-init/root.pem");
    if !openssl_verify(&root, &root).status.success() {
        problems.push("root.pem does not verify".into());
    }
    let tuf = rootcellar()
        .args(["tuf", "verify", "--trusted-root"])
        .arg(appliance.path("root-init/tuf/metadata/1.root.json"))
        .arg(appliance.path("root-init/tuf"))
        .output()
        .unwrap();
    if !tuf.status.success() {
        problems.push(format!("tuf verify: {}", text(&tuf)));
    }
    let delivered = openssl(&["x509", "-in", root.to_str().unwrap(), "-noout", "-serial"]);
    let delivered = String::from_utf8_lossy(&delivered.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_lowercase();
    let serials = |action: &str| -> BTreeSet<String> {
        journal_actions(&appliance)
            .iter()
            .filter_map(|a| a.strip_prefix(&format!("{action} root.pem: serial ")))
            .map(|rest| rest.split([' ', ',', ':']).next().unwrap().to_string())
            .collect()
    };
    let discarded = serials("x509.discard");
    for intended in serials("x509.intent") {
        if intended != delivered && !discarded.contains(&intended) {
            problems.push(format!(
                "serial {intended} was intended, is not root.pem's ({delivered}) and was not \
                 journaled as discarded"
            ));
        }
    }
    problems
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn root_init_stopped_at_every_crash_point_resumes_to_the_clean_result() {
    let (script, out, request) = SCRIPT;
    let clean = Appliance::new();
    let log = clean.path("points.txt");
    let run = clean
        .command(script, out, request)
        .env("ROOTCELLAR_TEST_CRASH_LOG", &log)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let clean_keys = clean.token_keys();
    let listed = std::fs::read_to_string(&log).unwrap();
    let points: Vec<&str> = listed.lines().collect();
    let unique: BTreeSet<&str> = points.iter().copied().collect();
    assert_eq!(unique.len(), points.len(), "a crash point is named twice");
    for call in ["C_InitToken", "C_InitPIN", "C_GenerateKeyPair", "C_SetPIN"] {
        assert!(
            points
                .iter()
                .any(|p| p.contains(&format!("before-{call}-")))
                && points.iter().any(|p| p.contains(&format!("after-{call}-"))),
            "no crash points around {call}: {points:#?}"
        );
    }

    // The points are shared out to a few threads: each run waits mostly on fsync.
    let next = Mutex::new(points.iter());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let Some(point) = next.lock().unwrap().next().copied() else {
                    break;
                };
                let problems = stopped_and_resumed(point, &clean_keys);
                if !problems.is_empty() {
                    failures.lock().unwrap().push((point.to_string(), problems));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} crash points: {failures:#?}",
        failures.len(),
        points.len()
    );
}
