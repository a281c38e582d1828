//! Handing each custodian their new share, and recording who holds which.
//!
//! A custodian who brings an age recipient (`age1…`, the public half of a key they keep;
//! typed or scanned at the console, or `recipients.ROLE` in an answers file) gets their share
//! sealed to it and never shown: `shares/CUSTODIAN.GROUP.SET.age` in the ceremony's work
//! directory, delivered with the outputs (and in the response bundle). It is written, flushed,
//! before the token's secret changes, like every hand-out: a crash in between leaves the old
//! secret working. Its plaintext is the share as written down (`keys::share_text`), so that
//! `age -d -i KEY NAME.age` on the custodian's own machine prints what they type at the next
//! quorum ceremony; their identity never enters the appliance.
//!
//! A custodian without a recipient writes the share down from the screen: grouped, each group
//! with a check character, then typed back (echo off) until it matches; a mismatch is said and
//! the share shown again. In a rehearsal the share is also kept under
//! `STATE/rehearsal/shares/GROUP/SET/CUSTODIAN.share` (as before, so later rehearsals need no
//! typing), and a sealed one is marked there (`CUSTODIAN.sealed`) so that the rehearsal's next
//! quorum asks that custodian for it, as a real ceremony would.
//!
//! Each hand-out is journaled (`share.handout`) and returned for the step's details (the
//! transcript): the custodian, the share's number and split, its fingerprint, and the recipient
//! or how it was written down. Never the share.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::context::Context;
use super::CeremonyError;
use crate::journal::Digest as JournalDigest;
use crate::keys::Share;

/// Where sealed shares are written in the work directory, and delivered beside the outputs.
pub(super) const SEALED_DIR: &str = "shares";

/// Hands each of `custodians` their share of split `set_id` of `group` (a token label, or
/// `backup`), and returns one line per custodian for the step's details.
pub(super) fn hand_out(
    context: &mut Context<'_>,
    group: &str,
    set_id: &str,
    custodians: &[String],
    shares: &[Share],
) -> Result<Vec<String>, CeremonyError> {
    let rehearsal_set = context
        .rehearsal_shares
        .as_ref()
        .map(|dir| dir.join(group).join(set_id));
    if let Some(dir) = &rehearsal_set {
        std::fs::create_dir_all(dir).map_err(|e| CeremonyError::State {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
    }
    let mut lines = Vec::new();
    for (custodian, share) in custodians.iter().zip(shares) {
        let what = format!(
            "{custodian}: share {} of split {set_id} ({group}), fingerprint {}",
            share.index(),
            share.fingerprint()
        );
        let (line, outputs) = match context.prompter.recipient(custodian)? {
            Some(recipient) => {
                let name = format!("{custodian}.{group}.{set_id}.age");
                let sealed = seal(custodian, group, share, &recipient)?;
                let dir = context.work.join(SEALED_DIR);
                write_flushed(&dir, &name, &sealed)?;
                if let Some(set) = &rehearsal_set {
                    crate::files::write_new(
                        &set.join(format!("{custodian}.sealed")),
                        recipient.to_string().as_bytes(),
                    )?;
                }
                (
                    format!("{what}, sealed to {recipient} as {SEALED_DIR}/{name}"),
                    vec![JournalDigest::of(format!("{SEALED_DIR}/{name}"), &sealed)],
                )
            }
            None => {
                if let Some(set) = &rehearsal_set {
                    crate::files::write_new(
                        &set.join(format!("{custodian}.share")),
                        share.to_text().as_bytes(),
                    )?;
                }
                let rehearsal = rehearsal_set.is_some();
                let line = if context
                    .prompter
                    .show_share(custodian, group, share, rehearsal)?
                {
                    format!("{what}, written down at the console and typed back")
                } else {
                    format!("{what}, kept in the rehearsal's share files")
                };
                (line, vec![])
            }
        };
        context.journal("share.handout", line.clone(), vec![], outputs)?;
        lines.push(line);
    }
    Ok(lines)
}

/// What a custodian writes down or finds in their sealed file: a few `#` lines saying whose
/// share it is (skipped when typed back) and the share in groups.
pub(super) fn written_form(custodian: &str, group: &str, share: &Share) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "# rootcellar share of {custodian}: share {} of split {} ({group}), {} needed\n\
         # fingerprint {}\n\
         # Type the groups below when a ceremony asks for your share (spaces, case and line\n\
         # numbers do not matter; each group ends in a check character).\n{}\n",
        share.index(),
        share.set_id(),
        share.threshold(),
        share.fingerprint(),
        share.to_grouped().as_str()
    ))
}

/// Checks a share typed back against the one handed out: `Err` says what is wrong, for the
/// custodian (never the share).
pub(super) fn check_typed_back(share: &Share, typed: &str) -> Result<(), String> {
    match Share::parse_typed(typed) {
        Err(e) => Err(format!("What was typed back is not the share: {e}.")),
        Ok(back) if back.to_bytes() != share.to_bytes() => Err(
            "What was typed back reads as a share, but not as the one shown (the check \
             characters catch one wrong character per group, not all): compare every group."
                .into(),
        ),
        Ok(_) => Ok(()),
    }
}

/// The written form sealed to `recipient` with age.
fn seal(
    custodian: &str,
    group: &str,
    share: &Share,
    recipient: &age::x25519::Recipient,
) -> Result<Vec<u8>, CeremonyError> {
    let plain = written_form(custodian, group, share);
    crate::bundle::seal::seal_to_recipients(plain.as_bytes(), std::slice::from_ref(recipient))
        .map_err(|e| CeremonyError::Handout {
            custodian: custodian.to_string(),
            reason: e.to_string(),
        })
}

/// Writes `DIR/NAME` whole and flushed (with its directory), so that a sealed share is on disk
/// before the secret it unlocks changes.
fn write_flushed(dir: &Path, name: &str, contents: &[u8]) -> Result<PathBuf, CeremonyError> {
    let state = |e: std::io::Error| CeremonyError::State {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(state)?;
    let path = dir.join(name);
    crate::files::write_new(&path, contents)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(state)?;
    Ok(path)
}

/// Parses a recipient typed at the console or given in an answers file.
pub(super) fn parse_recipient(text: &str) -> Result<age::x25519::Recipient, String> {
    crate::bundle::seal::parse_recipient(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::split_secret;

    #[test]
    fn the_written_form_reads_back_and_only_the_same_share_passes_the_check() {
        let shares = split_secret(b"0123456789abcdef0123456789abcdef", 2, 3).unwrap();
        let written = written_form("custodian-2", "root-ca", &shares[1]);
        assert!(written.contains("share 2 of split"), "{}", written.as_str());
        assert!(written.contains(&shares[1].fingerprint()));
        assert!(!written.contains(&hex::encode(&shares[1].to_bytes()[..])));
        assert_eq!(check_typed_back(&shares[1], &written), Ok(()));
        let err = check_typed_back(&shares[1], &shares[2].to_grouped()).unwrap_err();
        assert!(err.contains("not as the one shown"), "{err}");
        let mut typo = shares[1].to_grouped().to_string();
        let at = typo.find(": ").unwrap() + 3;
        let replaced = if &typo[at..at + 1] == "0" { "1" } else { "0" };
        typo.replace_range(at..at + 1, replaced);
        let err = check_typed_back(&shares[1], &typo).unwrap_err();
        assert!(err.contains("group 1 (line 1, group 1"), "{err}");
    }

    #[test]
    fn a_sealed_share_opens_with_the_custodians_identity_to_its_written_form() {
        let shares = split_secret(b"0123456789abcdef0123456789abcdef", 2, 3).unwrap();
        let identity = age::x25519::Identity::generate();
        let sealed = seal("custodian-1", "root-ca", &shares[0], &identity.to_public()).unwrap();
        let opener = crate::bundle::seal::Opener::Identities(vec![Box::new(identity)]);
        let plain = crate::bundle::seal::unseal(&sealed, &opener, 4096).unwrap();
        let text = String::from_utf8(plain).unwrap();
        let back = Share::parse_typed(&text).unwrap();
        assert_eq!(back.to_bytes(), shares[0].to_bytes());
        let stranger = age::x25519::Identity::generate();
        let opener = crate::bundle::seal::Opener::Identities(vec![Box::new(stranger)]);
        assert!(crate::bundle::seal::unseal(&sealed, &opener, 4096).is_err());
        assert!(parse_recipient("age1notarecipient").is_err());
    }
}
