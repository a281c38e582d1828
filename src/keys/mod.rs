//! Keys: the seam between signing logic and where keys live.
//!
//! Keys are reached through one value, the [`Hsm`] provider made from an [`HsmConfig`]: no
//! module path, session or device comes from a global or the environment (see `provider`).
//!
//! `x509` and `tuf` see only [`Signer`] ("here is your public key; sign these bytes"); they never
//! know whether the key is in a PKCS#11 token or elsewhere. Backends implement [`KeyBackend`]
//! for one token: generate a key inside it, list its keys, hand out signers. Keys are named by
//! URIs (RFC 7512 `pkcs11:`, so that any PKCS#11 module works without code changes; and
//! [`yubihsm:`](yubihsm) for YubiHSM2 devices driven natively).
//!
//! Private keys never exist in rootcellar's memory: they are generated inside the token as
//! sensitive, non-extractable, sign-only objects, fixed at birth (not modifiable, not
//! copyable), and every signature is made by the token. A key made for backup can leave its
//! token only wrapped under a key the security officer made trusted ([`Enforcement`] says
//! whether a token really holds to this).

mod backup;
mod capabilities;
mod enforcement;
mod error;
mod intent;
mod location;
mod pin;
mod pkcs11;
mod provider;
mod public_key;
mod share_text;
pub mod shares;
mod uri;
pub mod yubihsm;

use std::sync::Arc;

pub use backup::{WrapAuthority, WrappedKey, WRAP_KEY_LABEL};
pub use capabilities::DeviceInfo;
pub use enforcement::Enforcement;
pub use error::KeyError;
pub use intent::{IntentOutcome, KeyIntent};
pub use location::KeyLocation;
pub use pin::{Pin, PinSource};
pub use pkcs11::{KeyProtection, Pkcs11Token};
pub use provider::{Hsm, HsmConfig, MODULE_ENV};
pub use public_key::{KeyAlgorithm, PublicKey};
pub use shares::{combine_shares, split_secret, Share, ShareError};
pub use uri::Pkcs11Uri;
pub use yubihsm::{YubiHsmBackend, YubiHsmUri};

/// Something that can sign with one private key it holds.
pub trait Signer: Send + Sync {
    /// The key's public half.
    fn public_key(&self) -> &PublicKey;

    /// Signs `message` (the backend hashes it with the algorithm's digest) and returns the
    /// signature DER-encoded, as X.509 and TUF carry it.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError>;

    /// The key's URI without machine-specific query attributes, for display and records.
    fn key_uri(&self) -> String;
}

/// A key as listed by a backend.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// The key's URI (without module or PIN source).
    pub uri: String,
    /// The key's label.
    pub label: String,
    /// The public key.
    pub public_key: PublicKey,
    /// How the token protects the private key, when the backend can tell.
    pub protection: Option<KeyProtection>,
    /// What the device enforces of that protection ([`KeyBackend::enforcement`]), when it was
    /// asked (`key list` and `key show` ask).
    pub enforcement: Option<Enforcement>,
}

impl KeyInfo {
    /// The machine-readable form printed by `key show --json` and `key list --json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "uri": self.uri,
            "label": self.label,
            "algorithm": self.public_key.algorithm().name(),
            "public_key_pem": self.public_key.spki_pem(),
            "fingerprint_sha256": self.public_key.fingerprint(),
            "protection": self.protection,
            "enforcement": self.enforcement,
        })
    }

    /// The human-readable form printed by `key show` and `key list`.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "uri:         {}\nalgorithm:   {}\nfingerprint: SHA256:{}\n",
            self.uri,
            self.public_key.algorithm().name(),
            self.public_key.fingerprint()
        );
        if let Some(p) = &self.protection {
            text.push_str(&format!("protection:  {}\n", p.summary()));
        }
        if let Some(e) = &self.enforcement {
            text.push_str(&format!(
                "enforced:    {}\n             ({})\n",
                e.summary(),
                e.basis
            ));
        }
        text.push_str(&self.public_key.spki_pem());
        text
    }
}

/// One token's worth of keys.
pub trait KeyBackend {
    /// Generates a key pair inside the token, labelled `label`. Refuses a label in use.
    fn generate(&self, label: &str, algorithm: KeyAlgorithm) -> Result<KeyInfo, KeyError>;

    /// Generates a key pair whose private key can leave the token wrapped for a backup (it
    /// stays sensitive). Backends without wrapped export refuse.
    fn generate_for_backup(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<KeyInfo, KeyError> {
        let _ = (label, algorithm);
        Err(KeyError::UnsupportedAlgorithm(
            "this backend cannot generate keys for wrapped backup".into(),
        ))
    }

    /// Lists the signing keys on the token.
    fn list(&self) -> Result<Vec<KeyInfo>, KeyError>;

    /// What the device enforces of the protection keys get at birth (fixed attributes, no
    /// copy, wrap only under a trusted key), when the backend can tell.
    fn enforcement(&self) -> Result<Option<Enforcement>, KeyError> {
        Ok(None)
    }

    /// The device holding the keys, as it describes itself (manufacturer, model, serial,
    /// firmware), when the backend can tell: recorded with every key a ceremony makes.
    fn device_info(&self) -> Result<Option<DeviceInfo>, KeyError> {
        Ok(None)
    }

    /// Refuses a label already in use, before an intent to generate under it is recorded
    /// (once recorded, a key with that label is the intent's).
    fn ensure_label_free(&self, label: &str) -> Result<(), KeyError>;

    /// Generates the key `intent` describes, under its id where the backend has ids it can
    /// choose (PKCS#11 `CKA_ID`).
    fn generate_intended(&self, intent: &KeyIntent) -> Result<KeyInfo, KeyError> {
        let algorithm = intent.algorithm()?;
        if intent.for_backup {
            self.generate_for_backup(&intent.label, algorithm)
        } else {
            self.generate(&intent.label, algorithm)
        }
    }

    /// What the token holds for `intent`. The default, for backends whose generation is one
    /// atomic command (YubiHSM2), looks for the label: it was free when the intent was
    /// recorded, so a key under it is the intent's.
    fn find_intended(&self, intent: &KeyIntent) -> Result<IntentOutcome, KeyError> {
        let mut found = self.list()?.into_iter().filter(|k| k.label == intent.label);
        match (found.next(), found.next()) {
            (None, _) => Ok(IntentOutcome::Absent),
            (Some(key), None) => Ok(IntentOutcome::Complete(Box::new(key))),
            (Some(_), Some(_)) => Err(KeyError::LabelExists {
                token: String::new(),
                label: intent.label.clone(),
            }),
        }
    }

    /// Removes what is left of a key generation cut short (a lone half under the intended
    /// id); the number of objects removed. Backends whose generation is atomic have none.
    fn remove_partial(&self, intent: &KeyIntent) -> Result<usize, KeyError> {
        let _ = intent;
        Ok(0)
    }

    /// Describes the single key `location` names.
    fn show(&self, location: &KeyLocation) -> Result<KeyInfo, KeyError>;

    /// A signer for the single key `location` names.
    fn signer(&self, location: &KeyLocation) -> Result<Arc<dyn Signer>, KeyError>;
}
