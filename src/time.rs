//! Time at the appliance: the ceremony's confirmed time, and the checks that make it trustworthy.
//!
//! The appliance has no network time and a battery clock that may be years off, so the time that
//! goes into certificates, CRLs, TUF expiries, bundles and journal records is not the clock's:
//! it is a [`ConfirmedTime`], which only [`check`] makes, after
//!
//! - refusing a time earlier than the journal's latest record (time going backwards);
//! - refusing a time earlier than this binary was built (a clock reset to 1970, a typed 2020);
//! - asking for the time to be typed again when it is further from the machine clock than the
//!   policy allows (default 10 minutes): one of the two is wrong, and a person must say which.
//!
//! The clock is only a witness here; the people in the room are the authority. What a
//! verifier checks *against* (`tuf verify --time`, `import --time`) is a plain
//! [`jiff::Timestamp`]: it signs nothing.

use std::fmt;

use jiff::{SignedDuration, Timestamp};

/// The time a ceremony (or a one-shot command) signs at, confirmed by the operator and checked
/// against the journal, the build time and the machine clock. Whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfirmedTime {
    time: Timestamp,
    clock: Timestamp,
    retyped: bool,
}

impl ConfirmedTime {
    /// The confirmed time itself.
    pub fn timestamp(&self) -> Timestamp {
        self.time
    }

    /// What the machine clock said when the time was confirmed.
    pub fn clock(&self) -> Timestamp {
        self.clock
    }

    /// Whether it was far enough from the clock that it had to be typed again.
    pub fn retyped(&self) -> bool {
        self.retyped
    }

    /// One line for the journal and the transcript: the time, the clock, and how they compare.
    pub fn note(&self) -> String {
        let difference = self.time.duration_since(self.clock);
        if difference.is_zero() {
            format!("confirmed time {}, the machine clock", self.time)
        } else {
            format!(
                "confirmed time {}; machine clock {} ({} the clock){}",
                self.time,
                self.clock,
                relative(difference),
                if self.retyped { "; typed again" } else { "" }
            )
        }
    }
}

impl fmt::Display for ConfirmedTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.time.fmt(f)
    }
}

/// How far the confirmed time may be from the machine clock before it must be typed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimePolicy {
    /// The largest difference accepted without typing the time again.
    pub max_clock_difference: SignedDuration,
}

impl TimePolicy {
    /// The default: 10 minutes.
    pub const DEFAULT_MINUTES: u32 = 10;

    /// A policy allowing `minutes` of difference.
    pub fn minutes(minutes: u32) -> Self {
        TimePolicy {
            max_clock_difference: SignedDuration::from_mins(i64::from(minutes)),
        }
    }
}

impl Default for TimePolicy {
    fn default() -> Self {
        Self::minutes(Self::DEFAULT_MINUTES)
    }
}

/// The journal's latest record, which no confirmed time may precede.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatestRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Its time.
    pub time: Timestamp,
}

/// What a candidate time is checked against.
#[derive(Clone, Copy, Debug)]
pub struct Reference {
    /// The machine clock.
    pub clock: Timestamp,
    /// When the running binary was built (no confirmed time may precede it).
    pub build_time: Timestamp,
    /// The journal's latest record, if there is a journal.
    pub latest_record: Option<LatestRecord>,
    /// The allowed difference from the clock.
    pub policy: TimePolicy,
}

impl Reference {
    /// This machine, now: its clock and this binary's build time.
    pub fn this_machine(latest_record: Option<LatestRecord>, policy: TimePolicy) -> Self {
        Reference {
            clock: Timestamp::now(),
            build_time: build_time(),
            latest_record,
            policy,
        }
    }
}

/// When this binary was built (SOURCE_DATE_EPOCH for reproducible builds), from `build.rs`.
pub fn build_time() -> Timestamp {
    env!("ROOTCELLAR_BUILD_TIME")
        .parse::<i64>()
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Why a time was refused. Each message names both times.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeError {
    /// Earlier than the journal's latest record.
    #[error(
        "the confirmed time {time} is earlier than the journal's latest record ({seq}, at \
         {latest}): time may not go backwards; check the time with the witnesses"
    )]
    BeforeJournal {
        /// The refused time.
        time: Timestamp,
        /// The latest record's time.
        latest: Timestamp,
        /// The latest record's number.
        seq: u64,
    },
    /// Earlier than this binary was built.
    #[error(
        "the confirmed time {time} is earlier than this rootcellar was built ({build}): \
         the clock (or the time typed) is wrong"
    )]
    BeforeBuild {
        /// The refused time.
        time: Timestamp,
        /// The build time.
        build: Timestamp,
    },
    /// Too far from the machine clock, and not typed again.
    #[error(
        "the confirmed time {time} is {difference} from the machine clock {clock}, more than \
         the {limit} allowed: type the time again to confirm it{hint}"
    )]
    FarFromClock {
        /// The time given.
        time: Timestamp,
        /// The machine clock.
        clock: Timestamp,
        /// Their difference, in words.
        difference: String,
        /// The policy's limit, in words.
        limit: String,
        /// How to type it again here (e.g. " (--time-again)").
        hint: String,
    },
    /// Typed again, differently.
    #[error("the time typed again ({again}) is not the time given ({time}); nothing was done")]
    RetypedDifferently {
        /// The time given first.
        time: Timestamp,
        /// The time typed again.
        again: Timestamp,
    },
    /// Not a time at all.
    #[error("invalid time {text:?} (expected RFC 3339 UTC, e.g. 2026-11-25T10:00:00Z): {reason}")]
    Invalid {
        /// What was given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The outcome of [`check`]: confirmed, or too far from the clock to be taken without typing
/// it again.
#[derive(Debug)]
#[must_use]
pub enum Checked {
    /// Within the policy's difference from the clock.
    Confirmed(ConfirmedTime),
    /// Further from the clock than the policy allows: show [`FarFromClock::message`] and ask
    /// for the time again.
    FarFromClock(FarFromClock),
}

/// A time that passed every check but the clock's, waiting to be typed again.
#[derive(Debug)]
pub struct FarFromClock {
    time: Timestamp,
    clock: Timestamp,
    limit: SignedDuration,
}

impl FarFromClock {
    /// The time given.
    pub fn time(&self) -> Timestamp {
        self.time
    }

    /// What to show the operator before asking for the time again.
    pub fn message(&self) -> String {
        let difference = self.time.duration_since(self.clock);
        format!(
            "The time given, {}, is {} the machine clock ({}); the policy allows {}.\n\
             One of them is wrong: check with the witnesses.",
            self.time,
            relative(difference),
            self.clock,
            human(self.limit)
        )
    }

    /// Confirms the time when `again` is the same time.
    pub fn typed_again(self, again: Timestamp) -> Result<ConfirmedTime, TimeError> {
        if whole_seconds(again) != self.time {
            return Err(TimeError::RetypedDifferently {
                time: self.time,
                again,
            });
        }
        Ok(ConfirmedTime {
            time: self.time,
            clock: self.clock,
            retyped: true,
        })
    }

    /// The refusal when the time cannot be typed again; `hint` says how it could have been.
    pub fn refuse(self, hint: &str) -> TimeError {
        TimeError::FarFromClock {
            time: self.time,
            clock: self.clock,
            difference: human(self.time.duration_since(self.clock).abs()),
            limit: human(self.limit),
            hint: hint.to_string(),
        }
    }
}

/// Checks `candidate` (rounded down to whole seconds) against `reference`. Refuses a time before
/// the journal's latest record or the build time; a time too far from the clock comes back as
/// [`Checked::FarFromClock`], to be typed again.
pub fn check(candidate: Timestamp, reference: &Reference) -> Result<Checked, TimeError> {
    let time = whole_seconds(candidate);
    if let Some(latest) = reference.latest_record {
        if time < latest.time {
            return Err(TimeError::BeforeJournal {
                time,
                latest: latest.time,
                seq: latest.seq,
            });
        }
    }
    if time < reference.build_time {
        return Err(TimeError::BeforeBuild {
            time,
            build: reference.build_time,
        });
    }
    let clock = whole_seconds(reference.clock);
    let limit = reference.policy.max_clock_difference;
    if time.duration_since(clock).abs() > limit {
        return Ok(Checked::FarFromClock(FarFromClock { time, clock, limit }));
    }
    Ok(Checked::Confirmed(ConfirmedTime {
        time,
        clock,
        retyped: false,
    }))
}

/// Parses an RFC 3339 time as typed at a console or on a command line.
pub fn parse(text: &str) -> Result<Timestamp, TimeError> {
    text.trim()
        .parse()
        .map_err(|e: jiff::Error| TimeError::Invalid {
            text: text.to_string(),
            reason: e.to_string(),
        })
}

/// `t` rounded down to a whole second: certificates, TUF and the journal all count in seconds,
/// and rounding up could put a certificate's start a fraction of a second in the future.
pub fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// "3 h ahead of", "12 min behind": a time's difference from the clock, in words.
fn relative(difference: SignedDuration) -> String {
    let direction = if difference.is_negative() {
        "behind"
    } else {
        "ahead of"
    };
    format!("{} {direction}", human(difference.abs()))
}

/// A duration in words: "3 days 4 h", "12 min", "40 s".
pub fn human(d: SignedDuration) -> String {
    let sign = if d.is_negative() { "-" } else { "" };
    let total = d.as_secs().unsigned_abs();
    let (days, hours, minutes, seconds) = (
        total / 86_400,
        total % 86_400 / 3_600,
        total % 3_600 / 60,
        total % 60,
    );
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days} day{}", if days == 1 { "" } else { "s" }));
    }
    if hours > 0 {
        parts.push(format!("{hours} h"));
    }
    if minutes > 0 && days == 0 {
        parts.push(format!("{minutes} min"));
    }
    if parts.is_empty() {
        parts.push(format!("{seconds} s"));
    }
    format!("{sign}{}", parts.join(" "))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A confirmed time for unit tests: checked against a reference where the clock and the
    /// build time are the time itself, so tests can sign at a fixed time and check at it.
    pub(crate) fn confirmed_at(text: &str) -> ConfirmedTime {
        let t: Timestamp = text.parse().unwrap();
        let reference = Reference {
            clock: t,
            build_time: whole_seconds(t),
            latest_record: None,
            policy: TimePolicy::default(),
        };
        match check(t, &reference).unwrap() {
            Checked::Confirmed(c) => c,
            Checked::FarFromClock(_) => unreachable!("the clock is the time itself"),
        }
    }

    fn reference(clock: &str) -> Reference {
        Reference {
            clock: clock.parse().unwrap(),
            build_time: "2026-12-01T00:00:00Z".parse().unwrap(),
            latest_record: Some(LatestRecord {
                seq: 7,
                time: "2026-12-05T10:00:00Z".parse().unwrap(),
            }),
            policy: TimePolicy::default(),
        }
    }

    #[test]
    fn a_time_near_the_clock_is_confirmed_in_whole_seconds() {
        let r = reference("2026-12-06T12:00:00Z");
        let Checked::Confirmed(c) = check("2026-12-06T12:09:59.75Z".parse().unwrap(), &r).unwrap()
        else {
            panic!("within 10 minutes")
        };
        assert_eq!(c.to_string(), "2026-12-06T12:09:59Z");
        assert!(!c.retyped());
        assert!(
            c.note().contains("9 min ahead of the clock"),
            "{}",
            c.note()
        );
    }

    #[test]
    fn going_back_before_the_journal_or_the_build_is_refused_naming_both_times() {
        let r = reference("2026-12-06T12:00:00Z");
        let err = check("2026-12-05T09:59:59Z".parse().unwrap(), &r).unwrap_err();
        assert_eq!(
            err,
            TimeError::BeforeJournal {
                time: "2026-12-05T09:59:59Z".parse().unwrap(),
                latest: "2026-12-05T10:00:00Z".parse().unwrap(),
                seq: 7
            }
        );
        let text = err.to_string();
        assert!(text.contains("2026-12-05T09:59:59Z") && text.contains("2026-12-05T10:00:00Z"));

        let mut r = r;
        r.latest_record = None;
        r.clock = "1970-01-01T00:00:05Z".parse().unwrap();
        let err = check("2020-01-01T00:00:00Z".parse().unwrap(), &r).unwrap_err();
        assert!(matches!(err, TimeError::BeforeBuild { .. }), "{err}");
        assert!(err.to_string().contains("2026-12-01T00:00:00Z"), "{err}");
    }

    #[test]
    fn far_from_the_clock_must_be_typed_again_and_the_same() {
        let r = reference("2026-12-06T12:00:00Z");
        let given: Timestamp = "2026-12-06T15:30:00Z".parse().unwrap();
        let far = || match check(given, &r).unwrap() {
            Checked::FarFromClock(far) => far,
            Checked::Confirmed(_) => panic!("3 h 30 min from the clock was taken as is"),
        };
        let message = far().message();
        assert!(message.contains("3 h 30 min ahead of"), "{message}");
        assert!(message.contains("2026-12-06T12:00:00Z"), "{message}");
        let err = far()
            .typed_again("2026-12-06T15:30:01Z".parse().unwrap())
            .unwrap_err();
        assert!(matches!(err, TimeError::RetypedDifferently { .. }));
        let refused = far().refuse(" (--time-again)").to_string();
        assert!(
            refused.contains("2026-12-06T15:30:00Z") && refused.contains("2026-12-06T12:00:00Z")
        );
        let confirmed = far().typed_again(given).unwrap();
        assert!(confirmed.retyped());
        assert!(
            confirmed.note().contains("typed again"),
            "{}",
            confirmed.note()
        );
        assert_eq!(confirmed.timestamp(), given);
    }

    #[test]
    fn the_build_time_is_recorded() {
        assert!(build_time() > "2026-01-01T00:00:00Z".parse::<Timestamp>().unwrap());
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(human(SignedDuration::from_secs(40)), "40 s");
        assert_eq!(human(SignedDuration::from_mins(12)), "12 min");
        assert_eq!(
            human(SignedDuration::from_secs(3 * 86_400 + 4 * 3600 + 5 * 60)),
            "3 days 4 h"
        );
    }
}
