//! Where a key lives, as a ceremony sees it: which device holds it, how to log in to that
//! device, and the few device-level operations a ceremony performs (log in with a secret a
//! person typed or custodians rebuilt, replace that secret, back keys up and restore them).
//!
//! Signing goes through [`Signer`](super::Signer) and key generation through
//! [`KeyBackend`](super::KeyBackend), whatever the device; this is only the part where a
//! PKCS#11 token (PIN) and a YubiHSM2 (authentication key and password) differ, so that the
//! ceremony runner names neither.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::yubihsm::{self, Password, PasswordSource, YubiHsm, YubiHsmUri};
use super::{Hsm, KeyError, Pin, PinSource, Pkcs11Token, Pkcs11Uri};

/// A parsed key URI of either backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyLocation {
    /// A key in a PKCS#11 token.
    Pkcs11(Pkcs11Uri),
    /// A key in a YubiHSM2.
    YubiHsm(YubiHsmUri),
}

impl KeyLocation {
    /// Parses a `pkcs11:` or `yubihsm:` URI strictly.
    pub fn parse(uri: &str) -> Result<Self, KeyError> {
        if uri.starts_with("pkcs11:") {
            Pkcs11Uri::parse(uri).map(KeyLocation::Pkcs11)
        } else if uri.starts_with("yubihsm:") {
            YubiHsmUri::parse(uri).map(KeyLocation::YubiHsm)
        } else {
            Err(KeyError::InvalidUri {
                uri: uri.to_string(),
                reason: "unknown scheme (expected pkcs11: or yubihsm:)".into(),
            })
        }
    }

    /// The device, as ceremonies name it in prompts, records and PIN splits: the token label of
    /// a PKCS#11 token; `yubihsm-SERIAL-auth-0xNNNN` (or the connector instead of the serial
    /// when the URI gives none) for a YubiHSM2, whose secret belongs to one authentication key.
    pub fn device(&self) -> String {
        match self {
            KeyLocation::Pkcs11(uri) => uri.token_label().to_string(),
            KeyLocation::YubiHsm(uri) => {
                let device = match (&uri.serial, &uri.connector) {
                    (Some(serial), _) => serial.clone(),
                    (None, yubihsm::ConnectorSpec::Http { port, .. }) => format!("http-{port}"),
                    (None, connector) => connector.to_string(),
                };
                match uri.auth_key {
                    Some(id) => format!("yubihsm-{device}-auth-{}", yubihsm::format_id(id)),
                    None => format!("yubihsm-{device}"),
                }
            }
        }
    }

    /// What the device's secret is called at a prompt.
    pub fn secret_name(&self) -> &'static str {
        match self {
            KeyLocation::Pkcs11(_) => "PIN",
            KeyLocation::YubiHsm(_) => "authentication key password",
        }
    }

    /// The key's label: `object=` of a PKCS#11 URI, `label=` of a YubiHSM2 URI.
    pub fn key_label(&self) -> Option<&str> {
        match self {
            KeyLocation::Pkcs11(uri) => uri.object.as_deref(),
            KeyLocation::YubiHsm(uri) => uri.label.as_deref(),
        }
    }

    /// Whether the URI names a key (not only a device).
    pub fn names_key(&self) -> bool {
        match self {
            KeyLocation::Pkcs11(uri) => uri.object.is_some() || uri.id.is_some(),
            KeyLocation::YubiHsm(uri) => uri.names_key(),
        }
    }

    /// A file the URI names as the source of the device's secret (`pin-source=` or
    /// `password-source=`), for rehearsals and tests.
    pub fn secret_file(&self) -> Option<&PathBuf> {
        match self {
            KeyLocation::Pkcs11(uri) => uri.pin_source.as_ref(),
            KeyLocation::YubiHsm(uri) => uri.password_source.as_ref(),
        }
    }

    /// The URI without machine-specific query attributes, for display and records. (A
    /// YubiHSM2 URI keeps nothing of how to log in: the authentication key is in
    /// [`device`](Self::device).)
    pub fn without_query(&self) -> String {
        match self {
            KeyLocation::Pkcs11(uri) => uri.without_query().to_string(),
            KeyLocation::YubiHsm(uri) => uri.without_query().to_string(),
        }
    }

    /// Logs in to the device with `secret`, once per provider: later signers and backends on
    /// the same device use this session. A wrong secret is [`KeyError::is_wrong_secret`].
    pub fn log_in(&self, hsm: &Hsm, secret: &Arc<Pin>) -> Result<(), KeyError> {
        match self {
            KeyLocation::Pkcs11(uri) => {
                hsm.pkcs11_token(uri, Some(&PinSource::Given(secret.clone())))?;
            }
            KeyLocation::YubiHsm(uri) => {
                hsm.yubihsm_device(
                    uri,
                    Some(&PasswordSource::Given(Arc::new(password(secret)))),
                )?;
            }
        }
        Ok(())
    }

    /// Replaces the device's secret `old` by `new` (the device must have been logged in to
    /// with `old`): `C_SetPIN` on a PKCS#11 token; a replaced authentication key on a YubiHSM2
    /// (see [`YubiHsm::change_password`]).
    pub fn change_secret(&self, hsm: &Hsm, old: &Arc<Pin>, new: &Pin) -> Result<(), KeyError> {
        match self {
            KeyLocation::Pkcs11(uri) => hsm
                .pkcs11_token(uri, Some(&PinSource::Given(old.clone())))?
                .change_pin(old, new),
            KeyLocation::YubiHsm(uri) => {
                let device =
                    hsm.yubihsm_device(uri, Some(&PasswordSource::Given(Arc::new(password(old)))))?;
                device.change_password(&password(new))?;
                Ok(())
            }
        }
    }

    /// The PKCS#11 token this location's device is, logged in with `pin`; `None` for a
    /// YubiHSM2.
    pub fn pkcs11_token(
        &self,
        hsm: &Hsm,
        pin: &Arc<Pin>,
    ) -> Result<Option<Arc<Pkcs11Token>>, KeyError> {
        match self {
            KeyLocation::Pkcs11(uri) => Ok(Some(
                hsm.pkcs11_token(uri, Some(&PinSource::Given(pin.clone())))?,
            )),
            KeyLocation::YubiHsm(_) => Ok(None),
        }
    }

    /// The YubiHSM2 session this location's device is logged in with (after
    /// [`log_in`](Self::log_in)); `None` for a PKCS#11 token.
    pub fn yubihsm(&self, hsm: &Hsm) -> Result<Option<Arc<YubiHsm>>, KeyError> {
        match self {
            KeyLocation::Pkcs11(_) => Ok(None),
            KeyLocation::YubiHsm(uri) => Ok(Some(hsm.yubihsm_device(uri, None)?)),
        }
    }
}

impl fmt::Display for KeyLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyLocation::Pkcs11(uri) => uri.fmt(f),
            KeyLocation::YubiHsm(uri) => uri.fmt(f),
        }
    }
}

/// A ceremony secret as a YubiHSM2 password (both zeroized).
fn password(secret: &Pin) -> Password {
    Password::new(Zeroizing::new(secret.expose().to_string()))
}

impl KeyError {
    /// Whether the device refused the secret it was given (a wrong PIN or password): what a
    /// ceremony checks to tell a PIN split that never reached the token.
    pub fn is_wrong_secret(&self) -> bool {
        matches!(
            self,
            KeyError::WrongPin { .. } | KeyError::WrongPassword { .. }
        )
    }
}
