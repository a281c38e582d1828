//! `--time`, the one time flag of every command: for commands that sign or journal it is the
//! confirmed time (checked as a ceremony's is), for commands that verify it is the time to check
//! at. Without it, the machine clock, with a line on standard error saying so.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use clap::Args;
use jiff::Timestamp;
use rootcellar::journal::{Journal, JournalError};
use rootcellar::time::{self, Checked, ConfirmedTime, Reference, TimePolicy};

use super::CliError;

/// The time a command signs and journals at.
#[derive(Debug, Args, Clone, Default)]
pub struct SigningTime {
    /// The confirmed time to sign and journal at, RFC 3339 UTC (e.g. 2026-12-06T10:00:00Z);
    /// default: this machine's clock (said on standard error). Refused when earlier than the
    /// journal's latest record or this rootcellar's build.
    #[arg(long, value_name = "RFC3339")]
    time: Option<String>,
    /// The same time typed again: needed when --time is more than --clock-tolerance minutes from
    /// this machine's clock (at a terminal, it is asked for instead).
    #[arg(long, value_name = "RFC3339", requires = "time")]
    time_again: Option<String>,
    /// Minutes --time may differ from the clock without being typed again.
    #[arg(long, value_name = "MINUTES", default_value_t = TimePolicy::DEFAULT_MINUTES)]
    clock_tolerance: u32,
}

impl SigningTime {
    /// Checks the time against the clock, the build time and, when `state` holds a journal,
    /// its latest record.
    pub fn confirm(&self, state: Option<&Path>) -> Result<ConfirmedTime, CliError> {
        let latest = match state {
            Some(dir) => match Journal::open_existing(dir) {
                Ok(journal) => journal.latest_record()?,
                Err(JournalError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let reference = Reference::this_machine(latest, TimePolicy::minutes(self.clock_tolerance));
        let candidate = match &self.time {
            Some(text) => time::parse(text)?,
            None => {
                let clock = time::whole_seconds(reference.clock);
                eprintln!("rootcellar: no --time given: signing at this machine's clock, {clock}");
                clock
            }
        };
        match time::check(candidate, &reference)? {
            Checked::Confirmed(confirmed) => Ok(confirmed),
            Checked::FarFromClock(far) => {
                let again = match &self.time_again {
                    Some(text) => time::parse(text)?,
                    None if std::io::stdin().is_terminal() => {
                        eprintln!("{}", far.message());
                        eprint!("Confirm {} by typing it again: ", far.time());
                        let _ = std::io::stderr().flush();
                        let mut line = String::new();
                        std::io::stdin()
                            .lock()
                            .read_line(&mut line)
                            .map_err(|e| CliError::Usage(format!("reading the time: {e}")))?;
                        time::parse(&line)?
                    }
                    None => return Err(far.refuse(" (give it again with --time-again)").into()),
                };
                Ok(far.typed_again(again)?)
            }
        }
    }
}

/// The time a command checks at (expiry, validity); it signs nothing.
#[derive(Debug, Args, Clone, Default)]
pub struct CheckTime {
    /// The time to check at, RFC 3339 (default: this machine's clock, said on standard error).
    #[arg(long, value_name = "RFC3339")]
    time: Option<String>,
}

impl CheckTime {
    /// The time given, or the clock.
    pub fn resolve(&self) -> Result<Timestamp, CliError> {
        match &self.time {
            Some(text) => Ok(time::parse(text)?),
            None => {
                let clock = time::whole_seconds(Timestamp::now());
                eprintln!("rootcellar: no --time given: checking at this machine's clock, {clock}");
                Ok(clock)
            }
        }
    }
}
