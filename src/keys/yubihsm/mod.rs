//! The YubiHSM2 backend, native (the `yubihsm` crate speaks the device's protocol in Rust; no
//! PKCS#11 module or C library). To `x509` and `tuf` a YubiHSM2 key is a [`Signer`] like any
//! PKCS#11 key: key URIs select it, nothing else changes.
//!
//! # Key URIs
//!
//! ```text
//! yubihsm:connector=CONNECTOR[;serial=NNNNNNNNNN][;id=0xNNNN][;label=LABEL]?auth-key=0xNNNN[&password-source=PATH]
//! ```
//!
//! Path attributes name the device and the key:
//!
//! - `connector=` (required): `usb` (the device directly, over libusb);
//!   `http://127.0.0.1:PORT` (Yubico's `yubihsm-connector` on this machine; the port defaults to
//!   12345; loopback addresses only, as keys are never driven across a network); or a name
//!   registered in the provider's configuration with
//!   [`HsmConfig::register_connector`](crate::keys::HsmConfig::register_connector) (below).
//! - `serial=`: the device's 10-digit serial number. Over USB it picks the device; otherwise it
//!   is checked against the device reached. Key URIs that rootcellar prints always carry it.
//! - `id=`: the key's object id, written `0x` and exactly four hex digits (`id=0x0102`), so that
//!   an id is never read in the wrong base.
//! - `label=`: the key's label (1 to 40 bytes, percent-encoded).
//!
//! A key URI names a key by `id`, by `label`, or by both (then both must match). Query
//! attributes say how this machine logs in, and are left out of the URIs recorded in
//! certificates' and TUF metadata's reports:
//!
//! - `auth-key=0xNNNN`: the authentication key to open a session with (required to open a
//!   device; the factory default key is `0x0001`);
//! - `password-source=PATH`: a file whose first line is that key's password (rehearsals and
//!   tests). Without it the password is asked for at the console, echo off.
//!
//! Parsing is strict: unknown or repeated attributes are refused, and `password=` (or any
//! spelling of a password value) is refused without being echoed. Examples:
//!
//! ```text
//! yubihsm:connector=usb;serial=0012345678;id=0x0102;label=root-ca?auth-key=0x0002&password-source=/run/hsm.pw
//! yubihsm:connector=http://127.0.0.1:12345;label=tuf-root-1?auth-key=0x0002
//! ```
//!
//! # The connector seam, and MockHsm in tests
//!
//! The `yubihsm` crate's MockHsm is a test-only device: it refuses to compile without debug
//! assertions, so the library never includes it (`mockhsm` is a dev-dependency feature). What
//! the library holds is a `yubihsm::Connector`, which exists without the mock. A test builds
//! `yubihsm::Connector::mockhsm()` (one independent device each), registers it under a name
//! in an [`HsmConfig`](crate::keys::HsmConfig), and from then on `yubihsm:connector=NAME;…`
//! URIs reach it through that configuration's provider ([`crate::keys::Hsm::backend`],
//! [`crate::keys::Hsm::signer`]) like a real device: the same URI parsing, authentication, key
//! lookup and signing code runs. A name is registered once per configuration.
//!
//! # Sessions and passwords
//!
//! A device is opened once per provider for each (connector, serial, authentication key): the
//! password is read once (from the prompt or the `password-source` file, into zeroized
//! memory), the authentication key's secret is derived from it (PBKDF2, as Yubico's tools do;
//! the password itself is wiped at once), and every backend, signer, backup and audit call on
//! that device shares the session. A wrong password is reported once and never retried.
//!
//! # Keys
//!
//! Keys are generated inside the device ([`YubiHsm::generate_key`], or
//! [`KeyBackend::generate`]) as ECDSA P-256 or P-384 with the
//! capability `sign-ecdsa` only; `exportable-under-wrap` is added only when a backup policy asks
//! ([`KeySpec::exportable_under_wrap`]). Signing hashes in software and asks the device to sign
//! the digest; the DER signature is checked against the public key before it is returned.
//!
//! Also here: wrapped backups split M-of-N ([`backup_keys`], [`restore_keys`]) and the device's
//! audit log ([`audit_log`]).

mod audit;
mod backup;
mod connect;
mod enforcement;
mod generate;
mod lookup;
mod password;
mod sign;
mod uri;

use std::sync::Arc;

pub use audit::{
    audit_log, mark_audit_log_read, verify_audit_chain, AuditEntry, AuditLog, AuditSummary,
    OperationCount,
};
pub use backup::{
    backup_keys, restore_keys, WrappedBackup, WrappedKey, WrappedKeys, BACKUP_FORMAT,
};
pub(crate) use connect::YubiHsmSessions;
pub use connect::{Password, PasswordSource, YubiHsm};
pub use generate::KeySpec;
pub use lookup::KeyDetails;
pub use password::TEMPORARY_AUTH_KEY_LABEL;
pub use sign::YubiHsmSigner;
pub(crate) use uri::valid_connector_name;
pub use uri::{format_id, ConnectorSpec, YubiHsmUri, DEFAULT_CONNECTOR_PORT, MAX_LABEL_LEN};

use crate::keys::{Enforcement, KeyAlgorithm, KeyBackend, KeyError, KeyInfo, KeyLocation, Signer};

/// A YubiHSM2 seen through the backend seam, as opened from one URI.
pub struct YubiHsmBackend {
    device: Arc<YubiHsm>,
    /// The URI the backend was opened with: its `id=`, if any, is the id a generated key gets.
    opened_with: YubiHsmUri,
}

impl YubiHsmBackend {
    /// The backend of `device`, as opened from `uri` (by [`crate::keys::Hsm`]).
    pub(crate) fn new(device: Arc<YubiHsm>, uri: YubiHsmUri) -> Self {
        YubiHsmBackend {
            device,
            opened_with: uri,
        }
    }

    /// A signer for the one key `uri` names.
    pub(crate) fn signer_for(&self, uri: &YubiHsmUri) -> Result<Arc<dyn Signer>, KeyError> {
        let details = self.device.find_key(uri)?;
        Ok(Arc::new(YubiHsmSigner::new(self.device.clone(), &details)))
    }

    /// The device.
    pub fn device(&self) -> &Arc<YubiHsm> {
        &self.device
    }
}

impl KeyBackend for YubiHsmBackend {
    /// Generates a sign-only, non-exportable key labelled `label` in domain 1, under the `id=`
    /// of the URI the backend was opened with, or a random free id.
    fn generate(&self, label: &str, algorithm: KeyAlgorithm) -> Result<KeyInfo, KeyError> {
        let spec = KeySpec {
            id: self.opened_with.id,
            ..KeySpec::new(label, algorithm)
        };
        let details = self.device.generate_key(&spec)?;
        Ok(self.device.key_info(&details))
    }

    /// Like [`generate`](Self::generate), with `exportable-under-wrap` added so that
    /// [`backup_keys`] can export the key under a wrap key.
    fn generate_for_backup(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<KeyInfo, KeyError> {
        let spec = KeySpec {
            id: self.opened_with.id,
            exportable_under_wrap: true,
            ..KeySpec::new(label, algorithm)
        };
        let details = self.device.generate_key(&spec)?;
        Ok(self.device.key_info(&details))
    }

    fn ensure_label_free(&self, label: &str) -> Result<(), KeyError> {
        if self.device.ids_with_label(label)?.is_empty() {
            Ok(())
        } else {
            Err(KeyError::LabelExists {
                token: self.device.description().to_string(),
                label: label.to_string(),
            })
        }
    }

    fn enforcement(&self) -> Result<Option<Enforcement>, KeyError> {
        self.device.enforcement().map(Some)
    }

    fn device_info(&self) -> Result<Option<crate::keys::DeviceInfo>, KeyError> {
        self.device.device_info().map(Some)
    }

    fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        Ok(self
            .device
            .list_keys()?
            .iter()
            .map(|details| self.device.key_info(details))
            .collect())
    }

    fn show(&self, location: &KeyLocation) -> Result<KeyInfo, KeyError> {
        let details = self.device.find_key(yubihsm_uri(location)?)?;
        Ok(self.device.key_info(&details))
    }

    fn signer(&self, location: &KeyLocation) -> Result<Arc<dyn Signer>, KeyError> {
        self.signer_for(yubihsm_uri(location)?)
    }
}

/// The YubiHSM2 URI of `location`; a PKCS#11 URI names no key in a YubiHSM2.
fn yubihsm_uri(location: &KeyLocation) -> Result<&YubiHsmUri, KeyError> {
    match location {
        KeyLocation::YubiHsm(uri) => Ok(uri),
        KeyLocation::Pkcs11(_) => Err(KeyError::InvalidUri {
            uri: location.without_query(),
            reason: "a pkcs11: URI names no key in a YubiHSM2".into(),
        }),
    }
}
