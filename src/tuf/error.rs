//! The errors of the `tuf` module.

use std::path::PathBuf;

use super::verify::VerifyError;
use super::Role;
use crate::files::OutputError;
use crate::keys::KeyError;

/// Why a TUF operation failed. Each variant names the condition and carries what an operator
/// needs to act on it: the policy file and field, the key name and URI, the target path.
#[derive(Debug, thiserror::Error)]
pub enum TufError {
    /// The caller could not record what the command was about to write; nothing was written.
    #[error("could not record the files about to be written, so none was written: {source}")]
    NotRecorded {
        /// Why (a journal append, typically).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A policy or keys file could not be read.
    #[error("cannot read {file}: {source}")]
    PolicyUnreadable {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A policy or keys file is not TOML of the expected shape (syntax, unknown or missing
    /// field, wrong type). The message shows the line.
    #[error("{file} is not a valid rootcellar TUF policy: {message}")]
    PolicySyntax {
        /// The file.
        file: PathBuf,
        /// The parser's description, with line and column.
        message: String,
    },
    /// A policy field has a value rootcellar refuses.
    #[error("{file}: {field}: {problem}")]
    PolicyInvalid {
        /// The file holding the field.
        file: PathBuf,
        /// The dotted path of the field (`roles.root.threshold`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A key the policy names could not be opened in its token.
    #[error("cannot open TUF key {name:?} ({uri}): {source}")]
    KeyUnavailable {
        /// The key's name in the policy.
        name: String,
        /// The key's URI.
        uri: String,
        /// The backend's error.
        #[source]
        source: Box<KeyError>,
    },
    /// A key's token refused to sign (it was opened; the signature failed).
    #[error("TUF key {name:?} ({uri}) could not sign: {source}")]
    SigningFailed {
        /// The key's name in the policy.
        name: String,
        /// The key's URI.
        uri: String,
        /// The backend's error.
        #[source]
        source: Box<KeyError>,
    },
    /// A key is not ECDSA P-256, the one algorithm every TUF client verifies.
    #[error(
        "TUF key {name:?} ({uri}) is {algorithm}; TUF keys must be ECDSA P-256 \
         (ecdsa-sha2-nistp256) so that python-tuf, go-tuf and tough all verify them"
    )]
    UnsupportedKeyAlgorithm {
        /// The key's name in the policy.
        name: String,
        /// The key's URI.
        uri: String,
        /// The algorithm it has.
        algorithm: &'static str,
    },
    /// Two names in one role resolve to the same key, so the threshold would count it twice.
    #[error(
        "roles.{role}.keys: {first:?} and {second:?} are the same key (key id {key_id}); \
         a threshold counts distinct keys"
    )]
    SameKeyTwice {
        /// The role.
        role: &'static str,
        /// The first name.
        first: String,
        /// The second name.
        second: String,
        /// The TUF key id they share.
        key_id: String,
    },
    /// The token made a signature that does not verify under the key's public key.
    #[error("TUF key {name:?} ({uri}) returned a signature that does not verify; not using it")]
    BadSignature {
        /// The key's name in the policy.
        name: String,
        /// The key's URI.
        uri: String,
    },
    /// A target file is missing, unreadable or not a regular file.
    #[error("target {path} cannot be used: {reason}")]
    TargetUnusable {
        /// The path given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Two target files have the same file name, which is their TUF target name.
    #[error(
        "targets {first} and {second} have the same name {name:?}; target names must be unique"
    )]
    DuplicateTargetName {
        /// The shared file name.
        name: String,
        /// The first path.
        first: PathBuf,
        /// The second path.
        second: PathBuf,
    },
    /// A role's expiry, computed from the time given and the policy, is not a representable time.
    #[error("roles.{role}.expires_days: {days} days after {now} is out of range")]
    ExpiryOutOfRange {
        /// The role.
        role: &'static str,
        /// The policy's days.
        days: u32,
        /// The time given.
        now: jiff::Timestamp,
    },
    /// The repository was built but does not verify (checked before it is moved into place).
    #[error("the repository built in {dir} does not verify, so it was not published: {reason}")]
    VerificationFailed {
        /// The temporary directory it was built in (already removed).
        dir: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The output directory exists already, or an output could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// `tough` refused an operation.
    #[error("cannot {action}: {source}")]
    Tough {
        /// What rootcellar asked tough to do.
        action: String,
        /// tough's error (boxed: it is large, and errors travel on every `Result`).
        #[source]
        source: Box<tough::error::Error>,
    },
    /// The async runtime tough needs could not be started.
    #[error("cannot start the runtime for tough: {0}")]
    Runtime(#[source] std::io::Error),
    /// An external public key named by the policy could not be read.
    #[error("cannot read the public key of {name:?} from {path}: {reason}")]
    PublicKeyUnreadable {
        /// The key's name in the policy.
        name: String,
        /// The PEM file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The directory is not a rootcellar TUF repository.
    #[error("{dir} is not a TUF repository: {reason}")]
    NotARepository {
        /// The directory.
        dir: PathBuf,
        /// Why not.
        reason: String,
    },
    /// A repository (or the one about to be published) does not verify as a client verifies it.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A staged or published metadata file is not what rootcellar wrote there.
    #[error("{file} cannot be used: {reason}")]
    StagedInvalid {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another command holds the repository's lock.
    #[error(
        "another rootcellar command is changing this repository ({path} exists); if none is \
         running, remove that file"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A draft of the role is staged already.
    #[error(
        "{role} v{version} is already staged in {file}: sign and publish it, or remove that file \
         to start over"
    )]
    DraftExists {
        /// The role.
        role: Role,
        /// The draft's version.
        version: u64,
        /// The draft file.
        file: PathBuf,
    },
    /// A refresh was asked for in online mode.
    #[error(
        "policy {policy} is in online mode: the online service re-signs snapshot and timestamp, \
         the appliance does not refresh them"
    )]
    RefreshOnline {
        /// The policy file.
        policy: PathBuf,
    },
    /// A refresh was asked for while drafts are staged.
    #[error(
        "{dir} holds staged drafts ({drafts}): a refresh re-signs only what is published; \
         publish the drafts with their signers present (tuf publish), or discard them"
    )]
    RefreshWithDrafts {
        /// The working area.
        dir: PathBuf,
        /// The drafts, "role vN".
        drafts: String,
    },
    /// There is nothing staged to sign or publish.
    #[error("nothing is staged in {dir}: {hint}")]
    NothingStaged {
        /// The working area.
        dir: PathBuf,
        /// What would stage something.
        hint: String,
    },
    /// A key may not sign any staged draft.
    #[error("key {key_id} ({uri}) may not sign any staged draft: {entitled}")]
    NotEntitled {
        /// The key's TUF key id.
        key_id: String,
        /// The key's URI.
        uri: String,
        /// Which keys may sign each draft.
        entitled: String,
    },
    /// A signing request's previous root does not chain from the root the custodian trusts.
    #[error(
        "this request is for a root your trusted root (v{trusted_version}) does not lead to: \
         {problem}; nothing was signed"
    )]
    RequestDoesNotChain {
        /// The trusted root's version.
        trusted_version: u64,
        /// What is wrong with the chain.
        problem: String,
    },
    /// A signing request names a key other than the custodian's, or the custodian's key may not
    /// sign the drafted root.
    #[error("{problem}; nothing was signed")]
    RequestNotForThisKey {
        /// Which key the request is for, and which key was given.
        problem: String,
    },
    /// A signing request is malformed (missing or inconsistent parts).
    #[error("the signing request is unusable: {problem}; nothing was signed")]
    RequestInvalid {
        /// What is wrong.
        problem: String,
    },
    /// A detached root signature is for another draft than the one staged.
    #[error(
        "{from}: signed root v{signed_version} with payload SHA-256 {signed_payload}, but the \
         staged draft is root v{draft_version} with payload SHA-256 {draft_payload} ({why}); \
         ask for a new signature; nothing was changed"
    )]
    SignatureStale {
        /// The signature bundle.
        from: String,
        /// The version it signed.
        signed_version: u64,
        /// The payload digest it signed.
        signed_payload: String,
        /// The staged draft's version.
        draft_version: u64,
        /// The staged draft's payload digest.
        draft_payload: String,
        /// "a newer draft exists" or "the draft changed since the request".
        why: &'static str,
    },
    /// A detached root signature does not verify over the staged draft's bytes.
    #[error(
        "{from}: the signature by key {key_id} is not a signature over the staged root \
         v{version}'s bytes; nothing was changed"
    )]
    SignatureOverOtherBytes {
        /// The signature bundle.
        from: String,
        /// The signing key's TUF key id.
        key_id: String,
        /// The draft's version.
        version: u64,
    },
    /// A detached root signature is by a key that is not a root key of the current root or of
    /// the draft.
    #[error(
        "{from}: signed by key {key} which is not a root key of root v{current_version} or of \
         the draft root v{draft_version}; nothing was changed"
    )]
    NotARootKey {
        /// The signature bundle.
        from: String,
        /// The key (TUF key id or fingerprint).
        key: String,
        /// The current root's version.
        current_version: u64,
        /// The draft's version.
        draft_version: u64,
    },
    /// A draft does not have the signatures it needs.
    #[error("cannot publish {role} v{version}: {missing}")]
    BelowThreshold {
        /// The role.
        role: Role,
        /// The draft's version.
        version: u64,
        /// The thresholds not met and the keys that could still sign.
        missing: String,
    },
    /// A draft, or the metadata it depends on, expires before the time given.
    #[error("{role} v{version} expires at {expires}, not after {now}: {hint}")]
    Expired {
        /// The role.
        role: Role,
        /// The version.
        version: u64,
        /// Its expiry.
        expires: jiff::Timestamp,
        /// The time of the operation.
        now: jiff::Timestamp,
        /// What to do.
        hint: String,
    },
    /// The policy and the repository disagree in a way the operation cannot resolve.
    #[error("{problem}")]
    PolicyMismatch {
        /// What disagrees, and what to do.
        problem: String,
    },
    /// A target name or custom metadata given on the command line is unusable.
    #[error("target {name:?}: {reason}")]
    TargetInvalid {
        /// The target name.
        name: String,
        /// Why.
        reason: String,
    },
}

impl TufError {
    /// Wraps a tough error with what rootcellar was doing.
    pub(crate) fn tough(action: impl Into<String>) -> impl FnOnce(tough::error::Error) -> Self {
        let action = action.into();
        move |source| TufError::Tough {
            action,
            source: Box::new(source),
        }
    }
}
