//! Publishing (finalising): staged drafts that meet their thresholds move into `metadata/`
//! under versioned names, their target files into `targets/`, and, in offline mode, a new
//! snapshot and timestamp are signed by the appliance's keys. Everything is verified as a client
//! would verify it, over the repository as it will be, before the first file is written; files
//! are written in the order that keeps the repository consistent for a client reading it at any
//! moment (targets, roots, targets metadata, snapshot, and `timestamp.json` last).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{json, Value};

use super::keyring;
use super::layout::{io_error, replace_file, Repo, METADATA_DIR, TARGETS_DIR};
use super::metadata::{self, format_time, MetaFile, SignedMetadata, TargetFields};
use super::record::{BeforeWrite, PendingFile};
use super::status::Staged;
use super::verify::{self, DirectorySource, OverlaySource, VerifyOptions};
use super::{Mode, Policy, Role, TufError};
use crate::keys::Hsm;

/// One role as published.
#[derive(Clone, Debug)]
pub struct PublishedRole {
    /// The role.
    pub role: Role,
    /// Its new version.
    pub version: u64,
    /// Its expiry.
    pub expires: Timestamp,
    /// The file written, relative to the repository.
    pub file: PathBuf,
}

/// What [`publish`] wrote.
#[derive(Clone, Debug)]
pub struct PublishReport {
    /// The repository.
    pub repo: PathBuf,
    /// The policy's mode.
    pub mode: Mode,
    /// The roles published, in the order written.
    pub roles: Vec<PublishedRole>,
    /// Target files written, relative to the repository.
    pub target_files: Vec<PathBuf>,
}

impl PublishReport {
    /// The machine-readable form printed by `tuf publish --json`.
    pub fn to_json(&self) -> Value {
        let roles: Vec<Value> = self
            .roles
            .iter()
            .map(|r| {
                json!({
                    "role": r.role.name(),
                    "version": r.version,
                    "expires": format_time(r.expires),
                    "file": r.file,
                })
            })
            .collect();
        json!({
            "repo": self.repo,
            "mode": self.mode.name(),
            "published": roles,
            "target_files": self.target_files,
        })
    }

    /// The human-readable form printed by `tuf publish`.
    pub fn to_text(&self) -> String {
        let mut text = format!("published in {}:\n", self.repo.display());
        for r in &self.roles {
            text.push_str(&format!(
                "  {:<9} v{:<4} expires {}  {}\n",
                r.role.name(),
                r.version,
                format_time(r.expires),
                r.file.display()
            ));
        }
        for f in &self.target_files {
            text.push_str(&format!("  target file {}\n", f.display()));
        }
        if self.mode == Mode::Online {
            text.push_str(
                "online mode: the online service signs the next snapshot and timestamp\n",
            );
        }
        text
    }
}

/// Publishes the drafts staged in the repository in `dir` at `now`. In offline mode, a new
/// snapshot and timestamp are signed by the policy's keys (and with nothing staged, that alone:
/// a refresh). Refuses a draft below any of its thresholds, naming the keys that could still
/// sign; refuses anything that would not verify.
pub fn publish(
    dir: &Path,
    policy: &Policy,
    hsm: &Hsm,
    now: crate::time::ConfirmedTime,
    record: &mut dyn BeforeWrite,
) -> Result<PublishReport, TufError> {
    policy.validate()?;
    publish_validated(dir, policy, hsm, now, record, false)
}

/// Re-signs snapshot and timestamp over what is published, and nothing else: what keeps a
/// disconnected cluster's metadata fresh between ceremonies, with the appliance's keys alone.
/// Only the policy's snapshot and timestamp keys need be bound (root and targets are not
/// signed). Refused in online mode (the online service does this) and when a draft is staged:
/// a draft is published by [`publish`], after its own signers were present.
pub fn refresh(
    dir: &Path,
    policy: &Policy,
    hsm: &Hsm,
    now: crate::time::ConfirmedTime,
    record: &mut dyn BeforeWrite,
) -> Result<PublishReport, TufError> {
    policy.validate_for_refresh()?;
    if policy.mode() == Mode::Online {
        return Err(TufError::RefreshOnline {
            policy: policy.file().to_path_buf(),
        });
    }
    publish_validated(dir, policy, hsm, now, record, true)
}

fn publish_validated(
    dir: &Path,
    policy: &Policy,
    hsm: &Hsm,
    now: crate::time::ConfirmedTime,
    record: &mut dyn BeforeWrite,
    refresh_only: bool,
) -> Result<PublishReport, TufError> {
    let now = now.timestamp();
    let repo = Repo::open(dir)?;
    let _lock = repo.lock()?;
    let staged = Staged::load(&repo)?;
    if refresh_only && !staged.drafts().is_empty() {
        return Err(TufError::RefreshWithDrafts {
            dir: repo.staged_dir(),
            drafts: staged
                .drafts()
                .iter()
                .map(|d| format!("{} v{}", d.role, d.version))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if staged.drafts().is_empty() && policy.mode() == Mode::Online {
        return Err(TufError::NothingStaged {
            dir: repo.staged_dir(),
            hint: "in online mode the online service refreshes snapshot and timestamp".into(),
        });
    }
    for draft in staged.drafts() {
        let status = staged.draft_status(draft, &repo, now);
        if !status.ready() {
            return Err(TufError::BelowThreshold {
                role: draft.role,
                version: draft.version,
                missing: status.missing_text(),
            });
        }
    }
    let root = staged.final_root();
    if root.expires <= now {
        return Err(TufError::Expired {
            role: Role::Root,
            version: root.version,
            expires: root.expires,
            now,
            hint: "re-sign the root first (tuf rotate with the same policy)".into(),
        });
    }

    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut roles = Vec::new();
    let mut target_files = Vec::new();
    let meta_path = |name: String| format!("{METADATA_DIR}/{name}");

    if let Some((draft, _)) = &staged.root {
        let file = meta_path(format!("{}.root.json", draft.version));
        files.insert(file.clone(), draft.metadata.to_bytes());
        roles.push(PublishedRole {
            role: Role::Root,
            version: draft.version,
            expires: root.expires,
            file: file.into(),
        });
    }

    // The targets clients will see: the draft, or the latest published, which must still meet
    // the threshold of the root it is now read under.
    let (targets_version, targets_md) = match &staged.targets {
        Some(draft) => {
            let file = meta_path(format!("{}.targets.json", draft.version));
            files.insert(file.clone(), draft.metadata.to_bytes());
            roles.push(PublishedRole {
                role: Role::Targets,
                version: draft.version,
                expires: draft.metadata.expires().unwrap_or(now),
                file: file.into(),
            });
            (draft.version, draft.metadata.clone())
        }
        None => {
            let v = repo
                .latest_version(Role::Targets)?
                .ok_or_else(|| TufError::NothingStaged {
                    dir: repo.staged_dir(),
                    hint: "no targets metadata is published; stage some with tuf targets add"
                        .into(),
                })?;
            (v, repo.read_metadata(&format!("{v}.targets.json"))?)
        }
    };
    if !verify::tally(root, Role::Targets, &targets_md, false).met() {
        return Err(TufError::PolicyMismatch {
            problem: format!(
                "targets v{targets_version} is not signed by a threshold of the targets keys of \
                 root v{}; stage new targets (tuf targets renew), have them signed, then publish",
                root.version
            ),
        });
    }
    match targets_md.expires() {
        Some(expires) if expires > now => {}
        expires => {
            return Err(TufError::Expired {
                role: Role::Targets,
                version: targets_version,
                expires: expires.unwrap_or(now),
                now,
                hint: "renew it first (tuf targets renew)".into(),
            })
        }
    }
    if let Some(draft) = &staged.targets {
        collect_target_files(&repo, &draft.metadata, &mut files, &mut target_files)?;
    }

    if policy.mode() == Mode::Offline {
        let targets_bytes = match files.get(&meta_path(format!("{targets_version}.targets.json"))) {
            Some(bytes) => bytes.clone(),
            None => read(&repo.metadata_path(&format!("{targets_version}.targets.json")))?,
        };
        let signers = online_role_signers(policy, root, hsm)?;
        let snapshot_version = repo.latest_version(Role::Snapshot)?.unwrap_or(0) + 1;
        let snapshot_expires = expiry(policy, Role::Snapshot, now)?;
        let payload = metadata::snapshot_payload(
            snapshot_version,
            snapshot_expires,
            MetaFile::of(targets_version, &targets_bytes),
        );
        let mut snapshot = SignedMetadata::new(payload).expect("a snapshot has no floats");
        for key in &signers[&Role::Snapshot] {
            key.sign_metadata(&mut snapshot)?;
        }
        let snapshot_bytes = snapshot.to_bytes();
        let file = meta_path(format!("{snapshot_version}.snapshot.json"));
        files.insert(file.clone(), snapshot_bytes.clone());
        roles.push(PublishedRole {
            role: Role::Snapshot,
            version: snapshot_version,
            expires: snapshot_expires,
            file: file.into(),
        });

        let timestamp_version = if repo.metadata_path("timestamp.json").is_file() {
            repo.read_metadata("timestamp.json")?.version().unwrap_or(0) + 1
        } else {
            1
        };
        let timestamp_expires = expiry(policy, Role::Timestamp, now)?;
        let payload = metadata::timestamp_payload(
            timestamp_version,
            timestamp_expires,
            MetaFile::of(snapshot_version, &snapshot_bytes),
        );
        let mut timestamp = SignedMetadata::new(payload).expect("a timestamp has no floats");
        for key in &signers[&Role::Timestamp] {
            key.sign_metadata(&mut timestamp)?;
        }
        let file = meta_path("timestamp.json".into());
        files.insert(file.clone(), timestamp.to_bytes());
        roles.push(PublishedRole {
            role: Role::Timestamp,
            version: timestamp_version,
            expires: timestamp_expires,
            file: file.into(),
        });
    }

    // Verify the repository as it will be, from the first root, before writing anything.
    let first_root = read(&repo.metadata_path("1.root.json"))?;
    let base = DirectorySource::new(&repo.dir);
    let overlay = OverlaySource { base: &base, files };
    if policy.mode() == Mode::Offline {
        verify::verify_source(&first_root, &overlay, &VerifyOptions::at(now))?;
    } else {
        let mut cache = verify::KeyCache::default();
        let trusted = verify::load_trusted_root(&first_root, &mut cache)?;
        verify::walk_roots(trusted, &overlay, u64::MAX, &mut cache)?;
    }

    // Write: target files, then versioned metadata in chain order, timestamp.json last.
    let OverlaySource { files, .. } = overlay;
    let mut ordered: Vec<(&String, &Vec<u8>)> = files.iter().collect();
    ordered.sort_by_key(|(path, _)| write_rank(path));
    super::record::record(
        record,
        &repo.dir,
        ordered
            .iter()
            .map(|(path, bytes)| PendingFile::of(path.as_str(), bytes))
            .collect(),
    )?;
    for (path, bytes) in ordered {
        let full = repo.dir.join(path);
        if path.ends_with("/timestamp.json") {
            replace_file(&full, bytes)?;
            continue;
        }
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|source| io_error(parent, source))?;
        }
        match std::fs::read(&full) {
            // Written by an earlier, interrupted publish: identical bytes, nothing to do.
            Ok(existing) if &existing == bytes => {}
            _ => crate::files::write_new(&full, bytes)?,
        }
    }
    for sub in [METADATA_DIR, TARGETS_DIR] {
        let dir = repo.dir.join(sub);
        if dir.is_dir() {
            std::fs::File::open(&dir)
                .and_then(|f| f.sync_all())
                .map_err(|source| io_error(&dir, source))?;
        }
    }
    repo.clear_staged()?;
    Ok(PublishReport {
        repo: repo.dir.clone(),
        mode: policy.mode(),
        roles,
        target_files,
    })
}

/// Target files first, then roots by version, targets, snapshot, and the timestamp last.
fn write_rank(path: &str) -> (u8, u64) {
    let version = |suffix: &str| {
        path.rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(suffix))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    if path.starts_with(TARGETS_DIR) {
        (0, 0)
    } else if path.ends_with(".root.json") {
        (1, version(".root.json"))
    } else if path.ends_with(".targets.json") {
        (2, 0)
    } else if path.ends_with(".snapshot.json") {
        (3, 0)
    } else {
        (4, 0)
    }
}

/// The appliance's signers for snapshot and timestamp, which must be keys the final root lists
/// for those roles, enough of them to meet its thresholds.
fn online_role_signers(
    policy: &Policy,
    root: &verify::TrustedRoot,
    hsm: &Hsm,
) -> Result<BTreeMap<Role, Vec<super::HsmKeySource>>, TufError> {
    let mut signers = BTreeMap::new();
    for role in [Role::Snapshot, Role::Timestamp] {
        let names = &policy.role(role).keys;
        let keys = keyring::resolve(policy, names, hsm)?;
        let listed = &root.role(role).keyids;
        let mut usable = Vec::new();
        for name in names {
            let key = &keys[name];
            if listed.contains(&key.key.key_id) {
                if let Some(signer) = &key.signer {
                    usable.push(signer.clone());
                }
            }
        }
        if (usable.len() as u64) < root.role(role).threshold {
            return Err(TufError::PolicyMismatch {
                problem: format!(
                    "root v{} lists {role} keys {} with threshold {}, but the policy's {role} \
                     keys in this appliance's tokens are {}: rotate the root to the policy's \
                     keys, or fix the policy",
                    root.version,
                    listed.join(", "),
                    root.role(role).threshold,
                    names
                        .iter()
                        .map(|n| format!("{n} ({})", keys[n].key.key_id))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        signers.insert(role, usable);
    }
    Ok(signers)
}

/// Adds the target files the draft lists and `targets/` lacks, from `staged/targets/`.
fn collect_target_files(
    repo: &Repo,
    draft: &SignedMetadata,
    files: &mut BTreeMap<String, Vec<u8>>,
    written: &mut Vec<PathBuf>,
) -> Result<(), TufError> {
    let listed: BTreeMap<String, TargetFields> = draft
        .signed()
        .get("targets")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| TufError::StagedInvalid {
            file: repo.staged_dir(),
            reason: format!("the targets draft does not parse: {e}"),
        })?
        .unwrap_or_default();
    for (name, info) in listed {
        let Some(sha256) = info.hashes.get("sha256") else {
            continue;
        };
        let stored = format!("{sha256}.{name}");
        let relative = format!("{TARGETS_DIR}/{stored}");
        if repo.dir.join(&relative).is_file() {
            continue;
        }
        let staged = repo.staged_targets_dir().join(&stored);
        let bytes = std::fs::read(&staged).map_err(|e| TufError::StagedInvalid {
            file: staged.clone(),
            reason: format!("the target file of {name:?} is not staged: {e}"),
        })?;
        files.insert(relative.clone(), bytes);
        written.push(relative.into());
    }
    Ok(())
}

fn expiry(policy: &Policy, role: Role, now: Timestamp) -> Result<Timestamp, TufError> {
    let days = policy.role(role).expires_days;
    metadata::expiry_after(now, days).ok_or(TufError::ExpiryOutOfRange {
        role: role.name(),
        days,
        now,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TufError> {
    std::fs::read(path).map_err(|source| io_error(path, source))
}
