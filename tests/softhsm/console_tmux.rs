//! The console driven as a person drives it: `rootcellar ceremony console` in a real terminal
//! (tmux), keys sent with `send-keys`, the screen read with `capture-pane`. PINs are read with
//! echo off there, typed-ahead lines are flushed, the share is shown and the screen cleared as
//! at the appliance. One real root-init on test tokens, with what goes wrong at a ceremony: a
//! typo at a prompt, a mistyped PIN, the console killed mid-ceremony and resumed, two
//! custodians sealing their shares to age recipients and the third writing it down and typing
//! it back (once wrongly).
//!
//! It found that a console killed mid-ceremony left its lock behind as a busy process's
//! (a zombie, or after a reboot someone else's process id): the lock is now an `flock`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

/// A console in its own tmux server (a socket of its own: nothing shared with a user's tmux).
struct Terminal {
    socket: PathBuf,
    /// The whole history as last read, to tell a new prompt from the one already answered.
    answered: String,
}

impl Terminal {
    /// Starts `command` (a shell command line) in a 160×50 terminal with a long history.
    fn start(dir: &Path, command: &str) -> Terminal {
        let conf = dir.join("tmux.conf");
        std::fs::write(
            &conf,
            "set -g history-limit 100000\nset -g remain-on-exit off\n",
        )
        .unwrap();
        // A socket of its own each time: a server still shutting down after the console was
        // killed must not be the one the next terminal connects to.
        static TERMINALS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = TERMINALS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = dir.join(format!("tmux-{n}.sock"));
        let status = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .arg("-f")
            .arg(&conf)
            .args([
                "new-session",
                "-d",
                "-x",
                "160",
                "-y",
                "50",
                "-s",
                "console",
            ])
            .arg(command)
            .output()
            .expect("tmux runs");
        assert!(
            status.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        Terminal {
            socket,
            answered: String::new(),
        }
    }

    fn tmux(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket);
        cmd
    }

    /// Everything the terminal showed (history and screen), trailing blank lines dropped.
    fn screen(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-J", "-S", "-", "-t", "console"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// Types `text` and Enter, as a person at the keyboard.
    fn type_line(&mut self, text: &str) {
        self.answered = self.screen();
        if !text.is_empty() {
            let sent = self
                .tmux()
                .args(["send-keys", "-t", "console", "-l", text])
                .status()
                .unwrap();
            assert!(sent.success());
        }
        let sent = self
            .tmux()
            .args(["send-keys", "-t", "console", "Enter"])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the next prompt (the screen changed since the last answer, settled, and its
    /// last line ends with a colon); returns the prompt line and the whole screen.
    fn prompt(&mut self) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut last_seen = String::new();
        loop {
            let screen = self.screen();
            if screen != self.answered && screen == last_seen && screen.ends_with(':') {
                let line = screen.lines().last().unwrap_or_default().to_string();
                return (line, screen);
            }
            assert!(
                Instant::now() < deadline,
                "no prompt; the terminal shows:\n{screen}"
            );
            last_seen = screen;
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn kill(self) {
        let _ = self.tmux().arg("kill-server").status();
    }
}

/// Answers the usual questions (time, names, confirmation codes, PINs) until `done` is on the
/// screen; `special` answers first what it recognises, given the prompt line and the screen.
fn answer_until(
    terminal: &mut Terminal,
    done: &str,
    mut special: impl FnMut(&str, &str) -> Option<String>,
) -> String {
    let before = terminal.screen().matches(done).count();
    loop {
        let (line, screen) = terminal.prompt();
        if screen.matches(done).count() > before {
            return screen;
        }
        let answer = if let Some(answer) = special(&line, &screen) {
            answer
        } else if let Some(answer) = usual_answer(&line, &clock_time()) {
            answer
        } else {
            panic!("unexpected prompt {line:?}; the terminal shows:\n{screen}");
        };
        terminal.type_line(&answer);
    }
}

/// An age identity and its recipient, made by the age tools as a custodian makes them.
fn age_identity(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{name}.age-key"));
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .expect("age-keygen runs");
    assert!(out.status.success());
    let text = std::fs::read_to_string(&key).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen writes the public key")
        .to_string();
    (key, recipient)
}

#[test]
fn a_root_ceremony_at_a_terminal_with_a_typo_a_wrong_pin_a_kill_and_sealed_shares() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let hsm = root_init_tokens();
    for (name, word) in [("mount.sh", "mount"), ("umount.sh", "umount")] {
        let script = d.join(name);
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho {word} >> '{}/media.log'\n", d.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::create_dir_all(d.join("media")).unwrap();
    let console = format!(
        "SOFTHSM2_CONF='{conf}' ROOTCELLAR_PKCS11_MODULE='{module}' '{bin}' ceremony console \
         --scripts '{scripts}' --state '{d}/state' --media-dir '{d}/media' \
         --mount-command '{d}/mount.sh' --umount-command '{d}/umount.sh' \
         --lock '{d}/console.lock' --poweroff-command true",
        conf = hsm.conf.display(),
        module = hsm.module.display(),
        bin = env!("CARGO_BIN_EXE_rootcellar"),
        scripts = repo_file("ceremony").display(),
        d = d.display(),
    );
    let (key_1, recipient_1) = age_identity(d, "custodian-1");
    let (key_2, recipient_2) = age_identity(d, "custodian-2");

    let mut terminal = Terminal::start(d, &console);
    let (line, screen) = terminal.prompt();
    assert!(line.ends_with("choice:"), "{screen}");
    let number = screen
        .lines()
        .rev()
        .find(|l| l.contains("(root-init)"))
        .and_then(|l| l.split_whitespace().next())
        .expect("root-init is on the menu")
        .to_string();
    terminal.type_line(&number);
    // A typo at the mode prompt: said, and asked again.
    let (line, _) = terminal.prompt();
    assert!(line.contains("type r for a rehearsal"), "{line}");
    terminal.type_line("rehersal");
    let (line, screen) = terminal.prompt();
    assert!(
        screen.contains("\"rehersal\" is not an answer here") && line.contains("type r for"),
        "{screen}"
    );
    terminal.type_line("real");

    // Step 1 (the keys): the first PIN is mistyped, said, and typed again on "retry". Once the
    // step is done the console is killed, as a power cut would.
    let mut mistyped = false;
    let screen = answer_until(&mut terminal, "done: key", |line, _| {
        if line.contains(": PIN of \"") && !mistyped {
            mistyped = true;
            Some("135791".into())
        } else if line.starts_with("Type retry") {
            Some("retry".into())
        } else {
            None
        }
    });
    assert!(screen.contains("refused that PIN"), "{screen}");
    // Nothing echoed: the PINs typed never appear on the screen.
    assert!(
        !screen.contains("135791") && !screen.contains(PIN),
        "{screen}"
    );
    // The step's preview showed each key it generates, and its result the fingerprints read
    // aloud in groups.
    assert!(screen.contains("generates key root-ca (p384"), "{screen}");
    assert!(screen.contains("read aloud: SHA256 "), "{screen}");
    // The console process itself (not the shell tmux may have started it with).
    let found = Command::new("pgrep")
        .args(["-f", "--", &format!("--state {}/state", d.display())])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&found.stdout)
        .lines()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "rootcellar")
        })
        .expect("the console runs")
        .to_string();
    assert!(Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap()
        .success());
    terminal.kill();

    // The console again: root-init resumes where it stopped.
    let mut terminal = Terminal::start(d, &console);
    let (line, _) = terminal.prompt();
    assert!(line.ends_with("choice:"));
    terminal.type_line(&number);
    terminal.prompt();
    terminal.type_line("real");
    let mut shown_share = None;
    let mut typed_back = 0;
    let screen = answer_until(&mut terminal, "ceremony complete", |line, screen| {
        if line.starts_with("custodian-1: age recipient") {
            Some(recipient_1.clone())
        } else if line.starts_with("custodian-2: age recipient") {
            Some(recipient_2.clone())
        } else if line.starts_with("custodian-3: age recipient")
            || line.contains("Press Enter to show the share")
        {
            // custodian-3 writes the share down; Enter shows it.
            Some(String::new())
        } else if line.starts_with("Write it down") {
            // custodian-3 copies the share from the screen: the numbered lines of groups
            // under the line that names the share.
            let shown = &screen[screen.rfind(", fingerprint ").expect("the share is named")..];
            let lines: Vec<&str> = shown
                .lines()
                .map(str::trim)
                .filter(|l| {
                    l.split(':')
                        .next()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
                .collect();
            assert!(!lines.is_empty(), "{screen}");
            shown_share = Some(lines.join(" "));
            Some(String::new())
        } else if line.contains("type your share back") {
            typed_back += 1;
            let share = shown_share.clone().expect("the share was shown");
            if typed_back == 1 {
                // A slip in the first character of the first group, then the share as written.
                let mut words: Vec<String> = share.split_whitespace().map(String::from).collect();
                let first = &mut words[1];
                let slipped = if first.starts_with('a') { "b" } else { "a" };
                first.replace_range(..1, slipped);
                Some(words.join(" "))
            } else {
                Some(share)
            }
        } else {
            None
        }
    });
    assert!(
        screen.contains("Resuming the ceremony begun at")
            && screen.contains("already completed, outputs verified"),
        "{screen}"
    );
    // The slip was named by its group before the share was shown again.
    assert!(
        screen.contains("What was typed back is not the share: group 1 "),
        "{screen}"
    );
    assert!(
        screen.contains("custodian-3's share was typed back correctly"),
        "{screen}"
    );
    assert_eq!(typed_back, 2, "{screen}");
    assert!(screen.contains("ceremony complete"), "{screen}");
    terminal.kill();

    // The two sealed shares open with each custodian's own identity, with the age CLI.
    let sealed: Vec<PathBuf> = walk(&d.join("state/console"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "age"))
        .collect();
    for (custodian, key) in [("custodian-1", &key_1), ("custodian-2", &key_2)] {
        let file = sealed
            .iter()
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(custodian)
            })
            .unwrap_or_else(|| panic!("{custodian}: {sealed:?}"));
        let opened = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(key)
            .arg(file)
            .output()
            .unwrap();
        assert!(opened.status.success(), "{custodian}");
        assert!(!opened.stdout.is_empty());
    }
    // The journal has the refused PIN and the resume.
    let journal = ok(rootcellar()
        .args(["journal", "show", "--state"])
        .arg(d.join("state")));
    let journal = String::from_utf8_lossy(&journal.stdout);
    assert_eq!(journal.matches("key.login-refused").count(), 1, "{journal}");
    assert!(journal.contains("ceremony.resume"), "{journal}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
    }
    files
}
