//! The errors of the `bundle` module.

use std::path::PathBuf;

use crate::files::OutputError;
use crate::keys::KeyError;

/// Why an entry name is not a plain file name. Each problem has its own message, so that an
/// operator sees which rule a hostile name broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    /// The name is the empty string.
    Empty,
    /// The name is `.`.
    CurrentDirectory,
    /// The name is `..` or has a `..` component.
    ParentDirectory,
    /// The name starts with `/` or `\`.
    Absolute,
    /// The name contains `/` or `\`.
    Separator,
    /// The name contains a control character (or a bidirectional-text override, which would
    /// make a listing lie about the name).
    ControlCharacter(char),
    /// The name is longer than [`super::MAX_NAME_BYTES`] bytes.
    TooLong,
}

impl std::fmt::Display for NameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameProblem::Empty => f.write_str("the name is empty"),
            NameProblem::CurrentDirectory => f.write_str("the name is \".\""),
            NameProblem::ParentDirectory => {
                f.write_str("the name refers to a parent directory (\"..\")")
            }
            NameProblem::Absolute => f.write_str("the name is an absolute path"),
            NameProblem::Separator => f.write_str("the name contains a path separator"),
            NameProblem::ControlCharacter(c) => write!(
                f,
                "the name contains control or bidirectional-format character U+{:04X}",
                u32::from(*c)
            ),
            NameProblem::TooLong => {
                write!(f, "the name is longer than {} bytes", super::MAX_NAME_BYTES)
            }
        }
    }
}

/// Why a bundle was refused or could not be made. A refused bundle gets exactly one of these,
/// and its message names the check that failed.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle file could not be read.
    #[error("cannot read bundle {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Size check: the bundle is larger than the reader accepts.
    #[error("size check failed: the bundle is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The bundle's size (or a lower bound of it).
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The bundle is age-encrypted and no way to open it was given.
    #[error(
        "the bundle is sealed (age-encrypted): give an identity file or a passphrase to open it"
    )]
    Sealed,
    /// Format check: the file does not start like a rootcellar bundle.
    #[error("format check failed: not a rootcellar bundle ({0})")]
    NotABundle(String),
    /// Truncation check: the CBOR data ends before the bundle does.
    #[error("truncation check failed: the bundle ends early (truncated)")]
    Truncated,
    /// Trailing-data check: bytes follow the end of the bundle.
    #[error("trailing-data check failed: {count} unexpected bytes follow the end of the bundle")]
    TrailingBytes {
        /// How many bytes follow.
        count: usize,
    },
    /// CBOR check: the bytes are not well-formed CBOR.
    #[error("CBOR check failed: {0}")]
    MalformedCbor(String),
    /// Structure check: well-formed CBOR, but not the bundle's structure.
    #[error("structure check failed: {0}")]
    InvalidStructure(String),
    /// Canonical-encoding check: the same content has exactly one encoding, and this is not it.
    #[error(
        "canonical-encoding check failed: the {0} is not in canonical (deterministic) CBOR form"
    )]
    NotCanonical(&'static str),
    /// Version check: the format version is not one this rootcellar reads.
    #[error("version check failed: bundle format version {found} is not supported (this rootcellar reads version {supported})")]
    UnsupportedVersion {
        /// The version as found.
        found: String,
        /// The version this build reads.
        supported: u64,
    },
    /// Kind check: the kind is not request, response or backup.
    #[error("kind check failed: unknown bundle kind {0:?} (expected request, response or backup)")]
    UnknownKind(String),
    /// Entry-type check: an entry's type is not one rootcellar knows.
    #[error("entry-type check failed: entry {name:?} has unknown type {entry_type:?}")]
    UnknownEntryType {
        /// The entry's name.
        name: String,
        /// The type as found.
        entry_type: String,
    },
    /// Manifest check: a field is missing, unknown or of the wrong shape.
    #[error("manifest check failed: {0}")]
    InvalidManifest(String),
    /// Manifest-size check: the manifest is parsed before the signature is checked, so its
    /// size is bounded first (see [`super::Limits`]).
    #[error(
        "manifest-size check failed: the manifest is {size} bytes, over the limit of {limit} bytes"
    )]
    ManifestTooLarge {
        /// The manifest's size.
        size: u64,
        /// The limit in force (4 KiB + 1 KiB per allowed entry).
        limit: u64,
    },
    /// Entry-count check.
    #[error("entry-count check failed: the bundle has {count} entries, over the limit of {limit}")]
    TooManyEntries {
        /// How many entries.
        count: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Entry-size check.
    #[error(
        "entry-size check failed: entry {name:?} is {length} bytes, over the limit of {limit} bytes"
    )]
    EntryTooLarge {
        /// The entry's name.
        name: String,
        /// Its length.
        length: u64,
        /// The limit in force.
        limit: u64,
    },
    /// Entry-name check: a name is not a plain file name.
    #[error("entry-name check failed for {name:?}: {problem}")]
    UnsafeEntryName {
        /// The name as found.
        name: String,
        /// Which rule it breaks.
        problem: NameProblem,
    },
    /// Duplicate-name check: two entries would land on the same file (names are compared
    /// case-insensitively, as a FAT-formatted stick would).
    #[error("duplicate-name check failed: entries {first:?} and {second:?} name the same file")]
    DuplicateEntryName {
        /// The first name.
        first: String,
        /// The second name.
        second: String,
    },
    /// Order check: entries are sorted by name, so that the same content has one encoding.
    #[error("entry-order check failed: entry {after:?} comes before {before:?}; entries must be sorted by name")]
    EntriesOutOfOrder {
        /// The name that should come later.
        after: String,
        /// The name that should come earlier.
        before: String,
    },
    /// The manifest and the carried contents disagree in number.
    #[error("entry-count check failed: the manifest lists {manifest} entries but the bundle carries {carried}")]
    EntryCountMismatch {
        /// Entries in the manifest.
        manifest: usize,
        /// Contents carried.
        carried: usize,
    },
    /// Length check of one entry.
    #[error("length check failed: entry {name:?} is {actual} bytes, the manifest says {declared}")]
    EntryLengthMismatch {
        /// The entry's name.
        name: String,
        /// The manifest's length.
        declared: u64,
        /// The carried length.
        actual: u64,
    },
    /// Hash check of one entry.
    #[error("hash check failed: the SHA-256 of entry {name:?} does not match the manifest")]
    EntryHashMismatch {
        /// The entry's name.
        name: String,
    },
    /// Signature-algorithm check.
    #[error(
        "signature-algorithm check failed: {0} (accepted: ES256 with P-256, ES384 with P-384)"
    )]
    UnsupportedAlgorithm(String),
    /// Pinned-key check: the signer is not among the pinned keys.
    #[error("pinned-key check failed: the bundle is signed by key SHA256:{key_id}, which is not pinned (pinned: {pinned})")]
    UnpinnedSigner {
        /// The signer's key id (SHA-256 of its SubjectPublicKeyInfo), hex.
        key_id: String,
        /// The pinned keys' fingerprints.
        pinned: String,
    },
    /// Signature check: the manifest signature does not verify.
    #[error("signature check failed: the manifest signature does not verify under pinned key SHA256:{key_id}")]
    BadSignature {
        /// The pinned key's fingerprint.
        key_id: String,
    },
    /// Kind check against what the caller expects.
    #[error("kind check failed: this is a {found} bundle, expected a {expected} bundle")]
    WrongKind {
        /// The bundle's kind.
        found: &'static str,
        /// The kind expected.
        expected: &'static str,
    },
    /// Verification needs at least one pinned key.
    #[error("no key pinned: give the signer's public key or certificate to verify against")]
    NoPinnedKey,
    /// A pinned key or certificate could not be used.
    #[error("cannot pin {path}: {reason}")]
    BadPin {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Extraction never overwrites: the target directory exists.
    #[error("extraction target {0} exists already; refusing to overwrite it")]
    TargetExists(PathBuf),
    /// Extraction failed while writing.
    #[error("cannot extract into {path}: {source}")]
    Extract {
        /// The path being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a bundle file failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// An input file for a new bundle could not be read or is not what its entry type says.
    #[error("cannot add {path} as a {entry_type} entry: {reason}")]
    BadInput {
        /// The file (or the entry name, for in-memory contents).
        path: PathBuf,
        /// The entry type asked for.
        entry_type: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A manifest field given to the builder is unusable (empty id, control characters).
    #[error("cannot build the bundle: {0}")]
    BadField(String),
    /// The key refused to sign, or its signature did not verify.
    #[error("cannot sign the bundle with {uri}: {source}")]
    Signing {
        /// The key.
        uri: String,
        /// The key backend's error.
        #[source]
        source: KeyError,
    },
    /// A software (online-side) signing key file could not be used.
    #[error("cannot use signing key {path}: {reason}")]
    SigningKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Wrong identity: none of the given age identities opens the sealed bundle.
    #[error("identity check failed: none of the given age identities can open this sealed bundle")]
    WrongIdentity,
    /// Wrong passphrase for a passphrase-sealed bundle.
    #[error("passphrase check failed: the passphrase does not open this sealed bundle")]
    WrongPassphrase,
    /// The sealed bundle is damaged or not an age file.
    #[error("cannot open the sealed bundle: {0}")]
    Unseal(String),
    /// Sealing failed.
    #[error("cannot seal the bundle: {0}")]
    Seal(String),
    /// An age recipient could not be parsed.
    #[error("invalid age recipient {recipient:?}: {reason}")]
    BadRecipient {
        /// The recipient as given.
        recipient: String,
        /// What is wrong.
        reason: String,
    },
    /// An age identity file could not be read.
    #[error("cannot use age identity file {path}: {reason}")]
    BadIdentityFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A passphrase could not be obtained.
    #[error("cannot read passphrase from {source_desc}: {reason}")]
    PassphraseUnavailable {
        /// Where it was to come from.
        source_desc: String,
        /// Why it could not be read.
        reason: String,
    },
}
