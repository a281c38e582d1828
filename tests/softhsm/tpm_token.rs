//! A second, independent PKCS#11 token for tests: a software TPM 2.0 (`swtpm`) behind the
//! tpm2-pkcs11 module, started in a temporary directory by the test and stopped when the
//! fixture is dropped.
//!
//! The TPM listens on a unix socket inside the fixture's own directory (no port to collide
//! with a parallel test); tpm2-pkcs11 keeps its token database (sqlite) in a `store/` beside it.
//! A process that uses the module is told where both are by environment variables
//! ([`TpmToken::env`]); [`TpmToken::rootcellar`] gives a `rootcellar` command with them set.
//!
//! Without a resource manager the TPM holds at most three transient objects, and a process
//! that exits (or a module call that fails) can leave some loaded: every command made here
//! first flushes them (`tpm2_flushcontext -t`), as a resource manager would.
//!
//! Other test binaries can use it with `#[path = "softhsm/tpm_token.rs"] mod tpm_token;`.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user PIN of the TPM test token.
pub const TPM_PIN: &str = "246810";
/// Its security officer PIN.
pub const TPM_SO_PIN: &str = "13579111";

/// Where Debian's libtpm2-pkcs11-1 puts the module.
pub fn tpm2_pkcs11_module() -> PathBuf {
    for candidate in [
        "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
        "/usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
        "/usr/lib/pkcs11/libtpm2_pkcs11.so",
    ] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "tpm2-pkcs11 is not installed (apt-get install libtpm2-pkcs11-1); `make test` installs it"
    );
}

/// A running software TPM with one initialised PKCS#11 token.
pub struct TpmToken {
    dir: tempfile::TempDir,
    swtpm: Child,
    socket: PathBuf,
    /// The PKCS#11 module to load (tpm2-pkcs11).
    pub module: PathBuf,
    /// The token's label.
    pub label: String,
    /// A file holding the user PIN ([`TPM_PIN`]), for `pin-source=` and answers files.
    pub pin_file: PathBuf,
}

impl TpmToken {
    /// Starts a TPM and makes a token labelled `label` on it; `None`, said on standard error,
    /// when this machine cannot run swtpm at all (it is installed, but will not start).
    pub fn start(label: &str) -> Option<Self> {
        let module = tpm2_pkcs11_module();
        assert!(
            which("swtpm") && which("tpm2_flushcontext") && which("pkcs11-tool"),
            "swtpm, tpm2-tools and opensc are needed (`make test` installs them: \
             scripts/install-deps.sh)"
        );
        let dir = tempfile::Builder::new()
            .prefix("tpm")
            .tempdir()
            .expect("temporary directory");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::create_dir(dir.path().join("store")).unwrap();
        let socket = dir.path().join("tpm.sock");
        let mut swtpm = Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .arg("--server")
            .arg(format!("type=unixio,path={}", socket.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}.ctrl", socket.display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("swtpm starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            if let Ok(Some(status)) = swtpm.try_wait() {
                let mut said = String::new();
                if let Some(mut stderr) = swtpm.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut stderr, &mut said);
                }
                eprintln!(
                    "SKIPPED: swtpm cannot run on this machine ({status}): {}",
                    said.trim()
                );
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "swtpm did not open its socket in 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let pin_file = dir.path().join("user.pin");
        std::fs::write(&pin_file, format!("{TPM_PIN}\n")).unwrap();
        let tpm = TpmToken {
            dir,
            swtpm,
            socket,
            module,
            label: label.to_string(),
            pin_file,
        };
        tpm.initialize_token();
        Some(tpm)
    }

    /// `C_InitToken` and `C_InitPIN` through OpenSC's pkcs11-tool (test PINs only).
    fn initialize_token(&self) {
        let module = self.module.to_str().unwrap();
        run_ok(self.pkcs11_tool().args([
            "--module",
            module,
            "--init-token",
            "--label",
            &self.label,
            "--so-pin",
            TPM_SO_PIN,
        ]));
        run_ok(self.pkcs11_tool().args([
            "--module",
            module,
            "--token-label",
            &self.label,
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            TPM_SO_PIN,
            "--init-pin",
            "--pin",
            TPM_PIN,
        ]));
    }

    /// The environment a process needs to reach this token through tpm2-pkcs11: the TPM's
    /// socket (TCTI), the token store, and the TSS's logging off (it writes to stderr).
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("TPM2_PKCS11_TCTI", self.tcti().into()),
            (
                "TPM2_PKCS11_STORE",
                self.dir.path().join("store").into_os_string(),
            ),
            ("TSS2_LOG", "all+NONE".into()),
        ]
    }

    fn tcti(&self) -> String {
        format!("swtpm:path={}", self.socket.display())
    }

    /// Flushes every transient object the TPM holds (see the module documentation).
    pub fn flush_transients(&self) {
        let out = Command::new("tpm2_flushcontext")
            .arg("-t")
            .env("TPM2TOOLS_TCTI", self.tcti())
            .env("TSS2_LOG", "all+NONE")
            .output()
            .expect("tpm2_flushcontext runs");
        assert!(
            out.status.success(),
            "tpm2_flushcontext: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The `rootcellar` binary with this token's environment and none that would point it
    /// elsewhere (as `common::rootcellar`; this file stands alone), run in the fixture's
    /// directory.
    pub fn rootcellar(&self) -> Command {
        self.flush_transients();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rootcellar"));
        for var in [
            "ROOTCELLAR_PKCS11_MODULE",
            "SOFTHSM2_CONF",
            "ROOTCELLAR_TEST_CRASH_AT",
            "ROOTCELLAR_STATE",
            "ROOTCELLAR_TTY",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(self.env()).current_dir(self.dir.path());
        cmd
    }

    /// OpenSC's `pkcs11-tool` with this token's environment (add `--module`).
    pub fn pkcs11_tool(&self) -> Command {
        self.flush_transients();
        let mut cmd = Command::new("pkcs11-tool");
        cmd.envs(self.env());
        cmd
    }

    /// A `pkcs11:` URI for the token (and key `object`, when given) with module and PIN file.
    pub fn uri(&self, object: Option<&str>) -> String {
        let object = object.map(|o| format!(";object={o}")).unwrap_or_default();
        format!(
            "pkcs11:token={}{object}?module-path={}&pin-source={}",
            self.label,
            self.module.display(),
            self.pin_file.display()
        )
    }

    /// A path inside the fixture's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for TpmToken {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.swtpm.kill();
        let _ = self.swtpm.wait();
    }
}

/// Runs `cmd`, which must succeed; on failure the assertion shows its output.
fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
