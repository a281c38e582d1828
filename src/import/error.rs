//! The errors of the `import` module: one per check, each message naming the check that failed.

use std::path::PathBuf;

use crate::bundle::BundleError;
use crate::tuf::{Role, VerifyError};

/// Why an import was refused (nothing written, state unchanged) or could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The bundle or the repository it carries was made by a rehearsal.
    #[error(
        "{what} was made by a rehearsal (throwaway keys, marked REHEARSAL - NOT FOR \
         PRODUCTION): refused, nothing written; a rehearsal's outputs are imported only into a \
         test cluster, with --allow-rehearsal"
    )]
    Rehearsal {
        /// What carries the mark.
        what: String,
    },
    /// The response bundle failed one of the bundle module's checks (format, hashes, kind,
    /// signature by a pinned appliance key).
    #[error("bundle check failed for {path}: {source}")]
    Bundle {
        /// The bundle file.
        path: PathBuf,
        /// The bundle module's refusal.
        #[source]
        source: Box<BundleError>,
    },
    /// No appliance bundle key is pinned: neither given nor recorded in the state.
    #[error(
        "no appliance bundle key pinned: give --bundle-key FILE (the appliance's bundle public \
         key or certificate, PEM) on the first import"
    )]
    NoBundleKey,
    /// A pinned bundle key could not be read (the message names the file).
    #[error("bundle key check failed: {source}")]
    BundleKey {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<BundleError>,
    },
    /// Neither a pinned root nor a state directory was given.
    #[error("no trust given: give --root PINNED_ROOT.json (first import) or --state DIR")]
    NoTrust,
    /// The pinned root file is unusable.
    #[error("pinned root check failed for {path}: {reason}")]
    PinnedRoot {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The state directory holds no previous import, and no pinned root was given.
    #[error(
        "{0} holds no import state: give --root PINNED_ROOT.json for the first import into it"
    )]
    NoState(PathBuf),
    /// A pinned root was given for a state directory that already holds trust.
    #[error(
        "import state {path} already trusts TUF root v{version}: --root is only for the first \
         import (drop it, or give a new --state directory)"
    )]
    StateHoldsTrust {
        /// The state directory.
        path: PathBuf,
        /// The root version it trusts.
        version: u64,
    },
    /// The state directory is damaged or not one rootcellar wrote.
    #[error("state check failed for {path}: {reason}")]
    BadState {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The bundle carries no TUF metadata.
    #[error("TUF check failed: the bundle carries no tuf-metadata entries; there is no repository to import")]
    NoMetadata,
    /// The bundle's root of the trusted version differs from the trusted root.
    #[error(
        "chain check failed: the bundle's {version}.root.json (SHA256:{found}) is not the \
         trusted root v{version} (SHA256:{trusted}); its TUF chain does not start at the root \
         this cluster trusts"
    )]
    ChainStart {
        /// The trusted root's version.
        version: u64,
        /// SHA-256 of the trusted root file.
        trusted: String,
        /// SHA-256 of the bundle's file of that version.
        found: String,
    },
    /// The bundle's roots do not follow on from the trusted root without a gap.
    #[error(
        "chain check failed: the bundle carries root v{present} but not v{missing}; its chain \
         does not continue from the trusted root v{trusted}"
    )]
    ChainGap {
        /// The trusted root's version.
        trusted: u64,
        /// The first version missing.
        missing: u64,
        /// A later version the bundle carries.
        present: u64,
    },
    /// The bundle's newest root is older than the trusted one.
    #[error(
        "rollback check failed: the bundle's newest root is v{newest}, older than the root \
         v{trusted} this cluster already trusts"
    )]
    RootRollback {
        /// The newest root version in the bundle.
        newest: u64,
        /// The trusted version.
        trusted: u64,
    },
    /// A role's metadata is older than the version imported before.
    #[error(
        "rollback check failed: the bundle's {role} metadata is v{found}, older than the \
         v{imported} imported before"
    )]
    MetadataRollback {
        /// The role.
        role: Role,
        /// The version in the bundle.
        found: u64,
        /// The version recorded by the previous import.
        imported: u64,
    },
    /// The TUF repository in the bundle does not verify from the trust held.
    #[error("TUF check failed (from the trusted root v{trusted_version}): {source}")]
    Tuf {
        /// The version of the root verification started from.
        trusted_version: u64,
        /// The verifier's first finding.
        #[source]
        source: Box<VerifyError>,
    },
    /// The verified targets do not include the Sigstore trusted root.
    #[error("trusted root check failed: targets v{version} lists no {name} target")]
    NoTrustedRoot {
        /// The targets version.
        version: u64,
        /// The target name looked for.
        name: &'static str,
    },
    /// The trusted root target is not a Sigstore trusted root.
    #[error(
        "trusted root check failed: the {name} target is not a Sigstore trusted root: {reason}"
    )]
    BadTrustedRoot {
        /// The target name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The signing config target is not a Sigstore signing config.
    #[error(
        "signing config check failed: the {name} target is not a Sigstore signing config: {reason}"
    )]
    BadSigningConfig {
        /// The target name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The resource name for the manifests is not a Kubernetes name.
    #[error("--name {name:?} is not a Kubernetes resource name: {reason}")]
    BadName {
        /// The name given.
        name: String,
        /// Why not.
        reason: &'static str,
    },
    /// The admission policy asked for is incomplete, contradictory, or would not mean the same
    /// to policy-controller and Kyverno.
    #[error("admission policy refused, nothing written: {problem}")]
    Policy {
        /// What is wrong.
        problem: String,
    },
    /// The output directory exists; an import never overwrites.
    #[error("output {0} exists already; refusing to overwrite it")]
    OutputExists(PathBuf),
    /// Writing the outputs failed (nothing was left at the output path).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The path being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The mirror archive could not be built.
    #[error("cannot build the mirror archive: {0}")]
    Archive(String),
    /// Another import advanced the state while this one ran.
    #[error(
        "the outputs in {out} are complete, but import state {state} changed while this import \
         ran, so it was not advanced: run the import again with a new --out"
    )]
    StateChanged {
        /// The state directory.
        state: PathBuf,
        /// The outputs written.
        out: PathBuf,
    },
    /// The outputs were written but the state could not be advanced.
    #[error(
        "the outputs in {out} are complete, but import state {state} could not be advanced: \
         {source}"
    )]
    StateCommit {
        /// The state directory.
        state: PathBuf,
        /// The outputs written.
        out: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
