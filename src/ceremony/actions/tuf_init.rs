//! `tuf-init`: a new TUF repository, with its first targets, from a policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{policy_problems, say_validity, Perform};
use crate::ceremony::context::Context;
use crate::ceremony::script::{Script, Step};
use crate::ceremony::CeremonyError;
use crate::tuf::Unrecorded;

/// Create a TUF repository.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TufInit {
    /// The repository policy, relative to the script.
    pub policy: PathBuf,
    /// Policy key name → script key name.
    pub keys: BTreeMap<String, String>,
    /// Files (inputs or earlier outputs) to publish as targets.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Output directory name.
    pub output: String,
}

impl Perform for TufInit {
    fn keys(&self) -> Vec<&str> {
        self.keys.values().map(String::as_str).collect()
    }

    fn reads(&self) -> Vec<String> {
        self.targets.clone()
    }

    fn writes(&self) -> Vec<String> {
        vec![self.output.clone()]
    }

    fn problems(&self, script: &Script) -> Vec<String> {
        let mut problems = Vec::new();
        if self.keys.is_empty() {
            problems.push("keys maps no policy key names to script keys".into());
        }
        problems.extend(policy_problems(script, &self.policy, &self.keys));
        problems
    }

    fn perform(
        &self,
        context: &mut Context<'_>,
        _step: &Step,
        scratch: &Path,
    ) -> Result<Vec<String>, CeremonyError> {
        let mut details = Vec::new();
        let policy = context
            .script
            .tuf_policy_for(&self.policy, &self.keys, context.rehearsal)?;
        let targets: Vec<PathBuf> = self.targets.iter().map(|t| context.path(t)).collect();
        let out = scratch.join(&self.output);
        let report = crate::tuf::init_repository(
            &policy,
            &targets,
            &out,
            &context.hsm,
            context.time,
            &mut Unrecorded,
        )?;
        for role in &report.roles {
            details.push(format!(
                "{} v{} expires {}",
                role.role, role.version, role.expires
            ));
        }
        say_validity(context, &out, &policy, &mut details)?;
        Ok(details)
    }
}
