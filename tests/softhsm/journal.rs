//! The journal through the CLI: tampering inside the sled database (an edited record, a removed
//! record, two records swapped) named by `journal verify`, segments exported and checked, and a
//! journal that keeps its chain when the process appending to it is killed with SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ciborium::value::Value;

use crate::common::*;

fn rootcellar() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rootcellar"));
    cmd.env_remove("ROOTCELLAR_STATE");
    cmd
}

/// Appends a record at `time` (never earlier than the journal's latest record).
fn append(state: &Path, action: &str, time: &str) {
    ok(rootcellar()
        .args(["journal", "append", "--state"])
        .arg(state)
        .args(["--actor", "alice", "--action", action, "--ceremony", "test"])
        .args(["--time", time]));
}

/// A state directory with a journal of `n` records, all at the same time (the clock when it
/// starts), so that only the tampering below tells the records apart by more than their action.
fn journal_of(n: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let time = clock_time();
    for i in 1..=n {
        append(&state, &format!("step.{i}"), &time);
    }
    (dir, state)
}

/// Opens the journal's sled database directly, as someone with disk access would.
fn records(state: &Path) -> (sled::Db, sled::Tree) {
    let db = sled::open(state.join("journal")).unwrap();
    let tree = db.open_tree("records").unwrap();
    (db, tree)
}

fn verify_fails(state: &Path) -> String {
    fails(
        rootcellar()
            .args(["journal", "verify", "--state"])
            .arg(state),
    )
}

#[test]
fn an_edited_record_is_detected() {
    let (_dir, state) = journal_of(5);
    {
        let (db, tree) = records(&state);
        let stored = tree.get(3u64.to_be_bytes()).unwrap().unwrap();
        let mut value: Value = ciborium::de::from_reader(stored.as_ref()).unwrap();
        let Value::Map(fields) = &mut value else {
            panic!("not a map")
        };
        for (k, v) in fields.iter_mut() {
            if k.as_text() == Some("actor") {
                *v = Value::Text("mallory".into());
            }
        }
        let mut edited = Vec::new();
        ciborium::ser::into_writer(&value, &mut edited).unwrap();
        assert_ne!(edited, stored.to_vec());
        tree.insert(3u64.to_be_bytes(), edited).unwrap();
        db.flush().unwrap();
    }
    let message = verify_fails(&state);
    assert!(
        message.contains("chain check failed at record 4"),
        "{message}"
    );
    assert!(message.contains("between records 3 and 4"), "{message}");
}

#[test]
fn a_removed_record_is_detected() {
    let (_dir, state) = journal_of(5);
    {
        let (db, tree) = records(&state);
        tree.remove(2u64.to_be_bytes()).unwrap().unwrap();
        db.flush().unwrap();
    }
    let message = verify_fails(&state);
    assert!(
        message.contains("chain check failed at record 2"),
        "{message}"
    );
    assert!(message.contains("record 2 is missing"), "{message}");
}

#[test]
fn reordered_records_are_detected() {
    let (_dir, state) = journal_of(5);
    {
        let (db, tree) = records(&state);
        let three = tree.get(3u64.to_be_bytes()).unwrap().unwrap();
        let four = tree.get(4u64.to_be_bytes()).unwrap().unwrap();
        tree.insert(3u64.to_be_bytes(), four).unwrap();
        tree.insert(4u64.to_be_bytes(), three).unwrap();
        db.flush().unwrap();
    }
    let message = verify_fails(&state);
    assert!(
        message.contains("chain check failed at record 3"),
        "{message}"
    );
    assert!(message.contains("reordered"), "{message}");
}

#[test]
fn segments_are_exported_and_checked_against_the_head() {
    let (dir, state) = journal_of(4);
    let segment = dir.path().join("segment.json");
    ok(rootcellar()
        .args(["journal", "export", "--state"])
        .arg(&state)
        .args(["--from", "2", "--to", "3", "--out"])
        .arg(&segment));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&segment).unwrap()).unwrap();
    assert_eq!(doc["records"].as_array().unwrap().len(), 2);
    let head = format!("4:{}", doc["journal_head"]["sha256"].as_str().unwrap());
    ok(rootcellar()
        .args(["journal", "verify", "--segment"])
        .arg(&segment)
        .args(["--head", &head]));
    ok(rootcellar()
        .args(["journal", "verify", "--state"])
        .arg(&state)
        .args(["--head", &head]));
    let stale = fails(
        rootcellar()
            .args(["journal", "verify", "--state"])
            .arg(&state)
            .args(["--head", &head.replacen("4:", "3:", 1)]),
    );
    assert!(stale.contains("head check failed"), "{stale}");
    // Export never overwrites.
    let message = fails(
        rootcellar()
            .args(["journal", "export", "--state"])
            .arg(&state)
            .arg("--out")
            .arg(&segment),
    );
    assert!(message.contains("exists already"), "{message}");
    let message = fails(rootcellar().args(["journal", "show"]));
    assert!(message.contains("ROOTCELLAR_STATE"), "{message}");
}

/// The record number in a line `journal append` prints once the record is flushed.
fn reported(line: &str) -> Option<u64> {
    line.strip_prefix("record ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

#[test]
fn the_chain_survives_kill_9_in_the_middle_of_appends() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let binary = env!("CARGO_BIN_EXE_rootcellar");
    let mut done = 0;
    // Each round: a shell appends in a loop; once appends are flowing, the whole process group
    // is killed after a different delay each round, so the kill lands in opening, appending,
    // flushing or exiting.
    for round in 0..12u64 {
        let script = format!(
            "i=0; while :; do i=$((i+1)); \"{binary}\" journal append --state \"{}\" \
             --actor loop --action append.$i --detail round-{round} || exit 1; done",
            state.display()
        );
        let mut child = {
            use std::os::unix::process::CommandExt;
            Command::new("sh")
                .args(["-c", &script])
                .env_remove("ROOTCELLAR_STATE")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let stdout = child.stdout.take().unwrap();
        let (lines, seen) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = lines.send(line);
            }
        });
        let first = seen
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the loop appends");
        done = done.max(reported(&first).unwrap_or(0));
        std::thread::sleep(std::time::Duration::from_millis(23 * round + 3));
        let killed = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status()
            .unwrap();
        assert!(killed.success());
        let out = child.wait_with_output().unwrap();
        reader.join().unwrap();
        done = done.max(
            seen.try_iter()
                .filter_map(|l| reported(&l))
                .max()
                .unwrap_or(0),
        );
        let failure = String::from_utf8_lossy(&out.stderr);
        assert!(
            !failure.contains("chain check failed"),
            "round {round}: {failure}"
        );
        let verified = ok(rootcellar()
            .args(["journal", "verify", "--state"])
            .arg(&state));
        let text = String::from_utf8_lossy(&verified.stdout);
        let count: u64 = text
            .strip_prefix("journal OK: ")
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected output {text}"));
        assert!(
            count >= done,
            "round {round}: record {done} was reported done but the journal has {count}"
        );
    }
    assert!(done >= 12, "the loop appended records ({done})");
    eprintln!("kill -9 test: 12 rounds, {done} appends reported done, chain intact");
    // And the journal can still be extended (the loop appended at the clock; so does this).
    append(&state, "after", &clock_time());
}
