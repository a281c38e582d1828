//! `tuf-targets`: new or replaced targets staged in a TUF repository, with the custom metadata
//! Sigstore clients look for on their trust targets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{copy_repository, policy_problems, Perform};
use crate::ceremony::context::{step_error, Context};
use crate::ceremony::script::{Script, Step};
use crate::ceremony::CeremonyError;
use crate::tuf::Unrecorded;

/// Stage new or replaced targets (inputs or earlier outputs) in a TUF repository.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TufTargets {
    /// The repository.
    pub repository: String,
    /// The policy, relative to the script.
    pub policy: PathBuf,
    /// Policy key name → script key name.
    pub keys: BTreeMap<String, String>,
    /// Files to add or replace as targets.
    pub add: Vec<String>,
    /// Output directory name.
    pub output: String,
}

impl Perform for TufTargets {
    fn keys(&self) -> Vec<&str> {
        self.keys.values().map(String::as_str).collect()
    }

    fn reads(&self) -> Vec<String> {
        let mut reads = vec![self.repository.clone()];
        reads.extend(self.add.iter().cloned());
        reads
    }

    fn writes(&self) -> Vec<String> {
        vec![self.output.clone()]
    }

    fn problems(&self, script: &Script) -> Vec<String> {
        policy_problems(script, &self.policy, &self.keys)
    }

    fn perform(
        &self,
        context: &mut Context<'_>,
        step: &Step,
        scratch: &Path,
    ) -> Result<Vec<String>, CeremonyError> {
        let fail = step_error(step);
        let mut details = Vec::new();
        let policy = context
            .script
            .tuf_policy_for(&self.policy, &self.keys, context.rehearsal)?;
        let repo =
            copy_repository(context, &self.repository, scratch, &self.output).map_err(&fail)?;
        for name in &self.add {
            let change = crate::tuf::TargetChange::Add {
                file: context.path(name),
                name: Some(name.clone()),
                custom: sigstore_custom(name),
            };
            let report =
                crate::tuf::stage_targets(&repo, &policy, &change, context.time, &mut Unrecorded)?;
            details.push(format!("{name} staged in targets v{}", report.version));
        }
        Ok(details)
    }
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
