//! Sigstore trust roots: `trusted_root.json`, `signing_config.v0.2.json` and the client trust
//! config that holds both (`trust_config.json`).
//!
//! The appliance's root and intermediates, and the log keys and service URLs the online side
//! sends, become the two documents Sigstore clients are configured with. Both are published as
//! TUF targets; `trust_config.json` holds both for clients that take one file. Rotation keeps
//! history: an authority or log key that is no longer current stays listed with a closed
//! `validFor.end`, so signatures made while it was current still verify.

mod build;
mod changes;
mod model;

pub use build::{
    build_signing_config, build_trusted_root, read_trusted_root, trust_config_json, CaFile,
    CaInput, LogFile, LogInput, ServiceUrls, TrustRootConfig, TrustRootOutputs, TRUST_CONFIG_FILE,
};
pub use changes::{compare, Change, TrustChange};
pub use model::{
    CertificateAuthority, ClientTrustConfig, SigningConfig, TimeRange, TransparencyLog,
    TrustedRoot, CLIENT_TRUST_CONFIG_MEDIA_TYPE, SIGNING_CONFIG_MEDIA_TYPE,
    TRUSTED_ROOT_MEDIA_TYPE,
};

use std::path::PathBuf;

/// Why a trust root could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TrustRootError {
    /// The configuration file could not be read or parsed.
    #[error("trust root config {path}: {reason}")]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An input file could not be read.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A certificate chain is broken or unsuitable.
    #[error("certificate chain of {uri}: {reason}")]
    BadChain {
        /// The authority's URI.
        uri: String,
        /// What is wrong.
        reason: String,
    },
    /// A log key is unsuitable.
    #[error("public key of log {base_url}: {reason}")]
    BadLogKey {
        /// The log's URL.
        base_url: String,
        /// What is wrong.
        reason: String,
    },
    /// The previous trusted root is not one rootcellar can extend.
    #[error("previous trusted root {path}: {reason}")]
    BadPrevious {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The service URLs lack one a client needs to sign.
    #[error(
        "trust root config {path}: [signing_config] {field} names no URL; a client signing \
         with this deployment needs its {service}"
    )]
    MissingServiceUrl {
        /// The file.
        path: PathBuf,
        /// The empty list, e.g. `oidc_urls`.
        field: &'static str,
        /// What the URL is for, e.g. `OIDC provider`.
        service: &'static str,
    },
    /// A time value is malformed.
    #[error("invalid time {value:?}: {reason}")]
    BadTime {
        /// The text.
        value: String,
        /// Why.
        reason: String,
    },
    /// Writing an output failed.
    #[error(transparent)]
    Output(#[from] crate::files::OutputError),
}
