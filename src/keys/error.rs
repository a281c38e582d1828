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
    /// The PKCS#11 module could not be loaded or initialised.
    #[error("cannot load PKCS#11 module {path}: {reason}")]
    ModuleLoad {
        /// The module path.
        path: PathBuf,
        /// What the loader said.
        reason: String,
    },
    /// No slot holds a token with this label.
    #[error("no token labelled {label:?} in PKCS#11 module {module} (tokens present: {present})")]
    TokenNotFound {
        /// The label asked for.
        label: String,
        /// The module searched.
        module: PathBuf,
        /// The labels that are there, for the operator.
        present: String,
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
    /// Any other PKCS#11 failure, with the function that failed.
    #[error("PKCS#11 {operation} failed: {source}")]
    Pkcs11 {
        /// What rootcellar was doing.
        operation: &'static str,
        /// The library's error.
        #[source]
        source: cryptoki::error::Error,
    },
}
