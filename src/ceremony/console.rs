//! The operator console of the appliance (`rootcellar ceremony console`): the image's identity
//! and clock, and a numbered menu of the ceremony scripts the image carries, each run as a
//! rehearsal or for real, with the request read from the sneakernet disk and the response
//! written back to it.
//!
//! Everything is line-based on one input and one output (the terminal init gives it: the screen
//! or a serial line), so a script can drive it as well as a person. Running a ceremony:
//!
//! 1. the state directory is settled, once per console: the given one, else the state disk
//!    (mounted by a command; the state then survives power-off), else, only when the operator
//!    types `ram`, a directory in RAM;
//! 2. if the script has inputs, the sneakernet disk is mounted, the request bundle (`*.rcb` of
//!    kind request at its top level) is verified against the requester keys pinned in
//!    `STATE/trust/requesters/` (with none pinned, the operator accepts the signer's key, found
//!    in a `*.pem` beside the bundle, by typing the first 8 characters of its fingerprint), its
//!    entries are extracted into the state, and the disk is unmounted;
//! 3. [`super::run`] runs (or resumes) the ceremony with the operator at the console;
//! 4. the disk is mounted again and `response.rcb`, the bundle key's public key and the
//!    transcript are copied to `rootcellar/INSTANCE/` on it, flushed, and the disk unmounted.
//!
//! A failure is shown and the menu comes back; choosing the ceremony again resumes it. A
//! completed ceremony's outputs can be delivered again (`d`), without signing anything again.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::prompter::Interactive;
use super::request::{extract_inputs, RequestError};
use super::runner::RunOptions;
use super::script::InputSpec;
use super::CeremonyError;
use crate::bundle::{Bundle, BundleError, BundleKind, Limits, PinnedKeys, VerifiedBundle};
use crate::keys::HsmConfig;
use crate::keys::PublicKey;

/// The script key that signs response bundles, when a script has one.
const BUNDLE_KEY: &str = "bundle-key";
/// The bundle key's public key as root-init delivers it (and as the console keeps it).
const BUNDLE_KEY_PEM: &str = "bundle-key.pub.pem";
/// In a console session's directory once its ceremony completed: the instance name, under
/// which the outputs are delivered.
const INSTANCE_FILE: &str = "instance";

/// How the console is set up (the image passes where its files are).
#[derive(Clone, Debug)]
pub struct ConsoleOptions {
    /// The image manifest, whose SHA-256 is the image identity shown in the header.
    pub manifest: Option<PathBuf>,
    /// The directory of ceremony scripts (`*.toml`).
    pub scripts: PathBuf,
    /// A state directory to use as it is (it is then the operator's responsibility to keep).
    pub state: Option<PathBuf>,
    /// The command that mounts the state disk, and where it mounts it; the state is then
    /// `DIR/rootcellar-state`.
    pub state_mount: Option<(Vec<String>, PathBuf)>,
    /// The state directory in RAM, used when there is no state disk and the operator agrees.
    pub ram_state: PathBuf,
    /// The sneakernet disk: where it is mounted, and the commands that mount and unmount it.
    pub media_dir: PathBuf,
    /// Mounts the sneakernet disk (waits for it).
    pub mount: Vec<String>,
    /// Flushes and unmounts the sneakernet disk.
    pub umount: Vec<String>,
    /// Held (a directory) while a ceremony runs, so that two consoles never run one at once.
    pub lock: PathBuf,
    /// Offer a shell (debug boots only).
    pub debug: bool,
    /// The shell command.
    pub shell: Vec<String>,
    /// The power-off command.
    pub poweroff: Vec<String>,
    /// The terminal's name, shown in the `console ready on …` line that ends each screen.
    pub terminal: Option<String>,
    /// What real ceremonies may reach of the HSMs; each ceremony opens its own provider from
    /// it (a rehearsal, one of its own) and drops it when it ends.
    pub hsm: HsmConfig,
}

/// Why a console action failed (shown to the operator; the menu comes back).
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The terminal could not be read or written: the console stops.
    #[error("console: {0}")]
    Terminal(#[source] std::io::Error),
    /// A mount, unmount, shell or power-off command failed.
    #[error("{command:?} {reason}")]
    Command {
        /// The command.
        command: String,
        /// What happened.
        reason: String,
    },
    /// No usable request bundle on the disk.
    #[error("{0}")]
    NoRequest(String),
    /// The request bundle was refused.
    #[error("request bundle {path} refused: {source}")]
    Refused {
        /// The bundle.
        path: PathBuf,
        /// The check that failed.
        #[source]
        source: Box<BundleError>,
    },
    /// The request is genuine but does not fit the ceremony's inputs.
    #[error("request bundle {path} does not fit: {source}; nothing was run")]
    Misfit {
        /// The bundle.
        path: PathBuf,
        /// What does not fit.
        #[source]
        source: Box<RequestError>,
    },
    /// The operator did not accept the requester's key.
    #[error("the requester's key SHA256:{0} was not accepted; nothing was run")]
    NotAccepted(String),
    /// Another console is running a ceremony.
    #[error("another console is running a ceremony ({0}); wait for it to finish")]
    Busy(String),
    /// The ceremony stopped.
    #[error(transparent)]
    Ceremony(Box<CeremonyError>),
    /// A file of the state or the disk could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl From<CeremonyError> for ConsoleError {
    fn from(error: CeremonyError) -> Self {
        ConsoleError::Ceremony(Box::new(error))
    }
}

fn refused(path: &Path) -> impl FnOnce(BundleError) -> ConsoleError + '_ {
    move |source| ConsoleError::Refused {
        path: path.to_path_buf(),
        source: Box::new(source),
    }
}

/// Makes a directory of its own for one console run of a ceremony: `NAME[-rehearsal]-STAMP`,
/// with `-2`, `-3`… when runs start within the same second (a rehearsal followed at once by
/// the real run). Created exclusively, so two runs never share inputs or outputs.
fn new_run_dir(sessions: &Path, name: &str, rehearsal: bool) -> Result<PathBuf, ConsoleError> {
    std::fs::create_dir_all(sessions).map_err(io_at(sessions))?;
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let mode = if rehearsal { "-rehearsal" } else { "" };
    for n in 1u32.. {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let dir = sessions.join(format!("{name}{mode}-{stamp}{suffix}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(ConsoleError::Io { path: dir, source }),
        }
    }
    unreachable!("u32 run numbers within one second are not exhausted")
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> ConsoleError + '_ {
    move |source| ConsoleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One entry of the menu: a ceremony script the image carries.
#[derive(Clone)]
struct Entry {
    path: PathBuf,
    name: String,
    title: String,
    inputs: Vec<InputSpec>,
    has_bundle_key: bool,
}

/// What the menu reads of a script: its header, its inputs and its keys' names. The rest (roles,
/// steps, outputs) is skipped unread; the whole script is parsed and checked when it is chosen.
#[derive(serde::Deserialize)]
struct MenuScript {
    ceremony: MenuHeader,
    #[serde(default)]
    inputs: Vec<InputSpec>,
    #[serde(default)]
    keys: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct MenuHeader {
    name: String,
    title: String,
}

/// The console on `input` and `output` until the input ends (init starts it again) or the
/// operator powers off.
pub fn console<R: BufRead, W: Write>(
    options: &ConsoleOptions,
    input: R,
    output: W,
) -> Result<(), ConsoleError> {
    Console {
        options,
        input,
        output,
        state: None,
        scripts: None,
    }
    .menu()
}

struct Console<'a, R, W> {
    options: &'a ConsoleOptions,
    input: R,
    output: W,
    /// Settled at the first ceremony, then fixed: a process keeps the PKCS#11 modules (and the
    /// rehearsal tokens' configuration) it has loaded.
    state: Option<(PathBuf, bool)>,
    /// The scripts offered and why others are not: read once (the image's root is read-only).
    scripts: Option<(Vec<Entry>, Vec<String>)>,
}

impl<R: BufRead, W: Write> Console<'_, R, W> {
    fn say(&mut self, text: &str) -> Result<(), ConsoleError> {
        writeln!(self.output, "{text}").map_err(ConsoleError::Terminal)?;
        self.output.flush().map_err(ConsoleError::Terminal)
    }

    /// A prompt and the line typed; `None` when the input has ended.
    fn ask(&mut self, prompt: &str) -> Result<Option<String>, ConsoleError> {
        super::typeahead::discard();
        write!(self.output, "{prompt}").map_err(ConsoleError::Terminal)?;
        self.output.flush().map_err(ConsoleError::Terminal)?;
        let mut line = String::new();
        if self
            .input
            .read_line(&mut line)
            .map_err(ConsoleError::Terminal)?
            == 0
        {
            return Ok(None);
        }
        Ok(Some(line.trim().to_string()))
    }

    fn menu(&mut self) -> Result<(), ConsoleError> {
        loop {
            let entries = self.header()?;
            let Some(choice) = self.ask("choice: ")? else {
                return Ok(());
            };
            let result = match choice.as_str() {
                "" => Ok(()),
                "p" => match self.ask("Power off the appliance? Type yes: ")? {
                    Some(answer) if answer == "yes" => {
                        self.say("powering off")?;
                        let command = self.options.poweroff.clone();
                        return run_command(&command).map(|_| ());
                    }
                    _ => Ok(()),
                },
                "d" => self.deliver_again(),
                "s" if self.options.debug => {
                    let command = self.options.shell.clone();
                    self.say("shell (debug boot); exit it to come back to the menu")?;
                    run_command(&command).map(|_| ())
                }
                number => match number
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1).and_then(|i| entries.into_iter().nth(i)))
                {
                    Some(entry) => self.choose_mode(&entry),
                    None => {
                        self.say(&format!("{number:?} is not on the menu"))?;
                        Ok(())
                    }
                },
            };
            match result {
                Ok(()) => {}
                Err(ConsoleError::Terminal(e)) => return Err(ConsoleError::Terminal(e)),
                Err(error) => {
                    let mut text = format!("error: {error}");
                    let mut source = std::error::Error::source(&error);
                    while let Some(cause) = source {
                        let cause_text = cause.to_string();
                        if !text.contains(&cause_text) {
                            text.push_str(&format!(": {cause_text}"));
                        }
                        source = cause.source();
                    }
                    self.say(&text)?;
                    self.say(
                        "(choose the ceremony again to retry; a ceremony resumes where it stopped)",
                    )?;
                }
            }
        }
    }

    /// Shows the identity, the clock, the state and the menu; returns the menu's ceremonies.
    fn header(&mut self) -> Result<Vec<Entry>, ConsoleError> {
        let identity = super::transcript::image_identity(self.options.manifest.as_deref());
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or(jiff::Timestamp::now());
        let state = match &self.state {
            None => "state: chosen when the first ceremony starts".to_string(),
            Some((dir, false)) => format!("state: {}", dir.display()),
            Some((dir, true)) => format!("state: {} (IN RAM: lost at power-off)", dir.display()),
        };
        let (entries, problems) = self
            .scripts
            .get_or_insert_with(|| list_scripts(&self.options.scripts))
            .clone();
        let mut text = format!(
            "\n== rootcellar appliance console (rootcellar {})\n{identity}\n\
             clock {now} (not trusted: each ceremony confirms the time with the witnesses)\n\
             {state}\n\n",
            env!("CARGO_PKG_VERSION")
        );
        for (i, entry) in entries.iter().enumerate() {
            text.push_str(&format!(
                "  {:>2}  {} ({}){}\n",
                i + 1,
                entry.title,
                entry.name,
                if !entry.inputs.is_empty() {
                    ", request from the sneakernet disk"
                } else {
                    ""
                }
            ));
        }
        for problem in problems {
            text.push_str(&format!("      not offered: {problem}\n"));
        }
        if self.options.debug {
            text.push_str("   s  shell (debug boot)\n");
        }
        text.push_str(
            "   d  deliver a completed ceremony's response to the sneakernet disk again\n",
        );
        text.push_str("   p  power off\n  Enter: show the clock again\nconsole ready");
        if let Some(terminal) = &self.options.terminal {
            text.push_str(&format!(" on {terminal}"));
        }
        self.say(&text)?;
        Ok(entries)
    }

    fn choose_mode(&mut self, entry: &Entry) -> Result<(), ConsoleError> {
        let prompt = format!(
            "{}: type r for a rehearsal (throwaway tokens), real for the real ceremony, Enter to go back: ",
            entry.name
        );
        // Anything else is asked again: a typo must neither start the wrong mode nor drop the
        // operator back at the menu unsaid.
        let rehearsal = loop {
            match self.ask(&prompt)?.as_deref() {
                Some("r") | Some("rehearsal") => break true,
                Some("real") => break false,
                Some("") | None => return Ok(()),
                Some(other) => self.say(&format!(
                    "{other:?} is not an answer here: r (or rehearsal), real, or Enter."
                ))?,
            }
        };
        // Every problem of the script, before the state or the stick is touched. The run goes
        // by the script as checked (the menu read only its header, inputs and keys).
        let script = super::check(&entry.path)?;
        let entry = &Entry {
            path: entry.path.clone(),
            inputs: script.inputs,
            has_bundle_key: script.keys.contains_key(BUNDLE_KEY),
            name: script.ceremony.name,
            title: script.ceremony.title,
        };
        let Some((state, volatile)) = self.settle_state()? else {
            return Ok(());
        };
        if volatile && !rehearsal {
            self.say(
                "WARNING: the state is in RAM: the journal and the ceremony's progress are lost \
                 at power-off (the response bundle still carries the journal segment).",
            )?;
            if self
                .ask("Type yes to run the real ceremony anyway: ")?
                .as_deref()
                != Some("yes")
            {
                return Ok(());
            }
        }
        let _lock = Lock::take(&self.options.lock)?;
        self.run_ceremony(entry, &state, rehearsal)
    }

    /// The state directory, settled once: given, else the state disk, else RAM when the
    /// operator agrees (`None`: back to the menu).
    fn settle_state(&mut self) -> Result<Option<(PathBuf, bool)>, ConsoleError> {
        if let Some(settled) = &self.state {
            return Ok(Some(settled.clone()));
        }
        let settled = if let Some(dir) = &self.options.state {
            (dir.clone(), false)
        } else {
            let mounted = match self.options.state_mount.clone() {
                Some((command, dir)) => {
                    self.say("looking for the state disk")?;
                    run_command(&command)
                        .ok()
                        .map(|_| dir.join("rootcellar-state"))
                }
                None => None,
            };
            match mounted {
                Some(dir) => (dir, false),
                None => {
                    self.say(&format!(
                        "WARNING: no state disk. The state (journal, ceremony progress, rehearsal \
                         tokens) would be kept in RAM, in {}, and lost at power-off.",
                        self.options.ram_state.display()
                    ))?;
                    let answer = self.ask(
                        "Type ram to keep the state in RAM, or Enter to go back (plug in the \
                         state disk, then choose the ceremony again): ",
                    )?;
                    if answer.as_deref() != Some("ram") {
                        return Ok(None);
                    }
                    (self.options.ram_state.clone(), true)
                }
            }
        };
        std::fs::create_dir_all(&settled.0).map_err(io_at(&settled.0))?;
        self.state = Some(settled.clone());
        Ok(Some(settled))
    }

    fn run_ceremony(
        &mut self,
        entry: &Entry,
        state: &Path,
        rehearsal: bool,
    ) -> Result<(), ConsoleError> {
        let session = new_run_dir(&state.join("console"), &entry.name, rehearsal)?;
        let ran = self.run_in(entry, state, rehearsal, &session);
        // A run that failed before it had outputs leaves nothing behind here (what it did is
        // in the ceremony's own state, which a later run resumes from).
        if ran.is_err() && !session.join("out").exists() {
            let _ = std::fs::remove_dir_all(&session);
        }
        ran
    }

    fn run_in(
        &mut self,
        entry: &Entry,
        state: &Path,
        rehearsal: bool,
        session: &Path,
    ) -> Result<(), ConsoleError> {
        let inputs = if !entry.inputs.is_empty() {
            let inputs = session.join("inputs");
            self.mount()?;
            let read = self.read_request(entry, &trust_dir(state, rehearsal), &inputs);
            self.umount()?;
            read?;
            Some(inputs)
        } else {
            None
        };
        let out = session.join("out");
        let options = RunOptions {
            script: entry.path.clone(),
            state: state.to_path_buf(),
            inputs,
            out: out.clone(),
            rehearsal,
            bundle_key: entry.has_bundle_key.then(|| BUNDLE_KEY.to_string()),
            hsm: self.options.hsm.clone(),
            image_manifest: self.options.manifest.clone(),
        };
        let report = {
            let mut prompter = Interactive::new(&mut self.input, &mut self.output);
            super::run(&options, &mut prompter)?
        };
        let instance = report
            .instance
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| entry.name.clone());
        // Kept for a later delivery of the same outputs (menu item d).
        let instance_file = session.join(INSTANCE_FILE);
        std::fs::write(&instance_file, &instance).map_err(io_at(&instance_file))?;
        self.deliver(state, &out, &instance)
    }

    /// Delivers the outputs of a ceremony completed at this appliance again: the stick was
    /// pulled out too early, or a second copy is wanted. Nothing is signed again; the response
    /// is checked against the bundle key as at the first delivery.
    fn deliver_again(&mut self) -> Result<(), ConsoleError> {
        let Some((state, _)) = self.settle_state()? else {
            return Ok(());
        };
        let sessions_dir = state.join("console");
        let mut completed: Vec<(PathBuf, String)> = Vec::new();
        if let Ok(read) = std::fs::read_dir(&sessions_dir) {
            for session in read.filter_map(|e| e.ok().map(|e| e.path())) {
                if let Ok(instance) = std::fs::read_to_string(session.join(INSTANCE_FILE)) {
                    completed.push((session.join("out"), instance.trim().to_string()));
                }
            }
        }
        completed.sort();
        if completed.is_empty() {
            self.say(&format!(
                "no completed ceremony in {}; nothing to deliver",
                sessions_dir.display()
            ))?;
            return Ok(());
        }
        for (i, (out, instance)) in completed.iter().enumerate() {
            let session = out.parent().and_then(Path::file_name).unwrap_or_default();
            self.say(&format!(
                "  {:>2}  {instance} (run {})",
                i + 1,
                session.to_string_lossy()
            ))?;
        }
        let answer = self
            .ask("Which ceremony's outputs? (Enter to go back): ")?
            .unwrap_or_default();
        match answer
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| completed.get(i).cloned())
        {
            Some((out, instance)) => self.deliver(&state, &out, &instance),
            None => Ok(()),
        }
    }

    fn mount(&mut self) -> Result<(), ConsoleError> {
        self.say("mounting the sneakernet disk")?;
        run_command(&self.options.mount).map(|_| ())
    }

    fn umount(&mut self) -> Result<(), ConsoleError> {
        run_command(&self.options.umount).map(|_| ())
    }

    /// Finds, verifies and extracts the request bundle for `entry` into `inputs`.
    fn read_request(
        &mut self,
        entry: &Entry,
        trust: &Path,
        inputs: &Path,
    ) -> Result<(), ConsoleError> {
        let media = self.options.media_dir.clone();
        let mut candidates = Vec::new();
        for path in files_with_suffix(&media, ".rcb")? {
            match Bundle::read_file(&path, &Limits::default(), None) {
                Err(source) => {
                    self.say(&format!("{} refused: {source}", path.display()))?;
                }
                Ok(bundle) if bundle.manifest().kind != BundleKind::Request => {}
                Ok(bundle) => match bundle.manifest().ceremony.as_deref() {
                    Some(other) if other != entry.name => {
                        self.say(&format!(
                            "{}: a request for {other}, not {}",
                            path.display(),
                            entry.name
                        ))?;
                    }
                    _ => candidates.push((path, bundle)),
                },
            }
        }
        let (path, bundle) = match candidates.len() {
            0 => {
                return Err(ConsoleError::NoRequest(format!(
                    "no usable request bundle (*.rcb, kind request) for {} on the sneakernet \
                     disk; nothing was run",
                    entry.name
                )))
            }
            1 => candidates.remove(0),
            _ => {
                for (i, (path, bundle)) in candidates.iter().enumerate() {
                    self.say(&format!(
                        "  {}  {} (id {}, created {})",
                        i + 1,
                        path.display(),
                        bundle.manifest().id,
                        bundle.manifest().created
                    ))?;
                }
                let answer = self.ask("Which request? ")?.unwrap_or_default();
                match answer
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=candidates.len()).contains(n))
                {
                    Some(n) => candidates.remove(n - 1),
                    None => return Err(ConsoleError::NoRequest("no request chosen".into())),
                }
            }
        };
        let verified = self.verify_request(&path, bundle, trust)?;
        let m = verified.manifest();
        self.say(&format!(
            "request {} verified: id {}, created {}, signed by SHA256:{}, {} entries",
            path.display(),
            m.id,
            m.created,
            verified.signer().fingerprint(),
            m.entries.len()
        ))?;
        for (info, _) in verified.entries() {
            self.say(&format!(
                "  {}  {} bytes  sha256:{}",
                info.name,
                info.length,
                hex::encode(info.sha256)
            ))?;
        }
        let placed =
            extract_inputs(&entry.name, &entry.inputs, &verified, inputs).map_err(|source| {
                ConsoleError::Misfit {
                    path: path.clone(),
                    source: Box::new(source),
                }
            })?;
        // Where a repository's files went is worth a line: their names alone do not say it.
        for (name, place) in placed
            .iter()
            .filter(|(name, place)| Path::new(name) != place)
        {
            self.say(&format!("  {name} -> {}", place.display()))?;
        }
        Ok(())
    }

    /// Verifies against the pinned requester keys; with none pinned, pins the signer's key
    /// (from a `*.pem` on the disk) once the operator has typed its fingerprint's start.
    fn verify_request(
        &mut self,
        path: &Path,
        bundle: Bundle,
        trust: &Path,
    ) -> Result<VerifiedBundle, ConsoleError> {
        let requesters = trust.join("requesters");
        let pinned = files_with_suffix(&requesters, ".pem")?;
        if !pinned.is_empty() {
            let pins = PinnedKeys::from_files(&pinned).map_err(refused(path))?;
            return bundle
                .verify(&pins)
                .and_then(|v| v.expect_kind(BundleKind::Request))
                .map_err(refused(path));
        }
        let signer = bundle.signer_key_id();
        let dir = path.parent().unwrap_or(Path::new("."));
        let key = files_with_suffix(dir, ".pem")?
            .iter()
            .filter_map(|p| PinnedKeys::read_pin(p).ok())
            .find(|k| k.fingerprint() == signer)
            .ok_or_else(|| {
                ConsoleError::NoRequest(format!(
                    "no requester key is pinned in {}, and no .pem file beside {} holds the \
                     signer's key SHA256:{signer}; nothing was run",
                    requesters.display(),
                    path.display()
                ))
            })?;
        self.say(&format!(
            "No requester key is pinned yet. The request is signed by the key with fingerprint\n  \
             SHA256:{signer}\nCompare it with the fingerprint the requester gave you out of band."
        ))?;
        let typed = self
            .ask("Type its first 8 characters to accept and pin this key, or Enter to refuse: ")?
            .unwrap_or_default();
        if typed.is_empty() || !signer.starts_with(&typed.to_ascii_lowercase()) || typed.len() != 8
        {
            return Err(ConsoleError::NotAccepted(signer));
        }
        let verified = bundle
            .verify(&PinnedKeys::new(vec![key.clone()]))
            .and_then(|v| v.expect_kind(BundleKind::Request))
            .map_err(refused(path))?;
        pin_requester(&requesters, &key)?;
        self.say(&format!(
            "pinned requester key SHA256:{signer} in {}",
            requesters.display()
        ))?;
        Ok(verified)
    }

    /// Copies the response, the bundle key's public key and the transcript to the disk.
    fn deliver(&mut self, state: &Path, out: &Path, instance: &str) -> Result<(), ConsoleError> {
        // The bundle key's public key comes out of root-init; later ceremonies send the kept copy.
        let trust = trust_dir(state, super::is_rehearsal_instance(instance));
        let kept = trust.join(BUNDLE_KEY_PEM);
        if out.join(BUNDLE_KEY_PEM).is_file() && !kept.exists() {
            std::fs::create_dir_all(&trust).map_err(io_at(&trust))?;
            std::fs::copy(out.join(BUNDLE_KEY_PEM), &kept).map_err(io_at(&kept))?;
        }
        let response = out.join("response.rcb");
        let mut files: Vec<PathBuf> = Vec::new();
        if response.is_file() {
            if kept.is_file() {
                let pins = PinnedKeys::from_files(&[&kept]).map_err(refused(&kept))?;
                Bundle::read_file(&response, &Limits::default(), None)
                    .and_then(|b| b.verify(&pins))
                    .map_err(refused(&response))?;
                self.say("response.rcb verified against the bundle key")?;
                files.push(kept.clone());
            } else {
                self.say(&format!(
                    "note: the bundle key's public key is not in {}; it was delivered by root-init",
                    kept.parent().unwrap_or(state).display()
                ))?;
            }
            files.push(response);
            files.push(out.join("transcript.md"));
            files.push(out.join("transcript.html"));
        } else {
            // No bundle key in the script: the outputs themselves go out.
            files = std::fs::read_dir(out)
                .map_err(io_at(out))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            files.sort();
        }
        self.mount()?;
        let copied = copy_out(&files, &self.options.media_dir.join("rootcellar"), instance);
        let unmounted = self.umount();
        let target = copied?;
        unmounted?;
        self.say(&format!(
            "delivered to the sneakernet disk: {} ({} files); the disk may be removed",
            target,
            files.len()
        ))
    }
}

/// Where the console keeps what it pins (the bundle key's public key, requester keys): a
/// rehearsal's apart from the real ones, so that pinning a throwaway token's key or a test
/// requester in a rehearsal never refuses the real ceremony.
fn trust_dir(state: &Path, rehearsal: bool) -> PathBuf {
    if rehearsal {
        state.join("rehearsal").join("trust")
    } else {
        state.join("trust")
    }
}

/// The scripts of `dir` whose header, inputs and keys parse, sorted by file name; and why the
/// others are not offered.
///
/// Only that much is read here: the whole script is parsed and checked (key URIs, TUF policies,
/// every step) when it is chosen, before anything is mounted or asked, and the run goes by the
/// script as checked. Checking all of them before the first screen cost a quarter of a second of
/// the appliance's boot under emulation, and deserializing every step of every script was a
/// sixth of the code the console still ran before its first screen (under emulation, running
/// code for the first time is what costs); the image build has already checked every script it
/// carries.
fn list_scripts(dir: &Path) -> (Vec<Entry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let paths = match files_with_suffix(dir, ".toml") {
        Ok(paths) => paths,
        Err(e) => return (entries, vec![e.to_string()]),
    };
    for path in paths {
        let menu = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|text| {
                toml::from_str::<MenuScript>(&text).map_err(|e| format!("{}: {e}", path.display()))
            });
        match menu {
            Ok(script) => entries.push(Entry {
                path,
                inputs: script.inputs,
                has_bundle_key: script.keys.contains_key(BUNDLE_KEY),
                name: script.ceremony.name,
                title: script.ceremony.title,
            }),
            Err(e) => problems.push(e.lines().next().unwrap_or("").to_string()),
        }
    }
    (entries, problems)
}

/// The regular files of `dir` whose names end in `suffix`, sorted (none if `dir` is absent).
fn files_with_suffix(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, ConsoleError> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io_at(dir)(e)),
    };
    let mut files: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(suffix) && !n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn pin_requester(dir: &Path, key: &PublicKey) -> Result<(), ConsoleError> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    let path = dir.join(format!("{}.pub.pem", &key.fingerprint()[..16]));
    crate::files::write_new(&path, key.spki_pem().as_bytes()).map_err(|e| ConsoleError::Io {
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Copies `files` into a new directory `base/NAME` (NAME-2, NAME-3… if taken), each file
/// flushed, then the directory; returns the directory.
fn copy_out(files: &[PathBuf], base: &Path, name: &str) -> Result<String, ConsoleError> {
    std::fs::create_dir_all(base).map_err(io_at(base))?;
    let mut target = base.join(name);
    let mut n = 2;
    while target.symlink_metadata().is_ok() {
        target = base.join(format!("{name}-{n}"));
        n += 1;
    }
    std::fs::create_dir(&target).map_err(io_at(&target))?;
    for file in files {
        let Some(file_name) = file.file_name() else {
            continue;
        };
        let dest = target.join(file_name);
        if file.is_dir() {
            copy_dir(file, &dest)?;
        } else {
            std::fs::copy(file, &dest).map_err(io_at(&dest))?;
            std::fs::File::open(&dest)
                .and_then(|f| f.sync_all())
                .map_err(io_at(&dest))?;
        }
    }
    // A directory fsync is not supported by every file system (FAT); the unmount flushes too.
    let _ = std::fs::File::open(&target).and_then(|f| f.sync_all());
    Ok(target.display().to_string())
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), ConsoleError> {
    std::fs::create_dir(to).map_err(io_at(to))?;
    for entry in std::fs::read_dir(from).map_err(io_at(from))? {
        let entry = entry.map_err(io_at(from))?;
        let dest = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest).map_err(io_at(&dest))?;
        }
    }
    Ok(())
}

/// Runs a command with the console's terminal; fails unless it exits 0.
fn run_command(command: &[String]) -> Result<std::process::ExitStatus, ConsoleError> {
    let text = command.join(" ");
    let (program, args) = command.split_first().ok_or_else(|| ConsoleError::Command {
        command: text.clone(),
        reason: "is empty".into(),
    })?;
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| ConsoleError::Command {
            command: text.clone(),
            reason: format!("could not start: {e}"),
        })?;
    if status.success() {
        Ok(status)
    } else {
        Err(ConsoleError::Command {
            command: text,
            reason: format!("failed ({status})"),
        })
    }
}

/// A directory held while a ceremony runs; a lock left by a dead process is taken over.
/// Held while a ceremony runs, so that two consoles never run one at once: an exclusive lock
/// (`flock`) on a file, which the kernel drops when the process ends however it ends. A
/// console killed mid-ceremony, or a power cut, leaves nothing to clear: the appliance has no
/// shell to clear a stale lock with, and a process id written down can be another process's
/// after a reboot.
struct Lock {
    _file: std::fs::File,
}

impl Lock {
    fn take(path: &Path) -> Result<Lock, ConsoleError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        // Earlier versions held a directory here, with the owner's process id in it.
        if path.is_dir() {
            std::fs::remove_dir_all(path).map_err(io_at(path))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_at(path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let owner = std::fs::read_to_string(path).unwrap_or_default();
                let owner = owner.trim();
                return Err(ConsoleError::Busy(if owner.is_empty() {
                    path.display().to_string()
                } else {
                    format!("process {owner}")
                }));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_at(path)(e)),
        }
        // Who holds it, for the message another console shows.
        use std::io::{Seek, Write as _};
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(std::io::SeekFrom::Start(0)))
            .and_then(|_| write!(file, "{}", std::process::id()));
        written.map_err(io_at(path))?;
        Ok(Lock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::new_run_dir;

    #[test]
    fn the_lock_is_held_once_and_released_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.lock");
        let held = super::Lock::take(&path).unwrap();
        let err = super::Lock::take(&path).err().expect("held already");
        assert!(
            err.to_string()
                .contains(&format!("process {}", std::process::id())),
            "{err}"
        );
        drop(held);
        super::Lock::take(&path).expect("released when dropped");
        // A directory left by an earlier version is replaced.
        let old = dir.path().join("old.lock");
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("pid"), "1").unwrap();
        super::Lock::take(&old).expect("an old lock directory is not a lock");
    }

    #[test]
    fn runs_started_in_the_same_second_get_their_own_directories() {
        let state = tempfile::tempdir().unwrap();
        let sessions = state.path().join("console");
        // Far more than one second's worth can take: every call makes a new directory.
        let dirs: Vec<_> = (0..5)
            .flat_map(|_| [false, true])
            .map(|rehearsal| new_run_dir(&sessions, "root-init", rehearsal).unwrap())
            .collect();
        let mut unique = dirs.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), dirs.len(), "{dirs:?}");
        for (dir, rehearsal) in dirs.iter().zip([false, true].iter().cycle()) {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            assert!(dir.is_dir(), "{name}");
            assert_eq!(
                name.starts_with("root-init-rehearsal-"),
                *rehearsal,
                "{name}"
            );
        }
    }
}
