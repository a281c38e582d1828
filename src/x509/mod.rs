//! Certificates: the root CA, and intermediates issued from CSRs under a named profile.
//!
//! `rcgen` builds the certificate; the HSM key signs it through [`crate::keys::Signer`]. Every
//! certificate is linted twice: the to-be-signed bytes are checked against the profile before
//! the HSM is asked to sign them, and the finished certificate is parsed again, checked against
//! the same rules, and its signature verified with the issuer's public key.

mod crl;
mod csr;
mod hsm_key;
mod issue;
mod lint;
mod name;
mod profile;
mod serial;

pub use crl::{issue_crl, parse_serial, CrlOrder, IssuedCrl};
pub use csr::CertificateRequest;
pub use issue::{
    issue_intermediate, issue_root_ca, write_certificate, CertificateOrder, IntermediateOrder,
    IssuedCertificate, RootCaOrder, RootCaSpec, Validity,
};
pub use name::parse_subject;
pub use profile::Profile;
pub use serial::Serial;

/// Why a certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum X509Error {
    /// The CSR is not a PEM or DER PKCS#10 request.
    #[error("malformed CSR: {0}")]
    MalformedCsr(String),
    /// The CSR's self-signature does not verify.
    #[error("the CSR's signature does not verify: it was not signed by the key it carries, or it was altered")]
    BadCsrSignature,
    /// The requested key type is not one rootcellar certifies.
    #[error("unsupported key type in CSR: {0} (only ECDSA P-256 and P-384 are certified)")]
    UnsupportedKey(String),
    /// The profile name is unknown.
    #[error("unknown profile {0:?} (known: fulcio, tsa)")]
    UnknownProfile(String),
    /// A subject string could not be parsed.
    #[error("invalid subject {subject:?}: {reason}")]
    InvalidSubject {
        /// The text given.
        subject: String,
        /// What is wrong.
        reason: String,
    },
    /// The issuer certificate cannot issue (not a CA, wrong key, unreadable).
    #[error("issuer certificate {0}")]
    BadIssuer(String),
    /// The validity asked for is impossible or not allowed.
    #[error("invalid validity: {0}")]
    InvalidValidity(String),
    /// A root CA profile file could not be read or parsed.
    #[error("root CA profile {path}: {reason}")]
    BadRootSpec {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The to-be-signed certificate broke a rule; the HSM was not asked to sign.
    #[error("pre-signing lint refused the certificate, nothing was signed: {}", .0.join("; "))]
    LintBeforeSigning(Vec<String>),
    /// The signed certificate failed its check; it was not written.
    #[error("post-signing check failed, the certificate was not written: {}", .0.join("; "))]
    CheckAfterSigning(Vec<String>),
    /// A certificate found after an interruption is not the one that was about to be signed.
    #[error("the certificate found is not the one intended: {}", .0.join("; "))]
    NotTheIntended(Vec<String>),
    /// The HSM refused to sign.
    #[error("signing failed: {0}")]
    Signing(#[from] crate::keys::KeyError),
    /// rcgen could not build the certificate.
    #[error("cannot build certificate: {0}")]
    Build(String),
    /// Writing the certificate failed.
    #[error(transparent)]
    Output(#[from] crate::files::OutputError),
}
