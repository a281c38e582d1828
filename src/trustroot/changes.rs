//! What changed between two Sigstore trusted roots: certificate authorities, timestamp
//! authorities and logs added, retired (validity closed), changed or removed. `import` reports
//! it to the cluster administrator; a ceremony shows it before the new root is signed.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use super::{CertificateAuthority, TransparencyLog, TrustedRoot};
use crate::tuf::sha256_hex;

/// How an item changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// New in this import.
    Added,
    /// Still listed, but its validity is now closed (signatures made before the end still
    /// verify).
    Retired,
    /// Still listed, with other details (validity, chain, URL).
    Changed,
    /// No longer listed.
    Removed,
}

impl Change {
    /// The word for it.
    pub fn name(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Retired => "retired",
            Change::Changed => "changed",
            Change::Removed => "removed",
        }
    }
}

/// An authority or log of the Sigstore trusted root that changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrustChange {
    /// `certificate authority`, `timestamp authority`, `transparency log` or `CT log`.
    pub kind: &'static str,
    /// What identifies it: SHA-256 of the issuing certificate (authorities), or the log id.
    pub id: String,
    /// Subject and URI (authorities), or base URL (logs).
    pub description: String,
    /// Added, retired, changed or removed.
    pub change: Change,
    /// The end of its validity, when closed.
    pub valid_until: Option<String>,
}

impl TrustChange {
    /// One line for people: `certificate authority added: O=…, CN=… at URI (sha256 …)`.
    pub fn text(&self) -> String {
        let until = match &self.valid_until {
            Some(end) => format!(", valid until {end}"),
            None => String::new(),
        };
        format!(
            "{} {}: {} ({}{until})",
            self.kind,
            self.change.name(),
            self.description,
            self.id
        )
    }
}

/// What changed from `old` (none: everything in `new` is added) to `new`.
pub fn compare(old: Option<&TrustedRoot>, new: &TrustedRoot) -> Vec<TrustChange> {
    let old_trust = old.map(trust_items);
    let new_trust = trust_items(new);
    let old_trust = old_trust.unwrap_or_default();
    let mut trust = Vec::new();
    for (key, item) in &new_trust {
        let change = match old_trust.get(key) {
            None => Some(Change::Added),
            Some(old) if old.end.is_none() && item.end.is_some() => Some(Change::Retired),
            Some(old) if old.json != item.json => Some(Change::Changed),
            Some(_) => None,
        };
        if let Some(change) = change {
            trust.push(item.change(change));
        }
    }
    for (key, item) in &old_trust {
        if !new_trust.contains_key(key) {
            trust.push(item.change(Change::Removed));
        }
    }

    trust
}

/// One authority or log, keyed by kind and identity.
struct TrustItem {
    kind: &'static str,
    id: String,
    description: String,
    end: Option<String>,
    json: Value,
}

impl TrustItem {
    fn change(&self, change: Change) -> TrustChange {
        TrustChange {
            kind: self.kind,
            id: self.id.clone(),
            description: self.description.clone(),
            change,
            valid_until: self.end.clone(),
        }
    }
}

fn trust_items(root: &TrustedRoot) -> BTreeMap<(&'static str, String), TrustItem> {
    let mut items = BTreeMap::new();
    let mut authority = |kind: &'static str, ca: &CertificateAuthority| {
        // The issuing certificate identifies an authority; its subject and URI describe it.
        let id = ca
            .cert_chain
            .certificates
            .first()
            .and_then(|c| {
                base64::engine::general_purpose::STANDARD
                    .decode(&c.raw_bytes)
                    .ok()
            })
            .map(|der| sha256_hex(&der))
            .unwrap_or_default();
        let mut subject = Vec::new();
        if !ca.subject.organization.is_empty() {
            subject.push(format!("O={}", ca.subject.organization));
        }
        if !ca.subject.common_name.is_empty() {
            subject.push(format!("CN={}", ca.subject.common_name));
        }
        let item = TrustItem {
            kind,
            id: format!("sha256 {id}"),
            description: format!("{} at {}", subject.join(", "), ca.uri),
            end: ca.valid_for.end.clone(),
            json: serde_json::to_value(ca).unwrap_or_default(),
        };
        items.insert((kind, id), item);
    };
    for ca in &root.certificate_authorities {
        authority("certificate authority", ca);
    }
    for ca in &root.timestamp_authorities {
        authority("timestamp authority", ca);
    }
    let mut log = |kind: &'static str, log: &TransparencyLog| {
        let item = TrustItem {
            kind,
            id: format!("log id {}", log.log_id.key_id),
            description: log.base_url.clone(),
            end: log.public_key.valid_for.end.clone(),
            json: serde_json::to_value(log).unwrap_or_default(),
        };
        items.insert((kind, log.log_id.key_id.clone()), item);
    };
    for l in &root.tlogs {
        log("transparency log", l);
    }
    for l in &root.ctlogs {
        log("CT log", l);
    }
    items
}
