//! The appliance's audit journal: append-only, hash-chained, in `sled`.
//!
//! Every action the appliance takes is appended as a [`Record`] (confirmed ceremony time, actor,
//! action, ceremony, detail, digests of inputs and outputs). [`Journal::append`] numbers it,
//! chains it to the previous record by hash, writes record and head in one transaction and
//! flushes to disk before returning, so an action is reported done only once its record
//! would survive a crash. [`Journal::verify`] walks the chain and names the first broken link;
//! [`Journal::export`] gives a [`Segment`] that a response bundle carries with the journal head.
//!
//! The journal lives in `<state dir>/journal` (the CLI's `--state DIR` or `ROOTCELLAR_STATE`).
//! sled admits one process at a time; a second gets [`JournalError::Locked`].
//!
//! ```no_run
//! use rootcellar::journal::{Digest, Journal, Record};
//! # fn main() -> Result<(), rootcellar::journal::JournalError> {
//! let journal = Journal::open(std::path::Path::new("/var/lib/rootcellar"))?;
//! let time: jiff::Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
//! let entry = journal.append(
//!     Record::new(time, "alice", "x509.issue")
//!         .ceremony("2026-q4")
//!         .detail("pkcs11:token=root-ca;object=root-ca")
//!         .input(Digest::of("fulcio.csr", b"...csr bytes..."))
//!         .output(Digest::of("intermediate-fulcio.pem", b"...pem bytes...")),
//! )?;
//! println!("journaled as record {}", entry.seq);
//! # Ok(()) }
//! ```

mod error;
mod record;
mod segment;
mod store;

pub use error::JournalError;
pub use record::{Digest, Entry, Head, Record, GENESIS};
pub use segment::{render, Segment};
pub use store::{Journal, Selection, JOURNAL_DIR};

#[cfg(test)]
mod tests;
