//! `tuf-sign`: one key signs every staged draft it is entitled to sign (each custodian in turn,
//! on their own token).

use std::path::Path;

use serde::Deserialize;

use super::{copy_repository, Perform};
use crate::ceremony::context::{step_error, Context};
use crate::ceremony::script::Step;
use crate::ceremony::CeremonyError;
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
