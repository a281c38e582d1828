//! Fixtures for tests against a real SoftHSM2 token created in a temporary directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The user PIN of every test token.
pub const PIN: &str = "246810";
/// The security officer PIN of every test token.
pub const SO_PIN: &str = "13579111";

/// A ceremony time for a test: this machine's clock, truncated to whole seconds (never ahead of
/// it: a certificate valid from the next second is "not yet valid" to openssl right after).
/// Tests sign at the clock (a signing time may not precede the build of rootcellar, nor be far
/// from the clock without being typed again) and check at the clock, or at a later time given
/// to the checkers (`tuf verify --time`, `import --time`, python-tuf's reference time) to see
/// what has expired by then; so they pass on any day they run.
pub fn clock_time() -> String {
    clock().to_string()
}

/// This machine's clock, truncated to whole seconds.
pub fn clock() -> jiff::Timestamp {
    jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("the clock is in range")
}

/// An answers file for an unattended rehearsal at `time` (with `time_again` when given): the
/// operator, two witnesses and custodians 1 to 4, every step confirmed.
pub fn answers_toml(time: &str, time_again: Option<&str>) -> String {
    let again = time_again
        .map(|t| format!("time_again = \"{t}\"\n"))
        .unwrap_or_default();
    format!(
        "time = \"{time}\"\n{again}confirm = true\n[present]\noperator = [\"Olga\"]\n\
         witness = [\"Wim\", \"Wanda\"]\ncustodian-1 = [\"Carol\"]\ncustodian-2 = [\"Chidi\"]\n\
         custodian-3 = [\"Cem\"]\ncustodian-4 = [\"Dana\"]\n"
    )
}

/// The clock shifted by `days` days of 24 hours, whole seconds, RFC 3339.
pub fn days_from_now(days: i64) -> String {
    clock()
        .checked_add(jiff::SignedDuration::from_hours(days * 24))
        .expect("in range")
        .to_string()
}

/// The arguments that make a signing command sign at `time` when it is further from the clock
/// than rootcellar's tolerance (10 minutes): `--time TIME --time-again TIME`, the time typed
/// again as the operator would.
pub fn time_typed_again(time: &str) -> [&str; 4] {
    ["--time", time, "--time-again", time]
}

/// The SoftHSM2 PKCS#11 module installed by the Debian package.
pub fn softhsm_module() -> PathBuf {
    for candidate in [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("SoftHSM2 is not installed (apt-get install softhsm2); `make test` installs it");
}

/// A SoftHSM2 configuration and token directory of its own, holding one or more tokens.
pub struct SoftHsm {
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub pin_file: PathBuf,
    pub module: PathBuf,
}

impl SoftHsm {
    /// A fresh SoftHSM2 with one initialised token labelled `label`.
    pub fn new(label: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let pin_file = dir.path().join("user.pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
        let hsm = SoftHsm {
            dir,
            conf,
            pin_file,
            module: softhsm_module(),
        };
        hsm.add_token(label);
        hsm
    }

    /// Initialises another token in the same SoftHSM2.
    pub fn add_token(&self, label: &str) {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                PIN,
                "--so-pin",
                SO_PIN,
            ])
            .output()
            .expect("softhsm2-util runs");
        assert!(
            out.status.success(),
            "softhsm2-util: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A `pkcs11:` URI for `token` (and `object`, when given), with module and PIN file.
    pub fn uri(&self, token: &str, object: Option<&str>) -> String {
        let object = object.map(|o| format!(";object={o}")).unwrap_or_default();
        format!(
            "pkcs11:token={token}{object}?module-path={}&pin-source={}",
            self.module.display(),
            self.pin_file.display()
        )
    }

    /// A `pkcs11:` URI like [`SoftHsm::uri`] whose PIN file holds `pin`.
    pub fn uri_with_pin(&self, token: &str, object: Option<&str>, pin: &str) -> String {
        let file = self.dir.path().join(format!("pin-{pin}"));
        std::fs::write(&file, pin).unwrap();
        self.uri(token, object).replace(
            &format!("pin-source={}", self.pin_file.display()),
            &format!("pin-source={}", file.display()),
        )
    }

    /// The `rootcellar` binary, pointed at this SoftHSM2.
    pub fn rootcellar(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rootcellar"));
        cmd.env("SOFTHSM2_CONF", &self.conf)
            .env_remove("ROOTCELLAR_PKCS11_MODULE")
            .current_dir(self.dir.path());
        cmd
    }

    /// Generates a key with the CLI and returns its URI (with module and PIN source).
    pub fn generate(&self, token: &str, label: &str, algorithm: &str) -> String {
        let out = ok(self.rootcellar().args([
            "key",
            "generate",
            &self.uri(token, Some(label)),
            "--algorithm",
            algorithm,
            "--json",
        ]));
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("key JSON");
        info["uri"].as_str().expect("uri in key JSON").to_string()
    }

    /// A path inside the fixture's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Runs a command that must succeed; on failure the assertion shows its output.
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command that must fail; returns its standard error.
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command starts");
    assert!(
        !out.status.success(),
        "{cmd:?} unexpectedly succeeded:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `openssl` with `args`, returning its output (success not required).
pub fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs")
}

/// The SHA-256 fingerprint of the public key in PEM file `pem` (of its SubjectPublicKeyInfo,
/// as openssl writes it), as the console shows it to be read aloud: `SHA256 a3f0 91bc …`.
pub fn openssl_fingerprint_read_aloud(pem: &Path) -> String {
    let der = openssl(&[
        "pkey",
        "-pubin",
        "-in",
        pem.to_str().unwrap(),
        "-outform",
        "DER",
    ]);
    assert!(
        der.status.success(),
        "{}",
        String::from_utf8_lossy(&der.stderr)
    );
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&der.stdout);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("SHA256 {}", rootcellar::readout::groups(&hex))
}

/// The rootcellar binary, with none of the environment a test process may carry that would
/// point it elsewhere (a module, a SoftHSM2 configuration, a crash point, a state, a terminal).
pub fn rootcellar() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rootcellar"));
    cmd.env_remove("ROOTCELLAR_PKCS11_MODULE")
        .env_remove("SOFTHSM2_CONF")
        .env_remove("ROOTCELLAR_TEST_CRASH_AT")
        .env_remove("ROOTCELLAR_STATE")
        .env_remove("ROOTCELLAR_TTY");
    cmd
}

/// `rootcellar ceremony run SCRIPT --rehearsal` with the state in `state`, the answers file
/// `answers`, the outputs into `out` and the request's inputs in `inputs`, if any.
pub fn rehearsal_command(
    script: &str,
    state: &Path,
    answers: &Path,
    inputs: Option<&Path>,
    out: &Path,
) -> Command {
    let mut cmd = rootcellar();
    cmd.args(["ceremony", "run"])
        .arg(repo_file(script))
        .arg("--rehearsal")
        .arg("--state")
        .arg(state)
        .arg("--answers")
        .arg(answers)
        .arg("--out")
        .arg(out);
    if let Some(dir) = inputs {
        cmd.arg("--inputs").arg(dir);
    }
    cmd
}

/// The SoftHSM2 tokens of a real root-init: the root CA's, the three custodians' and the
/// appliance's, each with [`PIN`].
pub fn root_init_tokens() -> SoftHsm {
    let hsm = SoftHsm::new("root-ca");
    for token in ["custodian-1", "custodian-2", "custodian-3", "appliance"] {
        hsm.add_token(token);
    }
    hsm
}

/// The answer an operator gives to the questions every ceremony asks (the time, names, a
/// step's confirmation code, a token's PIN), or `None` for another prompt. `time` is the
/// time read off the witnesses' watches.
pub fn usual_answer(prompt: &str, time: &str) -> Option<String> {
    if prompt.contains("type the correct UTC time") || prompt.starts_with("Confirm ") {
        Some(time.to_string())
    } else if prompt.starts_with("Name of operator 1") {
        Some("Olga Operator".into())
    } else if prompt.starts_with("Name of witness 1") {
        Some("Wim Witness".into())
    } else if prompt.starts_with("Name of witness 2") {
        Some("Wanda Witness".into())
    } else if let Some(custodian) = prompt
        .strip_prefix("Name of custodian-")
        .filter(|rest| rest.contains("(required)"))
    {
        // Each custodian role the script names has its own person.
        Some(format!("Custodian {}", &custodian[..1]))
    } else if prompt.starts_with("Name of ") {
        Some(String::new())
    } else if let Some(code) = prompt
        .strip_prefix("Type ")
        .and_then(|rest| rest.split_whitespace().next())
        .filter(|_| prompt.contains("to perform step"))
    {
        Some(code.to_string())
    } else if prompt.contains(": PIN of \"") {
        // A real ceremony: each token's holder types its PIN.
        Some(PIN.to_string())
    } else {
        None
    }
}

/// `openssl verify -x509_strict` of `cert` against the trust anchor `ca`.
pub fn openssl_verify(ca: &Path, cert: &Path) -> Output {
    openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
    ])
}

/// Writes an ECDSA private key and a CSR for `subject` made by openssl (the online side).
pub fn openssl_csr(dir: &Path, name: &str, curve: &str, subject: &str) -> PathBuf {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let out = openssl(&[
        "ecparam",
        "-name",
        curve,
        "-genkey",
        "-noout",
        "-out",
        key.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = openssl(&[
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        subject,
        "-out",
        csr.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    csr
}

/// A file of this repository.
pub fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The python-tuf reference client refreshes `repo` from its `metadata/1.root.json` and
/// downloads each of `targets`, whose bytes must match the file given.
pub fn python_tuf_accepts(repo: &Path, targets: &[&Path]) {
    if let Err(refusal) = python_tuf_check(repo, targets) {
        panic!("python-tuf refused: {refusal}");
    }
}

/// [`python_tuf_accepts`] as a result: what python-tuf said when it refused.
pub fn python_tuf_check(repo: &Path, targets: &[&Path]) -> Result<(), String> {
    let download = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(repo_file("tests/python/tuf_client.py"))
        .arg("--repo")
        .arg(repo)
        .arg("--root")
        .arg(repo.join("metadata/1.root.json"))
        .arg("--download-dir")
        .arg(download.path());
    for target in targets {
        cmd.arg(format!(
            "{}={}",
            target.file_name().unwrap().to_str().unwrap(),
            target.display()
        ));
    }
    let out = cmd.output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
