//! `tuf-publish`: the staged drafts published once their thresholds are met (snapshot and
//! timestamp follow), and how long the result stays valid said to the room.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{copy_repository, policy_problems, say_validity, Perform};
use crate::ceremony::context::{step_error, Context};
use crate::ceremony::script::{Script, Step};
use crate::ceremony::CeremonyError;

/// Publish the staged drafts once their thresholds are met (snapshot and timestamp follow).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TufPublish {
    /// The repository.
    pub repository: String,
    /// The policy, relative to the script.
    pub policy: PathBuf,
    /// Policy key name → script key name.
    pub keys: BTreeMap<String, String>,
    /// Output directory name.
    pub output: String,
}

impl Perform for TufPublish {
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
        let mut details = Vec::new();
        let policy = context.script.tuf_policy(&self.policy, &self.keys)?;
        let repo =
            copy_repository(context, &self.repository, scratch, &self.output).map_err(&fail)?;
        let report = crate::tuf::publish(&repo, &policy, context.time)?;
        for role in &report.roles {
            details.push(format!(
                "{} v{} published, expires {}",
                role.role, role.version, role.expires
            ));
        }
        say_validity(context, &repo, &policy, &mut details)?;
        Ok(details)
    }
}
