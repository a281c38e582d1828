//! `tuf-publish`: the staged drafts published once their thresholds are met (snapshot and
//! timestamp follow), and how long the result stays valid said to the room.

use std::path::Path;

use serde::Deserialize;

use super::{say_validity, Perform, RepositoryStep};
use crate::ceremony::context::Context;
use crate::ceremony::script::{Script, Step};
use crate::ceremony::CeremonyError;
use crate::tuf::Unrecorded;

/// Publish the staged drafts once their thresholds are met (snapshot and timestamp follow).
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct TufPublish(pub RepositoryStep);

impl Perform for TufPublish {
    fn keys(&self) -> Vec<&str> {
        self.0.key_names()
    }

    fn reads(&self) -> Vec<String> {
        self.0.reads()
    }

    fn writes(&self) -> Vec<String> {
        self.0.writes()
    }

    fn problems(&self, script: &Script) -> Vec<String> {
        self.0.problems(script)
    }

    fn perform(
        &self,
        context: &mut Context<'_>,
        step: &Step,
        scratch: &Path,
    ) -> Result<Vec<String>, CeremonyError> {
        let mut details = Vec::new();
        let (policy, repo) = self.0.open(context, step, scratch)?;
        let report =
            crate::tuf::publish(&repo, &policy, &context.hsm, context.time, &mut Unrecorded)?;
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
