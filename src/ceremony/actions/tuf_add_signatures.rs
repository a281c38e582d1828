//! `tuf-add-signatures`: the signature bundles custodians made where they are
//! (`rootcellar tuf sign-request`) added to the drafted root, all or none.

use std::path::Path;

use serde::Deserialize;

use super::{copy_repository, Perform};
use crate::ceremony::context::{step_error, Context};
use crate::ceremony::script::Step;
use crate::ceremony::CeremonyError;
use crate::tuf::Unrecorded;

/// Add custodians' signature bundles (inputs) to the drafted root.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TufAddSignatures {
    /// The repository with the drafted root.
    pub repository: String,
    /// The signature bundles (inputs).
    pub signatures: Vec<String>,
    /// Output directory name.
    pub output: String,
}

impl Perform for TufAddSignatures {
    fn keys(&self) -> Vec<&str> {
        vec![]
    }

    fn reads(&self) -> Vec<String> {
        let mut reads = vec![self.repository.clone()];
        reads.extend(self.signatures.iter().cloned());
        reads
    }

    fn writes(&self) -> Vec<String> {
        vec![self.output.clone()]
    }

    fn preview(&self, context: &Context<'_>) -> Vec<String> {
        let mut lines = crate::tuf::describe_drafts(&context.path(&self.repository))
            .unwrap_or_else(|e| vec![format!("the staged drafts cannot be read: {e}")]);
        lines.push(format!("signatures from {}", self.signatures.join(", ")));
        lines
    }

    fn perform(
        &self,
        context: &mut Context<'_>,
        step: &Step,
        scratch: &Path,
    ) -> Result<Vec<String>, CeremonyError> {
        let fail = step_error(step);
        let repo =
            copy_repository(context, &self.repository, scratch, &self.output).map_err(&fail)?;
        let files: Vec<_> = self.signatures.iter().map(|s| context.path(s)).collect();
        let received = crate::remote_signing::read_signature_bundles(&repo, &files)
            .map_err(|e| fail(Box::new(e)))?;
        let report =
            crate::tuf::accept_root_signatures(&repo, &received, context.time, &mut Unrecorded)?;
        let mut details: Vec<String> = report
            .added
            .iter()
            .map(|key| {
                format!(
                    "{key} signed root v{} (where they are)",
                    report.status.version
                )
            })
            .collect();
        details.extend(
            report
                .already
                .iter()
                .map(|key| format!("{key} had already signed root v{}", report.status.version)),
        );
        Ok(details)
    }
}
