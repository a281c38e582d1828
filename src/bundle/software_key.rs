//! A software signing key for the online side, which signs request bundles on an ordinary
//! machine without an HSM. The appliance never uses one: its bundle key lives in a token.

use std::path::Path;

use zeroize::Zeroizing;

use super::error::BundleError;
use crate::keys::{KeyAlgorithm, KeyError, PublicKey, Signer};

enum Key {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

/// An ECDSA P-256 or P-384 private key held in memory (the `p256`/`p384` types wipe it on
/// drop), implementing [`Signer`] so that it signs bundles the way a token does.
pub struct SoftwareKey {
    key: Key,
    public: PublicKey,
    source: String,
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SoftwareKey({})", self.source)
    }
}

impl SoftwareKey {
    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`, as
    /// `openssl ecparam -genkey` writes), P-256 or P-384. Encrypted keys are not read.
    pub fn from_pem_file(path: &Path) -> Result<Self, BundleError> {
        let bad = |reason: String| BundleError::SigningKeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?);
        Self::from_pem(&text, &format!("file:{}", path.display())).map_err(bad)
    }

    /// Reads a PEM private key from memory; `source` names it in messages and records.
    pub fn from_pem(pem: &str, source: &str) -> Result<Self, String> {
        use p256::pkcs8::DecodePrivateKey;
        let key = if let Ok(k) = p256::SecretKey::from_pkcs8_pem(pem) {
            Key::P256(k.into())
        } else if let Ok(k) = p256::SecretKey::from_sec1_pem(pem) {
            Key::P256(k.into())
        } else if let Ok(k) = p384::SecretKey::from_pkcs8_pem(pem) {
            Key::P384(k.into())
        } else if let Ok(k) = p384::SecretKey::from_sec1_pem(pem) {
            Key::P384(k.into())
        } else {
            return Err(
                "not an unencrypted PEM ECDSA P-256 or P-384 private key (PKCS#8 or SEC1)".into(),
            );
        };
        Ok(Self::from_key(key, source))
    }

    /// A P-256 key from its 32-byte scalar (tests and tools).
    pub fn p256_from_bytes(scalar: &[u8], source: &str) -> Result<Self, String> {
        let key = p256::ecdsa::SigningKey::from_slice(scalar).map_err(|e| e.to_string())?;
        Ok(Self::from_key(Key::P256(key), source))
    }

    /// A fresh random P-256 key (tests and tools).
    pub fn generate_p256(source: &str) -> Self {
        Self::from_key(
            Key::P256(p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng)),
            source,
        )
    }

    fn from_key(key: Key, source: &str) -> Self {
        let public = match &key {
            Key::P256(k) => PublicKey::from_point(
                KeyAlgorithm::EcdsaP256,
                k.verifying_key().to_encoded_point(false).as_bytes(),
            ),
            Key::P384(k) => PublicKey::from_point(
                KeyAlgorithm::EcdsaP384,
                k.verifying_key().to_encoded_point(false).as_bytes(),
            ),
        }
        .expect("a private key's public point is on its curve");
        SoftwareKey {
            key,
            public,
            source: source.to_string(),
        }
    }
}

impl Signer for SoftwareKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        use p256::ecdsa::signature::Signer as _;
        Ok(match &self.key {
            Key::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            Key::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
        })
    }

    fn key_uri(&self) -> String {
        self.source.clone()
    }
}
