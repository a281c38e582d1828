//! Reaching a YubiHSM2 and authenticating to it: connectors (USB, `yubihsm-connector` on
//! loopback, or registered in-process), the authentication key's password, and the one open
//! session per device that every operation in this process shares.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use zeroize::Zeroizing;

use super::uri::{format_id, ConnectorSpec, YubiHsmUri};
use crate::keys::KeyError;

/// A YubiHSM2 authentication key's password, held in memory that is wiped when dropped.
/// Its `Debug` never shows the value.
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password already in memory (typed at a ceremony prompt, or rebuilt from
    /// custodians' shares); the caller's buffer should be zeroized too.
    pub fn new(value: Zeroizing<String>) -> Self {
        Password(value)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Where to obtain the authentication key's password. Never the command line.
#[derive(Clone, Debug)]
pub enum PasswordSource {
    /// Ask at the console, echo off.
    Prompt,
    /// Read the first line of a file (rehearsals and tests).
    File(PathBuf),
    /// A password already in memory.
    Given(Arc<Password>),
}

impl PasswordSource {
    /// The source a URI asks for: its `password-source` file, or else the prompt.
    pub fn for_uri(uri: &YubiHsmUri) -> Self {
        match &uri.password_source {
            Some(path) => PasswordSource::File(path.clone()),
            None => PasswordSource::Prompt,
        }
    }

    /// Obtains the password for authentication key `auth_key` of `device`. A prompt is refused
    /// when standard input is not a terminal, so an unattended run fails instead of hanging.
    pub fn read(&self, device: &str, auth_key: u16) -> Result<Password, KeyError> {
        match self {
            PasswordSource::Given(password) => Ok(Password(password.0.clone())),
            PasswordSource::File(path) => {
                let unavailable = |reason: String| KeyError::PasswordUnavailable {
                    source_desc: format!("file {}", path.display()),
                    reason,
                };
                let contents = Zeroizing::new(
                    std::fs::read_to_string(path).map_err(|e| unavailable(e.to_string()))?,
                );
                let line = contents.lines().next().unwrap_or_default();
                if line.is_empty() {
                    return Err(unavailable("the file is empty".into()));
                }
                Ok(Password(Zeroizing::new(line.to_string())))
            }
            PasswordSource::Prompt => {
                if !std::io::stdin().is_terminal() {
                    return Err(KeyError::PasswordUnavailable {
                        source_desc: "the console".into(),
                        reason: "standard input is not a terminal; give password-source=FILE in the key URI".into(),
                    });
                }
                let value = rpassword::prompt_password(format!(
                    "Password for authentication key {} on {device}: ",
                    format_id(auth_key)
                ))
                .map_err(|e| KeyError::PasswordUnavailable {
                    source_desc: "the console".into(),
                    reason: e.to_string(),
                })?;
                Ok(Password(Zeroizing::new(value)))
            }
        }
    }
}

/// One open, authenticated device per (connector, serial, authentication key) in a provider.
type DeviceKey = (ConnectorSpec, Option<String>, u16);
type Devices = Mutex<HashMap<DeviceKey, Arc<YubiHsm>>>;

/// One provider's open device sessions (see [`crate::keys::Hsm`]).
#[derive(Default)]
pub(crate) struct YubiHsmSessions {
    /// Shared with each device, which replaces itself here when its password changes.
    devices: Arc<Devices>,
}

impl YubiHsmSessions {
    /// Opens (or reuses) an authenticated session with the device `uri` names, reached through
    /// `connectors` when the URI names a registered one; the password from `password_source`.
    ///
    /// A wrong password is reported once and not retried; so is an unknown authentication key.
    pub(crate) fn open(
        &self,
        connectors: &BTreeMap<String, yubihsm::Connector>,
        uri: &YubiHsmUri,
        password_source: &PasswordSource,
    ) -> Result<Arc<YubiHsm>, KeyError> {
        YubiHsm::open_in(&self.devices, connectors, uri, password_source)
    }

    /// Drops every open device session.
    pub(crate) fn close(&self) {
        lock(&self.devices).clear();
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps hold no invariant a panic could break half-way.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn connector_for(
    connectors: &BTreeMap<String, yubihsm::Connector>,
    uri: &YubiHsmUri,
) -> Result<yubihsm::Connector, KeyError> {
    match &uri.connector {
        ConnectorSpec::Usb => {
            let serial = uri
                .serial
                .as_deref()
                .map(|s| s.parse::<yubihsm::device::SerialNumber>())
                .transpose()
                .map_err(|e| KeyError::InvalidUri {
                    uri: uri.without_query().to_string(),
                    reason: format!("serial: {e}"),
                })?;
            Ok(yubihsm::Connector::usb(&yubihsm::UsbConfig {
                serial,
                timeout_ms: yubihsm::UsbConfig::DEFAULT_TIMEOUT_MILLIS,
            }))
        }
        ConnectorSpec::Http { addr, port } => Ok(yubihsm::Connector::http(&yubihsm::HttpConfig {
            addr: addr.to_string(),
            port: *port,
            ..Default::default()
        })),
        ConnectorSpec::Registered(name) => {
            let registry = connectors;
            registry
                .get(name)
                .cloned()
                .ok_or_else(|| KeyError::UnknownConnector {
                    name: name.clone(),
                    registered: if registry.is_empty() {
                        "none".into()
                    } else {
                        registry.keys().cloned().collect::<Vec<_>>().join(", ")
                    },
                })
        }
    }
}

/// How a device is named in messages before and after its serial number is known.
fn describe(connector: &ConnectorSpec, serial: Option<&str>) -> String {
    match serial {
        Some(serial) => format!("YubiHSM2 {serial} (connector={connector})"),
        None => format!("YubiHSM2 (connector={connector})"),
    }
}

/// An open, authenticated session with one YubiHSM2.
///
/// Obtained from a provider ([`crate::keys::Hsm`]); shared by every key backend, signer, backup and audit call
/// on that device in this process, so the password is asked for once. The session re-opens by
/// itself after the device's idle timeout (the derived authentication key stays in zeroized
/// memory for that, as a PKCS#11 login stays open).
pub struct YubiHsm {
    pub(crate) client: yubihsm::Client,
    /// The URI the device was opened with, without key attributes, with the device's serial.
    pub(crate) device_uri: YubiHsmUri,
    serial: String,
    description: String,
    /// Signatures asked of the device by this process (shared with a session that replaces
    /// this one), for a witness to compare with the device's audit log.
    signatures: Arc<AtomicU64>,
    /// The provider's sessions this one is kept in (weak: the provider owns the device).
    cache: Weak<Devices>,
}

impl std::fmt::Debug for YubiHsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YubiHsm")
            .field("device", &self.description)
            .finish_non_exhaustive()
    }
}

impl YubiHsm {
    fn open_in(
        cache: &Arc<Devices>,
        connectors: &BTreeMap<String, yubihsm::Connector>,
        uri: &YubiHsmUri,
        password_source: &PasswordSource,
    ) -> Result<Arc<Self>, KeyError> {
        let auth_key = uri.auth_key.ok_or_else(|| KeyError::InvalidUri {
            uri: uri.to_string(),
            reason: "auth-key=0xNNNN is required to open the device: the authentication key to log in with (the factory default is 0x0001)".into(),
        })?;
        let cache_key = (uri.connector.clone(), uri.serial.clone(), auth_key);
        let mut devices = lock(cache);
        if let Some(device) = devices.get(&cache_key) {
            return Ok(device.clone());
        }
        let description = describe(&uri.connector, uri.serial.as_deref());
        let connector = connector_for(connectors, uri)?;
        let password = password_source.read(&description, auth_key)?;
        let credentials = yubihsm::Credentials::from_password(auth_key, password.as_bytes());
        drop(password);
        let client = yubihsm::Client::open(connector, credentials, true)
            .map_err(|e| open_error(e, &description, auth_key))?;
        let info = client.device_info().map_err(|source| KeyError::YubiHsm {
            device: description.clone(),
            operation: "device info",
            source,
        })?;
        let serial = info.serial_number.to_string();
        if let Some(expected) = &uri.serial {
            if *expected != serial {
                return Err(KeyError::SerialMismatch {
                    device: describe(&uri.connector, Some(&serial)),
                    expected: expected.clone(),
                });
            }
        }
        let device = Arc::new(YubiHsm {
            client,
            device_uri: YubiHsmUri {
                serial: Some(serial.clone()),
                ..uri.device()
            },
            description: describe(&uri.connector, Some(&serial)),
            serial,
            signatures: Arc::default(),
            cache: Arc::downgrade(cache),
        });
        // Also under the serial: a later URI that names it reuses this session rather than
        // opening a second one (a USB device can be claimed once).
        devices.insert(
            (uri.connector.clone(), Some(device.serial.clone()), auth_key),
            device.clone(),
        );
        devices.insert(cache_key, device.clone());
        Ok(device)
    }

    /// Makes `client` (a session with the same device and authentication key, opened with a
    /// new password) the one this process uses from now on, and returns it as a device.
    pub(crate) fn replace_session(&self, client: yubihsm::Client) -> Arc<YubiHsm> {
        let device = Arc::new(YubiHsm {
            client,
            device_uri: self.device_uri.clone(),
            serial: self.serial.clone(),
            description: self.description.clone(),
            signatures: self.signatures.clone(),
            cache: self.cache.clone(),
        });
        // Every cache entry of the old session (under the URI it was opened with, and under its
        // serial) now leads to the new one.
        if let Some(cache) = self.cache.upgrade() {
            for cached in lock(&cache).values_mut() {
                if std::ptr::eq(Arc::as_ptr(cached), self) {
                    *cached = device.clone();
                }
            }
        }
        device
    }

    /// How many signatures this process has asked the device for.
    pub fn signatures_requested(&self) -> u64 {
        self.signatures.load(Ordering::Relaxed)
    }

    pub(crate) fn count_signature(&self) {
        self.signatures.fetch_add(1, Ordering::Relaxed);
    }

    /// The device's serial number (10 digits).
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The device as it describes itself (Device Info: serial and firmware version).
    pub fn device_info(&self) -> Result<crate::keys::DeviceInfo, KeyError> {
        let info = self
            .client
            .device_info()
            .map_err(|source| KeyError::YubiHsm {
                device: self.description.clone(),
                operation: "device info",
                source,
            })?;
        Ok(crate::keys::DeviceInfo {
            manufacturer: "Yubico".into(),
            model: "YubiHSM2".into(),
            serial: info.serial_number.to_string(),
            firmware: format!(
                "{}.{}.{}",
                info.major_version, info.minor_version, info.build_version
            ),
            hardware: None,
        })
    }

    /// The device as messages name it: `YubiHSM2 0012345678 (connector=usb)`.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The device's URI (connector, serial, authentication key, password source), without key
    /// attributes.
    pub fn uri(&self) -> &YubiHsmUri {
        &self.device_uri
    }

    /// Maps a failed command to the error an operator can act on.
    pub(crate) fn error(
        &self,
        operation: &'static str,
        source: yubihsm::client::Error,
    ) -> KeyError {
        use yubihsm::device::ErrorKind as Device;
        match source.device_error() {
            Some(Device::InsufficientPermissions) => KeyError::PermissionDenied {
                device: self.description.clone(),
                operation,
                detail: source.to_string(),
            },
            _ if is_transport_failure(&source) => KeyError::DeviceUnreachable {
                device: self.description.clone(),
                reason: source.to_string(),
            },
            _ => KeyError::YubiHsm {
                device: self.description.clone(),
                operation,
                source,
            },
        }
    }
}

/// Whether `error`, or any error it wraps, comes from the transport (USB or HTTP) rather than
/// the device: the crate reports a refused connection as a protocol error around it.
fn is_transport_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<yubihsm::connector::Error>().is_some() {
            return true;
        }
        current = e.source();
    }
    false
}

/// Maps the failure to open a session: unreachable device, unknown authentication key, wrong
/// password.
fn open_error(source: yubihsm::client::Error, device: &str, auth_key: u16) -> KeyError {
    use yubihsm::client::ErrorKind;
    if is_transport_failure(&source) {
        return KeyError::DeviceUnreachable {
            device: device.to_string(),
            reason: format!(
                "{source} (is it plugged in? Over USB, yubihsm-connector must not be running, as it holds the device; over http, it must be)"
            ),
        };
    }
    match source.kind() {
        ErrorKind::AuthenticationError => {
            // The device answers "object not found" for an unknown authentication key; a wrong
            // password shows as a cryptogram mismatch on our side.
            if source.to_string().contains("auth key not found") {
                KeyError::AuthKeyNotFound {
                    device: device.to_string(),
                    auth_key: format_id(auth_key),
                }
            } else {
                KeyError::WrongPassword {
                    device: device.to_string(),
                    auth_key: format_id(auth_key),
                }
            }
        }
        _ => KeyError::YubiHsm {
            device: device.to_string(),
            operation: "open session",
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_file_first_line_and_redacted_debug() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret pass\nignored\n").unwrap();
        let password = PasswordSource::File(path).read("d", 1).unwrap();
        assert_eq!(password.as_bytes(), b"s3cret pass");
        assert_eq!(format!("{password:?}"), "Password(<redacted>)");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        let err = PasswordSource::File(empty).read("d", 1).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn registration_refuses_bad_and_repeated_names() {
        let mut config = crate::keys::HsmConfig::default();
        let name = "unit-test-registration";
        assert!(config
            .register_connector("usb", yubihsm::Connector::mockhsm())
            .is_err());
        assert!(config
            .register_connector("Bad Name", yubihsm::Connector::mockhsm())
            .is_err());
        config
            .register_connector(name, yubihsm::Connector::mockhsm())
            .unwrap();
        let err = config
            .register_connector(name, yubihsm::Connector::mockhsm())
            .unwrap_err();
        assert!(err.to_string().contains("already registered"), "{err}");
    }

    #[test]
    fn unknown_connector_and_missing_auth_key_are_clear() {
        let sessions = YubiHsmSessions::default();
        let none = BTreeMap::new();
        let uri = YubiHsmUri::parse("yubihsm:connector=nobody-here?auth-key=0x0001").unwrap();
        let err = sessions
            .open(&none, &uri, &PasswordSource::Prompt)
            .unwrap_err();
        assert!(matches!(err, KeyError::UnknownConnector { .. }), "{err}");
        let uri = YubiHsmUri::parse("yubihsm:connector=nobody-here").unwrap();
        let err = sessions
            .open(&none, &uri, &PasswordSource::Prompt)
            .unwrap_err();
        assert!(
            err.to_string().contains("auth-key=0xNNNN is required"),
            "{err}"
        );
    }
}
