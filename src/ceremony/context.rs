//! What a step's action gets while it runs: the script, the work directory, this run's
//! confirmed time, the console, the tokens unlocked so far and their PINs, the journal and the
//! ceremony's progress record.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::progress::Progress;
use super::prompter::Prompter;
use super::quorum::{gather_pin, PinSets};
use super::script::{PinMode, Script, Step};
use super::CeremonyError;
use crate::journal::{Digest as JournalDigest, Journal, Record};
use crate::keys::yubihsm as yubihsm_keys;
use crate::keys::{Hsm, KeyLocation, Pin, PinSource, Signer};
use crate::time::ConfirmedTime;

/// Everything a step needs while it runs.
pub(super) struct Context<'a> {
    pub(super) script: &'a Script,
    pub(super) work: PathBuf,
    /// This run's confirmed time: what every step of this run signs at. (A resumed ceremony's
    /// earlier steps keep the time of the run that did them.)
    pub(super) time: ConfirmedTime,
    pub(super) rehearsal: bool,
    pub(super) prompter: &'a mut dyn Prompter,
    pub(super) unlocked: BTreeSet<String>,
    pub(super) pin_files: BTreeMap<String, PathBuf>,
    /// PINs used to unlock tokens in this run, by token label (a PIN split needs the old one).
    pub(super) pins: BTreeMap<String, Arc<Pin>>,
    pub(super) pin_sets: PinSets,
    /// Where rehearsal shares are kept (rehearsal only).
    pub(super) rehearsal_shares: Option<PathBuf>,
    /// The appliance's audit journal: every step and key generation is recorded in it before
    /// the ceremony moves on.
    pub(super) journal: Journal,
    /// The ceremony's own record (`progress.jsonl`): a key generation step records each key
    /// the moment the token made it, and adopts it when redone.
    pub(super) progress: Progress,
    /// The instance id, as the journal names the ceremony.
    pub(super) instance: String,
    /// The operator, as the journal names the actor.
    pub(super) operator: String,
    /// The YubiHSM2 devices unlocked in this run, by device name, with the last entry of
    /// their audit log when first unlocked: the ceremony's share of the log starts after it.
    pub(super) yubihsms: BTreeMap<String, (KeyLocation, Option<u16>)>,
    /// While a step runs again after an interruption: what the interrupted run wrote, by
    /// output name, for the action to reconcile (adopt a certificate it signed, or discard it).
    pub(super) leftovers: Option<PathBuf>,
    /// The ceremony's HSM provider: every key is reached through it, and every token logged
    /// out when the ceremony ends and drops it (a rehearsal's reaches its throwaway tokens
    /// only).
    pub(super) hsm: Hsm,
}

impl Context<'_> {
    pub(super) fn journal(
        &self,
        action: &str,
        detail: String,
        inputs: Vec<JournalDigest>,
        outputs: Vec<JournalDigest>,
    ) -> Result<(), CeremonyError> {
        let mut record = Record::new(self.time, self.operator.clone(), action)
            .ceremony(self.instance.clone())
            .detail(detail);
        for digest in inputs {
            record = record.input(digest);
        }
        for digest in outputs {
            record = record.output(digest);
        }
        self.journal.append(record)?;
        Ok(())
    }

    /// A signer for script key `name` (its device unlocked first).
    pub(super) fn signer(&mut self, name: &str) -> Result<Arc<dyn Signer>, CeremonyError> {
        self.unlock(name)?;
        Ok(self.hsm.signer(&self.key_uri(name)?)?)
    }

    /// Where a script key lives, as this machine reaches it.
    pub(super) fn key_uri(&self, name: &str) -> Result<KeyLocation, CeremonyError> {
        Ok(KeyLocation::parse(&self.script.keys[name].uri)?)
    }

    /// Logs in to the device holding `name` (a PKCS#11 token, or a YubiHSM2's authentication
    /// key), asking for its secret the way the script says: typed by its holder, or rebuilt
    /// from a quorum of custodians' shares once the secret was split.
    pub(super) fn unlock(&mut self, name: &str) -> Result<(), CeremonyError> {
        let location = self.key_uri(name)?;
        let token = location.device();
        if self.unlocked.contains(&token) {
            return Ok(());
        }
        let split = self.pin_sets.get(&token).cloned();
        // A split recorded as pending may not have reached the token (a crash between the two):
        // its old secret is then still the one that works.
        let mut pin = None;
        if let Some(set) = split.as_ref().filter(|s| s.pending) {
            let rebuilt = Arc::new(gather_pin(
                self.prompter,
                &token,
                set,
                &self.script.roles.custodians,
                self.rehearsal_shares.as_deref(),
            )?);
            match location.log_in(&self.hsm, &rebuilt) {
                Ok(()) => {
                    let mut confirmed = set.clone();
                    confirmed.pending = false;
                    self.pin_sets.put(&token, confirmed)?;
                    pin = Some(rebuilt);
                }
                Err(e) if e.is_wrong_secret() => {
                    self.prompter.say(&format!(
                        "The split of {token:?} never took effect; its previous {} is used.",
                        location.secret_name()
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let pin = match pin {
            Some(pin) => pin,
            None => self.log_in_asking(name, &location, split.filter(|s| !s.pending))?,
        };
        self.pins.insert(token.clone(), pin);
        if let Some(device) = location.yubihsm(&self.hsm)? {
            let last = yubihsm_keys::audit_log(&device)?
                .entries
                .last()
                .map(|e| e.item);
            self.yubihsms.insert(token.clone(), (location, last));
        }
        self.unlocked.insert(token);
        Ok(())
    }

    /// Logs in to the device of key `name` with the secret its holder types, or the quorum of
    /// custodians rebuilds from their shares (`split`), or a rehearsal token's PIN file. A
    /// secret a person gave that the device refuses is journaled, and the person may give it
    /// again (never automatically: the device's own lockout count is the limit).
    fn log_in_asking(
        &mut self,
        name: &str,
        location: &KeyLocation,
        split: Option<super::quorum::PinSet>,
    ) -> Result<Arc<Pin>, CeremonyError> {
        let token = location.device();
        let spec = &self.script.keys[name];
        loop {
            let from_file = self.pin_files.get(&token).cloned();
            let pin = Arc::new(match (&split, &from_file) {
                (Some(set), _) => gather_pin(
                    self.prompter,
                    &token,
                    set,
                    &self.script.roles.custodians,
                    self.rehearsal_shares.as_deref(),
                )?,
                (None, Some(file)) => PinSource::File(file.clone()).read(&token)?,
                (None, None) => {
                    let holder = match (spec.pin, &spec.holder) {
                        // Before its first split, a quorum token still has the secret it
                        // was set up with.
                        (PinMode::Shares, _) => {
                            format!("operator (the initial {})", location.secret_name())
                        }
                        (PinMode::Prompt, Some(holder)) => holder.clone(),
                        (PinMode::Prompt, None) => "operator".to_string(),
                    };
                    Pin::new(self.prompter.pin(&token, location.secret_name(), &holder)?)
                }
            });
            match location.log_in(&self.hsm, &pin) {
                Ok(()) => return Ok(pin),
                // A rehearsal token's recorded PIN is not a person's to type again.
                Err(e) if e.is_wrong_secret() && from_file.is_none() => {
                    self.journal(
                        "key.login-refused",
                        format!(
                            "{token}: the {} given for key {name} was refused by the device",
                            location.secret_name()
                        ),
                        vec![],
                        vec![],
                    )?;
                    if !self.prompter.retry_secret(&token, location.secret_name())? {
                        return Err(e.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The security officer's PIN of PKCS#11 token `token`, for a backup: asked of its holder
    /// (echo off, into zeroized memory; never logged), or in rehearsal the rehearsal token's.
    pub(super) fn so_pin(&mut self, token: &str) -> Result<Pin, CeremonyError> {
        match self.pin_files.get(token) {
            Some(file) if self.rehearsal => super::rehearsal::so_pin(file),
            _ => Ok(Pin::new(self.prompter.so_pin(token)?)),
        }
    }

    /// An input or the output of a completed step, by name.
    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// Hands each custodian their share, sealed to their age recipient or written down at the
    /// console (`handout`); returns who received which share, for the step's details.
    pub(super) fn deliver_shares(
        &mut self,
        group: &str,
        set_id: &str,
        custodians: &[String],
        shares: &[crate::keys::Share],
    ) -> Result<Vec<String>, CeremonyError> {
        super::handout::hand_out(self, group, set_id, custodians, shares)
    }
}

/// A journal digest from a hex SHA-256 (of a file, or of a directory's listing).
pub(super) fn journal_digest(name: &str, hex_digest: &str) -> JournalDigest {
    let mut sha256 = [0u8; 32];
    if let Ok(bytes) = hex::decode(hex_digest) {
        if bytes.len() == 32 {
            sha256.copy_from_slice(&bytes);
        }
    }
    JournalDigest {
        name: name.to_string(),
        sha256,
    }
}

/// The error of a failed step, naming it.
pub(super) fn step_error(
    step: &Step,
) -> impl Fn(Box<dyn std::error::Error + Send + Sync>) -> CeremonyError + '_ {
    move |source| CeremonyError::Step {
        step: step.id.clone(),
        source,
    }
}
