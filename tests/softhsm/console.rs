//! The operator console (`rootcellar ceremony console`) driven line by line over pipes, as a
//! script drives it over the appliance's serial line: root-init rehearsed from the menu, then
//! issue-intermediate from a request bundle on a "sneakernet disk" (a directory, mounted and
//! unmounted by logging scripts), a tampered request refused, and the responses verified.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

const TIME: &str = "2026-11-24T09:00:00Z";

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn rootcellar() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rootcellar"));
    cmd.env_remove("ROOTCELLAR_PKCS11_MODULE")
        .env_remove("SOFTHSM2_CONF")
        .env_remove("ROOTCELLAR_TEST_CRASH_AT")
        .env_remove("ROOTCELLAR_TTY");
    cmd
}

/// A running console: what it has printed, and its input.
struct Session {
    child: Child,
    stdin: ChildStdin,
    output: Arc<Mutex<String>>,
    answered: usize,
}

impl Session {
    fn start(dir: &Path) -> Session {
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
            .arg(repo_file("ceremony"))
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
        let menu = self.prompt();
        assert!(menu.ends_with("choice: "), "{menu}");
        let number = menu
            .lines()
            .find(|l| l.contains(&format!("({ceremony})")))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("{ceremony} is not on the menu:\n{menu}"))
            .to_string();
        self.send(&number);
        let mode = self.prompt();
        assert!(mode.contains("type r for a rehearsal"), "{mode}");
        self.send("r");
    }

    /// Answers the ceremony's questions as the operator would, until the menu is back; returns
    /// everything printed meanwhile.
    fn converse(&mut self) -> String {
        let start = self.answered;
        loop {
            let pending = self.prompt();
            let last = pending.lines().last().unwrap_or("").to_string();
            if last.ends_with("choice: ") {
                return self.text()[start..].to_string();
            }
            let answer =
                if last.contains("type the correct UTC time") || last.starts_with("Confirm 2026") {
                    TIME.to_string()
                } else if last.starts_with("Name of operator 1") {
                    "Olga Operator".into()
                } else if last.starts_with("Name of witness 1") {
                    "Wim Witness".into()
                } else if last.starts_with("Name of witness 2") {
                    "Wanda Witness".into()
                } else if last.starts_with("Name of ") {
                    String::new()
                } else if let Some(code) = last
                    .strip_prefix("Type ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .filter(|_| last.contains("to perform step"))
                {
                    code.to_string()
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
    ok(rootcellar()
        .args(["bundle", "extract"])
        .arg(root_init.join("response.rcb"))
        .arg("--pin")
        .arg(&bundle_key)
        .arg("--out")
        .arg(online.join("response")));
    let root = online.join("response/root.pem");
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
        .args(["--ceremony", "issue-intermediate", "--created", TIME])
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
    assert!(!d.join("state/trust/requesters").exists());

    // The genuine request: the requester's key accepted by its fingerprint, then pinned.
    std::fs::copy(&request, media.join("request.rcb")).unwrap();
    session.choose("issue-intermediate");
    let text = session.converse();
    assert!(text.contains("No requester key is pinned yet"), "{text}");
    assert!(text.contains("ceremony complete"), "{text}");
    let pinned: Vec<_> = std::fs::read_dir(d.join("state/trust/requesters"))
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
    ok(rootcellar()
        .args(["bundle", "extract"])
        .arg(issued.join("response.rcb"))
        .arg("--pin")
        .arg(&bundle_key)
        .arg("--out")
        .arg(online.join("intermediates")));
    for name in ["intermediate-fulcio.pem", "intermediate-tsa.pem"] {
        let out = openssl_verify(&root, &online.join("intermediates").join(name));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The disk was mounted only around reading and writing it: mount, umount, in pairs.
    let log = std::fs::read_to_string(d.join("media.log")).unwrap();
    let words: Vec<&str> = log.lines().collect();
    assert_eq!(words, ["mount", "umount"].repeat(words.len() / 2), "{log}");
    assert_eq!(words.len(), 2 * 4, "{log}");
    let text = session.finish();
    assert!(text.contains("powering off"));
}
