//! Faults other than a kill (issue #14): the state disk full during a step, the stick read-only,
//! full or pulled out before delivery, and the token's module failing a signature mid-step.
//! Each time the run fails with a message naming the fault (never a panic), the state stays
//! consistent, and the same command run again once the fault is gone completes: the journal
//! verifies, the outputs verify with openssl and rootcellar's TUF client, the tokens hold
//! exactly the keys a clean run makes, and the outputs are delivered once.
//!
//! These are production runs of root-init (not rehearsals) against SoftHSM2 tokens the test
//! makes outside the state directory, as an HSM would be. The state disk and the stick are
//! tmpfs mounts: the tests need root (CI runs as root), and fail, never skip, without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

/// Keys (or key halves) by label, counted.
type Labels = BTreeMap<String, usize>;

/// The tokens root-init uses, and the keys a clean run leaves on each.
fn clean_run_keys() -> BTreeMap<String, Labels> {
    [
        ("root-ca", &["root-ca"][..]),
        ("custodian-1", &["tuf-root"][..]),
        ("custodian-2", &["tuf-root"][..]),
        ("custodian-3", &["tuf-root"][..]),
        (
            "appliance",
            &["bundle-key", "tuf-snapshot", "tuf-targets", "tuf-timestamp"][..],
        ),
    ]
    .into_iter()
    .map(|(token, labels)| {
        (
            token.to_string(),
            labels.iter().map(|l| (l.to_string(), 1)).collect(),
        )
    })
    .collect()
}

/// The steps of root-init, in order.
const STEPS: [&str; 4] = [
    "generate-keys",
    "split-root-pin",
    "root-certificate",
    "tuf-root-v1",
];

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `command` (mount, umount), which needs root.
fn as_root(command: &str, args: &[&str]) {
    let out = Command::new(command).args(args).output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`{command} {}` failed: {}. These fault tests need root, to mount tmpfs file \
             systems (CI runs as root)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("cannot run {command}: {e} (these fault tests need root and mount)"),
    }
}

/// A tmpfs of its own (a small disk, a stick), unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        as_root(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
                path.to_str().unwrap(),
            ],
        );
        Tmpfs { path, _dir: dir }
    }

    /// `mount -o remount,OPTIONS`: `ro`, `rw`, `size=…`.
    fn remount(&self, options: &str) {
        as_root(
            "mount",
            &[
                "-o",
                &format!("remount,{options}"),
                self.path.to_str().unwrap(),
            ],
        );
    }

    /// The stick pulled out: unmounted, and its mount point gone with it (as the appliance's
    /// automounter removes it).
    fn pull(&self) {
        as_root("umount", &[self.path.to_str().unwrap()]);
        std::fs::remove_dir(&self.path).unwrap();
    }

    /// The stick plugged in again, empty.
    fn plug_in(&self, size: &str) {
        std::fs::create_dir(&self.path).unwrap();
        as_root(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
                self.path.to_str().unwrap(),
            ],
        );
    }

    /// Bytes free, as `statvfs` counts them.
    fn available(&self) -> u64 {
        let out = Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(&self.path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut numbers = text.split_whitespace().map(|n| n.parse::<u64>().unwrap());
        numbers.next().unwrap() * numbers.next().unwrap()
    }

    /// Fills the file system with `filler` until `free_pages` 4 KiB pages are left.
    fn fill(&self, filler: &Path, free_pages: u64) {
        let size = self.available() - free_pages * 4096;
        let out = Command::new("fallocate")
            .args(["-l", &size.to_string()])
            .arg(filler)
            .output()
            .unwrap();
        assert!(out.status.success(), "fallocate: {}", text(&out));
        assert_eq!(self.available(), free_pages * 4096);
    }

    /// Names of what the file system holds at its top.
    fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a failed test may leave a process or a file open on it.
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
    }
}

/// An appliance running root-init for production: SoftHSM2 tokens made here (the HSMs), a
/// state directory given by the test, answers files for unattended runs.
struct Appliance {
    hsm: SoftHsm,
    dir: tempfile::TempDir,
    state: PathBuf,
    /// The PKCS#11 module rootcellar loads, and the environment it is given.
    module: PathBuf,
    env: Vec<(String, PathBuf)>,
}

impl Appliance {
    /// An appliance whose state directory is `state` (or one of its own).
    fn new(state: Option<&Path>) -> Self {
        let hsm = SoftHsm::new("root-ca");
        for token in clean_run_keys().keys().filter(|t| *t != "root-ca") {
            hsm.add_token(token);
        }
        let module = hsm.module.clone();
        let dir = tempfile::tempdir().unwrap();
        let state = state.map_or_else(|| dir.path().join("state"), Path::to_path_buf);
        Appliance {
            hsm,
            dir,
            state,
            module,
            env: vec![],
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The shares of the root token's current split (`STATE/pin-sets.json`) handed out so far,
    /// by custodian.
    fn current_shares(&self) -> BTreeMap<String, PathBuf> {
        let mut found = BTreeMap::new();
        let Ok(sets) = std::fs::read(self.state.join("pin-sets.json")) else {
            return found;
        };
        let sets: serde_json::Value = serde_json::from_slice(&sets).unwrap();
        let Some(set_id) = sets["root-ca"]["set_id"].as_str() else {
            return found;
        };
        let Ok(runs) = std::fs::read_dir(self.path("shares")) else {
            return found;
        };
        for run in runs {
            for share in std::fs::read_dir(run.unwrap().path()).unwrap() {
                let path = share.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                let share = rootcellar::keys::Share::parse_typed(&text).unwrap();
                if share.set_id() == set_id {
                    let custodian = path.file_stem().unwrap().to_string_lossy().into_owned();
                    found.insert(custodian, path);
                }
            }
        }
        found
    }

    /// An answers file for the next run: the clock's time, everyone present, the tokens' PINs
    /// as typed by their holders, the shares of the root token's current split (custodians 1
    /// and 2), and a place of its own where new shares are handed out (custodians take theirs
    /// away; a resumed split hands out new ones, never over the old).
    fn answers(&self) -> PathBuf {
        let runs = self.path("shares");
        std::fs::create_dir_all(&runs).unwrap();
        let run = runs.join(format!("run-{}", std::fs::read_dir(&runs).unwrap().count()));
        let mut answers = format!(
            "share_dir = \"{}\"\n{}",
            run.display(),
            answers_toml(&clock_time(), None)
        );
        answers.push_str("[pins]\n");
        for token in clean_run_keys().keys() {
            answers.push_str(&format!("{token} = \"{}\"\n", self.hsm.pin_file.display()));
        }
        answers.push_str("[shares]\n");
        let shares = self.current_shares();
        for custodian in ["custodian-1", "custodian-2"] {
            if let Some(path) = shares.get(custodian) {
                answers.push_str(&format!("{custodian} = \"{}\"\n", path.display()));
            }
        }
        let path = self.path("answers.toml");
        std::fs::write(&path, answers).unwrap();
        path
    }

    fn rootcellar(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rootcellar"));
        cmd.env("SOFTHSM2_CONF", &self.hsm.conf)
            .env("ROOTCELLAR_PKCS11_MODULE", &self.module)
            .env_remove("ROOTCELLAR_TEST_CRASH_AT")
            .env_remove("ROOTCELLAR_STATE")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `rootcellar ceremony run ceremony/root-init.toml --state STATE --out OUT --answers …`.
    fn run(&self, out: &Path) -> Output {
        self.rootcellar()
            .args(["ceremony", "run"])
            .arg(repo_file("ceremony/root-init.toml"))
            .arg("--state")
            .arg(&self.state)
            .arg("--out")
            .arg(out)
            .arg("--answers")
            .arg(self.answers())
            .output()
            .unwrap()
    }

    /// Runs the ceremony, which must fail; returns what it said (checked for a panic).
    fn run_failing(&self, out: &Path) -> String {
        let output = self.run(out);
        let said = text(&output);
        assert!(!output.status.success(), "the run did not fail:\n{said}");
        assert!(!said.contains("panicked"), "a panic, not an error:\n{said}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// Runs the ceremony again, as the operator resumes it: it must complete.
    fn resume(&self, out: &Path) -> String {
        let output = self.run(out);
        let said = text(&output);
        assert!(output.status.success(), "the resume failed:\n{said}");
        said
    }

    fn instance(&self) -> PathBuf {
        std::fs::read_dir(self.state.join("ceremonies"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .next()
            .expect("the ceremony has an instance directory")
    }

    /// The events of the ceremony's progress record (without a last line cut short by a full
    /// disk, which rootcellar drops too: it was never reported done).
    fn progress(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.instance().join("progress.jsonl"))
            .unwrap()
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The steps the progress record has as completed, and how many finish events it holds.
    fn completed(&self) -> (Vec<String>, usize) {
        let events = self.progress();
        let steps = events
            .iter()
            .filter(|e| e["event"] == "complete")
            .map(|e| e["step"].as_str().unwrap().to_string())
            .collect();
        let finished = events.iter().filter(|e| e["event"] == "finish").count();
        (steps, finished)
    }

    fn journal_verifies(&self) {
        let out = self
            .rootcellar()
            .args(["journal", "verify", "--state"])
            .arg(&self.state)
            .output()
            .unwrap();
        assert!(out.status.success(), "journal verify: {}", text(&out));
    }

    /// The journal's records, as `ACTION DETAIL`.
    fn journal_actions(&self) -> Vec<String> {
        let out = self
            .rootcellar()
            .args(["journal", "show", "--json", "--state"])
            .arg(&self.state)
            .output()
            .unwrap();
        assert!(out.status.success(), "journal show: {}", text(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["action"].as_str().unwrap(),
                    r["detail"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// The root token's PIN, rebuilt from custodians 1 and 2's shares of its current split.
    fn root_pin(&self) -> String {
        let shares = self.current_shares();
        let shares: Vec<_> = ["custodian-1", "custodian-2"]
            .iter()
            .map(|c| {
                let path = shares
                    .get(*c)
                    .unwrap_or_else(|| panic!("{c} holds no share of the current split"));
                let text = std::fs::read_to_string(path).unwrap();
                rootcellar::keys::Share::parse_typed(&text).unwrap()
            })
            .collect();
        let pin = rootcellar::keys::combine_shares(&shares).unwrap();
        String::from_utf8(pin.to_vec()).unwrap()
    }

    /// The keys on each token as the token itself shows them, through SoftHSM2 directly (not
    /// any module a test put in front of it): public halves by label, listed without login,
    /// and private halves by label, listed with the token's PIN (the root token's rebuilt from
    /// the current shares, so the split left it usable).
    fn token_keys(&self) -> BTreeMap<String, (Labels, Labels)> {
        let pin = std::fs::read_to_string(&self.hsm.pin_file).unwrap();
        let root_pin = self.root_pin();
        let mut found = BTreeMap::new();
        for token in clean_run_keys().keys() {
            let pin = if token == "root-ca" {
                root_pin.as_str()
            } else {
                pin.trim()
            };
            let list = |kind: &str, login: bool| {
                let mut cmd = Command::new("pkcs11-tool");
                cmd.env("SOFTHSM2_CONF", &self.hsm.conf)
                    .args(["--module", softhsm_module().to_str().unwrap()])
                    .args(["--token-label", token, "--list-objects", "--type", kind]);
                if login {
                    cmd.args(["--login", "--pin", pin]);
                }
                let out = cmd.output().unwrap();
                assert!(
                    out.status.success(),
                    "pkcs11-tool on {token}: {}",
                    text(&out)
                );
                let mut labels = BTreeMap::new();
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    if let Some(label) = line.trim().strip_prefix("label:") {
                        *labels.entry(label.trim().to_string()).or_insert(0) += 1;
                    }
                }
                labels
            };
            found.insert(
                token.clone(),
                (list("pubkey", false), list("privkey", true)),
            );
        }
        found
    }

    /// After a fault and its resume: the journal verifies, every step was done and the
    /// outputs delivered exactly once (one finish in the progress record and the journal), the
    /// outputs verify with openssl and rootcellar's TUF client, and the tokens hold exactly the
    /// keys of a clean run.
    fn assert_completed_once(&self, out: &Path) {
        self.journal_verifies();
        let (steps, finished) = self.completed();
        for step in STEPS {
            assert_eq!(
                steps.iter().filter(|s| *s == step).count(),
                1,
                "step {step} completed once: {steps:?}"
            );
        }
        assert_eq!(finished, 1, "the progress record finishes once");
        let finishes = self
            .journal_actions()
            .into_iter()
            .filter(|a| a.starts_with("ceremony.finish"))
            .count();
        assert_eq!(finishes, 1, "the journal records one delivery");

        let root = out.join("root.pem");
        let verified = openssl_verify(&root, &root);
        assert!(verified.status.success(), "root.pem: {}", text(&verified));
        let tuf = self
            .rootcellar()
            .args(["tuf", "verify", "--trusted-root"])
            .arg(out.join("tuf/metadata/1.root.json"))
            .arg(out.join("tuf"))
            .output()
            .unwrap();
        assert!(tuf.status.success(), "tuf verify: {}", text(&tuf));
        for name in ["transcript.md", "transcript.html", "root-ca.pub.pem"] {
            assert!(out.join(name).is_file(), "{name} delivered");
        }

        let expected: BTreeMap<_, _> = clean_run_keys()
            .into_iter()
            .map(|(token, labels)| (token, (labels.clone(), labels)))
            .collect();
        assert_eq!(
            self.token_keys(),
            expected,
            "the tokens hold a clean run's keys"
        );
    }
}

/// Where a full disk stopped a run, from its message.
fn fault_place(stderr: &str) -> &'static str {
    if stderr.contains("journal database") {
        "journal"
    } else if stderr.contains("progress.jsonl") {
        "progress record"
    } else if stderr.contains("pin-sets.json") {
        "PIN split record"
    } else if stderr.contains("/.step-") {
        "step output"
    } else {
        "elsewhere"
    }
}

#[test]
fn a_full_state_disk_stops_the_ceremony_and_it_resumes_once_space_is_freed() {
    // The state directory on a small disk filled up to N free pages, for N = 0, 1, 2, … until
    // the ceremony fits: every write the ceremony makes to its state is, at some N, the one
    // that fails (a journal append, a progress line, a key's public half, the PIN split's
    // record, the TUF repository). Each run fails naming the fault; with the space freed, the
    // same command completes.
    let mut places: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for free_pages in 0.. {
        assert!(
            free_pages < 100,
            "root-init never fitted; faults so far: {places:?}"
        );
        let disk = Tmpfs::mount("2m");
        let appliance = Appliance::new(Some(&disk.path));
        let out = appliance.path("root-init");
        let filler = disk.path.join("filler");
        disk.fill(&filler, free_pages);

        let first = appliance.run(&out);
        if first.status.success() {
            println!("root-init fitted in {free_pages} free pages");
            // (Opening the journal writes: sled needs room even to verify it.)
            std::fs::remove_file(&filler).unwrap();
            appliance.assert_completed_once(&out);
            break;
        }
        let said = text(&first);
        assert!(!said.contains("panicked"), "a panic, not an error:\n{said}");
        let stderr = String::from_utf8_lossy(&first.stderr);
        assert!(
            stderr.contains("No space left on device"),
            "{free_pages} pages free: the message does not name the fault:\n{stderr}"
        );
        let place = fault_place(&stderr);
        assert_ne!(
            place, "elsewhere",
            "{free_pages} pages free: the message does not say what was being written:\n{stderr}"
        );
        places.entry(place).or_default().push(free_pages);
        if out.exists() {
            // Delivered (the stick is not on this disk) but the end not recorded.
            assert_eq!(appliance.completed().1, 0);
        }

        std::fs::remove_file(&filler).unwrap();
        appliance.journal_verifies();
        let resumed = appliance.resume(&out);
        appliance.assert_completed_once(&out);
        if out.exists() && resumed.contains("already in") {
            places.entry("after delivery").or_default().push(free_pages);
        }
    }
    println!("a full state disk stopped root-init at: {places:?}");
    for place in ["journal", "progress record", "step output"] {
        assert!(
            places.contains_key(place),
            "no fill level stopped a run at the {place}: {places:?}"
        );
    }
}

#[test]
fn a_read_only_stick_stops_delivery_and_the_resume_delivers_once() {
    let appliance = Appliance::new(None);
    let stick = Tmpfs::mount("4m");
    stick.remount("ro");
    let out = stick.path.join("root-init");

    let stderr = appliance.run_failing(&out);
    assert!(
        stderr.contains(&format!("cannot deliver the outputs to {}", out.display()))
            && stderr.contains("Read-only file system"),
        "{stderr}"
    );
    let (steps, finished) = appliance.completed();
    assert_eq!(steps, STEPS, "every step done and kept");
    assert_eq!(finished, 0, "not finished: nothing was delivered");
    appliance.journal_verifies();

    stick.remount("rw");
    assert_eq!(
        stick.listing(),
        Vec::<String>::new(),
        "nothing on the stick"
    );
    let said = appliance.resume(&out);
    for step in STEPS {
        assert!(
            said.contains(&format!("-- step {step}: already completed")),
            "{said}"
        );
    }
    appliance.assert_completed_once(&out);
    assert_eq!(stick.listing(), ["root-init"]);
}

#[test]
fn a_pulled_stick_stops_delivery_and_the_resume_delivers_once() {
    let appliance = Appliance::new(None);
    let stick = Tmpfs::mount("4m");
    stick.pull();
    let out = stick.path.join("root-init");

    let stderr = appliance.run_failing(&out);
    assert!(
        stderr.contains(&format!("cannot deliver the outputs to {}", out.display()))
            && stderr.contains(&format!("{} is not there", stick.path.display())),
        "{stderr}"
    );
    assert!(
        !stick.path.exists(),
        "the delivery made the stick's mount point on the appliance's own disk"
    );
    let (steps, finished) = appliance.completed();
    assert_eq!(steps, STEPS);
    assert_eq!(finished, 0);
    appliance.journal_verifies();

    stick.plug_in("4m");
    appliance.resume(&out);
    appliance.assert_completed_once(&out);
    assert_eq!(stick.listing(), ["root-init"]);
}

#[test]
fn a_full_stick_is_left_empty_and_the_resume_delivers_once() {
    // Room for a few of the outputs' files: the delivery fails midway through copying.
    let appliance = Appliance::new(None);
    let stick = Tmpfs::mount("16k");
    let out = stick.path.join("root-init");

    let stderr = appliance.run_failing(&out);
    assert!(
        stderr.contains(&format!("cannot deliver the outputs to {}", out.display()))
            && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert_eq!(
        stick.listing(),
        Vec::<String>::new(),
        "a failed delivery leaves nothing half-written on the stick"
    );
    let (steps, finished) = appliance.completed();
    assert_eq!(steps, STEPS);
    assert_eq!(finished, 0);
    appliance.journal_verifies();

    stick.remount("size=4m");
    appliance.resume(&out);
    appliance.assert_completed_once(&out);
    assert_eq!(stick.listing(), ["root-init"]);
}

/// Builds `tests/softhsm/faulty_pkcs11.c` into `dir`: a PKCS#11 module in front of SoftHSM2
/// that fails signatures while a trigger file exists.
pub(crate) fn build_faulty_module(dir: &Path) -> PathBuf {
    let header = Path::new("/usr/include/p11-kit-1/p11-kit/pkcs11.h");
    assert!(
        header.exists(),
        "{} is missing: apt-get install libp11-kit-dev (scripts/install-deps.sh does)",
        header.display()
    );
    let module = dir.join("faulty_pkcs11.so");
    let out = Command::new("cc")
        .args([
            "-shared",
            "-fPIC",
            "-Wall",
            "-Werror",
            "-I/usr/include/p11-kit-1",
        ])
        .arg("-o")
        .arg(&module)
        .arg(repo_file("tests/softhsm/faulty_pkcs11.c"))
        .arg("-ldl")
        .output()
        .expect("a C compiler (cc)");
    assert!(out.status.success(), "cc: {}", text(&out));
    module
}

#[test]
fn a_token_failing_to_sign_mid_step_stops_the_step_and_the_resume_completes() {
    let mut appliance = Appliance::new(None);
    let module = build_faulty_module(appliance.dir.path());
    let trigger = appliance.path("fail-sign");
    let log = appliance.path("faulty.log");
    appliance.module = module;
    appliance.env = vec![
        ("FAULTY_PKCS11_REAL".into(), softhsm_module()),
        ("FAULTY_PKCS11_FAIL_SIGN".into(), trigger.clone()),
        ("FAULTY_PKCS11_LOG".into(), log.clone()),
    ];
    let out = appliance.path("root-init");
    let fired = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("C_Sign: CKR_DEVICE_ERROR")
            .count()
    };

    // Every signature fails: the keys are made and the PIN split, then the root CA key fails
    // to self-sign the root certificate.
    std::fs::write(&trigger, "").unwrap();
    let stderr = appliance.run_failing(&out);
    assert_eq!(fired(), 1, "the module failed one signature");
    assert!(
        stderr.contains("step \"root-certificate\" failed")
            && stderr.contains("PKCS#11 C_Sign with key pkcs11:token=root-ca;object=root-ca")
            && stderr.contains("CKR_DEVICE_ERROR"),
        "{stderr}"
    );
    let (steps, finished) = appliance.completed();
    assert_eq!(steps, ["generate-keys", "split-root-pin"]);
    assert_eq!(finished, 0);
    let instance = appliance.instance();
    assert!(!instance.join("work/root.pem").exists(), "no certificate");
    assert!(!out.exists(), "nothing delivered");
    appliance.journal_verifies();

    // The root certificate signs (the one signature let through); the first TUF signature,
    // by a custodian's key, fails.
    std::fs::write(&trigger, "1").unwrap();
    let stderr = appliance.run_failing(&out);
    assert_eq!(fired(), 2);
    assert!(
        stderr.contains("could not sign: PKCS#11 C_Sign with key pkcs11:token=custodian-")
            && stderr.contains("CKR_DEVICE_ERROR"),
        "{stderr}"
    );
    let (steps, finished) = appliance.completed();
    assert_eq!(steps, STEPS[..3]);
    assert_eq!(finished, 0);
    assert!(!instance.join("work/tuf").exists(), "no TUF repository");
    assert!(!out.exists());
    appliance.journal_verifies();

    // The token works again: the same command completes, with no key made twice.
    std::fs::remove_file(&trigger).unwrap();
    let said = appliance.resume(&out);
    assert!(said.contains("-- step root-certificate: already completed"));
    assert_eq!(fired(), 2, "no signature failed in the resume");
    appliance.assert_completed_once(&out);
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_delivery_whose_end_was_not_recorded_is_recognised_not_made_twice() {
    // What a full state disk leaves when it strikes right after the outputs reach the stick
    // (the sweep above lands there at some fill levels), at two moments made certain with the
    // test hook: nothing recorded yet, and the journal's record written but not the progress
    // record's.
    for point in ["deliver:after-move", "deliver:journaled"] {
        let appliance = Appliance::new(None);
        let out = appliance.path("root-init");
        let stopped = appliance
            .rootcellar()
            .env("ROOTCELLAR_TEST_CRASH_AT", point)
            .args(["ceremony", "run"])
            .arg(repo_file("ceremony/root-init.toml"))
            .arg("--state")
            .arg(&appliance.state)
            .arg("--out")
            .arg(&out)
            .arg("--answers")
            .arg(appliance.answers())
            .output()
            .unwrap();
        assert!(!stopped.status.success(), "{point}: the hook did not fire");
        let transcript = std::fs::read(out.join("transcript.md")).expect("delivered");
        assert_eq!(
            appliance.completed().1,
            0,
            "{point}: not recorded as finished"
        );

        let said = appliance.resume(&out);
        assert!(
            said.contains(&format!("The outputs are already in {}", out.display())),
            "{point}: {said}"
        );
        assert_eq!(
            std::fs::read(out.join("transcript.md")).unwrap(),
            transcript,
            "{point}: delivered again"
        );
        appliance.assert_completed_once(&out);
        let finish = appliance
            .journal_actions()
            .into_iter()
            .find(|a| a.starts_with("ceremony.finish"))
            .unwrap();
        assert_eq!(
            finish.ends_with("(by the previous run)"),
            point == "deliver:after-move",
            "{point}: {finish}"
        );
    }
}

#[test]
fn an_output_directory_from_elsewhere_is_still_refused() {
    // Recognising a delivery is not a way around "never overwrite": a directory that is not
    // this ceremony's delivery is refused before anything runs.
    let appliance = Appliance::new(None);
    let out = appliance.path("root-init");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("transcript.md"), "someone else's").unwrap();
    let stderr = appliance.run_failing(&out);
    assert!(stderr.contains("exists already"), "{stderr}");
    assert!(!appliance.state.join("ceremonies").exists(), "nothing ran");
}
