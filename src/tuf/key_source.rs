//! tough's signing seam (`KeySource` → `Sign`) implemented over rootcellar's [`Signer`], so that
//! tough's editor signs TUF metadata with keys that never leave their token.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::rand::SecureRandom;
use tough::key_source::KeySource;
use tough::schema::key::{EcdsaKey, EcdsaScheme, Key};
use tough::sign::Sign;

use super::metadata::SignedMetadata;
use super::TufError;
use crate::keys::{KeyAlgorithm, Signer};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A TUF signing key held in a token: a policy key name and the [`Signer`] behind it.
#[derive(Clone)]
pub struct HsmKeySource {
    name: String,
    signer: Arc<dyn Signer>,
    key: Key,
    key_id: String,
}

impl HsmKeySource {
    /// Wraps `signer` as the TUF key `name`. Refuses anything but ECDSA P-256: that is the one
    /// ECDSA scheme the TUF clients we serve (python-tuf, go-tuf, tough) all verify.
    pub fn new(name: impl Into<String>, signer: Arc<dyn Signer>) -> Result<Self, TufError> {
        let name = name.into();
        let public = signer.public_key();
        if public.algorithm() != KeyAlgorithm::EcdsaP256 {
            return Err(TufError::UnsupportedKeyAlgorithm {
                name,
                uri: signer.key_uri(),
                algorithm: public.algorithm().name(),
            });
        }
        // tough encodes the raw SEC1 point as a PEM SubjectPublicKeyInfo, as TUF specifies.
        let key = Key::Ecdsa {
            keyval: EcdsaKey {
                public: public.point().to_vec().into(),
                _extra: HashMap::new(),
            },
            scheme: EcdsaScheme::EcdsaSha2Nistp256,
            _extra: HashMap::new(),
        };
        // Serialising a key of plain strings to canonical JSON cannot fail.
        let key_id = hex::encode(&*key.key_id().expect("a TUF key serialises to JSON"));
        Ok(HsmKeySource {
            name,
            signer,
            key,
            key_id,
        })
    }

    /// The key's name in the policy.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's URI (without module or PIN source).
    pub fn uri(&self) -> String {
        self.signer.key_uri()
    }

    /// The key as TUF metadata lists it.
    pub fn tuf_key(&self) -> &Key {
        &self.key
    }

    /// The TUF key id: SHA-256 of the key's canonical JSON, lowercase hex.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The key's public half.
    pub fn public_key(&self) -> &crate::keys::PublicKey {
        self.signer.public_key()
    }

    /// Signs `metadata`'s payload in the token, checks the signature and adds it under this
    /// key's id.
    pub fn sign_metadata(&self, metadata: &mut SignedMetadata) -> Result<(), TufError> {
        let signature = self
            .signer
            .sign(metadata.canonical_signed())
            .map_err(|source| TufError::SigningFailed {
                name: self.name.clone(),
                uri: self.signer.key_uri(),
                source: Box::new(source),
            })?;
        if !self
            .signer
            .public_key()
            .verify(metadata.canonical_signed(), &signature)
        {
            return Err(TufError::BadSignature {
                name: self.name.clone(),
                uri: self.signer.key_uri(),
            });
        }
        metadata.add_signature(&self.key_id, &signature);
        Ok(())
    }

    /// Signs `message` in the token and checks the signature before handing it out, so that a
    /// misbehaving token cannot put an unverifiable signature into published metadata.
    fn sign_checked(&self, message: &[u8]) -> Result<Vec<u8>, BoxError> {
        let signature = self.signer.sign(message).map_err(|source| {
            Box::new(SignFailed {
                name: self.name.clone(),
                uri: self.signer.key_uri(),
                source,
            })
        })?;
        if !self.signer.public_key().verify(message, &signature) {
            return Err(Box::new(TufError::BadSignature {
                name: self.name.clone(),
                uri: self.signer.key_uri(),
            }));
        }
        Ok(signature)
    }
}

impl std::fmt::Debug for HsmKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmKeySource")
            .field("name", &self.name)
            .field("uri", &self.signer.key_uri())
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// A token refused to sign; carried through tough's boxed error back to the operator.
#[derive(Debug, thiserror::Error)]
#[error("TUF key {name:?} ({uri}) could not sign: {source}")]
struct SignFailed {
    name: String,
    uri: String,
    #[source]
    source: crate::keys::KeyError,
}

#[tough::async_trait]
impl KeySource for HsmKeySource {
    async fn as_sign(&self) -> Result<Box<dyn Sign>, BoxError> {
        Ok(Box::new(self.clone()))
    }

    async fn write(&self, _value: &str, _key_id_hex: &str) -> Result<(), BoxError> {
        Err(format!(
            "TUF key {:?} lives in a token; rootcellar never writes private keys",
            self.name
        )
        .into())
    }
}

#[tough::async_trait]
impl Sign for HsmKeySource {
    fn tuf_key(&self) -> Key {
        self.key.clone()
    }

    async fn sign(
        &self,
        message: &[u8],
        // The token draws its own nonce; tough's generator is not needed.
        _rng: &(dyn SecureRandom + Sync),
    ) -> Result<Vec<u8>, BoxError> {
        self.sign_checked(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyError, PublicKey};
    use p256::ecdsa::signature::Signer as _;

    /// A software key playing the token, for unit tests only.
    struct SoftKey {
        key: p256::ecdsa::SigningKey,
        public: PublicKey,
        corrupt: bool,
    }

    /// A P-384 public key with no private half: enough to be refused.
    struct P384Key(PublicKey);

    impl Signer for P384Key {
        fn public_key(&self) -> &PublicKey {
            &self.0
        }
        fn sign(&self, _message: &[u8]) -> Result<Vec<u8>, KeyError> {
            unreachable!("a P-384 key is refused before signing")
        }
        fn key_uri(&self) -> String {
            "pkcs11:token=soft;object=p384".into()
        }
    }

    impl SoftKey {
        fn signer(seed: u8, corrupt: bool) -> Arc<dyn Signer> {
            let key = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
            let point = key.verifying_key().to_encoded_point(false);
            let public = PublicKey::from_point(KeyAlgorithm::EcdsaP256, point.as_bytes()).unwrap();
            Arc::new(SoftKey {
                key,
                public,
                corrupt,
            })
        }
    }

    impl Signer for SoftKey {
        fn public_key(&self) -> &PublicKey {
            &self.public
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
            let signed: &[u8] = if self.corrupt { b"other" } else { message };
            let sig: p256::ecdsa::Signature = self.key.sign(signed);
            Ok(sig.to_der().as_bytes().to_vec())
        }
        fn key_uri(&self) -> String {
            "pkcs11:token=soft;object=k".into()
        }
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn key_is_pem_spki_ecdsa_and_signatures_verify() {
        let source = HsmKeySource::new("targets", SoftKey::signer(3, false)).unwrap();
        let json = serde_json::to_value(source.tuf_key()).unwrap();
        assert_eq!(json["keytype"], "ecdsa");
        assert_eq!(json["scheme"], "ecdsa-sha2-nistp256");
        let pem = json["keyval"]["public"].as_str().unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
        let parsed = PublicKey::from_spki(pem.as_bytes()).unwrap();
        assert_eq!(parsed.point(), source.signer.public_key().point());
        assert_eq!(source.key_id().len(), 64);

        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sign = block_on(source.as_sign()).unwrap();
        let sig = block_on(sign.sign(b"metadata", &rng)).unwrap();
        assert!(parsed.verify(b"metadata", &sig));
    }

    #[test]
    fn p384_key_is_refused_by_name() {
        let key = p384::ecdsa::SigningKey::from_slice(&[5u8; 48]).unwrap();
        let point = key.verifying_key().to_encoded_point(false);
        let public = PublicKey::from_point(KeyAlgorithm::EcdsaP384, point.as_bytes()).unwrap();
        let err = HsmKeySource::new("root-1", Arc::new(P384Key(public))).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, TufError::UnsupportedKeyAlgorithm { .. }),
            "{text}"
        );
        assert!(
            text.contains("\"root-1\"") && text.contains("ecdsa-p384"),
            "{text}"
        );
        assert!(text.contains("must be ECDSA P-256"), "{text}");
    }

    #[test]
    fn a_signature_that_does_not_verify_is_refused() {
        let source = HsmKeySource::new("timestamp", SoftKey::signer(4, true)).unwrap();
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let err = block_on(Sign::sign(&source, b"metadata", &rng)).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
    }
}
