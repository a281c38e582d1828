//! Key backup for PKCS#11 tokens: private keys leave the token only wrapped (`C_WrapKey`,
//! AES key wrap with padding) under a fresh AES-256 key made for the occasion. That wrap key is
//! the one secret of a backup: the caller splits it among custodians and it is destroyed in the
//! token. Restoring creates the wrap key from a quorum's shares in the target token, unwraps
//! each key there as sensitive and non-extractable, and recreates its public half.
//!
//! Only keys generated for backup (`CKA_EXTRACTABLE` true, but still sensitive) can be
//! wrapped; a key generated non-extractable can never leave its token, by design.

use crate::test_hooks::around_token_change;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::pkcs11::Pkcs11Token;
use super::{KeyError, PublicKey};

/// One wrapped private key and what is needed to recreate it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// `CKA_LABEL`.
    pub label: String,
    /// `CKA_ID`, hex.
    pub id: String,
    /// PEM SubjectPublicKeyInfo of the key pair.
    pub public_key_pem: String,
    /// The private key wrapped under the backup's AES key (AES key wrap with padding), hex.
    pub wrapped: String,
}

fn ck(operation: &'static str) -> impl FnOnce(cryptoki::error::Error) -> KeyError {
    move |source| KeyError::Pkcs11 { operation, source }
}

impl Pkcs11Token {
    /// Wraps the private keys labelled `labels` under a fresh AES-256 key, which is then
    /// destroyed in the token; returns the wrapped keys and the wrap key's value (zeroized).
    pub fn wrap_keys(
        &self,
        labels: &[String],
    ) -> Result<(Vec<WrappedKey>, Zeroizing<Vec<u8>>), KeyError> {
        let session = self.session();
        // A session object, readable once so that it can be split; it never reaches the disk.
        let wrap_key = session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(false),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                    Attribute::Wrap(true),
                    Attribute::Unwrap(false),
                    Attribute::Encrypt(false),
                    Attribute::Decrypt(false),
                ],
            )
            .map_err(ck("C_GenerateKey"))?;
        let result = (|| {
            let value = session
                .get_attributes(wrap_key, &[AttributeType::Value])
                .map_err(ck("C_GetAttributeValue"))?
                .into_iter()
                .find_map(|a| match a {
                    Attribute::Value(v) => Some(Zeroizing::new(v)),
                    _ => None,
                })
                .filter(|v| v.len() == 32)
                .ok_or_else(|| KeyError::Malformed("the wrap key's value is unreadable".into()))?;
            let mut wrapped = Vec::new();
            for label in labels {
                let handles = session
                    .find_objects(&[
                        Attribute::Class(ObjectClass::PRIVATE_KEY),
                        Attribute::Label(label.as_bytes().to_vec()),
                    ])
                    .map_err(ck("C_FindObjects"))?;
                let [handle] = handles[..] else {
                    return Err(KeyError::KeyNotFound {
                        uri: format!("object={label}"),
                        token: self.label().to_string(),
                    });
                };
                let blob = session
                    .wrap_key(&Mechanism::AesKeyWrapPad, wrap_key, handle)
                    .map_err(|e| match e {
                        cryptoki::error::Error::Pkcs11(
                            cryptoki::error::RvError::KeyUnextractable,
                            _,
                        ) => KeyError::Malformed(format!(
                            "key {label:?} was generated non-extractable and cannot be backed up"
                        )),
                        e => ck("C_WrapKey")(e),
                    })?;
                let id = session
                    .get_attributes(handle, &[AttributeType::Id])
                    .map_err(ck("C_GetAttributeValue"))?
                    .into_iter()
                    .find_map(|a| match a {
                        Attribute::Id(v) => Some(v),
                        _ => None,
                    })
                    .unwrap_or_default();
                wrapped.push((label.clone(), id, blob));
            }
            Ok((wrapped, value))
        })();
        let _ = session.destroy_object(wrap_key);
        // The public halves are looked up after the session lock is released.
        drop(session);
        let (wrapped, value) = result?;
        let keys = wrapped
            .into_iter()
            .map(|(label, id, blob)| {
                Ok(WrappedKey {
                    public_key_pem: self.public_key_for_id(&id)?.spki_pem(),
                    label,
                    id: hex::encode(&id),
                    wrapped: hex::encode(blob),
                })
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        Ok((keys, value))
    }

    /// Recreates `keys` in this token from a backup, given the wrap key's value. Each private key
    /// is unwrapped as a token object that is sensitive, never extractable again, and sign-only;
    /// its public half is recreated beside it with the same label and id.
    pub fn restore_keys(
        &self,
        keys: &[WrappedKey],
        wrap_key: &[u8],
    ) -> Result<Vec<PublicKey>, KeyError> {
        let session = self.session();
        let unwrap_key = session
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Value(wrap_key.to_vec()),
                Attribute::Token(false),
                Attribute::Sensitive(true),
                Attribute::Unwrap(true),
                Attribute::Wrap(false),
                Attribute::Encrypt(false),
                Attribute::Decrypt(false),
            ])
            .map_err(ck("C_CreateObject"))?;
        let result = (|| {
            let mut restored = Vec::new();
            for key in keys {
                let bad =
                    |what: &str| KeyError::Malformed(format!("backup of {:?}: {what}", key.label));
                let public = PublicKey::from_spki(key.public_key_pem.as_bytes())?;
                let id = hex::decode(&key.id).map_err(|_| bad("the id is not hex"))?;
                let blob =
                    hex::decode(&key.wrapped).map_err(|_| bad("the wrapped key is not hex"))?;
                let exists = session
                    .find_objects(&[Attribute::Label(key.label.as_bytes().to_vec())])
                    .map_err(ck("C_FindObjects"))?;
                if !exists.is_empty() {
                    return Err(KeyError::LabelExists {
                        token: self.label().to_string(),
                        label: key.label.clone(),
                    });
                }
                around_token_change("C_UnwrapKey", &format!("{}/{}", self.label(), key.label), || {
                    session.unwrap_key(
                        &Mechanism::AesKeyWrapPad,
                        unwrap_key,
                        &blob,
                        &[
                            Attribute::Class(ObjectClass::PRIVATE_KEY),
                            Attribute::KeyType(KeyType::EC),
                            Attribute::Token(true),
                            Attribute::Private(true),
                            Attribute::Sensitive(true),
                            Attribute::Extractable(false),
                            Attribute::Sign(true),
                            Attribute::Decrypt(false),
                            Attribute::Unwrap(false),
                            Attribute::Derive(false),
                            Attribute::Label(key.label.as_bytes().to_vec()),
                            Attribute::Id(id.clone()),
                        ],
                    )
                })
                .map_err(|e| match e {
                        cryptoki::error::Error::Pkcs11(_, _) => KeyError::Malformed(format!(
                            "the backup of {:?} does not unwrap: wrong wrap key (shares) or a damaged backup",
                            key.label
                        )),
                        e => ck("C_UnwrapKey")(e),
                    })?;
                let mut point = vec![0x04, public.point().len() as u8];
                point.extend_from_slice(public.point());
                around_token_change(
                    "C_CreateObject",
                    &format!("{}/{}", self.label(), key.label),
                    || {
                        session.create_object(&[
                            Attribute::Class(ObjectClass::PUBLIC_KEY),
                            Attribute::KeyType(KeyType::EC),
                            Attribute::Token(true),
                            Attribute::Private(false),
                            Attribute::Verify(true),
                            Attribute::EcParams(public.algorithm().ec_params().to_vec()),
                            Attribute::EcPoint(point),
                            Attribute::Label(key.label.as_bytes().to_vec()),
                            Attribute::Id(id),
                        ])
                    },
                )
                .map_err(ck("C_CreateObject"))?;
                restored.push(public);
            }
            Ok(restored)
        })();
        let _ = session.destroy_object(unwrap_key);
        result
    }
}
