//! The printable transcript: who was there, the confirmed time, what ran the ceremony, every
//! step with its times, fingerprints and results, the SHA-256 of every file delivered, what the
//! journal recorded of this ceremony (refused PINs, interruptions, resumes), and a signature
//! line for each person present.
//!
//! This module is the record; `markdown` writes it as `transcript.md` (the text that is signed
//! into the response bundle), `html` turns that into a printable page, `journal` reads the
//! ceremony's journal records for it.

mod html;
mod journal;
mod markdown;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::Script;
use crate::journal::Entry;

/// One step as the transcript records it.
#[derive(Clone, Debug)]
pub struct StepEntry {
    /// Step id.
    pub id: String,
    /// Step title.
    pub title: String,
    /// What was shown before it ran.
    pub preview: Vec<String>,
    /// Outputs and their SHA-256.
    pub outputs: BTreeMap<String, String>,
    /// Results: serials, fingerprints, versions.
    pub details: Vec<String>,
    /// True when an earlier run completed it.
    pub resumed: bool,
    /// When it ran (not known for a step completed by a rootcellar that did not record it).
    pub times: Option<StepTimes>,
}

/// When a step ran. The machine clock is not trusted to tell the date, but it measures time
/// elapsed: each moment is the run's confirmed time plus the machine time elapsed since the
/// operator confirmed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTimes {
    /// The run's confirmed time.
    pub confirmed_time: jiff::Timestamp,
    /// Machine time from the confirmation of the time to the step being shown, milliseconds.
    pub shown_ms: u64,
    /// … to the operator typing the step's code.
    pub confirmed_ms: u64,
    /// … to the step's completion being recorded.
    pub done_ms: u64,
}

impl StepTimes {
    /// The moment `ms` after the confirmed time, to the second.
    pub fn at(&self, ms: u64) -> jiff::Timestamp {
        let moment = self
            .confirmed_time
            .checked_add(jiff::SignedDuration::from_millis(ms as i64))
            .unwrap_or(self.confirmed_time);
        moment.round(jiff::Unit::Second).unwrap_or(moment)
    }
}

/// The machine's measure of elapsed time in one run, from the moment the time was confirmed.
#[derive(Clone, Copy, Debug)]
pub struct RunClock {
    confirmed_time: jiff::Timestamp,
    confirmed_at: Instant,
}

impl RunClock {
    /// Starts measuring: the operator has just confirmed `time`.
    pub fn start(time: crate::time::ConfirmedTime) -> Self {
        RunClock {
            confirmed_time: time.timestamp(),
            confirmed_at: Instant::now(),
        }
    }

    /// Milliseconds of machine time since the time was confirmed.
    pub fn elapsed_ms(&self) -> u64 {
        self.confirmed_at.elapsed().as_millis() as u64
    }

    /// A step's times, shown and confirmed at the given elapsed milliseconds, done now.
    pub fn step(&self, shown_ms: u64, confirmed_ms: u64) -> StepTimes {
        StepTimes {
            confirmed_time: self.confirmed_time,
            shown_ms,
            confirmed_ms,
            done_ms: self.elapsed_ms(),
        }
    }
}

/// A file delivered, by its path under the output directory, with its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileDigest {
    /// Path relative to the output directory, `/`-separated.
    pub path: String,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// What ran the ceremony.
#[derive(Clone, Debug)]
pub struct Provenance {
    /// rootcellar's version and the commit it was built from.
    pub software: String,
    /// The appliance image's manifest identity, or why there is none.
    pub image: String,
}

/// A ceremony transcript being assembled.
#[derive(Clone, Debug)]
pub struct Transcript {
    title: String,
    name: String,
    instance: String,
    time: crate::time::ConfirmedTime,
    /// When a resumed ceremony was begun (its earlier steps are dated then).
    begun: Option<jiff::Timestamp>,
    present: BTreeMap<String, Vec<String>>,
    /// The custodian roles the script names, in its order (for the signature lines).
    custodians: Vec<String>,
    rehearsal: bool,
    provenance: Provenance,
    steps: Vec<StepEntry>,
    outputs: BTreeMap<String, String>,
    /// Every file delivered (a directory output's files each by its own path).
    files: Vec<FileDigest>,
    witnesses: usize,
    journal_head: Option<String>,
    /// This ceremony's records in the journal, from its start to the end of delivery.
    journal: Vec<Entry>,
    /// What each YubiHSM2's own audit log says of this ceremony, beside rootcellar's count.
    device_audits: Vec<String>,
}

impl Transcript {
    /// Notes that this run resumes a ceremony begun at `begun`.
    pub fn resumed_from(&mut self, begun: jiff::Timestamp) {
        if begun != self.time.timestamp() {
            self.begun = Some(begun);
        }
    }

    /// Starts a transcript.
    pub fn new(
        script: &Script,
        instance: &Path,
        time: crate::time::ConfirmedTime,
        present: &BTreeMap<String, Vec<String>>,
        rehearsal: bool,
        provenance: Provenance,
    ) -> Self {
        Transcript {
            title: script.ceremony.title.clone(),
            name: script.ceremony.name.clone(),
            instance: instance
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            time,
            begun: None,
            present: present.clone(),
            custodians: script.roles.custodians.clone(),
            rehearsal,
            provenance,
            steps: vec![],
            outputs: BTreeMap::new(),
            files: vec![],
            witnesses: script
                .roles
                .witnesses
                .max(present.get("witness").map_or(0, Vec::len)),
            journal_head: None,
            journal: vec![],
            device_audits: vec![],
        }
    }

    /// Adds a YubiHSM2's audit log summary (one line per operation counted).
    pub fn device_audit(&mut self, summary: String) {
        self.device_audits.push(summary);
    }

    /// Adds a step.
    pub fn step(&mut self, entry: StepEntry) {
        self.steps.push(entry);
    }

    /// Records the outputs delivered, and every file delivered with its own SHA-256.
    pub fn finish(&mut self, outputs: &BTreeMap<String, String>, mut files: Vec<FileDigest>) {
        self.outputs = outputs.clone();
        files.sort();
        self.files = files;
    }

    /// Records the journal's head after the ceremony's last record, and this ceremony's
    /// records (refused PINs, interruptions and resumes are read from them).
    pub fn journal(&mut self, head: String, entries: Vec<Entry>) {
        self.journal_head = Some(head);
        self.journal = entries;
    }

    /// The transcript as Markdown (`transcript.md`).
    pub fn markdown(&self) -> String {
        let (body, signatures) = markdown::render(self);
        body + &signatures
    }

    /// The transcript as a self-contained printable HTML page (`transcript.html`): the same
    /// text as the Markdown, with a print stylesheet.
    pub fn html(&self) -> String {
        let (body, signatures) = markdown::render(self);
        html::page(self, &body, &signatures)
    }
}

/// The software identity a transcript (and the console's header) shows: the version and the
/// commit it was built from (see `build.rs`).
pub fn software_identity() -> String {
    format!(
        "rootcellar {} (commit {})",
        env!("CARGO_PKG_VERSION"),
        env!("ROOTCELLAR_COMMIT")
    )
}

/// The appliance image's identity, the SHA-256 of its manifest, as the console shows it; a
/// ceremony run outside the image has none and says so.
pub fn image_identity(manifest: Option<&Path>) -> String {
    use sha2::{Digest, Sha256};
    match manifest {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => format!(
                "image manifest sha256:{}",
                hex::encode(Sha256::digest(bytes))
            ),
            Err(e) => format!("image manifest {}: unreadable ({e})", path.display()),
        },
        None => "image manifest: none (not running from an appliance image)".into(),
    }
}
