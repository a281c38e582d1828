//! The step runner: confirm time and presence, then each step in turn, each recorded before the
//! next begins, so that a ceremony interrupted anywhere resumes where it stopped.
//!
//! State lives in `STATE/ceremonies/NAME-ID/`: `progress.jsonl` (the ceremony's own record,
//! appended and flushed to disk before anything it describes is reported done) and `work/`
//! (inputs and the outputs of completed steps). The instance id is derived from the script and
//! the inputs, so running the same ceremony on the same request again resumes it.
//!
//! A step runs in `work/.step-ID/` and its outputs are moved into `work/` only when it has
//! finished; its completion is then recorded with the SHA-256 of each output. On resume, a
//! completed step is skipped after its outputs are re-hashed; a step that began but was not
//! recorded as complete is redone from scratch, except that keys it generated (each recorded as
//! soon as the token made it) are adopted rather than generated again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::prompter::Prompter;
use super::quorum::{gather_pin, random_pin, split_pin, PinSet, PinSets};
use super::script::{Action, PinMode, Script, Step};
use super::transcript::{StepEntry, Transcript};
use super::CeremonyError;
use crate::journal::{Digest as JournalDigest, Journal, Record};
use crate::keys::yubihsm as yubihsm_keys;
use crate::keys::{self, KeyLocation, Pin, PinSource, Pkcs11Token};
use crate::time::{ConfirmedTime, TimePolicy};

/// How to run a ceremony.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The script.
    pub script: PathBuf,
    /// The appliance's state directory.
    pub state: PathBuf,
    /// A directory holding the request's entries (the inputs), if the script has inputs.
    pub inputs: Option<PathBuf>,
    /// Where to collect the outputs and the transcript; must not exist.
    pub out: PathBuf,
    /// Rehearsal: throwaway SoftHSM2 tokens, outputs marked as rehearsal.
    pub rehearsal: bool,
    /// A script key (by name) that signs the response bundle written with the outputs.
    pub bundle_key: Option<String>,
}

/// What a finished ceremony produced.
#[derive(Debug)]
pub struct CeremonyReport {
    /// The instance directory.
    pub instance: PathBuf,
    /// The output directory.
    pub out: PathBuf,
    /// Outputs with their SHA-256.
    pub outputs: BTreeMap<String, String>,
    /// Steps skipped because an earlier run completed them.
    pub resumed_steps: Vec<String>,
}

/// One line of `progress.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
enum Event {
    Start {
        time: jiff::Timestamp,
        present: BTreeMap<String, Vec<String>>,
        rehearsal: bool,
    },
    Resume {
        /// This run's confirmed time (named `clock` by rootcellar before 0.1.1).
        #[serde(alias = "clock")]
        time: jiff::Timestamp,
        present: BTreeMap<String, Vec<String>>,
    },
    Begin {
        step: String,
    },
    Key {
        step: String,
        name: String,
        uri: String,
        fingerprint: String,
    },
    Complete {
        step: String,
        outputs: BTreeMap<String, String>,
        details: Vec<String>,
        preview: Vec<String>,
    },
    Finish {
        outputs: BTreeMap<String, String>,
    },
}

/// The record of one ceremony instance.
struct Progress {
    path: PathBuf,
    events: Vec<Event>,
}

impl Progress {
    fn open(path: PathBuf) -> Result<Self, CeremonyError> {
        let state = |reason: String| CeremonyError::State {
            path: path.clone(),
            reason,
        };
        let events = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut events = Vec::new();
                let lines: Vec<&str> = text.split_inclusive('\n').collect();
                for (i, line) in lines.iter().enumerate() {
                    // A power cut can leave the last line unterminated: it was never reported
                    // done, so it is dropped. Anything else unreadable is refused.
                    if !line.ends_with('\n') && i + 1 == lines.len() {
                        break;
                    }
                    events.push(
                        serde_json::from_str(line)
                            .map_err(|e| state(format!("line {}: {e}", i + 1)))?,
                    );
                }
                events
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(state(e.to_string())),
        };
        Ok(Progress { path, events })
    }

    fn record(&mut self, event: Event) -> Result<(), CeremonyError> {
        let io = |e: std::io::Error| CeremonyError::State {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let mut line = serde_json::to_string(&event).expect("events serialise");
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        // Drop an unterminated tail left by a crash before appending after it.
        let len = file.metadata().map_err(io)?.len();
        let text = std::fs::read(&self.path).map_err(io)?;
        if len > 0 && text.last() != Some(&b'\n') {
            let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            file.set_len(keep as u64).map_err(io)?;
        }
        file.write_all(line.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        self.events.push(event);
        Ok(())
    }

    fn completed(&self) -> BTreeMap<&str, &Event> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Complete { step, .. } => Some((step.as_str(), e)),
                _ => None,
            })
            .collect()
    }

    /// The confirmed time and mode of the run that started this ceremony.
    fn started(&self) -> Option<(jiff::Timestamp, bool)> {
        self.events.iter().find_map(|e| match e {
            Event::Start {
                time, rehearsal, ..
            } => Some((*time, *rehearsal)),
            _ => None,
        })
    }

    fn generated_key(&self, step: &str, name: &str) -> Option<(&str, &str)> {
        self.events.iter().find_map(|e| match e {
            Event::Key {
                step: s,
                name: n,
                uri,
                fingerprint,
            } if s == step && n == name => Some((uri.as_str(), fingerprint.as_str())),
            _ => None,
        })
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    Ok(hex::encode(Sha256::digest(std::fs::read(path)?)))
}

/// SHA-256 of a file, or of a directory's files (sorted relative paths and contents).
fn sha256_tree(path: &Path) -> std::io::Result<String> {
    if path.is_file() {
        return sha256_file(path);
    }
    let mut files = Vec::new();
    collect_files(path, path, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    for relative in files {
        let digest = sha256_file(&path.join(&relative))?;
        hasher.update(format!("{digest}  {}\n", relative.display()));
    }
    Ok(hex::encode(hasher.finalize()))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_file() {
        std::fs::copy(from, to)?;
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        copy_tree(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}

/// A test hook: `ROOTCELLAR_TEST_CRASH_AT=STEP:POINT` aborts the process at that point, as a
/// power cut would. Points: `before` (after the step is recorded as begun), `after-hsm` (after
/// the token has done its work, before the outputs are in place), `after-outputs` (outputs in
/// place, completion not yet recorded), and `after-key-NAME` inside a key generation step; and
/// `deliver:before`, every step done, before the outputs are checked and delivered.
fn crash_point(step: &str, point: &str) {
    if let Ok(at) = std::env::var("ROOTCELLAR_TEST_CRASH_AT") {
        if at == format!("{step}:{point}") {
            eprintln!("rootcellar: test hook: aborting at {at}");
            std::process::abort();
        }
    }
}

/// Everything a step needs while it runs.
struct Context<'a> {
    script: &'a Script,
    work: PathBuf,
    /// This run's confirmed time: what every step of this run signs at. (A resumed ceremony's
    /// earlier steps keep the time of the run that did them.)
    time: ConfirmedTime,
    rehearsal: bool,
    prompter: &'a mut dyn Prompter,
    unlocked: BTreeSet<String>,
    pin_files: BTreeMap<String, PathBuf>,
    /// PINs used to unlock tokens in this run, by token label (a PIN split needs the old one).
    pins: BTreeMap<String, Arc<Pin>>,
    pin_sets: PinSets,
    /// Where rehearsal shares are kept (rehearsal only).
    rehearsal_shares: Option<PathBuf>,
    /// The appliance's audit journal: every step and key generation is recorded in it before
    /// the ceremony moves on.
    journal: Journal,
    /// The instance id, as the journal names the ceremony.
    instance: String,
    /// The operator, as the journal names the actor.
    operator: String,
    /// The YubiHSM2 devices unlocked in this run, by device name, with the last entry of
    /// their audit log when first unlocked: the ceremony's share of the log starts after it.
    yubihsms: BTreeMap<String, (KeyLocation, Option<u16>)>,
}

impl Context<'_> {
    fn journal(
        &self,
        action: &str,
        detail: String,
        inputs: Vec<JournalDigest>,
        outputs: Vec<JournalDigest>,
    ) -> Result<(), CeremonyError> {
        let mut record = Record::new(self.time, self.operator.clone(), action)
            .ceremony(self.instance.clone())
            .detail(detail);
        for digest in inputs {
            record = record.input(digest);
        }
        for digest in outputs {
            record = record.output(digest);
        }
        self.journal.append(record)?;
        Ok(())
    }
}

/// A journal digest from a hex SHA-256 (of a file, or of a directory's listing).
fn journal_digest(name: &str, hex_digest: &str) -> JournalDigest {
    let mut sha256 = [0u8; 32];
    if let Ok(bytes) = hex::decode(hex_digest) {
        if bytes.len() == 32 {
            sha256.copy_from_slice(&bytes);
        }
    }
    JournalDigest {
        name: name.to_string(),
        sha256,
    }
}

impl Context<'_> {
    /// Where a script key lives, as this machine reaches it.
    fn key_uri(&self, name: &str) -> Result<KeyLocation, CeremonyError> {
        Ok(KeyLocation::parse(&self.script.keys[name].uri)?)
    }

    /// Logs in to the device holding `name` (a PKCS#11 token, or a YubiHSM2's authentication
    /// key), asking for its secret the way the script says: typed by its holder, or rebuilt
    /// from a quorum of custodians' shares once the secret was split.
    fn unlock(&mut self, name: &str) -> Result<(), CeremonyError> {
        let location = self.key_uri(name)?;
        let token = location.device();
        if self.unlocked.contains(&token) {
            return Ok(());
        }
        let spec = &self.script.keys[name];
        let split = self.pin_sets.get(&token).cloned();
        // A split recorded as pending may not have reached the token (a crash between the two):
        // its old secret is then still the one that works.
        let mut pin = None;
        if let Some(set) = split.as_ref().filter(|s| s.pending) {
            let rebuilt = Arc::new(gather_pin(
                self.prompter,
                &token,
                set,
                &self.script.roles.custodians,
                self.rehearsal_shares.as_deref(),
            )?);
            match location.log_in(&rebuilt) {
                Ok(()) => {
                    let mut confirmed = set.clone();
                    confirmed.pending = false;
                    self.pin_sets.put(&token, confirmed)?;
                    pin = Some(rebuilt);
                }
                Err(e) if e.is_wrong_secret() => {
                    self.prompter.say(&format!(
                        "The split of {token:?} never took effect; its previous {} is used.",
                        location.secret_name()
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let pin = match pin {
            Some(pin) => pin,
            None => {
                let split = split.filter(|s| !s.pending);
                let pin = match (&split, self.pin_files.get(&token)) {
                    (Some(set), _) => gather_pin(
                        self.prompter,
                        &token,
                        set,
                        &self.script.roles.custodians,
                        self.rehearsal_shares.as_deref(),
                    )?,
                    (None, Some(file)) => PinSource::File(file.clone()).read(&token)?,
                    (None, None) => {
                        let holder = match (spec.pin, &spec.holder) {
                            // Before its first split, a quorum token still has the secret it
                            // was set up with.
                            (PinMode::Shares, _) => {
                                format!("operator (the initial {})", location.secret_name())
                            }
                            (PinMode::Prompt, Some(holder)) => holder.clone(),
                            (PinMode::Prompt, None) => "operator".to_string(),
                        };
                        Pin::new(self.prompter.pin(&token, location.secret_name(), &holder)?)
                    }
                };
                let pin = Arc::new(pin);
                location.log_in(&pin)?;
                pin
            }
        };
        self.pins.insert(token.clone(), pin);
        if let Some(device) = location.yubihsm()? {
            let last = yubihsm_keys::audit_log(&device)?
                .entries
                .last()
                .map(|e| e.item);
            self.yubihsms.insert(token.clone(), (location, last));
        }
        self.unlocked.insert(token);
        Ok(())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }
}

/// The instance directory name: the ceremony's name and a digest of the script and inputs.
fn instance_id(script: &Script, inputs: Option<&Path>) -> Result<String, CeremonyError> {
    let mut hasher = Sha256::new();
    let script_bytes =
        std::fs::read(&script.path).map_err(|e| CeremonyError::ScriptUnreadable {
            path: script.path.clone(),
            reason: e.to_string(),
        })?;
    hasher.update(&script_bytes);
    if let Some(dir) = inputs {
        for input in &script.inputs {
            let path = dir.join(&input.name);
            let digest = sha256_tree(&path).map_err(|_| CeremonyError::MissingInput {
                name: input.name.clone(),
                dir: dir.to_path_buf(),
            })?;
            hasher.update(format!("{} {digest}\n", input.name));
        }
    }
    Ok(format!(
        "{}-{}",
        script.ceremony.name,
        &hex::encode(hasher.finalize())[..12]
    ))
}

/// Closes every token session when dropped: a ceremony logs in to the tokens it uses, and out
/// of them when it ends, however it ends.
struct LogOutAtEnd;

impl Drop for LogOutAtEnd {
    fn drop(&mut self) {
        keys::close_all_sessions();
    }
}

/// Runs (or resumes) the ceremony described by `options.script`.
pub fn run(
    options: &RunOptions,
    prompter: &mut dyn Prompter,
) -> Result<CeremonyReport, CeremonyError> {
    let mut script = super::check(&options.script)?;
    if !script.inputs.is_empty() && options.inputs.is_none() {
        return Err(CeremonyError::MissingInput {
            name: script.inputs[0].name.clone(),
            dir: PathBuf::from("(no request given)"),
        });
    }
    crate::files::ensure_absent([options.out.as_path()])?;
    let instance = options
        .state
        .join("ceremonies")
        .join(instance_id(&script, options.inputs.as_deref())?);
    let work = instance.join("work");
    let state_error = |reason: String| CeremonyError::State {
        path: instance.clone(),
        reason,
    };
    let mut progress = Progress::open(instance.join("progress.jsonl"))?;
    let journal = Journal::open(&options.state)?;
    let instance_name = instance
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if progress
        .events
        .iter()
        .any(|e| matches!(e, Event::Finish { .. }))
    {
        return Err(state_error(
            "this ceremony has already been completed; its outputs were delivered".into(),
        ));
    }

    prompter.say(&format!(
        "== {} ({})",
        script.ceremony.title, script.ceremony.name
    ));
    if !script.ceremony.summary.is_empty() {
        prompter.say(&script.ceremony.summary);
    }
    if options.rehearsal {
        prompter.say("** REHEARSAL: throwaway tokens; outputs are marked as rehearsal **");
    }

    // The time and the people present: confirmed at the start, again on resume.
    let policy = script
        .ceremony
        .clock_tolerance_minutes
        .map(TimePolicy::minutes)
        .unwrap_or_default();
    let time = super::confirm_time::confirm(prompter, &journal, policy)?;
    let mut present = BTreeMap::new();
    present.insert("operator".to_string(), prompter.names("operator", 1)?);
    present.insert(
        "witness".to_string(),
        prompter.names("witness", script.roles.witnesses)?,
    );
    for custodian in &script.roles.custodians {
        present.insert(custodian.clone(), prompter.names(custodian, 0)?);
    }
    // Only now, with the time confirmed, does the ceremony leave a trace in the state.
    std::fs::create_dir_all(&work).map_err(|e| state_error(e.to_string()))?;
    let (time, rehearsal) = match progress.started() {
        Some((original, rehearsal)) => {
            if rehearsal != options.rehearsal {
                return Err(state_error(
                    "this ceremony was started in the other mode (rehearsal vs production)".into(),
                ));
            }
            prompter.say(&format!(
                "Resuming the ceremony begun at {original}: the steps done then keep that time; \
                 what is signed from now on is dated {time}."
            ));
            journal.append(
                Record::new(time, present["operator"].join(", "), "ceremony.resume")
                    .ceremony(instance_name.clone())
                    .detail(format!(
                        "begun at {original}; {}; present: {}",
                        time.note(),
                        present_text(&present)
                    )),
            )?;
            progress.record(Event::Resume {
                time: time.timestamp(),
                present: present.clone(),
            })?;
            (time, rehearsal)
        }
        None => {
            if let Some(dir) = &options.inputs {
                for input in &script.inputs {
                    let target = work.join(&input.name);
                    if !target.exists() {
                        copy_tree(&dir.join(&input.name), &target).map_err(|e| {
                            state_error(format!("copying input {}: {e}", input.name))
                        })?;
                    }
                }
            }
            journal.append(
                Record::new(time, present["operator"].join(", "), "ceremony.start")
                    .ceremony(instance_name.clone())
                    .detail(format!(
                        "{}{}; {}; present: {}",
                        script.ceremony.name,
                        if options.rehearsal {
                            " (rehearsal)"
                        } else {
                            ""
                        },
                        time.note(),
                        present_text(&present)
                    )),
            )?;
            progress.record(Event::Start {
                time: time.timestamp(),
                present: present.clone(),
                rehearsal: options.rehearsal,
            })?;
            (time, options.rehearsal)
        }
    };

    let pin_sets = PinSets::load(&options.state)?;
    // Whatever happens from here, the tokens are logged out when the ceremony ends (and a
    // rehearsal's environment put back).
    let _log_out = LogOutAtEnd;
    let (pin_files, _rehearsal_environment) = if rehearsal {
        let (files, environment) = super::rehearsal::prepare_tokens(&options.state, &mut script)?;
        (files, Some(environment))
    } else {
        (BTreeMap::new(), None)
    };
    let mut context = Context {
        script: &script,
        work: work.clone(),
        time,
        rehearsal,
        prompter,
        unlocked: BTreeSet::new(),
        pin_files,
        pins: BTreeMap::new(),
        pin_sets,
        rehearsal_shares: rehearsal.then(|| options.state.join("rehearsal").join("shares")),
        journal,
        instance: instance_name,
        operator: present["operator"].join(", "),
        yubihsms: BTreeMap::new(),
    };
    let mut transcript = Transcript::new(&script, &instance, time, &present, rehearsal);
    if let Some((begun, _)) = progress.started() {
        transcript.resumed_from(begun);
    }
    let mut resumed = Vec::new();

    for step in &script.steps {
        if let Some(Event::Complete {
            outputs,
            details,
            preview,
            ..
        }) = progress.completed().get(step.id.as_str()).copied()
        {
            for (name, digest) in outputs {
                let actual =
                    sha256_tree(&work.join(name)).map_err(|e| state_error(e.to_string()))?;
                if &actual != digest {
                    return Err(state_error(format!(
                        "output {name} of completed step {} was altered since it was recorded",
                        step.id
                    )));
                }
            }
            context.prompter.say(&format!(
                "-- step {}: already completed, outputs verified",
                step.id
            ));
            transcript.step(StepEntry {
                id: step.id.clone(),
                title: step.title.clone(),
                preview: preview.clone(),
                outputs: outputs.clone(),
                details: details.clone(),
                resumed: true,
            });
            resumed.push(step.id.clone());
            continue;
        }
        let entry = run_step(&mut context, &mut progress, step)?;
        transcript.step(entry);
    }

    // A resumed ceremony may deliver what an earlier run signed: nothing expired goes out.
    for name in &script.outputs {
        refuse_expired_repository(&work.join(name), name, context.time)?;
    }

    crash_point("deliver", "before");

    // Collect the outputs and the transcript into a new directory, atomically.
    let mut outputs = BTreeMap::new();
    let staging = options.out.with_file_name(format!(
        ".tmp-{}",
        options
            .out
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| state_error(e.to_string()))?;
    for name in &script.outputs {
        copy_tree(&work.join(name), &staging.join(name)).map_err(|e| state_error(e.to_string()))?;
        outputs.insert(
            name.clone(),
            sha256_tree(&work.join(name)).map_err(|e| state_error(e.to_string()))?,
        );
    }
    record_device_audits(&mut context, &mut transcript, &staging)?;
    transcript.finish(&outputs);
    transcript.journal_head(context.journal.head()?.to_string());
    std::fs::write(staging.join("transcript.md"), transcript.markdown())
        .map_err(|e| state_error(e.to_string()))?;
    std::fs::write(staging.join("transcript.html"), transcript.html())
        .map_err(|e| state_error(e.to_string()))?;
    if let Some(key) = &options.bundle_key {
        let bundle = response_bundle(&mut context, &script, key, &staging)?;
        crate::files::write_new(&staging.join("response.rcb"), &bundle)?;
    }
    crate::files::ensure_absent([options.out.as_path()])?;
    std::fs::rename(&staging, &options.out).map_err(|e| state_error(e.to_string()))?;
    context.journal(
        "ceremony.finish",
        format!("outputs delivered to {}", options.out.display()),
        vec![],
        outputs.iter().map(|(n, d)| journal_digest(n, d)).collect(),
    )?;
    progress.record(Event::Finish {
        outputs: outputs.clone(),
    })?;
    context.prompter.say(&format!(
        "== ceremony complete: outputs and transcript in {}",
        options.out.display()
    ));
    Ok(CeremonyReport {
        instance,
        out: options.out.clone(),
        outputs,
        resumed_steps: resumed,
    })
}

fn present_text(present: &BTreeMap<String, Vec<String>>) -> String {
    present
        .iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(role, names)| format!("{role}: {}", names.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a step will do, shown before it runs.
fn preview(context: &mut Context<'_>, step: &Step) -> Result<Vec<String>, CeremonyError> {
    let mut lines = Vec::new();
    for read in step.action.reads() {
        let digest =
            sha256_tree(&context.path(&read)).map_err(|_| CeremonyError::MissingInput {
                name: read.clone(),
                dir: context.work.clone(),
            })?;
        lines.push(format!("reads {read}: SHA-256 {digest}"));
    }
    for name in step.action.key_names() {
        let spec = &context.script.keys[name];
        let location = KeyLocation::parse(&spec.uri)?;
        lines.push(format!("uses key {name}: {}", location.without_query()));
    }
    match &step.action {
        Action::RootCertificate { subject, days, .. } => {
            lines.push(format!(
                "subject {}, valid {days} days from {}",
                subject_for(context, subject),
                context.time
            ));
        }
        Action::Intermediate { profile, days, .. } => {
            lines.push(format!(
                "profile {profile}, valid {} days from {}",
                days.map(|d| d.to_string()).unwrap_or("default".into()),
                context.time
            ));
        }
        _ => {}
    }
    for write in step.action.writes() {
        lines.push(format!("writes {write}"));
    }
    Ok(lines)
}

/// Rehearsal outputs say so in their subject, so they cannot pass for production.
fn subject_for(context: &Context<'_>, subject: &str) -> String {
    if context.rehearsal {
        format!("{subject},OU=REHEARSAL - NOT FOR PRODUCTION")
    } else {
        subject.to_string()
    }
}

fn step_error(
    step: &Step,
) -> impl Fn(Box<dyn std::error::Error + Send + Sync>) -> CeremonyError + '_ {
    move |source| CeremonyError::Step {
        step: step.id.clone(),
        source,
    }
}

fn run_step(
    context: &mut Context<'_>,
    progress: &mut Progress,
    step: &Step,
) -> Result<StepEntry, CeremonyError> {
    context
        .prompter
        .say(&format!("-- step {}: {}", step.id, step.title));
    let preview = preview(context, step)?;
    for line in &preview {
        context.prompter.say(&format!("   {line}"));
    }
    let code = hex::encode(Sha256::digest(preview.join("\n").as_bytes()))[..8].to_string();
    context.prompter.confirm_step(&step.id, &code)?;
    // Every key a step names is unlocked, including those a TUF step only needs the public
    // half of: the token session is how the key's public half is read and matched.
    for name in step.action.key_names() {
        context.unlock(name)?;
    }
    context.journal("ceremony.step.begin", step.id.clone(), vec![], vec![])?;
    progress.record(Event::Begin {
        step: step.id.clone(),
    })?;
    crash_point(&step.id, "before");

    // A step that began before a crash starts over in a clean scratch directory, and any of its
    // outputs that were moved into place are removed: they were never recorded.
    let scratch = context.work.join(format!(".step-{}", step.id));
    let _ = std::fs::remove_dir_all(&scratch);
    for write in step.action.writes() {
        let path = context.path(&write);
        if path.is_dir() {
            let _ = std::fs::remove_dir_all(&path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
    std::fs::create_dir_all(&scratch).map_err(|e| step_error(step)(Box::new(e)))?;

    let details = execute(context, progress, step, &scratch)?;
    crash_point(&step.id, "after-hsm");

    let mut outputs = BTreeMap::new();
    for write in step.action.writes() {
        std::fs::rename(scratch.join(&write), context.path(&write))
            .map_err(|e| step_error(step)(Box::new(e)))?;
        let digest =
            sha256_tree(&context.path(&write)).map_err(|e| step_error(step)(Box::new(e)))?;
        outputs.insert(write, digest);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    crash_point(&step.id, "after-outputs");
    let mut inputs = Vec::new();
    for read in step.action.reads() {
        let digest =
            sha256_tree(&context.path(&read)).map_err(|e| step_error(step)(Box::new(e)))?;
        inputs.push(journal_digest(&read, &digest));
    }
    context.journal(
        "ceremony.step",
        format!("{}: {}", step.id, details.join("; ")),
        inputs,
        outputs.iter().map(|(n, d)| journal_digest(n, d)).collect(),
    )?;
    progress.record(Event::Complete {
        step: step.id.clone(),
        outputs: outputs.clone(),
        details: details.clone(),
        preview: preview.clone(),
    })?;
    for line in &details {
        context.prompter.say(&format!("   done: {line}"));
    }
    Ok(StepEntry {
        id: step.id.clone(),
        title: step.title.clone(),
        preview,
        outputs,
        details,
        resumed: false,
    })
}

/// Hands each custodian their share: shown once at the console, or in rehearsal kept under
/// `STATE/rehearsal/shares/GROUP/SET/`.
fn deliver_shares(
    context: &mut Context<'_>,
    group: &str,
    set_id: &str,
    custodians: &[String],
    shares: &[crate::keys::Share],
) -> Result<(), CeremonyError> {
    for (custodian, share) in custodians.iter().zip(shares) {
        match &context.rehearsal_shares {
            Some(dir) => {
                let dir = dir.join(group).join(set_id);
                std::fs::create_dir_all(&dir).map_err(|e| CeremonyError::State {
                    path: dir.clone(),
                    reason: e.to_string(),
                })?;
                crate::files::write_new(
                    &dir.join(format!("{custodian}.share")),
                    share.to_text().as_bytes(),
                )?;
            }
            None => context.prompter.show_share(custodian, &share.to_text())?,
        }
    }
    Ok(())
}

/// Reads the audit log of every YubiHSM2 the ceremony used, and records what it says happened
/// during this run in the journal (with the full log beside the outputs, as
/// `DEVICE.audit-log.json`) and in the transcript, next to the number of signatures
/// rootcellar asked for; then marks the entries read, so that a device in force-audit mode
/// keeps working. Recorded before marked: an entry is never released unrecorded.
fn record_device_audits(
    context: &mut Context<'_>,
    transcript: &mut Transcript,
    staging: &Path,
) -> Result<(), CeremonyError> {
    for (name, (location, start)) in context.yubihsms.clone() {
        let Some(device) = location.yubihsm()? else {
            continue;
        };
        let log = yubihsm_keys::audit_log(&device)?;
        let summary = match start {
            Some(item) => log.summary_after(item),
            None => log.summary(),
        };
        let requested = device.signatures_requested();
        let signed = summary
            .operations
            .get("sign-ecdsa")
            .copied()
            .unwrap_or_default();
        let file = format!("{name}.audit-log.json");
        let json = serde_json::to_vec_pretty(&log.to_json()).expect("plain data serializes");
        crate::files::write_new(&staging.join(&file), &json)?;
        context.journal(
            "yubihsm.audit",
            format!(
                "{name}: device log entries {}..{} (chain {}), sign-ecdsa {} succeeded / {} failed; rootcellar asked for {requested} signature(s)",
                summary.first_item.map_or("-".into(), |i| i.to_string()),
                summary.last_item.map_or("-".into(), |i| i.to_string()),
                if summary.chain_intact { "intact" } else { "BROKEN" },
                signed.succeeded,
                signed.failed,
            ),
            vec![],
            vec![JournalDigest::of(file, &json)],
        )?;
        transcript.device_audit(format!(
            "{}rootcellar asked this device for {requested} signature(s) in this run",
            summary.to_text()
        ));
        if let Some(last) = log.entries.last() {
            yubihsm_keys::mark_audit_log_read(&device, last.item)?;
        }
    }
    Ok(())
}

/// The custodians' shares of a backup's wrap key (in rehearsal, from the rehearsal's share
/// files).
fn gather_backup_shares(
    context: &mut Context<'_>,
    what: &str,
    set_id: &str,
    threshold: u8,
    custodians: &[String],
) -> Result<Vec<crate::keys::Share>, CeremonyError> {
    let dir = context
        .rehearsal_shares
        .as_ref()
        .map(|d| d.join("backup").join(set_id));
    super::quorum::gather_shares(
        context.prompter,
        what,
        set_id,
        threshold,
        custodians,
        dir.as_deref(),
    )
}

/// A backup file: the wrapped keys, and which split of the wrap key opens them.
#[derive(Debug, Serialize, Deserialize)]
struct BackupFile {
    format: String,
    token: String,
    set_id: String,
    threshold: u8,
    keys: Vec<crate::keys::WrappedKey>,
}

const BACKUP_FORMAT: &str = "rootcellar-key-backup/1";

/// Signs the response bundle: every output file (a directory's files by their own names), the
/// transcript, and the ceremony's journal segment with the journal head. Recorded in the
/// journal before it is written.
fn response_bundle(
    context: &mut Context<'_>,
    script: &Script,
    key: &str,
    staging: &Path,
) -> Result<Vec<u8>, CeremonyError> {
    use crate::bundle::{BundleBuilder, BundleKind, EntryType, JournalHead};
    let fail = |reason: String| CeremonyError::State {
        path: staging.to_path_buf(),
        reason,
    };
    let kind = if script.ceremony.name.starts_with("backup") {
        BundleKind::Backup
    } else {
        BundleKind::Response
    };
    let mut builder = BundleBuilder::new(kind, context.time).ceremony(context.instance.clone());
    let mut files = Vec::new();
    collect_files(staging, staging, &mut files).map_err(|e| fail(e.to_string()))?;
    files.sort();
    for relative in files {
        let name = relative
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let contents = std::fs::read(staging.join(&relative)).map_err(|e| fail(e.to_string()))?;
        let in_metadata = relative.components().any(|c| c.as_os_str() == "metadata");
        let entry_type = if name == "transcript.md" {
            EntryType::Transcript
        } else if name == "trusted_root.json" {
            EntryType::TrustedRoot
        } else if in_metadata && name.ends_with(".json") {
            EntryType::TufMetadata
        } else if name.ends_with(".pub.pem") {
            EntryType::PublicKey
        } else if name.ends_with(".pem") && contents.starts_with(b"-----BEGIN CERTIFICATE") {
            EntryType::Certificate
        } else {
            EntryType::OpaqueFile
        };
        builder
            .add(entry_type, &name, contents)
            .map_err(|e| fail(format!("{}: {e}", relative.display())))?;
    }
    let segment = context
        .journal
        .export(&crate::journal::Selection::Ceremony(
            context.instance.clone(),
        ))?;
    let head = segment.journal_head();
    builder
        .add(
            EntryType::JournalSegment,
            "journal-segment.json",
            segment.to_json(),
        )
        .map_err(|e| fail(e.to_string()))?;
    builder = builder.journal_head(JournalHead {
        seq: head.seq,
        sha256: head.hash,
    });
    if !context.script.keys.contains_key(key) {
        return Err(fail(format!(
            "--bundle-key {key:?} is not a key of this script"
        )));
    }
    context.unlock(key)?;
    let signer = keys::open_signer(&context.key_uri(key)?.to_string())?;
    let bytes = builder
        .sign(signer.as_ref())
        .map_err(|e| fail(e.to_string()))?;
    context.journal(
        "bundle.export",
        format!("response bundle signed by {}", signer.key_uri()),
        vec![],
        vec![JournalDigest::of("response.rcb", &bytes)],
    )?;
    Ok(bytes)
}

/// Copies a repository (an input or an earlier output) to the step's output in `scratch`, so
/// that the step works on its own copy and a redone step starts from the same state.
fn copy_repository(
    context: &Context<'_>,
    repository: &str,
    scratch: &Path,
    output: &str,
) -> Result<PathBuf, Box<dyn std::error::Error + Send + Sync>> {
    let target = scratch.join(output);
    copy_tree(&context.path(repository), &target)?;
    Ok(target)
}

/// The custom metadata Sigstore clients look for on their trust targets.
fn sigstore_custom(name: &str) -> Option<serde_json::Value> {
    let usage = match name {
        "trusted_root.json" => "TrustedRoot",
        "signing_config.v0.2.json" => "SigningConfig",
        _ => return None,
    };
    Some(serde_json::json!({"sigstore": {"usage": usage, "status": "Active"}}))
}

/// Performs one step's action, writing its outputs into `scratch`; returns lines for the
/// transcript (fingerprints, serials, versions).
fn execute(
    context: &mut Context<'_>,
    progress: &mut Progress,
    step: &Step,
    scratch: &Path,
) -> Result<Vec<String>, CeremonyError> {
    let fail = step_error(step);
    let mut details = Vec::new();
    match &step.action {
        Action::GenerateKeys { keys: names } => {
            for name in names {
                let uri = context.key_uri(name)?;
                let backend = keys::open_backend(&uri.to_string())?;
                let label = uri.key_label().unwrap_or_default().to_string();
                // A key this ceremony already made (recorded the moment the token made it) is
                // adopted: generating it again would fail on its label, and repeating an HSM
                // operation whose result was recorded is what resuming must never do.
                let info = match progress.generated_key(&step.id, name) {
                    Some((recorded_uri, fingerprint)) => {
                        let info = backend.show(recorded_uri)?;
                        if info.public_key.fingerprint() != fingerprint {
                            return Err(fail(
                                format!("key {name} on the token is not the one this ceremony generated").into(),
                            ));
                        }
                        info
                    }
                    None => {
                        let algorithm = crate::keys::KeyAlgorithm::from_name(
                            context.script.keys[name]
                                .algorithm
                                .as_deref()
                                .unwrap_or_default(),
                        )?;
                        let info = if context.script.keys[name].backup {
                            backend.generate_for_backup(&label, algorithm)?
                        } else {
                            backend.generate(&label, algorithm)?
                        };
                        context.journal(
                            "key.generate",
                            format!(
                                "{} {}",
                                KeyLocation::parse(&info.uri)?.without_query(),
                                info.public_key.algorithm().name()
                            ),
                            vec![],
                            vec![JournalDigest::of(
                                format!("{name} public key (SPKI DER)"),
                                &info.public_key.spki_der(),
                            )],
                        )?;
                        progress.record(Event::Key {
                            step: step.id.clone(),
                            name: name.clone(),
                            uri: KeyLocation::parse(&info.uri)?.without_query(),
                            fingerprint: info.public_key.fingerprint(),
                        })?;
                        crash_point(&step.id, &format!("after-key-{name}"));
                        info
                    }
                };
                details.push(format!(
                    "key {name}: {} SHA256:{}",
                    info.public_key.algorithm().name(),
                    info.public_key.fingerprint()
                ));
                let pem_name = format!("{name}.pub.pem");
                std::fs::write(scratch.join(&pem_name), info.public_key.spki_pem())
                    .map_err(|e| fail(Box::new(e)))?;
            }
        }
        Action::SplitPin { key } => {
            let uri = context.key_uri(key)?;
            let token_label = uri.device();
            let old =
                context.pins.get(&token_label).cloned().ok_or_else(|| {
                    fail(format!("token {token_label:?} was not unlocked").into())
                })?;
            let custodians = context.script.roles.custodians.clone();
            let threshold = context.script.roles.quorum.unwrap_or(custodians.len());
            let new = random_pin();
            let shares = split_pin(&new, threshold, custodians.len())?;
            let set_id = shares[0].set_id();
            // Shares are handed out before the token's PIN changes: a crash in between leaves
            // the old PIN working and the undelivered split unused.
            deliver_shares(context, &token_label, &set_id, &custodians, &shares)?;
            let mut set = PinSet {
                set_id: set_id.clone(),
                threshold: threshold as u8,
                pending: true,
            };
            context.pin_sets.put(&token_label, set.clone())?;
            uri.change_secret(&old, &new)?;
            set.pending = false;
            context.pin_sets.put(&token_label, set)?;
            context.pins.insert(token_label.clone(), Arc::new(new));
            details.push(format!(
                "{token_label}: {} replaced by a random one, split {threshold} of {} (split {set_id})",
                uri.secret_name(),
                custodians.len()
            ));
        }
        Action::RootCertificate {
            key,
            subject,
            days,
            output,
        } => {
            let signer = keys::open_signer(&context.key_uri(key)?.to_string())?;
            let subject = crate::x509::parse_subject(&subject_for(context, subject))
                .map_err(|e| fail(Box::new(e)))?;
            let validity = crate::x509::Validity {
                not_before: context.time,
                days: *days,
            };
            let cert = crate::x509::issue_root_ca(signer.as_ref(), subject, &validity)
                .map_err(|e| fail(Box::new(e)))?;
            crate::files::write_new(&scratch.join(output), cert.pem().as_bytes())?;
            details.push(format!(
                "{output}: serial {} SHA256:{}",
                cert.serial_hex,
                cert.fingerprint()
            ));
        }
        Action::Intermediate {
            key,
            issuer,
            csr,
            profile,
            days,
            output,
        } => {
            let profile =
                crate::x509::Profile::from_name(profile).map_err(|e| fail(Box::new(e)))?;
            let order = crate::x509::IntermediateOrder {
                csr: context.path(csr),
                profile,
                issuer_cert: context.path(issuer),
                issuer_key_uri: context.key_uri(key)?.to_string(),
                subject: None,
                validity: crate::x509::Validity {
                    not_before: context.time,
                    days: days.unwrap_or(profile.default_days()),
                },
                out: scratch.join(output),
            };
            let cert = order.execute().map_err(|e| fail(Box::new(e)))?;
            details.push(format!(
                "{output}: {} serial {} SHA256:{}",
                cert.subject,
                cert.serial_hex,
                cert.fingerprint()
            ));
        }
        Action::BackupKeys {
            keys: names,
            output,
        } => {
            let location = context.key_uri(&names[0])?;
            let token_label = location.device();
            let custodians = context.script.roles.custodians.clone();
            let threshold = context.script.roles.quorum.unwrap_or(custodians.len());
            let (contents, public_keys, shares) = match &location {
                KeyLocation::Pkcs11(uri) => {
                    let labels = names
                        .iter()
                        .map(|n| {
                            Ok(context
                                .key_uri(n)?
                                .key_label()
                                .unwrap_or_default()
                                .to_string())
                        })
                        .collect::<Result<Vec<_>, CeremonyError>>()?;
                    let token = Pkcs11Token::open_with(
                        uri,
                        &PinSource::Given(context.pins[&token_label].clone()),
                    )?;
                    let (wrapped, wrap_key) = token.wrap_keys(&labels)?;
                    let shares = crate::keys::split_secret(
                        &wrap_key,
                        threshold as u8,
                        custodians.len() as u8,
                    )
                    .map_err(|e| fail(Box::new(e)))?;
                    let file = BackupFile {
                        format: BACKUP_FORMAT.into(),
                        token: token_label.clone(),
                        set_id: shares[0].set_id(),
                        threshold: threshold as u8,
                        keys: wrapped,
                    };
                    let public_keys = file
                        .keys
                        .iter()
                        .map(|k| (k.label.clone(), k.public_key_pem.clone()))
                        .collect::<Vec<_>>();
                    let json = serde_json::to_string_pretty(&file).expect("backups serialise");
                    (json, public_keys, shares)
                }
                KeyLocation::YubiHsm(_) => {
                    // The YubiHSM2 way: a wrap key made for the backup, the keys exported under
                    // it (Export Wrapped), the wrap key split and deleted from the device.
                    let device = location.yubihsm()?.expect("a YubiHSM2 location");
                    let ids = names
                        .iter()
                        .map(|n| {
                            let KeyLocation::YubiHsm(uri) = context.key_uri(n)? else {
                                unreachable!("ceremony check keeps a backup on one device")
                            };
                            Ok(device.find_key(&uri)?.id)
                        })
                        .collect::<Result<Vec<_>, CeremonyError>>()?;
                    let backup = yubihsm_keys::backup_keys(
                        &device,
                        &ids,
                        threshold as u8,
                        custodians.len() as u8,
                    )?;
                    let public_keys = backup
                        .keys
                        .keys
                        .iter()
                        .map(|k| (k.label.clone(), k.public_key_pem.clone()))
                        .collect::<Vec<_>>();
                    let json = serde_json::to_string_pretty(&backup.keys.to_json())
                        .expect("backups serialise");
                    (json, public_keys, backup.wrap_key_shares)
                }
            };
            let set_id = shares[0].set_id();
            crate::files::write_new(&scratch.join(output), contents.as_bytes())?;
            deliver_shares(context, "backup", &set_id, &custodians, &shares)?;
            for (label, pem) in &public_keys {
                let public = crate::keys::PublicKey::from_spki(pem.as_bytes())?;
                details.push(format!("{label} wrapped, SHA256:{}", public.fingerprint()));
            }
            details.push(format!(
                "wrap key split {threshold} of {} (split {set_id})",
                custodians.len()
            ));
        }
        Action::RestoreKeys {
            backup,
            into,
            output,
        } => {
            let text =
                std::fs::read_to_string(context.path(backup)).map_err(|e| fail(Box::new(e)))?;
            let not_backup = |e: String| fail(format!("{backup} is not a key backup: {e}").into());
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| not_backup(e.to_string()))?;
            let custodians = context.script.roles.custodians.clone();
            let location = context.key_uri(into)?;
            let token_label = location.device();
            // A PKCS#11 backup names its format as text; a YubiHSM2 backup by number.
            let restored = match (&value["format"], &location) {
                (serde_json::Value::String(_), KeyLocation::Pkcs11(uri)) => {
                    let file: BackupFile =
                        serde_json::from_value(value).map_err(|e| not_backup(e.to_string()))?;
                    if file.format != BACKUP_FORMAT {
                        return Err(fail(
                            format!("{backup}: unknown backup format {:?}", file.format).into(),
                        ));
                    }
                    let shares = gather_backup_shares(
                        context,
                        &format!("the backup of token {:?}", file.token),
                        &file.set_id,
                        file.threshold,
                        &custodians,
                    )?;
                    let wrap_key = crate::keys::combine_shares(&shares).map_err(|e| {
                        fail(format!("the shares of {backup} do not combine: {e}").into())
                    })?;
                    let token = Pkcs11Token::open_with(
                        uri,
                        &PinSource::Given(context.pins[&token_label].clone()),
                    )?;
                    let publics = token.restore_keys(&file.keys, &wrap_key)?;
                    file.keys
                        .iter()
                        .zip(publics)
                        .map(|(k, p)| (k.label.clone(), p))
                        .collect::<Vec<_>>()
                }
                (serde_json::Value::Number(_), KeyLocation::YubiHsm(_)) => {
                    let keys = yubihsm_keys::WrappedKeys::from_json(text.as_bytes())?;
                    let shares = gather_backup_shares(
                        context,
                        &format!("the backup of YubiHSM2 {}", keys.source_serial),
                        &keys.share_set,
                        keys.threshold,
                        &custodians,
                    )?;
                    let device = location.yubihsm()?.expect("a YubiHSM2 location");
                    yubihsm_keys::restore_keys(&device, &keys, &shares)?
                        .into_iter()
                        .map(|d| (d.label.clone(), d.public_key))
                        .collect()
                }
                (serde_json::Value::String(_), _) => {
                    return Err(fail(
                        format!("{backup} is a PKCS#11 backup: it restores into a PKCS#11 token, not {token_label}").into(),
                    ))
                }
                (serde_json::Value::Number(_), _) => {
                    return Err(fail(
                        format!("{backup} is a YubiHSM2 backup: it restores into a YubiHSM2, not token {token_label}").into(),
                    ))
                }
                _ => return Err(not_backup("no format field".into())),
            };
            let mut report = String::new();
            for (label, public) in &restored {
                details.push(format!(
                    "{label} restored into {token_label}, SHA256:{}",
                    public.fingerprint()
                ));
                report.push_str(&format!("{label} SHA256:{}\n", public.fingerprint()));
            }
            crate::files::write_new(&scratch.join(output), report.as_bytes())?;
        }
        Action::Crl {
            key,
            issuer,
            revoke,
            days,
            output,
        } => {
            let list =
                std::fs::read_to_string(context.path(revoke)).map_err(|e| fail(Box::new(e)))?;
            let order = crate::x509::CrlOrder {
                issuer_cert: context.path(issuer),
                issuer_key_uri: context.key_uri(key)?.to_string(),
                revoke: list
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string)
                    .collect(),
                this_update: context.time,
                days: *days,
                out: scratch.join(output),
            };
            let crl = order.execute().map_err(|e| fail(Box::new(e)))?;
            details.push(format!(
                "{output}: CRL number {}, revoked [{}], next update {}",
                crl.number,
                crl.revoked.join(", "),
                crl.next_update
            ));
        }
        Action::TufRotate {
            repository,
            policy,
            keys: key_map,
            output,
        } => {
            let policy = context.script.tuf_policy(policy, key_map)?;
            let repo = copy_repository(context, repository, scratch, output).map_err(&fail)?;
            let report = crate::tuf::draft_root(&repo, &policy, context.time)?;
            details.push(format!(
                "root v{} drafted (from v{}), expires {}",
                report.version, report.current_version, report.expires
            ));
        }
        Action::TufTargets {
            repository,
            policy,
            keys: key_map,
            add,
            output,
        } => {
            let policy = context.script.tuf_policy(policy, key_map)?;
            let repo = copy_repository(context, repository, scratch, output).map_err(&fail)?;
            for name in add {
                let change = crate::tuf::TargetChange::Add {
                    file: context.path(name),
                    name: Some(name.clone()),
                    custom: sigstore_custom(name),
                };
                let report = crate::tuf::stage_targets(&repo, &policy, &change, context.time)?;
                details.push(format!("{name} staged in targets v{}", report.version));
            }
        }
        Action::TufSign {
            repository,
            key,
            output,
        } => {
            let repo = copy_repository(context, repository, scratch, output).map_err(&fail)?;
            let report =
                crate::tuf::sign_staged(&repo, &context.key_uri(key)?.to_string(), context.time)?;
            for draft in &report.drafts {
                details.push(format!(
                    "{key} {} {} v{}",
                    if draft.already_signed {
                        "had already signed"
                    } else {
                        "signed"
                    },
                    draft.role,
                    draft.version
                ));
            }
        }
        Action::TufPublish {
            repository,
            policy,
            keys: key_map,
            output,
        } => {
            let policy = context.script.tuf_policy(policy, key_map)?;
            let repo = copy_repository(context, repository, scratch, output).map_err(&fail)?;
            let report = crate::tuf::publish(&repo, &policy, context.time)?;
            for role in &report.roles {
                details.push(format!(
                    "{} v{} published, expires {}",
                    role.role, role.version, role.expires
                ));
            }
            say_validity(context, &repo, &policy, &mut details)?;
        }
        Action::TufInit {
            policy,
            keys: key_map,
            targets,
            output,
        } => {
            let policy = context.script.tuf_policy(policy, key_map)?;
            let targets: Vec<PathBuf> = targets.iter().map(|t| context.path(t)).collect();
            let report = crate::tuf::init_repository(
                &policy,
                &targets,
                &scratch.join(output),
                context.time,
            )?;
            for role in &report.roles {
                details.push(format!(
                    "{} v{} expires {}",
                    role.role, role.version, role.expires
                ));
            }
            say_validity(context, &scratch.join(output), &policy, &mut details)?;
        }
    }
    Ok(details)
}

/// Refuses to deliver a TUF repository output with a role already expired at `time` (signed by
/// an earlier run of a resumed ceremony, days before).
fn refuse_expired_repository(
    dir: &Path,
    output: &str,
    time: ConfirmedTime,
) -> Result<(), CeremonyError> {
    if !dir.join(crate::tuf::METADATA_DIR).is_dir() {
        return Ok(());
    }
    let status = crate::tuf::repository_status(dir, None, time.timestamp())?;
    match status
        .validity()
        .into_iter()
        .find(|r| r.expires <= time.timestamp())
    {
        None => Ok(()),
        Some(role) => Err(CeremonyError::ExpiredOutput {
            output: output.to_string(),
            role: role.role.to_string(),
            version: role.version,
            expires: role.expires,
            time,
        }),
    }
}

/// Tells the room how long the repository just published stays valid from the confirmed time,
/// and warns (in the transcript too) of any role already inside its signing period.
fn say_validity(
    context: &mut Context<'_>,
    repo: &Path,
    policy: &crate::tuf::Policy,
    details: &mut Vec<String>,
) -> Result<(), CeremonyError> {
    let status = crate::tuf::repository_status(repo, Some(policy), context.time.timestamp())?;
    let validity = status.validity();
    context
        .prompter
        .say("   published metadata, counted from the confirmed time:");
    for role in &validity {
        context.prompter.say(&format!("     {}", role.line()));
    }
    for warning in validity.iter().filter_map(|r| r.warning()) {
        context.prompter.say(&format!("   {warning}"));
        details.push(warning);
    }
    Ok(())
}
