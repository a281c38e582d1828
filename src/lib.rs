//! rootcellar: the offline root of trust for a private Sigstore (or any PKI + TUF) deployment.
//!
//! The root CA key and the TUF root keys live in an HSM; rootcellar drives them to sign X.509
//! certificates and TUF metadata. Modules, in the one direction they depend on each other:
//!
//! - [`keys`]: the key backend seam (PKCS#11 tokens), key URIs, PINs;
//! - [`x509`]: certificate profiles, issuance from CSRs, lint before signing, check after;
//! - [`tuf`]: TUF repository policy and metadata, signed through `tough` by [`keys`];
//! - [`trustroot`]: Sigstore `trusted_root.json` and `signing_config.v0.2.json`;
//! - [`bundle`]: the signed sneakernet container that carries everything across the air gap;
//! - [`remote_signing`]: a drafted TUF root out to custodians where they are, and their
//!   signatures back, as bundles;
//! - [`import`]: the cluster side: a verified response bundle into a TUF mirror and manifests;
//! - [`journal`]: the appliance's append-only, hash-chained audit log;
//! - [`ceremony`]: ceremony scripts and the resumable step runner at the console;
//! - [`files`]: output files that are created new and whole, never overwritten;
//! - [`time`]: the ceremony's confirmed time, which everything signed is dated by.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bundle;
pub mod ceremony;
pub mod files;
pub mod import;
pub mod journal;
pub mod keys;
pub mod readout;
pub mod remote_signing;
pub mod test_hooks;
pub mod time;
pub mod trustroot;
pub mod tuf;
pub mod x509;
