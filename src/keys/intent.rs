//! Key generation as an intent: the label and the key id are chosen, and recorded by the
//! caller, *before* the token is asked; a run killed at any moment is then resumed by looking
//! for that id. Both halves there: the key was made, adopt it. One half (a kill inside
//! `C_GenerateKeyPair`, which SoftHSM2 writes as two files): remove it and make the key again.
//! Nothing: make it.

use super::{KeyAlgorithm, KeyInfo};

/// A key about to be generated.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyIntent {
    /// The key's label.
    pub label: String,
    /// Its algorithm's name (`p256`, `p384`).
    pub algorithm: String,
    /// Whether it may leave the token wrapped, for a backup.
    pub for_backup: bool,
    /// The key id chosen in advance (PKCS#11 `CKA_ID`), hex.
    pub id: String,
}

impl KeyIntent {
    /// A new intent with a random 128-bit id.
    pub fn new(label: &str, algorithm: KeyAlgorithm, for_backup: bool) -> Self {
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        KeyIntent {
            label: label.to_string(),
            algorithm: algorithm.name().to_string(),
            for_backup,
            id: hex::encode(id),
        }
    }

    /// The id's bytes.
    pub fn id_bytes(&self) -> Vec<u8> {
        hex::decode(&self.id).unwrap_or_default()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Result<KeyAlgorithm, super::KeyError> {
        KeyAlgorithm::from_name(&self.algorithm)
    }
}

/// What a token holds for an intent.
#[derive(Debug)]
pub enum IntentOutcome {
    /// Nothing: the key was never made.
    Absent,
    /// The whole key pair: it was made.
    Complete(Box<KeyInfo>),
    /// Only part of it: public and private objects under the intended id, and key objects
    /// with neither label nor id (a generation cut short before they were set).
    Partial {
        /// Public key objects under the id.
        public: usize,
        /// Private key objects under the id.
        private: usize,
        /// Key objects without label or id.
        unnamed: usize,
    },
}
