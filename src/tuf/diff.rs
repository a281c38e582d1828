//! What a staged draft changes, for the people about to sign it: a root's version, expiry,
//! keys added and removed (with the fingerprints custodians compare by voice) and thresholds;
//! a targets draft's files added, changed and removed. `tuf rotate` reports the same role
//! changes when it drafts the root; a ceremony shows them before each custodian signs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::layout::Repo;
use super::metadata::{format_time, SignedMetadata};
use super::rotate::RoleChange;
use super::status::{KeyLabel, Staged};
use super::verify::TrustedRoot;
use super::{Role, TufError};
use crate::readout;

/// The role changes from `current` to a root listing `new_roles` (key ids and threshold per
/// role); roles without change are left out.
pub(crate) fn role_changes(
    current: &TrustedRoot,
    new_roles: &BTreeMap<Role, (Vec<String>, u64)>,
    label: impl Fn(&String) -> KeyLabel,
) -> Vec<RoleChange> {
    let mut changes = Vec::new();
    for role in Role::ALL {
        let old = current.role(role);
        let Some((new_ids, new_threshold)) = new_roles.get(&role) else {
            continue;
        };
        let old_set: BTreeSet<&String> = old.keyids.iter().collect();
        let new_set: BTreeSet<&String> = new_ids.iter().collect();
        let added: Vec<KeyLabel> = new_set.difference(&old_set).map(|k| label(k)).collect();
        let removed: Vec<KeyLabel> = old_set.difference(&new_set).map(|k| label(k)).collect();
        if !added.is_empty() || !removed.is_empty() || old.threshold != *new_threshold {
            changes.push(RoleChange {
                role,
                added,
                removed,
                old_threshold: old.threshold,
                new_threshold: *new_threshold,
            });
        }
    }
    changes
}

/// Lines describing every draft staged in the repository in `dir`, for the preview a
/// custodian reads before signing.
pub fn describe_drafts(dir: &Path) -> Result<Vec<String>, TufError> {
    let repo = Repo::open(dir)?;
    let staged = Staged::load(&repo)?;
    let mut lines = Vec::new();
    if let Some((draft, new)) = &staged.root {
        lines.extend(describe_root_draft(
            &staged.current,
            new,
            &draft.metadata,
            &staged.names,
        ));
    }
    if let Some(draft) = &staged.targets {
        let signed = draft.metadata.signed();
        lines.push(format!(
            "signs targets v{}, expires {}",
            draft.version,
            signed
                .get("expires")
                .and_then(Value::as_str)
                .unwrap_or("(no expiry)")
        ));
        lines.push(format!(
            "   targets v{} payload: SHA-256 {}",
            draft.version,
            readout::groups(&draft.metadata.payload_sha256())
        ));
        let published = match repo.latest_version(Role::Targets)? {
            Some(version) => target_hashes(
                repo.read_metadata(&format!("{version}.targets.json"))?
                    .signed(),
            ),
            None => BTreeMap::new(),
        };
        let drafted = target_hashes(signed);
        for (name, sha256) in &drafted {
            let change = match published.get(name) {
                None => "added",
                Some(old) if old != sha256 => "changed",
                Some(_) => continue,
            };
            lines.push(format!(
                "   target {name} {change}: SHA-256 {}",
                readout::groups(sha256)
            ));
        }
        for name in published.keys().filter(|n| !drafted.contains_key(*n)) {
            lines.push(format!("   target {name} removed"));
        }
    }
    Ok(lines)
}

/// Lines describing a root draft against the current root: version, expiry, payload digest,
/// keys added and removed with their fingerprints, thresholds. What a custodian reads before
/// signing, at the console or on their own machine.
pub(crate) fn describe_root_draft(
    current: &TrustedRoot,
    new: &TrustedRoot,
    draft: &SignedMetadata,
    names: &BTreeMap<String, String>,
) -> Vec<String> {
    let label = |id: &String| KeyLabel {
        key_id: id.clone(),
        name: names.get(id).cloned(),
    };
    let fingerprint = |root: &TrustedRoot, id: &str| {
        root.keys
            .get(id)
            .and_then(Option::as_ref)
            .map(|key| key.public().fingerprint_read_aloud())
            .unwrap_or_else(|| "(not a key rootcellar reads)".into())
    };
    let new_roles: BTreeMap<Role, (Vec<String>, u64)> = Role::ALL
        .iter()
        .map(|&role| {
            let keys = new.role(role);
            (role, (keys.keyids.clone(), keys.threshold))
        })
        .collect();
    let changes = role_changes(current, &new_roles, label);
    let mut lines = vec![
        format!(
            "signs root v{} ({} of v{}), expires {}",
            new.version,
            if changes.is_empty() {
                "a re-sign"
            } else {
                "a rotation"
            },
            current.version,
            format_time(new.expires)
        ),
        format!(
            "   root v{} payload: SHA-256 {}",
            new.version,
            readout::groups(&draft.payload_sha256())
        ),
    ];
    if changes.is_empty() {
        lines.push("   keys and thresholds unchanged".into());
    }
    for change in &changes {
        lines.push(if change.old_threshold == change.new_threshold {
            format!(
                "   {}: threshold {} (unchanged)",
                change.role, change.new_threshold
            )
        } else {
            format!(
                "   {}: threshold {} → {}",
                change.role, change.old_threshold, change.new_threshold
            )
        });
        for key in &change.added {
            lines.push(format!("   + {key}: {}", fingerprint(new, &key.key_id)));
        }
        for key in &change.removed {
            lines.push(format!("   - {key}: {}", fingerprint(current, &key.key_id)));
        }
    }
    lines
}

/// The bytes of target `name` as published and as the staged targets draft would publish it,
/// when the draft adds or changes it (`None` when no targets draft changes it). For a caller
/// that shows what the file's change means (a Sigstore trusted root's authorities and logs).
pub fn staged_target_change(dir: &Path, name: &str) -> Result<Option<StagedChange>, TufError> {
    let repo = Repo::open(dir)?;
    let Some(draft) = repo.draft(Role::Targets)? else {
        return Ok(None);
    };
    let new_sha = match target_hashes(draft.metadata.signed()).remove(name) {
        Some(sha) => sha,
        None => return Ok(None),
    };
    let old_sha = match repo.latest_version(Role::Targets)? {
        Some(version) => target_hashes(
            repo.read_metadata(&format!("{version}.targets.json"))?
                .signed(),
        )
        .remove(name),
        None => None,
    };
    if old_sha.as_deref() == Some(new_sha.as_str()) {
        return Ok(None);
    }
    // A target file is kept as `<sha256>.<name>`: published under targets/, staged under
    // staged/targets/ until publish.
    let read = |sha: &str| -> Result<Vec<u8>, TufError> {
        let stored = format!("{sha}.{name}");
        let published = repo.dir.join(super::TARGETS_DIR).join(&stored);
        let staged = repo.staged_targets_dir().join(&stored);
        let path = if published.is_file() {
            published
        } else {
            staged
        };
        std::fs::read(&path).map_err(|source| super::layout::io_error(&path, source))
    };
    Ok(Some(StagedChange {
        published: old_sha.as_deref().map(read).transpose()?,
        staged: read(&new_sha)?,
    }))
}

/// A target file as published (none when new) and as a staged draft would publish it.
#[derive(Clone, Debug)]
pub struct StagedChange {
    /// The published bytes, if the target was published before.
    pub published: Option<Vec<u8>>,
    /// The bytes the draft publishes.
    pub staged: Vec<u8>,
}

/// Target name → SHA-256, from a targets payload.
fn target_hashes(signed: &Value) -> BTreeMap<String, String> {
    signed
        .get("targets")
        .and_then(Value::as_object)
        .map(|targets| {
            targets
                .iter()
                .map(|(name, target)| {
                    let sha256 = target
                        .pointer("/hashes/sha256")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    (name.clone(), sha256)
                })
                .collect()
        })
        .unwrap_or_default()
}
