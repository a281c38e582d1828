//! `progress.jsonl`: a ceremony instance's own record, one event a line, appended and flushed to
//! disk before anything it describes is reported done. Resuming reads it back.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::CeremonyError;

/// One line of `progress.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub(super) enum Event {
    Start {
        time: jiff::Timestamp,
        present: BTreeMap<String, Vec<String>>,
        rehearsal: bool,
    },
    Resume {
        /// This run's confirmed time (named `clock` by rootcellar before 0.1.1).
        #[serde(alias = "clock")]
        time: jiff::Timestamp,
        present: BTreeMap<String, Vec<String>>,
    },
    Begin {
        step: String,
    },
    /// A key about to be generated: recorded, flushed, before the token is asked.
    KeyIntent {
        step: String,
        name: String,
        intent: crate::keys::KeyIntent,
    },
    /// A certificate about to be signed under `serial`: recorded, flushed, before the key is
    /// asked to sign.
    CertificateIntent {
        step: String,
        output: String,
        serial: crate::x509::Serial,
    },
    /// The certificate of an intent, signed by an interrupted run, found, checked and kept.
    CertificateAdopted {
        step: String,
        output: String,
        serial: crate::x509::Serial,
    },
    /// An intent whose certificate was not found (or was not it): it may have been signed, it
    /// is never delivered, and the next one takes a new serial.
    CertificateDiscarded {
        step: String,
        output: String,
        serial: crate::x509::Serial,
    },
    Key {
        step: String,
        name: String,
        uri: String,
        fingerprint: String,
    },
    Complete {
        step: String,
        outputs: BTreeMap<String, String>,
        details: Vec<String>,
        preview: Vec<String>,
        /// When the step ran, for the transcript (absent in records of rootcellar 0.1.0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        times: Option<super::transcript::StepTimes>,
    },
    Finish {
        outputs: BTreeMap<String, String>,
    },
}

/// The record of one ceremony instance.
pub(super) struct Progress {
    path: PathBuf,
    events: Vec<Event>,
}

impl Progress {
    pub(super) fn open(path: PathBuf) -> Result<Self, CeremonyError> {
        let state = |reason: String| CeremonyError::State {
            path: path.clone(),
            reason,
        };
        let events = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut events = Vec::new();
                let lines: Vec<&str> = text.split_inclusive('\n').collect();
                for (i, line) in lines.iter().enumerate() {
                    // A power cut can leave the last line unterminated: it was never reported
                    // done, so it is dropped. Anything else unreadable is refused.
                    if !line.ends_with('\n') && i + 1 == lines.len() {
                        break;
                    }
                    events.push(
                        serde_json::from_str(line)
                            .map_err(|e| state(format!("line {}: {e}", i + 1)))?,
                    );
                }
                events
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(state(e.to_string())),
        };
        Ok(Progress { path, events })
    }

    pub(super) fn record(&mut self, event: Event) -> Result<(), CeremonyError> {
        let io = |e: std::io::Error| CeremonyError::State {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let mut line = serde_json::to_string(&event).expect("events serialise");
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        // Drop an unterminated tail left by a crash before appending after it.
        let len = file.metadata().map_err(io)?.len();
        let text = std::fs::read(&self.path).map_err(io)?;
        if len > 0 && text.last() != Some(&b'\n') {
            let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            file.set_len(keep as u64).map_err(io)?;
        }
        file.write_all(line.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        self.events.push(event);
        Ok(())
    }

    pub(super) fn completed(&self) -> BTreeMap<&str, &Event> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Complete { step, .. } => Some((step.as_str(), e)),
                _ => None,
            })
            .collect()
    }

    /// True once the ceremony's outputs were delivered.
    pub(super) fn finished(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::Finish { .. }))
    }

    /// The confirmed time and mode of the run that started this ceremony.
    pub(super) fn started(&self) -> Option<(jiff::Timestamp, bool)> {
        self.events.iter().find_map(|e| match e {
            Event::Start {
                time, rehearsal, ..
            } => Some((*time, *rehearsal)),
            _ => None,
        })
    }

    /// The intent recorded for key `name` of `step`, if any.
    pub(super) fn key_intent(&self, step: &str, name: &str) -> Option<&crate::keys::KeyIntent> {
        self.events.iter().find_map(|e| match e {
            Event::KeyIntent {
                step: s,
                name: n,
                intent,
            } if s == step && n == name => Some(intent),
            _ => None,
        })
    }

    /// The certificate intents of `step` for `output` not yet discarded, oldest first, each
    /// with whether it was adopted. (One at most, as a new intent follows a discard.)
    pub(super) fn open_certificate_intents(
        &self,
        step: &str,
        output: &str,
    ) -> Vec<(crate::x509::Serial, bool)> {
        let mut open: Vec<(crate::x509::Serial, bool)> = Vec::new();
        for event in &self.events {
            match event {
                Event::CertificateIntent {
                    step: s,
                    output: o,
                    serial,
                } if s == step && o == output => open.push((serial.clone(), false)),
                Event::CertificateAdopted {
                    step: s,
                    output: o,
                    serial,
                } if s == step && o == output => {
                    for (open_serial, adopted) in &mut open {
                        if open_serial == serial {
                            *adopted = true;
                        }
                    }
                }
                Event::CertificateDiscarded {
                    step: s,
                    output: o,
                    serial,
                } if s == step && o == output => {
                    open.retain(|(open_serial, _)| open_serial != serial)
                }
                _ => {}
            }
        }
        open
    }

    pub(super) fn generated_key(&self, step: &str, name: &str) -> Option<(&str, &str)> {
        self.events.iter().find_map(|e| match e {
            Event::Key {
                step: s,
                name: n,
                uri,
                fingerprint,
            } if s == step && n == name => Some((uri.as_str(), fingerprint.as_str())),
            _ => None,
        })
    }
}

pub(super) use crate::test_hooks::crash_point;
