//! `rootcellar journal …`

use std::path::PathBuf;

use clap::{Args, Subcommand};
use rootcellar::journal::{Digest, Head, Journal, JournalError, Record, Segment, Selection};

use super::CliError;

/// The environment variable naming the state directory when `--state` is not given.
pub const STATE_ENV: &str = "ROOTCELLAR_STATE";

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Print journal records as a transcript (or as a segment document with --json), after
    /// checking the whole chain.
    Show {
        #[command(flatten)]
        state: StateArg,
        #[command(flatten)]
        select: SelectArgs,
        /// Print the selected records as a journal segment (JSON).
        #[arg(long)]
        json: bool,
    },
    /// Walk the hash chain from the first record and name the first broken link; or check an
    /// exported segment file (--segment).
    Verify {
        #[command(flatten)]
        state: StateArg,
        /// Check this exported segment file instead of the journal in the state directory.
        #[arg(long, value_name = "FILE")]
        segment: Option<PathBuf>,
        /// Also require the journal (or segment) to end at this head, as a response bundle
        /// states it: SEQ:SHA256-HEX.
        #[arg(long, value_name = "SEQ:HEX")]
        head: Option<String>,
    },
    /// Write the selected records and the journal head as a segment (JSON) for a response
    /// bundle; the file must not exist.
    Export {
        #[command(flatten)]
        state: StateArg,
        #[command(flatten)]
        select: SelectArgs,
        /// The segment file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Append a record (actions taken outside rootcellar, rehearsal scripts). Returns once the
    /// record is flushed to disk.
    Append {
        #[command(flatten)]
        state: StateArg,
        /// Who acted.
        #[arg(long)]
        actor: String,
        /// What was done (dotted, e.g. ceremony.start).
        #[arg(long)]
        action: String,
        /// The ceremony it belongs to.
        #[arg(long)]
        ceremony: Option<String>,
        /// A short free-text detail.
        #[arg(long)]
        detail: Option<String>,
        #[command(flatten)]
        time: super::SigningTime,
        /// A file that went in (its SHA-256 is recorded). Repeatable.
        #[arg(long, value_name = "FILE")]
        input: Vec<PathBuf>,
        /// A file that came out (its SHA-256 is recorded). Repeatable.
        #[arg(long, value_name = "FILE")]
        output: Vec<PathBuf>,
        /// Print the new record's number and hash as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `--state DIR`: where the journal lives.
#[derive(Debug, Args)]
pub struct StateArg {
    /// The appliance's state directory (default: $ROOTCELLAR_STATE).
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
}

impl StateArg {
    /// The state directory given or from the environment, if any.
    pub fn resolve(&self) -> Option<PathBuf> {
        self.state
            .clone()
            .or_else(|| std::env::var_os(STATE_ENV).map(PathBuf::from))
            .filter(|p| !p.as_os_str().is_empty())
    }

    fn require(&self) -> Result<PathBuf, CliError> {
        self.resolve().ok_or_else(|| {
            CliError::Usage(format!(
                "no state directory: give --state DIR or set {STATE_ENV}"
            ))
        })
    }
}

#[derive(Debug, Args)]
pub struct SelectArgs {
    /// First record (default: 1).
    #[arg(long, value_name = "SEQ", conflicts_with = "ceremony")]
    from: Option<u64>,
    /// Last record (default: the head).
    #[arg(long, value_name = "SEQ", conflicts_with = "ceremony")]
    to: Option<u64>,
    /// The records of one ceremony (from its first to its last record).
    #[arg(long)]
    ceremony: Option<String>,
}

impl SelectArgs {
    fn selection(&self) -> Selection {
        match (&self.ceremony, self.from, self.to) {
            (Some(c), _, _) => Selection::Ceremony(c.clone()),
            (None, None, None) => Selection::All,
            (None, from, to) => Selection::Range(from.unwrap_or(1)..=to.unwrap_or(u64::MAX)),
        }
    }
}

/// Parses `SEQ:HEX` as a journal head.
fn parse_head(text: &str) -> Result<Head, CliError> {
    let usage = || CliError::Usage(format!("invalid head {text:?}: expected SEQ:SHA256-HEX"));
    let (seq, hash) = text.split_once(':').ok_or_else(usage)?;
    let hash = hash.strip_prefix("SHA256:").unwrap_or(hash);
    Ok(Head {
        seq: seq.trim().parse().map_err(|_| usage())?,
        hash: hex::decode(hash.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(usage)?,
    })
}

/// The segment must state `expected` as the journal head.
fn check_segment_head(segment: &Segment, expected: &Head) -> Result<(), JournalError> {
    if segment.journal_head() != *expected {
        return Err(JournalError::HeadMismatch {
            expected_seq: expected.seq,
            expected_hash: hex::encode(expected.hash),
            found: format!("the segment states {}", segment.journal_head()),
        });
    }
    Ok(())
}

pub fn run(command: JournalCommand) -> Result<(), CliError> {
    match command {
        JournalCommand::Show {
            state,
            select,
            json,
        } => {
            let journal = Journal::open_existing(&state.require()?)?;
            if json {
                let segment = journal.export(&select.selection())?;
                print!("{}", String::from_utf8_lossy(&segment.to_json()));
            } else {
                let (entries, head) = journal.entries(&select.selection())?;
                print!("{}", rootcellar::journal::render(&entries, &head));
            }
        }
        JournalCommand::Verify {
            state,
            segment,
            head,
        } => {
            let expected = head.as_deref().map(parse_head).transpose()?;
            if let Some(path) = segment {
                let segment = Segment::read_file(&path)?;
                if let Some(expected) = &expected {
                    check_segment_head(&segment, expected)?;
                }
                let (first, last) = (
                    segment.entries().first().map(|e| e.seq).unwrap_or_default(),
                    segment.entries().last().map(|e| e.seq).unwrap_or_default(),
                );
                println!(
                    "segment OK: records {first} to {last}, chained; journal head {}",
                    segment.journal_head()
                );
            } else {
                let journal = Journal::open_existing(&state.require()?)?;
                let head = match &expected {
                    Some(expected) => journal.verify_head(expected)?,
                    None => journal.verify()?,
                };
                println!(
                    "journal OK: {} records, chain intact; head {head}",
                    head.seq
                );
            }
        }
        JournalCommand::Export { state, select, out } => {
            let journal = Journal::open_existing(&state.require()?)?;
            rootcellar::files::ensure_absent([out.as_path()])?;
            let segment = journal.export(&select.selection())?;
            rootcellar::files::write_new(&out, &segment.to_json())?;
            let entries = segment.entries();
            println!(
                "wrote {}: records {} to {}; journal head {}",
                out.display(),
                entries.first().map(|e| e.seq).unwrap_or_default(),
                entries.last().map(|e| e.seq).unwrap_or_default(),
                segment.journal_head()
            );
        }
        JournalCommand::Append {
            state,
            actor,
            action,
            ceremony,
            detail,
            time,
            input,
            output,
            json,
        } => {
            let state = state.require()?;
            let mut record = Record::new(time.confirm(Some(&state))?, actor, action);
            record.ceremony = ceremony;
            record.detail = detail;
            for path in &input {
                record = record.input(Digest::of_file(path)?);
            }
            for path in &output {
                record = record.output(Digest::of_file(path)?);
            }
            let entry = Journal::open(&state)?.append(record)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"seq": entry.seq, "sha256": hex::encode(entry.hash)})
                );
            } else {
                println!("record {} SHA256:{}", entry.seq, hex::encode(entry.hash));
            }
        }
    }
    Ok(())
}

/// Appends `record` to the journal in `state`, for the bundle commands.
pub fn journal_to(state: &std::path::Path, record: Record) -> Result<u64, CliError> {
    Ok(Journal::open(state)?.append(record)?.seq)
}

/// Checks a journal segment carried by a bundle against the head its manifest states.
pub fn check_carried_segment(bytes: &[u8], stated: Option<Head>) -> Result<Segment, CliError> {
    let segment = Segment::from_json(bytes)?;
    if let Some(stated) = stated {
        check_segment_head(&segment, &stated)?;
    }
    Ok(segment)
}
