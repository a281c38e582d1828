//! `tuf-refresh`: snapshot and timestamp re-signed over what is published, with the appliance's
//! keys alone — the short ceremony that keeps a disconnected cluster's metadata fresh between
//! key ceremonies. No custodian, no root or targets key: the step binds only the policy's
//! snapshot and timestamp keys, so only those are unlocked.

use std::path::Path;

use serde::Deserialize;

use super::{say_validity, Perform, RepositoryStep};
use crate::ceremony::context::Context;
use crate::ceremony::script::{Script, Step};
use crate::ceremony::CeremonyError;
use crate::tuf::{Role, Unrecorded};

/// Re-sign snapshot and timestamp over the published repository, nothing else.
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct TufRefresh(pub RepositoryStep);

impl TufRefresh {
    fn policy(
        &self,
        script: &Script,
        rehearsal: bool,
    ) -> Result<crate::tuf::Policy, CeremonyError> {
        let policy = script.tuf_policy_unvalidated(&self.0.policy, &self.0.keys, rehearsal)?;
        policy.validate_for_refresh()?;
        Ok(policy)
    }
}

impl Perform for TufRefresh {
    fn keys(&self) -> Vec<&str> {
        self.0.key_names()
    }

    fn reads(&self) -> Vec<String> {
        vec![self.0.repository.clone()]
    }

    fn writes(&self) -> Vec<String> {
        self.0.writes()
    }

    fn problems(&self, script: &Script) -> Vec<String> {
        let policy = match self.policy(script, false) {
            Ok(policy) => policy,
            Err(e) => return vec![e.to_string()],
        };
        let signing: Vec<&String> = [Role::Snapshot, Role::Timestamp]
            .iter()
            .flat_map(|role| &policy.role(*role).keys)
            .collect();
        let mut problems: Vec<String> = self
            .0
            .keys
            .keys()
            .filter(|name| !signing.contains(name))
            .map(|name| {
                format!(
                    "key {name:?} is not a snapshot or timestamp key of {}: a refresh signs only \
                     those, so bind only their keys and no other token is unlocked",
                    self.0.policy.display()
                )
            })
            .collect();
        // `absent` names custodians signing away from the appliance; a refresh has none, and a
        // key listed there would be left unlocked while the refresh still needed it.
        for key in self.0.absent.keys() {
            problems.push(format!(
                "absent: {key:?} listed, but a refresh is signed by the appliance's own snapshot \
                 and timestamp keys alone; no custodian is away"
            ));
        }
        problems
    }

    fn preview(&self, _context: &Context<'_>) -> Vec<String> {
        vec![
            "re-signs snapshot and timestamp over the published root and targets; nothing else \
             changes"
                .into(),
        ]
    }

    fn perform(
        &self,
        context: &mut Context<'_>,
        step: &Step,
        scratch: &Path,
    ) -> Result<Vec<String>, CeremonyError> {
        let policy = self.policy(context.script, context.rehearsal)?;
        let repo = super::copy_repository(context, &self.0.repository, scratch, &self.0.output)
            .map_err(crate::ceremony::context::step_error(step))?;
        let report =
            crate::tuf::refresh(&repo, &policy, &context.hsm, context.time, &mut Unrecorded)?;
        let mut details: Vec<String> = report
            .roles
            .iter()
            .map(|role| {
                format!(
                    "{} v{} re-signed, expires {}",
                    role.role, role.version, role.expires
                )
            })
            .collect();
        say_validity(context, &repo, &policy, &mut details)?;
        Ok(details)
    }
}
