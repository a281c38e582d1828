//! Where a repository stands: each published role's version and expiry (and whether it is
//! inside its signing period), and each staged draft's signatures against the thresholds it
//! must meet: for a root draft, a threshold of the current root's root keys and a threshold of
//! its own; for a targets draft, the targets threshold of the root it will be published under.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{json, Value};

use super::layout::{Draft, Repo};
use super::metadata::format_time;
use super::verify::{self, KeyCache, Tally, TrustedRoot};
use super::{Policy, Role, TufError};

/// A key id with the policy name it was drafted under, when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLabel {
    /// The TUF key id.
    pub key_id: String,
    /// The policy's name for it.
    pub name: Option<String>,
}

impl std::fmt::Display for KeyLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} ({})", self.key_id),
            None => f.write_str(&self.key_id),
        }
    }
}

/// One threshold a draft must meet.
#[derive(Clone, Debug)]
pub struct ThresholdStatus {
    /// Whose keys count: `root v1` (the current root), `root v2 (itself)` (a new root's own).
    pub signers: String,
    /// How many valid signatures are needed.
    pub threshold: u64,
    /// Keys that have signed (valid signatures).
    pub signed: Vec<KeyLabel>,
    /// Keys that may still sign.
    pub missing: Vec<KeyLabel>,
}

impl ThresholdStatus {
    /// Whether the threshold is met.
    pub fn met(&self) -> bool {
        self.signed.len() as u64 >= self.threshold
    }

    /// How many more signatures are needed.
    pub fn still_needed(&self) -> u64 {
        self.threshold.saturating_sub(self.signed.len() as u64)
    }
}

/// A staged draft and its signatures.
#[derive(Clone, Debug)]
pub struct DraftStatus {
    /// The role.
    pub role: Role,
    /// The draft's version.
    pub version: u64,
    /// Its expiry.
    pub expires: Option<Timestamp>,
    /// The draft file.
    pub file: PathBuf,
    /// SHA-256 of the signed payload (canonical JSON): what every signer signs.
    pub payload_sha256: String,
    /// Each threshold it must meet.
    pub thresholds: Vec<ThresholdStatus>,
    /// Signatures by keys not entitled to sign it, or that do not verify.
    pub ignored_signatures: Vec<KeyLabel>,
    /// Why it cannot be published regardless of signatures.
    pub problems: Vec<String>,
}

impl DraftStatus {
    /// Whether it can be published.
    pub fn ready(&self) -> bool {
        self.problems.is_empty() && self.thresholds.iter().all(ThresholdStatus::met)
    }

    /// What is still missing, as one sentence.
    pub fn missing_text(&self) -> String {
        let mut parts: Vec<String> = self.problems.clone();
        for t in self.thresholds.iter().filter(|t| !t.met()) {
            let could: Vec<String> = t.missing.iter().map(ToString::to_string).collect();
            parts.push(format!(
                "{} of the {} signatures of {} are there, {} more needed from: {}",
                t.signed.len(),
                t.threshold,
                t.signers,
                t.still_needed(),
                could.join(", ")
            ));
        }
        parts.join("; ")
    }
}

/// A published role.
#[derive(Clone, Debug)]
pub struct PublishedStatus {
    /// The role.
    pub role: Role,
    /// Its latest published version, if any.
    pub version: Option<u64>,
    /// Its expiry.
    pub expires: Option<Timestamp>,
    /// The signing period in days.
    pub signing_days: u32,
    /// `expired`, `re-sign due` (inside the signing period), `ok`, or `absent`.
    pub state: &'static str,
}

/// The whole status.
#[derive(Clone, Debug)]
pub struct StatusReport {
    /// The repository.
    pub repo: PathBuf,
    /// The time the status is for.
    pub at: Timestamp,
    /// Each published role.
    pub published: Vec<PublishedStatus>,
    /// Each staged draft.
    pub drafts: Vec<DraftStatus>,
}

impl StatusReport {
    /// How long each published role stays valid from the status's time.
    pub fn validity(&self) -> Vec<super::RoleValidity> {
        self.published
            .iter()
            .filter_map(|p| {
                Some(super::RoleValidity {
                    role: p.role,
                    version: p.version?,
                    expires: p.expires?,
                    from: self.at,
                    signing_days: p.signing_days,
                })
            })
            .collect()
    }

    /// The machine-readable form printed by `tuf status --json`.
    pub fn to_json(&self) -> Value {
        let label = |k: &KeyLabel| json!({"keyid": k.key_id, "name": k.name});
        let published: Vec<Value> = self
            .published
            .iter()
            .map(|p| {
                json!({
                    "role": p.role.name(),
                    "version": p.version,
                    "expires": p.expires.map(format_time),
                    "signing_days": p.signing_days,
                    "state": p.state,
                })
            })
            .collect();
        let drafts: Vec<Value> = self.drafts.iter().map(|d| draft_json(d, &label)).collect();
        json!({
            "repo": self.repo,
            "at": format_time(self.at),
            "published": published,
            "staged": drafts,
        })
    }

    /// The human-readable form printed by `tuf status`.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "repository {} at {}\npublished:\n",
            self.repo.display(),
            format_time(self.at)
        );
        for p in &self.published {
            match (p.version, p.expires) {
                (Some(v), Some(e)) => text.push_str(&format!(
                    "  {:<9} v{:<4} expires {}  {} (signing period {} days)\n",
                    p.role.name(),
                    v,
                    format_time(e),
                    p.state,
                    p.signing_days
                )),
                _ => text.push_str(&format!("  {:<9} none published\n", p.role.name())),
            }
        }
        if self.drafts.is_empty() {
            text.push_str("staged: nothing\n");
        }
        for d in &self.drafts {
            text.push_str(&draft_text(d));
        }
        text
    }
}

pub(crate) fn draft_json(d: &DraftStatus, label: &dyn Fn(&KeyLabel) -> Value) -> Value {
    let thresholds: Vec<Value> = d
        .thresholds
        .iter()
        .map(|t| {
            json!({
                "signers": t.signers,
                "threshold": t.threshold,
                "signed": t.signed.iter().map(label).collect::<Vec<_>>(),
                "missing": t.missing.iter().map(label).collect::<Vec<_>>(),
                "still_needed": t.still_needed(),
                "met": t.met(),
            })
        })
        .collect();
    json!({
        "role": d.role.name(),
        "version": d.version,
        "expires": d.expires.map(format_time),
        "file": d.file,
        "payload_sha256": d.payload_sha256,
        "thresholds": thresholds,
        "ignored_signatures": d.ignored_signatures.iter().map(label).collect::<Vec<_>>(),
        "problems": d.problems,
        "ready": d.ready(),
    })
}

pub(crate) fn draft_text(d: &DraftStatus) -> String {
    let mut text = format!(
        "staged {} v{}  expires {}  payload sha256 {}\n  file {}\n",
        d.role,
        d.version,
        d.expires.map(format_time).unwrap_or_else(|| "?".into()),
        d.payload_sha256,
        d.file.display()
    );
    for t in &d.thresholds {
        text.push_str(&format!(
            "  threshold of {}: {} of {} {}\n",
            t.signers,
            t.signed.len(),
            t.threshold,
            if t.met() { "met" } else { "NOT met" }
        ));
        for k in &t.signed {
            text.push_str(&format!("    signed   {k}\n"));
        }
        for k in &t.missing {
            text.push_str(&format!("    unsigned {k}\n"));
        }
    }
    for k in &d.ignored_signatures {
        text.push_str(&format!("  ignored signature {k}\n"));
    }
    for p in &d.problems {
        text.push_str(&format!("  problem: {p}\n"));
    }
    text.push_str(if d.ready() {
        "  ready to publish\n"
    } else {
        "  not ready to publish\n"
    });
    text
}

/// The staged drafts of a repository with the roots they are judged against.
pub(crate) struct Staged {
    pub current: TrustedRoot,
    pub root: Option<(Draft, TrustedRoot)>,
    pub targets: Option<Draft>,
    pub names: BTreeMap<String, String>,
}

impl Staged {
    /// Reads the current root and the drafts.
    pub fn load(repo: &Repo) -> Result<Staged, TufError> {
        let current = repo.current_root()?;
        let root = match repo.draft(Role::Root)? {
            Some(draft) => {
                let file = draft.path.display().to_string();
                let parsed = verify::parse_root(
                    &file,
                    &draft.metadata.to_bytes(),
                    &mut KeyCache::default(),
                )?;
                Some((draft, parsed))
            }
            None => None,
        };
        Ok(Staged {
            current,
            root,
            targets: repo.draft(Role::Targets)?,
            names: repo.key_names(),
        })
    }

    /// The root the drafts will be published under.
    pub fn final_root(&self) -> &TrustedRoot {
        self.root.as_ref().map_or(&self.current, |(_, r)| r)
    }

    /// The drafts, root first.
    pub fn drafts(&self) -> Vec<&Draft> {
        self.root
            .iter()
            .map(|(d, _)| d)
            .chain(self.targets.iter())
            .collect()
    }

    /// Who may sign `draft`: key ids.
    pub fn entitled(&self, draft: &Draft) -> Vec<String> {
        let mut ids: Vec<String> = match draft.role {
            Role::Root => {
                let mut ids = self.current.role(Role::Root).keyids.clone();
                if let Some((_, new)) = &self.root {
                    ids.extend(new.role(Role::Root).keyids.iter().cloned());
                }
                ids
            }
            role => self.final_root().role(role).keyids.clone(),
        };
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        ids
    }

    fn label(&self, key_id: &str) -> KeyLabel {
        KeyLabel {
            key_id: key_id.to_string(),
            name: self.names.get(key_id).cloned(),
        }
    }

    fn threshold(&self, signers: String, t: &Tally) -> ThresholdStatus {
        ThresholdStatus {
            signers,
            threshold: t.threshold,
            signed: t.valid.iter().map(|k| self.label(k)).collect(),
            missing: t.unsigned.iter().map(|k| self.label(k)).collect(),
        }
    }

    /// The status of one draft at `now`.
    pub fn draft_status(&self, draft: &Draft, repo: &Repo, now: Timestamp) -> DraftStatus {
        let md = &draft.metadata;
        let mut thresholds = Vec::new();
        let mut problems = Vec::new();
        match draft.role {
            Role::Root => {
                let (_, new) = self.root.as_ref().expect("a root draft is parsed");
                let old = verify::tally(&self.current, Role::Root, md, false);
                thresholds.push(self.threshold(format!("root v{}", self.current.version), &old));
                let own = verify::tally(new, Role::Root, md, false);
                thresholds.push(self.threshold(format!("root v{} (itself)", new.version), &own));
                if draft.version != self.current.version + 1 {
                    problems.push(format!(
                        "it is v{}, but the published root is v{}: only v{} can follow",
                        draft.version,
                        self.current.version,
                        self.current.version + 1
                    ));
                }
            }
            role => {
                let root = self.final_root();
                let t = verify::tally(root, role, md, false);
                thresholds.push(self.threshold(format!("root v{}", root.version), &t));
                let latest = repo.latest_version(role).ok().flatten().unwrap_or(0);
                if draft.version != latest + 1 {
                    problems.push(format!(
                        "it is v{}, but v{latest} is published: only v{} can follow",
                        draft.version,
                        latest + 1
                    ));
                }
            }
        }
        match md.expires() {
            Some(expires) if expires <= now => problems.push(format!(
                "it expired at {} (draft it again)",
                format_time(expires)
            )),
            Some(_) => {}
            None => problems.push("its expiry is not a TUF time".into()),
        }
        let entitled = self.entitled(draft);
        let counted: Vec<&String> = thresholds
            .iter()
            .flat_map(|t: &ThresholdStatus| t.signed.iter().map(|k| &k.key_id))
            .collect();
        let ignored = md
            .signatures()
            .iter()
            .filter(|s| !entitled.contains(&s.keyid) || !counted.contains(&&s.keyid))
            .map(|s| self.label(&s.keyid))
            .collect();
        DraftStatus {
            role: draft.role,
            version: draft.version,
            expires: md.expires(),
            file: draft.path.clone(),
            payload_sha256: md.payload_sha256(),
            thresholds,
            ignored_signatures: ignored,
            problems,
        }
    }
}

/// The status of the repository in `dir` at `now`. With a policy, its signing periods are used;
/// otherwise each role's default.
pub fn repository_status(
    dir: &Path,
    policy: Option<&Policy>,
    now: Timestamp,
) -> Result<StatusReport, TufError> {
    let repo = Repo::open(dir)?;
    let staged = Staged::load(&repo)?;
    let mut published = Vec::new();
    for role in Role::ALL {
        let signing_days = policy
            .map(|p| p.role(role).effective_signing_days(role))
            .unwrap_or_else(|| role.default_signing_days());
        let (version, expires) = match role {
            Role::Root => (Some(staged.current.version), Some(staged.current.expires)),
            Role::Timestamp => {
                if repo.metadata_path("timestamp.json").is_file() {
                    let md = repo.read_metadata("timestamp.json")?;
                    (md.version(), md.expires())
                } else {
                    (None, None)
                }
            }
            role => match repo.latest_version(role)? {
                Some(v) => {
                    let md = repo.read_metadata(&format!("{v}.{}.json", role.name()))?;
                    (Some(v), md.expires())
                }
                None => (None, None),
            },
        };
        published.push(PublishedStatus {
            role,
            version,
            expires,
            signing_days,
            state: period_state(expires, signing_days, now),
        });
    }
    let drafts = staged
        .drafts()
        .into_iter()
        .map(|d| staged.draft_status(d, &repo, now))
        .collect();
    Ok(StatusReport {
        repo: dir.to_path_buf(),
        at: now,
        published,
        drafts,
    })
}

/// `expired`, `re-sign due` when fewer than `signing_days` remain, else `ok`.
pub(crate) fn period_state(
    expires: Option<Timestamp>,
    signing_days: u32,
    now: Timestamp,
) -> &'static str {
    let Some(expires) = expires else {
        return "absent";
    };
    if expires <= now {
        return "expired";
    }
    let due = expires
        .checked_sub(jiff::SignedDuration::from_hours(
            i64::from(signing_days) * 24,
        ))
        .unwrap_or(expires);
    if due <= now {
        "re-sign due"
    } else {
        "ok"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_period_states() {
        let now: Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        let days = |d: i64| {
            now.checked_add(jiff::SignedDuration::from_hours(d * 24))
                .unwrap()
        };
        assert_eq!(period_state(Some(days(-1)), 42, now), "expired");
        assert_eq!(period_state(Some(now), 42, now), "expired");
        assert_eq!(period_state(Some(days(41)), 42, now), "re-sign due");
        assert_eq!(period_state(Some(days(42)), 42, now), "re-sign due");
        assert_eq!(period_state(Some(days(43)), 42, now), "ok");
        assert_eq!(period_state(None, 42, now), "absent");
    }
}
