//! What a YubiHSM2 enforces of a key's protection. Its answers are native: an object's
//! capabilities are fixed when it is made (there is no command to change them), and there is no
//! command to copy an object. A key leaves the device only through Export Wrapped, under a wrap
//! key whose delegated capabilities cover the key's, and a wrap key can be put only by an
//! authentication key with `put-wrap-key` that delegates `exportable-under-wrap`. So the
//! equivalent of PKCS#11's wrap-with-trusted holds exactly when the authentication key in use
//! cannot make such a wrap key: otherwise anyone holding its password can export an
//! `exportable-under-wrap` key under a wrap key of their own.

use yubihsm::{object, Capability};

use super::connect::YubiHsm;
use super::lookup::capability_names;
use super::uri::format_id;
use crate::keys::{Enforcement, KeyError};

impl YubiHsm {
    /// What the device enforces, for the authentication key this session uses (read from the
    /// device: its capabilities and delegated capabilities).
    pub fn enforcement(&self) -> Result<Enforcement, KeyError> {
        let auth_key = self.device_uri.auth_key.unwrap_or(1);
        let info = self
            .client
            .get_object_info(auth_key, object::Type::AuthenticationKey)
            .map_err(|e| self.error("get object info", e))?;
        let makes_wrap_keys = info.capabilities.contains(Capability::PUT_WRAP_KEY)
            && info.capabilities.contains(Capability::EXPORT_WRAPPED)
            && info
                .delegated_capabilities
                .contains(Capability::EXPORTABLE_UNDER_WRAP);
        let how = if makes_wrap_keys {
            "can put a wrap key of its own and export under it: anyone with its password can \
             export an exportable-under-wrap key"
        } else {
            "cannot both put a wrap key delegating exportable-under-wrap and export under it"
        };
        Ok(Enforcement {
            fixed_attributes: true,
            copy_refused: true,
            wrap_only_trusted: !makes_wrap_keys,
            basis: format!(
                "YubiHSM2: capabilities are fixed at birth and there is no copy command; \
                 authentication key {} (capabilities {}; delegated {}) {how}",
                format_id(auth_key),
                names(info.capabilities),
                names(info.delegated_capabilities),
            ),
        })
    }
}

fn names(capabilities: Capability) -> String {
    let names = capability_names(capabilities);
    if names.len() > 6 {
        format!("{} of them", names.len())
    } else if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
