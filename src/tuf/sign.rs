//! A signing event: one key, in its own token, signs every staged draft it is entitled to sign.
//! Signatures accumulate in the draft, one per key id; a key that signed already is not asked
//! again; a key entitled to sign nothing is refused before its token signs anything.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::layout::{Draft, Repo};
use super::record::{BeforeWrite, PendingFile};
use super::status::{draft_json, draft_text, DraftStatus, KeyLabel, Staged};
use super::{HsmKeySource, Role, TufError};
use crate::keys::{Hsm, KeyLocation};

/// One draft the key signed (or had signed already).
#[derive(Clone, Debug)]
pub struct SignedDraft {
    /// The role.
    pub role: Role,
    /// The version.
    pub version: u64,
    /// The draft file.
    pub file: PathBuf,
    /// True when the key's valid signature was there already (nothing was signed).
    pub already_signed: bool,
    /// The draft's status after signing.
    pub status: DraftStatus,
}

/// What [`sign_staged`] did.
#[derive(Clone, Debug)]
pub struct SignReport {
    /// The key's TUF key id.
    pub key_id: String,
    /// The key's URI (without module or PIN source).
    pub uri: String,
    /// The drafts it signed.
    pub drafts: Vec<SignedDraft>,
}

impl SignReport {
    /// The machine-readable form printed by `tuf sign --json`.
    pub fn to_json(&self) -> Value {
        let label = |k: &KeyLabel| json!({"keyid": k.key_id, "name": k.name});
        let drafts: Vec<Value> = self
            .drafts
            .iter()
            .map(|d| {
                json!({
                    "role": d.role.name(),
                    "version": d.version,
                    "file": d.file,
                    "already_signed": d.already_signed,
                    "status": draft_json(&d.status, &label),
                })
            })
            .collect();
        json!({"keyid": self.key_id, "uri": self.uri, "signed": drafts})
    }

    /// The human-readable form printed by `tuf sign`.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for d in &self.drafts {
            text.push_str(&format!(
                "{} {} v{} with key {} ({})\n",
                if d.already_signed {
                    "already signed"
                } else {
                    "signed"
                },
                d.role,
                d.version,
                self.key_id,
                self.uri
            ));
            text.push_str(&draft_text(&d.status));
        }
        text
    }
}

/// Signs the drafts staged in `dir` that the key `key` (reached through `hsm`) may sign: a root draft if the key is
/// a root key of the current root or of the draft; a targets draft if it is a targets key of the
/// root the draft will be published under. Refuses drafts that have expired at `now`.
pub fn sign_staged(
    dir: &Path,
    hsm: &Hsm,
    key: &KeyLocation,
    now: crate::time::ConfirmedTime,
    record: &mut dyn BeforeWrite,
) -> Result<SignReport, TufError> {
    let now = now.timestamp();
    let repo = Repo::open(dir)?;
    let _lock = repo.lock()?;
    let staged = Staged::load(&repo)?;
    let drafts = staged.drafts();
    if drafts.is_empty() {
        return Err(TufError::NothingStaged {
            dir: repo.staged_dir(),
            hint: "stage a root with tuf rotate or targets with tuf targets add|remove|renew"
                .into(),
        });
    }
    // Opened only now that there is something to sign.
    let signer = hsm.signer(key).map_err(|source| TufError::KeyUnavailable {
        name: key.without_query(),
        uri: key.without_query(),
        source: Box::new(source),
    })?;
    let key = HsmKeySource::new(signer.key_uri(), signer)?;
    let key_id = key.key_id().to_string();

    let entitled: Vec<_> = drafts
        .iter()
        .filter(|d| staged.entitled(d).contains(&key_id))
        .collect();
    if entitled.is_empty() {
        let who: Vec<String> = drafts
            .iter()
            .map(|d| {
                format!(
                    "{} v{} may be signed by {}",
                    d.role,
                    d.version,
                    staged.entitled(d).join(", ")
                )
            })
            .collect();
        return Err(TufError::NotEntitled {
            key_id,
            uri: key.uri(),
            entitled: who.join("; "),
        });
    }
    for draft in &entitled {
        let status = staged.draft_status(draft, &repo, now);
        if let Some(expires) = status.expires.filter(|e| *e <= now) {
            return Err(TufError::Expired {
                role: draft.role,
                version: draft.version,
                expires,
                now,
                hint: "not signing an expired draft; stage it again".into(),
            });
        }
    }

    let mut report = SignReport {
        key_id: key_id.clone(),
        uri: key.uri(),
        drafts: Vec::new(),
    };
    let mut signed_drafts = Vec::new();
    for draft in entitled {
        let mut draft = (*draft).clone();
        let already = draft.metadata.verifies(&key_id, key.public_key());
        if !already {
            key.sign_metadata(&mut draft.metadata)?;
        }
        signed_drafts.push((draft, already));
    }
    // Every signature is made before the first draft is saved, and recorded before that.
    let changed: Vec<&Draft> = signed_drafts
        .iter()
        .filter(|(_, already)| !already)
        .map(|(draft, _)| draft)
        .collect();
    super::record::record(
        record,
        &repo.dir,
        changed
            .iter()
            .map(|d| PendingFile::of(&d.path, &d.metadata.to_bytes()))
            .collect(),
    )?;
    for draft in changed {
        repo.save_draft(draft)?;
    }
    // Status after signing, judged with the drafts as now saved.
    let staged = Staged::load(&repo)?;
    for (draft, already) in signed_drafts {
        let current = staged
            .drafts()
            .into_iter()
            .find(|d| d.role == draft.role)
            .cloned()
            .unwrap_or(draft.clone());
        report.drafts.push(SignedDraft {
            role: draft.role,
            version: draft.version,
            file: draft.path.clone(),
            already_signed: already,
            status: staged.draft_status(&current, &repo, now),
        });
    }
    Ok(report)
}
