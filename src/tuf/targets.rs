//! Staging changes to the targets role: add or replace a target file (with custom metadata),
//! remove one, or renew the targets metadata unchanged (new version, new expiry). Each change
//! edits the staged draft `staged/N.targets.json` (N = the published version + 1), which the
//! targets keys then sign with `tuf sign`; `tuf publish` moves it, and the target files staged
//! under `staged/targets/`, into place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{json, Value};

use super::layout::{io_error, Draft, Repo, TARGETS_DIR};
use super::metadata::{self, format_time, SignedMetadata};
use super::record::{BeforeWrite, PendingFile};
use super::{Policy, Role, TufError};

/// A change to the targets role.
#[derive(Clone, Debug)]
pub enum TargetChange {
    /// Adds the file as a target, or replaces the target of that name.
    Add {
        /// The file.
        file: PathBuf,
        /// The target name (default: the file name).
        name: Option<String>,
        /// Custom metadata (a JSON object). When replacing without it, the old custom stays.
        custom: Option<Value>,
    },
    /// Removes a target.
    Remove {
        /// The target name.
        name: String,
    },
    /// Renews the metadata: same targets, new version and expiry.
    Renew,
}

/// What [`stage_targets`] staged.
#[derive(Clone, Debug)]
pub struct TargetsReport {
    /// The draft file.
    pub file: PathBuf,
    /// The draft's version.
    pub version: u64,
    /// Its expiry.
    pub expires: Timestamp,
    /// SHA-256 of the payload the targets keys sign.
    pub payload_sha256: String,
    /// What this change did, in words (`added trusted_root.json`).
    pub change: String,
    /// Signatures the draft had and lost because its payload changed (key ids).
    pub dropped_signatures: Vec<String>,
    /// Every target the draft lists: name, length, SHA-256.
    pub targets: Vec<(String, u64, String)>,
}

impl TargetsReport {
    /// The machine-readable form printed by `tuf targets … --json`.
    pub fn to_json(&self) -> Value {
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|(n, l, h)| json!({"name": n, "length": l, "sha256": h}))
            .collect();
        json!({
            "file": self.file,
            "version": self.version,
            "expires": format_time(self.expires),
            "payload_sha256": self.payload_sha256,
            "change": self.change,
            "dropped_signatures": self.dropped_signatures,
            "targets": targets,
        })
    }

    /// The human-readable form printed by `tuf targets …`.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}: staged targets v{} in {}\n  expires {}\n  payload sha256 {}\n",
            self.change,
            self.version,
            self.file.display(),
            format_time(self.expires),
            self.payload_sha256
        );
        for id in &self.dropped_signatures {
            text.push_str(&format!(
                "  dropped the signature of {id} (the payload changed)\n"
            ));
        }
        for (name, length, sha) in &self.targets {
            text.push_str(&format!("  target {name}  {length} bytes  sha256 {sha}\n"));
        }
        text.push_str(
            "next: the targets keys sign with `rootcellar tuf sign --repo DIR --key URI`\n",
        );
        text
    }
}

/// Applies `change` to the staged targets draft of the repository in `dir` (creating the draft
/// from the latest published targets if none is staged), with an expiry of the policy's
/// `expires_days` after `now`.
pub fn stage_targets(
    dir: &Path,
    policy: &Policy,
    change: &TargetChange,
    now: crate::time::ConfirmedTime,
    record: &mut dyn BeforeWrite,
) -> Result<TargetsReport, TufError> {
    let now = now.timestamp();
    let repo = Repo::open(dir)?;
    let _lock = repo.lock()?;
    let existing = repo.draft(Role::Targets)?;
    let (version, mut entries, old_signatures) = match &existing {
        Some(draft) => (
            draft.version,
            listed_targets(&draft.metadata, &draft.path)?,
            draft
                .metadata
                .signatures()
                .iter()
                .map(|s| s.keyid.clone())
                .collect(),
        ),
        None => {
            let latest = repo.latest_version(Role::Targets)?;
            let entries = match latest {
                Some(v) => {
                    let name = format!("{v}.targets.json");
                    listed_targets(&repo.read_metadata(&name)?, &repo.metadata_path(&name))?
                }
                None => BTreeMap::new(),
            };
            (latest.unwrap_or(0) + 1, entries, Vec::new())
        }
    };

    let mut target_file: Option<(String, Vec<u8>)> = None;
    let description = match change {
        TargetChange::Add { file, name, custom } => {
            let name = match name {
                Some(n) => n.clone(),
                None => file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_string)
                    .ok_or_else(|| TufError::TargetUnusable {
                        path: file.clone(),
                        reason: "its file name is not UTF-8".into(),
                    })?,
            };
            check_name(&name)?;
            if let Some(custom) = custom {
                check_custom(&name, custom)?;
            }
            let bytes = std::fs::read(file).map_err(|e| TufError::TargetUnusable {
                path: file.clone(),
                reason: e.to_string(),
            })?;
            let previous = entries.get(&name).cloned();
            let custom = custom
                .clone()
                .or_else(|| previous.as_ref().and_then(|p| p.get("custom").cloned()));
            target_file = Some((name.clone(), bytes.clone()));
            entries.insert(
                name.clone(),
                metadata::target_entry(&bytes, custom.as_ref()),
            );
            if previous.is_some() {
                format!("replaced {name}")
            } else {
                format!("added {name}")
            }
        }
        TargetChange::Remove { name } => {
            if entries.remove(name).is_none() {
                return Err(TufError::TargetInvalid {
                    name: name.clone(),
                    reason: format!("targets v{} does not list it", version - 1),
                });
            }
            format!("removed {name}")
        }
        TargetChange::Renew => "renewed".to_string(),
    };

    let days = policy.role(Role::Targets).expires_days;
    let expires = metadata::expiry_after(now, days).ok_or(TufError::ExpiryOutOfRange {
        role: Role::Targets.name(),
        days,
        now,
    })?;
    let payload = metadata::targets_payload(version, expires, &entries);
    let md = SignedMetadata::new(payload).map_err(|reason| TufError::TargetInvalid {
        name: "(custom metadata)".into(),
        reason,
    })?;
    let draft_path = match &existing {
        Some(draft) => draft.path.clone(),
        None => repo.draft_path(Role::Targets, version),
    };
    let mut pending = vec![PendingFile::of(draft_path, &md.to_bytes())];
    if let Some((name, bytes)) = &target_file {
        pending.insert(
            0,
            PendingFile::of(staged_file_path(&repo, name, bytes), bytes),
        );
    }
    super::record::record(record, &repo.dir, pending)?;
    if let Some((name, bytes)) = &target_file {
        stage_file(&repo, name, bytes)?;
    }
    let draft = match existing {
        Some(mut draft) => {
            draft.metadata = md.clone();
            repo.save_draft(&draft)?;
            draft
        }
        None => repo.create_draft(Role::Targets, &md)?,
    };
    Ok(report(
        &draft,
        expires,
        description,
        old_signatures,
        &entries,
    ))
}

fn report(
    draft: &Draft,
    expires: Timestamp,
    change: String,
    dropped_signatures: Vec<String>,
    entries: &BTreeMap<String, Value>,
) -> TargetsReport {
    TargetsReport {
        file: draft.path.clone(),
        version: draft.version,
        expires,
        payload_sha256: draft.metadata.payload_sha256(),
        change,
        dropped_signatures,
        targets: entries
            .iter()
            .map(|(name, entry)| {
                (
                    name.clone(),
                    entry["length"].as_u64().unwrap_or(0),
                    entry["hashes"]["sha256"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
    }
}

/// The `targets` table of targets metadata, entries kept as written.
fn listed_targets(md: &SignedMetadata, file: &Path) -> Result<BTreeMap<String, Value>, TufError> {
    match md.signed().get("targets") {
        Some(Value::Object(map)) => Ok(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        _ => Err(TufError::StagedInvalid {
            file: file.to_path_buf(),
            reason: "it has no targets table".into(),
        }),
    }
}

/// A target name rootcellar stores: one path component, valid for TUF.
fn check_name(name: &str) -> Result<(), TufError> {
    let bad = |reason: &str| TufError::TargetInvalid {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(bad("not a usable target name"));
    }
    if name.contains('/') || name.contains('\\') || name.chars().any(char::is_control) {
        return Err(bad(
            "a target name is one file name, without slashes or control characters",
        ));
    }
    tough::TargetName::new(name).map_err(|e| bad(&format!("not a valid TUF target name: {e}")))?;
    Ok(())
}

/// Custom metadata: a JSON object that canonical JSON can represent (no fractional numbers).
fn check_custom(name: &str, custom: &Value) -> Result<(), TufError> {
    if !custom.is_object() {
        return Err(TufError::TargetInvalid {
            name: name.to_string(),
            reason: "custom metadata must be a JSON object".into(),
        });
    }
    metadata::canonical_json(custom).map_err(|reason| TufError::TargetInvalid {
        name: name.to_string(),
        reason: format!("custom metadata is {reason}"),
    })?;
    Ok(())
}

/// Where a target file's bytes are staged.
fn staged_file_path(repo: &Repo, name: &str, bytes: &[u8]) -> PathBuf {
    repo.staged_targets_dir()
        .join(format!("{}.{name}", metadata::sha256_hex(bytes)))
}

/// Keeps the file's bytes under `staged/targets/<sha256>.<name>` until publish.
fn stage_file(repo: &Repo, name: &str, bytes: &[u8]) -> Result<(), TufError> {
    let dir = repo.staged_targets_dir();
    std::fs::create_dir_all(&dir).map_err(|source| io_error(&dir, source))?;
    let stored = format!("{}.{name}", metadata::sha256_hex(bytes));
    if repo.dir.join(TARGETS_DIR).join(&stored).is_file() {
        return Ok(());
    }
    let path = staged_file_path(repo, name, bytes);
    if path.is_file() {
        return Ok(());
    }
    crate::files::write_new(&path, bytes)?;
    Ok(())
}
