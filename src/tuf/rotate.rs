//! Drafting the next root from a policy: custodian keys added, removed or replaced, thresholds
//! changed, expiry extended, or, with the same policy, a re-sign (same keys, new version, new
//! expiry). The draft is staged in `staged/N.root.json`, unsigned; custodians then sign it one
//! at a time with `tuf sign`, and `tuf publish` moves it into `metadata/` once a threshold of the
//! current root's keys and a threshold of its own have signed.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{json, Value};

use super::keyring;
use super::layout::Repo;
use super::metadata::{self, format_time, SignedMetadata};
use super::record::{BeforeWrite, PendingFile};
use super::status::KeyLabel;
use super::{Policy, Role, TufError};
use crate::keys::Hsm;

/// What changed in one role between the current root and the draft.
#[derive(Clone, Debug)]
pub struct RoleChange {
    /// The role.
    pub role: Role,
    /// Keys the draft adds.
    pub added: Vec<KeyLabel>,
    /// Keys the draft removes.
    pub removed: Vec<KeyLabel>,
    /// The current threshold.
    pub old_threshold: u64,
    /// The draft's threshold.
    pub new_threshold: u64,
}

/// What [`draft_root`] staged.
#[derive(Clone, Debug)]
pub struct RotateReport {
    /// The draft file.
    pub file: PathBuf,
    /// The current root's version.
    pub current_version: u64,
    /// The draft's version.
    pub version: u64,
    /// The draft's expiry.
    pub expires: Timestamp,
    /// SHA-256 of the payload every custodian signs.
    pub payload_sha256: String,
    /// Per-role changes (roles without change are left out).
    pub changes: Vec<RoleChange>,
    /// The current root's root keys and threshold: a threshold of them must sign.
    pub old_signers: (u64, Vec<KeyLabel>),
    /// The draft's own root keys and threshold: a threshold of them must sign too.
    pub new_signers: (u64, Vec<KeyLabel>),
}

impl RotateReport {
    /// Whether the key sets and thresholds are unchanged (a re-sign: new version and expiry).
    pub fn is_resign(&self) -> bool {
        self.changes.is_empty()
    }

    /// The machine-readable form printed by `tuf rotate --json`.
    pub fn to_json(&self) -> Value {
        let label = |k: &KeyLabel| json!({"keyid": k.key_id, "name": k.name});
        let changes: Vec<Value> = self
            .changes
            .iter()
            .map(|c| {
                json!({
                    "role": c.role.name(),
                    "added": c.added.iter().map(label).collect::<Vec<_>>(),
                    "removed": c.removed.iter().map(label).collect::<Vec<_>>(),
                    "old_threshold": c.old_threshold,
                    "new_threshold": c.new_threshold,
                })
            })
            .collect();
        let signers = |(threshold, keys): &(u64, Vec<KeyLabel>)| json!({"threshold": threshold, "keys": keys.iter().map(label).collect::<Vec<_>>()});
        json!({
            "file": self.file,
            "current_version": self.current_version,
            "version": self.version,
            "expires": format_time(self.expires),
            "payload_sha256": self.payload_sha256,
            "kind": if self.is_resign() { "re-sign" } else { "rotation" },
            "changes": changes,
            "old_signers": signers(&self.old_signers),
            "new_signers": signers(&self.new_signers),
        })
    }

    /// The human-readable form printed by `tuf rotate`.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "staged root v{} ({} of v{}) in {}\n  expires {}\n  payload sha256 {}\n",
            self.version,
            if self.is_resign() {
                "a re-sign"
            } else {
                "a rotation"
            },
            self.current_version,
            self.file.display(),
            format_time(self.expires),
            self.payload_sha256
        );
        for c in &self.changes {
            text.push_str(&format!(
                "  {}: threshold {} → {}\n",
                c.role, c.old_threshold, c.new_threshold
            ));
            for k in &c.added {
                text.push_str(&format!("    + {k}\n"));
            }
            for k in &c.removed {
                text.push_str(&format!("    - {k}\n"));
            }
        }
        for (what, (threshold, keys)) in [
            (format!("root v{}", self.current_version), &self.old_signers),
            (
                format!("root v{} (itself)", self.version),
                &self.new_signers,
            ),
        ] {
            text.push_str(&format!("  needs {threshold} signatures of {what}:\n"));
            for k in keys {
                text.push_str(&format!("    {k}\n"));
            }
        }
        text.push_str(
            "next: each custodian runs `rootcellar tuf sign --repo DIR --key URI`; for one away \
             from the appliance, `rootcellar tuf request-signature --repo DIR --custodian NAME …`\n",
        );
        text
    }
}

/// Drafts root version N+1 of the repository in `dir` from `policy`, expiring the policy's
/// `expires_days` after `now`. Refuses when a root draft is staged already. Every key the policy
/// names is resolved (tokens are opened for their public keys; PEM files are read).
pub fn draft_root(
    dir: &Path,
    policy: &Policy,
    hsm: &Hsm,
    now: crate::time::ConfirmedTime,
    record: &mut dyn BeforeWrite,
) -> Result<RotateReport, TufError> {
    let now = now.timestamp();
    policy.validate()?;
    let repo = Repo::open(dir)?;
    let _lock = repo.lock()?;
    if let Some(draft) = repo.draft(Role::Root)? {
        return Err(TufError::DraftExists {
            role: Role::Root,
            version: draft.version,
            file: draft.path,
        });
    }
    let current = repo.current_root()?;
    let keys = keyring::resolve_all(policy, hsm)?;
    let names = keyring::names_by_id(&keys);
    let label = |id: &String| KeyLabel {
        key_id: id.clone(),
        name: names.get(id).cloned(),
    };

    let days = policy.role(Role::Root).expires_days;
    let expires = metadata::expiry_after(now, days).ok_or(TufError::ExpiryOutOfRange {
        role: Role::Root.name(),
        days,
        now,
    })?;
    let version = current.version + 1;
    let (key_table, role_table) = keyring::root_tables(policy, &keys);
    let payload = metadata::root_payload(
        version,
        expires,
        &key_table,
        &role_table,
        policy.is_rehearsal(),
    );
    let draft = SignedMetadata::new(payload).map_err(|reason| TufError::StagedInvalid {
        file: repo.staged_dir(),
        reason,
    })?;

    let changes = super::diff::role_changes(&current, &role_table, label);

    super::record::record(
        record,
        &repo.dir,
        vec![PendingFile::of(
            repo.draft_path(Role::Root, version),
            &draft.to_bytes(),
        )],
    )?;
    let staged = repo.create_draft(Role::Root, &draft)?;
    repo.record_key_names(&names)?;
    let old_root = current.role(Role::Root);
    let (new_root_ids, new_root_threshold) = &role_table[&Role::Root];
    Ok(RotateReport {
        file: staged.path,
        current_version: current.version,
        version,
        expires,
        payload_sha256: draft.payload_sha256(),
        changes,
        old_signers: (
            old_root.threshold,
            old_root.keyids.iter().map(label).collect(),
        ),
        new_signers: (
            *new_root_threshold,
            new_root_ids.iter().map(label).collect(),
        ),
    })
}
