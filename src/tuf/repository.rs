//! Creating a TUF repository: root v1 signed by every root key, then targets, snapshot and
//! timestamp v1 signed by their keys (snapshot and timestamp only in offline mode), with the
//! target files stored under consistent-snapshot names. Built in a temporary sibling of the
//! output directory, verified by reading it back as a client would, and only then renamed into
//! place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use tough::{ExpirationEnforcement, IntoVec, RepositoryLoader, TargetName};

use super::keyring::{self, ResolvedKey};
use super::layout::{METADATA_DIR, TARGETS_DIR};
use super::metadata::{self, MetaFile, SignedMetadata};
use super::record::{BeforeWrite, PendingFile};
use super::{verify, Mode, Policy, Role, TufError};
use crate::files::{ensure_absent, OutputError};
use crate::keys::Hsm;

/// What [`init_repository`] wrote: printed by the CLI and kept in ceremony records.
#[derive(Clone, Debug)]
pub struct InitReport {
    /// The repository directory.
    pub out_dir: PathBuf,
    /// Every file written, relative to `out_dir`, sorted.
    pub files: Vec<PathBuf>,
    /// Each top-level role as signed.
    pub roles: Vec<RoleReport>,
    /// The target files listed in the targets metadata.
    pub targets: Vec<TargetReport>,
}

/// One role as signed.
#[derive(Clone, Debug)]
pub struct RoleReport {
    /// The role.
    pub role: Role,
    /// The metadata version.
    pub version: u64,
    /// When the metadata expires (whole seconds).
    pub expires: Timestamp,
    /// How many of the keys must sign.
    pub threshold: u64,
    /// The keys holding the role; every one of them signed it.
    pub keys: Vec<KeyReport>,
}

/// One key of a role.
#[derive(Clone, Debug)]
pub struct KeyReport {
    /// The key's name in the policy.
    pub name: String,
    /// The TUF key id (lowercase hex).
    pub key_id: String,
    /// The key's URI (without module or PIN source).
    pub uri: String,
}

/// One target file.
#[derive(Clone, Debug)]
pub struct TargetReport {
    /// The TUF target name (the file's name).
    pub name: String,
    /// Its length in bytes.
    pub length: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// Where it is stored, relative to the repository directory.
    pub path: PathBuf,
}

impl InitReport {
    /// The machine-readable form printed by `tuf init --json`.
    pub fn to_json(&self) -> serde_json::Value {
        let roles: Vec<_> = self
            .roles
            .iter()
            .map(|r| {
                let keys: Vec<_> = r
                    .keys
                    .iter()
                    .map(|k| serde_json::json!({"name": k.name, "keyid": k.key_id, "uri": k.uri}))
                    .collect();
                serde_json::json!({
                    "role": r.role.name(),
                    "version": r.version,
                    "expires": r.expires.to_string(),
                    "threshold": r.threshold,
                    "keys": keys,
                })
            })
            .collect();
        let targets: Vec<_> = self
            .targets
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "length": t.length,
                    "sha256": t.sha256,
                    "path": t.path,
                })
            })
            .collect();
        serde_json::json!({
            "out_dir": self.out_dir,
            "files": self.files,
            "roles": roles,
            "targets": targets,
        })
    }

    /// The human-readable form printed by `tuf init`.
    pub fn to_text(&self) -> String {
        let mut text = format!("TUF repository written to {}\n", self.out_dir.display());
        for role in &self.roles {
            text.push_str(&format!(
                "{:<9}  version {}  expires {}  threshold {} of {}\n",
                role.role.name(),
                role.version,
                role.expires,
                role.threshold,
                role.keys.len()
            ));
            for key in &role.keys {
                text.push_str(&format!(
                    "           {}  {}  {}\n",
                    key.key_id, key.name, key.uri
                ));
            }
        }
        for target in &self.targets {
            text.push_str(&format!(
                "target     {}  {} bytes  sha256 {}\n",
                target.name, target.length, target.sha256
            ));
        }
        text.push_str("files:\n");
        for file in &self.files {
            text.push_str(&format!("  {}\n", file.display()));
        }
        text
    }
}

/// Creates a new TUF repository in `out_dir`, which must not exist.
///
/// Every key the policy names for a role signs that role's version 1 metadata, and each role
/// expires `expires_days` after `now` (truncated to whole seconds; `now` is the operator-confirmed
/// ceremony time, not the machine clock). The target files are listed by file name.
///
/// Writes `metadata/1.root.json`, `metadata/1.targets.json`, `metadata/1.snapshot.json`,
/// `metadata/timestamp.json` and `targets/<sha256>.<name>` for each target: what a TUF
/// repository with consistent snapshots serves. In [`Mode::Online`] snapshot and timestamp are
/// left to the online signer. There is no unversioned `root.json`: clients are given
/// `1.root.json` out of band as their trusted root. The repository is built in a temporary
/// sibling directory and verified (by rootcellar's client and, offline, by tough's) before it is
/// renamed into place, so a failure leaves nothing.
pub fn init_repository(
    policy: &Policy,
    targets: &[PathBuf],
    out_dir: &Path,
    hsm: &Hsm,
    now: crate::time::ConfirmedTime,
    record: &mut dyn BeforeWrite,
) -> Result<InitReport, TufError> {
    let now = now.timestamp();
    policy.validate()?;
    ensure_absent([out_dir])?;
    let temp_dir = temporary_sibling(out_dir)?;
    let targets = check_targets(targets)?;
    let expiries = expiries(policy, now)?;
    let signed_roles = signed_roles(policy);
    for &role in &signed_roles {
        for name in &policy.role(role).keys {
            if policy.key_location(name).is_none() {
                return Err(TufError::PolicyInvalid {
                    file: policy.file().to_path_buf(),
                    field: format!("roles.{role}.keys"),
                    problem: format!(
                        "key {name:?} is an external public key, but tuf init signs {role} v1 \
                         with every key of the role: give its HSM URI"
                    ),
                });
            }
        }
    }
    let keys = keyring::resolve_all(policy, hsm)?;

    std::fs::create_dir(&temp_dir).map_err(|source| io_error(&temp_dir, source))?;
    let guard = RemoveOnDrop(Some(temp_dir.clone()));
    let target_reports = build(policy, &keys, &targets, &expiries, &temp_dir, now)?;
    sync_tree(&temp_dir)?;
    let files = list_files(&temp_dir)?;
    let mut pending = Vec::new();
    for file in &files {
        let path = temp_dir.join(file);
        let bytes = std::fs::read(&path).map_err(|source| io_error(&path, source))?;
        pending.push(PendingFile::of(file, &bytes));
    }
    super::record::record(record, &temp_dir, pending)?;

    // `ensure_absent` again right before the rename narrows the window in which another process
    // could create the output. A non-empty directory or a file there makes the rename fail; only
    // an empty directory could be replaced, which loses nothing.
    ensure_absent([out_dir])?;
    std::fs::rename(&temp_dir, out_dir).map_err(|source| io_error(out_dir, source))?;
    guard.keep();
    sync_dir(&parent_of(out_dir))?;

    let roles = signed_roles
        .iter()
        .map(|&role| RoleReport {
            role,
            version: 1,
            expires: expiries[&role],
            threshold: policy.role(role).threshold,
            keys: policy
                .role(role)
                .keys
                .iter()
                .map(|name| KeyReport {
                    name: name.clone(),
                    key_id: keys[name].key.key_id.clone(),
                    uri: keys[name].location.clone(),
                })
                .collect(),
        })
        .collect();
    Ok(InitReport {
        out_dir: out_dir.to_path_buf(),
        files,
        roles,
        targets: target_reports,
    })
}

/// The roles the appliance signs: all four offline, root and targets online.
fn signed_roles(policy: &Policy) -> Vec<Role> {
    match policy.mode() {
        Mode::Offline => Role::ALL.to_vec(),
        Mode::Online => vec![Role::Root, Role::Targets],
    }
}

/// Signs `metadata` with every key of `role` that the policy names.
fn sign_all(
    policy: &Policy,
    keys: &BTreeMap<String, ResolvedKey>,
    role: Role,
    metadata: &mut SignedMetadata,
) -> Result<(), TufError> {
    for name in &policy.role(role).keys {
        let signer = keys[name]
            .signer
            .as_ref()
            .expect("init checked that every key it signs with is in a token");
        signer.sign_metadata(metadata)?;
    }
    Ok(())
}

/// Signs and writes the repository into `dir`, then reads it back as a client.
fn build(
    policy: &Policy,
    keys: &BTreeMap<String, ResolvedKey>,
    targets: &[(String, PathBuf)],
    expiries: &BTreeMap<Role, Timestamp>,
    dir: &Path,
    now: Timestamp,
) -> Result<Vec<TargetReport>, TufError> {
    let metadata_dir = dir.join(METADATA_DIR);
    let targets_dir = dir.join(TARGETS_DIR);
    for sub in [&metadata_dir, &targets_dir] {
        std::fs::create_dir(sub).map_err(|source| io_error(sub, source))?;
    }
    let unrepresentable = |reason: String| TufError::VerificationFailed {
        dir: dir.to_path_buf(),
        reason,
    };

    let (key_table, role_table) = keyring::root_tables(policy, keys);
    let root = metadata::root_payload(
        1,
        expiries[&Role::Root],
        &key_table,
        &role_table,
        policy.is_rehearsal(),
    );
    let mut root = SignedMetadata::new(root).map_err(unrepresentable)?;
    sign_all(policy, keys, Role::Root, &mut root)?;
    let root_bytes = root.to_bytes();
    crate::files::write_new(&metadata_dir.join("1.root.json"), &root_bytes)?;

    let mut entries = BTreeMap::new();
    let mut reports = Vec::new();
    for (name, path) in targets {
        let bytes = std::fs::read(path).map_err(|e| TufError::TargetUnusable {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let sha256 = metadata::sha256_hex(&bytes);
        let stored = Path::new(TARGETS_DIR).join(format!("{sha256}.{name}"));
        crate::files::write_new(&dir.join(&stored), &bytes)?;
        entries.insert(name.clone(), metadata::target_entry(&bytes, None));
        reports.push(TargetReport {
            name: name.clone(),
            length: bytes.len() as u64,
            sha256,
            path: stored,
        });
    }
    let payload = metadata::targets_payload(1, expiries[&Role::Targets], &entries);
    let mut targets_md = SignedMetadata::new(payload).map_err(unrepresentable)?;
    sign_all(policy, keys, Role::Targets, &mut targets_md)?;
    let targets_bytes = targets_md.to_bytes();
    crate::files::write_new(&metadata_dir.join("1.targets.json"), &targets_bytes)?;

    let failed = |reason: String| TufError::VerificationFailed {
        dir: dir.to_path_buf(),
        reason,
    };
    if policy.mode() == Mode::Online {
        // Snapshot and timestamp come from the online signer: check what was signed here.
        let mut cache = verify::KeyCache::default();
        let trusted = verify::load_trusted_root(&root_bytes, &mut cache)
            .map_err(|e| failed(e.to_string()))?;
        if !verify::tally(&trusted, Role::Targets, &targets_md, false).met() {
            return Err(failed("targets v1 does not meet its threshold".into()));
        }
        return Ok(reports);
    }

    let payload = metadata::snapshot_payload(
        1,
        expiries[&Role::Snapshot],
        MetaFile::of(1, &targets_bytes),
    );
    let mut snapshot = SignedMetadata::new(payload).map_err(unrepresentable)?;
    sign_all(policy, keys, Role::Snapshot, &mut snapshot)?;
    let snapshot_bytes = snapshot.to_bytes();
    crate::files::write_new(&metadata_dir.join("1.snapshot.json"), &snapshot_bytes)?;
    let payload = metadata::timestamp_payload(
        1,
        expiries[&Role::Timestamp],
        MetaFile::of(1, &snapshot_bytes),
    );
    let mut timestamp = SignedMetadata::new(payload).map_err(unrepresentable)?;
    sign_all(policy, keys, Role::Timestamp, &mut timestamp)?;
    crate::files::write_new(&metadata_dir.join("timestamp.json"), &timestamp.to_bytes())?;

    // Read back twice: by rootcellar's own client and by tough's, independent implementations.
    verify::verify_repository(&root_bytes, dir, &verify::VerifyOptions::at(now))
        .map_err(|e| failed(format!("rootcellar's client refuses it: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TufError::Runtime)?;
    runtime.block_on(verify_with_tough(
        dir,
        &metadata_dir.join("1.root.json"),
        targets,
        expiries,
        now,
    ))?;
    Ok(reports)
}

/// Reads the new repository back with tough's client, from the trusted root through every
/// target, so that what is published has been verified once as a client will verify it.
async fn verify_with_tough(
    dir: &Path,
    root_path: &Path,
    targets: &[(String, PathBuf)],
    expiries: &BTreeMap<Role, Timestamp>,
    now: Timestamp,
) -> Result<Vec<TargetReport>, TufError> {
    let failed = |reason: String| TufError::VerificationFailed {
        dir: dir.to_path_buf(),
        reason,
    };
    let root_bytes = std::fs::read(root_path).map_err(|source| io_error(root_path, source))?;
    let dir_url = |sub: &str| {
        let path = dir.join(sub);
        let absolute = std::path::absolute(&path).map_err(|source| io_error(&path, source))?;
        url::Url::from_directory_path(&absolute)
            .map_err(|()| failed(format!("{} cannot be a file URL", absolute.display())))
    };
    // The appliance clock is not trusted; expiry was computed from `now` and is checked below.
    let repository =
        RepositoryLoader::new(&root_bytes, dir_url(METADATA_DIR)?, dir_url(TARGETS_DIR)?)
            .expiration_enforcement(ExpirationEnforcement::Unsafe)
            .load()
            .await
            .map_err(|e| failed(format!("tough cannot load it: {e}")))?;
    for (role, expires) in [
        (Role::Root, repository.root().signed.expires),
        (Role::Targets, repository.targets().signed.expires),
        (Role::Snapshot, repository.snapshot().signed.expires),
        (Role::Timestamp, repository.timestamp().signed.expires),
    ] {
        if expires != expiries[&role] || expires <= now {
            return Err(failed(format!(
                "{role} expires {expires}, expected {}",
                expiries[&role]
            )));
        }
    }

    let mut reports = Vec::new();
    for (name, path) in targets {
        let target_name = TargetName::new(name.as_str())
            .map_err(TufError::tough(format!("name target {name:?}")))?;
        let stream = repository
            .read_target(&target_name)
            .await
            .map_err(|e| failed(format!("target {name:?}: {e}")))?
            .ok_or_else(|| failed(format!("target {name:?} is not listed")))?;
        let bytes = stream
            .into_vec()
            .await
            .map_err(|e| failed(format!("target {name:?}: {e}")))?;
        let original = std::fs::read(path).map_err(|source| io_error(path, source))?;
        if bytes != original {
            return Err(failed(format!(
                "target {name:?} differs from {}",
                path.display()
            )));
        }
        let sha256 = hex::encode(sha2::Digest::finalize(sha2::Digest::chain_update(
            sha2::Sha256::default(),
            &bytes,
        )));
        reports.push(TargetReport {
            name: name.clone(),
            length: bytes.len() as u64,
            path: Path::new(TARGETS_DIR).join(format!("{sha256}.{name}")),
            sha256,
        });
    }
    Ok(reports)
}

/// Each role's expiry: `now` truncated to whole seconds (tough would otherwise write
/// nanoseconds, which some clients reject) plus the policy's days.
fn expiries(policy: &Policy, now: Timestamp) -> Result<BTreeMap<Role, Timestamp>, TufError> {
    let whole = crate::time::whole_seconds(now);
    Role::ALL
        .iter()
        .map(|&role| {
            let days = policy.role(role).expires_days;
            whole
                .checked_add(SignedDuration::from_hours(i64::from(days) * 24))
                .map(|expires| (role, expires))
                .map_err(|_| TufError::ExpiryOutOfRange {
                    role: role.name(),
                    days,
                    now,
                })
        })
        .collect()
}

/// Checks that every target is a readable regular file with a unique, UTF-8 name, before any
/// key is asked to sign.
fn check_targets(paths: &[PathBuf]) -> Result<Vec<(String, PathBuf)>, TufError> {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut checked = Vec::new();
    for path in paths {
        let unusable = |reason: String| TufError::TargetUnusable {
            path: path.clone(),
            reason,
        };
        let metadata = std::fs::metadata(path).map_err(|e| unusable(e.to_string()))?;
        if !metadata.is_file() {
            return Err(unusable("not a regular file".into()));
        }
        std::fs::File::open(path).map_err(|e| unusable(e.to_string()))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| unusable("its file name is not UTF-8".into()))?
            .to_string();
        TargetName::new(name.as_str())
            .map_err(|e| unusable(format!("not a valid TUF target name: {e}")))?;
        if let Some(first) = by_name.insert(name.clone(), path.clone()) {
            return Err(TufError::DuplicateTargetName {
                name,
                first,
                second: path.clone(),
            });
        }
        checked.push((name, path.clone()));
    }
    Ok(checked)
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A fresh name beside `out_dir`, so that the final rename stays on one file system.
fn temporary_sibling(out_dir: &Path) -> Result<PathBuf, TufError> {
    let name = out_dir.file_name().ok_or_else(|| {
        io_error(
            out_dir,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the output must name a new directory",
            ),
        )
    })?;
    let parent = parent_of(out_dir);
    if !parent.is_dir() {
        return Err(io_error(
            &parent,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the output directory's parent does not exist",
            ),
        ));
    }
    let mut nonce = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    Ok(parent.join(format!(
        ".tmp-{}-{}",
        hex::encode(nonce),
        name.to_string_lossy()
    )))
}

/// Removes a half-built repository when building fails.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    /// The directory was renamed into place: nothing to remove.
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Flushes every file and directory under `dir` to disk: the appliance can lose power at any
/// moment, and the rename must not publish files whose contents are still in the page cache.
fn sync_tree(dir: &Path) -> Result<(), TufError> {
    for entry in std::fs::read_dir(dir).map_err(|source| io_error(dir, source))? {
        let path = entry.map_err(|source| io_error(dir, source))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|source| io_error(&path, source))?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), TufError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|source| io_error(dir, source))
}

/// Every file under `dir`, relative to it, sorted.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>, TufError> {
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let absolute = dir.join(&relative);
        for entry in std::fs::read_dir(&absolute).map_err(|source| io_error(&absolute, source))? {
            let entry = entry.map_err(|source| io_error(&absolute, source))?;
            let path = relative.join(entry.file_name());
            if entry.path().is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn io_error(path: &Path, source: std::io::Error) -> TufError {
    TufError::Output(OutputError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let text = r#"
            [roles.root]
            keys = ["a"]
            threshold = 1
            expires_days = 182
            [roles.targets]
            keys = ["a"]
            threshold = 1
            expires_days = 182
            [roles.snapshot]
            keys = ["a"]
            threshold = 1
            expires_days = 21
            [roles.timestamp]
            keys = ["a"]
            threshold = 1
            expires_days = 7
            [keys]
            a = "pkcs11:token=t;object=a"
        "#;
        Policy::from_toml(text, Path::new("policy.toml")).unwrap()
    }

    #[test]
    fn expiries_are_whole_seconds_after_now() {
        let now: Timestamp = "2026-11-25T10:00:00.987654321Z".parse().unwrap();
        let expiries = expiries(&policy(), now).unwrap();
        assert_eq!(expiries[&Role::Root].to_string(), "2027-05-26T10:00:00Z");
        assert_eq!(
            expiries[&Role::Snapshot].to_string(),
            "2026-12-16T10:00:00Z"
        );
        assert_eq!(
            expiries[&Role::Timestamp].to_string(),
            "2026-12-02T10:00:00Z"
        );
        assert!(expiries.values().all(|t| t.subsec_nanosecond() == 0));
    }

    #[test]
    fn expiry_past_the_representable_range_is_an_error() {
        let now: Timestamp = "9999-12-01T00:00:00Z".parse().unwrap();
        let err = expiries(&policy(), now).unwrap_err().to_string();
        assert!(
            err.starts_with("roles.root.expires_days: 182 days after"),
            "{err}"
        );
    }

    #[test]
    fn targets_must_be_files_with_unique_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        std::fs::write(&a, b"{}").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let again = dir.path().join("sub/a.json");
        std::fs::write(&again, b"[]").unwrap();

        let checked = check_targets(std::slice::from_ref(&a)).unwrap();
        assert_eq!(checked, vec![("a.json".to_string(), a.clone())]);
        let err = check_targets(&[a.clone(), again]).unwrap_err();
        assert!(matches!(err, TufError::DuplicateTargetName { .. }), "{err}");
        let err = check_targets(&[dir.path().join("sub")]).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = check_targets(&[dir.path().join("absent")]).unwrap_err();
        assert!(err.to_string().starts_with("target "), "{err}");
    }

    #[test]
    fn output_in_a_missing_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = temporary_sibling(&dir.path().join("no/repo")).unwrap_err();
        assert!(err.to_string().contains("parent does not exist"), "{err}");
        let sibling = temporary_sibling(&dir.path().join("repo")).unwrap();
        assert_eq!(sibling.parent(), Some(dir.path()));
        assert!(sibling
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(".tmp-"));
    }
}
