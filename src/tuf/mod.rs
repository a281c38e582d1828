//! TUF: the repository policy, the root lifecycle, and a verifying client.
//!
//! A repository [`Policy`] (TOML, `tuf-repo/policy.toml`) names the keys that hold each
//! top-level role (in HSM tokens, or external public keys for online signers), the threshold of
//! signatures, how long each role's metadata is valid and when it is due for re-signing, and
//! whether the appliance signs snapshot and timestamp ([`Mode::Offline`]) or an online service
//! does ([`Mode::Online`]).
//!
//! The lifecycle, each step a library function the CLI calls:
//!
//! - [`init_repository`]: a new repository, version 1 of every role signed by every key;
//! - [`draft_root`]: root N+1 from a (new) policy, staged in `staged/` (rotation, key
//!   replacement, threshold change, or a re-sign with the same keys);
//! - [`stage_targets`]: targets added, replaced or removed (with custom metadata), or renewed;
//! - [`sign_staged`]: one key in its own token signs the drafts it is entitled to sign;
//! - [`repository_status`]: who signed, who is still needed, which thresholds are met;
//! - [`root_signing_request`], [`check_root_request`], [`accept_root_signatures`]: a root
//!   signed by custodians where they are, one detached signature at a time;
//! - [`publish`]: drafts at threshold move into `metadata/`; offline, snapshot and timestamp
//!   follow, signed by the appliance.
//!
//! [`verify_repository`] is the client: the TUF workflow from a trusted root over a directory at
//! a given time, naming the first thing wrong as a [`VerifyError`]. The cluster import calls it.
//!
//! Every signature is made by a token through [`crate::keys::Signer`] ([`HsmKeySource`] also
//! serves as tough's key source). TUF keys are ECDSA P-256 (`ecdsa-sha2-nistp256`, public key as
//! PEM SPKI, signatures hex DER) so that python-tuf, go-tuf and tough all verify them. Signed
//! bytes are canonical JSON (OLPC), as every TUF implementation computes them.

mod diff;
mod error;
mod key_source;
mod keyring;
mod layout;
mod metadata;
mod policy;
mod publish;
mod record;
mod remote;
mod repository;
mod rotate;
mod sign;
mod status;
mod targets;
mod validity;
mod verify;

pub use diff::{describe_drafts, staged_target_change, StagedChange};
pub use error::TufError;
pub use key_source::HsmKeySource;
pub(crate) use layout::{hash_prefixed_target, METADATA_DIR, TARGETS_DIR};
pub use metadata::{canonical_json, sha256_hex, MetadataSignature, SignedMetadata, TufKey};
pub use policy::{KeySpec, Mode, Policy, Role, RolePolicy, REHEARSAL_FIELD, REHEARSAL_MARK};
pub use publish::{publish, refresh, PublishReport, PublishedRole};
pub use record::{BeforeWrite, PendingFile, Unrecorded};
pub use remote::{
    accept_root_signatures, check_root_request, root_signing_keys, root_signing_request,
    AcceptReport, CheckedRootRequest, ReceivedSignature, RootSignature, RootSigningRequest,
};
pub use repository::{init_repository, InitReport, KeyReport, RoleReport, TargetReport};
pub use rotate::{draft_root, RoleChange, RotateReport};
pub use sign::{sign_staged, SignReport, SignedDraft};
pub use status::{
    repository_status, DraftStatus, KeyLabel, PublishedStatus, StatusReport, ThresholdStatus,
};
pub use targets::{stage_targets, TargetChange, TargetsReport};
pub use validity::{validity_text, RoleValidity};
pub use verify::{
    signatures_verified, verify_repository, verify_source, DirectorySource, ReadError,
    RepositorySource, SignatureCount, Signers, VerifiedRepository, VerifiedRole, VerifiedTarget,
    VerifyError, VerifyOptions,
};
