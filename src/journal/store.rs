//! The journal database: sled, one process at a time, every append flushed before it returns.
//!
//! Two trees: `records` (key: sequence number as 8 big-endian bytes; value: the record's
//! canonical encoding) and `meta` (`head`: the last record's sequence number and hash). An
//! append writes the record and the new head in one sled transaction and then flushes, so a
//! crash (`kill -9`, power cut) leaves either the journal before the append or after it.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::error::JournalError;
use super::record::{self, Entry, Head, Record, GENESIS};
use super::segment::Segment;
use crate::time::LatestRecord;

const RECORDS: &str = "records";
const META: &str = "meta";
const HEAD_KEY: &[u8] = b"head";

/// The name of the journal database inside a state directory.
pub const JOURNAL_DIR: &str = "journal";

/// Which records to export or show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every record.
    All,
    /// Records `first..=last` by sequence number.
    Range(RangeInclusive<u64>),
    /// From the first to the last record of a ceremony (with anything in between, so that the
    /// segment's chain is unbroken).
    Ceremony(String),
}

/// The appliance's append-only, hash-chained audit journal.
pub struct Journal {
    path: PathBuf,
    /// Held for the journal's lifetime: one process at a time, taken before sled opens so that
    /// the clean-up in [`remove_unfinished_snapshots`] never races another process's snapshot.
    _lock: std::fs::File,
    db: sled::Db,
    pub(super) records: sled::Tree,
    pub(super) meta: sled::Tree,
    append_lock: Mutex<()>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Journal({})", self.path.display())
    }
}

impl Journal {
    /// Opens the journal in `state_dir`, creating the directory and the journal if needed.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        let path = state_dir.join(JOURNAL_DIR);
        // The state directory is the appliance's alone: owner-only.
        let mut builder = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(builder.recursive(true), 0o700);
        builder
            .create(state_dir)
            .map_err(|e| JournalError::Storage {
                path: path.clone(),
                message: format!("cannot create state directory: {e}"),
            })?;
        Self::open_at(path)
    }

    /// Opens the journal in `state_dir`, which must exist already (for reading and checking).
    pub fn open_existing(state_dir: &Path) -> Result<Self, JournalError> {
        let path = state_dir.join(JOURNAL_DIR);
        if !path.is_dir() {
            return Err(JournalError::NotFound(state_dir.to_path_buf()));
        }
        Self::open_at(path)
    }

    fn open_at(path: PathBuf) -> Result<Self, JournalError> {
        let lock = Self::lock(&path)?;
        remove_unfinished_snapshots(&path)?;
        let db = sled::Config::new()
            .path(&path)
            // Every append flushes itself; no background flusher to wait for at exit.
            .flush_every_ms(None)
            .open()
            .map_err(|e| {
                let message = storage_message(&e);
                if message.contains("could not acquire lock") {
                    JournalError::Locked(path.clone())
                } else {
                    JournalError::Storage {
                        path: path.clone(),
                        message,
                    }
                }
            })?;
        let (records, meta) = match (db.open_tree(RECORDS), db.open_tree(META)) {
            (Ok(records), Ok(meta)) => (records, meta),
            (Err(e), _) | (_, Err(e)) => return Err(storage_error(&path)(e)),
        };
        Ok(Journal {
            path,
            _lock: lock,
            db,
            records,
            meta,
            append_lock: Mutex::new(()),
        })
    }

    /// Takes the journal's lock file (beside the database) without waiting: a second process
    /// is refused by name rather than left to sled's own lock error.
    fn lock(path: &Path) -> Result<std::fs::File, JournalError> {
        let lock_path = path.with_extension("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| JournalError::Storage {
                path: lock_path.clone(),
                message: format!("cannot open the journal's lock file: {e}"),
            })?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::Locked(path.to_path_buf())),
            Err(std::fs::TryLockError::Error(e)) => Err(JournalError::Storage {
                path: lock_path,
                message: format!("cannot lock the journal: {e}"),
            }),
        }
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The head as recorded at the last append (not checked; see [`Journal::verify`]).
    pub fn head(&self) -> Result<Head, JournalError> {
        Ok(self.stored_head()?.unwrap_or(Head {
            seq: 0,
            hash: GENESIS,
        }))
    }

    fn stored_head(&self) -> Result<Option<Head>, JournalError> {
        match self.meta.get(HEAD_KEY).map_err(storage_error(&self.path))? {
            None => Ok(None),
            Some(bytes) => decode_head(&bytes)
                .map(Some)
                .ok_or_else(|| JournalError::BrokenChain {
                    seq: 0,
                    problem: "the stored journal head is malformed".into(),
                }),
        }
    }

    /// Appends `record` as the next entry, chained to the head, and flushes it to disk before
    /// returning: once this returns, the record survives a crash. Refuses to extend a journal
    /// whose head does not match its last record.
    pub fn append(&self, record: Record) -> Result<Entry, JournalError> {
        record.check()?;
        let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let head = self.head()?;
        if let Some(previous) = self.check_last_matches(&head)? {
            if record.time < previous {
                return Err(JournalError::TimeWentBackwards {
                    seq: head.seq + 1,
                    time: record.time,
                    previous_seq: head.seq,
                    previous,
                });
            }
        }
        let seq = head.seq + 1;
        let encoded = record::encode(seq, &head.hash, &record);
        let hash = record::hash(&encoded);
        let mut new_head = seq.to_be_bytes().to_vec();
        new_head.extend_from_slice(&hash);
        let result: Result<(), TransactionError<()>> =
            (&self.records, &self.meta).transaction(|(records, meta)| {
                if records.get(seq.to_be_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(()));
                }
                records.insert(&seq.to_be_bytes(), encoded.as_slice())?;
                meta.insert(HEAD_KEY, new_head.as_slice())?;
                Ok(())
            });
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort(())) => {
                return Err(JournalError::BrokenChain {
                    seq,
                    problem: "a record with this number exists beyond the journal head".into(),
                })
            }
            Err(TransactionError::Storage(e)) => return Err(storage_error(&self.path)(e)),
        }
        self.db.flush().map_err(storage_error(&self.path))?;
        Ok(Entry {
            seq,
            prev: head.hash,
            hash,
            record,
        })
    }

    /// The last record's number and time (not checked; see [`Journal::verify`]): no confirmed
    /// time may be earlier.
    pub fn latest_record(&self) -> Result<Option<LatestRecord>, JournalError> {
        let Some((key, value)) = self.records.last().map_err(storage_error(&self.path))? else {
            return Ok(None);
        };
        let seq = <[u8; 8]>::try_from(key.as_ref())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let entry = record::decode(&value).map_err(|e| JournalError::BrokenChain {
            seq,
            problem: format!("the last stored record is not a valid journal record ({e})"),
        })?;
        Ok(Some(LatestRecord {
            seq: entry.seq,
            time: entry.record.time,
        }))
    }

    /// Checks that the last stored record is the head, before extending the chain; returns its
    /// time (none for an empty journal), which the next record may not precede.
    fn check_last_matches(&self, head: &Head) -> Result<Option<jiff::Timestamp>, JournalError> {
        let last = self.records.last().map_err(storage_error(&self.path))?;
        match (last, head.seq) {
            (None, 0) => Ok(None),
            (Some((key, value)), seq) if key.as_ref() == seq.to_be_bytes() => {
                if record::hash(&value) == head.hash {
                    let entry = record::decode(&value).map_err(|e| JournalError::BrokenChain {
                        seq,
                        problem: format!(
                            "the last stored record is not a valid journal record ({e})"
                        ),
                    })?;
                    Ok(Some(entry.record.time))
                } else {
                    Err(JournalError::BrokenChain {
                        seq,
                        problem: "the last record does not match the journal head; run `rootcellar journal verify`".into(),
                    })
                }
            }
            _ => Err(JournalError::BrokenChain {
                seq: head.seq,
                problem: "the journal head and the last stored record disagree; run `rootcellar journal verify`".into(),
            }),
        }
    }

    /// Walks the whole chain from record 1 and returns the head. Stops at the first broken link:
    /// a missing, misplaced, undecodable or altered record, or a head that does not match the
    /// last record (a truncated journal). Then names the first record whose time is earlier than
    /// the record before it.
    pub fn verify(&self) -> Result<Head, JournalError> {
        let mut previous: Option<(u64, jiff::Timestamp)> = None;
        let mut backwards = None;
        let (head, _) = self.walk(|entry| {
            if let Some((previous_seq, previous_time)) = previous {
                if entry.record.time < previous_time && backwards.is_none() {
                    backwards = Some(JournalError::TimeWentBackwards {
                        seq: entry.seq,
                        time: entry.record.time,
                        previous_seq,
                        previous: previous_time,
                    });
                }
            }
            previous = Some((entry.seq, entry.record.time));
            false
        })?;
        match backwards {
            Some(problem) => Err(problem),
            None => Ok(head),
        }
    }

    /// Checks the chain ([`Journal::verify`]) and that it ends exactly at `expected` (a head
    /// carried by a response bundle, or written down at the end of a ceremony).
    pub fn verify_head(&self, expected: &Head) -> Result<Head, JournalError> {
        let head = self.verify()?;
        if head != *expected {
            return Err(JournalError::HeadMismatch {
                expected_seq: expected.seq,
                expected_hash: hex::encode(expected.hash),
                found: format!("the journal ends at {head}"),
            });
        }
        Ok(head)
    }

    /// Checks the chain and returns the selected entries with the head.
    pub fn entries(&self, selection: &Selection) -> Result<(Vec<Entry>, Head), JournalError> {
        let (head, all) = self.walk(|_| true)?;
        let selected: Vec<Entry> = match selection {
            Selection::All => all,
            Selection::Range(range) => all.into_iter().filter(|e| range.contains(&e.seq)).collect(),
            Selection::Ceremony(name) => {
                let mine = |e: &Entry| e.record.ceremony.as_deref() == Some(name.as_str());
                let first = all.iter().position(mine);
                let last = all.iter().rposition(mine);
                match (first, last) {
                    (Some(first), Some(last)) => all[first..=last].to_vec(),
                    _ => Vec::new(),
                }
            }
        };
        Ok((selected, head))
    }

    /// Exports the selected records (after checking the whole chain) as a segment that carries
    /// the journal head; a response bundle carries it as its `journal-segment` entry.
    pub fn export(&self, selection: &Selection) -> Result<Segment, JournalError> {
        let (entries, head) = self.entries(selection)?;
        if entries.is_empty() {
            return Err(JournalError::EmptyRange(describe(selection)));
        }
        Ok(Segment::new(head, entries))
    }

    fn walk(
        &self,
        mut keep: impl FnMut(&Entry) -> bool,
    ) -> Result<(Head, Vec<Entry>), JournalError> {
        let storage = storage_error(&self.path);
        let mut kept = Vec::new();
        let mut expected = 1u64;
        let mut prev = GENESIS;
        for item in self.records.iter() {
            let (key, value) = item.map_err(&storage)?;
            let broken = |problem: String| JournalError::BrokenChain {
                seq: expected,
                problem,
            };
            let stored_as = <[u8; 8]>::try_from(key.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    broken(format!(
                        "a stored key ({}) is not a record number",
                        hex::encode(&key)
                    ))
                })?;
            if stored_as != expected {
                return Err(broken(format!(
                    "record {expected} is missing: record {} is followed by record {stored_as}",
                    expected - 1
                )));
            }
            let entry = record::decode(&value).map_err(|e| {
                broken(format!(
                    "the stored record is not a valid journal record ({e})"
                ))
            })?;
            if entry.seq != stored_as {
                return Err(broken(format!(
                    "the record stored as number {stored_as} says it is record {} (records reordered or moved)",
                    entry.seq
                )));
            }
            if entry.prev != prev {
                return Err(broken(format!(
                    "its previous-record hash does not match the hash of record {}: the link between records {} and {expected} is broken (one of them was altered)",
                    expected - 1,
                    expected - 1
                )));
            }
            prev = entry.hash;
            if keep(&entry) {
                kept.push(entry);
            }
            expected += 1;
        }
        let last = Head {
            seq: expected - 1,
            hash: prev,
        };
        let Some(recorded) = self.stored_head()? else {
            if last.seq == 0 {
                return Ok((last, kept));
            }
            return Err(JournalError::BrokenChain {
                seq: last.seq,
                problem: "the journal head is missing (it is written with every record)".into(),
            });
        };
        if recorded.seq > last.seq {
            return Err(JournalError::BrokenChain {
                seq: last.seq + 1,
                problem: format!(
                    "the journal head says it ends at record {} but the last record is {}: records were removed from the end",
                    recorded.seq, last.seq
                ),
            });
        }
        if recorded != last {
            return Err(JournalError::BrokenChain {
                seq: last.seq,
                problem: format!(
                    "the last record does not match the journal head ({recorded}): it was altered, or the head was"
                ),
            });
        }
        Ok((last, kept))
    }
}

/// Removes the snapshot files sled 0.34 was still writing when its process died.
///
/// sled writes a snapshot (a cache of the log's state; the log is what is durable) to
/// `snap.<lsn>.generating`, syncs it and renames it to `snap.<lsn>`; but when it opens, it takes
/// the last file whose name starts with `snap.`, the unfinished one included, and refuses to open
/// at all when that file is cut short ("Read corrupted data", spacejam/sled#1527). A `kill -9`
/// at the wrong moment did exactly that to our journal in about one test run in four. A file
/// still named `.generating` was never complete, so removing it loses nothing: sled replays the
/// log from the last finished snapshot.
fn remove_unfinished_snapshots(path: &Path) -> Result<(), JournalError> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(storage_error_io(path, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| storage_error_io(path, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(entry.path()).map_err(|e| storage_error_io(path, e))?;
        }
    }
    Ok(())
}

fn storage_error_io(path: &Path, e: std::io::Error) -> JournalError {
    JournalError::Storage {
        path: path.to_path_buf(),
        message: format!("cannot clear an unfinished snapshot: {e}"),
    }
}

fn describe(selection: &Selection) -> String {
    match selection {
        Selection::All => "the whole journal (it is empty)".into(),
        Selection::Range(r) => format!("records {} to {}", r.start(), r.end()),
        Selection::Ceremony(c) => format!("ceremony {c:?}"),
    }
}

fn decode_head(bytes: &[u8]) -> Option<Head> {
    let (seq, hash) = bytes.split_at_checked(8)?;
    Some(Head {
        seq: u64::from_be_bytes(seq.try_into().ok()?),
        hash: hash.try_into().ok()?,
    })
}

fn storage_error(path: &Path) -> impl Fn(sled::Error) -> JournalError + '_ {
    move |e| JournalError::Storage {
        path: path.to_path_buf(),
        message: storage_message(&e),
    }
}

fn storage_message(e: &sled::Error) -> String {
    match e {
        sled::Error::Io(io) => io_message(io),
        other => other.to_string(),
    }
}

/// The operating system's words for an I/O error sled reports (a full disk: "No space left on
/// device (os error 28)"). Once a write has failed, sled hands back a copy of the error whose
/// message is the original's debug text (`Os { code: 28, kind: StorageFull, message: "…" }`);
/// that is turned back into the plain message.
fn io_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    if e.raw_os_error().is_some() || !text.starts_with("Os {") {
        return text;
    }
    let field = |start: &str, end: char| {
        let from = text.find(start)? + start.len();
        let len = text[from..].find(end)?;
        Some(text[from..from + len].to_string())
    };
    match (field("code: ", ','), field("message: \"", '"')) {
        (Some(code), Some(message)) => format!("{message} (os error {code})"),
        _ => text,
    }
}

#[cfg(test)]
mod io_message_tests {
    use super::io_message;

    #[test]
    fn a_full_disk_reads_as_the_operating_system_says_it() {
        let original = std::io::Error::from_raw_os_error(28);
        assert_eq!(io_message(&original), original.to_string());
        // What sled hands back once its write failed: the original's debug text.
        let copy = std::io::Error::new(original.kind(), format!("{original:?}"));
        assert_eq!(io_message(&copy), "No space left on device (os error 28)");
        let plain = std::io::Error::other("disk on fire");
        assert_eq!(io_message(&plain), "disk on fire");
        // sled's own messages that quote an OS error are left whole.
        let lock = std::io::Error::other(format!("could not acquire lock on \"j\": {original:?}"));
        assert_eq!(io_message(&lock), lock.to_string());
    }
}
