//! The errors of the `journal` module.

use std::path::PathBuf;

use crate::files::OutputError;

/// Why a journal operation failed, or which check a journal or segment failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// There is no journal in the state directory yet.
    #[error("no journal in state directory {0} (the first journaled operation creates it)")]
    NotFound(PathBuf),
    /// Another process has the journal open (sled allows one process at a time).
    #[error("the journal in {0} is in use by another rootcellar process")]
    Locked(PathBuf),
    /// The database could not be opened, read or written.
    #[error("journal database {path}: {message}")]
    Storage {
        /// The database directory.
        path: PathBuf,
        /// What sled reported.
        message: String,
    },
    /// Chain check: the first broken link, named by the record where the walk stopped.
    #[error("chain check failed at record {seq}: {problem}")]
    BrokenChain {
        /// The sequence number where the chain breaks.
        seq: u64,
        /// What is wrong there.
        problem: String,
    },
    /// Time check: a record is earlier than the one before it. The appliance's time may never
    /// go backwards; such a record is refused when appended and named when verifying.
    #[error(
        "time check failed at record {seq}: its time {time} is earlier than record {previous_seq}'s \
         ({previous}); journal times may never go backwards"
    )]
    TimeWentBackwards {
        /// The record whose time goes backwards (the one being appended, or found).
        seq: u64,
        /// Its time.
        time: jiff::Timestamp,
        /// The record before it.
        previous_seq: u64,
        /// That record's time.
        previous: jiff::Timestamp,
    },
    /// Head check: the journal does not end at the head the caller holds (from a bundle).
    #[error(
        "head check failed: expected record {expected_seq} with hash {expected_hash}, {found}"
    )]
    HeadMismatch {
        /// The expected head's sequence number.
        expected_seq: u64,
        /// The expected head's hash, hex.
        expected_hash: String,
        /// What the journal has instead.
        found: String,
    },
    /// A record to append is unusable (empty actor, control characters).
    #[error("cannot journal this record: {0}")]
    InvalidRecord(String),
    /// An input or output file named in a record could not be read for its digest.
    #[error("cannot read {path} to record its digest: {source}")]
    Digest {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Segment check: an exported segment is malformed or its chain does not hold.
    #[error("segment check failed: {0}")]
    InvalidSegment(String),
    /// A segment file could not be read.
    #[error("cannot read segment {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Nothing matches the range asked for.
    #[error("no journal records match {0}")]
    EmptyRange(String),
    /// Writing an export failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}
