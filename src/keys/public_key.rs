//! Public keys and signatures as rootcellar passes them between backends and consumers.

use p256::pkcs8::EncodePublicKey;
use sha2::{Digest, Sha256};

use super::KeyError;

/// The signing algorithms rootcellar's backends offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256 (TUF `ecdsa-sha2-nistp256`).
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384.
    EcdsaP384,
}

/// DER of the named-curve OIDs, as PKCS#11 `CKA_EC_PARAMS` carries them.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

impl KeyAlgorithm {
    /// Parses the names used on the command line and in policy files.
    pub fn from_name(name: &str) -> Result<Self, KeyError> {
        match name.to_ascii_lowercase().as_str() {
            "p256" | "p-256" | "ecdsa-p256" | "secp256r1" | "prime256v1" => Ok(Self::EcdsaP256),
            "p384" | "p-384" | "ecdsa-p384" | "secp384r1" => Ok(Self::EcdsaP384),
            other => Err(KeyError::UnsupportedAlgorithm(format!(
                "{other:?} (use p256 or p384)"
            ))),
        }
    }

    /// A short display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
        }
    }

    /// The DER-encoded curve OID (PKCS#11 `CKA_EC_PARAMS`).
    pub fn ec_params(self) -> &'static [u8] {
        match self {
            Self::EcdsaP256 => P256_PARAMS,
            Self::EcdsaP384 => P384_PARAMS,
        }
    }

    /// The algorithm whose curve OID is `params`.
    pub fn from_ec_params(params: &[u8]) -> Result<Self, KeyError> {
        match params {
            P256_PARAMS => Ok(Self::EcdsaP256),
            P384_PARAMS => Ok(Self::EcdsaP384),
            other => Err(KeyError::UnsupportedAlgorithm(format!(
                "EC curve with parameters {}",
                hex::encode(other)
            ))),
        }
    }

    /// Length of one scalar (r or s) in bytes.
    pub fn scalar_len(self) -> usize {
        match self {
            Self::EcdsaP256 => 32,
            Self::EcdsaP384 => 48,
        }
    }

    /// The message digest this algorithm signs: SHA-256 for P-256, SHA-384 for P-384.
    pub fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::EcdsaP256 => Sha256::digest(message).to_vec(),
            Self::EcdsaP384 => sha2::Sha384::digest(message).to_vec(),
        }
    }

    /// Converts a raw `r‖s` signature (what PKCS#11 returns) to DER (what X.509 and TUF carry).
    pub fn raw_signature_to_der(self, raw: &[u8]) -> Result<Vec<u8>, KeyError> {
        let malformed =
            |e: p256::ecdsa::Error| KeyError::Malformed(format!("ECDSA signature: {e}"));
        match self {
            Self::EcdsaP256 => Ok(p256::ecdsa::Signature::from_slice(raw)
                .map_err(malformed)?
                .to_der()
                .as_bytes()
                .to_vec()),
            Self::EcdsaP384 => Ok(p384::ecdsa::Signature::from_slice(raw)
                .map_err(malformed)?
                .to_der()
                .as_bytes()
                .to_vec()),
        }
    }
}

/// A public key: its algorithm and its SEC1 uncompressed point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    point: Vec<u8>,
}

impl PublicKey {
    /// Builds a public key from a SEC1 point, checking that the point is on the curve.
    pub fn from_point(algorithm: KeyAlgorithm, point: &[u8]) -> Result<Self, KeyError> {
        let bad = |e: p256::elliptic_curve::Error| {
            KeyError::Malformed(format!("{} public point: {e}", algorithm.name()))
        };
        // Normalise to the uncompressed form: X.509, TUF and openssl all accept it.
        let point = match algorithm {
            KeyAlgorithm::EcdsaP256 => p256::PublicKey::from_sec1_bytes(point)
                .map_err(bad)?
                .to_sec1_bytes()
                .to_vec(),
            KeyAlgorithm::EcdsaP384 => p384::PublicKey::from_sec1_bytes(point)
                .map_err(bad)?
                .to_sec1_bytes()
                .to_vec(),
        };
        Ok(PublicKey { algorithm, point })
    }

    /// Reads a PEM or DER SubjectPublicKeyInfo of a P-256 or P-384 key.
    pub fn from_spki(bytes: &[u8]) -> Result<Self, KeyError> {
        use p256::pkcs8::DecodePublicKey;
        let text = std::str::from_utf8(bytes)
            .ok()
            .filter(|t| t.contains("-----BEGIN"));
        let parsed256 = match text {
            Some(pem) => p256::PublicKey::from_public_key_pem(pem).ok(),
            None => p256::PublicKey::from_public_key_der(bytes).ok(),
        };
        if let Some(key) = parsed256 {
            return Self::from_point(KeyAlgorithm::EcdsaP256, &key.to_sec1_bytes());
        }
        let parsed384 = match text {
            Some(pem) => p384::PublicKey::from_public_key_pem(pem).ok(),
            None => p384::PublicKey::from_public_key_der(bytes).ok(),
        };
        match parsed384 {
            Some(key) => Self::from_point(KeyAlgorithm::EcdsaP384, &key.to_sec1_bytes()),
            None => Err(KeyError::UnsupportedAlgorithm(
                "public key is not an ECDSA P-256 or P-384 SubjectPublicKeyInfo".into(),
            )),
        }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The SEC1 uncompressed point.
    pub fn point(&self) -> &[u8] {
        &self.point
    }

    /// DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        // The point was validated on construction, so re-parsing cannot fail.
        match self.algorithm {
            KeyAlgorithm::EcdsaP256 => p256::PublicKey::from_sec1_bytes(&self.point)
                .and_then(|k| {
                    k.to_public_key_der()
                        .map_err(|_| p256::elliptic_curve::Error)
                })
                .map(|d| d.as_bytes().to_vec()),
            KeyAlgorithm::EcdsaP384 => p384::PublicKey::from_sec1_bytes(&self.point)
                .and_then(|k| {
                    k.to_public_key_der()
                        .map_err(|_| p384::elliptic_curve::Error)
                })
                .map(|d| d.as_bytes().to_vec()),
        }
        .expect("validated point encodes")
    }

    /// PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`).
    pub fn spki_pem(&self) -> String {
        use p256::pkcs8::LineEnding;
        match self.algorithm {
            KeyAlgorithm::EcdsaP256 => p256::PublicKey::from_sec1_bytes(&self.point)
                .ok()
                .and_then(|k| k.to_public_key_pem(LineEnding::LF).ok()),
            KeyAlgorithm::EcdsaP384 => p384::PublicKey::from_sec1_bytes(&self.point)
                .ok()
                .and_then(|k| k.to_public_key_pem(LineEnding::LF).ok()),
        }
        .expect("validated point encodes")
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex: the fingerprint operators compare.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.spki_der()))
    }

    /// The fingerprint as people read it aloud: `SHA256 a3f0 91bc …` (see [`crate::readout`]).
    pub fn fingerprint_read_aloud(&self) -> String {
        crate::readout::sha256(&self.fingerprint())
    }

    /// Verifies a DER ECDSA signature over `message` (hashed with the algorithm's digest).
    /// aws-lc (linked already, for TLS-grade primitives and rcgen) checks it: about ten times
    /// faster than the pure-Rust verifier, and every signature a token makes is checked once
    /// before it is used.
    pub fn verify(&self, message: &[u8], der_signature: &[u8]) -> bool {
        use aws_lc_rs::signature::{
            UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1,
        };
        let algorithm = match self.algorithm {
            KeyAlgorithm::EcdsaP256 => &ECDSA_P256_SHA256_ASN1,
            KeyAlgorithm::EcdsaP384 => &ECDSA_P384_SHA384_ASN1,
        };
        UnparsedPublicKey::new(algorithm, &self.point)
            .verify(message, der_signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer as _;

    #[test]
    fn p384_signatures_verify_and_tampering_is_refused() {
        use p384::ecdsa::signature::Signer as _;
        let sk = p384::ecdsa::SigningKey::from_slice(&[9u8; 48]).unwrap();
        let public = PublicKey::from_point(
            KeyAlgorithm::EcdsaP384,
            sk.verifying_key().to_encoded_point(false).as_bytes(),
        )
        .unwrap();
        let sig: p384::ecdsa::Signature = sk.sign(b"message");
        let der = sig.to_der().as_bytes().to_vec();
        assert!(public.verify(b"message", &der));
        assert!(!public.verify(b"messagf", &der));
        let mut bent = der.clone();
        *bent.last_mut().unwrap() ^= 1;
        assert!(!public.verify(b"message", &bent));
        // A P-256 key does not take a P-384 signature.
        let p256 = PublicKey::from_point(
            KeyAlgorithm::EcdsaP256,
            p256::ecdsa::SigningKey::from_slice(&[7u8; 32])
                .unwrap()
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes(),
        )
        .unwrap();
        assert!(!p256.verify(b"message", &der));
    }

    #[test]
    fn der_conversion_and_verification_agree_with_p256() {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let public = PublicKey::from_point(
            KeyAlgorithm::EcdsaP256,
            sk.verifying_key().to_encoded_point(false).as_bytes(),
        )
        .unwrap();
        let sig: p256::ecdsa::Signature = sk.sign(b"message");
        let der = KeyAlgorithm::EcdsaP256
            .raw_signature_to_der(&sig.to_bytes())
            .unwrap();
        assert!(public.verify(b"message", &der));
        assert!(!public.verify(b"messagf", &der));
        let reparsed = PublicKey::from_spki(public.spki_pem().as_bytes()).unwrap();
        assert_eq!(reparsed, public);
        assert_eq!(public.fingerprint().len(), 64);
    }

    #[test]
    fn rejects_point_off_curve_and_short_signature() {
        assert!(PublicKey::from_point(KeyAlgorithm::EcdsaP256, &[4u8; 65]).is_err());
        assert!(KeyAlgorithm::EcdsaP384
            .raw_signature_to_der(&[1u8; 10])
            .is_err());
    }
}
