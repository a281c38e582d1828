//! A second, independent PKCS#11 token for tests: a software TPM 2.0 (`swtpm`) behind the
//! tpm2-pkcs11 module, started in a temporary directory by the test and stopped when the
//! fixture is dropped.
//!
//! The TPM listens on a unix socket inside the fixture's own directory (no port to collide
//! with a parallel test). In front of it runs a resource manager, `tpm2-abrmd`, on a D-Bus
//! session bus of the fixture's own, as the kernel's `/dev/tpmrm0` stands in front of a real
//! TPM: the TPM holds only three loaded objects, and tpm2-pkcs11 keeps each key it generates
//! or signs with loaded, so without one a ceremony runs out ("out of memory for object
//! contexts") within a process, and exited processes leave objects behind. tpm2-pkcs11 keeps
//! its token database (sqlite) in a `store/` beside them. A process that uses the module is
//! told where all this is by environment variables ([`TpmToken::env`]);
//! [`TpmToken::rootcellar`] gives a `rootcellar` command with them set.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::ok;

/// The user PIN of the TPM test token.
pub const TPM_PIN: &str = "246810";
/// Its security officer PIN.
pub const TPM_SO_PIN: &str = "13579111";

/// Debian's tpm2-abrmd (in sbin, which a user's PATH may lack).
const TPM2_ABRMD: &str = "/usr/sbin/tpm2-abrmd";

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
    /// swtpm, the D-Bus daemon and tpm2-abrmd, stopped in reverse order (declared first, so
    /// dropped before the directory they work in is removed).
    daemons: Daemons,
    dir: tempfile::TempDir,
    /// The PKCS#11 module to load (tpm2-pkcs11).
    pub module: PathBuf,
    /// The label of the token made at the start.
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
            ["swtpm", "dbus-daemon", "tpm2_getcap", "pkcs11-tool"]
                .into_iter()
                .all(which)
                && Path::new(TPM2_ABRMD).exists(),
            "swtpm, dbus-daemon, tpm2-abrmd, tpm2-tools and opensc are needed (`make test` \
             installs them: scripts/install-deps.sh)"
        );
        let dir = tempfile::Builder::new()
            .prefix("tpm")
            .tempdir()
            .expect("temporary directory");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::create_dir(dir.path().join("store")).unwrap();
        let socket = dir.path().join("tpm.sock");
        // Stopped when dropped, also when a step below panics: an orphaned daemon would outlive
        // the test (and keep a faketime'd run waiting for it).
        let mut daemons = Daemons(Vec::new());
        let mut swtpm = Command::new("swtpm");
        swtpm
            .arg("socket")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .arg("--server")
            .arg(format!("type=unixio,path={}", socket.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}.ctrl", socket.display()))
            .args(["--flags", "not-need-init,startup-clear"]);
        let log = |name: &str| dir.path().join(format!("{name}.log"));
        daemons.0.push(spawn(&mut swtpm, &log("swtpm")));
        if !wait_for(&mut daemons.0[0], "swtpm", &log("swtpm"), || {
            socket.exists()
        }) {
            eprintln!("SKIPPED: swtpm cannot run on this machine");
            return None;
        }
        let bus = dir.path().join("bus");
        daemons.0.push(spawn(
            Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--nopidfile"])
                .arg(format!("--address=unix:path={}", bus.display())),
            &log("dbus"),
        ));
        // Ready when it accepts a connection: the socket file appears at bind(), before
        // listen(), and a daemon connecting in between is refused (seen once in CI).
        assert!(
            wait_for(&mut daemons.0[1], "dbus-daemon", &log("dbus"), || {
                std::os::unix::net::UnixStream::connect(&bus).is_ok()
            }),
            "the D-Bus daemon would not start"
        );
        let bus_address = format!("unix:path={}", bus.display());
        let abrmd = || {
            spawn(
                Command::new(TPM2_ABRMD)
                    .args(["--session", "--allow-root", "--flush-all"])
                    .arg(format!("--tcti=swtpm:path={}", socket.display()))
                    .env("DBUS_SESSION_BUS_ADDRESS", &bus_address)
                    .env("TSS2_LOG", "all+NONE"),
                &log("abrmd"),
            )
        };
        daemons.0.push(abrmd());
        let ready = || {
            Command::new("tpm2_getcap")
                .arg("handles-transient")
                .env("TPM2TOOLS_TCTI", "tabrmd:bus_type=session")
                .env("DBUS_SESSION_BUS_ADDRESS", &bus_address)
                .env("TSS2_LOG", "all+NONE")
                .output()
                .is_ok_and(|out| out.status.success())
        };
        // tpm2-abrmd exits when the bus or swtpm was not yet taking connections as it started:
        // started again a few times before it is called unable to run.
        let mut attempts = 1;
        while !wait_for(&mut daemons.0[2], "tpm2-abrmd", &log("abrmd"), ready) {
            assert!(attempts < 3, "tpm2-abrmd would not start");
            attempts += 1;
            std::thread::sleep(Duration::from_millis(200));
            daemons.0[2] = abrmd();
        }
        let pin_file = dir.path().join("user.pin");
        std::fs::write(&pin_file, format!("{TPM_PIN}\n")).unwrap();
        let tpm = TpmToken {
            dir,
            daemons,
            module,
            label: label.to_string(),
            pin_file,
        };
        tpm.add_token(label);
        Some(tpm)
    }

    /// Makes another token labelled `label` on the same TPM, with the same PINs: `C_InitToken`
    /// in the free slot tpm2-pkcs11 always lists last, and `C_InitPIN`, through OpenSC's
    /// pkcs11-tool (test PINs only).
    pub fn add_token(&self, label: &str) {
        let module = self.module.to_str().unwrap();
        let listed = ok(self.pkcs11_tool().args(["--module", module, "-L"]));
        let slots = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter(|l| l.starts_with("Slot "))
            .count();
        assert!(slots > 0, "tpm2-pkcs11 lists no slot");
        ok(self.pkcs11_tool().args([
            "--module",
            module,
            "--slot-index",
            &(slots - 1).to_string(),
            "--init-token",
            "--label",
            label,
            "--so-pin",
            TPM_SO_PIN,
        ]));
        ok(self.pkcs11_tool().args([
            "--module",
            module,
            "--token-label",
            label,
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

    /// The environment a process needs to reach this token through tpm2-pkcs11: the resource
    /// manager (TCTI) and the bus it is on, the token store, and the TSS's logging off (it
    /// writes to stderr).
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("TPM2_PKCS11_TCTI", "tabrmd:bus_type=session".into()),
            (
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}", self.dir.path().join("bus").display()).into(),
            ),
            (
                "TPM2_PKCS11_STORE",
                self.dir.path().join("store").into_os_string(),
            ),
            ("TSS2_LOG", "all+NONE".into()),
        ]
    }

    /// `common::rootcellar` (no environment pointing elsewhere) with this token's environment,
    /// run in the fixture's directory.
    pub fn rootcellar(&self) -> Command {
        let mut cmd = crate::common::rootcellar();
        cmd.envs(self.env()).current_dir(self.dir.path());
        cmd
    }

    /// OpenSC's `pkcs11-tool` with this token's environment (add `--module`).
    pub fn pkcs11_tool(&self) -> Command {
        let mut cmd = Command::new("pkcs11-tool");
        cmd.envs(self.env());
        cmd
    }

    /// A `pkcs11:` URI for the token (and key `object`, when given) with module and PIN file.
    pub fn uri(&self, object: Option<&str>) -> String {
        self.uri_on(&self.label, object)
    }

    /// [`TpmToken::uri`] for another token of this TPM ([`TpmToken::add_token`]).
    pub fn uri_on(&self, token: &str, object: Option<&str>) -> String {
        let object = object.map(|o| format!(";object={o}")).unwrap_or_default();
        format!(
            "pkcs11:token={token}{object}?module-path={}&pin-source={}",
            self.module.display(),
            self.pin_file.display()
        )
    }

    /// A path inside the fixture's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The fixture's daemons (swtpm, the D-Bus daemon, tpm2-abrmd), stopped in reverse order when
/// dropped: our own children, by their handles.
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for daemon in self.0.iter_mut().rev() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }
}

/// Starts a daemon of the fixture's, what it says going to `log` (read when it fails to start;
/// a pipe nobody reads could fill and stop it).
fn spawn(command: &mut Command, log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("daemon log");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"))
}

/// Waits up to 20 s for `ready`; false, said on standard error with what the daemon wrote to
/// `log`, when `daemon` exits first.
fn wait_for(daemon: &mut Child, name: &str, log: &Path, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        if let Ok(Some(status)) = daemon.try_wait() {
            let said = std::fs::read_to_string(log).unwrap_or_default();
            eprintln!("{name} stopped ({status}): {}", said.trim());
            return false;
        }
        assert!(Instant::now() < deadline, "{name} was not ready in 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
