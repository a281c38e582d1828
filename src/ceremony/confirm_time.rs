//! The ceremony's time: asked at the start of every run (the first and each resume), checked
//! against the journal, the build time and the machine clock, and typed again when it is
//! further from the clock than the script allows.

use super::{CeremonyError, Prompter};
use crate::journal::Journal;
use crate::time::{self, Checked, ConfirmedTime, Reference, TimePolicy};

/// Asks for the time and checks it; the operator sees how far it is from the clock, and types it
/// again when that is more than `policy` allows. An answers file stands for the typing with its
/// `time_again`.
pub(super) fn confirm(
    prompter: &mut dyn Prompter,
    journal: &Journal,
    policy: TimePolicy,
) -> Result<ConfirmedTime, CeremonyError> {
    let reference = Reference::this_machine(journal.latest_record()?, policy);
    let candidate = prompter.confirm_time(time::whole_seconds(reference.clock))?;
    match time::check(candidate, &reference)? {
        Checked::Confirmed(confirmed) => Ok(confirmed),
        Checked::FarFromClock(far) => {
            prompter.say(&far.message());
            match prompter.type_time_again(far.time())? {
                Some(again) => Ok(far.typed_again(again)?),
                None => Err(far
                    .refuse(" (an answers file gives it as time_again)")
                    .into()),
            }
        }
    }
}
