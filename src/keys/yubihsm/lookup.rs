//! Finding keys on a YubiHSM2 by id or label, and describing them.

use yubihsm::object::{self, Origin};
use yubihsm::{asymmetric, Algorithm, Capability};

use super::connect::YubiHsm;
use super::uri::{format_id, YubiHsmUri};
use crate::keys::{KeyAlgorithm, KeyError, KeyInfo, KeyProtection, PublicKey};

/// What the device reports about one asymmetric key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KeyDetails {
    /// Object id.
    pub id: u16,
    /// Label (may be empty).
    pub label: String,
    /// Signing algorithm.
    pub algorithm: KeyAlgorithm,
    /// Capabilities, in the device's names (`sign-ecdsa`, `exportable-under-wrap`, …).
    pub capabilities: Vec<String>,
    /// Domains the key is in, as a bit set (bit 0 = domain 1).
    pub domains: u16,
    /// `generated`, `imported`, `wrapped-generated` (generated on a device, restored from a
    /// wrapped backup) or `wrapped-imported`.
    pub origin: &'static str,
    /// How many times an object with this id and type existed before (the device's counter).
    pub sequence: u8,
    /// The public key.
    #[serde(skip)]
    pub public_key: PublicKey,
}

impl KeyDetails {
    /// True when the key may leave the device encrypted under a wrap key (for backup).
    pub fn exportable_under_wrap(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| c == "exportable-under-wrap")
    }

    /// The PKCS#11 view of the key's protection, mapped as Yubico's own PKCS#11 module maps it:
    /// a YubiHSM2 private key is always persistent and never readable; "extractable" means
    /// exportable under wrap; sign, decrypt and derive follow the capabilities, which are fixed
    /// at birth (not modifiable, and there is no copy).
    pub fn protection(&self) -> KeyProtection {
        let has = |name: &str| self.capabilities.iter().any(|c| c == name);
        let born_inside = matches!(self.origin, "generated" | "wrapped-generated");
        let extractable = self.exportable_under_wrap();
        KeyProtection {
            token: true,
            sensitive: true,
            always_sensitive: born_inside,
            extractable,
            never_extractable: !extractable && self.origin == "generated",
            sign: has("sign-ecdsa"),
            decrypt: has("decrypt-pkcs") || has("decrypt-oaep"),
            unwrap: false,
            derive: has("derive-ecdh"),
            // The device has no command that changes an object's capabilities or copies it.
            modifiable: false,
            copyable: false,
            // No trusted flag either: who can export is who can make a wrap key (the
            // authentication key's capabilities, see `YubiHsm::enforcement`).
            wrap_with_trusted: false,
        }
    }
}

/// The device's capability names: `SIGN_ECDSA` becomes `sign-ecdsa`.
pub(crate) fn capability_names(capabilities: Capability) -> Vec<String> {
    capabilities
        .iter_names()
        .map(|(name, _)| name.to_ascii_lowercase().replace('_', "-"))
        .collect()
}

fn origin_name(origin: Origin) -> &'static str {
    match origin {
        Origin::Generated => "generated",
        Origin::Imported => "imported",
        Origin::WrappedGenerated => "wrapped-generated",
        Origin::WrappedImported => "wrapped-imported",
    }
}

/// The rootcellar algorithm of a YubiHSM2 algorithm, if it is one rootcellar signs with.
pub(crate) fn key_algorithm(algorithm: Algorithm) -> Option<KeyAlgorithm> {
    match algorithm {
        Algorithm::Asymmetric(asymmetric::Algorithm::EcP256) => Some(KeyAlgorithm::EcdsaP256),
        Algorithm::Asymmetric(asymmetric::Algorithm::EcP384) => Some(KeyAlgorithm::EcdsaP384),
        _ => None,
    }
}

pub(crate) fn yubihsm_algorithm(algorithm: KeyAlgorithm) -> asymmetric::Algorithm {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => asymmetric::Algorithm::EcP256,
        KeyAlgorithm::EcdsaP384 => asymmetric::Algorithm::EcP384,
    }
}

impl YubiHsm {
    /// Whether an object of `object_type` with `id` exists on the device.
    pub(crate) fn object_exists(
        &self,
        id: u16,
        object_type: object::Type,
    ) -> Result<bool, KeyError> {
        match self.client.get_object_info(id, object_type) {
            Ok(_) => Ok(true),
            Err(e) if e.device_error() == Some(yubihsm::device::ErrorKind::ObjectNotFound) => {
                Ok(false)
            }
            Err(e) => Err(self.error("get object info", e)),
        }
    }

    /// Describes the asymmetric key `id`. An id with no key, or a key rootcellar cannot sign
    /// with, is an error that names it.
    pub fn key_details(&self, id: u16) -> Result<KeyDetails, KeyError> {
        let info = match self.client.get_object_info(id, object::Type::AsymmetricKey) {
            Ok(info) => info,
            Err(e) if e.device_error() == Some(yubihsm::device::ErrorKind::ObjectNotFound) => {
                return Err(self.not_found(&self.uri().for_key(self.serial(), id, "")));
            }
            Err(e) => return Err(self.error("get object info", e)),
        };
        let algorithm = key_algorithm(info.algorithm).ok_or_else(|| {
            KeyError::UnsupportedAlgorithm(format!(
                "key {} on {} is {:?}, not ECDSA P-256 or P-384",
                format_id(id),
                self.description(),
                info.algorithm
            ))
        })?;
        let public = self
            .client
            .get_public_key(id)
            .map_err(|e| self.error("get public key", e))?;
        // The device returns the bare x‖y coordinates; SEC1 marks them uncompressed with 0x04.
        let mut point = Vec::with_capacity(1 + public.bytes.len());
        point.push(0x04);
        point.extend_from_slice(&public.bytes);
        Ok(KeyDetails {
            id,
            label: info.label.try_as_str().unwrap_or_default().to_string(),
            algorithm,
            capabilities: capability_names(info.capabilities),
            domains: info.domains.bits(),
            origin: origin_name(info.origin),
            sequence: info.sequence,
            public_key: PublicKey::from_point(algorithm, &point)?,
        })
    }

    /// Every ECDSA P-256 and P-384 key the session can see, sorted by label then id. Keys of
    /// other algorithms are left out.
    pub fn list_keys(&self) -> Result<Vec<KeyDetails>, KeyError> {
        let entries = self
            .client
            .list_objects(&[object::Filter::Type(object::Type::AsymmetricKey)])
            .map_err(|e| self.error("list objects", e))?;
        let mut keys = Vec::new();
        for entry in entries {
            match self.key_details(entry.object_id) {
                Ok(details) => keys.push(details),
                Err(KeyError::UnsupportedAlgorithm(_)) => {}
                Err(e) => return Err(e),
            }
        }
        keys.sort_by(|a, b| (&a.label, a.id).cmp(&(&b.label, b.id)));
        Ok(keys)
    }

    /// The ids of the asymmetric keys labelled `label`.
    pub(crate) fn ids_with_label(&self, label: &str) -> Result<Vec<u16>, KeyError> {
        let label =
            object::Label::from_bytes(label.as_bytes()).map_err(|e| KeyError::InvalidUri {
                uri: format!("label={label}"),
                reason: e.to_string(),
            })?;
        Ok(self
            .client
            .list_objects(&[
                object::Filter::Type(object::Type::AsymmetricKey),
                object::Filter::Label(label),
            ])
            .map_err(|e| self.error("list objects", e))?
            .into_iter()
            .map(|entry| entry.object_id)
            .collect())
    }

    /// Finds the one key `uri` names, by id and/or label, and checks that the URI names this
    /// device (for example, to get the id of a key named by label before [`backup_keys`]).
    ///
    /// [`backup_keys`]: super::backup_keys
    pub fn find_key(&self, uri: &YubiHsmUri) -> Result<KeyDetails, KeyError> {
        let shown = uri.without_query().to_string();
        if uri.connector != self.uri().connector
            || uri.serial.as_ref().is_some_and(|s| s != self.serial())
        {
            return Err(KeyError::InvalidUri {
                uri: shown,
                reason: format!("names another device than {}", self.description()),
            });
        }
        if !uri.names_key() {
            return Err(KeyError::InvalidUri {
                uri: shown,
                reason: "names no key: add id=0xNNNN and/or label=…".into(),
            });
        }
        let id = match (uri.id, &uri.label) {
            (Some(id), _) => id,
            (None, Some(label)) => match self.ids_with_label(label)?[..] {
                [id] => id,
                [] => return Err(self.not_found(uri)),
                ref ids => {
                    return Err(KeyError::AmbiguousKey {
                        uri: shown,
                        count: ids.len(),
                    })
                }
            },
            (None, None) => unreachable!("names_key checked"),
        };
        let details = self.key_details(id).map_err(|e| match e {
            KeyError::KeyNotFound { .. } => self.not_found(uri),
            other => other,
        })?;
        if let Some(label) = &uri.label {
            if *label != details.label {
                return Err(self.not_found(uri));
            }
        }
        Ok(details)
    }

    fn not_found(&self, uri: &YubiHsmUri) -> KeyError {
        KeyError::KeyNotFound {
            uri: uri.without_query().to_string(),
            token: self.description().to_string(),
        }
    }

    /// The key as the backend seam lists it; its URI re-opens it (with this device's
    /// authentication key and password source).
    pub fn key_info(&self, details: &KeyDetails) -> KeyInfo {
        KeyInfo {
            uri: self
                .uri()
                .for_key(self.serial(), details.id, &details.label)
                .to_string(),
            label: details.label.clone(),
            public_key: details.public_key.clone(),
            protection: Some(details.protection()),
            enforcement: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_are_the_devices_spelling() {
        let names = capability_names(Capability::SIGN_ECDSA | Capability::EXPORTABLE_UNDER_WRAP);
        assert_eq!(names, ["sign-ecdsa", "exportable-under-wrap"]);
    }
}
