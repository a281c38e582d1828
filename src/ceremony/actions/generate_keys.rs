//! `generate-keys`: keys generated inside their tokens, intent before effect. Before a token is
//! asked, the key's label and an id chosen in advance are recorded (flushed); on resume the
//! token is searched for that id: a whole key pair is adopted (and journaled as adopted), a lone
//! half left by a kill inside the generation is removed (and journaled) and the key made again,
//! nothing at all means it is made. A key is never generated twice, and never lost.

use std::path::Path;

use serde::Deserialize;

use super::Perform;
use crate::ceremony::context::{step_error, Context};
use crate::ceremony::progress::{crash_point, Event};
use crate::ceremony::script::{Script, Step};
use crate::ceremony::CeremonyError;
use crate::journal::Digest as JournalDigest;
use crate::keys::{IntentOutcome, KeyAlgorithm, KeyBackend, KeyInfo, KeyIntent, KeyLocation};

/// Generate keys inside their tokens.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateKeys {
    /// Key names from `[keys]`.
    pub keys: Vec<String>,
}

impl Perform for GenerateKeys {
    fn keys(&self) -> Vec<&str> {
        self.keys.iter().map(String::as_str).collect()
    }

    fn makes_keys(&self) -> Vec<&str> {
        self.keys()
    }

    fn preview(&self, context: &Context<'_>) -> Vec<String> {
        self.keys
            .iter()
            .map(|name| {
                let spec = &context.script.keys[name];
                let at = KeyLocation::parse(&spec.uri)
                    .map(|l| l.without_query())
                    .unwrap_or_else(|_| spec.uri.clone());
                format!(
                    "generates key {name} ({}{}) at {at}",
                    spec.algorithm.as_deref().unwrap_or("?"),
                    if spec.backup {
                        "; exportable only wrapped under a trusted key, for its backup"
                    } else {
                        "; never leaves the token"
                    }
                )
            })
            .collect()
    }

    fn writes(&self) -> Vec<String> {
        // Each generated key's public half, so the transcript and outputs can carry it.
        self.keys.iter().map(|k| format!("{k}.pub.pem")).collect()
    }

    fn problems(&self, script: &Script) -> Vec<String> {
        self.keys
            .iter()
            .filter(|key| script.keys.get(*key).is_some_and(|k| k.algorithm.is_none()))
            .map(|key| format!("keys.{key}.algorithm is needed to generate it"))
            .collect()
    }

    fn perform(
        &self,
        context: &mut Context<'_>,
        step: &Step,
        scratch: &Path,
    ) -> Result<Vec<String>, CeremonyError> {
        let mut details = Vec::new();
        for name in &self.keys {
            let uri = context.key_uri(name)?;
            let backend = context.hsm.backend(&uri)?;
            let info = generate_or_adopt(context, step, name, &uri, backend.as_ref())?;
            details.push(format!(
                "key {name}: {} SHA256:{}",
                info.public_key.algorithm().name(),
                info.public_key.fingerprint()
            ));
            details.push(format!(
                "key {name} device: {}",
                device_summary(backend.as_ref())?
            ));
            // For the witnesses to read back, and the TUF key id an auditor finds in roots.
            let tuf_id = crate::tuf::TufKey::from_public(&info.public_key)
                .map(|k| format!(", TUF key id {}", k.key_id))
                .unwrap_or_default();
            details.push(format!(
                "key {name} read aloud: {}{tuf_id}",
                info.public_key.fingerprint_read_aloud()
            ));
            let pem_name = format!("{name}.pub.pem");
            crate::files::write_new(
                &scratch.join(&pem_name),
                info.public_key.spki_pem().as_bytes(),
            )?;
        }
        Ok(details)
    }
}

/// Generates key `name` at `uri`, or adopts the one an interrupted run of this step made.
fn generate_or_adopt(
    context: &mut Context<'_>,
    step: &Step,
    name: &str,
    uri: &KeyLocation,
    backend: &dyn KeyBackend,
) -> Result<KeyInfo, CeremonyError> {
    let fail = step_error(step);
    // Recorded the moment the token made it (or adopted): nothing left to reconcile.
    if let Some((recorded_uri, fingerprint)) = context.progress.generated_key(&step.id, name) {
        let info = backend.show(&KeyLocation::parse(recorded_uri)?)?;
        if info.public_key.fingerprint() != fingerprint {
            return Err(fail(
                format!("key {name} on the token is not the one this ceremony generated").into(),
            ));
        }
        return Ok(info);
    }
    let intent = match context.progress.key_intent(&step.id, name) {
        Some(intent) => intent.clone(),
        None => {
            let spec = &context.script.keys[name];
            let algorithm = KeyAlgorithm::from_name(spec.algorithm.as_deref().unwrap_or_default())?;
            let label = uri.key_label().unwrap_or_default();
            // Free now, so that once the intent is recorded a key under this label is its.
            backend.ensure_label_free(label)?;
            if spec.backup {
                check_wrap_enforced(context, step, name, backend)?;
            }
            let intent = KeyIntent::new(label, algorithm, spec.backup);
            context.progress.record(Event::KeyIntent {
                step: step.id.clone(),
                name: name.to_string(),
                intent: intent.clone(),
            })?;
            crash_point(&step.id, format_args!("intent-key-{name}"));
            intent
        }
    };
    let mut outcome = backend.find_intended(&intent)?;
    if let IntentOutcome::Partial {
        public,
        private,
        unnamed,
    } = outcome
    {
        // Journaled before the objects go: a kill in between removes them on the next run
        // and journals it again, rather than losing the record.
        context.journal(
            "key.discard",
            format!(
                "{}: a generation cut short left {public} public and {private} private \
                 half/halves under CKA_ID {}, and {unnamed} key object(s) without label or id; \
                 removing them",
                uri.without_query(),
                intent.id
            ),
            vec![],
            vec![],
        )?;
        backend.remove_partial(&intent)?;
        outcome = backend.find_intended(&intent)?;
    }
    let (info, action, how) = match outcome {
        IntentOutcome::Complete(info) => {
            (*info, "key.adopt", "adopted: made by an interrupted run")
        }
        IntentOutcome::Absent => (
            backend.generate_intended(&intent)?,
            "key.generate",
            "generated",
        ),
        IntentOutcome::Partial { .. } => {
            return Err(fail(
                format!(
                    "key {name}: what an interrupted generation left on the token could not be \
                     removed"
                )
                .into(),
            ))
        }
    };
    crash_point(&step.id, format_args!("made-key-{name}"));
    context.journal(
        action,
        format!(
            "{} {} ({how}) on device: {}",
            KeyLocation::parse(&info.uri)?.without_query(),
            info.public_key.algorithm().name(),
            device_summary(backend)?
        ),
        vec![],
        vec![JournalDigest::of(
            format!("{name} public key (SPKI DER)"),
            &info.public_key.spki_der(),
        )],
    )?;
    context.progress.record(Event::Key {
        step: step.id.clone(),
        name: name.to_string(),
        uri: KeyLocation::parse(&info.uri)?.without_query(),
        fingerprint: info.public_key.fingerprint(),
    })?;
    crash_point(&step.id, format_args!("after-key-{name}"));
    Ok(info)
}

/// The device a key was made on, as it describes itself (manufacturer, model, serial,
/// firmware), so that an auditor can tie the key to the device.
fn device_summary(backend: &dyn KeyBackend) -> Result<String, CeremonyError> {
    Ok(backend
        .device_info()?
        .map(|device| device.summary())
        .unwrap_or_else(|| "not described by its backend".into()))
}

/// A key made for backup is refused on a device that cannot keep it from being wrapped under a
/// key of anyone's making (measured: see [`keys::Enforcement`]), unless the script accepts
/// that (`allow_untrusted_wrap = true`); said to the room either way.
fn check_wrap_enforced(
    context: &mut Context<'_>,
    step: &Step,
    name: &str,
    backend: &dyn KeyBackend,
) -> Result<(), CeremonyError> {
    let Some(enforcement) = backend.enforcement()? else {
        return Ok(());
    };
    let device = context.key_uri(name)?.device();
    context.prompter.say(&format!(
        "   {device}: {} ({})",
        enforcement.summary(),
        enforcement.basis
    ));
    if enforcement.wrap_only_trusted || context.script.keys[name].allow_untrusted_wrap {
        return Ok(());
    }
    Err(step_error(step)(
        format!(
            "keys.{name} is to be generated for backup, but {device} cannot enforce \
             wrap-with-trusted ({}): anyone holding its PIN or password could wrap the key \
             under a key of their own and read it. Use a device that enforces it, or accept \
             this with allow_untrusted_wrap = true under [keys.{name}]",
            enforcement.basis
        )
        .into(),
    ))
}
