//! `intermediate`: an intermediate CA certificate issued from a CSR under a profile (Fulcio,
//! TSA).

use std::path::Path;

use serde::Deserialize;

use super::certificate::sign_or_adopt;
use super::Perform;
use crate::ceremony::context::{step_error, Context};
use crate::ceremony::script::{InputKind, Script, Step};
use crate::ceremony::CeremonyError;
use crate::x509::{CertificateRequest, IntermediateOrder, Serial};

/// Issue an intermediate from a CSR under a profile.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intermediate {
    /// The issuing key.
    pub key: String,
    /// The issuer certificate: an input or an earlier output.
    pub issuer: String,
    /// The CSR: an input.
    pub csr: String,
    /// `fulcio` or `tsa`.
    pub profile: String,
    /// Lifetime in days (default: the profile's).
    #[serde(default)]
    pub days: Option<u32>,
    /// Output file name.
    pub output: String,
}

impl Perform for Intermediate {
    fn keys(&self) -> Vec<&str> {
        vec![&self.key]
    }

    fn reads(&self) -> Vec<String> {
        vec![self.issuer.clone(), self.csr.clone()]
    }

    fn writes(&self) -> Vec<String> {
        vec![self.output.clone()]
    }

    fn problems(&self, script: &Script) -> Vec<String> {
        let csr = &self.csr;
        let mut problems = Vec::new();
        if let Err(e) = crate::x509::Profile::from_name(&self.profile) {
            problems.push(e.to_string());
        }
        let csr_kind = script
            .inputs
            .iter()
            .find(|i| &i.name == csr)
            .map(|i| i.kind);
        if csr_kind.is_some_and(|kind| kind != InputKind::Csr) {
            problems.push(format!("input {csr:?} is not of kind \"csr\""));
        }
        if self.days == Some(0) {
            problems.push("days must be at least 1".into());
        }
        problems
    }

    /// What is certified, before anything is signed: the request's subject and key, for the
    /// witnesses to compare with what the requester gave them out of band.
    fn preview(&self, context: &Context<'_>) -> Vec<String> {
        let mut lines = vec![format!(
            "profile {}, valid {} days from {}",
            self.profile,
            self.days.map(|d| d.to_string()).unwrap_or("default".into()),
            context.time
        )];
        let request = std::fs::read(context.path(&self.csr))
            .map_err(|e| e.to_string())
            .and_then(|bytes| CertificateRequest::parse(&bytes).map_err(|e| e.to_string()));
        match request {
            Ok(request) => {
                lines.push(format!(
                    "certifies {}, key {}",
                    request.subject_text,
                    request.public_key.algorithm().name()
                ));
                lines.push(format!(
                    "   request key: {}",
                    request.public_key.fingerprint_read_aloud()
                ));
                for ignored in &request.ignored_extensions {
                    lines.push(format!("   ignored from the request: {ignored}"));
                }
            }
            // Refused again, by name, when the step runs; nothing is signed.
            Err(e) => lines.push(format!("the request {} is refused: {e}", self.csr)),
        }
        lines
    }

    fn perform(
        &self,
        context: &mut Context<'_>,
        step: &Step,
        scratch: &Path,
    ) -> Result<Vec<String>, CeremonyError> {
        let fail = step_error(step);
        let output = &self.output;
        let profile =
            crate::x509::Profile::from_name(&self.profile).map_err(|e| fail(Box::new(e)))?;
        let order = IntermediateOrder {
            csr: context.path(&self.csr),
            profile,
            issuer_cert: context.path(&self.issuer),
            subject: None,
            validity: crate::x509::Validity {
                not_before: context.time,
                days: self.days.unwrap_or(profile.default_days()),
            },
            // Chosen and recorded by sign_or_adopt.
            serial: Serial::random(),
            out: scratch.join(output),
        };
        let cert = sign_or_adopt(context, step, output, scratch, order, &self.key)?;
        Ok(vec![format!(
            "{output}: {} serial {} SHA256:{}",
            cert.subject,
            cert.serial_hex,
            cert.fingerprint()
        )])
    }
}
