//! Key backup for PKCS#11 tokens: private keys leave the token only wrapped (`C_WrapKey`,
//! AES key wrap with padding) under a fresh AES-256 key made for the occasion. That wrap key is
//! the one secret of a backup: the caller splits it among custodians and it is destroyed in the
//! token. Restoring creates the wrap key from a quorum's shares in the target token, unwraps
//! each key there as sensitive, non-extractable and fixed (not modifiable, not copyable), and
//! recreates its public half.
//!
//! Only keys generated for backup (`CKA_EXTRACTABLE` true, but still sensitive) can be
//! wrapped; a key generated non-extractable can never leave its token, by design. Keys
//! generated for backup are also `CKA_WRAP_WITH_TRUSTED`: the token wraps them only under a key
//! marked `CKA_TRUSTED`, which only its security officer can set. So the wrap key is made under
//! the security officer's login ([`WrapAuthority::SecurityOfficer`]): its value is drawn here
//! (the host's random mixed with the token's) into zeroized memory, and it is created as a
//! public *session* object, trusted, sensitive, usable only to wrap. A session object never
//! reaches the token's storage (SoftHSM2 writes a public token object's `CKA_VALUE` to its file
//! in the clear, measured) and is gone with the process if it is killed; the user, logged in
//! again, wraps under it and destroys it. A token object under [`WRAP_KEY_LABEL`] (left by
//! another tool, or an older rootcellar) is a leftover, found and removed before a backup.

use crate::test_hooks::around_token_change;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::pkcs11::Pkcs11Token;
use super::{KeyError, Pin, PublicKey};

/// The label of the wrap key a backup makes; a token object under it is a leftover.
pub const WRAP_KEY_LABEL: &str = "rootcellar-backup-wrap";

const WRAP_KEY_LEN: usize = 32;

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

/// Who makes the key a backup wraps under.
pub enum WrapAuthority<'a> {
    /// The token's security officer, who alone can mark it `CKA_TRUSTED`, as keys generated
    /// for backup (`CKA_WRAP_WITH_TRUSTED`) require. The user is logged out for the moment it
    /// takes and logged in again with `user_pin`.
    SecurityOfficer {
        /// The security officer's PIN.
        so_pin: &'a Pin,
        /// The user PIN the token was opened with.
        user_pin: &'a Pin,
    },
    /// The user: an ordinary session key, which wraps only keys that are not wrap-with-trusted
    /// (made before keys were fixed at birth, or on a token that ignores the attribute; a
    /// script says `allow_untrusted_wrap = true` for them).
    User,
}

fn ck(operation: &'static str) -> impl FnOnce(CkError) -> KeyError {
    move |source| KeyError::Pkcs11 { operation, source }
}

impl Pkcs11Token {
    /// Wraps the private keys labelled `labels` under a fresh AES-256 key made by `authority`,
    /// which is then destroyed in the token; returns the wrapped keys and the wrap key's value
    /// (zeroized).
    pub fn wrap_keys(
        &self,
        labels: &[String],
        authority: WrapAuthority<'_>,
    ) -> Result<(Vec<WrappedKey>, Zeroizing<Vec<u8>>), KeyError> {
        let session = self.session();
        // Checked before anything is made; looked up again after the logins, as a token may
        // hand out new handles for private objects once the user logs in again (SoftHSM2 does).
        self.find_private_keys(&session, labels)?;
        // Either random source alone suffices: the host's or the token's.
        let mut value = Zeroizing::new(vec![0u8; WRAP_KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut value);
        let from_token = Zeroizing::new(
            session
                .generate_random_vec(WRAP_KEY_LEN as u32)
                .map_err(ck("C_GenerateRandom"))?,
        );
        for (v, t) in value.iter_mut().zip(from_token.iter()) {
            *v ^= t;
        }
        let wrap_key = match authority {
            WrapAuthority::SecurityOfficer { so_pin, user_pin } => {
                self.as_security_officer(&session, so_pin, user_pin, |session| {
                    around_token_change(
                        "C_CreateObject",
                        &format!("{}/{WRAP_KEY_LABEL}", self.label()),
                        || session.create_object(&wrap_key_template(&value, true)),
                    )
                    .map_err(|e| match e {
                        CkError::Pkcs11(
                            RvError::AttributeTypeInvalid
                            | RvError::AttributeValueInvalid
                            | RvError::AttributeReadOnly
                            | RvError::TemplateInconsistent,
                            _,
                        ) => KeyError::Backup(format!(
                            "token {:?} would not make a trusted wrapping key under its \
                             security officer's login ({}): it cannot wrap keys generated \
                             wrap-with-trusted",
                            self.label(),
                            super::enforcement::rv_name(&e)
                        )),
                        e => ck("C_CreateObject")(e),
                    })
                })?
            }
            WrapAuthority::User => session
                .create_object(&wrap_key_template(&value, false))
                .map_err(ck("C_CreateObject"))?,
        };
        let result = (|| {
            let mut wrapped = Vec::new();
            for (label, handle) in self.find_private_keys(&session, labels)? {
                let blob = session
                    .wrap_key(&Mechanism::AesKeyWrapPad, wrap_key, handle)
                    .map_err(|e| match e {
                        CkError::Pkcs11(RvError::KeyUnextractable, _) => {
                            KeyError::Malformed(format!(
                                "key {label:?} was generated non-extractable and cannot be \
                                 backed up"
                            ))
                        }
                        CkError::Pkcs11(RvError::KeyNotWrappable, _) => KeyError::Backup(format!(
                            "token {:?} refuses to wrap key {label:?} under the backup's wrap \
                             key (CKR_KEY_NOT_WRAPPABLE): the key is wrap-with-trusted, and the \
                             wrap key was not made trusted by the security officer",
                            self.label()
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
            Ok::<_, KeyError>(wrapped)
        })();
        let destroyed = around_token_change(
            "C_DestroyObject",
            &format!("{}/{WRAP_KEY_LABEL}", self.label()),
            || session.destroy_object(wrap_key),
        );
        // The public halves are looked up after the session lock is released.
        drop(session);
        let wrapped = result?;
        destroyed.map_err(ck("C_DestroyObject"))?;
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

    /// The one private key under each of `labels`.
    fn find_private_keys<'l>(
        &self,
        session: &Session,
        labels: &'l [String],
    ) -> Result<Vec<(&'l String, ObjectHandle)>, KeyError> {
        let mut keys = Vec::new();
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
            keys.push((label, handle));
        }
        Ok(keys)
    }

    /// Runs `work` logged in as the token's security officer: the user is logged out first (in
    /// PKCS#11 an application is logged in as one or the other) and logged in again afterwards,
    /// whatever `work` returned. A wrong SO PIN is reported once, never retried.
    fn as_security_officer<T>(
        &self,
        session: &Session,
        so_pin: &Pin,
        user_pin: &Pin,
        work: impl FnOnce(&Session) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        match session.logout() {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserNotLoggedIn, _)) => {}
            Err(e) => return Err(ck("C_Logout")(e)),
        }
        let so_token = format!("{} (security officer)", self.label());
        let result = match session.login(UserType::So, Some(&so_pin.to_auth_pin())) {
            Ok(()) => {
                let result = work(session);
                let logged_out = session.logout().map_err(ck("C_Logout"));
                result.and_then(|t| logged_out.map(|()| t))
            }
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                Err(KeyError::WrongPin { token: so_token })
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                Err(KeyError::PinLocked { token: so_token })
            }
            Err(e) => Err(ck("C_Login")(e)),
        };
        match session.login(UserType::User, Some(&user_pin.to_auth_pin())) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => result,
            Err(e) => Err(result.err().unwrap_or_else(|| ck("C_Login")(e))),
        }
    }

    /// How many wrap keys of an earlier backup are on the token as token objects (see the
    /// module documentation): each could wrap the keys, and is to be removed.
    pub fn leftover_wrap_keys(&self) -> Result<usize, KeyError> {
        Ok(self.find_leftover_wrap_keys()?.len())
    }

    /// Removes what [`leftover_wrap_keys`](Self::leftover_wrap_keys) counts; the number removed.
    pub fn remove_leftover_wrap_keys(&self) -> Result<usize, KeyError> {
        let doomed = self.find_leftover_wrap_keys()?;
        let session = self.session();
        for handle in &doomed {
            around_token_change(
                "C_DestroyObject",
                &format!("{}/{WRAP_KEY_LABEL}", self.label()),
                || session.destroy_object(*handle),
            )
            .map_err(ck("C_DestroyObject"))?;
        }
        Ok(doomed.len())
    }

    fn find_leftover_wrap_keys(&self) -> Result<Vec<ObjectHandle>, KeyError> {
        self.session()
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Token(true),
                Attribute::Label(WRAP_KEY_LABEL.as_bytes().to_vec()),
            ])
            .map_err(ck("C_FindObjects"))
    }

    /// Recreates `keys` in this token from a backup, given the wrap key's value. Each private key
    /// is unwrapped as a token object that is sensitive, never extractable again, sign-only and
    /// fixed (not modifiable, not copyable, wrap-with-trusted), as a generated key is; its public
    /// half is recreated beside it with the same label and id, not modifiable.
    pub fn restore_keys(
        &self,
        keys: &[WrappedKey],
        wrap_key: &[u8],
    ) -> Result<Vec<PublicKey>, KeyError> {
        let session = self.session();
        let unwrap_key = session
            .create_object(&SecretTemplate(vec![
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Value(wrap_key.to_vec()),
                Attribute::Token(false),
                Attribute::Sensitive(true),
                Attribute::Unwrap(true),
                Attribute::Wrap(false),
                Attribute::Encrypt(false),
                Attribute::Decrypt(false),
                Attribute::Copyable(false),
                Attribute::Modifiable(false),
            ]))
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
                self.unwrap_fixed(&session, unwrap_key, &blob, &key.label, &id)?;
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
                            Attribute::Modifiable(false),
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

    /// Unwraps `blob` into a token object labelled `label` under `id`, fixed as a generated key
    /// is.
    fn unwrap_fixed(
        &self,
        session: &Session,
        unwrap_key: ObjectHandle,
        blob: &[u8],
        label: &str,
        id: &[u8],
    ) -> Result<(), KeyError> {
        around_token_change("C_UnwrapKey", &format!("{}/{label}", self.label()), || {
            session.unwrap_key(
                &Mechanism::AesKeyWrapPad,
                unwrap_key,
                blob,
                &restored_template(label.as_bytes().to_vec(), id.to_vec()),
            )
        })
        .map_err(|e| match e {
            CkError::Pkcs11(_, _) => KeyError::Malformed(format!(
                "the backup of {label:?} does not unwrap: wrong wrap key (shares) or a damaged \
                 backup ({})",
                super::enforcement::rv_name(&e)
            )),
            e => ck("C_UnwrapKey")(e),
        })?;
        Ok(())
    }
}

/// The template a restored private key is unwrapped with: sensitive, never extractable again,
/// sign-only, fixed (not copyable, wrap-with-trusted, not modifiable). `CKA_MODIFIABLE` comes
/// last: SoftHSM2 2.6 applies an unwrap template in order and refuses every attribute after
/// `CKA_MODIFIABLE=false` with `CKR_ATTRIBUTE_READ_ONLY` (its issue #707), leaving a half-made
/// object behind.
fn restored_template(label: Vec<u8>, id: Vec<u8>) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::SignRecover(false),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Label(label),
        Attribute::Id(id),
        Attribute::Copyable(false),
        Attribute::WrapWithTrusted(true),
        Attribute::Modifiable(false),
    ]
}

/// A template holding a key's value, wiped when dropped.
struct SecretTemplate(Vec<Attribute>);

impl std::ops::Deref for SecretTemplate {
    type Target = [Attribute];
    fn deref(&self) -> &[Attribute] {
        &self.0
    }
}

impl Drop for SecretTemplate {
    fn drop(&mut self) {
        for attribute in &mut self.0 {
            if let Attribute::Value(value) = attribute {
                zeroize::Zeroize::zeroize(value);
            }
        }
    }
}

/// The backup's wrap key: a session object holding `value`, usable only to wrap, never
/// readable; `trusted` (made by the security officer) marks it `CKA_TRUSTED` and public, as an
/// SO may create only public objects.
fn wrap_key_template(value: &[u8], trusted: bool) -> SecretTemplate {
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Value(value.to_vec()),
        Attribute::Token(false),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Wrap(true),
        Attribute::Unwrap(false),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
        Attribute::Label(WRAP_KEY_LABEL.as_bytes().to_vec()),
        Attribute::Copyable(false),
    ];
    if trusted {
        template.extend([Attribute::Private(false), Attribute::Trusted(true)]);
    }
    // Last: see `restored_template`.
    template.push(Attribute::Modifiable(false));
    SecretTemplate(template)
}
