//! The errors of the `keys` module.

use std::path::PathBuf;

/// Why a key operation failed. Each variant names the condition and carries the context an
/// operator needs (token label, key URI, file path) to act on it.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key reference is not a URI rootcellar understands.
    #[error("invalid key URI {uri:?}: {reason}")]
    InvalidUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No PKCS#11 module was named, neither in the URI nor in the environment.
    #[error(
        "no PKCS#11 module given: add module-path=/path/to/module.so to the URI query or set ROOTCELLAR_PKCS11_MODULE"
    )]
    NoModule,
    /// The PKCS#11 module is loaded by another provider in this process (a module is a
    /// process-wide library with one set of sessions): the other must be dropped first.
    #[error(
        "PKCS#11 module {path} is in use by another HSM provider in this process (a ceremony or rehearsal that has not ended)"
    )]
    ModuleInUse {
        /// The module path.
        path: PathBuf,
    },
    /// A rehearsal's provider was asked for something outside its throwaway tokens.
    #[error("a rehearsal reaches only its own throwaway tokens, not {what}")]
    OutsideRehearsal {
        /// What was asked for.
        what: String,
    },
    /// The PKCS#11 module could not be loaded or initialised.
    #[error("cannot load PKCS#11 module {path}: {reason}")]
    ModuleLoad {
        /// The module path.
        path: PathBuf,
        /// What the loader said.
        reason: String,
    },
    /// No slot holds a token with this label.
    #[error(
        "no token labelled {label:?} in PKCS#11 module {module} (tokens present: {present}); \
         if it is plugged in, its module cannot read it (a token damaged by a crash is not \
         listed): check it with `pkcs11-tool --module {module} --list-token-slots`. \
         rootcellar never makes a real token again; restore its keys from their backup \
         (ceremony/restore-keys.toml)"
    )]
    TokenNotFound {
        /// The label asked for.
        label: String,
        /// The module searched.
        module: PathBuf,
        /// The labels that are there, for the operator.
        present: String,
    },
    /// A new token could not be initialised (rehearsals make their own).
    #[error("cannot create token {label:?}: {reason}")]
    TokenInit {
        /// The label it was to have.
        label: String,
        /// Why (naming the module).
        reason: String,
    },
    /// More than one token carries the label; rootcellar will not guess.
    #[error("{count} tokens are labelled {label:?}; add serial=… to the URI to pick one")]
    AmbiguousToken {
        /// The label asked for.
        label: String,
        /// How many tokens matched.
        count: usize,
    },
    /// The token refused the PIN. Not retried: tokens lock after a few failures.
    #[error(
        "wrong PIN for token {token:?} (not retried: the token locks after repeated failures)"
    )]
    WrongPin {
        /// Token label.
        token: String,
    },
    /// The token's user PIN is locked.
    #[error("the user PIN of token {token:?} is locked; the security officer must reset it")]
    PinLocked {
        /// Token label.
        token: String,
    },
    /// The PIN could not be obtained.
    #[error("cannot read PIN from {source_desc}: {reason}")]
    PinUnavailable {
        /// Where the PIN was to come from.
        source_desc: String,
        /// Why it could not be read.
        reason: String,
    },
    /// A key with the given label already exists on the token.
    #[error(
        "token {token:?} already holds a key labelled {label:?}; refusing to create a second one"
    )]
    LabelExists {
        /// Token label.
        token: String,
        /// The key label.
        label: String,
    },
    /// No key matches the URI.
    #[error("no private key matching {uri} on token {token:?}")]
    KeyNotFound {
        /// The URI as given.
        uri: String,
        /// Token label.
        token: String,
    },
    /// More than one key matches the URI.
    #[error("{count} keys match {uri}; add id=… to the URI")]
    AmbiguousKey {
        /// The URI as given.
        uri: String,
        /// How many matched.
        count: usize,
    },
    /// The key uses an algorithm rootcellar does not sign with.
    #[error("unsupported key algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// The token returned data that does not make sense (a bad public point, a short signature).
    #[error("token returned malformed data: {0}")]
    Malformed(String),
    /// A `yubihsm:` URI names a connector that is neither `usb`, a loopback `http://` address,
    /// nor a name registered in this process.
    #[error(
        "no YubiHSM2 connector named {name:?}: use connector=usb, connector=http://127.0.0.1:PORT (yubihsm-connector), or a name registered with HsmConfig::register_connector (registered: {registered})"
    )]
    UnknownConnector {
        /// The name in the URI.
        name: String,
        /// The names registered, for the operator.
        registered: String,
    },
    /// A connector name could not be registered.
    #[error("cannot register YubiHSM2 connector {name:?}: {reason}")]
    ConnectorRegistration {
        /// The name asked for.
        name: String,
        /// Why not.
        reason: String,
    },
    /// The YubiHSM2 could not be reached (not plugged in, claimed by another process, or the
    /// connector is not running).
    #[error("cannot reach {device}: {reason}")]
    DeviceUnreachable {
        /// The device, as the URI describes it.
        device: String,
        /// What the transport said, with a hint.
        reason: String,
    },
    /// The YubiHSM2 refused the password of the authentication key. Not retried.
    #[error("wrong password for authentication key {auth_key} on {device} (not retried)")]
    WrongPassword {
        /// The device.
        device: String,
        /// The authentication key id, `0xNNNN`.
        auth_key: String,
    },
    /// The YubiHSM2 has no authentication key with this id.
    #[error("{device} has no authentication key {auth_key}; check auth-key= in the key URI")]
    AuthKeyNotFound {
        /// The device.
        device: String,
        /// The authentication key id, `0xNNNN`.
        auth_key: String,
    },
    /// The YubiHSM2 password could not be obtained.
    #[error("cannot read the YubiHSM2 password from {source_desc}: {reason}")]
    PasswordUnavailable {
        /// Where the password was to come from.
        source_desc: String,
        /// Why it could not be read.
        reason: String,
    },
    /// The device reached is not the one the URI names.
    #[error("{device} is not the device the key URI names (serial={expected})")]
    SerialMismatch {
        /// The device reached, with the serial number it reported.
        device: String,
        /// The serial in the URI.
        expected: String,
    },
    /// The device refused an operation for lack of a capability or domain.
    #[error(
        "{device} refused {operation}: the authentication key or the object lacks the capability or domain for it ({detail})"
    )]
    PermissionDenied {
        /// The device.
        device: String,
        /// What rootcellar asked for.
        operation: &'static str,
        /// What the device said.
        detail: String,
    },
    /// An object id is already taken on the device.
    #[error("{device} already holds {kind} with id {id}; refusing to replace it")]
    IdInUse {
        /// The device.
        device: String,
        /// The kind of object (`an asymmetric key`, `a wrap key`).
        kind: &'static str,
        /// The id, `0xNNNN`.
        id: String,
    },
    /// A key cannot be backed up because it was generated without `exportable-under-wrap`.
    #[error(
        "key {key} on {device} is not exportable under wrap (generated without exportable-under-wrap, by design) and cannot be backed up"
    )]
    NotExportable {
        /// The device.
        device: String,
        /// The key id, `0xNNNN`.
        key: String,
    },
    /// A wrapped backup does not fit the shares, the device, or itself.
    #[error("backup refused: {0}")]
    Backup(String),
    /// The shares of a split secret did not rebuild it.
    #[error("secret sharing: {0}")]
    Shares(#[from] super::shares::ShareError),
    /// Any other YubiHSM2 failure, with the operation that failed.
    #[error("YubiHSM2 {operation} failed on {device}: {source}")]
    YubiHsm {
        /// The device.
        device: String,
        /// What rootcellar was doing.
        operation: &'static str,
        /// The library's error.
        #[source]
        source: yubihsm::client::Error,
    },
    /// Any other PKCS#11 failure, with the function that failed.
    #[error("PKCS#11 {operation} failed: {}", pkcs11_failure(source))]
    Pkcs11 {
        /// What rootcellar was doing.
        operation: &'static str,
        /// The library's error.
        #[source]
        source: cryptoki::error::Error,
    },
    /// A PKCS#11 failure while using a key (a token failing to sign), naming the key.
    #[error(
        "PKCS#11 {operation} with key {key} failed: {}",
        pkcs11_failure(source)
    )]
    Pkcs11Key {
        /// What rootcellar was doing.
        operation: &'static str,
        /// The key, as a URI without its query (token and key label, id).
        key: String,
        /// The library's error (boxed: errors stay small).
        #[source]
        source: Box<cryptoki::error::Error>,
    },
}

/// A PKCS#11 error led by the return value's name (`CKR_DEVICE_ERROR: …`), the name a token's
/// documentation and logs use, then the library's description.
fn pkcs11_failure(error: &cryptoki::error::Error) -> String {
    use cryptoki::error::{Error, RvError};
    let name = match error {
        Error::Pkcs11(RvError::VendorDefined(code), _) => format!("CKR_VENDOR_DEFINED({code:#x})"),
        Error::Pkcs11(rv, _) => {
            let mut name = String::from("CKR");
            for c in format!("{rv:?}").chars() {
                if c.is_ascii_uppercase() {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
        _ => return error.to_string(),
    };
    format!("{name}: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::context::Function;
    use cryptoki::error::{Error, RvError};

    #[test]
    fn a_token_error_is_named_as_pkcs11_names_it() {
        let error = KeyError::Pkcs11Key {
            operation: "C_Sign",
            key: "pkcs11:token=root-ca;object=root-ca".into(),
            source: Box::new(Error::Pkcs11(RvError::DeviceError, Function::Sign)),
        };
        let text = error.to_string();
        assert!(
            text.starts_with(
                "PKCS#11 C_Sign with key pkcs11:token=root-ca;object=root-ca failed: \
                 CKR_DEVICE_ERROR: "
            ),
            "{text}"
        );
        // The library's own words are there too, so they are not printed again as a cause.
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert!(text.contains(&cause), "{text}");
        let pin = KeyError::Pkcs11 {
            operation: "C_Login",
            source: Error::Pkcs11(RvError::UserPinNotInitialized, Function::Login),
        };
        assert!(pin.to_string().contains("CKR_USER_PIN_NOT_INITIALIZED: "));
    }
}
