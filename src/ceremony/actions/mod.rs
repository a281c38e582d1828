//! The actions a ceremony step can perform, one file each, behind one trait: what an action
//! reads and writes, the keys it uses, what `ceremony check` finds wrong with it, what it shows
//! before it runs, and how it is performed. The engine (`runner`) knows actions only through
//! `Perform`; `Action::performer` is the one place that tells the kinds apart.

mod backup_keys;
mod certificate;
mod crl;
mod generate_keys;
mod intermediate;
mod restore_keys;
mod root_certificate;
mod split_pin;
mod tuf_add_signatures;
mod tuf_init;
mod tuf_publish;
mod tuf_refresh;
mod tuf_request_signatures;
mod tuf_rotate;
mod tuf_sign;
mod tuf_targets;

use std::path::{Path, PathBuf};

pub use backup_keys::BackupKeys;
pub use crl::Crl;
pub use generate_keys::GenerateKeys;
pub use intermediate::Intermediate;
pub use restore_keys::RestoreKeys;
pub use root_certificate::RootCertificate;
pub use split_pin::SplitPin;
pub use tuf_add_signatures::TufAddSignatures;
pub use tuf_init::TufInit;
pub use tuf_publish::TufPublish;
pub use tuf_refresh::TufRefresh;
pub use tuf_request_signatures::TufRequestSignatures;
pub use tuf_rotate::TufRotate;
pub use tuf_sign::TufSign;
pub use tuf_targets::TufTargets;

use super::context::Context;
use super::script::{Action, Script, Step};
use super::tree::copy_tree;
use super::CeremonyError;

/// What a step's action is to the engine.
pub(super) trait Perform {
    /// The script key names the step uses (the engine unlocks each before the step runs).
    fn keys(&self) -> Vec<&str>;

    /// Files or directories the step reads (inputs or earlier outputs).
    fn reads(&self) -> Vec<String> {
        vec![]
    }

    /// Files or directories the step produces.
    fn writes(&self) -> Vec<String>;

    /// What `ceremony check` finds wrong with the action's parameters in `script`, beyond the
    /// names of keys, reads and writes, which the script checks for every action.
    fn problems(&self, _script: &Script) -> Vec<String> {
        vec![]
    }

    /// The script keys (among [`keys`](Self::keys)) the step makes: not there yet, so the
    /// preview shows no fingerprint for them.
    fn makes_keys(&self) -> Vec<&str> {
        vec![]
    }

    /// Lines the operator is shown before the step runs, beside what it reads, the keys it
    /// uses and what it writes.
    fn preview(&self, _context: &Context<'_>) -> Vec<String> {
        vec![]
    }

    /// Performs the action, writing its outputs into `scratch`; returns lines for the
    /// transcript (fingerprints, serials, versions).
    fn perform(
        &self,
        context: &mut Context<'_>,
        step: &Step,
        scratch: &Path,
    ) -> Result<Vec<String>, CeremonyError>;
}

impl Action {
    /// The action's implementation.
    pub(super) fn performer(&self) -> &dyn Perform {
        match self {
            Action::GenerateKeys(action) => action,
            Action::SplitPin(action) => action,
            Action::RootCertificate(action) => action,
            Action::Intermediate(action) => action,
            Action::Crl(action) => action,
            Action::BackupKeys(action) => action,
            Action::RestoreKeys(action) => action,
            Action::TufRotate(action) => action,
            Action::TufTargets(action) => action,
            Action::TufSign(action) => action,
            Action::TufPublish(action) => action,
            Action::TufRefresh(action) => action,
            Action::TufInit(action) => action,
            Action::TufRequestSignatures(action) => action,
            Action::TufAddSignatures(action) => action,
        }
    }
}

/// What the TUF actions that work on a copy of a repository share: the repository (an input or
/// an earlier output), the policy bound to the script's keys, and the step's output directory.
/// tuf-rotate and tuf-publish are exactly this.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryStep {
    /// The repository: an input or an earlier output.
    pub repository: String,
    /// The policy, relative to the script.
    pub policy: PathBuf,
    /// Policy key name → script key name.
    pub keys: std::collections::BTreeMap<String, String>,
    /// Output directory name.
    pub output: String,
    /// Script keys of custodians away from the appliance → the input (or earlier output)
    /// holding each one's public key (PEM): bound by that, their tokens are not asked for.
    #[serde(default)]
    pub absent: std::collections::BTreeMap<String, String>,
}

impl RepositoryStep {
    fn key_names(&self) -> Vec<&str> {
        self.keys
            .values()
            .filter(|key| !self.absent.contains_key(*key))
            .map(String::as_str)
            .collect()
    }

    fn reads(&self) -> Vec<String> {
        let mut reads = vec![self.repository.clone()];
        reads.extend(self.absent.values().cloned());
        reads
    }

    fn writes(&self) -> Vec<String> {
        vec![self.output.clone()]
    }

    fn problems(&self, script: &Script) -> Vec<String> {
        let mut problems = policy_problems(script, &self.policy, &self.keys);
        for key in self.absent.keys() {
            if !self.keys.values().any(|bound| bound == key) {
                problems.push(format!("absent: key {key:?} is not one of the step's keys"));
            }
        }
        problems
    }

    /// The bound policy, and the step's own copy of the repository at its output in `scratch`
    /// (a redone step starts from the same state).
    fn open(
        &self,
        context: &Context<'_>,
        step: &Step,
        scratch: &Path,
    ) -> Result<(crate::tuf::Policy, PathBuf), CeremonyError> {
        let public_keys = self
            .absent
            .iter()
            .map(|(key, pem)| (key.clone(), context.path(pem)))
            .collect();
        let policy = context.script.tuf_policy_with_public_keys(
            &self.policy,
            &self.keys,
            &public_keys,
            context.rehearsal,
        )?;
        let repo = copy_repository(context, &self.repository, scratch, &self.output)
            .map_err(super::context::step_error(step))?;
        Ok((policy, repo))
    }
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

/// The problem with a step's TUF policy, bound to the script's keys, if it has one.
fn policy_problems(
    script: &Script,
    policy: &Path,
    keys: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    match script.tuf_policy(policy, keys) {
        Ok(_) => vec![],
        Err(e) => vec![e.to_string()],
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
