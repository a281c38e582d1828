//! `root-certificate`: the root CA's self-signed certificate.

use std::path::Path;

use serde::Deserialize;

use super::certificate::sign_or_adopt;
use super::Perform;
use crate::ceremony::context::{step_error, Context};
use crate::ceremony::script::{Script, Step};
use crate::ceremony::CeremonyError;
use crate::x509::{RootCaOrder, Serial, Validity};

/// Self-sign the root CA certificate.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootCertificate {
    /// The root CA key.
    pub key: String,
    /// Subject, `O=…,CN=…`.
    pub subject: String,
    /// Lifetime in days.
    pub days: u32,
    /// Output file name.
    pub output: String,
}

impl Perform for RootCertificate {
    fn keys(&self) -> Vec<&str> {
        vec![&self.key]
    }

    fn writes(&self) -> Vec<String> {
        vec![self.output.clone()]
    }

    fn problems(&self, _script: &Script) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = crate::x509::parse_subject(&self.subject) {
            problems.push(format!("subject: {e}"));
        }
        if self.days == 0 {
            problems.push("days must be at least 1".into());
        }
        problems
    }

    fn preview(&self, context: &Context<'_>) -> Vec<String> {
        vec![format!(
            "subject {}, valid {} days from {}",
            subject_for(context, &self.subject),
            self.days,
            context.time
        )]
    }

    fn perform(
        &self,
        context: &mut Context<'_>,
        step: &Step,
        scratch: &Path,
    ) -> Result<Vec<String>, CeremonyError> {
        let fail = step_error(step);
        let output = &self.output;
        let subject = subject_for(context, &self.subject);
        crate::x509::parse_subject(&subject).map_err(|e| fail(Box::new(e)))?;
        let order = RootCaOrder {
            subject,
            validity: Validity {
                not_before: context.time,
                days: self.days,
            },
            // Chosen and recorded by sign_or_adopt.
            serial: Serial::random(),
            out: scratch.join(output),
        };
        let cert = sign_or_adopt(context, step, output, scratch, order, &self.key)?;
        Ok(vec![format!(
            "{output}: serial {} SHA256:{}",
            cert.serial_hex,
            cert.fingerprint()
        )])
    }
}

/// Rehearsal outputs say so in their subject, so they cannot pass for production.
fn subject_for(context: &Context<'_>, subject: &str) -> String {
    if context.rehearsal {
        format!("{subject},OU=REHEARSAL - NOT FOR PRODUCTION")
    } else {
        subject.to_string()
    }
}
