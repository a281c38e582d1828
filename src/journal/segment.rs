//! Exported journal segments: a contiguous run of records with the journal head, as JSON.
//!
//! Each record carries its sequence number, `prev` and `sha256` (hex), and its fields; the hash
//! is recomputed from the fields (their canonical CBOR encoding, see [`super::record`]), so a
//! segment is checkable on its own, far from the appliance, and against the head a signed
//! response bundle states.
//!
//! ```json
//! { "format": "rootcellar-journal-segment", "version": 1,
//!   "journal_head": { "seq": 12, "sha256": "…" },
//!   "records": [ { "seq": 3, "prev": "…", "sha256": "…", "time": "2026-11-25T10:00:00Z",
//!                  "actor": "alice", "action": "x509.issue", "ceremony": "2026-q4",
//!                  "detail": "…", "inputs": [ { "name": "…", "sha256": "…" } ],
//!                  "outputs": [] } ] }
//! ```

use std::path::Path;

use super::error::JournalError;
use super::record::{self, hex_32, Digest, Entry, Head, Record};

const FORMAT: &str = "rootcellar-journal-segment";
const VERSION: u64 = 1;

/// A checked run of journal records and the journal head at export time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    head: Head,
    entries: Vec<Entry>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentJson {
    format: String,
    version: u64,
    journal_head: Head,
    records: Vec<RecordJson>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordJson {
    seq: u64,
    #[serde(with = "hex_32")]
    prev: [u8; 32],
    #[serde(with = "hex_32")]
    sha256: [u8; 32],
    time: String,
    actor: String,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ceremony: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    inputs: Vec<Digest>,
    outputs: Vec<Digest>,
}

impl Segment {
    pub(super) fn new(head: Head, entries: Vec<Entry>) -> Self {
        Segment { head, entries }
    }

    /// The journal head when the segment was exported.
    pub fn journal_head(&self) -> Head {
        self.head
    }

    /// The records, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The JSON document (pretty-printed, newline-terminated).
    pub fn to_json(&self) -> Vec<u8> {
        let doc = SegmentJson {
            format: FORMAT.into(),
            version: VERSION,
            journal_head: self.head,
            records: self
                .entries
                .iter()
                .map(|e| RecordJson {
                    seq: e.seq,
                    prev: e.prev,
                    sha256: e.hash,
                    time: e.record.time.to_string(),
                    actor: e.record.actor.clone(),
                    action: e.record.action.clone(),
                    ceremony: e.record.ceremony.clone(),
                    detail: e.record.detail.clone(),
                    inputs: e.record.inputs.clone(),
                    outputs: e.record.outputs.clone(),
                })
                .collect(),
        };
        let mut out = serde_json::to_vec_pretty(&doc).expect("segments serialise");
        out.push(b'\n');
        out
    }

    /// Reads a segment and checks it: every record's hash recomputed from its fields, the
    /// records consecutive and each chained to the one before, and the last one equal to the
    /// journal head when it is the head.
    pub fn from_json(bytes: &[u8]) -> Result<Self, JournalError> {
        let bad = JournalError::InvalidSegment;
        let doc: SegmentJson = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("not a journal segment document: {e}")))?;
        if doc.format != FORMAT {
            return Err(bad(format!(
                "format is {:?}, expected {FORMAT:?}",
                doc.format
            )));
        }
        if doc.version != VERSION {
            return Err(bad(format!(
                "segment version {} is not supported (this rootcellar reads {VERSION})",
                doc.version
            )));
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(doc.records.len());
        for r in doc.records {
            let seq = r.seq;
            let time: jiff::Timestamp = r
                .time
                .parse()
                .map_err(|e| bad(format!("record {seq}: bad time {:?}: {e}", r.time)))?;
            let record = Record {
                time,
                actor: r.actor,
                action: r.action,
                ceremony: r.ceremony,
                detail: r.detail,
                inputs: r.inputs,
                outputs: r.outputs,
            };
            if time.to_string() != r.time {
                return Err(bad(format!(
                    "record {seq}: time {:?} is not in canonical form",
                    r.time
                )));
            }
            let computed = record::hash(&record::encode(seq, &r.prev, &record));
            if computed != r.sha256 {
                return Err(bad(format!(
                    "record {seq}: its hash does not match its contents (altered)"
                )));
            }
            if let Some(before) = entries.last() {
                if seq != before.seq + 1 {
                    return Err(bad(format!(
                        "record {} is followed by record {seq}: records missing or reordered",
                        before.seq
                    )));
                }
                if r.prev != before.hash {
                    return Err(bad(format!(
                        "record {seq}: its previous-record hash does not match record {}",
                        before.seq
                    )));
                }
                if record.time < before.record.time {
                    return Err(bad(format!(
                        "record {seq}: its time {} is earlier than record {}'s ({}): journal \
                         times may never go backwards",
                        record.time, before.seq, before.record.time
                    )));
                }
            } else if seq == 0 {
                return Err(bad("records are numbered from 1".into()));
            }
            entries.push(Entry {
                seq,
                prev: r.prev,
                hash: r.sha256,
                record,
            });
        }
        let Some(last) = entries.last() else {
            return Err(bad("the segment holds no records".into()));
        };
        if last.seq > doc.journal_head.seq {
            return Err(bad(format!(
                "record {} lies beyond the journal head ({})",
                last.seq, doc.journal_head
            )));
        }
        if last.seq == doc.journal_head.seq && last.hash != doc.journal_head.hash {
            return Err(bad(format!(
                "the last record does not match the journal head ({})",
                doc.journal_head
            )));
        }
        Ok(Segment {
            head: doc.journal_head,
            entries,
        })
    }

    /// Reads and checks a segment file.
    pub fn read_file(path: &Path) -> Result<Self, JournalError> {
        let bytes = std::fs::read(path).map_err(|source| JournalError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&bytes)
    }

    /// The records as a transcript (see [`Entry::to_text`]).
    pub fn to_text(&self) -> String {
        render(&self.entries, &self.head)
    }
}

/// A transcript: the records in order, then the head an auditor compares.
pub fn render(entries: &[Entry], head: &Head) -> String {
    let mut text = String::new();
    for entry in entries {
        text.push_str(&entry.to_text());
    }
    text.push_str(&format!("journal head: {head}\n"));
    text
}
