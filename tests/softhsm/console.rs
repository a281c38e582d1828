//! The operator console (`rootcellar ceremony console`) driven line by line over pipes, as a
//! script drives it over the appliance's serial line: root-init rehearsed from the menu, then
//! issue-intermediate from a request bundle on a "sneakernet disk" (a directory, mounted and
//! unmounted by logging scripts), a tampered request refused, and the responses verified; then
//! the TUF root rotation and the trust-root publication from requests that carry the
//! repository, a request with an entry the ceremony does not take refused, and the published
//! response imported on the cluster side and read by python-tuf; a response delivered again.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

/// A running console: what it has printed, and its input.
struct Session {
    child: Child,
    stdin: ChildStdin,
    output: Arc<Mutex<String>>,
    answered: usize,
    /// The time the operator typed when the ceremony last asked (the clock then).
    time: String,
}

impl Session {
    fn start(dir: &Path) -> Session {
        Session::start_with_scripts(dir, &repo_file("ceremony"))
    }

    fn start_with_scripts(dir: &Path, scripts: &Path) -> Session {
        Session::start_with(dir, scripts, &[])
    }

    /// A console whose real ceremonies run on `hsm`'s tokens (its module and configuration).
    fn on_tokens(dir: &Path, hsm: &SoftHsm) -> Session {
        Session::start_with(
            dir,
            &repo_file("ceremony"),
            &[
                ("SOFTHSM2_CONF", hsm.conf.as_path()),
                ("ROOTCELLAR_PKCS11_MODULE", hsm.module.as_path()),
            ],
        )
    }

    /// A console whose process also has `env` (the real tokens' module and configuration).
    fn start_with(dir: &Path, scripts: &Path, env: &[(&str, &Path)]) -> Session {
        let log = dir.join("media.log");
        for (name, word) in [("mount.sh", "mount"), ("umount.sh", "umount")] {
            let script = dir.join(name);
            std::fs::write(
                &script,
                format!("#!/bin/sh\necho {word} >> '{}'\n", log.display()),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::create_dir_all(dir.join("media")).unwrap();
        let mut child = rootcellar()
            .args(["ceremony", "console", "--scripts"])
            .arg(scripts)
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--media-dir")
            .arg(dir.join("media"))
            .arg("--mount-command")
            .arg(dir.join("mount.sh"))
            .arg("--umount-command")
            .arg(dir.join("umount.sh"))
            .arg("--lock")
            .arg(dir.join("console.lock"))
            .arg("--poweroff-command")
            .arg("true")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("console starts");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let stdin = child.stdin.take().unwrap();
        Session {
            child,
            stdin,
            output,
            answered: 0,
            time: clock_time(),
        }
    }

    fn text(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn send(&mut self, line: &str) {
        self.answered = self.text().len();
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits until the console waits for input (the output ends with a prompt); returns what
    /// it printed since the last answer.
    fn prompt(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let text = self.text();
            let pending = &text[self.answered..];
            if pending.ends_with(": ") {
                return pending.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no prompt from the console; session so far:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Chooses `ceremony` on the menu, as a rehearsal.
    fn choose(&mut self, ceremony: &str) {
        self.choose_as(ceremony, "r");
    }

    /// Chooses `ceremony` on the menu, as a rehearsal (`r`) or for real (`real`).
    fn choose_as(&mut self, ceremony: &str, mode: &str) {
        let menu = self.prompt();
        assert!(menu.ends_with("choice: "), "{menu}");
        let number = menu
            .lines()
            .find(|l| l.contains(&format!("({ceremony})")))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("{ceremony} is not on the menu:\n{menu}"))
            .to_string();
        self.send(&number);
        let asked = self.prompt();
        assert!(asked.contains("type r for a rehearsal"), "{asked}");
        self.send(mode);
    }

    /// Answers the ceremony's questions as the operator would, until the menu is back; returns
    /// everything printed meanwhile.
    fn converse(&mut self) -> String {
        self.converse_with(|_| None)
    }

    /// [`converse`](Self::converse), with `special` answering first whatever prompt it
    /// recognises (a wrong PIN, a typo).
    fn converse_with(&mut self, mut special: impl FnMut(&str) -> Option<String>) -> String {
        let start = self.answered;
        loop {
            let pending = self.prompt();
            let last = pending.lines().last().unwrap_or("").to_string();
            if last.ends_with("choice: ") {
                return self.text()[start..].to_string();
            }
            if let Some(answer) = special(&last) {
                self.send(&answer);
                continue;
            }
            if last.contains("type the correct UTC time") {
                // Read off the clock when asked, as the operator reads the witnesses' watches.
                self.time = clock_time();
            }
            let answer = if let Some(answer) = usual_answer(&last, &self.time) {
                answer
            } else if last.contains("Press Enter to show the share")
                || last.contains("press Enter to clear the screen")
                || last.contains("or Enter to write the share down instead")
            {
                // No age recipient: each custodian writes their share down.
                String::new()
            } else if last.contains("type your share back from your paper") {
                // What the custodian wrote down: the numbered lines of groups just shown.
                let text = self.text();
                let shown = &text[text.rfind("Press Enter to show the share").unwrap()..];
                shown
                    .lines()
                    .filter_map(|l| {
                        let (number, groups) = l.trim().split_once(": ")?;
                        number.parse::<u32>().ok().map(|_| groups)
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            } else if last.starts_with("Type its first 8 characters") {
                let fingerprint = pending
                    .split("SHA256:")
                    .nth(1)
                    .expect("the fingerprint is shown");
                fingerprint[..8].to_string()
            } else {
                panic!("unexpected prompt {last:?}; session:\n{}", self.text());
            };
            self.send(&answer);
        }
    }

    fn finish(mut self) -> String {
        let menu = self.prompt();
        assert!(menu.ends_with("choice: "));
        self.send("p");
        self.prompt();
        self.send("yes");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{}", self.text());
                break;
            }
            assert!(Instant::now() < deadline, "the console did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.text()
    }
}

/// The one directory the console delivered for `prefix` on the media.
fn delivered(media: &Path, prefix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(media.join("rootcellar"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

/// Extracts the response delivered in `dir` into `out`, verified against `pin`.
fn extract_response(dir: &Path, pin: &Path, out: &Path) {
    ok(rootcellar()
        .args(["bundle", "extract"])
        .arg(dir.join("response.rcb"))
        .arg("--pin")
        .arg(pin)
        .arg("--out")
        .arg(out));
}

fn verify_response(dir: &Path, pin: &Path) {
    ok(rootcellar()
        .args(["bundle", "verify"])
        .arg(dir.join("response.rcb"))
        .arg("--pin")
        .arg(pin)
        .args(["--kind", "response"]));
}

#[test]
fn the_console_rehearses_root_init_then_an_intermediate_from_a_request_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let media = d.join("media");
    let mut session = Session::start(d);

    // root-init: no request; the response goes to the disk.
    session.choose("root-init");
    let text = session.converse();
    assert!(text.contains("ceremony complete"), "{text}");
    assert!(text.contains("delivered to the sneakernet disk"), "{text}");
    let root_init = delivered(&media, "root-init-");
    let bundle_key = root_init.join("bundle-key.pub.pem");
    verify_response(&root_init, &bundle_key);
    assert!(root_init.join("transcript.md").is_file());

    // The online side: root.pem out of the response, CSRs, a request signed by its own key.
    let online = d.join("online");
    std::fs::create_dir(&online).unwrap();
    extract_response(&root_init, &bundle_key, &online.join("response"));
    let root = online.join("response/root.pem");
    // The rehearsal's TUF root says what it is, signed with the rest; the client shows it.
    let first_root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(online.join("response/1.root.json")).unwrap())
            .unwrap();
    assert_eq!(
        first_root["signed"][rootcellar::tuf::REHEARSAL_FIELD],
        rootcellar::tuf::REHEARSAL_MARK
    );
    let fulcio = openssl_csr(&online, "fulcio", "prime256v1", "/O=example/CN=fulcio");
    let tsa = openssl_csr(&online, "tsa", "prime256v1", "/O=example/CN=tsa");
    let requester = online.join("requester.key");
    assert!(openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        requester.to_str().unwrap()
    ])
    .status
    .success());
    let requester_pub = media.join("requester.pub.pem");
    assert!(openssl(&[
        "ec",
        "-in",
        requester.to_str().unwrap(),
        "-pubout",
        "-out",
        requester_pub.to_str().unwrap()
    ])
    .status
    .success());
    let request = online.join("request.rcb");
    ok(rootcellar()
        .args(["bundle", "new", "--sign-key"])
        .arg(&requester)
        .arg("--out")
        .arg(&request)
        .args(["--ceremony", "issue-intermediate", "--time", &clock_time()])
        .arg("--certificate")
        .arg(format!("root.pem={}", root.display()))
        .arg("--csr")
        .arg(format!("fulcio.csr={}", fulcio.display()))
        .arg(format!("tsa.csr={}", tsa.display())));

    // A tampered request (one byte of the last entry changed) is refused; nothing runs.
    let mut bytes = std::fs::read(&request).unwrap();
    let last = bytes.len() - 40;
    bytes[last] ^= 1;
    std::fs::write(media.join("request.rcb"), &bytes).unwrap();
    session.choose("issue-intermediate");
    let text = session.converse();
    assert!(
        text.contains("request.rcb refused") && text.contains("nothing was run"),
        "{text}"
    );
    assert!(!text.contains("== Issue intermediate"), "{text}");
    let instances: Vec<String> = std::fs::read_dir(d.join("state/ceremonies"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        instances
            .iter()
            .all(|i| !i.starts_with("issue-intermediate")),
        "{instances:?}"
    );
    assert!(!d.join("state/rehearsal/trust/requesters").exists());

    // The genuine request: the requester's key accepted by its fingerprint, then pinned.
    std::fs::copy(&request, media.join("request.rcb")).unwrap();
    session.choose("issue-intermediate");
    let text = session.converse();
    assert!(text.contains("No requester key is pinned yet"), "{text}");
    assert!(text.contains("ceremony complete"), "{text}");
    // Pinned for rehearsals: a real ceremony pins its own.
    let pinned: Vec<_> = std::fs::read_dir(d.join("state/rehearsal/trust/requesters"))
        .unwrap()
        .collect();
    assert_eq!(pinned.len(), 1);
    let issued = delivered(&media, "issue-intermediate-");
    let kept_key = issued.join("bundle-key.pub.pem");
    assert_eq!(
        std::fs::read(&kept_key).unwrap(),
        std::fs::read(&bundle_key).unwrap()
    );
    verify_response(&issued, &bundle_key);
    extract_response(&issued, &bundle_key, &online.join("intermediates"));
    for name in ["intermediate-fulcio.pem", "intermediate-tsa.pem"] {
        let out = openssl_verify(&root, &online.join("intermediates").join(name));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The TUF root rotation: the request carries root-init's repository, its metadata and its
    // target files (root-init publishes root.pem as a target) as the response carried them.
    let metadata = tuf_metadata_files(&online.join("response"));
    let targets = stored_target_files(&online.join("response"));
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert!(
        metadata.iter().any(|p| p.ends_with("1.root.json")),
        "{metadata:?}"
    );
    let rotate_request = |out: &Path, stray: Option<&Path>| {
        let mut cmd = rootcellar();
        cmd.args(["bundle", "new", "--sign-key"])
            .arg(&requester)
            .args(["--ceremony", "rotate-tuf-root", "--time", &clock_time()])
            .arg("--tuf-metadata")
            .args(&metadata)
            .arg("--file")
            .args(&targets);
        if let Some(stray) = stray {
            cmd.arg("--file").arg(stray);
        }
        ok(cmd.arg("--out").arg(out));
    };
    // First with a stray entry: genuine, but not what the ceremony takes; nothing runs.
    let stray = online.join("notes.txt");
    std::fs::write(&stray, "not an input").unwrap();
    rotate_request(&media.join("rotate.rcb"), Some(&stray));
    session.choose("rotate-tuf-root");
    let text = session.converse();
    assert!(
        text.contains("does not fit: entry \"notes.txt\" is not one of rotate-tuf-root's inputs")
            && text.contains("nothing was run"),
        "{text}"
    );
    assert!(!text.contains("== TUF root rotation"), "{text}");
    std::fs::remove_file(media.join("rotate.rcb")).unwrap();
    rotate_request(&media.join("rotate.rcb"), None);
    session.choose("rotate-tuf-root");
    let text = session.converse();
    assert!(
        text.contains("1.root.json -> tuf/metadata/1.root.json"),
        "{text}"
    );
    assert!(text.contains("ceremony complete"), "{text}");
    let rotated = delivered(&media, "rotate-tuf-root-");
    verify_response(&rotated, &bundle_key);
    extract_response(&rotated, &bundle_key, &online.join("rotated"));
    assert!(online.join("rotated/2.root.json").is_file());

    // The online side builds the trust root; the appliance publishes it as TUF targets.
    std::fs::write(
        online.join("trustroot.toml"),
        "[[certificate_authorities]]\nuri = \"https://fulcio.example\"\n\
         chain = [\"response/root.pem\"]\n[signing_config]\noperator = \"example\"\n\
         ca_urls = [\"https://fulcio.example\"]\noidc_urls = [\"https://oidc.example\"]\nrekor_urls = [\"https://rekor.example\"]\n",
    )
    .unwrap();
    let trust = online.join("trust");
    std::fs::create_dir(&trust).unwrap();
    ok(rootcellar()
        .args(["trustroot", "build", "--config"])
        .arg(online.join("trustroot.toml"))
        .args(["--time", &clock_time(), "--out"])
        .arg(&trust));
    ok(rootcellar()
        .args(["bundle", "new", "--sign-key"])
        .arg(&requester)
        .arg("--out")
        .arg(media.join("publish.rcb"))
        .args(["--ceremony", "publish-trust-root", "--time", &clock_time()])
        .arg("--tuf-metadata")
        .args(tuf_metadata_files(&online.join("rotated")))
        .arg("--file")
        .args(stored_target_files(&online.join("rotated")))
        .arg("--trusted-root")
        .arg(trust.join("trusted_root.json"))
        .arg("--file")
        .arg(trust.join("signing_config.v0.2.json")));
    session.choose("publish-trust-root");
    let text = session.converse();
    assert!(text.contains("ceremony complete"), "{text}");
    let published = delivered(&media, "publish-trust-root-");

    // The cluster side imports the response from the root it pinned at root-init. It is a
    // rehearsal's (bundle manifest and TUF root say so): refused unless allowed, for a test
    // cluster.
    let import = d.join("cluster");
    std::fs::create_dir(&import).unwrap();
    let import_first = || {
        let mut cmd = rootcellar();
        cmd.args(["import", "--bundle"])
            .arg(published.join("response.rcb"))
            .arg("--root")
            .arg(online.join("response/1.root.json"))
            .arg("--bundle-key")
            .arg(&bundle_key)
            .arg("--state")
            .arg(import.join("state"))
            .arg("--out")
            .arg(import.join("out"))
            .args(["--time", &clock_time()]);
        cmd
    };
    let refused = import_first().output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("was made by a rehearsal") && err.contains("--allow-rehearsal"),
        "{err}"
    );
    assert!(!import.join("out").exists() && !import.join("state").exists());
    let manifest = ok(rootcellar()
        .args(["bundle", "inspect", "--json"])
        .arg(published.join("response.rcb")));
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    assert_eq!(manifest["rehearsal"], true, "{manifest}");
    ok(import_first().arg("--allow-rehearsal"));
    assert_eq!(
        std::fs::read(import.join("out/trusted_root.json")).unwrap(),
        std::fs::read(trust.join("trusted_root.json")).unwrap()
    );
    // The mirror keeps metadata at its top and target files under targets/; python-tuf reads
    // metadata/ and targets/ side by side, and starts from the root pinned at root-init.
    let mirror = import.join("out/repository").canonicalize().unwrap();
    assert_eq!(
        std::fs::read(mirror.join("1.root.json")).unwrap(),
        std::fs::read(online.join("response/1.root.json")).unwrap()
    );
    assert!(mirror.join("2.root.json").is_file());
    let served = import.join("served");
    std::fs::create_dir(&served).unwrap();
    std::os::unix::fs::symlink(&mirror, served.join("metadata")).unwrap();
    std::os::unix::fs::symlink(mirror.join("targets"), served.join("targets")).unwrap();
    python_tuf_accepts(&served, &[&trust.join("trusted_root.json")]);

    // The next publication starts from the cluster's mirror, as the README shows: its metadata
    // at the top, its target files under targets/. The second import advances from the state.
    std::fs::remove_file(media.join("publish.rcb")).unwrap();
    ok(rootcellar()
        .args(["bundle", "new", "--sign-key"])
        .arg(&requester)
        .arg("--out")
        .arg(media.join("publish-again.rcb"))
        .args(["--ceremony", "publish-trust-root", "--time", &clock_time()])
        .arg("--tuf-metadata")
        .args(files_where(&mirror, |name| name.ends_with(".json")))
        .arg("--file")
        .args(files_where(&mirror.join("targets"), |_| true))
        .arg("--trusted-root")
        .arg(trust.join("trusted_root.json"))
        .arg("--file")
        .arg(trust.join("signing_config.v0.2.json")));
    session.choose("publish-trust-root");
    let text = session.converse();
    assert!(text.contains("ceremony complete"), "{text}");
    let again: Vec<PathBuf> = std::fs::read_dir(media.join("rootcellar"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("publish-trust-root-")
                && *p != published
        })
        .collect();
    assert_eq!(again.len(), 1, "{again:?}");
    let report = ok(rootcellar()
        .args(["import", "--bundle"])
        .arg(again[0].join("response.rcb"))
        .arg("--state")
        .arg(import.join("state"))
        .arg("--out")
        .arg(import.join("out-2"))
        .arg("--allow-rehearsal")
        .args(["--time", &clock_time()]));
    let report = String::from_utf8_lossy(&report.stdout).into_owned();
    assert!(report.contains("TUF root v2 → v2"), "{report}");

    // A month on, the cluster needs fresh metadata: the appliance refreshes snapshot and
    // timestamp from the cluster's mirror with its own keys (no custodian), and the cluster
    // imports the response as an update, a month later still valid.
    let mirror_2 = import.join("out-2/repository");
    let before: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mirror_2.join("timestamp.json")).unwrap()).unwrap();
    ok(rootcellar()
        .args(["bundle", "new", "--sign-key"])
        .arg(&requester)
        .arg("--out")
        .arg(media.join("refresh.rcb"))
        .args(["--ceremony", "refresh-timestamp", "--time", &clock_time()])
        .arg("--tuf-metadata")
        .args(files_where(&mirror_2, |name| name.ends_with(".json")))
        .arg("--file")
        .args(files_where(&mirror_2.join("targets"), |_| true)));
    session.choose("refresh-timestamp");
    let text = session.converse();
    assert!(text.contains("ceremony complete"), "{text}");
    assert!(
        !text.contains("custodian-") && text.contains("timestamp v") && text.contains("re-signed"),
        "{text}"
    );
    let refreshed = delivered(&media, "refresh-timestamp-");
    let month_later = days_from_now(30);
    let report = ok(rootcellar()
        .args(["import", "--bundle"])
        .arg(refreshed.join("response.rcb"))
        .arg("--state")
        .arg(import.join("state"))
        .arg("--out")
        .arg(import.join("out-3"))
        .arg("--allow-rehearsal")
        .args(["--json", "--time", &month_later]));
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let timestamp_version = before["signed"]["version"].as_u64().unwrap();
    assert_eq!(
        report["tuf"]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["role"] == "timestamp")
            .unwrap()["version"],
        timestamp_version + 1,
        "{report}"
    );
    assert_eq!(report["changes"]["root"]["to"], 2, "{report}");
    // 90 days from the refresh, checked 30 days on: 59 or 60 whole days remain.
    let left = report["first_expiry"]["days_left"].as_i64().unwrap();
    assert!((59..=60).contains(&left), "{report}");

    // root-init's response delivered again (menu item d), beside the first delivery, the same
    // bytes: nothing is signed again.
    let menu = session.prompt();
    assert!(
        menu.contains("   d  deliver a completed ceremony"),
        "{menu}"
    );
    session.send("d");
    let listed = session.prompt();
    let number = listed
        .lines()
        .find(|l| l.contains("root-init-"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("root-init is not listed:\n{listed}"))
        .to_string();
    session.send(&number);
    let text = session.converse();
    assert!(text.contains("delivered to the sneakernet disk"), "{text}");
    let again = PathBuf::from(format!("{}-2", root_init.display()));
    assert_eq!(
        std::fs::read(again.join("response.rcb")).unwrap(),
        std::fs::read(root_init.join("response.rcb")).unwrap()
    );
    verify_response(&again, &bundle_key);

    // The disk was mounted only around reading and writing it: mount, umount, in pairs (the
    // stray request was read, refused, and the disk unmounted without a delivery).
    let log = std::fs::read_to_string(d.join("media.log")).unwrap();
    let words: Vec<&str> = log.lines().collect();
    assert_eq!(words, ["mount", "umount"].repeat(words.len() / 2), "{log}");
    assert_eq!(words.len(), 2 * 14, "{log}");
    let text = session.finish();
    assert!(text.contains("powering off"));
}

/// The regular files of `dir` whose names pass `keep`, sorted.
fn files_where(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && keep(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    files.sort();
    files
}

/// The TUF metadata files among a response's extracted entries (`N.ROLE.json`, `timestamp.json`).
fn tuf_metadata_files(dir: &Path) -> Vec<PathBuf> {
    files_where(dir, |name| {
        let parts: Vec<&str> = name.split('.').collect();
        name == "timestamp.json"
            || matches!(parts[..], [version, role, "json"]
                if version.parse::<u64>().is_ok()
                    && ["root", "targets", "snapshot"].contains(&role))
    })
}

/// The target files among a response's extracted entries, named as the repository stores them
/// (`<sha256>.<name>`).
fn stored_target_files(dir: &Path) -> Vec<PathBuf> {
    files_where(dir, |name| {
        name.split_once('.').is_some_and(|(digest, _)| {
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())
        })
    })
}

#[test]
fn a_script_with_problems_is_refused_when_chosen_before_anything_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // issue-intermediate with a key URI that is not one: it parses, so the menu offers it.
    let scripts = d.join("scripts");
    std::fs::create_dir(&scripts).unwrap();
    let text = std::fs::read_to_string(repo_file("ceremony/issue-intermediate.toml")).unwrap();
    let broken = text.replacen(
        "uri = \"pkcs11:token=appliance;object=bundle-key\"",
        "uri = \"pkcs12:token=appliance\"",
        1,
    );
    assert_ne!(broken, text);
    std::fs::write(scripts.join("issue-intermediate.toml"), broken).unwrap();
    // backup-keys with a step whose action does not exist: the menu reads only a script's
    // header, inputs and keys, so it is offered too.
    let text = std::fs::read_to_string(repo_file("ceremony/backup-keys.toml")).unwrap();
    let broken = text.replacen("action = \"backup-keys\"", "action = \"no-such-action\"", 1);
    assert_ne!(broken, text);
    std::fs::write(scripts.join("backup-keys.toml"), broken).unwrap();
    std::fs::write(scripts.join("notes.toml"), "this is not a ceremony script").unwrap();
    let mut session = Session::start_with_scripts(d, &scripts);
    let menu = session.prompt();
    assert!(menu.contains("not offered:"), "{menu}");
    session.choose("issue-intermediate");
    let text = session.converse();
    assert!(text.contains("problem(s)"), "{text}");
    assert!(text.contains("bundle-key"), "{text}");
    session.choose("backup-keys");
    let text = session.converse();
    assert!(text.contains("problem(s)"), "{text}");
    assert!(text.contains("no-such-action"), "{text}");
    // Nothing was mounted, no state was made.
    assert!(!d.join("media.log").exists());
    assert!(!d.join("state/ceremonies").exists());
    session.finish();
}

#[test]
fn a_rehearsal_then_the_real_root_init_at_the_same_state_completes() {
    // The same console state: root-init rehearsed, then run for real on the appliance's tokens.
    // The rehearsal is its own instance, so it neither blocks the real run nor is resumed as it.
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let hsm = root_init_tokens();
    let mut session = Session::on_tokens(d, &hsm);
    session.choose_as("root-init", "r");
    let rehearsal = session.converse();
    assert!(rehearsal.contains("ceremony complete"), "{rehearsal}");
    session.choose_as("root-init", "real");
    let real = session.converse();
    assert!(real.contains("ceremony complete"), "{real}");
    assert!(!real.contains("REHEARSAL"), "{real}");
    session.finish();

    let media = d.join("media/rootcellar");
    let delivered: Vec<String> = std::fs::read_dir(&media)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let rehearsed = delivered
        .iter()
        .find(|n| n.starts_with("root-init-rehearsal-"))
        .unwrap_or_else(|| panic!("{delivered:?}"));
    let production = delivered
        .iter()
        .find(|n| n.starts_with("root-init-") && !n.contains("rehearsal"))
        .unwrap_or_else(|| panic!("{delivered:?}\n{real}"));
    // Each response says what it is, and the real one is signed by the appliance token's key.
    for (dir, marked) in [(rehearsed, true), (production, false)] {
        let shown = ok(rootcellar()
            .args(["bundle", "inspect", "--json"])
            .arg(media.join(dir).join("response.rcb")));
        let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
        assert_eq!(shown["rehearsal"], marked, "{shown}");
    }
    // The real root was made on the real token: its key is there, found by pkcs11-tool.
    let listed = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", &hsm.conf)
        .args(["--module", hsm.module.to_str().unwrap()])
        .args([
            "--token-label",
            "root-ca",
            "--list-objects",
            "--type",
            "pubkey",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("label:      root-ca"),
        "{}",
        String::from_utf8_lossy(&listed.stdout)
    );
}

#[test]
fn a_typo_and_a_wrong_pin_are_forgiven_and_a_failed_attempt_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let hsm = root_init_tokens();
    let mut session = Session::on_tokens(d, &hsm);
    // A typo at the mode prompt is asked again, not taken for "back".
    session.choose_as("root-init", "rehersal");
    let again = session.prompt();
    assert!(
        again.contains("\"rehersal\" is not an answer here") && again.contains("type r for"),
        "{again}"
    );
    session.send("real");
    // The first PIN is mistyped and the operator gives up: back at the menu, nothing left in
    // the console's run directories.
    let aborted = session.converse_with(|prompt| {
        if prompt.contains(": PIN of \"") {
            Some("not-the-pin".into())
        } else if prompt.starts_with("Type retry") {
            Some("abort".into())
        } else {
            None
        }
    });
    assert!(aborted.contains("refused that PIN"), "{aborted}");
    let runs: Vec<_> = std::fs::read_dir(d.join("state/console"))
        .map(|r| r.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(runs.is_empty(), "{runs:?}");
    // Chosen again: a wrong PIN, then "retry", then the right one; the ceremony completes.
    session.choose_as("root-init", "real");
    let mut wrong = 1;
    let done = session.converse_with(|prompt| {
        if prompt.contains(": PIN of \"") && wrong > 0 {
            wrong -= 1;
            Some("still-not-the-pin".into())
        } else if prompt.starts_with("Type retry") {
            Some("retry".into())
        } else {
            None
        }
    });
    assert!(done.contains("ceremony complete"), "{done}");
    session.finish();
    // Each refused PIN is in the journal: two refusals, then the steps.
    let journal = ok(rootcellar()
        .args(["journal", "show", "--state"])
        .arg(d.join("state")));
    let journal = String::from_utf8_lossy(&journal.stdout);
    assert_eq!(journal.matches("key.login-refused").count(), 2, "{journal}");
}
