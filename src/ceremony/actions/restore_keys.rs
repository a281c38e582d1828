//! `restore-keys`: backed-up keys rebuilt into another token (or YubiHSM2) from the backup and a
//! quorum of the custodians' shares of its wrap key. Resumed after a kill, a PKCS#11 restore
//! adopts a key an earlier run restored whole and removes what one cut short left (both
//! journaled), as key generation does.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::backup_keys::{BackupFile, BACKUP_FORMAT, SHARE_GROUP};
use super::Perform;
use crate::ceremony::context::{step_error, Context};
use crate::ceremony::script::{Script, Step};
use crate::ceremony::CeremonyError;
use crate::journal::Digest as JournalDigest;
use crate::keys::yubihsm as yubihsm_keys;
use crate::keys::{
    IntentOutcome, KeyBackend, KeyIntent, KeyLocation, PinSource, Pkcs11Token, PublicKey,
    WrappedKey,
};

/// Rebuild backed-up keys into another token from the backup and a quorum of shares.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreKeys {
    /// The backup: an input.
    pub backup: String,
    /// A key on the target token (its label is ignored; the token is what counts).
    pub into: String,
    /// Output file name: the restored keys' fingerprints.
    pub output: String,
}

impl Perform for RestoreKeys {
    fn keys(&self) -> Vec<&str> {
        vec![&self.into]
    }

    fn makes_keys(&self) -> Vec<&str> {
        vec![&self.into]
    }

    fn reads(&self) -> Vec<String> {
        vec![self.backup.clone()]
    }

    fn writes(&self) -> Vec<String> {
        vec![self.output.clone()]
    }

    fn problems(&self, script: &Script) -> Vec<String> {
        if script.roles.quorum.is_none() {
            vec!["a restore needs roles.quorum and roles.custodians".into()]
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
        let backup = &self.backup;
        let mut details = Vec::new();
        let text = std::fs::read_to_string(context.path(backup)).map_err(|e| fail(Box::new(e)))?;
        let not_backup = |e: String| fail(format!("{backup} is not a key backup: {e}").into());
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| not_backup(e.to_string()))?;
        let custodians = context.script.roles.custodians.clone();
        let location = context.key_uri(&self.into)?;
        let token_label = location.device();
        // A PKCS#11 backup names its format as text; a YubiHSM2 backup by number.
        let restored = match (&value["format"], &location) {
            (serde_json::Value::String(_), KeyLocation::Pkcs11(uri)) => {
                let file: BackupFile =
                    serde_json::from_value(value).map_err(|e| not_backup(e.to_string()))?;
                if file.format != BACKUP_FORMAT {
                    return Err(fail(
                        format!("{backup}: unknown backup format {:?}", file.format).into(),
                    ));
                }
                let shares = gather_backup_shares(
                    context,
                    &format!("the backup of token {:?}", file.token),
                    &file.set_id,
                    file.threshold,
                    &custodians,
                )?;
                let wrap_key = crate::keys::combine_shares(&shares).map_err(|e| {
                    fail(format!("the shares of {backup} do not combine: {e}").into())
                })?;
                let token = context.hsm.pkcs11_token(
                    uri,
                    Some(&PinSource::Given(context.pins[&token_label].clone())),
                )?;
                details.push(format!(
                    "{token_label} device: {}",
                    token.device().summary()
                ));
                let mut publics = BTreeMap::new();
                let mut missing = Vec::new();
                for key in &file.keys {
                    match adopt_or_clear(context, step, &token, key)? {
                        Some(public) => {
                            publics.insert(key.label.clone(), public);
                        }
                        None => missing.push(key.clone()),
                    }
                }
                let restored = token.restore_keys(&missing, &wrap_key)?;
                publics.extend(missing.iter().map(|k| k.label.clone()).zip(restored));
                file.keys
                    .iter()
                    .filter_map(|k| Some((k.label.clone(), publics.remove(&k.label)?)))
                    .collect::<Vec<_>>()
            }
            (serde_json::Value::Number(_), KeyLocation::YubiHsm(_)) => {
                let keys = yubihsm_keys::WrappedKeys::from_json(text.as_bytes())?;
                let shares = gather_backup_shares(
                    context,
                    &format!("the backup of YubiHSM2 {}", keys.source_serial),
                    &keys.share_set,
                    keys.threshold,
                    &custodians,
                )?;
                let device = location.yubihsm(&context.hsm)?.expect("a YubiHSM2 location");
                details.push(format!(
                    "{token_label} device: {}",
                    device.device_info()?.summary()
                ));
                yubihsm_keys::restore_keys(&device, &keys, &shares)?
                    .into_iter()
                    .map(|d| (d.label.clone(), d.public_key))
                    .collect()
            }
            (serde_json::Value::String(_), _) => {
                return Err(fail(
                    format!("{backup} is a PKCS#11 backup: it restores into a PKCS#11 token, not {token_label}").into(),
                ))
            }
            (serde_json::Value::Number(_), _) => {
                return Err(fail(
                    format!("{backup} is a YubiHSM2 backup: it restores into a YubiHSM2, not token {token_label}").into(),
                ))
            }
            _ => return Err(not_backup("no format field".into())),
        };
        let mut report = String::new();
        for (label, public) in &restored {
            details.push(format!(
                "{label} restored into {token_label}, SHA256:{}",
                public.fingerprint()
            ));
            report.push_str(&format!("{label} SHA256:{}\n", public.fingerprint()));
        }
        crate::files::write_new(&scratch.join(&self.output), report.as_bytes())?;
        Ok(details)
    }
}

/// What an interrupted run of this step left of `key` in `token`, looked for by the label and
/// `CKA_ID` the backup gives it: the whole key pair, the backed-up key, is adopted (returned);
/// part of one (a kill inside `C_UnwrapKey` or before the public half was made, and the key
/// objects without label or id SoftHSM2 leaves) is removed; both are journaled. `None`: the
/// key is to be restored.
fn adopt_or_clear(
    context: &mut Context<'_>,
    step: &Step,
    token: &Arc<Pkcs11Token>,
    key: &WrappedKey,
) -> Result<Option<PublicKey>, CeremonyError> {
    let fail = step_error(step);
    let backed_up = PublicKey::from_spki(key.public_key_pem.as_bytes())?;
    if key.id.is_empty() {
        return Ok(None);
    }
    let intent = KeyIntent {
        label: key.label.clone(),
        algorithm: backed_up.algorithm().name().to_string(),
        for_backup: false,
        id: key.id.clone(),
    };
    let place = format!("pkcs11:token={};object={}", token.label(), key.label);
    let mut outcome = token.find_intended(&intent)?;
    if let IntentOutcome::Partial {
        public,
        private,
        unnamed,
    } = outcome
    {
        // Journaled before the objects go, as for a key generation cut short.
        context.journal(
            "key.discard",
            format!(
                "{place}: a restore cut short left {public} public and {private} private \
                 half/halves under CKA_ID {}, and {unnamed} key object(s) without label or id; \
                 removing them",
                key.id
            ),
            vec![],
            vec![],
        )?;
        token.remove_partial(&intent)?;
        outcome = token.find_intended(&intent)?;
    }
    match outcome {
        IntentOutcome::Absent => Ok(None),
        IntentOutcome::Complete(info)
            if info.public_key.fingerprint() == backed_up.fingerprint() =>
        {
            context.journal(
                "key.adopt",
                format!(
                    "{place} {} (adopted: restored by an interrupted run)",
                    backed_up.algorithm().name()
                ),
                vec![],
                vec![JournalDigest::of(
                    format!("{} public key (SPKI DER)", key.label),
                    &backed_up.spki_der(),
                )],
            )?;
            Ok(Some(info.public_key))
        }
        IntentOutcome::Complete(info) => Err(fail(
            format!(
                "{place}: the token holds a key under the backup's CKA_ID {} that is not the \
                 backed-up key (SHA256:{}, not SHA256:{})",
                key.id,
                info.public_key.fingerprint(),
                backed_up.fingerprint()
            )
            .into(),
        )),
        IntentOutcome::Partial { .. } => Err(fail(
            format!("{place}: what an interrupted restore left could not be removed").into(),
        )),
    }
}

/// The custodians' shares of a backup's wrap key (in rehearsal, from the rehearsal's share
/// files).
fn gather_backup_shares(
    context: &mut Context<'_>,
    what: &str,
    set_id: &str,
    threshold: u8,
    custodians: &[String],
) -> Result<Vec<crate::keys::Share>, CeremonyError> {
    let dir = context
        .rehearsal_shares
        .as_ref()
        .map(|d| d.join(SHARE_GROUP).join(set_id));
    crate::ceremony::quorum::gather_shares(
        context.prompter,
        what,
        set_id,
        threshold,
        custodians,
        dir.as_deref(),
    )
}
