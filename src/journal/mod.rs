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
//! One process at a time; a second gets [`JournalError::Locked`].
//!
//! Record times are [`ConfirmedTime`](crate::time::ConfirmedTime)s and never go backwards: an
//! append earlier than the latest record is refused, and [`Journal::verify`] names any record
//! earlier than the one before it (a journal written by hand, or by an older rootcellar).
//!
//! ```no_run
//! use rootcellar::journal::{Digest, Journal, Record};
//! use rootcellar::time::{self, Checked, Reference, TimePolicy};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let journal = Journal::open(std::path::Path::new("/var/lib/rootcellar"))?;
//! let reference = Reference::this_machine(journal.latest_record()?, TimePolicy::default());
//! let Checked::Confirmed(time) = time::check(jiff::Timestamp::now(), &reference)? else {
//!     unreachable!("the clock is never far from itself")
//! };
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
