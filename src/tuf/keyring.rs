//! The policy's key names resolved to keys: a signer in a token for an HSM URI, or a public key
//! read from a PEM file for a key held elsewhere (online snapshot and timestamp signers,
//! custodians whose public key was delivered in advance).

use std::collections::BTreeMap;

use super::metadata::TufKey;
use super::{HsmKeySource, KeySpec, Policy, Role, TufError};
use crate::keys::{Hsm, PublicKey};

/// A key the policy names, resolved.
#[derive(Clone, Debug)]
pub struct ResolvedKey {
    /// The key's name in the policy.
    pub name: String,
    /// The key as TUF lists it.
    pub key: TufKey,
    /// Where it lives: the URI (without module or PIN source), or the PEM file.
    pub location: String,
    /// The signer, for a key in a token.
    pub signer: Option<HsmKeySource>,
}

/// Resolves the keys named `names`: opens each HSM key (a login per token) and reads each PEM.
/// Refuses anything but ECDSA P-256.
pub(crate) fn resolve(
    policy: &Policy,
    names: &[String],
    hsm: &Hsm,
) -> Result<BTreeMap<String, ResolvedKey>, TufError> {
    let mut resolved = BTreeMap::new();
    for name in names {
        if resolved.contains_key(name) {
            continue;
        }
        let key = match policy.key_spec(name) {
            Some(KeySpec::Hsm(location)) => {
                let signer = hsm
                    .signer(location)
                    .map_err(|source| TufError::KeyUnavailable {
                        name: name.clone(),
                        uri: location.without_query(),
                        source: Box::new(source),
                    })?;
                let source = HsmKeySource::new(name.clone(), signer)?;
                let key = TufKey::from_public(source.public_key())
                    .expect("HsmKeySource holds P-256 keys only");
                ResolvedKey {
                    name: name.clone(),
                    key,
                    location: source.uri(),
                    signer: Some(source),
                }
            }
            Some(KeySpec::PublicKeyFile(path)) => {
                let unreadable = |reason: String| TufError::PublicKeyUnreadable {
                    name: name.clone(),
                    path: path.clone(),
                    reason,
                };
                let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
                let public = PublicKey::from_spki(&bytes).map_err(|e| unreadable(e.to_string()))?;
                let key = TufKey::from_public(&public).map_err(|algorithm| {
                    TufError::UnsupportedKeyAlgorithm {
                        name: name.clone(),
                        uri: path.display().to_string(),
                        algorithm,
                    }
                })?;
                ResolvedKey {
                    name: name.clone(),
                    key,
                    location: path.display().to_string(),
                    signer: None,
                }
            }
            None => {
                return Err(TufError::PolicyInvalid {
                    file: policy.file().to_path_buf(),
                    field: format!("keys.{name}"),
                    problem: "is not defined".into(),
                })
            }
        };
        resolved.insert(name.clone(), key);
    }
    Ok(resolved)
}

/// Resolves every key of the policy and refuses two names for one key within a role.
pub(crate) fn resolve_all(
    policy: &Policy,
    hsm: &Hsm,
) -> Result<BTreeMap<String, ResolvedKey>, TufError> {
    let keys = resolve(policy, &policy.key_names(), hsm)?;
    for role in Role::ALL {
        let mut ids: BTreeMap<&str, &str> = BTreeMap::new();
        for name in &policy.role(role).keys {
            let id = keys[name].key.key_id.as_str();
            if let Some(first) = ids.insert(id, name) {
                return Err(TufError::SameKeyTwice {
                    role: role.name(),
                    first: first.to_string(),
                    second: name.clone(),
                    key_id: id.to_string(),
                });
            }
        }
    }
    Ok(keys)
}

/// A root's `keys` table (key id → key) and `roles` table (role → key ids and threshold).
pub(crate) type RootTables = (
    BTreeMap<String, serde_json::Value>,
    BTreeMap<Role, (Vec<String>, u64)>,
);

/// The root's `keys` and `roles` for a policy whose keys are resolved.
pub(crate) fn root_tables(policy: &Policy, keys: &BTreeMap<String, ResolvedKey>) -> RootTables {
    let mut table = BTreeMap::new();
    let mut roles = BTreeMap::new();
    for role in Role::ALL {
        let role_policy = policy.role(role);
        let mut keyids = Vec::new();
        for name in &role_policy.keys {
            let key = &keys[name].key;
            table.insert(key.key_id.clone(), key.json.clone());
            keyids.push(key.key_id.clone());
        }
        roles.insert(role, (keyids, role_policy.threshold));
    }
    (table, roles)
}

/// Key id → policy name, for the keys of `keys`.
pub(crate) fn names_by_id(keys: &BTreeMap<String, ResolvedKey>) -> BTreeMap<String, String> {
    keys.values()
        .map(|k| (k.key.key_id.clone(), k.name.clone()))
        .collect()
}
