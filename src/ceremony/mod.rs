//! Key ceremonies: declarative scripts (`ceremony/*.toml`) run step by step at the console.
//!
//! A ceremony starts with the operator confirming the date and time (the appliance clock is not
//! trusted) and recording who is present. Each step then shows what it will do, with the
//! fingerprints involved, and waits for a typed confirmation; its result is recorded before the
//! next step starts, so an interrupted ceremony resumes after its last completed step without
//! repeating an HSM operation. At the end the outputs and a transcript are collected.

pub mod actions;
mod confirm_time;
mod console;
mod context;
mod delivery;
mod handout;
mod presence;
mod progress;
mod prompter;
mod quorum;
mod rehearsal;
mod request;
mod runner;
mod script;
mod transcript;
mod tree;
mod typeahead;

use std::path::PathBuf;

pub use console::{console, ConsoleError, ConsoleOptions};
pub use prompter::{Answers, Interactive, Prompter};
pub use request::{extract_inputs, lay_out_inputs, RequestError};
pub use runner::{run, CeremonyReport, RunOptions};
pub use script::{Action, InputKind, InputSpec, KeySpec, PinMode, Script, Step};
pub use transcript::Transcript;

/// Why a ceremony could not be checked or run.
#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    /// The script file could not be read.
    #[error("cannot read {path}: {reason}")]
    ScriptUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The script has problems; all of them are listed.
    #[error("{} has {} problem(s):\n  - {}", path.display(), problems.len(), problems.join("\n  - "))]
    ScriptInvalid {
        /// The script.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// The answers file could not be used.
    #[error("answers file {path}: {reason}")]
    BadAnswers {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A custodian's new share could not be handed to them (sealing it to their recipient
    /// failed); the token's secret is unchanged.
    #[error("cannot hand {custodian} their share: {reason}")]
    Handout {
        /// The custodian role.
        custodian: String,
        /// Why.
        reason: String,
    },
    /// The operator did not confirm, or a required answer is missing.
    #[error("{0}")]
    NotConfirmed(String),
    /// Reading the console failed.
    #[error("console: {0}")]
    Console(String),
    /// The people named at the start cannot hold the roles they were named for: one person
    /// named twice (the operator as a witness, a witness twice, one custodian for two roles),
    /// or a custodian role the script names with no one for it.
    #[error("those present: {0}")]
    Presence(String),
    /// A required input is missing.
    #[error("input {name:?} is missing from {dir}")]
    MissingInput {
        /// The input's name.
        name: String,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// The ceremony's state is not what resuming expects.
    #[error("ceremony state {path}: {reason}")]
    State {
        /// The state file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A step failed; the ceremony stops there and can be resumed.
    #[error("step {step:?} failed: {source}")]
    Step {
        /// The step id.
        step: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A key operation failed.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// The journal refused a record (the step is then not done).
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// A TUF policy bound by the script is wrong.
    #[error(transparent)]
    Tuf(#[from] crate::tuf::TufError),
    /// Writing an output failed.
    #[error(transparent)]
    Output(#[from] crate::files::OutputError),
    /// The outputs could not be delivered (the stick read-only, full, or not there). Nothing is
    /// left half-written in the output's directory; the steps are done and kept, and running the
    /// same command again delivers them.
    #[error(
        "cannot deliver the outputs to {out}: {reason}. Nothing was delivered there; the \
         ceremony's steps are done and kept, and it is not finished: with the stick plugged in, \
         writable and with room, run the same command again to deliver"
    )]
    Delivery {
        /// The output directory.
        out: PathBuf,
        /// What stopped the delivery, with the file system's words.
        reason: String,
    },
    /// A resumed ceremony's output, signed by an earlier run, has expired by this run's time.
    #[error(
        "output {output}: {role} v{version} expired at {expires}, before this run's confirmed \
         time {time} (an earlier run of this ceremony signed it); nothing was delivered. Refresh \
         it (ceremony refresh-timestamp, or `rootcellar tuf refresh`)"
    )]
    ExpiredOutput {
        /// The output.
        output: String,
        /// The role.
        role: String,
        /// Its version.
        version: u64,
        /// When it expired.
        expires: jiff::Timestamp,
        /// This run's confirmed time.
        time: crate::time::ConfirmedTime,
    },
    /// The ceremony's time was refused (before the journal's latest record or the build, or
    /// far from the clock and not typed again).
    #[error(transparent)]
    Time(#[from] crate::time::TimeError),
}

/// Whether a ceremony instance (`NAME-rehearsal-ID`, as the state, the journal and the stick
/// name it) is a rehearsal's.
pub fn is_rehearsal_instance(instance: &str) -> bool {
    instance.contains("-rehearsal-")
}

/// True for a plain file name: not empty, no separators, not `.`/`..`, no control characters.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// Loads and checks a script: every problem at once, before any HSM is touched.
pub fn check(path: &std::path::Path) -> Result<Script, CeremonyError> {
    let script = Script::load(path)?;
    let problems = script.problems();
    if problems.is_empty() {
        Ok(script)
    } else {
        Err(CeremonyError::ScriptInvalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}
