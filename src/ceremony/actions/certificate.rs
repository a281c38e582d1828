//! What the certificate-signing actions (`root-certificate`, `intermediate`) share: the serial
//! is chosen and recorded before the key signs, and a step run again after an interruption
//! first settles what the interrupted run may have signed. The certificate it left, checked
//! against the recorded serial, is adopted; anything else is journaled as discarded (it may
//! have been signed; it is never delivered) before a new serial is chosen. So every serial a
//! ceremony ever signed under is either in its outputs or in the journal as discarded, and
//! none is signed twice.

use std::path::Path;

use crate::ceremony::context::{step_error, Context};
use crate::ceremony::progress::{crash_point, Event};
use crate::ceremony::script::Step;
use crate::ceremony::CeremonyError;
use crate::x509::{CertificateOrder, IssuedCertificate, Serial};

/// Signs the certificate `output` of `order` with script key `key` under a serial recorded in
/// advance (set on the order here), or adopts the one an interrupted run of this step signed;
/// writes its PEM into `scratch`. The order's inputs are checked before the key is opened.
pub(super) fn sign_or_adopt(
    context: &mut Context<'_>,
    step: &Step,
    output: &str,
    scratch: &Path,
    mut order: impl CertificateOrder,
    key: &str,
) -> Result<IssuedCertificate, CeremonyError> {
    let fail = step_error(step);
    order.check().map_err(|e| fail(Box::new(e)))?;
    let key = context.signer(key)?;
    for (serial, adopted_before) in context.progress.open_certificate_intents(&step.id, output) {
        let found = context
            .leftovers
            .as_ref()
            .map(|dir| dir.join(output))
            .and_then(|path| std::fs::read(path).ok());
        order.set_serial(serial.clone());
        let checked = found
            .as_deref()
            .map(|bytes| order.adopt(bytes, key.as_ref()));
        match checked {
            Some(Ok(cert)) => {
                if !adopted_before {
                    context.journal(
                        "x509.adopt",
                        format!(
                            "{output}: serial {serial} SHA256:{}: signed by an interrupted run, \
                             checked and adopted",
                            cert.fingerprint()
                        ),
                        vec![],
                        vec![],
                    )?;
                    context.progress.record(Event::CertificateAdopted {
                        step: step.id.clone(),
                        output: output.to_string(),
                        serial,
                    })?;
                }
                crate::files::write_new(&scratch.join(output), cert.pem().as_bytes())?;
                return Ok(cert);
            }
            other => {
                let why = match other {
                    Some(Err(e)) => format!("what the interrupted run left was refused: {e}"),
                    _ => "the interrupted run left no certificate (the key may have signed it)"
                        .to_string(),
                };
                // Journaled first: a crash before the progress record discards it again.
                context.journal(
                    "x509.discard",
                    format!("{output}: serial {serial}: {why}; discarded, never delivered"),
                    vec![],
                    vec![],
                )?;
                context.progress.record(Event::CertificateDiscarded {
                    step: step.id.clone(),
                    output: output.to_string(),
                    serial,
                })?;
            }
        }
    }
    let serial = Serial::random();
    context.progress.record(Event::CertificateIntent {
        step: step.id.clone(),
        output: output.to_string(),
        serial: serial.clone(),
    })?;
    context.journal(
        "x509.intent",
        format!("{output}: serial {serial}, about to be signed"),
        vec![],
        vec![],
    )?;
    crash_point(&step.id, format_args!("intent-{output}"));
    order.set_serial(serial);
    let cert = order.sign(key.as_ref()).map_err(|e| fail(Box::new(e)))?;
    crate::files::write_new(&scratch.join(output), cert.pem().as_bytes())?;
    crash_point(&step.id, format_args!("signed-{output}"));
    Ok(cert)
}
