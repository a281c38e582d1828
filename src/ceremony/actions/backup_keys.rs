//! `backup-keys`: keys exported wrapped under a fresh key that is split M of N among the
//! custodians, so that the backup is useless without a quorum. A PKCS#11 token wraps with
//! `C_WrapKey` under an AES key that its security officer makes trusted (the keys are
//! wrap-with-trusted: no other key can wrap them), so the SO PIN is asked for; a YubiHSM2
//! exports under a wrap key made for the backup. A wrap key an earlier run or another tool left
//! on the token is removed first, journaled.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Perform;
use crate::ceremony::context::{step_error, Context};
use crate::ceremony::script::{Script, Step};
use crate::ceremony::CeremonyError;
use crate::keys::yubihsm as yubihsm_keys;
use crate::keys::{KeyBackend, KeyLocation, PinSource, Pkcs11Token, WrapAuthority, WRAP_KEY_LABEL};

/// Export keys wrapped under a fresh AES key, split that key M of N among the custodians.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupKeys {
    /// Keys (all on one token, each generated with `backup = true`).
    pub keys: Vec<String>,
    /// Output file name (the wrapped keys; useless without a quorum of shares).
    pub output: String,
}

/// A backup file: the wrapped keys, and which split of the wrap key opens them.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct BackupFile {
    pub(super) format: String,
    pub(super) token: String,
    pub(super) set_id: String,
    pub(super) threshold: u8,
    pub(super) keys: Vec<crate::keys::WrappedKey>,
}

pub(super) const BACKUP_FORMAT: &str = "rootcellar-key-backup/1";

/// Where rehearsal keeps the shares of backups' wrap keys (`STATE/rehearsal/shares/backup/`).
pub(super) const SHARE_GROUP: &str = "backup";

impl Perform for BackupKeys {
    fn keys(&self) -> Vec<&str> {
        self.keys.iter().map(String::as_str).collect()
    }

    fn writes(&self) -> Vec<String> {
        vec![self.output.clone()]
    }

    fn problems(&self, script: &Script) -> Vec<String> {
        let mut problems = Vec::new();
        let mut tokens = BTreeSet::new();
        for key in &self.keys {
            if let Some(spec) = script.keys.get(key) {
                if !spec.backup {
                    problems.push(format!(
                        "keys.{key} is not generated for backup (backup = true); a non-extractable key cannot leave its token"
                    ));
                }
                if let Ok(location) = crate::keys::KeyLocation::parse(&spec.uri) {
                    tokens.insert(location.device());
                }
            }
        }
        if tokens.len() > 1 {
            problems.push(format!(
                "the keys are on {} devices; back up one token or YubiHSM2 per step",
                tokens.len()
            ));
        }
        if script.roles.quorum.is_none() {
            problems.push("a backup needs roles.quorum and roles.custodians".into());
        }
        problems
    }

    fn perform(
        &self,
        context: &mut Context<'_>,
        step: &Step,
        scratch: &Path,
    ) -> Result<Vec<String>, CeremonyError> {
        let fail = step_error(step);
        let names = &self.keys;
        let mut details = Vec::new();
        let location = context.key_uri(&names[0])?;
        let token_label = location.device();
        let custodians = context.script.roles.custodians.clone();
        let threshold = context.script.roles.quorum.unwrap_or(custodians.len());
        let (contents, public_keys, shares) = match &location {
            KeyLocation::Pkcs11(uri) => {
                let labels = names
                    .iter()
                    .map(|n| {
                        Ok(context
                            .key_uri(n)?
                            .key_label()
                            .unwrap_or_default()
                            .to_string())
                    })
                    .collect::<Result<Vec<_>, CeremonyError>>()?;
                let user_pin = context.pins[&token_label].clone();
                let token = context
                    .hsm
                    .pkcs11_token(uri, Some(&PinSource::Given(user_pin.clone())))?;
                remove_leftover_wrap_keys(context, &token)?;
                let trusted = needs_trusted_wrap(context, step, &token, names)?;
                let so_pin = if trusted {
                    Some(context.so_pin(&token_label)?)
                } else {
                    None
                };
                let authority = match &so_pin {
                    Some(so_pin) => WrapAuthority::SecurityOfficer {
                        so_pin,
                        user_pin: &user_pin,
                    },
                    None => WrapAuthority::User,
                };
                let (wrapped, wrap_key) = token.wrap_keys(&labels, authority)?;
                drop(so_pin);
                context.journal(
                    "backup.wrap-key",
                    format!(
                        "pkcs11:token={token_label}: a fresh AES-256 wrap key made {}, {} key(s) \
                         wrapped under it ({}), then destroyed; its value is split among the \
                         custodians",
                        if trusted {
                            "trusted (CKA_TRUSTED) under the security officer's login, as a \
                             session object"
                        } else {
                            "as an ordinary session key (allow_untrusted_wrap: the keys are not \
                             wrap-with-trusted)"
                        },
                        labels.len(),
                        labels.join(", ")
                    ),
                    vec![],
                    vec![],
                )?;
                let shares =
                    crate::keys::split_secret(&wrap_key, threshold as u8, custodians.len() as u8)
                        .map_err(|e| fail(Box::new(e)))?;
                let file = BackupFile {
                    format: BACKUP_FORMAT.into(),
                    token: token_label.clone(),
                    set_id: shares[0].set_id(),
                    threshold: threshold as u8,
                    keys: wrapped,
                };
                let public_keys = file
                    .keys
                    .iter()
                    .map(|k| (k.label.clone(), k.public_key_pem.clone()))
                    .collect::<Vec<_>>();
                let json = serde_json::to_string_pretty(&file).expect("backups serialise");
                (json, public_keys, shares)
            }
            KeyLocation::YubiHsm(_) => {
                // The YubiHSM2 way: a wrap key made for the backup, the keys exported under
                // it (Export Wrapped), the wrap key split and deleted from the device.
                let device = location
                    .yubihsm(&context.hsm)?
                    .expect("a YubiHSM2 location");
                let enforcement = device.enforcement()?;
                if let Some(name) = names
                    .iter()
                    .find(|n| !context.script.keys[n.as_str()].allow_untrusted_wrap)
                    .filter(|_| !enforcement.wrap_only_trusted)
                {
                    return Err(fail(
                        format!(
                            "{token_label} cannot keep keys.{name} from being exported under a \
                             wrap key of anyone's making ({}); accept this with \
                             allow_untrusted_wrap = true under [keys.{name}]",
                            enforcement.basis
                        )
                        .into(),
                    ));
                }
                let ids = names
                    .iter()
                    .map(|n| {
                        let KeyLocation::YubiHsm(uri) = context.key_uri(n)? else {
                            unreachable!("ceremony check keeps a backup on one device")
                        };
                        Ok(device.find_key(&uri)?.id)
                    })
                    .collect::<Result<Vec<_>, CeremonyError>>()?;
                let backup = yubihsm_keys::backup_keys(
                    &device,
                    &ids,
                    threshold as u8,
                    custodians.len() as u8,
                )?;
                let public_keys = backup
                    .keys
                    .keys
                    .iter()
                    .map(|k| (k.label.clone(), k.public_key_pem.clone()))
                    .collect::<Vec<_>>();
                let json = serde_json::to_string_pretty(&backup.keys.to_json())
                    .expect("backups serialise");
                (json, public_keys, backup.wrap_key_shares)
            }
        };
        let set_id = shares[0].set_id();
        crate::files::write_new(&scratch.join(&self.output), contents.as_bytes())?;
        let handed_out = context.deliver_shares(SHARE_GROUP, &set_id, &custodians, &shares)?;
        for (label, pem) in &public_keys {
            let public = crate::keys::PublicKey::from_spki(pem.as_bytes())?;
            details.push(format!("{label} wrapped, SHA256:{}", public.fingerprint()));
        }
        details.push(format!(
            "wrap key split {threshold} of {} (split {set_id})",
            custodians.len()
        ));
        details.extend(handed_out);
        Ok(details)
    }
}

/// Removes the wrap keys an earlier backup or another tool left on the token as token objects
/// (each could wrap the keys), journaled before they go.
fn remove_leftover_wrap_keys(
    context: &mut Context<'_>,
    token: &Pkcs11Token,
) -> Result<(), CeremonyError> {
    let leftover = token.leftover_wrap_keys()?;
    if leftover == 0 {
        return Ok(());
    }
    context.journal(
        "key.discard",
        format!(
            "pkcs11:token={}: {leftover} wrap key(s) labelled {WRAP_KEY_LABEL} left on the \
             token (by a backup cut short or another tool); removing them, as they could wrap \
             its keys",
            token.label()
        ),
        vec![],
        vec![],
    )?;
    token.remove_leftover_wrap_keys()?;
    Ok(())
}

/// Whether the backup's wrap key must be made trusted by the security officer: some key is
/// wrap-with-trusted. A key that is not (made before keys were fixed at birth, or on a token
/// that ignores the attribute) is refused unless its spec says `allow_untrusted_wrap = true`.
fn needs_trusted_wrap(
    context: &Context<'_>,
    step: &Step,
    token: &std::sync::Arc<Pkcs11Token>,
    names: &[String],
) -> Result<bool, CeremonyError> {
    let mut trusted = false;
    for name in names {
        let protection = token
            .show(&context.key_uri(name)?)?
            .protection
            .unwrap_or_default();
        if protection.wrap_with_trusted {
            trusted = true;
        } else if !context.script.keys[name].allow_untrusted_wrap {
            return Err(step_error(step)(
                format!(
                    "keys.{name} on token {:?} is not wrap-with-trusted (made before rootcellar \
                     fixed keys at birth, or on a token that ignores CKA_WRAP_WITH_TRUSTED): \
                     anyone holding the token's PIN can wrap it under a key of their own. Back \
                     it up all the same with allow_untrusted_wrap = true under [keys.{name}], \
                     and consider replacing it",
                    token.label()
                )
                .into(),
            ));
        }
    }
    Ok(trusted)
}
