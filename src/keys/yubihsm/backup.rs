//! Backups the YubiHSM2 way: keys leave the device only encrypted under a wrap key, and the wrap
//! key exists outside a device only as M-of-N custodian shares.
//!
//! [`backup_keys`]: a fresh AES-256 wrap key is drawn from the device's random generator mixed
//! (XOR) with the host's, put into the device for the time of the export, used to
//! `export_wrapped` each key (the device encrypts with AES-CCM; the result is the same
//! `nonce ‖ ciphertext` that `yubihsm-shell get-wrapped` writes), deleted from the device, and
//! split into shares with [`crate::keys::shares`]. The wrap key is never on the device outside
//! a backup or a restore, so no one can export keys without the custodians.
//!
//! [`restore_keys`]: M shares rebuild the wrap key, which is put into the target device for the
//! time of the import, used to `import_wrapped` each key, and deleted again. Each restored key
//! must have the public key recorded at backup time.
//!
//! The device only exports keys generated with `exportable-under-wrap` (see
//! [`KeySpec`](super::KeySpec)); a root key generated without it has no backup, by design.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use yubihsm::object;
use yubihsm::{wrap, Capability, Domain};
use zeroize::Zeroizing;

use super::connect::YubiHsm;
use super::lookup::KeyDetails;
use super::uri::format_id;
use crate::keys::shares::{check_split, combine_shares, split_secret, Share};
use crate::keys::{KeyAlgorithm, KeyError};

/// The format version of [`WrappedKeys`].
pub const BACKUP_FORMAT: u32 = 1;
const WRAP_KEY_LEN: usize = 32;
const WRAP_KEY_LABEL: &str = "rootcellar-backup";

/// One key exported from a device, encrypted under the backup's wrap key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedKey {
    /// The key's object id (it is restored under the same id).
    pub id: u16,
    /// The key's label.
    pub label: String,
    /// The signing algorithm.
    pub algorithm: KeyAlgorithm,
    /// The public key (PEM SPKI), to check that a restore brought back the same key.
    pub public_key_pem: String,
    /// `nonce ‖ ciphertext` from the device's Export Wrapped, hex.
    #[serde(with = "hex_bytes")]
    pub wrapped: Vec<u8>,
}

/// The part of a backup that may be stored and carried: without M shares of the wrap key,
/// nothing in it is usable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedKeys {
    /// [`BACKUP_FORMAT`].
    pub format: u32,
    /// The serial number of the device the keys were exported from.
    pub source_serial: String,
    /// The set id of the wrap key's shares (hex), to tell the right shares from others.
    pub share_set: String,
    /// How many shares rebuild the wrap key (M).
    pub threshold: u8,
    /// How many shares were made (N).
    pub shares: u8,
    /// First 8 bytes of SHA-256 over a fixed prefix and the wrap key, hex: checks a rebuilt wrap
    /// key before any device is touched. (It reveals nothing usable about a random 256-bit key.)
    pub wrap_key_check: String,
    /// The wrap key's delegated capabilities (the union of the keys' capabilities), as bits.
    pub delegated_capabilities: u64,
    /// The wrap key's domains (the union of the keys' domains), as bits.
    pub domains: u16,
    /// The wrapped keys.
    pub keys: Vec<WrappedKey>,
}

impl WrappedKeys {
    /// The JSON form (what the bundle module stores).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("plain data serializes")
    }

    /// Reads the JSON form, refusing unknown fields and formats.
    pub fn from_json(bytes: &[u8]) -> Result<Self, KeyError> {
        let keys: WrappedKeys = serde_json::from_slice(bytes)
            .map_err(|e| KeyError::Backup(format!("the wrapped keys do not parse: {e}")))?;
        if keys.format != BACKUP_FORMAT {
            return Err(KeyError::Backup(format!(
                "wrapped keys in format {}, this rootcellar reads format {BACKUP_FORMAT}",
                keys.format
            )));
        }
        Ok(keys)
    }
}

/// A fresh backup: the wrapped keys, and the wrap key's shares, one per custodian. The shares
/// are secret (each is to be encrypted to its custodian and then dropped); they are wiped from
/// memory when dropped.
#[derive(Debug)]
pub struct WrappedBackup {
    /// The wrapped keys.
    pub keys: WrappedKeys,
    /// The wrap key's shares, numbered 1..=N.
    pub wrap_key_shares: Vec<Share>,
}

fn wrap_key_check(key: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"rootcellar wrap key check\0");
    hasher.update(key);
    hex::encode(&hasher.finalize()[..8])
}

/// Puts `key` into `device` as a temporary wrap key, runs `work` with its id, and deletes it
/// whatever `work` returned. A failed delete is an error even after a successful `work`: a wrap
/// key left on a device lets anyone holding an authentication key export with it.
fn with_wrap_key<T>(
    device: &YubiHsm,
    key: &[u8],
    capabilities: Capability,
    delegated: Capability,
    domains: Domain,
    work: impl FnOnce(u16) -> Result<T, KeyError>,
) -> Result<T, KeyError> {
    let wrap_id = device.free_id(object::Type::WrapKey)?;
    let label = object::Label::from_bytes(WRAP_KEY_LABEL.as_bytes())
        .map_err(|e| KeyError::Backup(e.to_string()))?;
    device
        .client
        .put_wrap_key(
            wrap_id,
            label,
            domains,
            capabilities,
            delegated,
            wrap::Algorithm::Aes256Ccm,
            key.to_vec(),
        )
        .map_err(|e| device.error("put wrap key", e))?;
    let result = work(wrap_id);
    let deleted = device.client.delete_object(wrap_id, object::Type::WrapKey);
    match (result, deleted) {
        (result, Ok(())) => result,
        (result, Err(e)) => {
            let mut message = format!(
                "the temporary wrap key {id} could not be deleted from {}: {e}; delete it by hand \
                 (yubihsm-shell: delete 0 {id} wrap-key)",
                device.description(),
                id = format_id(wrap_id),
            );
            if let Err(first) = result {
                message.push_str(&format!(" (after this failure: {first})"));
            }
            Err(KeyError::Backup(message))
        }
    }
}

/// Exports `key_ids` from `device` under a fresh wrap key and splits the wrap key into `shares`
/// shares, any `threshold` of which restore the keys (`2 <= threshold <= shares <= 255`).
///
/// Refuses an empty or repeated id list, a key that does not exist, and a key without
/// `exportable-under-wrap`, before anything is put on the device. The authentication key needs
/// `put-wrap-key`, `export-wrapped`, `delete-wrap-key` and `get-pseudo-random`, and the keys'
/// domains.
pub fn backup_keys(
    device: &YubiHsm,
    key_ids: &[u16],
    threshold: u8,
    shares: u8,
) -> Result<WrappedBackup, KeyError> {
    if key_ids.is_empty() {
        return Err(KeyError::Backup("no keys named to back up".into()));
    }
    let mut sorted = key_ids.to_vec();
    sorted.sort_unstable();
    if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(KeyError::Backup(format!(
            "key {} is named twice",
            format_id(pair[0])
        )));
    }
    // Validate the split before touching the device.
    check_split(threshold, shares)?;
    let mut details: Vec<KeyDetails> = Vec::with_capacity(key_ids.len());
    let mut delegated = Capability::empty();
    let mut domains = Domain::empty();
    for &id in key_ids {
        let key = device.key_details(id)?;
        if !key.exportable_under_wrap() {
            return Err(KeyError::NotExportable {
                device: device.description().to_string(),
                key: format_id(id),
            });
        }
        let info = device
            .client
            .get_object_info(id, object::Type::AsymmetricKey)
            .map_err(|e| device.error("get object info", e))?;
        delegated |= info.capabilities;
        domains |= info.domains;
        details.push(key);
    }

    // Either random source alone suffices: the device's or the host's.
    let from_device = device
        .client
        .get_pseudo_random(WRAP_KEY_LEN)
        .map_err(|e| device.error("get pseudo random", e))?;
    if from_device.len() != WRAP_KEY_LEN {
        return Err(KeyError::Malformed(format!(
            "{} random bytes asked of the device, {} returned",
            WRAP_KEY_LEN,
            from_device.len()
        )));
    }
    let mut wrap_key = Zeroizing::new([0u8; WRAP_KEY_LEN]);
    rand::rngs::OsRng.fill_bytes(&mut wrap_key[..]);
    for (k, d) in wrap_key.iter_mut().zip(&from_device) {
        *k ^= d;
    }
    drop(Zeroizing::new(from_device));

    let wrapped = with_wrap_key(
        device,
        &wrap_key[..],
        Capability::EXPORT_WRAPPED,
        delegated,
        domains,
        |wrap_id| {
            details
                .iter()
                .map(|key| {
                    let message = device
                        .client
                        .export_wrapped(wrap_id, object::Type::AsymmetricKey, key.id)
                        .map_err(|e| device.error("export wrapped", e))?;
                    Ok(WrappedKey {
                        id: key.id,
                        label: key.label.clone(),
                        algorithm: key.algorithm,
                        public_key_pem: key.public_key.spki_pem(),
                        wrapped: message.into_vec(),
                    })
                })
                .collect::<Result<Vec<_>, KeyError>>()
        },
    )?;
    let wrap_key_shares = split_secret(&wrap_key[..], threshold, shares)?;
    Ok(WrappedBackup {
        keys: WrappedKeys {
            format: BACKUP_FORMAT,
            source_serial: device.serial().to_string(),
            share_set: wrap_key_shares[0].set_id(),
            threshold,
            shares,
            wrap_key_check: wrap_key_check(&wrap_key[..]),
            delegated_capabilities: delegated.bits(),
            domains: domains.bits(),
            keys: wrapped,
        },
        wrap_key_shares,
    })
}

/// Restores `backup` into `device` with at least M of its wrap key's shares, and describes the
/// restored keys. Each key comes back under its original id and must have its recorded public
/// key.
///
/// Refuses shares of another backup, a rebuilt wrap key that fails its check, and a key id
/// already taken on the device, before any key is imported. The authentication key needs
/// `put-wrap-key`, `import-wrapped` and `delete-wrap-key`, and the keys' domains. Should an
/// import fail part-way, the keys imported before it stay on the device (the error names the
/// one that failed) and the wrap key is deleted all the same.
pub fn restore_keys(
    device: &YubiHsm,
    backup: &WrappedKeys,
    shares: &[Share],
) -> Result<Vec<KeyDetails>, KeyError> {
    if backup.format != BACKUP_FORMAT {
        return Err(KeyError::Backup(format!(
            "wrapped keys in format {}, this rootcellar reads format {BACKUP_FORMAT}",
            backup.format
        )));
    }
    if let Some(other) = shares.iter().find(|s| s.set_id() != backup.share_set) {
        return Err(KeyError::Backup(format!(
            "share #{} belongs to split {}, but this backup's wrap key was split as {}",
            other.index(),
            other.set_id(),
            backup.share_set
        )));
    }
    let wrap_key = combine_shares(shares)?;
    if wrap_key.len() != WRAP_KEY_LEN || wrap_key_check(&wrap_key) != backup.wrap_key_check {
        return Err(KeyError::Backup(
            "the rebuilt wrap key does not match the backup's check value".into(),
        ));
    }
    for key in &backup.keys {
        if device.object_exists(key.id, object::Type::AsymmetricKey)? {
            return Err(KeyError::IdInUse {
                device: device.description().to_string(),
                kind: "an asymmetric key",
                id: format_id(key.id),
            });
        }
    }
    let delegated = Capability::from_bits_truncate(backup.delegated_capabilities);
    let domains = Domain::from_bits_truncate(backup.domains);
    let restored = with_wrap_key(
        device,
        &wrap_key,
        Capability::IMPORT_WRAPPED,
        delegated,
        domains,
        |wrap_id| {
            let mut restored = Vec::with_capacity(backup.keys.len());
            for key in &backup.keys {
                let message = wrap::Message::from_vec(key.wrapped.clone()).map_err(|e| {
                    KeyError::Backup(format!("wrapped key {}: {e}", format_id(key.id)))
                })?;
                let handle = device
                    .client
                    .import_wrapped(wrap_id, message)
                    .map_err(|e| {
                        let cause = device.error("import wrapped", e);
                        KeyError::Backup(format!("key {}: {cause}", format_id(key.id)))
                    })?;
                if handle.object_id != key.id || handle.object_type != object::Type::AsymmetricKey {
                    return Err(KeyError::Backup(format!(
                        "wrapped key {} came back as {:?} {}",
                        format_id(key.id),
                        handle.object_type,
                        format_id(handle.object_id)
                    )));
                }
                let details = device.key_details(key.id)?;
                if details.public_key.spki_pem() != key.public_key_pem {
                    return Err(KeyError::Backup(format!(
                        "restored key {} does not have the public key recorded at backup time",
                        format_id(key.id)
                    )));
                }
                restored.push(details);
            }
            Ok(restored)
        },
    )?;
    Ok(restored)
}

/// Bytes as lowercase hex in JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_keys_round_trip_through_json_and_refuse_other_formats() {
        let keys = WrappedKeys {
            format: BACKUP_FORMAT,
            source_serial: "0123456789".into(),
            share_set: "00".repeat(8),
            threshold: 2,
            shares: 3,
            wrap_key_check: wrap_key_check(&[1u8; 32]),
            delegated_capabilities: (Capability::SIGN_ECDSA | Capability::EXPORTABLE_UNDER_WRAP)
                .bits(),
            domains: 1,
            keys: vec![WrappedKey {
                id: 0x0102,
                label: "k".into(),
                algorithm: KeyAlgorithm::EcdsaP256,
                public_key_pem: "-----BEGIN PUBLIC KEY-----\n".into(),
                wrapped: vec![1, 2, 3],
            }],
        };
        let json = serde_json::to_vec(&keys.to_json()).unwrap();
        assert!(String::from_utf8_lossy(&json).contains("\"wrapped\":\"010203\""));
        assert_eq!(WrappedKeys::from_json(&json).unwrap(), keys);
        let other = String::from_utf8(json)
            .unwrap()
            .replace("\"format\":1", "\"format\":2");
        assert!(WrappedKeys::from_json(other.as_bytes()).is_err());
    }
}
