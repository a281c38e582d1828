//! `split-pin`: the key's token gets a fresh random PIN that nobody sees whole, split M of N
//! among the custodians (quorum activation, `ceremony::quorum`).

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::Perform;
use crate::ceremony::context::{step_error, Context};
use crate::ceremony::quorum::{random_pin, split_pin, PinSet};
use crate::ceremony::script::{PinMode, Script, Step};
use crate::ceremony::CeremonyError;

/// Give the key's token a fresh random PIN and split it among the custodians (M of N).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitPin {
    /// The key whose token PIN is split.
    pub key: String,
}

impl Perform for SplitPin {
    fn keys(&self) -> Vec<&str> {
        vec![&self.key]
    }

    fn writes(&self) -> Vec<String> {
        vec![]
    }

    fn problems(&self, script: &Script) -> Vec<String> {
        let key = &self.key;
        let mut problems = Vec::new();
        if script
            .keys
            .get(key)
            .is_some_and(|k| k.pin != PinMode::Shares)
        {
            problems.push(format!(
                "keys.{key}.pin must be \"shares\" to split its PIN"
            ));
        }
        if script.roles.quorum.is_none() {
            problems.push("splitting a PIN needs roles.quorum and roles.custodians".into());
        }
        problems
    }

    fn perform(
        &self,
        context: &mut Context<'_>,
        step: &Step,
        _scratch: &Path,
    ) -> Result<Vec<String>, CeremonyError> {
        let fail = step_error(step);
        let uri = context.key_uri(&self.key)?;
        let token_label = uri.device();
        let old = context
            .pins
            .get(&token_label)
            .cloned()
            .ok_or_else(|| fail(format!("token {token_label:?} was not unlocked").into()))?;
        let custodians = context.script.roles.custodians.clone();
        let threshold = context.script.roles.quorum.unwrap_or(custodians.len());
        let new = random_pin();
        let shares = split_pin(&new, threshold, custodians.len())?;
        let set_id = shares[0].set_id();
        // Shares are handed out before the token's PIN changes: a crash in between leaves
        // the old PIN working and the undelivered split unused.
        let handed_out = context.deliver_shares(&token_label, &set_id, &custodians, &shares)?;
        let mut set = PinSet {
            set_id: set_id.clone(),
            threshold: threshold as u8,
            pending: true,
        };
        context.pin_sets.put(&token_label, set.clone())?;
        uri.change_secret(&context.hsm, &old, &new)?;
        set.pending = false;
        context.pin_sets.put(&token_label, set)?;
        context.pins.insert(token_label.clone(), Arc::new(new));
        let mut details = vec![format!(
            "{token_label}: {} replaced by a random one, split {threshold} of {} (split {set_id})",
            uri.secret_name(),
            custodians.len()
        )];
        details.extend(handed_out);
        Ok(details)
    }
}
