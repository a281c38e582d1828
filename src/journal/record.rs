//! Journal records, their canonical encoding and their hash.
//!
//! A stored record is the canonical CBOR map
//!
//! ```text
//! { "seq": uint, "prev": bstr .size 32, "time": tstr (RFC 3339), "actor": tstr, "action": tstr,
//!   ? "ceremony": tstr, ? "detail": tstr,
//!   "inputs": [ * { "name": tstr, "sha256": bstr .size 32 } ], "outputs": [ * same ] }
//! ```
//!
//! and its hash is the SHA-256 of exactly those bytes. `prev` is the previous record's hash
//! (32 zero bytes for record 1), which chains every record to all before it.

use std::path::Path;

use ciborium::value::{CanonicalValue, Value};
use sha2::{Digest as _, Sha256};

use super::error::JournalError;
use crate::time::ConfirmedTime;

/// The `prev` of the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// The SHA-256 of one input or output of a journaled action.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Digest {
    /// What it is (a file name, a key URI, "csr", …).
    pub name: String,
    /// SHA-256 of its bytes, hex.
    #[serde(with = "hex_32")]
    pub sha256: [u8; 32],
}

impl Digest {
    /// The digest of `bytes`, named `name`.
    pub fn of(name: impl Into<String>, bytes: &[u8]) -> Self {
        Digest {
            name: name.into(),
            sha256: Sha256::digest(bytes).into(),
        }
    }

    /// The digest of the file at `path`, named by the path as given.
    pub fn of_file(path: &Path) -> Result<Self, JournalError> {
        let bytes = std::fs::read(path).map_err(|source| JournalError::Digest {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::of(path.display().to_string(), &bytes))
    }
}

/// What happened: the caller fills this in and [`super::Journal::append`] numbers and chains it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The operator-confirmed ceremony time (not the appliance's untrusted clock), in whole
    /// seconds. Made only from a [`ConfirmedTime`]; read back as stored.
    pub time: jiff::Timestamp,
    /// Who acted (operator name, custodian, "rootcellar").
    pub actor: String,
    /// What was done, dotted: `key.generate`, `x509.issue`, `tuf.sign`, `bundle.import`,
    /// `bundle.export`.
    pub action: String,
    /// The ceremony it belongs to, if any.
    pub ceremony: Option<String>,
    /// A short free-text detail (a key URI, a serial number).
    pub detail: Option<String>,
    /// Digests of what went in.
    pub inputs: Vec<Digest>,
    /// Digests of what came out.
    pub outputs: Vec<Digest>,
}

impl Record {
    /// A record of `action` by `actor` at the confirmed `time`.
    pub fn new(time: ConfirmedTime, actor: impl Into<String>, action: impl Into<String>) -> Self {
        Record {
            time: time.timestamp(),
            actor: actor.into(),
            action: action.into(),
            ceremony: None,
            detail: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// Sets the ceremony.
    pub fn ceremony(mut self, ceremony: impl Into<String>) -> Self {
        self.ceremony = Some(ceremony.into());
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds an input digest.
    pub fn input(mut self, digest: Digest) -> Self {
        self.inputs.push(digest);
        self
    }

    /// Adds an output digest.
    pub fn output(mut self, digest: Digest) -> Self {
        self.outputs.push(digest);
        self
    }

    /// Refuses empty actors and actions, and control characters anywhere (they would let a
    /// record rewrite the transcript it is printed in).
    pub(super) fn check(&self) -> Result<(), JournalError> {
        let field = |name: &str, value: &str, required: bool| {
            if required && value.is_empty() {
                return Err(JournalError::InvalidRecord(format!("{name} is empty")));
            }
            if value.chars().any(char::is_control) {
                return Err(JournalError::InvalidRecord(format!(
                    "{name} {value:?} contains control characters"
                )));
            }
            Ok(())
        };
        field("actor", &self.actor, true)?;
        field("action", &self.action, true)?;
        if let Some(c) = &self.ceremony {
            field("ceremony", c, true)?;
        }
        if let Some(d) = &self.detail {
            field("detail", d, false)?;
        }
        for d in self.inputs.iter().chain(&self.outputs) {
            field("digest name", &d.name, true)?;
        }
        Ok(())
    }
}

/// A record as stored: numbered, chained to its predecessor, hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Sequence number, from 1.
    pub seq: u64,
    /// The previous record's hash ([`GENESIS`] for record 1).
    pub prev: [u8; 32],
    /// This record's hash: SHA-256 of its canonical encoding.
    pub hash: [u8; 32],
    /// What happened.
    pub record: Record,
}

/// The end of a journal: the last record's number and hash (0 and [`GENESIS`] when empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    /// The last record's sequence number.
    pub seq: u64,
    /// The last record's hash.
    #[serde(rename = "sha256", with = "hex_32")]
    pub hash: [u8; 32],
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {} SHA256:{}", self.seq, hex::encode(self.hash))
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn digests(list: &[Digest]) -> Value {
    Value::Array(
        list.iter()
            .map(|d| {
                Value::Map(vec![
                    (text("name"), text(&d.name)),
                    (text("sha256"), Value::Bytes(d.sha256.to_vec())),
                ])
            })
            .collect(),
    )
}

/// The canonical encoding of record `seq` chained to `prev`.
pub(super) fn encode(seq: u64, prev: &[u8; 32], record: &Record) -> Vec<u8> {
    let mut fields = vec![
        (text("seq"), Value::from(seq)),
        (text("prev"), Value::Bytes(prev.to_vec())),
        (text("time"), text(&record.time.to_string())),
        (text("actor"), text(&record.actor)),
        (text("action"), text(&record.action)),
        (text("inputs"), digests(&record.inputs)),
        (text("outputs"), digests(&record.outputs)),
    ];
    if let Some(c) = &record.ceremony {
        fields.push((text("ceremony"), text(c)));
    }
    if let Some(d) = &record.detail {
        fields.push((text("detail"), text(d)));
    }
    // Canonical key order (RFC 8949 §4.2.1), as ciborium's CanonicalValue orders keys.
    fields.sort_by_cached_key(|(k, _)| CanonicalValue::from(k.clone()));
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Value::Map(fields), &mut out)
        .expect("writing CBOR to memory cannot fail");
    out
}

/// The hash of a stored record.
pub(super) fn hash(encoded: &[u8]) -> [u8; 32] {
    Sha256::digest(encoded).into()
}

/// Decodes a stored record, requiring the canonical encoding (so that a segment exported as
/// JSON re-encodes to the same bytes and hash).
pub(super) fn decode(bytes: &[u8]) -> Result<Entry, String> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, 8)
        .map_err(|e| format!("not CBOR: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes follow the record", rest.len()));
    }
    let Value::Map(map) = value else {
        return Err("not a map".into());
    };
    let mut seq = None;
    let mut prev = None;
    let mut time = None;
    let mut actor = None;
    let mut action = None;
    let mut ceremony = None;
    let mut detail = None;
    let mut inputs = None;
    let mut outputs = None;
    for (key, value) in map {
        let Value::Text(key) = key else {
            return Err("a field name is not text".into());
        };
        match key.as_str() {
            "seq" => seq = value.as_integer().and_then(|i| u64::try_from(i).ok()),
            "prev" => prev = as_digest(&value),
            "time" => {
                time = value
                    .as_text()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            }
            "actor" => actor = value.into_text().ok(),
            "action" => action = value.into_text().ok(),
            "ceremony" => ceremony = Some(value.into_text().map_err(|_| "bad ceremony")?),
            "detail" => detail = Some(value.into_text().map_err(|_| "bad detail")?),
            "inputs" => inputs = Some(decode_digests(value)?),
            "outputs" => outputs = Some(decode_digests(value)?),
            other => return Err(format!("unknown field {other:?}")),
        }
    }
    let missing = |name: &str| format!("field {name:?} missing or malformed");
    let entry_record = Record {
        time: time.ok_or_else(|| missing("time"))?,
        actor: actor.ok_or_else(|| missing("actor"))?,
        action: action.ok_or_else(|| missing("action"))?,
        ceremony,
        detail,
        inputs: inputs.ok_or_else(|| missing("inputs"))?,
        outputs: outputs.ok_or_else(|| missing("outputs"))?,
    };
    let seq = seq.ok_or_else(|| missing("seq"))?;
    let prev = prev.ok_or_else(|| missing("prev"))?;
    if encode(seq, &prev, &entry_record) != bytes {
        return Err("not in canonical form".into());
    }
    Ok(Entry {
        seq,
        prev,
        hash: hash(bytes),
        record: entry_record,
    })
}

fn as_digest(value: &Value) -> Option<[u8; 32]> {
    value.as_bytes().and_then(|b| b.as_slice().try_into().ok())
}

fn decode_digests(value: Value) -> Result<Vec<Digest>, String> {
    let Value::Array(items) = value else {
        return Err("a digest list is not an array".into());
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Map(fields) = item else {
                return Err("a digest is not a map".to_string());
            };
            let mut name = None;
            let mut sha256 = None;
            for (k, v) in fields {
                match k.as_text() {
                    Some("name") => name = v.into_text().ok(),
                    Some("sha256") => sha256 = as_digest(&v),
                    _ => return Err("unknown field in a digest".to_string()),
                }
            }
            Ok(Digest {
                name: name.ok_or("a digest has no name")?,
                sha256: sha256.ok_or("a digest has no 32-byte sha256")?,
            })
        })
        .collect()
}

impl Entry {
    /// The entry as a transcript prints it: one header line, then detail and digests.
    pub fn to_text(&self) -> String {
        let r = &self.record;
        let mut text = format!(
            "#{:<5} {}  {:<24} by {}",
            self.seq, r.time, r.action, r.actor
        );
        if let Some(c) = &r.ceremony {
            text.push_str(&format!("  [ceremony {c}]"));
        }
        text.push('\n');
        if let Some(d) = &r.detail {
            text.push_str(&format!("       {d}\n"));
        }
        for (label, list) in [("in ", &r.inputs), ("out", &r.outputs)] {
            for d in list {
                text.push_str(&format!(
                    "       {label} SHA256:{}  {}\n",
                    hex::encode(d.sha256),
                    d.name
                ));
            }
        }
        text.push_str(&format!(
            "       record SHA256:{}\n",
            hex::encode(self.hash)
        ));
        text
    }
}

/// Serde for a 32-byte hash as lowercase hex.
pub(super) mod hex_32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes of hex"))
    }
}
