//! The TUF metadata file format as rootcellar writes and reads it: the envelope
//! (`{"signed": …, "signatures": […]}`), canonical JSON (the bytes a signature covers), keys as
//! TUF lists them, times and hashes.
//!
//! Payloads are kept as JSON values, never re-serialised from typed structs, so that a
//! signature made over a file's `signed` object still verifies after rootcellar reads it back,
//! whatever fields it carries that rootcellar does not know.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::Digest;

use super::{Role, TufError};
use crate::keys::{KeyAlgorithm, PublicKey, Signer};

/// The TUF specification version rootcellar writes.
pub(crate) const SPEC_VERSION: &str = "1.0.0";

/// Canonical JSON (OLPC, as TUF and python-tuf sign it) of `value`. Fails on numbers that are
/// not integers, which canonical JSON cannot represent.
///
/// The bytes are `olpc-cjson`'s. Metadata is almost always ASCII, for which a direct writer
/// gives the same bytes several times faster (NFC normalisation is the identity on ASCII, and
/// `olpc-cjson` buffers every object); anything else goes through `olpc-cjson` itself.
pub fn canonical_json(value: &Value) -> Result<Vec<u8>, String> {
    if all_ascii(value) {
        let mut buf = Vec::with_capacity(1024);
        write_ascii_canonical(value, &mut buf)?;
        return Ok(buf);
    }
    olpc_canonical_json(value)
}

fn olpc_canonical_json(value: &Value) -> Result<Vec<u8>, String> {
    use serde::Serialize;
    let mut buf = Vec::new();
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut buf, olpc_cjson::CanonicalFormatter::new());
    value
        .serialize(&mut serializer)
        .map_err(|e| format!("not representable as canonical JSON: {e}"))?;
    Ok(buf)
}

fn all_ascii(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_ascii(),
        Value::Array(items) => items.iter().all(all_ascii),
        Value::Object(map) => map.iter().all(|(k, v)| k.is_ascii() && all_ascii(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
    }
}

/// OLPC canonical JSON of an all-ASCII value: no whitespace, only `"` and `\` escaped, object
/// members sorted by their serialised keys (as `olpc-cjson` sorts them).
fn write_ascii_canonical(value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else {
                return Err(format!(
                    "not representable as canonical JSON: {n} is not an integer"
                ));
            }
        }
        Value::String(s) => write_ascii_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_ascii_canonical(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(Vec<u8>, &Value)> = map
                .iter()
                .map(|(k, v)| {
                    let mut key = Vec::with_capacity(k.len() + 2);
                    write_ascii_string(k, &mut key);
                    (key, v)
                })
                .collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(b'{');
            for (i, (key, member)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(key);
                out.push(b':');
                write_ascii_canonical(member, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_ascii_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// One signature of a metadata file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataSignature {
    /// The TUF key id of the signing key (lowercase hex).
    pub keyid: String,
    /// The signature, as written: hex of a DER ECDSA signature.
    pub sig: String,
}

/// A TUF metadata file: the `signed` payload and the signatures over its canonical JSON.
///
/// Signatures are kept one per key id, sorted by key id, so that the same payload signed by the
/// same keys in any order is written with its signatures in the same order.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedMetadata {
    signed: Value,
    signatures: Vec<MetadataSignature>,
    canonical: Vec<u8>,
}

impl SignedMetadata {
    /// An unsigned envelope around `signed`.
    pub fn new(signed: Value) -> Result<Self, String> {
        let canonical = canonical_json(&signed)?;
        Ok(SignedMetadata {
            signed,
            signatures: Vec::new(),
            canonical,
        })
    }

    /// Parses a metadata file. Checks the envelope's shape only (an object with `signed` and a
    /// list of `{keyid, sig}` with distinct key ids), not the payload or the signatures.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(mut envelope) = value else {
            return Err("not a JSON object".into());
        };
        let signed = envelope.remove("signed").ok_or("no \"signed\" field")?;
        if !signed.is_object() {
            return Err("\"signed\" is not an object".into());
        }
        let Some(Value::Array(list)) = envelope.remove("signatures") else {
            return Err("no \"signatures\" list".into());
        };
        let mut signatures: Vec<MetadataSignature> = Vec::with_capacity(list.len());
        for entry in list {
            let keyid = entry.get("keyid").and_then(Value::as_str);
            let sig = entry.get("sig").and_then(Value::as_str);
            let (Some(keyid), Some(sig)) = (keyid, sig) else {
                return Err("a signature lacks a \"keyid\" or \"sig\" string".into());
            };
            if signatures.iter().any(|s| s.keyid == keyid) {
                return Err(format!("two signatures by key id {keyid}"));
            }
            signatures.push(MetadataSignature {
                keyid: keyid.to_string(),
                sig: sig.to_string(),
            });
        }
        let canonical = canonical_json(&signed)?;
        Ok(SignedMetadata {
            signed,
            signatures,
            canonical,
        })
    }

    /// The payload.
    pub fn signed(&self) -> &Value {
        &self.signed
    }

    /// The bytes every signature covers: canonical JSON of the payload.
    pub fn canonical_signed(&self) -> &[u8] {
        &self.canonical
    }

    /// SHA-256 of [`SignedMetadata::canonical_signed`], lowercase hex: what custodians compare
    /// before signing, and what two signing events over the same draft share.
    pub fn payload_sha256(&self) -> String {
        sha256_hex(&self.canonical)
    }

    /// The signatures, sorted by key id.
    pub fn signatures(&self) -> &[MetadataSignature] {
        &self.signatures
    }

    /// The signature by `keyid`, if any.
    pub fn signature(&self, keyid: &str) -> Option<&MetadataSignature> {
        self.signatures.iter().find(|s| s.keyid == keyid)
    }

    /// Adds (or replaces) the signature by `keyid`.
    pub fn add_signature(&mut self, keyid: &str, der: &[u8]) {
        self.signatures.retain(|s| s.keyid != keyid);
        self.signatures.push(MetadataSignature {
            keyid: keyid.to_string(),
            sig: hex::encode(der),
        });
        self.signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
    }

    /// Drops the signature by `keyid`, if any.
    pub fn remove_signature(&mut self, keyid: &str) {
        self.signatures.retain(|s| s.keyid != keyid);
    }

    /// Signs the payload with `signer` (an ECDSA P-256 key), checks the signature, and adds it.
    /// Returns the key id. Tests and the online side use this with software keys; the appliance
    /// signs through [`crate::tuf::HsmKeySource`].
    pub fn sign_with(&mut self, signer: &dyn Signer) -> Result<String, TufError> {
        let key = TufKey::from_public(signer.public_key()).map_err(|algorithm| {
            TufError::UnsupportedKeyAlgorithm {
                name: signer.key_uri(),
                uri: signer.key_uri(),
                algorithm,
            }
        })?;
        let der = signer
            .sign(&self.canonical)
            .map_err(|source| TufError::SigningFailed {
                name: key.key_id.clone(),
                uri: signer.key_uri(),
                source: Box::new(source),
            })?;
        if !signer.public_key().verify(&self.canonical, &der) {
            return Err(TufError::BadSignature {
                name: key.key_id.clone(),
                uri: signer.key_uri(),
            });
        }
        self.add_signature(&key.key_id, &der);
        Ok(key.key_id)
    }

    /// Whether the signature by `keyid` verifies under `public`.
    pub fn verifies(&self, keyid: &str, public: &PublicKey) -> bool {
        self.signature(keyid)
            .and_then(|s| hex::decode(&s.sig).ok())
            .is_some_and(|der| public.verify(&self.canonical, &der))
    }

    /// The file as written: pretty JSON, signatures sorted by key id, a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let signatures: Vec<Value> = self
            .signatures
            .iter()
            .map(|s| json!({"keyid": s.keyid, "sig": s.sig}))
            .collect();
        let envelope = json!({"signed": self.signed, "signatures": signatures});
        let mut bytes = serde_json::to_vec_pretty(&envelope).expect("JSON values serialise");
        bytes.push(b'\n');
        bytes
    }

    /// The payload's `_type`.
    pub fn role_type(&self) -> Option<&str> {
        self.signed.get("_type").and_then(Value::as_str)
    }

    /// The payload's `version`.
    pub fn version(&self) -> Option<u64> {
        self.signed.get("version").and_then(Value::as_u64)
    }

    /// The payload's `expires`, when it is in TUF's form.
    pub fn expires(&self) -> Option<Timestamp> {
        self.signed
            .get("expires")
            .and_then(Value::as_str)
            .and_then(parse_time)
    }
}

/// A TUF key: the JSON a root lists it as, its key id, and the public key.
#[derive(Clone, Debug, PartialEq)]
pub struct TufKey {
    /// The TUF key id: SHA-256 of the key's canonical JSON, lowercase hex.
    pub key_id: String,
    /// The key as root metadata lists it (`ecdsa`, `ecdsa-sha2-nistp256`, PEM SPKI).
    pub json: Value,
    /// The public key.
    pub public: PublicKey,
}

impl TufKey {
    /// The TUF form of an ECDSA P-256 key; any other algorithm is returned as its name.
    pub fn from_public(public: &PublicKey) -> Result<TufKey, &'static str> {
        if public.algorithm() != KeyAlgorithm::EcdsaP256 {
            return Err(public.algorithm().name());
        }
        // The same JSON tough writes, so that key ids agree with tough's.
        let key = tough::schema::key::Key::Ecdsa {
            keyval: tough::schema::key::EcdsaKey {
                public: public.point().to_vec().into(),
                _extra: HashMap::new(),
            },
            scheme: tough::schema::key::EcdsaScheme::EcdsaSha2Nistp256,
            _extra: HashMap::new(),
        };
        let json = serde_json::to_value(&key).expect("a TUF key serialises to JSON");
        let key_id = sha256_hex(&canonical_json(&json).expect("a key has no floats"));
        Ok(TufKey {
            key_id,
            json,
            public: public.clone(),
        })
    }
}

/// Reads the public key a root lists, if it is one rootcellar can verify: ECDSA P-256 with the
/// `ecdsa-sha2-nistp256` scheme and a PEM SubjectPublicKeyInfo. Any other key counts for nothing.
pub(crate) fn parse_tuf_key(json: &Value) -> Option<PublicKey> {
    let keytype = json.get("keytype")?.as_str()?;
    let scheme = json.get("scheme")?.as_str()?;
    if !matches!(keytype, "ecdsa" | "ecdsa-sha2-nistp256") || scheme != "ecdsa-sha2-nistp256" {
        return None;
    }
    let pem = json.get("keyval")?.get("public")?.as_str()?;
    let public = PublicKey::from_spki(pem.as_bytes()).ok()?;
    (public.algorithm() == KeyAlgorithm::EcdsaP256).then_some(public)
}

/// A time as TUF writes it: whole seconds, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn format_time(time: Timestamp) -> String {
    crate::time::whole_seconds(time)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Parses a time in exactly TUF's form (`YYYY-MM-DDTHH:MM:SSZ`), as python-tuf does.
pub(crate) fn parse_time(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    let shaped = b.len() == 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'Z';
    if !shaped {
        return None;
    }
    text.parse().ok()
}

/// `now` truncated to whole seconds plus `days`.
pub(crate) fn expiry_after(now: Timestamp, days: u32) -> Option<Timestamp> {
    crate::time::whole_seconds(now)
        .checked_add(jiff::SignedDuration::from_hours(i64::from(days) * 24))
        .ok()
}

/// SHA-256, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The digest of `bytes` under a hash algorithm TUF metadata may name, lowercase hex; `None`
/// for an algorithm rootcellar does not implement.
pub(crate) fn hash_hex(algorithm: &str, bytes: &[u8]) -> Option<String> {
    Some(match algorithm {
        "sha224" => hex::encode(sha2::Sha224::digest(bytes)),
        "sha256" => hex::encode(sha2::Sha256::digest(bytes)),
        "sha384" => hex::encode(sha2::Sha384::digest(bytes)),
        "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
        _ => return None,
    })
}

/// How a parent lists a metadata file (`meta` of timestamp and snapshot).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct MetaFile {
    pub version: u64,
    #[serde(default)]
    pub length: Option<u64>,
    #[serde(default)]
    pub hashes: Option<BTreeMap<String, String>>,
}

impl MetaFile {
    /// The listing of `bytes` at `version`: length and SHA-256 included.
    pub fn of(version: u64, bytes: &[u8]) -> Value {
        json!({
            "version": version,
            "length": bytes.len(),
            "hashes": {"sha256": sha256_hex(bytes)},
        })
    }
}

/// A role's keys and threshold as root lists them.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct RoleKeys {
    pub keyids: Vec<String>,
    pub threshold: u64,
}

/// The root payload fields rootcellar reads.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct RootFields {
    #[serde(rename = "_type")]
    pub kind: String,
    pub spec_version: String,
    #[serde(default)]
    pub consistent_snapshot: Option<bool>,
    pub version: u64,
    pub expires: String,
    pub keys: BTreeMap<String, Value>,
    pub roles: BTreeMap<String, RoleKeys>,
    /// The rehearsal mark ([`super::policy::REHEARSAL_FIELD`]), when the root carries it.
    #[serde(rename = "x-rootcellar-rehearsal", default)]
    pub rehearsal: Option<Value>,
}

/// The timestamp and snapshot payload fields rootcellar reads.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct MetaListFields {
    #[serde(rename = "_type")]
    pub kind: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    pub meta: BTreeMap<String, MetaFile>,
}

/// One target as targets metadata lists it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub(crate) struct TargetFields {
    pub length: u64,
    pub hashes: BTreeMap<String, String>,
    #[serde(default)]
    pub custom: Option<Value>,
}

/// The targets payload fields rootcellar reads.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct TargetsFields {
    #[serde(rename = "_type")]
    pub kind: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    pub targets: BTreeMap<String, TargetFields>,
    #[serde(default)]
    pub delegations: Option<Value>,
}

/// A root payload.
pub(crate) fn root_payload(
    version: u64,
    expires: Timestamp,
    keys: &BTreeMap<String, Value>,
    roles: &BTreeMap<Role, (Vec<String>, u64)>,
    rehearsal: bool,
) -> Value {
    let keys: Map<String, Value> = keys.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let roles: Map<String, Value> = roles
        .iter()
        .map(|(role, (keyids, threshold))| {
            (
                role.name().to_string(),
                json!({"keyids": keyids, "threshold": threshold}),
            )
        })
        .collect();
    let mut payload = json!({
        "_type": "root",
        "spec_version": SPEC_VERSION,
        "consistent_snapshot": true,
        "version": version,
        "expires": format_time(expires),
        "keys": keys,
        "roles": roles,
    });
    if rehearsal {
        payload[super::policy::REHEARSAL_FIELD] = json!(super::policy::REHEARSAL_MARK);
    }
    payload
}

/// A targets payload listing `targets` (name → `{length, hashes, custom?}`).
pub(crate) fn targets_payload(
    version: u64,
    expires: Timestamp,
    targets: &BTreeMap<String, Value>,
) -> Value {
    let targets: Map<String, Value> = targets
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    json!({
        "_type": "targets",
        "spec_version": SPEC_VERSION,
        "version": version,
        "expires": format_time(expires),
        "targets": targets,
    })
}

/// A snapshot payload listing the targets metadata file.
pub(crate) fn snapshot_payload(version: u64, expires: Timestamp, targets_meta: Value) -> Value {
    json!({
        "_type": "snapshot",
        "spec_version": SPEC_VERSION,
        "version": version,
        "expires": format_time(expires),
        "meta": {"targets.json": targets_meta},
    })
}

/// A timestamp payload listing the snapshot metadata file.
pub(crate) fn timestamp_payload(version: u64, expires: Timestamp, snapshot_meta: Value) -> Value {
    json!({
        "_type": "timestamp",
        "spec_version": SPEC_VERSION,
        "version": version,
        "expires": format_time(expires),
        "meta": {"snapshot.json": snapshot_meta},
    })
}

/// A target's entry in targets metadata.
pub(crate) fn target_entry(bytes: &[u8], custom: Option<&Value>) -> Value {
    let mut entry = json!({
        "length": bytes.len(),
        "hashes": {"sha256": sha256_hex(bytes)},
    });
    if let Some(custom) = custom {
        entry["custom"] = custom.clone();
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_refuses_floats() {
        let value = json!({"b": 1, "a": {"d": "x\"y", "c": [true, null]}});
        assert_eq!(
            canonical_json(&value).unwrap(),
            br#"{"a":{"c":[true,null],"d":"x\"y"},"b":1}"#
        );
        assert!(canonical_json(&json!({"f": 1.5})).is_err());
    }

    #[test]
    fn the_ascii_writer_gives_olpc_cjson_bytes() {
        let values = [
            json!({"b": 1, "a": {"d": "x\"y\\z", "c": [true, null, -3, 18446744073709551615u64]}}),
            // Keys whose order differs once quoted: "a!" sorts before "a" as `"a!"` < `"a"`.
            json!({"a": 1, "a!": 2, "a ": 3, "a\u{1}": 4, "a\n": 5, "": 6, "ab": [{}, []]}),
            json!("tab\there, newline\n, bell\u{7}, slash /"),
            json!([]),
            json!({"keyval": {"public": "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"}}),
        ];
        for value in values {
            assert!(all_ascii(&value));
            let mut fast = Vec::new();
            write_ascii_canonical(&value, &mut fast).unwrap();
            assert_eq!(fast, olpc_canonical_json(&value).unwrap(), "{value}");
        }
        // Beyond ASCII, olpc-cjson itself (NFC normalisation included).
        let decomposed = json!({"name": "e\u{301}"});
        assert!(!all_ascii(&decomposed));
        assert_eq!(
            canonical_json(&decomposed).unwrap(),
            "{\"name\":\"\u{e9}\"}".as_bytes()
        );
        assert!(canonical_json(&json!({"f": 1.5})).is_err());
    }

    #[test]
    fn times_are_whole_seconds_in_tuf_form() {
        let t: Timestamp = "2026-11-25T10:00:00.987Z".parse().unwrap();
        assert_eq!(format_time(t), "2026-11-25T10:00:00Z");
        assert_eq!(
            parse_time("2026-11-25T10:00:00Z"),
            Some("2026-11-25T10:00:00Z".parse().unwrap())
        );
        for bad in [
            "2026-11-25T10:00:00.5Z",
            "2026-11-25T10:00:00+00:00",
            "2026-11-25 10:00:00Z",
            "2026-13-25T10:00:00Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn key_ids_agree_with_tough() {
        let sk = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
        let point = sk.verifying_key().to_encoded_point(false);
        let public = PublicKey::from_point(KeyAlgorithm::EcdsaP256, point.as_bytes()).unwrap();
        let key = TufKey::from_public(&public).unwrap();
        let tough_key: tough::schema::key::Key = serde_json::from_value(key.json.clone()).unwrap();
        assert_eq!(hex::encode(&*tough_key.key_id().unwrap()), key.key_id);
        assert_eq!(parse_tuf_key(&key.json), Some(public));
    }

    #[test]
    fn envelope_keeps_one_sorted_signature_per_key() {
        let mut md = SignedMetadata::new(json!({"_type": "x", "version": 1})).unwrap();
        md.add_signature("bb", &[1]);
        md.add_signature("aa", &[2]);
        md.add_signature("bb", &[3]);
        let ids: Vec<_> = md.signatures().iter().map(|s| s.keyid.as_str()).collect();
        assert_eq!(ids, ["aa", "bb"]);
        assert_eq!(md.signature("bb").unwrap().sig, "03");
        let back = SignedMetadata::from_slice(&md.to_bytes()).unwrap();
        assert_eq!(back, md);
        let dup = br#"{"signed": {}, "signatures": [{"keyid": "a", "sig": "00"}, {"keyid": "a", "sig": "01"}]}"#;
        assert!(SignedMetadata::from_slice(dup)
            .unwrap_err()
            .contains("two signatures"));
    }
}
