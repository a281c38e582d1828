//! `tuf-sign`: one key signs every staged draft it is entitled to sign (each custodian in turn,
//! on their own token).

use std::path::Path;

use serde::Deserialize;

use super::{copy_repository, Perform};
use crate::ceremony::context::{step_error, Context};
use crate::ceremony::script::Step;
use crate::ceremony::CeremonyError;
use crate::trustroot::TrustedRoot;
use crate::tuf::Unrecorded;

/// One key signs every staged draft it is entitled to sign.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TufSign {
    /// The repository.
    pub repository: String,
    /// The signing key.
    pub key: String,
    /// Output directory name.
    pub output: String,
}

impl Perform for TufSign {
    fn keys(&self) -> Vec<&str> {
        vec![&self.key]
    }

    fn reads(&self) -> Vec<String> {
        vec![self.repository.clone()]
    }

    fn writes(&self) -> Vec<String> {
        vec![self.output.clone()]
    }

    /// What the custodian is about to sign: each staged draft's changes (keys added and
    /// removed, with fingerprints; thresholds; expiry; target files) and its payload digest.
    fn preview(&self, context: &Context<'_>) -> Vec<String> {
        let repo = context.path(&self.repository);
        let mut lines = crate::tuf::describe_drafts(&repo)
            .unwrap_or_else(|e| vec![format!("the staged drafts cannot be read: {e}")]);
        lines.extend(trusted_root_changes(&repo));
        lines
    }

    fn perform(
        &self,
        context: &mut Context<'_>,
        step: &Step,
        scratch: &Path,
    ) -> Result<Vec<String>, CeremonyError> {
        let fail = step_error(step);
        let key = &self.key;
        let repo =
            copy_repository(context, &self.repository, scratch, &self.output).map_err(&fail)?;
        let location = context.key_uri(key)?;
        let report = crate::tuf::sign_staged(
            &repo,
            &context.hsm,
            &location,
            context.time,
            &mut Unrecorded,
        )?;
        Ok(report
            .drafts
            .iter()
            .map(|draft| {
                format!(
                    "{key} {} {} v{}",
                    if draft.already_signed {
                        "had already signed"
                    } else {
                        "signed"
                    },
                    draft.role,
                    draft.version
                )
            })
            .collect())
    }
}

/// What a staged `trusted_root.json` changes in the Sigstore trust (authorities and logs added,
/// retired, changed, removed): the same comparison `import` reports to cluster administrators.
fn trusted_root_changes(repo: &Path) -> Vec<String> {
    let parse = |bytes: &[u8]| serde_json::from_slice::<TrustedRoot>(bytes);
    match crate::tuf::staged_target_change(repo, "trusted_root.json") {
        Ok(None) => vec![],
        Ok(Some(change)) => {
            let old = change.published.as_deref().map(parse).transpose();
            match (old, parse(&change.staged)) {
                (Ok(old), Ok(new)) => {
                    let changes = crate::trustroot::compare(old.as_ref(), &new);
                    if changes.is_empty() {
                        vec!["   trusted_root.json: authorities and logs unchanged".into()]
                    } else {
                        changes
                            .iter()
                            .map(|c| format!("   trusted_root.json: {}", c.text()))
                            .collect()
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    vec![format!(
                        "   trusted_root.json is not a Sigstore trusted root: {e}"
                    )]
                }
            }
        }
        Err(e) => vec![format!("   trusted_root.json cannot be read: {e}")],
    }
}
