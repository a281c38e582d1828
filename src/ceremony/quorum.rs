//! Quorum activation of a token: its PIN is replaced by a random one that nobody sees whole,
//! split M of N among the custodians (Shamir, `keys::shares`), and rebuilt in zeroized memory
//! from M shares when a later ceremony needs the token.
//!
//! `STATE/pin-sets.json` records, per token, the id of its current split (a rehearsal's
//! throwaway tokens: `STATE/rehearsal/pin-sets.json`). A share from another
//! split (an earlier ceremony, another token) is refused before any login is attempted, so a
//! stale share costs no PIN try. An entry is written as `pending` before the token's PIN is
//! changed and confirmed after, so a crash between the two is recognisable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::prompter::Prompter;
use super::CeremonyError;
use crate::keys::{combine_shares, split_secret, Pin, Share};

/// The current split of each token's PIN.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PinSets {
    #[serde(flatten)]
    tokens: BTreeMap<String, PinSet>,
    #[serde(skip)]
    path: PathBuf,
}

/// One token's split.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PinSet {
    /// The split's id (every share carries it).
    pub set_id: String,
    /// M.
    pub threshold: u8,
    /// True between recording the split and the token accepting the new PIN.
    pub pending: bool,
}

impl PinSets {
    /// Reads `DIR/pin-sets.json` (empty when absent).
    pub fn load(dir: &Path) -> Result<Self, CeremonyError> {
        let path = dir.join("pin-sets.json");
        let mut sets: PinSets = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CeremonyError::State {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PinSets::default(),
            Err(e) => {
                return Err(CeremonyError::State {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        sets.path = path;
        Ok(sets)
    }

    /// The split of `token`, if its PIN has been split.
    pub fn get(&self, token: &str) -> Option<&PinSet> {
        self.tokens.get(token)
    }

    /// Records `set` for `token`, durably (temporary file, flush, rename).
    pub fn put(&mut self, token: &str, set: PinSet) -> Result<(), CeremonyError> {
        self.tokens.insert(token.to_string(), set);
        let fail = |e: std::io::Error| CeremonyError::State {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let temp = self.path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("pin sets serialise");
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&temp).map_err(fail)?;
            file.write_all(&text).map_err(fail)?;
            file.sync_all().map_err(fail)?;
        }
        std::fs::rename(&temp, &self.path).map_err(fail)
    }
}

/// A fresh random PIN: 32 hex characters (128 bits), never shown to anyone.
pub fn random_pin() -> Pin {
    let mut bytes = Zeroizing::new([0u8; 16]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, bytes.as_mut());
    Pin::new(Zeroizing::new(hex::encode(&bytes[..])))
}

/// Splits `pin` M of N among `custodians`.
pub fn split_pin(
    pin: &Pin,
    threshold: usize,
    custodians: usize,
) -> Result<Vec<Share>, CeremonyError> {
    let bad =
        |e: crate::keys::ShareError| CeremonyError::NotConfirmed(format!("splitting the PIN: {e}"));
    let m = u8::try_from(threshold)
        .map_err(|_| CeremonyError::NotConfirmed("quorum too large".into()))?;
    let n = u8::try_from(custodians)
        .map_err(|_| CeremonyError::NotConfirmed("too many custodians".into()))?;
    split_secret(pin.expose().as_bytes(), m, n).map_err(bad)
}

/// Asks custodians, in order, for shares of `set` until `threshold` valid ones are in hand, and
/// rebuilds the token's PIN. A share that is corrupted, from another split, or given twice is
/// named and refused.
pub fn gather_pin(
    prompter: &mut dyn Prompter,
    token: &str,
    set: &PinSet,
    custodians: &[String],
    rehearsal_dir: Option<&Path>,
) -> Result<Pin, CeremonyError> {
    let secret = gather_secret(
        prompter,
        &format!("token {token:?}"),
        &set.set_id,
        set.threshold,
        custodians,
        rehearsal_dir
            .map(|d| d.join(token).join(&set.set_id))
            .as_deref(),
    )?;
    let text = std::str::from_utf8(&secret)
        .map_err(|_| CeremonyError::NotConfirmed("the rebuilt PIN is not text".into()))?;
    Ok(Pin::new(Zeroizing::new(text.to_string())))
}

/// Asks custodians, in order, for shares of split `set_id` of `what` until `threshold` valid
/// ones are in hand, and rebuilds the secret. In rehearsal the shares are read from
/// `rehearsal_set_dir/CUSTODIAN.share` instead of being typed.
pub fn gather_secret(
    prompter: &mut dyn Prompter,
    what: &str,
    set_id: &str,
    threshold: u8,
    custodians: &[String],
    rehearsal_set_dir: Option<&Path>,
) -> Result<Zeroizing<Vec<u8>>, CeremonyError> {
    let shares = gather_shares(
        prompter,
        what,
        set_id,
        threshold,
        custodians,
        rehearsal_set_dir,
    )?;
    combine_shares(&shares).map_err(|e| {
        CeremonyError::NotConfirmed(format!("the shares of {what} do not combine: {e}"))
    })
}

/// Asks custodians, in order, for shares of split `set_id` of `what` until `threshold` valid
/// ones are in hand. A share that is corrupted, from another split, or given twice is named and
/// refused.
pub fn gather_shares(
    prompter: &mut dyn Prompter,
    what: &str,
    set_id: &str,
    threshold: u8,
    custodians: &[String],
    rehearsal_set_dir: Option<&Path>,
) -> Result<Vec<Share>, CeremonyError> {
    let mut shares: Vec<Share> = Vec::new();
    prompter.say(&format!(
        "{what} is unlocked by {threshold} of its custodians' shares (split {set_id})."
    ));
    for custodian in custodians {
        if shares.len() == usize::from(threshold) {
            break;
        }
        // A rehearsal keeps the shares it showed in files; one sealed to its custodian is
        // asked of them, as in a real ceremony.
        let kept = rehearsal_set_dir.map(|dir| {
            (
                std::fs::read_to_string(dir.join(format!("{custodian}.share"))).ok(),
                dir.join(format!("{custodian}.sealed")).exists(),
            )
        });
        let share = match kept {
            Some((Some(text), _)) => {
                let text = Zeroizing::new(text);
                Share::parse_typed(&text).map_err(|e| {
                    CeremonyError::NotConfirmed(format!("the share of {custodian} is refused: {e}"))
                })?
            }
            Some((None, false)) => continue,
            Some((None, true)) | None => prompter.share(custodian)?,
        };
        if share.set_id() != set_id {
            return Err(CeremonyError::NotConfirmed(format!(
                "the share of {custodian} belongs to split {}, not to {what}'s current split {set_id}",
                share.set_id()
            )));
        }
        if shares.iter().any(|s| s.index() == share.index()) {
            return Err(CeremonyError::NotConfirmed(format!(
                "the share of {custodian} was already given (share {})",
                share.index()
            )));
        }
        shares.push(share);
    }
    if shares.len() < usize::from(threshold) {
        return Err(CeremonyError::NotConfirmed(format!(
            "only {} of the {threshold} shares needed to unlock {what}",
            shares.len()
        )));
    }
    Ok(shares)
}
