//! `tuf-request-signatures`: for each custodian away from the appliance, a signing request
//! bundle for the drafted root, signed by the appliance's bundle key; the custodian signs it on
//! their own machine (`rootcellar tuf sign-request`) and the signature comes back to a later
//! ceremony (`tuf-add-signatures`).

use std::path::Path;

use serde::Deserialize;

use super::Perform;
use crate::ceremony::context::{step_error, Context};
use crate::ceremony::script::Step;
use crate::ceremony::CeremonyError;

/// A signing request bundle per absent custodian, written as `request-NAME.rcb`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TufRequestSignatures {
    /// The repository with the drafted root.
    pub repository: String,
    /// The absent custodians' keys, as the policy names them.
    pub custodians: Vec<String>,
    /// The script key that signs the requests (the appliance's bundle key).
    pub bundle_key: String,
    /// Output directory name (the requests).
    pub output: String,
}

impl Perform for TufRequestSignatures {
    fn keys(&self) -> Vec<&str> {
        vec![&self.bundle_key]
    }

    fn reads(&self) -> Vec<String> {
        vec![self.repository.clone()]
    }

    fn writes(&self) -> Vec<String> {
        vec![self.output.clone()]
    }

    fn problems(&self, _script: &crate::ceremony::script::Script) -> Vec<String> {
        let mut problems = Vec::new();
        if self.custodians.is_empty() {
            problems.push("custodians: names no custodian to ask".to_string());
        }
        for name in &self.custodians {
            if !crate::ceremony::is_plain_name(&format!("request-{name}.rcb")) {
                problems.push(format!("custodians: {name:?} cannot name a file"));
            }
        }
        problems
    }

    fn preview(&self, context: &Context<'_>) -> Vec<String> {
        let mut lines = crate::tuf::describe_drafts(&context.path(&self.repository))
            .unwrap_or_else(|e| vec![format!("the staged drafts cannot be read: {e}")]);
        lines.push(format!(
            "signing requests for {} (request-NAME.rcb in {})",
            self.custodians.join(", "),
            self.output
        ));
        lines
    }

    fn perform(
        &self,
        context: &mut Context<'_>,
        step: &Step,
        scratch: &Path,
    ) -> Result<Vec<String>, CeremonyError> {
        let fail = step_error(step);
        let repo = context.path(&self.repository);
        // Every request is made before the first is written: a custodian the draft does not
        // name stops the step with nothing written.
        let requests = self
            .custodians
            .iter()
            .map(|name| crate::tuf::root_signing_request(&repo, name))
            .collect::<Result<Vec<_>, _>>()?;
        let signer = context.signer(&self.bundle_key)?;
        let dir = scratch.join(&self.output);
        std::fs::create_dir_all(&dir).map_err(|e| fail(Box::new(e)))?;
        let mut details = Vec::new();
        for (name, request) in self.custodians.iter().zip(&requests) {
            let bytes = crate::remote_signing::request_bundle(
                request,
                signer.as_ref(),
                context.time,
                context.rehearsal,
            )
            .map_err(|e| fail(Box::new(e)))?;
            let file = format!("request-{name}.rcb");
            crate::files::write_new(&dir.join(&file), &bytes)?;
            details.push(format!(
                "{file}: {} asked to sign root v{} (payload SHA-256 {})",
                request.key, request.version, request.payload_sha256
            ));
        }
        Ok(details)
    }
}
