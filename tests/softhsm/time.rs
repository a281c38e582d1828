//! Time at the appliance: the confirmed time refused when it goes backwards or before the build,
//! typed again when far from the clock, and a ceremony resumed days later (run under libfaketime
//! with the clock moved ahead, as an appliance left switched off over a weekend would be).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jiff::{SignedDuration, Timestamp};

use crate::common::*;

/// This machine's clock moved by `hours`, in whole seconds.
fn clock_plus_hours(hours: i64) -> Timestamp {
    clock()
        .checked_add(SignedDuration::from_hours(hours))
        .unwrap()
}

fn rootcellar() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rootcellar"));
    cmd.env_remove("ROOTCELLAR_PKCS11_MODULE")
        .env_remove("SOFTHSM2_CONF")
        .env_remove("ROOTCELLAR_TEST_CRASH_AT")
        .env_remove("ROOTCELLAR_STATE");
    cmd
}

/// `rootcellar` with the machine clock starting at `at` (libfaketime, absolute: it works the
/// same inside a test run that is itself under faketime).
fn rootcellar_with_clock_at(at: Timestamp) -> Command {
    let mut cmd = Command::new("faketime");
    cmd.env("TZ", "UTC")
        .arg("-f")
        .arg(format!("@{}", at.strftime("%Y-%m-%d %H:%M:%S")))
        .arg(env!("CARGO_BIN_EXE_rootcellar"))
        .env_remove("ROOTCELLAR_PKCS11_MODULE")
        .env_remove("SOFTHSM2_CONF")
        .env_remove("ROOTCELLAR_TEST_CRASH_AT")
        .env_remove("ROOTCELLAR_STATE");
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "failed:\n{}", text(out));
}

/// A rehearsal state directory with root-init done at the clock.
struct Appliance {
    dir: tempfile::TempDir,
    /// The time in `answers.toml`, which root-init ran at.
    time: Timestamp,
}

impl Appliance {
    fn after_root_init() -> Self {
        let appliance = Appliance {
            dir: tempfile::tempdir().unwrap(),
            time: clock(),
        };
        appliance.answers("answers.toml", appliance.time, None);
        let out = appliance.run(rootcellar(), "root-init", None, "root-init", None);
        assert_ok(&out);
        let request = appliance.path("request");
        std::fs::create_dir(&request).unwrap();
        let copied = Command::new("cp")
            .arg("-r")
            .arg(appliance.path("root-init/tuf"))
            .arg(request.join("tuf"))
            .status()
            .unwrap();
        assert!(copied.success());
        appliance
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes an answers file with `time` (whole seconds) and, if given, `time_again`.
    fn answers(&self, name: &str, time: Timestamp, again: Option<Timestamp>) -> PathBuf {
        let time = Timestamp::from_second(time.as_second()).unwrap();
        let path = self.path(name);
        let again = again.map(|t| t.to_string());
        std::fs::write(&path, answers_toml(&time.to_string(), again.as_deref())).unwrap();
        path
    }

    /// Runs ceremony `script` as a rehearsal with the answers file `answers`.
    fn run(
        &self,
        mut cmd: Command,
        script: &str,
        answers: Option<&str>,
        out: &str,
        crash_at: Option<&str>,
    ) -> Output {
        cmd.args(["ceremony", "run"])
            .arg(repo_file(&format!("ceremony/{script}.toml")))
            .arg("--rehearsal")
            .arg("--state")
            .arg(self.path("state"))
            .arg("--answers")
            .arg(self.path(answers.unwrap_or("answers.toml")))
            .arg("--out")
            .arg(self.path(out));
        if script != "root-init" {
            cmd.arg("--inputs").arg(self.path("request"));
        }
        if let Some(point) = crash_at {
            cmd.env("ROOTCELLAR_TEST_CRASH_AT", point);
        }
        cmd.output().unwrap()
    }

    /// The journal as `journal show --json` lists it.
    fn journal(&self) -> Vec<serde_json::Value> {
        let out = rootcellar()
            .args(["journal", "show", "--json", "--state"])
            .arg(self.path("state"))
            .output()
            .unwrap();
        assert_ok(&out);
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        match value {
            serde_json::Value::Array(records) => records,
            other => other["records"].as_array().cloned().unwrap_or_default(),
        }
    }

    fn ceremony_dirs(&self) -> usize {
        std::fs::read_dir(self.path("state/ceremonies"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

fn expires(repo: &Path, file: &str) -> Timestamp {
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata").join(file)).unwrap()).unwrap();
    doc["signed"]["expires"].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_ceremony_time_earlier_than_the_journal_is_refused_and_nothing_is_recorded() {
    let appliance = Appliance::after_root_init();
    let records = appliance.journal().len();
    let dirs = appliance.ceremony_dirs();
    // An hour before root-init: the clock was wound back, or the time mistyped. (Typed again,
    // so that the refusal is the journal's, not the clock's.)
    let earlier = clock_plus_hours(-1);
    appliance.answers("earlier.toml", earlier, Some(earlier));
    let out = appliance.run(
        rootcellar(),
        "rotate-tuf-root",
        Some("earlier.toml"),
        "rotated",
        None,
    );
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "the confirmed time {earlier} is earlier than the journal's latest record"
        )),
        "{said}"
    );
    assert_eq!(appliance.journal().len(), records, "the journal changed");
    assert_eq!(appliance.ceremony_dirs(), dirs, "a ceremony was started");
    assert!(!appliance.path("rotated").exists());

    // The one-shot commands check the same journal when given its state directory.
    let out = rootcellar()
        .args([
            "journal", "append", "--actor", "mallory", "--action", "note",
        ])
        .arg("--state")
        .arg(appliance.path("state"))
        .args([
            "--time",
            &earlier.to_string(),
            "--time-again",
            &earlier.to_string(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("earlier than the journal's latest record"),
        "{}",
        text(&out)
    );
    assert_eq!(appliance.journal().len(), records);
    let verify = rootcellar()
        .args(["journal", "verify", "--state"])
        .arg(appliance.path("state"))
        .output()
        .unwrap();
    assert_ok(&verify);
}

#[test]
fn a_time_before_this_build_is_refused_naming_both_times() {
    // A battery clock reset to 2020, or a year mistyped: before this rootcellar existed.
    let dir = tempfile::tempdir().unwrap();
    let old = "2020-01-01T00:00:00Z";
    let journal = rootcellar()
        .args([
            "journal", "append", "--actor", "olga", "--action", "note", "--state",
        ])
        .arg(dir.path().join("state"))
        .args(["--time", old, "--time-again", old])
        .output()
        .unwrap();
    let init = rootcellar()
        .args(["tuf", "init", "--policy"])
        .arg(repo_file("tuf-repo/policy.toml"))
        .arg("--out")
        .arg(dir.path().join("repo"))
        .args(["--time", old, "--time-again", old])
        .output()
        .unwrap();
    for out in [journal, init] {
        assert!(!out.status.success());
        let said = text(&out);
        assert!(
            said.contains(&format!(
                "the confirmed time {old} is earlier than this rootcellar was built ("
            )),
            "{said}"
        );
    }
    assert!(!dir.path().join("state/journal").exists());
    assert!(!dir.path().join("repo").exists());
}

#[test]
fn a_time_far_from_the_clock_must_be_typed_again() {
    let appliance = Appliance::after_root_init();
    let records = appliance.journal().len();
    // Half a minute past 3 h, so that the clock ticking on before the command reads it (a busy
    // machine) still leaves "3 h", not "2 h 59 min".
    let later = clock_plus_hours(3)
        .checked_add(SignedDuration::from_secs(30))
        .unwrap();

    // Unattended without time_again: refused, both times named, nothing started.
    appliance.answers("far.toml", later, None);
    let out = appliance.run(
        rootcellar(),
        "rotate-tuf-root",
        Some("far.toml"),
        "rotated",
        None,
    );
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "The time given, {later}, is 3 h ahead of the machine clock"
        )),
        "{said}"
    );
    assert!(
        said.contains("type the time again to confirm it (an answers file gives it as time_again)"),
        "{said}"
    );
    assert_eq!(appliance.journal().len(), records);

    // Typed again, but differently: refused.
    let typo = later.checked_add(SignedDuration::from_hours(24)).unwrap();
    appliance.answers("typo.toml", later, Some(typo));
    let out = appliance.run(
        rootcellar(),
        "rotate-tuf-root",
        Some("typo.toml"),
        "rotated",
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!(
            "the time typed again ({typo}) is not the time given ({later})"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(appliance.journal().len(), records);

    // Typed again: the ceremony runs at that time, and the journal says it was typed again.
    appliance.answers("again.toml", later, Some(later));
    let out = appliance.run(
        rootcellar(),
        "rotate-tuf-root",
        Some("again.toml"),
        "rotated",
        None,
    );
    assert_ok(&out);
    let journal = appliance.journal();
    let start = journal
        .iter()
        .rev()
        .find(|r| r["action"] == "ceremony.start")
        .unwrap();
    assert_eq!(start["time"], later.to_string());
    let detail = start["detail"].as_str().unwrap();
    assert!(
        detail.contains("typed again") && detail.contains("ahead of the clock"),
        "{detail}"
    );
    let transcript = std::fs::read_to_string(appliance.path("rotated/transcript.md")).unwrap();
    assert!(
        transcript.contains(&format!("confirmed time {later}; machine clock")),
        "{transcript}"
    );

    // The one-shot commands: refused without --time-again, refused with another, taken with it.
    let key_dir = tempfile::tempdir().unwrap();
    let base = |extra: &[&str]| {
        let mut cmd = rootcellar();
        cmd.args(["journal", "append", "--actor", "olga", "--action", "note"])
            .arg("--state")
            .arg(key_dir.path())
            .args(["--time", &later.to_string()])
            .args(extra);
        cmd.output().unwrap()
    };
    let out = base(&[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("(give it again with --time-again)"),
        "{}",
        text(&out)
    );
    let out = base(&["--time-again", &typo.to_string()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("is not the time given"),
        "{}",
        text(&out)
    );
    let out = base(&["--time-again", &later.to_string()]);
    assert_ok(&out);
}

/// rotate-tuf-root after root-init, stopped at `crash_at`, then resumed with the clock and the
/// confirmed time `days` later: the appliance, that time, and the resumed run.
fn rotation_resumed_days_later(crash_at: &str, days: i64) -> (Appliance, Timestamp, Output) {
    let appliance = Appliance::after_root_init();
    let crashed = appliance.run(
        rootcellar(),
        "rotate-tuf-root",
        None,
        "rotated",
        Some(crash_at),
    );
    assert!(!crashed.status.success(), "the crash hook did not fire");
    let later = clock_plus_hours(days * 24);
    appliance.answers("later.toml", later, None);
    let resumed = appliance.run(
        rootcellar_with_clock_at(later),
        "rotate-tuf-root",
        Some("later.toml"),
        "rotated",
        None,
    );
    (appliance, later, resumed)
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_ceremony_resumed_days_later_signs_what_is_left_at_the_new_time() {
    // The rotation stops just before publishing (a power cut), and is resumed ten days later,
    // the clock and the confirmed time both moved on.
    let (appliance, later, out) = rotation_resumed_days_later("publish:before", 10);
    assert_ok(&out);
    let said = text(&out);
    assert!(
        said.contains(&format!("what is signed from now on is dated {later}")),
        "{said}"
    );
    let repo = appliance.path("rotated/tuf-rotated");
    // The root drafted ten days ago keeps its time (that of answers.toml); the timestamp is
    // signed now, valid 90 days.
    assert_eq!(
        expires(&repo, "timestamp.json"),
        later
            .checked_add(SignedDuration::from_hours(90 * 24))
            .unwrap()
    );
    assert_eq!(
        expires(&repo, "2.root.json"),
        appliance
            .time
            .checked_add(SignedDuration::from_hours(182 * 24))
            .unwrap()
    );
    // Our client, at the resumed time, accepts it.
    let verified = rootcellar()
        .args([
            "tuf",
            "verify",
            "--time",
            &later.to_string(),
            "--trusted-root",
        ])
        .arg(repo.join("metadata/1.root.json"))
        .arg(&repo)
        .output()
        .unwrap();
    assert_ok(&verified);
    // And python-tuf, with its clock at the resumed time too.
    let download = tempfile::tempdir().unwrap();
    let python = Command::new("faketime")
        .env("TZ", "UTC")
        .arg("-f")
        .arg(format!(
            "@{}",
            later
                .checked_add(SignedDuration::from_mins(1))
                .unwrap()
                .strftime("%Y-%m-%d %H:%M:%S")
        ))
        .arg("python3")
        .arg(repo_file("tests/python/tuf_client.py"))
        .arg("--repo")
        .arg(&repo)
        .arg("--root")
        .arg(repo.join("metadata/1.root.json"))
        .arg("--download-dir")
        .arg(download.path())
        .output()
        .unwrap();
    assert_ok(&python);
    // The journal goes forward: the resume and the publish are dated ten days later.
    let journal = appliance.journal();
    let resume = journal
        .iter()
        .find(|r| r["action"] == "ceremony.resume")
        .unwrap();
    assert_eq!(resume["time"], later.to_string());
    let detail = resume["detail"].as_str().unwrap();
    assert!(detail.contains("begun at "), "{detail}");
    let times: Vec<Timestamp> = journal
        .iter()
        .map(|r| r["time"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let transcript = std::fs::read_to_string(appliance.path("rotated/transcript.md")).unwrap();
    assert!(
        transcript.contains("- resumed: the ceremony was begun at"),
        "{transcript}"
    );
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_ceremony_resumed_after_its_published_metadata_expired_delivers_nothing() {
    // Every step done, including the publish, then the power goes before delivery, and the
    // appliance is switched on again a hundred days later: the timestamp (90 days) signed then
    // has expired.
    let (appliance, later, out) = rotation_resumed_days_later("deliver:before", 100);
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        // Snapshot and timestamp expire together (90 days each); the first found is named.
        (said.contains("output tuf-rotated: timestamp v2 expired at")
            || said.contains("output tuf-rotated: snapshot v2 expired at"))
            && said.contains(&format!("before this run's confirmed time {later}")),
        "{said}"
    );
    assert!(
        !appliance.path("rotated").exists(),
        "an expired repository was delivered"
    );
}

#[test]
fn publishing_says_how_long_the_metadata_stays_valid_and_warns_inside_the_signing_period() {
    let appliance = Appliance::after_root_init();
    // A rotation 150 days after root-init: targets v1 (182 days, signed at root-init) has 32
    // days left, inside its 42-day signing period.
    let now = clock();
    let later = now
        .checked_add(SignedDuration::from_hours(150 * 24))
        .unwrap();
    appliance.answers("later.toml", later, None);
    let out = appliance.run(
        rootcellar_with_clock_at(later),
        "rotate-tuf-root",
        Some("later.toml"),
        "rotated",
        None,
    );
    assert_ok(&out);
    let said = text(&out);
    assert!(
        said.contains("published metadata, counted from the confirmed time:"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "timestamp v2 valid until {}, 90 days from {later}",
            later
                .checked_add(SignedDuration::from_hours(90 * 24))
                .unwrap()
        )),
        "{said}"
    );
    let transcript = std::fs::read_to_string(appliance.path("rotated/transcript.md")).unwrap();
    // The rotated root is fresh (drafted at `later`); targets v1 from root-init is not.
    assert!(said.contains("warning: targets v1 expires at"), "{said}");
    assert!(
        transcript.contains("warning: targets v1 expires at"),
        "{transcript}"
    );
    assert!(!said.contains("warning: timestamp"), "{said}");
}
