//! Generating ECDSA keys inside a YubiHSM2 with the least capabilities that let them sign.

use rand::RngCore;
use yubihsm::object;
use yubihsm::{Capability, Domain};

use super::connect::YubiHsm;
use super::lookup::{yubihsm_algorithm, KeyDetails};
use super::uri::{format_id, MAX_LABEL_LEN};
use crate::keys::{KeyAlgorithm, KeyError};

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// The key's label (1 to 40 bytes), unique among the device's asymmetric keys.
    pub label: String,
    /// The signing algorithm.
    pub algorithm: KeyAlgorithm,
    /// The object id; `None` picks a random free one.
    pub id: Option<u16>,
    /// Adds `exportable-under-wrap`, so that [`backup_keys`](super::backup_keys) can export the
    /// key encrypted under a wrap key. Only when a backup policy asks for it: a key without it
    /// can never leave the device.
    pub exportable_under_wrap: bool,
    /// The domains the key lives in, as a bit set (bit 0 = domain 1); the authentication key
    /// must have them.
    pub domains: u16,
}

impl KeySpec {
    /// A sign-only, non-exportable key in domain 1 with a random id.
    pub fn new(label: impl Into<String>, algorithm: KeyAlgorithm) -> Self {
        KeySpec {
            label: label.into(),
            algorithm,
            id: None,
            exportable_under_wrap: false,
            domains: 0x0001,
        }
    }

    /// The capabilities the key is generated with: `sign-ecdsa`, plus `exportable-under-wrap`
    /// when asked. Nothing else: no decrypt, derive, or attestation.
    pub fn capabilities(&self) -> Capability {
        if self.exportable_under_wrap {
            Capability::SIGN_ECDSA | Capability::EXPORTABLE_UNDER_WRAP
        } else {
            Capability::SIGN_ECDSA
        }
    }
}

impl YubiHsm {
    /// Picks a random object id that no object of `object_type` uses on the device.
    pub(crate) fn free_id(&self, object_type: object::Type) -> Result<u16, KeyError> {
        loop {
            let id = (rand::rngs::OsRng.next_u32() & 0xffff) as u16;
            if id != 0 && !self.object_exists(id, object_type)? {
                return Ok(id);
            }
        }
    }

    /// Generates a key inside the device as `spec` says, and describes it.
    ///
    /// Refuses a label already used by an asymmetric key, and an id already taken, so that a
    /// key URI keeps naming one key.
    pub fn generate_key(&self, spec: &KeySpec) -> Result<KeyDetails, KeyError> {
        let invalid = |reason: String| KeyError::InvalidUri {
            uri: self.uri().without_query().to_string(),
            reason,
        };
        if spec.label.is_empty() || spec.label.len() > MAX_LABEL_LEN {
            return Err(invalid(format!(
                "the key label must be 1 to {MAX_LABEL_LEN} bytes (label=…)"
            )));
        }
        let domains = Domain::from_bits(spec.domains)
            .filter(|d| !d.is_empty())
            .ok_or_else(|| invalid("the key needs at least one domain".into()))?;
        if !self.ids_with_label(&spec.label)?.is_empty() {
            return Err(KeyError::LabelExists {
                token: self.description().to_string(),
                label: spec.label.clone(),
            });
        }
        let id = match spec.id {
            Some(id) => {
                if self.object_exists(id, object::Type::AsymmetricKey)? {
                    return Err(KeyError::IdInUse {
                        device: self.description().to_string(),
                        kind: "an asymmetric key",
                        id: format_id(id),
                    });
                }
                id
            }
            None => self.free_id(object::Type::AsymmetricKey)?,
        };
        let label =
            object::Label::from_bytes(spec.label.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        self.client
            .generate_asymmetric_key(
                id,
                label,
                domains,
                spec.capabilities(),
                yubihsm_algorithm(spec.algorithm),
            )
            .map_err(|e| self.error("generate asymmetric key", e))?;
        self.key_details(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_minimal() {
        let mut spec = KeySpec::new("k", KeyAlgorithm::EcdsaP256);
        assert_eq!(spec.capabilities(), Capability::SIGN_ECDSA);
        spec.exportable_under_wrap = true;
        assert_eq!(
            spec.capabilities(),
            Capability::SIGN_ECDSA | Capability::EXPORTABLE_UNDER_WRAP
        );
    }
}
