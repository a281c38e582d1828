//! `tuf-rotate`: the next root version of a TUF repository drafted from a (new) policy, for
//! the custodians to sign in later steps.

use std::path::Path;

use serde::Deserialize;

use super::{Perform, RepositoryStep};
use crate::ceremony::context::Context;
use crate::ceremony::script::{Script, Step};
use crate::ceremony::CeremonyError;
use crate::tuf::Unrecorded;

/// Draft the next root version of a TUF repository from a (new) policy (the policy of the new
/// root; the output is the repository with the draft staged).
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct TufRotate(pub RepositoryStep);

impl Perform for TufRotate {
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
        let (policy, repo) = self.0.open(context, step, scratch)?;
        let report =
            crate::tuf::draft_root(&repo, &policy, &context.hsm, context.time, &mut Unrecorded)?;
        Ok(vec![format!(
            "root v{} drafted (from v{}), expires {}",
            report.version, report.current_version, report.expires
        )])
    }
}
