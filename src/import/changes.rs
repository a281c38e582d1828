//! What an import changes compared with the trust held before it: the TUF root version, the
//! keys and thresholds of each role, the targets, and the certificate authorities, logs and
//! timestamp authorities of the Sigstore trusted root.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::trustroot::TrustedRoot;
pub use crate::trustroot::{Change, TrustChange};
use crate::tuf::{Role, SignedMetadata, VerifiedRepository};

/// A version before and after the import (`from` is `None` when nothing was imported before).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct VersionStep {
    /// The version held before.
    pub from: Option<u64>,
    /// The version imported.
    pub to: u64,
}

impl VersionStep {
    fn text(&self) -> String {
        match self.from {
            Some(from) if from == self.to => format!("v{} (unchanged)", self.to),
            Some(from) => format!("v{from} → v{}", self.to),
            None => format!("v{}", self.to),
        }
    }
}

/// A key added to or removed from a TUF role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyChange {
    /// The role.
    pub role: String,
    /// The TUF key id.
    pub keyid: String,
    /// Added or removed.
    pub change: Change,
}

/// A TUF role's threshold that changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThresholdChange {
    /// The role.
    pub role: String,
    /// The threshold before.
    pub from: u64,
    /// The threshold now.
    pub to: u64,
}

/// A target added, changed or removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetChange {
    /// The target name.
    pub name: String,
    /// Added, changed or removed.
    pub change: Change,
    /// Its SHA-256 now (before, when removed).
    pub sha256: String,
}

/// Everything an import changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangeReport {
    /// Whether this is the first import (trust was a pinned root, no previous import).
    pub first_import: bool,
    /// The TUF root version trusted before and after.
    pub root: VersionStep,
    /// The timestamp version.
    pub timestamp: VersionStep,
    /// The snapshot version.
    pub snapshot: VersionStep,
    /// The targets version.
    pub targets: VersionStep,
    /// Keys added to or removed from each role.
    pub keys: Vec<KeyChange>,
    /// Thresholds changed.
    pub thresholds: Vec<ThresholdChange>,
    /// Targets added, changed or removed.
    pub target_files: Vec<TargetChange>,
    /// Certificate authorities, logs and timestamp authorities changed.
    pub trust: Vec<TrustChange>,
}

/// What was held before the import.
pub(super) struct Before<'a> {
    /// The trusted root metadata (pinned, or the last imported).
    pub root: &'a [u8],
    /// The previous import, if any.
    pub previous: Option<PreviousImport<'a>>,
}

/// What the previous import recorded.
pub(super) struct PreviousImport<'a> {
    pub timestamp: u64,
    pub snapshot: u64,
    pub targets_version: u64,
    pub targets: &'a BTreeMap<String, String>,
    pub trusted_root: &'a TrustedRoot,
}

/// Compares what was held with what was verified.
pub(super) fn compare(
    before: &Before<'_>,
    verified: &VerifiedRepository,
    trusted_root: &TrustedRoot,
) -> ChangeReport {
    let old_roles = role_keys(before.root);
    let new_roles = role_keys(&verified.root_bytes);
    let mut keys = Vec::new();
    let mut thresholds = Vec::new();
    for role in Role::ALL {
        let name = role.name();
        let (old_ids, old_threshold) = old_roles.get(name).cloned().unwrap_or_default();
        let (new_ids, new_threshold) = new_roles.get(name).cloned().unwrap_or_default();
        for id in new_ids.iter().filter(|id| !old_ids.contains(id)) {
            keys.push(KeyChange {
                role: name.into(),
                keyid: id.clone(),
                change: Change::Added,
            });
        }
        for id in old_ids.iter().filter(|id| !new_ids.contains(id)) {
            keys.push(KeyChange {
                role: name.into(),
                keyid: id.clone(),
                change: Change::Removed,
            });
        }
        if old_threshold != new_threshold {
            thresholds.push(ThresholdChange {
                role: name.into(),
                from: old_threshold,
                to: new_threshold,
            });
        }
    }

    let previous = before.previous.as_ref();
    let new_targets: BTreeMap<String, String> = verified
        .targets
        .iter()
        .map(|t| {
            let sha = t.hashes.get("sha256").cloned().unwrap_or_default();
            (t.name.clone(), sha)
        })
        .collect();
    let empty = BTreeMap::new();
    let old_targets = previous.map_or(&empty, |p| p.targets);
    let mut target_files = Vec::new();
    for (name, sha) in &new_targets {
        match old_targets.get(name) {
            None => target_files.push(TargetChange {
                name: name.clone(),
                change: Change::Added,
                sha256: sha.clone(),
            }),
            Some(old) if old != sha => target_files.push(TargetChange {
                name: name.clone(),
                change: Change::Changed,
                sha256: sha.clone(),
            }),
            Some(_) => {}
        }
    }
    for (name, sha) in old_targets {
        if !new_targets.contains_key(name) {
            target_files.push(TargetChange {
                name: name.clone(),
                change: Change::Removed,
                sha256: sha.clone(),
            });
        }
    }

    let trust = crate::trustroot::compare(previous.map(|p| p.trusted_root), trusted_root);

    let step = |from: Option<u64>, to: u64| VersionStep { from, to };
    ChangeReport {
        first_import: previous.is_none(),
        root: step(Some(verified.trusted_root_version), verified.root_version()),
        timestamp: step(
            previous.map(|p| p.timestamp),
            verified.role(Role::Timestamp).version,
        ),
        snapshot: step(
            previous.map(|p| p.snapshot),
            verified.role(Role::Snapshot).version,
        ),
        targets: step(
            previous.map(|p| p.targets_version),
            verified.role(Role::Targets).version,
        ),
        keys,
        thresholds,
        target_files,
        trust,
    }
}

impl ChangeReport {
    /// Whether anything at all changed.
    pub fn is_empty(&self) -> bool {
        self.root.from == Some(self.root.to)
            && self.timestamp.from == Some(self.timestamp.to)
            && self.snapshot.from == Some(self.snapshot.to)
            && self.targets.from == Some(self.targets.to)
            && self.keys.is_empty()
            && self.thresholds.is_empty()
            && self.target_files.is_empty()
            && self.trust.is_empty()
    }

    /// The report as text, one line per change (the body of `CHANGES.md`).
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        if self.first_import {
            text.push_str(&format!(
                "First import: trust starts at the pinned TUF root v{}.\n\n",
                self.root.from.unwrap_or(self.root.to)
            ));
        }
        text.push_str(&format!("- TUF root: {}\n", self.root.text()));
        text.push_str(&format!(
            "- timestamp {}, snapshot {}, targets {}\n",
            self.timestamp.text(),
            self.snapshot.text(),
            self.targets.text()
        ));
        for key in &self.keys {
            text.push_str(&format!(
                "- {} key {}: {}\n",
                key.role,
                key.change.name(),
                key.keyid
            ));
        }
        for t in &self.thresholds {
            text.push_str(&format!("- {} threshold: {} → {}\n", t.role, t.from, t.to));
        }
        for t in &self.target_files {
            text.push_str(&format!(
                "- target {}: {} (sha256 {})\n",
                t.name,
                t.change.name(),
                t.sha256
            ));
        }
        for t in &self.trust {
            text.push_str(&format!("- {}\n", t.text()));
        }
        if self.is_empty() {
            text.push_str("- nothing changed since the previous import\n");
        }
        text
    }
}

/// Each role's key ids and threshold, from root metadata (already verified).
fn role_keys(root: &[u8]) -> BTreeMap<String, (Vec<String>, u64)> {
    let Ok(metadata) = SignedMetadata::from_slice(root) else {
        return BTreeMap::new();
    };
    let Some(roles) = metadata.signed().get("roles").and_then(Value::as_object) else {
        return BTreeMap::new();
    };
    roles
        .iter()
        .map(|(name, role)| {
            let ids = role
                .get("keyids")
                .and_then(Value::as_array)
                .map(|ids| {
                    ids.iter()
                        .filter_map(|id| id.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let threshold = role.get("threshold").and_then(Value::as_u64).unwrap_or(0);
            (name.clone(), (ids, threshold))
        })
        .collect()
}
