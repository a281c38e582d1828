//! Helpers for the test binaries that run ceremony scripts with YubiHSM2 keys on mock devices
//! (`yubihsm_ceremony.rs`, `yubihsm_mixed.rs`): scripts from `ceremony/` with some key URIs
//! changed, an answers file, and rehearsal runs through the library (a MockHsm lives in the test
//! process, so the ceremony runs in it too).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use rootcellar::ceremony::{self, Answers, RunOptions};
use rootcellar::keys::{Hsm, HsmConfig};

/// The MockHsm's factory authentication key 0x0001 opens with this password.
pub const MOCK_PASSWORD: &str = "password";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn rootcellar() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rootcellar"))
}

/// Runs `command`, asserts it succeeded, returns its standard output.
pub fn run_ok(command: &mut Command) -> String {
    let out = command.output().expect("command runs");
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn openssl(args: &[&str]) -> String {
    run_ok(Command::new("openssl").args(args))
}

/// A ceremony workspace: `dir/ceremony/` for scripts, `dir/tuf-repo/policy.toml` for the TUF
/// policy they reference, and an answers file giving `password` to every `devices` name.
pub struct Workspace {
    pub dir: PathBuf,
    pub state: PathBuf,
    pub answers: PathBuf,
    /// What the ceremonies may reach (tests register their MockHsm connectors in it).
    pub hsm: HsmConfig,
}

impl Workspace {
    pub fn new(dir: &Path, devices: &[&str]) -> Self {
        std::fs::create_dir_all(dir.join("ceremony/config")).unwrap();
        std::fs::create_dir(dir.join("tuf-repo")).unwrap();
        for entry in std::fs::read_dir(repo().join("ceremony/config")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(
                entry.path(),
                dir.join("ceremony/config").join(entry.file_name()),
            )
            .unwrap();
        }
        std::fs::copy(
            repo().join("tuf-repo/policy.toml"),
            dir.join("tuf-repo/policy.toml"),
        )
        .unwrap();
        let password = dir.join("mock.password");
        std::fs::write(&password, format!("{MOCK_PASSWORD}\n")).unwrap();
        let time = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
            .expect("the clock is in range");
        let mut answers = format!(
            r#"time = "{time}"
confirm = true
[present]
operator = ["Olive Operator"]
witness = ["Wanda Witness", "Walter Witness"]
custodian-1 = ["Carla Custodian"]
custodian-2 = ["Cyril Custodian"]
custodian-3 = ["Cora Custodian"]
custodian-4 = ["Dana Custodian"]
[pins]
# The devices' initial passwords, as typed by their holders.
"#,
        );
        for device in devices {
            answers.push_str(&format!("{device} = \"{}\"\n", password.display()));
        }
        let answers_path = dir.join("answers.toml");
        std::fs::write(&answers_path, answers).unwrap();
        Workspace {
            dir: dir.to_path_buf(),
            state: dir.join("state"),
            answers: answers_path,
            hsm: HsmConfig::default(),
        }
    }

    /// Copies `ceremony/NAME.toml` into the workspace with the URIs of `keys` replaced (and the
    /// algorithm P-256 for each: the MockHsm makes no P-384 keys).
    pub fn script(&self, name: &str, keys: &[(&str, &str)]) -> PathBuf {
        let mut text =
            std::fs::read_to_string(repo().join(format!("ceremony/{name}.toml"))).unwrap();
        for (key, uri) in keys {
            let header = format!("[keys.{key}]\n");
            let start = text
                .find(&header)
                .unwrap_or_else(|| panic!("{name}: no key {key}"));
            let end = text[start + header.len()..]
                .find("\n[")
                .map_or(text.len(), |i| start + header.len() + i);
            let mut section = String::new();
            for line in text[start..end].lines() {
                if line.starts_with("uri = ") {
                    section.push_str(&format!("uri = \"{uri}\"\n"));
                } else if line.starts_with("algorithm = ") {
                    section.push_str("algorithm = \"p256\"\n");
                } else {
                    section.push_str(line);
                    section.push('\n');
                }
            }
            text.replace_range(start..end, section.trim_end_matches('\n'));
        }
        let path = self.dir.join("ceremony").join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A provider made from this workspace's configuration (the tests look at the devices
    /// after a ceremony, which logged out of them when it ended).
    pub fn provider(&self) -> Hsm {
        self.hsm.open()
    }

    /// Rehearses `script` through the library, with the answers file.
    pub fn run(
        &self,
        script: &Path,
        inputs: Option<&Path>,
        out: &Path,
        bundle_key: Option<&str>,
    ) -> Result<ceremony::CeremonyReport, ceremony::CeremonyError> {
        let options = RunOptions {
            script: script.to_path_buf(),
            state: self.state.clone(),
            inputs: inputs.map(Path::to_path_buf),
            out: out.to_path_buf(),
            rehearsal: true,
            bundle_key: bundle_key.map(str::to_string),
            hsm: self.hsm.clone(),
            image_manifest: None,
        };
        let mut prompter = Answers::load(&self.answers).unwrap();
        ceremony::run(&options, &mut prompter)
    }
}

/// python-tuf (the reference client) refreshes from `repo`, trusting `root`, and downloads
/// `target`, which must equal `expected`.
pub fn python_tuf_accepts(
    repo: &Path,
    root: &Path,
    downloads: &Path,
    target: &str,
    expected: &Path,
) {
    let out = Command::new("python3")
        .arg(self::repo().join("tests/python/tuf_client.py"))
        .arg("--repo")
        .arg(repo)
        .arg("--root")
        .arg(root)
        .arg("--download-dir")
        .arg(downloads)
        .arg(format!("{target}={}", expected.display()))
        .output()
        .expect("python3 runs (`make test` installs python-tuf)");
    assert!(
        out.status.success(),
        "python-tuf refused the repository: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
