//! Why a repository does not verify: the first thing found wrong, with the role, the version,
//! the file and the key ids involved.

use jiff::Timestamp;

use crate::tuf::Role;

/// Whose keys a signature threshold was counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signers {
    /// The keys of the trusted root of this version, for the role being checked.
    Root(u64),
    /// A new root's own root keys (every new root must meet its own threshold too).
    Itself,
}

impl std::fmt::Display for Signers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signers::Root(version) => write!(f, "root v{version}"),
            Signers::Itself => f.write_str("its own root keys"),
        }
    }
}

/// How the signatures over one metadata file count against the keys of a role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureCount {
    /// How many valid signatures the role needs.
    pub threshold: u64,
    /// Key ids of the role with a valid signature (in the role's order, unless counting stopped
    /// at the threshold).
    pub valid: Vec<String>,
    /// Key ids of the role without one.
    pub unsigned: Vec<String>,
    /// Key ids that signed but are not keys of the role.
    pub foreign: Vec<String>,
}

impl SignatureCount {
    /// Whether the threshold is met.
    pub fn met(&self) -> bool {
        self.valid.len() as u64 >= self.threshold
    }
}

/// The first thing wrong with a repository, in the order a TUF client checks it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A file the client needs is not in the repository.
    #[error("{file} is missing")]
    Missing {
        /// The file, relative to the repository.
        file: String,
    },
    /// A file could not be read.
    #[error("cannot read {file}: {reason}")]
    Unreadable {
        /// The file.
        file: String,
        /// The I/O error.
        reason: String,
    },
    /// A metadata file is larger than a client accepts for its role.
    #[error("{file} is larger than the {limit} bytes a client accepts for {role} metadata")]
    TooLarge {
        /// The file.
        file: String,
        /// Its role.
        role: Role,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A metadata file is not well-formed TUF metadata.
    #[error("{file} is not valid {role} metadata: {reason}")]
    Malformed {
        /// The file.
        file: String,
        /// The role it was read as.
        role: Role,
        /// What is wrong.
        reason: String,
    },
    /// A metadata file holds another role's metadata.
    #[error("{file} holds {found:?} metadata where {expected} metadata was expected")]
    WrongType {
        /// The file.
        file: String,
        /// The role expected.
        expected: Role,
        /// The `_type` found.
        found: String,
    },
    /// Too few of the keys entitled to sign a role's metadata produced a valid signature.
    #[error(
        "{role} v{version} ({file}) has valid signatures from {} of the {} keys of \
         {signers} it needs{}{}{}",
        count.valid.len(),
        count.threshold,
        list(" (valid: ", &count.valid),
        list("; no valid signature from: ", &count.unsigned),
        list("; signatures from keys not entitled to sign it: ", &count.foreign)
    )]
    ThresholdNotMet {
        /// The file.
        file: String,
        /// The role of the metadata.
        role: Role,
        /// The version of the metadata.
        version: u64,
        /// Whose keys were counted.
        signers: Signers,
        /// The threshold and the key ids that did and did not sign.
        count: Box<SignatureCount>,
    },
    /// The next root in the chain does not have the next version number.
    #[error(
        "{file} holds root v{found} where v{expected} must follow the trusted v{}: {}",
        expected - 1,
        if found < expected { "a rollback to an older root" } else { "a version was skipped" }
    )]
    RootVersion {
        /// The file.
        file: String,
        /// The version that must come next.
        expected: u64,
        /// The version found.
        found: u64,
    },
    /// The chain of roots is longer than the client follows.
    #[error("more than {limit} root versions follow the trusted root; refusing to walk further")]
    TooManyRoots {
        /// The limit.
        limit: u64,
    },
    /// Metadata has expired at the time of verification.
    #[error("{role} v{version} ({file}) expired at {expires} (verifying at {at})")]
    Expired {
        /// The file.
        file: String,
        /// The role.
        role: Role,
        /// The version.
        version: u64,
        /// When it expired.
        expires: Timestamp,
        /// The time of verification.
        at: Timestamp,
    },
    /// A parent does not list the metadata the client needs next.
    #[error("{parent} v{version} does not list {listed}")]
    NotListed {
        /// The listing role.
        parent: Role,
        /// Its version.
        version: u64,
        /// The entry missing (`snapshot.json`, `targets.json`).
        listed: String,
    },
    /// Metadata has another version than its parent lists (mix-and-match).
    #[error("{file} holds {role} v{found}, but {parent} lists v{expected}")]
    VersionMismatch {
        /// The file.
        file: String,
        /// The role.
        role: Role,
        /// The role listing it.
        parent: Role,
        /// The version listed.
        expected: u64,
        /// The version found.
        found: u64,
    },
    /// A file's length differs from what its parent lists.
    #[error("{file} is {found} bytes, but {parent} lists {expected}")]
    LengthMismatch {
        /// The file.
        file: String,
        /// The role listing it.
        parent: Role,
        /// The length listed.
        expected: u64,
        /// The actual length.
        found: u64,
    },
    /// A file's hash differs from what its parent lists.
    #[error("{file} has {algorithm} {found}, but {parent} lists {expected}")]
    HashMismatch {
        /// The file.
        file: String,
        /// The role listing it.
        parent: Role,
        /// The hash algorithm.
        algorithm: String,
        /// The hash listed.
        expected: String,
        /// The actual hash.
        found: String,
    },
    /// A listing names a hash algorithm rootcellar does not implement.
    #[error("{parent} lists {file} with hash algorithm {algorithm:?}, which rootcellar does not implement")]
    UnsupportedHash {
        /// The file.
        file: String,
        /// The role listing it.
        parent: Role,
        /// The algorithm.
        algorithm: String,
    },
    /// A target name would leave the targets directory.
    #[error("targets v{version} lists target {name:?}, whose name is not a safe relative path")]
    UnsafeTargetName {
        /// The targets version.
        version: u64,
        /// The name.
        name: String,
    },
    /// A target's listed hash is not a hex digest: under consistent snapshots it names the file
    /// the client asks for, so it is checked before it is used as a path.
    #[error(
        "targets v{version} lists target {name:?} with a {algorithm} hash that is not a hex digest"
    )]
    MalformedTargetHash {
        /// The targets version.
        version: u64,
        /// The target's name.
        name: String,
        /// The hash algorithm it is listed under.
        algorithm: String,
    },
    /// The repository uses a TUF feature rootcellar does not verify.
    #[error("{file} uses {feature}, which rootcellar's verifier does not support")]
    Unsupported {
        /// The file.
        file: String,
        /// The feature.
        feature: String,
    },
}

fn list(prefix: &str, ids: &[String]) -> String {
    if ids.is_empty() {
        return if prefix.starts_with(" (") {
            " (valid: none)".into()
        } else {
            String::new()
        };
    }
    let close = if prefix.starts_with(" (") { ")" } else { "" };
    format!("{prefix}{}{close}", ids.join(", "))
}
