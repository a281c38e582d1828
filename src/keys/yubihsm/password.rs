//! Changing the password of the authentication key a session was opened with: what a ceremony's
//! `split-pin` step does on a YubiHSM2 (the password becomes a random one, split among
//! custodians).
//!
//! The `yubihsm` crate has no call for the device's Change Authentication Key command (and
//! firmware before 2.3 has no such command), so the key is replaced, in an order that keeps a
//! key with a known password able to log in at every moment, and never the old and new
//! passwords unknown together:
//!
//! 1. a temporary authentication key with the new password and the same capabilities, domains
//!    and delegated capabilities is put on the device, and a session opened with it;
//! 2. through that session the old key is deleted and put again, same id, label and
//!    capabilities, with the new password;
//! 3. a session is opened with it and the temporary key is deleted.
//!
//! A power cut before step 2 leaves the old password working (and a stale temporary key, which
//! the next change deletes; a ceremony resuming a split tries the new password, then the old).
//! After step 2 the new password works. Only a cut between the delete and the put of step 2
//! leaves the key absent: the device then reports an unknown authentication key, and the
//! temporary key (label [`TEMPORARY_AUTH_KEY_LABEL`], the new password rebuilt from the
//! custodians' shares) is the way back in, by hand with `yubihsm-shell`. The authentication key
//! needs `put-authentication-key` and `delete-authentication-key` (the factory key has every
//! capability).

use std::sync::Arc;

use yubihsm::{authentication, object, Capability, Credentials};

use super::connect::{Password, YubiHsm};
use super::uri::format_id;
use crate::keys::KeyError;

/// The label of the temporary authentication key of a password change.
pub const TEMPORARY_AUTH_KEY_LABEL: &str = "rootcellar password change";

impl YubiHsm {
    /// Replaces the password of the authentication key this session was opened with by `new`,
    /// and returns the device with a session opened with the new password (this one stays open
    /// but cannot re-open itself after an idle timeout, and later [`YubiHsm::open`] calls in
    /// the process reach the new one).
    pub fn change_password(&self, new: &Password) -> Result<Arc<YubiHsm>, KeyError> {
        let auth_id = self
            .uri()
            .auth_key
            .expect("a device is opened with an auth key");
        let info = self
            .client
            .get_object_info(auth_id, object::Type::AuthenticationKey)
            .map_err(|e| self.error("get object info", e))?;
        let required = Capability::PUT_AUTHENTICATION_KEY | Capability::DELETE_AUTHENTICATION_KEY;
        if !info.capabilities.contains(required) {
            return Err(KeyError::PermissionDenied {
                device: self.description().to_string(),
                operation: "change password",
                detail: format!(
                    "authentication key {} lacks put-authentication-key and delete-authentication-key",
                    format_id(auth_id)
                ),
            });
        }
        // A temporary key left by an interrupted change would keep the new (or an older)
        // password working on the side: gone first.
        for stale in self.temporary_auth_keys()? {
            if stale != auth_id {
                self.delete_auth_key(&self.client, stale)?;
            }
        }
        let temporary_id = self.free_id(object::Type::AuthenticationKey)?;
        let put = |client: &yubihsm::Client, id: u16, label: object::Label| {
            client
                .put_authentication_key(
                    id,
                    label,
                    info.domains,
                    info.capabilities,
                    info.delegated_capabilities,
                    authentication::Algorithm::YubicoAes,
                    authentication::Key::derive_from_password(new.as_bytes()),
                )
                .map_err(|e| self.error("put authentication key", e))
        };
        put(&self.client, temporary_id, temporary_label())?;
        let temporary = self.second_session(temporary_id, new)?;
        self.delete_auth_key(&temporary, auth_id)?;
        put(&temporary, auth_id, info.label.clone())?;
        let replaced = self.second_session(auth_id, new)?;
        self.delete_auth_key(&replaced, temporary_id)?;
        Ok(self.replace_session(replaced))
    }

    /// The ids of temporary authentication keys left by an interrupted password change.
    fn temporary_auth_keys(&self) -> Result<Vec<u16>, KeyError> {
        let entries = self
            .client
            .list_objects(&[
                object::Filter::Type(object::Type::AuthenticationKey),
                object::Filter::Label(temporary_label()),
            ])
            .map_err(|e| self.error("list objects", e))?;
        Ok(entries.iter().map(|e| e.object_id).collect())
    }

    fn delete_auth_key(&self, client: &yubihsm::Client, id: u16) -> Result<(), KeyError> {
        client
            .delete_object(id, object::Type::AuthenticationKey)
            .map_err(|e| self.error("delete authentication key", e))
    }

    /// A session with another authentication key, over the same connection (a USB device is
    /// claimed once).
    fn second_session(
        &self,
        auth_id: u16,
        password: &Password,
    ) -> Result<yubihsm::Client, KeyError> {
        yubihsm::Client::open(
            self.client.connector().clone(),
            Credentials::from_password(auth_id, password.as_bytes()),
            true,
        )
        .map_err(|e| self.error("open session", e))
    }
}

fn temporary_label() -> object::Label {
    object::Label::from_bytes(TEMPORARY_AUTH_KEY_LABEL.as_bytes())
        .expect("the label fits in 40 bytes")
}
