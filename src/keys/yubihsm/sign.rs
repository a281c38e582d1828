//! Signing with a key inside a YubiHSM2 (`Sign ECDSA`).
//!
//! The device signs a digest, not a message: rootcellar hashes in software (SHA-256 for P-256,
//! SHA-384 for P-384), as the PKCS#11 backend does. The device answers with a DER-encoded
//! signature; it is parsed strictly, re-encoded, and verified against the key's public half
//! before it is handed out, so a faulty device or a swapped key cannot slip a bad signature
//! into a certificate or TUF metadata.

use std::sync::Arc;

use super::connect::YubiHsm;
use super::lookup::KeyDetails;
use super::uri::format_id;
use crate::keys::{KeyAlgorithm, KeyError, PublicKey, Signer};

/// A private key in a YubiHSM2.
pub struct YubiHsmSigner {
    device: Arc<YubiHsm>,
    id: u16,
    public_key: PublicKey,
    key_uri: String,
}

impl YubiHsmSigner {
    /// A signer for the key `details` describes on `device`.
    pub fn new(device: Arc<YubiHsm>, details: &KeyDetails) -> Self {
        let key_uri = device
            .uri()
            .for_key(device.serial(), details.id, &details.label)
            .without_query()
            .to_string();
        YubiHsmSigner {
            id: details.id,
            public_key: details.public_key.clone(),
            key_uri,
            device,
        }
    }

    /// The key's object id.
    pub fn id(&self) -> u16 {
        self.id
    }
}

/// Parses a DER ECDSA signature strictly and re-encodes it: the encoding X.509 and TUF carry.
pub(crate) fn normalize_der(algorithm: KeyAlgorithm, der: &[u8]) -> Result<Vec<u8>, KeyError> {
    let malformed = |e: p256::ecdsa::Error| {
        KeyError::Malformed(format!("{} signature is not DER: {e}", algorithm.name()))
    };
    Ok(match algorithm {
        KeyAlgorithm::EcdsaP256 => p256::ecdsa::Signature::from_der(der)
            .map_err(malformed)?
            .to_der()
            .as_bytes()
            .to_vec(),
        KeyAlgorithm::EcdsaP384 => p384::ecdsa::Signature::from_der(der)
            .map_err(malformed)?
            .to_der()
            .as_bytes()
            .to_vec(),
    })
}

impl Signer for YubiHsmSigner {
    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let algorithm = self.public_key.algorithm();
        let digest = algorithm.digest(message);
        self.device.count_signature();
        let der = self
            .device
            .client
            .sign_ecdsa_prehash_raw(self.id, digest)
            .map_err(|e| self.device.error("sign ECDSA", e))?;
        let der = normalize_der(algorithm, &der)?;
        if !self.public_key.verify(message, &der) {
            return Err(KeyError::Malformed(format!(
                "the signature from key {} on {} does not verify with its public key",
                format_id(self.id),
                self.device.description()
            )));
        }
        Ok(der)
    }

    fn key_uri(&self) -> String {
        self.key_uri.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer as _;

    #[test]
    fn der_is_normalized_for_both_curves_and_garbage_refused() {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let sig: p256::ecdsa::Signature = sk.sign(b"m");
        let der = sig.to_der();
        assert_eq!(
            normalize_der(KeyAlgorithm::EcdsaP256, der.as_bytes()).unwrap(),
            der.as_bytes()
        );
        let sk = p384::ecdsa::SigningKey::from_slice(&[9u8; 48]).unwrap();
        let sig: p384::ecdsa::Signature = sk.sign(b"m");
        let der = sig.to_der();
        assert_eq!(
            normalize_der(KeyAlgorithm::EcdsaP384, der.as_bytes()).unwrap(),
            der.as_bytes()
        );
        // A raw r‖s (what PKCS#11 returns) is not DER.
        assert!(normalize_der(KeyAlgorithm::EcdsaP256, &sig.to_bytes()[..64]).is_err());
        assert!(normalize_der(KeyAlgorithm::EcdsaP384, &[0x30, 0x00]).is_err());
    }
}
