//! What the transcript reads from the journal: the ceremony's runs and what interrupted them,
//! every PIN or password a device refused, every key or certificate an interrupted run left and
//! that was adopted or discarded, and who received which share. The journal is where these
//! were recorded as they happened (a killed run writes nothing else), so the transcript tells
//! them from there rather than from the run that happens to deliver.

use crate::journal::Entry;

/// Actions told among the incidents, with what each means to a reader.
const INCIDENTS: &[(&str, &str)] = &[
    ("key.login-refused", "refused by the device"),
    (
        "key.adopt",
        "key made by an interrupted run, found whole and kept",
    ),
    ("key.discard", "left by an interrupted run, removed"),
    (
        "x509.adopt",
        "certificate signed by an interrupted run, checked and kept",
    ),
    (
        "x509.discard",
        "serial of an interrupted run whose certificate was not found: never delivered",
    ),
    ("token.object", "rehearsal token repaired"),
];

/// The ceremony's runs and incidents, in order, one line each.
pub(super) fn incidents(entries: &[Entry], instance: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut run = 0;
    // The step begun and not (yet) completed, and the last step completed.
    let mut open: Option<String> = None;
    let mut last_done: Option<String> = None;
    for entry in ours(entries, instance) {
        let r = &entry.record;
        let detail = r.detail.as_deref().unwrap_or_default();
        match r.action.as_str() {
            "ceremony.start" => {
                run += 1;
                lines.push(format!(
                    "run {run} began (record #{}, operator {}): {detail}",
                    entry.seq, r.actor
                ));
            }
            "ceremony.resume" => {
                run += 1;
                let stopped = match (&open, &last_done) {
                    (Some(step), _) => format!(
                        "during step {step} (begun, not completed: done again, keeping what it \
                         had recorded as intended)"
                    ),
                    (None, Some(step)) => format!("after step {step} was completed"),
                    (None, None) => "before any step was completed".to_string(),
                };
                lines.push(format!(
                    "run {} stopped {stopped}; it was killed, failed or was left (a completed run \
                     ends with delivery)",
                    run - 1
                ));
                lines.push(format!(
                    "run {run} resumed (record #{}, operator {}): {detail}",
                    entry.seq, r.actor
                ));
                open = None;
            }
            "ceremony.step.begin" => open = Some(detail.to_string()),
            "ceremony.step" => {
                open = None;
                last_done = Some(detail.split(':').next().unwrap_or(detail).to_string());
            }
            action => {
                if let Some((_, meaning)) = INCIDENTS.iter().find(|(a, _)| *a == action) {
                    lines.push(format!(
                        "{action} ({meaning}; record #{}, {}): {detail}",
                        entry.seq, r.time
                    ));
                }
            }
        }
    }
    lines
}

/// The shares handed out, as journaled (`share.handout`): custodian, share number and split,
/// fingerprint, and the recipient it was sealed to or how it was written down.
pub(super) fn handouts(entries: &[Entry], instance: &str) -> Vec<String> {
    ours(entries, instance)
        .filter(|e| e.record.action == "share.handout")
        .filter_map(|e| e.record.detail.clone())
        .collect()
}

/// Every record of the ceremony, one line each: number, time, action, actor, detail, and the
/// start of the record's hash (the chain ends in the head the transcript gives).
pub(super) fn records(entries: &[Entry], instance: &str) -> Vec<(String, String)> {
    ours(entries, instance)
        .map(|e| {
            let r = &e.record;
            (
                format!(
                    "#{} {} {} by {} (record SHA256:{}…)",
                    e.seq,
                    r.time,
                    r.action,
                    r.actor,
                    &hex::encode(e.hash)[..16]
                ),
                r.detail.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// The records of this ceremony instance (a segment may hold others' in between).
fn ours<'a>(entries: &'a [Entry], instance: &'a str) -> impl Iterator<Item = &'a Entry> {
    entries
        .iter()
        .filter(move |e| e.record.ceremony.as_deref() == Some(instance))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Record;

    fn entry(seq: u64, action: &str, detail: &str) -> Entry {
        let time = crate::time::tests::confirmed_at("2026-12-06T09:00:00Z");
        Entry {
            seq,
            prev: [0; 32],
            hash: [seq as u8; 32],
            record: Record::new(time, "Olga", action)
                .ceremony("root-init-1")
                .detail(detail),
        }
    }

    #[test]
    fn a_crash_a_refused_pin_and_a_resume_are_told() {
        let entries = vec![
            entry(1, "ceremony.start", "root-init"),
            entry(2, "ceremony.step.begin", "generate-keys"),
            entry(3, "ceremony.step", "generate-keys: key root-ca: …"),
            entry(4, "ceremony.step.begin", "root-certificate"),
            entry(5, "ceremony.resume", "begun at …"),
            entry(6, "key.login-refused", "root-ca: the PIN given was refused"),
            entry(7, "x509.adopt", "serial 01"),
        ];
        let lines = incidents(&entries, "root-init-1");
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert!(lines[0].starts_with("run 1 began (record #1, operator Olga)"));
        assert!(lines[1].starts_with("run 1 stopped during step root-certificate"));
        assert!(lines[2].starts_with("run 2 resumed (record #5"));
        assert!(lines[3].starts_with("key.login-refused (refused by the device; record #6"));
        assert!(lines[4].contains("serial 01"));
        // Between steps: the last one completed is named.
        let between = vec![
            entry(1, "ceremony.start", "root-init"),
            entry(2, "ceremony.step.begin", "generate-keys"),
            entry(3, "ceremony.step", "generate-keys: done"),
            entry(4, "ceremony.resume", "begun at …"),
        ];
        assert!(incidents(&between, "root-init-1")[1]
            .starts_with("run 1 stopped after step generate-keys was completed"));
        // Another ceremony's records are not this one's.
        assert!(incidents(&entries, "other").is_empty());
    }
}
