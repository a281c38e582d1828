//! The cluster side: import a response bundle into a disconnected cluster.
//!
//! `rootcellar import` runs on any Linux host near the cluster, without an HSM. It takes a
//! response bundle and the trust the cluster already holds — a pinned TUF root obtained out of
//! band (the first import), or the state directory of the previous import — and:
//!
//! 1. verifies the bundle with the [`crate::bundle`] module: structure, limits, every hash, a
//!    response, signed by a pinned appliance bundle key;
//! 2. checks that the TUF repository it carries continues from the trust held: its root of the
//!    trusted version (if carried) is that root byte for byte, no newer root is skipped, and its
//!    newest root is not older than the trusted one (rollback across imports);
//! 3. verifies the repository with the TUF client of [`crate::tuf`] ([`verify_source`]) from
//!    the trusted root at the given time: root chain and thresholds, expiry, timestamp →
//!    snapshot → targets, every target file's length and hashes; then refuses timestamp,
//!    snapshot or targets metadata older than what the previous import recorded;
//! 4. reads the `trusted_root.json` target as a Sigstore trusted root;
//! 5. writes a new output directory, whole or not at all:
//!
//! ```text
//! OUT/repository/              the TUF mirror: N.root.json…, timestamp.json, N.snapshot.json,
//!                              N.targets.json, targets/<sha256>.<name> (cosign initialize
//!                              --mirror file://OUT/repository --root OUT/repository/N.root.json)
//! OUT/trusted_root.json        the verified Sigstore trusted root (cosign verify --trusted-root)
//! OUT/trust_config.json        with a signing config target: both as a client trust config
//!                              (sigstore verify --trust-config)
//! OUT/manifests/policy-controller-trustroot.yaml           TrustRoot, spec.repository
//! OUT/manifests/policy-controller-clusterimagepolicy.yaml  ClusterImagePolicy   } for the admission
//! OUT/manifests/kyverno-imagevalidatingpolicy.yaml         ImageValidatingPolicy } policy (policy.rs)
//! OUT/CHANGES.md               what changed since the previous import
//! OUT/import.json              the same report, machine-readable
//! ```
//!
//! 6. and only then advances the state directory (see `state.rs`) to the new root, metadata
//!    versions, targets, trusted root and pinned bundle keys.
//!
//! Nothing is written unless every check passed. A refused import names the check that failed
//! in one [`ImportError`].
//!
//! How a bundle carries a repository: entry names are plain file names, so each `tuf-metadata`
//! entry is a metadata file under its own name, and target files are other entries (of any
//! type) named by their target name (`trusted_root.json`) or as a mirror stores them
//! (`<sha256>.trusted_root.json` under consistent snapshots), e.g. `bundle respond
//! --tuf-metadata tuf/metadata/*.json --trusted-root trusted_root.json …` or `… --file
//! tuf/targets/*`. Every target the targets metadata lists must be carried. Target names with a
//! `/` cannot travel in a bundle.

mod archive;
mod changes;
mod error;
mod manifests;
mod output;
mod policy;
mod repository;
mod state;
mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{json, Value};

pub use changes::{
    Change, ChangeReport, KeyChange, TargetChange, ThresholdChange, TrustChange, VersionStep,
};
pub use error::ImportError;
pub use policy::{AdmissionPolicy, Identity, Policies, PolicyRequest};

use crate::bundle::{Bundle, BundleKind, Limits, PinnedKeys, VerifiedBundle};
use crate::keys::PublicKey;
use crate::trustroot::{TrustedRoot, TRUSTED_ROOT_MEDIA_TYPE};
use crate::tuf::{
    sha256_hex, verify_source, Role, SignedMetadata, VerifiedRepository, VerifiedRole,
    VerifyOptions,
};
use repository::{BundleRepository, ImportedVersions};
use state::{LastImport, LoadedState, NewState, StateFiles, StateRecord};

/// The TUF target holding the Sigstore trusted root (policy-controller's default name).
pub const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";
/// The mirror's directory in the output, and the top directory of `mirrorFS`.
pub const MIRROR_DIR: &str = "repository";

/// What to import, from what trust, into where.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The response bundle (`.rcb`).
    pub bundle: PathBuf,
    /// The pinned TUF root (first import only).
    pub root: Option<PathBuf>,
    /// The import state directory: read for the trust held (unless `root` is given), advanced
    /// after a successful import. Without one, nothing is recorded.
    pub state: Option<PathBuf>,
    /// The output directory; must not exist.
    pub out: PathBuf,
    /// The time at which no metadata may have expired.
    pub at: Timestamp,
    /// The appliance bundle keys to pin (PEM or DER public keys or certificates); when empty,
    /// the keys the state recorded.
    pub bundle_keys: Vec<PathBuf>,
    /// The name of the Kubernetes resources written.
    pub name: String,
    /// Import a rehearsal's bundle (into a test cluster); refused otherwise.
    pub allow_rehearsal: bool,
    /// The admission policy to write (or keep, or template).
    pub policy: PolicyRequest,
}

impl ImportOptions {
    /// Options for importing `bundle` into `out` at `at`, with no trust chosen yet and the
    /// resource name `rootcellar`.
    pub fn new(bundle: impl Into<PathBuf>, out: impl Into<PathBuf>, at: Timestamp) -> Self {
        ImportOptions {
            bundle: bundle.into(),
            root: None,
            state: None,
            out: out.into(),
            at,
            bundle_keys: Vec::new(),
            name: "rootcellar".into(),
            allow_rehearsal: false,
            policy: PolicyRequest::default(),
        }
    }
}

/// What an import verified and wrote.
#[derive(Clone, Debug)]
pub struct ImportReport {
    /// The output directory.
    pub out: PathBuf,
    /// The state directory advanced, if any.
    pub state: Option<PathBuf>,
    /// The bundle's id.
    pub bundle_id: String,
    /// SHA-256 of the bundle file, hex.
    pub bundle_sha256: String,
    /// When the bundle was made.
    pub bundle_created: Timestamp,
    /// Fingerprint (SHA-256 of the SPKI) of the pinned key that signed it.
    pub signer: String,
    /// The verification time.
    pub at: Timestamp,
    /// What the TUF verifier accepted.
    pub repository: VerifiedRepository,
    /// SHA-256 of the trusted_root.json written.
    pub trusted_root_sha256: String,
    /// The files written, relative to `out`.
    pub files: Vec<String>,
    /// What changed since the trust held before.
    pub changes: ChangeReport,
    /// The admission policies written.
    pub policies: Policies,
}

impl ImportReport {
    /// The verified role that expires first: the import to come must arrive before then.
    pub fn first_expiry(&self) -> &VerifiedRole {
        self.repository
            .roles
            .iter()
            .min_by_key(|r| r.expires)
            .expect("every top-level role is verified")
    }

    /// How long each verified role stays valid from the verification time. The cluster holds
    /// no policy, so each role's default signing period says when a fresh import is due.
    pub fn validity(&self) -> Vec<crate::tuf::RoleValidity> {
        self.repository
            .roles
            .iter()
            .map(|r| crate::tuf::RoleValidity {
                role: r.role,
                version: r.version,
                expires: r.expires,
                from: self.at,
                signing_days: r.role.default_signing_days(),
            })
            .collect()
    }

    /// Whole days from the verification time to the first expiry: how long until a fresh
    /// import is needed.
    pub fn days_left(&self) -> i64 {
        let seconds = self.first_expiry().expires.as_second() - self.at.as_second();
        seconds.div_euclid(86_400)
    }

    /// The machine-readable report (`import.json`, `import --json`).
    pub fn to_json(&self) -> Value {
        let expiry = self.first_expiry();
        json!({
            "imported": true,
            "out": self.out.display().to_string(),
            "state": self.state.as_ref().map(|s| s.display().to_string()),
            "bundle": {
                "id": self.bundle_id,
                "sha256": self.bundle_sha256,
                "created": self.bundle_created.to_string(),
                "signer": self.signer,
            },
            "at": self.at.to_string(),
            "tuf": self.repository.to_json(),
            "trusted_root_sha256": self.trusted_root_sha256,
            "first_expiry": {
                "role": expiry.role.name(),
                "version": expiry.version,
                "expires": expiry.expires.to_string(),
                "days_left": self.days_left(),
            },
            "policies": match &self.policies {
                Policies::Given(p) => json!({"source": "given", "policy": p}),
                Policies::Kept(p) => json!({"source": "kept", "policy": p}),
                Policies::Template => json!({"source": "template"}),
                Policies::None => json!({"source": "none"}),
            },
            "validity": self.validity().iter().map(crate::tuf::RoleValidity::to_json).collect::<Vec<_>>(),
            "files": self.files,
            "changes": self.changes,
        })
    }

    /// The text `import` prints.
    pub fn to_text(&self) -> String {
        let expiry = self.first_expiry();
        let mut text = format!(
            "imported response bundle {} (SHA256:{}), signed by pinned key SHA256:{}\n\
             verified at {}: TUF root v{} → v{}, timestamp v{}, snapshot v{}, targets v{}, {} target(s)\n\
             first expiry: {} v{} at {}, {} day(s) from now: import a fresh bundle before then\n{}\
             admission policies: {}\n\
             wrote {}:\n",
            self.bundle_id,
            self.bundle_sha256,
            self.signer,
            self.at,
            self.repository.trusted_root_version,
            self.repository.root_version(),
            self.repository.role(Role::Timestamp).version,
            self.repository.role(Role::Snapshot).version,
            self.repository.role(Role::Targets).version,
            self.repository.targets.len(),
            expiry.role.name(),
            expiry.version,
            expiry.expires,
            self.days_left(),
            crate::tuf::validity_text(&self.validity()),
            self.policies.describe(),
            self.out.display(),
        );
        for file in &self.files {
            if !file.starts_with(&format!("{MIRROR_DIR}/")) {
                text.push_str(&format!("  {file}\n"));
            }
        }
        text.push_str(&format!(
            "  {MIRROR_DIR}/ (TUF mirror, {} files)\n",
            self.files
                .iter()
                .filter(|f| f.starts_with(&format!("{MIRROR_DIR}/")))
                .count()
        ));
        match &self.state {
            Some(state) => text.push_str(&format!(
                "recorded in state directory {}: trusts TUF root v{} from now on\n",
                state.display(),
                self.repository.root_version()
            )),
            None => text.push_str("no --state given: this import is not recorded\n"),
        }
        text.push_str("changes:\n");
        text.push_str(&self.changes.to_text());
        text
    }

    fn changes_markdown(&self) -> String {
        let expiry = self.first_expiry();
        format!(
            "# Changes imported by rootcellar\n\n\
             Response bundle {} (SHA256:{}), made {}, signed by the pinned appliance key \
             SHA256:{}; verified at {}.\n\
             The first metadata to expire is {} v{}, at {} ({} day(s) after this import): \
             import a fresh response bundle before then.\n\
             Admission policies: {}.\n\n{}",
            self.bundle_id,
            self.bundle_sha256,
            self.bundle_created,
            self.signer,
            self.at,
            expiry.role.name(),
            expiry.version,
            expiry.expires,
            self.days_left(),
            self.policies.describe(),
            self.changes.to_text()
        )
    }
}

/// The trust held before an import.
struct Held {
    /// Roots already trusted, by version (the pinned root, or every root recorded).
    roots: BTreeMap<u64, Vec<u8>>,
    /// The version verification starts from.
    version: u64,
    /// The state read, when it held trust.
    state: Option<LoadedState>,
}

impl Held {
    fn root(&self) -> &[u8] {
        &self.roots[&self.version]
    }
}

/// Runs an import: every check, then the outputs, then the state. See the module docs.
pub fn import(options: &ImportOptions) -> Result<ImportReport, ImportError> {
    check_name(&options.name)?;
    if options.out.symlink_metadata().is_ok() {
        return Err(ImportError::OutputExists(options.out.clone()));
    }
    let held = held_trust(options)?;
    let policies = policy::resolve(
        &options.policy,
        held.state.as_ref().and_then(|s| s.record.policy.as_ref()),
    )?;
    let keys = pinned_keys(options, &held)?;
    let bundle = read_bundle(&options.bundle, &keys)?;
    let repo = BundleRepository::new(&bundle);
    let verified = verify_carried_repository(&repo, &held, options.at)?;
    if !options.allow_rehearsal {
        let manifest = bundle.manifest();
        if manifest.rehearsal {
            return Err(ImportError::Rehearsal {
                what: format!("response bundle {}", manifest.id),
            });
        }
        if verified.rehearsal {
            return Err(ImportError::Rehearsal {
                what: format!("the TUF root v{} it carries", verified.root_version()),
            });
        }
    }

    // The Sigstore trusted root, a verified target.
    let trusted_root_json = repository::target_bytes(&repo, &verified, TRUSTED_ROOT_TARGET).ok_or(
        ImportError::NoTrustedRoot {
            version: verified.role(Role::Targets).version,
            name: TRUSTED_ROOT_TARGET,
        },
    )?;
    let trusted_root = parse_trusted_root(trusted_root_json)?;
    let trust_config = output::trust_config(&repo, &verified, &trusted_root)?;

    // Every root verified so far, the mirror, and what changed.
    let mut roots = held.roots.clone();
    roots.extend(repository::walked_roots(&repo, &verified));
    let mirror = repository::mirror_files(&repo, &verified, &roots);
    let before = changes::Before {
        root: held.root(),
        previous: held.state.as_ref().map(|s| changes::PreviousImport {
            timestamp: s.record.timestamp_version,
            snapshot: s.record.snapshot_version,
            targets_version: s.record.targets_version,
            targets: &s.record.targets,
            trusted_root: &s.trusted_root_parsed,
        }),
    };
    let changes = changes::compare(&before, &verified, &trusted_root);
    let manifest = bundle.manifest();
    let mut report = ImportReport {
        out: options.out.clone(),
        state: options.state.clone(),
        bundle_id: manifest.id.clone(),
        bundle_sha256: hex::encode(bundle.bundle().sha256()),
        bundle_created: manifest.created,
        signer: bundle.signer().fingerprint(),
        // Reported and recorded in whole seconds (verification used the exact time).
        at: crate::time::whole_seconds(options.at),
        repository: verified,
        trusted_root_sha256: sha256_hex(trusted_root_json),
        files: Vec::new(),
        changes,
        policies,
    };
    let files = output_files(
        &mut report,
        &options.name,
        mirror,
        trusted_root_json,
        &trusted_root,
        trust_config,
    )?;
    output::write_new_dir(&options.out, &files)?;

    // Only now, the state.
    if let Some(dir) = &options.state {
        let new_state = next_state(&held, &roots, trusted_root_json, &keys, &report);
        state::commit(
            dir,
            held.state.as_ref().map(|s| s.raw.as_slice()),
            &new_state,
            &options.out,
        )?;
    }
    Ok(report)
}

/// The appliance bundle keys to pin: those given, else those the state recorded.
fn pinned_keys(options: &ImportOptions, held: &Held) -> Result<Vec<PublicKey>, ImportError> {
    let files: &[PathBuf] = if options.bundle_keys.is_empty() {
        held.state.as_ref().map_or(&[], |s| &s.bundle_keys)
    } else {
        &options.bundle_keys
    };
    if files.is_empty() {
        return Err(ImportError::NoBundleKey);
    }
    files
        .iter()
        .map(|path| {
            PinnedKeys::read_pin(path).map_err(|source| ImportError::BundleKey {
                path: path.clone(),
                source: Box::new(source),
            })
        })
        .collect()
}

/// The bundle, after every check of the bundle module: a response signed by a pinned key.
fn read_bundle(path: &Path, keys: &[PublicKey]) -> Result<VerifiedBundle, ImportError> {
    let refused = |source| ImportError::Bundle {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    Bundle::read_file(path, &Limits::default(), None)
        .map_err(refused)?
        .verify(&PinnedKeys::new(keys.to_vec()))
        .map_err(refused)?
        .expect_kind(BundleKind::Response)
        .map_err(refused)
}

/// The repository the bundle carries, verified from the trust held: where its chain starts,
/// the TUF client workflow at `at`, then rollback of the metadata across imports.
fn verify_carried_repository(
    repo: &BundleRepository<'_>,
    held: &Held,
    at: Timestamp,
) -> Result<VerifiedRepository, ImportError> {
    repository::check_chain(repo, held.version, held.root())?;
    let verified = verify_source(held.root(), repo, &VerifyOptions::at(at)).map_err(|source| {
        ImportError::Tuf {
            trusted_version: held.version,
            source: Box::new(source),
        }
    })?;
    let previous = held.state.as_ref().map(|s| ImportedVersions {
        timestamp: s.record.timestamp_version,
        snapshot: s.record.snapshot_version,
        targets: s.record.targets_version,
    });
    repository::check_versions(&verified, previous)?;
    Ok(verified)
}

/// Every output file by its path in the output directory; fills in `report.files`.
fn output_files(
    report: &mut ImportReport,
    name: &str,
    mirror: BTreeMap<String, Vec<u8>>,
    trusted_root_json: &[u8],
    trusted_root: &TrustedRoot,
    trust_config: Option<(String, Vec<u8>)>,
) -> Result<BTreeMap<String, Vec<u8>>, ImportError> {
    let mirror_tar_gz = archive::tar_gz(MIRROR_DIR, &mirror)?;
    let verified = &report.repository;
    let expiry = report.first_expiry();
    let inputs = manifests::ManifestInputs {
        name,
        root: &verified.root_bytes,
        root_version: verified.root_version(),
        mirror_tar_gz: &mirror_tar_gz,
        trusted_root_json,
        trusted_root,
        trusted_root_sha256: &report.trusted_root_sha256,
        bundle_id: &report.bundle_id,
        expiry: (expiry.role.name(), expiry.expires.to_string()),
        trusted_root_target: TRUSTED_ROOT_TARGET,
    };
    let mut files: BTreeMap<String, Vec<u8>> = mirror
        .into_iter()
        .map(|(path, bytes)| (format!("{MIRROR_DIR}/{path}"), bytes))
        .collect();
    files.insert(TRUSTED_ROOT_TARGET.into(), trusted_root_json.to_vec());
    files.extend(trust_config);
    files.insert(
        "manifests/policy-controller-trustroot.yaml".into(),
        manifests::trust_root(&inputs).into_bytes(),
    );
    if let Some(policy) = manifests::Written::of(&report.policies) {
        files.insert(
            "manifests/policy-controller-clusterimagepolicy.yaml".into(),
            manifests::cluster_image_policy(&inputs, &policy).into_bytes(),
        );
        files.insert(
            "manifests/kyverno-imagevalidatingpolicy.yaml".into(),
            manifests::kyverno_policy(&inputs, &policy).into_bytes(),
        );
    }
    // The report lists every file, itself included.
    report.files = files
        .keys()
        .cloned()
        .chain(["CHANGES.md".to_string(), "import.json".to_string()])
        .collect();
    report.files.sort();
    files.insert("CHANGES.md".into(), report.changes_markdown().into_bytes());
    let mut json = serde_json::to_vec_pretty(&report.to_json()).expect("the report serialises");
    json.push(b'\n');
    files.insert("import.json".into(), json);
    Ok(files)
}

/// Reads the trust held: the pinned root, or the state's.
fn held_trust(options: &ImportOptions) -> Result<Held, ImportError> {
    let loaded = match &options.state {
        Some(dir) => state::load(dir)?,
        None => None,
    };
    match (&options.root, loaded) {
        (Some(_), Some(state)) => Err(ImportError::StateHoldsTrust {
            path: state.dir.clone(),
            version: state.record.root_version,
        }),
        (Some(path), None) => {
            let bad = |reason: String| ImportError::PinnedRoot {
                path: path.clone(),
                reason,
            };
            let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let metadata = SignedMetadata::from_slice(&bytes).map_err(&bad)?;
            if metadata.role_type() != Some("root") {
                return Err(bad("it is not TUF root metadata".into()));
            }
            let version = metadata
                .signed()
                .get("version")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("it has no version".into()))?;
            Ok(Held {
                roots: BTreeMap::from([(version, bytes)]),
                version,
                state: None,
            })
        }
        (None, Some(state)) => Ok(Held {
            roots: state.roots.clone(),
            version: state.record.root_version,
            state: Some(state),
        }),
        (None, None) => match &options.state {
            Some(dir) => Err(ImportError::NoState(dir.clone())),
            None => Err(ImportError::NoTrust),
        },
    }
}

/// Reads a Sigstore trusted root of the media type today's clients accept.
fn parse_trusted_root(bytes: &[u8]) -> Result<TrustedRoot, ImportError> {
    let bad = |reason: String| ImportError::BadTrustedRoot {
        name: TRUSTED_ROOT_TARGET,
        reason,
    };
    let root: TrustedRoot = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if root.media_type != TRUSTED_ROOT_MEDIA_TYPE {
        return Err(bad(format!(
            "its media type {:?} is not {TRUSTED_ROOT_MEDIA_TYPE:?}",
            root.media_type
        )));
    }
    Ok(root)
}

/// Each target's SHA-256, by name.
fn target_hashes(verified: &VerifiedRepository) -> BTreeMap<String, String> {
    verified
        .targets
        .iter()
        .map(|t| {
            let sha = t.hashes.get("sha256").cloned().unwrap_or_default();
            (t.name.clone(), sha)
        })
        .collect()
}

/// The state after this import: every root verified so far, the versions and targets
/// imported, the trusted root, and the bundle keys that verified this bundle.
fn next_state(
    held: &Held,
    roots: &BTreeMap<u64, Vec<u8>>,
    trusted_root_json: &[u8],
    keys: &[PublicKey],
    report: &ImportReport,
) -> NewState {
    let verified = &report.repository;
    let mut files = StateFiles::default();
    let roots = roots
        .iter()
        .map(|(version, bytes)| files.add(format!("roots/{version}.root.json"), bytes.clone()))
        .collect();
    let trusted_root = files.add(
        format!("trusted-roots/{}.json", sha256_hex(trusted_root_json)),
        trusted_root_json.to_vec(),
    );
    let bundle_keys = keys
        .iter()
        .map(|k| {
            files.add(
                format!("bundle-keys/{}.pem", k.fingerprint()),
                k.spki_pem().into_bytes(),
            )
        })
        .collect();
    let record = StateRecord {
        format: state::format(),
        imports: held.state.as_ref().map_or(0, |s| s.record.imports) + 1,
        root_version: verified.root_version(),
        roots,
        timestamp_version: verified.role(Role::Timestamp).version,
        snapshot_version: verified.role(Role::Snapshot).version,
        targets_version: verified.role(Role::Targets).version,
        targets: target_hashes(verified),
        trusted_root,
        bundle_keys,
        last_import: LastImport {
            at: report.at.to_string(),
            bundle_id: report.bundle_id.clone(),
            bundle_sha256: report.bundle_sha256.clone(),
            out: report.out.display().to_string(),
        },
        // Templates change nothing enforced: the recorded policy stays for the next import.
        policy: match &report.policies {
            Policies::Given(policy) | Policies::Kept(policy) => Some(policy.clone()),
            Policies::Template => held.state.as_ref().and_then(|s| s.record.policy.clone()),
            Policies::None => None,
        },
    };
    NewState {
        record,
        files: files.0,
    }
}

/// A Kubernetes resource name: a DNS subdomain (RFC 1123), at most 253 characters.
fn check_name(name: &str) -> Result<(), ImportError> {
    let bad = |reason| ImportError::BadName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > 253 {
        return Err(bad("it must be 1 to 253 characters long"));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if !name.split('.').all(label_ok) {
        return Err(bad(
            "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_follow_kubernetes_rules() {
        for good in ["rootcellar", "prod.rootcellar-2", "a"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Root", "-a", "a-", "a..b", "a_b", &"x".repeat(254)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
