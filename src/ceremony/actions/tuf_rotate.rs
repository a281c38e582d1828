//! `tuf-rotate`: the next root version of a TUF repository drafted from a (new) policy, for
//! the custodians to sign in later steps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{copy_repository, policy_problems, Perform};
use crate::ceremony::context::{step_error, Context};
use crate::ceremony::script::{Script, Step};
use crate::ceremony::CeremonyError;

/// Draft the next root version of a TUF repository from a (new) policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TufRotate {
    /// The repository: an input or an earlier output.
    pub repository: String,
    /// The policy of the new root, relative to the script.
    pub policy: PathBuf,
    /// Policy key name → script key name.
    pub keys: BTreeMap<String, String>,
    /// Output directory name (the repository with the draft staged).
    pub output: String,
}

impl Perform for TufRotate {
    fn keys(&self) -> Vec<&str> {
        self.keys.values().map(String::as_str).collect()
    }

    fn reads(&self) -> Vec<String> {
        vec![self.repository.clone()]
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
        let policy = context.script.tuf_policy(&self.policy, &self.keys)?;
        let repo =
            copy_repository(context, &self.repository, scratch, &self.output).map_err(&fail)?;
        let report = crate::tuf::draft_root(&repo, &policy, context.time)?;
        Ok(vec![format!(
            "root v{} drafted (from v{}), expires {}",
            report.version, report.current_version, report.expires
        )])
    }
}
