//! `crl`: a CRL signed by the issuer, revoking the serials an input lists.

use std::path::Path;

use serde::Deserialize;

use super::Perform;
use crate::ceremony::context::{step_error, Context};
use crate::ceremony::script::{Script, Step};
use crate::ceremony::CeremonyError;

/// Sign a CRL revoking the serials listed (one hex serial per line) in an input file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crl {
    /// The issuing key.
    pub key: String,
    /// The issuer certificate: an input or an earlier output.
    pub issuer: String,
    /// The input listing serials to revoke.
    pub revoke: String,
    /// Days until nextUpdate.
    pub days: u32,
    /// Output file name.
    pub output: String,
}

impl Perform for Crl {
    fn keys(&self) -> Vec<&str> {
        vec![&self.key]
    }

    fn reads(&self) -> Vec<String> {
        vec![self.issuer.clone(), self.revoke.clone()]
    }

    fn writes(&self) -> Vec<String> {
        vec![self.output.clone()]
    }

    fn problems(&self, _script: &Script) -> Vec<String> {
        if self.days == 0 {
            vec!["days must be at least 1".into()]
        } else {
            vec![]
        }
    }

    fn perform(
        &self,
        context: &mut Context<'_>,
        step: &Step,
        scratch: &Path,
    ) -> Result<Vec<String>, CeremonyError> {
        let fail = step_error(step);
        let output = &self.output;
        let list =
            std::fs::read_to_string(context.path(&self.revoke)).map_err(|e| fail(Box::new(e)))?;
        let order = crate::x509::CrlOrder {
            issuer_cert: context.path(&self.issuer),
            revoke: list
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect(),
            this_update: context.time,
            days: self.days,
            out: scratch.join(output),
        };
        order.check().map_err(|e| fail(Box::new(e)))?;
        let key = context.signer(&self.key)?;
        let crl = order.execute(key.as_ref()).map_err(|e| fail(Box::new(e)))?;
        Ok(vec![format!(
            "{output}: CRL number {}, revoked [{}], next update {}",
            crl.number,
            crl.revoked.join(", "),
            crl.next_update
        )])
    }
}
