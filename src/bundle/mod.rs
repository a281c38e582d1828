//! Sneakernet bundles: the one way anything crosses the air gap.
//!
//! A bundle (`.rcb`) is a single file of canonical CBOR:
//!
//! ```text
//! bundle     = [ "rootcellar-bundle", COSE_Sign1, [ * bstr ] ]     ; marker, envelope, contents
//! COSE_Sign1 = #6.18([ protected: bstr .cbor { 1: -7 (ES256) / -35 (ES384),
//!                                              3: "application/vnd.rootcellar.manifest+cbor",
//!                                              4: kid = SHA-256(signer's DER SPKI) },
//!                      unprotected: {},  payload: bstr .cbor manifest,  signature: r‖s ])
//!              ; external_aad = "rootcellar-bundle manifest"
//! manifest   = { "version": 1, "kind": "request" / "response" / "backup", "id": tstr,
//!                "created": tstr (RFC 3339, UTC, whole seconds), ? "ceremony": tstr,
//!                ? "rehearsal": true,                             ; made by a rehearsal
//!                ? "journal_head": { "seq": uint, "sha256": bstr .size 32 },
//!                "entries": [ * entry ] }                         ; sorted by name
//! entry      = { "type": "csr" / "public-key" / "tuf-metadata" / "certificate" /
//!                        "trusted-root" / "transcript" / "journal-segment" / "opaque-file",
//!                "name": tstr, "media_type": tstr, "length": uint, "sha256": bstr .size 32 }
//! ```
//!
//! The contents array carries each entry's bytes in manifest order; the manifest, which the
//! signature covers, carries their lengths and SHA-256 hashes. Canonical means RFC 8949
//! deterministic encoding: definite lengths, shortest integers, map keys in canonical order; the
//! same content therefore has exactly one encoding, and a reader refuses any other.
//!
//! Reading ([`Bundle::decode`], then [`Bundle::verify`]) checks, in order: size limit; marker;
//! well-formed CBOR of the bundle's shape, nothing after it; entry-count limit; manifest-size
//! limit; canonical encoding; envelope headers; manifest version, kind, fields, entry types,
//! names, entry-size limit, duplicates, order; each entry's length and hash; then the signer
//! against the pinned keys and the signature. Only a
//! [`VerifiedBundle`] gives out contents or extracts them, into a new directory that appears
//! whole or not at all. Every refusal is one [`BundleError`] naming the check.
//!
//! Writing: [`BundleBuilder`] collects entries and signs with any [`crate::keys::Signer`] (the
//! appliance's bundle key in its token, or a [`SoftwareKey`] on the online side).
//! [`seal`] encrypts a finished bundle with `age`.

mod build;
mod content;
mod cose;
mod error;
mod extract;
mod format;
mod names;
mod pin;
mod read;
pub mod seal;
mod software_key;

pub use build::BundleBuilder;
pub use error::{BundleError, NameProblem};
pub use extract::place_path;
pub use format::{BundleKind, EntryInfo, EntryType, JournalHead, Manifest, FORMAT_VERSION};
pub use names::{check_entry_name, MAX_NAME_BYTES};
pub use pin::PinnedKeys;
pub use read::{Bundle, VerifiedBundle};
pub use software_key::SoftwareKey;

/// What a reader accepts. The defaults suit certificates, keys, TUF metadata and transcripts
/// with a wide margin; raise them for unusual opaque files. The manifest, which is parsed
/// before the signature is checked, may take 4 KiB plus 1 KiB per allowed entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest bundle file, in bytes (default 64 MiB; a sealed bundle's plaintext too).
    pub max_bundle_size: u64,
    /// Most entries (default 256).
    pub max_entries: usize,
    /// Largest single entry, in bytes (default 16 MiB).
    pub max_entry_size: u64,
}

impl Limits {
    /// Default largest bundle: 64 MiB.
    pub const DEFAULT_MAX_BUNDLE_SIZE: u64 = 64 << 20;
    /// Default most entries: 256.
    pub const DEFAULT_MAX_ENTRIES: usize = 256;
    /// Default largest entry: 16 MiB.
    pub const DEFAULT_MAX_ENTRY_SIZE: u64 = 16 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bundle_size: Self::DEFAULT_MAX_BUNDLE_SIZE,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            max_entry_size: Self::DEFAULT_MAX_ENTRY_SIZE,
        }
    }
}

#[cfg(test)]
mod tests;
