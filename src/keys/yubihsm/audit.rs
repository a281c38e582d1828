//! The device's own audit log (`Get Log Entries`), for a witness to match against rootcellar's
//! journal.
//!
//! A YubiHSM2 keeps the last entries (62 on current firmware) of what it was asked to do: the
//! command, the authentication key of the session, the keys involved, the result and a tick
//! count. Each entry carries the first 16 bytes of SHA-256 over its own 16 bytes (big-endian
//! fields) and the previous entry's digest, so the entries form a chain that
//! [`verify_audit_chain`] checks. At the end of a ceremony the runner reads the log with
//! [`audit_log`], records it, and marks it read with [`mark_audit_log_read`]; with the device's
//! `force-audit` option on, the device refuses to work once unread entries fill the log, so
//! nothing it does goes unrecorded.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::connect::YubiHsm;
use crate::keys::KeyError;

/// One entry of the device's log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// The entry's number (wraps at 65535).
    pub item: u16,
    /// The command, in the device's name (`sign-ecdsa`, `create-session`, …).
    pub command: String,
    /// The command's code.
    pub command_code: u8,
    /// Length of the command.
    pub length: u16,
    /// The authentication key of the session (0xffff when none).
    pub session_key: u16,
    /// The key the command acted on (0xffff when none).
    pub target_key: u16,
    /// A second key involved (the wrap key of an export, 0xffff when none).
    pub second_key: u16,
    /// The result code: the command code with bit 7 set on success, an error code otherwise.
    pub result: u8,
    /// Whether the command succeeded.
    pub succeeded: bool,
    /// The device's tick count when the command ran.
    pub tick: u32,
    /// First 16 bytes of SHA-256(this entry's 16 bytes ‖ the previous entry's digest), hex.
    pub digest: String,
}

impl AuditEntry {
    /// The 16 bytes the device hashes for this entry: every field big-endian, in order.
    fn preimage(&self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[0..2].copy_from_slice(&self.item.to_be_bytes());
        bytes[2] = self.command_code;
        bytes[3..5].copy_from_slice(&self.length.to_be_bytes());
        bytes[5..7].copy_from_slice(&self.session_key.to_be_bytes());
        bytes[7..9].copy_from_slice(&self.target_key.to_be_bytes());
        bytes[9..11].copy_from_slice(&self.second_key.to_be_bytes());
        bytes[11] = self.result;
        bytes[12..16].copy_from_slice(&self.tick.to_be_bytes());
        bytes
    }

    /// Whether this entry's digest follows from `previous`'s.
    pub fn follows(&self, previous: &AuditEntry) -> bool {
        let Ok(previous_digest) = hex::decode(&previous.digest) else {
            return false;
        };
        let mut hasher = Sha256::new();
        hasher.update(self.preimage());
        hasher.update(previous_digest);
        hex::encode(&hasher.finalize()[..16]) == self.digest
    }
}

/// Checks the digest chain of `entries` (in the device's order), starting from `previous` when
/// the entry before the first is known (from an earlier read, kept in the journal). Returns
/// the numbers of the entries whose digest does not follow: empty when the chain is intact.
pub fn verify_audit_chain(entries: &[AuditEntry], previous: Option<&AuditEntry>) -> Vec<u16> {
    let mut broken = Vec::new();
    let mut last = previous;
    for entry in entries {
        if let Some(prev) = last {
            if !entry.follows(prev) {
                broken.push(entry.item);
            }
        }
        last = Some(entry);
    }
    broken
}

/// What the device's log holds right now.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuditLog {
    /// The device's serial number.
    pub device_serial: String,
    /// Boots that could not be logged because the log was full (with force-audit on).
    pub unlogged_boot_events: u16,
    /// Authentications that could not be logged because the log was full.
    pub unlogged_auth_events: u16,
    /// The entries, oldest first.
    pub entries: Vec<AuditEntry>,
    /// Entries whose digest does not follow from the previous entry's (see
    /// [`verify_audit_chain`]); empty when the chain is intact.
    pub chain_breaks: Vec<u16>,
}

/// How many times one command appears in the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OperationCount {
    /// Runs that succeeded.
    pub succeeded: u32,
    /// Runs that failed.
    pub failed: u32,
}

/// Counts of operations in the log: what a witness compares with rootcellar's journal (for
/// example: `sign-ecdsa` succeeded 4 times, as many signatures as the journal records).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AuditSummary {
    /// The device's serial number.
    pub device_serial: String,
    /// The first entry counted.
    pub first_item: Option<u16>,
    /// The last entry counted.
    pub last_item: Option<u16>,
    /// Counts per command name, sorted by name.
    pub operations: BTreeMap<String, OperationCount>,
    /// Boots not logged.
    pub unlogged_boot_events: u16,
    /// Authentications not logged.
    pub unlogged_auth_events: u16,
    /// Whether the digest chain of the counted entries is intact.
    pub chain_intact: bool,
}

impl AuditLog {
    /// Counts every entry in the log.
    pub fn summary(&self) -> AuditSummary {
        self.summarize(|_| true)
    }

    /// Counts the entries after `item` (the last one counted at an earlier read, kept in the
    /// journal): what happened on the device since then.
    pub fn summary_after(&self, item: u16) -> AuditSummary {
        // Entry numbers wrap at 65535; the log holds far fewer entries than half of that.
        self.summarize(|entry| {
            let distance = entry.item.wrapping_sub(item);
            distance != 0 && distance < 0x8000
        })
    }

    fn summarize(&self, counted: impl Fn(&AuditEntry) -> bool) -> AuditSummary {
        let mut summary = AuditSummary {
            device_serial: self.device_serial.clone(),
            unlogged_boot_events: self.unlogged_boot_events,
            unlogged_auth_events: self.unlogged_auth_events,
            chain_intact: true,
            ..Default::default()
        };
        for entry in self.entries.iter().filter(|e| counted(e)) {
            summary.first_item.get_or_insert(entry.item);
            summary.last_item = Some(entry.item);
            let count = summary.operations.entry(entry.command.clone()).or_default();
            if entry.succeeded {
                count.succeeded += 1;
            } else {
                count.failed += 1;
            }
            if self.chain_breaks.contains(&entry.item) {
                summary.chain_intact = false;
            }
        }
        summary
    }

    /// The JSON form the journal records.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("plain data serializes")
    }
}

impl AuditSummary {
    /// The lines printed in the transcript for the witness.
    pub fn to_text(&self) -> String {
        let mut text = format!("YubiHSM2 {} audit log", self.device_serial);
        match (self.first_item, self.last_item) {
            (Some(first), Some(last)) => {
                let _ = writeln!(text, ", entries {first} to {last}:");
            }
            _ => text.push_str(": no entries\n"),
        }
        for (command, count) in &self.operations {
            let _ = writeln!(
                text,
                "  {command:<32} {:>5} succeeded {:>5} failed",
                count.succeeded, count.failed
            );
        }
        if self.unlogged_boot_events > 0 || self.unlogged_auth_events > 0 {
            let _ = writeln!(
                text,
                "  NOT LOGGED (log full): {} boot(s), {} authentication(s)",
                self.unlogged_boot_events, self.unlogged_auth_events
            );
        }
        text.push_str(if self.chain_intact {
            "  digest chain: intact\n"
        } else {
            "  digest chain: BROKEN (entries altered, missing or out of order)\n"
        });
        text
    }
}

/// `SignEcdsa` becomes `sign-ecdsa`.
fn command_name(code: yubihsm::command::Code) -> String {
    let debug = format!("{code:?}");
    let mut name = String::with_capacity(debug.len() + 4);
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('-');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

/// Reads the device's log. The authentication key needs `get-log-entries`.
pub fn audit_log(device: &YubiHsm) -> Result<AuditLog, KeyError> {
    let log = device
        .client
        .get_log_entries()
        .map_err(|e| device.error("get log entries", e))?;
    let entries: Vec<AuditEntry> = log
        .entries
        .iter()
        .map(|e| AuditEntry {
            item: e.item,
            command: command_name(e.cmd),
            command_code: e.cmd.to_u8(),
            length: e.length,
            session_key: e.session_key,
            target_key: e.target_key,
            second_key: e.second_key,
            result: e.result.to_u8(),
            succeeded: e.result.is_success(),
            tick: e.tick,
            digest: hex::encode(e.digest.as_ref()),
        })
        .collect();
    let chain_breaks = verify_audit_chain(&entries, None);
    Ok(AuditLog {
        device_serial: device.serial().to_string(),
        unlogged_boot_events: log.unlogged_boot_events,
        unlogged_auth_events: log.unlogged_auth_events,
        entries,
        chain_breaks,
    })
}

/// Tells the device that the entries up to `item` are recorded (`Set Log Index`), so that with
/// force-audit on it keeps working. The authentication key needs `get-log-entries` (named
/// `audit` in Yubico's command reference).
pub fn mark_audit_log_read(device: &YubiHsm, item: u16) -> Result<(), KeyError> {
    device
        .client
        .set_log_index(item)
        .map_err(|e| device.error("set log index", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a chain the way the device does, from an arbitrary first digest.
    fn chain(commands: &[(u8, bool)]) -> Vec<AuditEntry> {
        let mut entries: Vec<AuditEntry> = Vec::new();
        let mut previous = [0x5au8; 16];
        for (i, &(code, ok)) in commands.iter().enumerate() {
            let mut entry = AuditEntry {
                item: 100 + i as u16,
                command: command_name(yubihsm::command::Code::from_u8(code).unwrap()),
                command_code: code,
                length: 10,
                session_key: 1,
                target_key: 0x0102,
                second_key: 0xffff,
                result: if ok { code | 0x80 } else { 0x7f },
                succeeded: ok,
                tick: 1000 + i as u32,
                digest: String::new(),
            };
            let mut hasher = Sha256::new();
            hasher.update(entry.preimage());
            hasher.update(previous);
            previous.copy_from_slice(&hasher.finalize()[..16]);
            entry.digest = hex::encode(previous);
            entries.push(entry);
        }
        entries
    }

    #[test]
    fn chain_verifies_and_a_changed_or_dropped_entry_breaks_it() {
        let entries = chain(&[(0x03, true), (0x56, true), (0x56, false), (0x58, true)]);
        assert!(verify_audit_chain(&entries, None).is_empty());
        assert!(verify_audit_chain(&entries[2..], Some(&entries[1])).is_empty());
        let mut altered = entries.clone();
        altered[1].target_key = 0x0103;
        assert_eq!(verify_audit_chain(&altered, None), [101]);
        let mut dropped = entries.clone();
        dropped.remove(2);
        assert_eq!(verify_audit_chain(&dropped, None), [103]);
    }

    #[test]
    fn summary_counts_operations_since_a_mark() {
        let entries = chain(&[(0x03, true), (0x56, true), (0x56, true), (0x56, false)]);
        let log = AuditLog {
            device_serial: "0123456789".into(),
            unlogged_boot_events: 0,
            unlogged_auth_events: 0,
            chain_breaks: verify_audit_chain(&entries, None),
            entries,
        };
        let all = log.summary();
        assert_eq!(all.first_item, Some(100));
        assert_eq!(
            all.operations["sign-ecdsa"],
            OperationCount {
                succeeded: 2,
                failed: 1
            }
        );
        assert_eq!(all.operations["create-session"].succeeded, 1);
        assert!(all.chain_intact);
        let since = log.summary_after(101);
        assert_eq!(since.first_item, Some(102));
        assert_eq!(since.operations.len(), 1);
        let text = since.to_text();
        assert!(text.contains("entries 102 to 103"), "{text}");
        assert!(text.contains("sign-ecdsa"), "{text}");
        assert!(text.contains("digest chain: intact"), "{text}");
    }

    #[test]
    fn command_names_are_kebab_case() {
        assert_eq!(
            command_name(yubihsm::command::Code::GenerateAsymmetricKey),
            "generate-asymmetric-key"
        );
        assert_eq!(
            command_name(yubihsm::command::Code::SignEcdsa),
            "sign-ecdsa"
        );
    }
}
