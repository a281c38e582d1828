//! TUF: repository policy and metadata, built with `tough` and signed by keys in HSM tokens.
//!
//! A repository [`Policy`] (TOML, `tuf-repo/policy.toml`) names the keys that hold each
//! top-level role, the threshold of signatures, and how long each role's metadata is valid.
//! [`init_repository`] turns a policy and a set of target files into a new repository; every
//! signature is made by a token through [`HsmKeySource`], the `tough` key source backed by
//! [`crate::keys::Signer`]. TUF keys are ECDSA P-256 (`ecdsa-sha2-nistp256`, public key as PEM
//! SPKI, signatures hex DER) so that python-tuf, go-tuf and tough all verify them.
//!
//! The public API is synchronous: tough is async, and each operation runs it on a
//! current-thread runtime of its own.

mod error;
mod key_source;
mod policy;
mod repository;

pub use error::TufError;
pub use key_source::HsmKeySource;
pub use policy::{Policy, Role, RolePolicy};
pub use repository::{init_repository, InitReport, KeyReport, RoleReport, TargetReport};
