//! Reading a bundle: every check, in an order that names the first failure precisely.

use std::path::{Path, PathBuf};

use ciborium::tag::Required;
use ciborium::value::Value;
use coset::{AsCborValue, CoseSign1, TaggedCborSerializable};
use sha2::{Digest, Sha256};

use super::build::assemble;
use super::cose::{algorithm_name, check_headers, verify_signature};
use super::error::BundleError;
use super::format::{is_canonical, MARKER};
use super::{seal, BundleKind, EntryInfo, Limits, Manifest, PinnedKeys};
use crate::keys::{KeyAlgorithm, PublicKey};

/// The bytes every bundle starts with: a 3-element array and the marker text.
fn expected_prefix() -> Vec<u8> {
    let mut prefix = vec![0x83, 0x60 + MARKER.len() as u8];
    prefix.extend_from_slice(MARKER.as_bytes());
    prefix
}

/// The protected header holds three short fields (about 90 bytes); anything much larger is not
/// a rootcellar envelope and is not handed to the COSE parser.
const MAX_PROTECTED_HEADER: usize = 1024;

/// The largest manifest a reader accepts: 1 KiB per allowed entry (an entry's fields take at
/// most about 700 bytes) plus 4 KiB. The manifest is parsed before the signature is checked,
/// so its size is bounded first.
pub(super) fn manifest_limit(limits: &Limits) -> u64 {
    4096 + 1024 * limits.max_entries as u64
}

/// `[marker, #6.18(COSE_Sign1), [contents…]]` as typed wire items.
#[derive(serde::Deserialize)]
struct Wire(String, Required<Sign1Wire, 18>, Vec<Bstr>);

/// `[protected, unprotected, payload, signature]`.
#[derive(serde::Deserialize)]
struct Sign1Wire(Bstr, EmptyMap, Bstr, Bstr);

/// A CBOR byte string, and nothing else.
struct Bstr(Vec<u8>);

impl<'de> serde::Deserialize<'de> for Bstr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bstr;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bstr, E> {
                Ok(Bstr(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bstr, E> {
                Ok(Bstr(v))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

/// An empty map: the unprotected header, where nothing unsigned may be carried.
struct EmptyMap;

impl<'de> serde::Deserialize<'de> for EmptyMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = EmptyMap;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an empty map (the unprotected header must be empty)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<EmptyMap, A::Error> {
                match map.next_key::<serde::de::IgnoredAny>()? {
                    None => Ok(EmptyMap),
                    Some(_) => Err(serde::de::Error::custom(
                        "the unprotected header must be empty (nothing unsigned is accepted)",
                    )),
                }
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// A bundle whose structure, limits, names and hashes have been checked, but whose signature
/// has not: only [`Bundle::verify`] gives access to the contents.
#[derive(Clone, Debug)]
pub struct Bundle {
    manifest: Manifest,
    contents: Vec<Vec<u8>>,
    sign1: CoseSign1,
    algorithm: KeyAlgorithm,
    key_id: [u8; 32],
    size: u64,
    sha256: [u8; 32],
}

impl Bundle {
    /// Reads and checks a bundle file: size limit first (before reading it whole), then
    /// everything [`Bundle::decode`] checks. A sealed bundle needs `opener`.
    pub fn read_file(
        path: &Path,
        limits: &Limits,
        opener: Option<&seal::Opener>,
    ) -> Result<Self, BundleError> {
        let bytes = read_limited(path, limits.max_bundle_size)?;
        if seal::is_sealed(&bytes) {
            let opener = opener.ok_or(BundleError::Sealed)?;
            let opened = seal::unseal(&bytes, opener, limits.max_bundle_size)?;
            return Self::decode(&opened, limits);
        }
        Self::decode(&bytes, limits)
    }

    /// Decodes and checks a bundle, in this order: size; marker; well-formed CBOR with nothing
    /// after it; entry count; canonical encoding; COSE_Sign1 headers; manifest (version, kind,
    /// fields, entry types, names, sizes, duplicates, order); then each entry's length and
    /// SHA-256. The signature is checked by [`Bundle::verify`].
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, BundleError> {
        let size = bytes.len() as u64;
        if size > limits.max_bundle_size {
            return Err(BundleError::TooLarge {
                size,
                limit: limits.max_bundle_size,
            });
        }
        if seal::is_sealed(bytes) {
            return Err(BundleError::Sealed);
        }
        let prefix = expected_prefix();
        if bytes.is_empty() {
            return Err(BundleError::NotABundle("the file is empty".into()));
        }
        if !bytes.starts_with(&prefix) {
            if prefix.starts_with(bytes) {
                return Err(BundleError::Truncated);
            }
            return Err(BundleError::NotABundle(format!(
                "it does not start with the {MARKER:?} marker"
            )));
        }
        // Typed decoding: an item of the wrong type is refused where it stands, so that a
        // hostile array of millions of tiny items is never materialised as CBOR values.
        let mut rest = bytes;
        let wire: Wire =
            ciborium::de::from_reader_with_recursion_limit(&mut rest, 8).map_err(|e| match e {
                ciborium::de::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                    BundleError::Truncated
                }
                ciborium::de::Error::Semantic(_, message) => BundleError::InvalidStructure(message),
                other => BundleError::MalformedCbor(other.to_string()),
            })?;
        if !rest.is_empty() {
            return Err(BundleError::TrailingBytes { count: rest.len() });
        }
        let Wire(_marker, Required(Sign1Wire(protected, _, payload, signature)), contents) = wire;
        if contents.len() > limits.max_entries {
            return Err(BundleError::TooManyEntries {
                count: contents.len(),
                limit: limits.max_entries,
            });
        }
        if protected.0.len() > MAX_PROTECTED_HEADER {
            return Err(BundleError::InvalidStructure(format!(
                "the protected header is {} bytes; it holds only alg, content type and kid",
                protected.0.len()
            )));
        }
        let manifest_limit = manifest_limit(limits);
        if payload.0.len() as u64 > manifest_limit {
            return Err(BundleError::ManifestTooLarge {
                size: payload.0.len() as u64,
                limit: manifest_limit,
            });
        }
        let envelope = Value::Array(vec![
            Value::Bytes(protected.0),
            Value::Map(Vec::new()),
            Value::Bytes(payload.0),
            Value::Bytes(signature.0),
        ]);
        let contents: Vec<Vec<u8>> = contents.into_iter().map(|b| b.0).collect();
        // The one encoding of what was decoded must be the bytes given.
        let mut outer = Value::Array(vec![
            Value::Text(MARKER.to_string()),
            Value::Tag(CoseSign1::TAG, Box::new(envelope)),
            Value::Array(contents.into_iter().map(Value::Bytes).collect()),
        ]);
        if !is_canonical(&mut outer, bytes) {
            return Err(BundleError::NotCanonical("bundle"));
        }
        let Value::Array(parts) = outer else {
            unreachable!("built above as an array")
        };
        let Ok([_, Value::Tag(_, envelope), Value::Array(contents)]) =
            <[Value; 3]>::try_from(parts)
        else {
            unreachable!("built above as marker, tagged envelope, contents")
        };
        let envelope = *envelope;
        let contents: Vec<Vec<u8>> = contents
            .into_iter()
            .map(|v| match v {
                Value::Bytes(b) => b,
                _ => unreachable!("built above from byte strings"),
            })
            .collect();
        let sign1 = CoseSign1::from_cbor_value(envelope)
            .map_err(|e| BundleError::InvalidStructure(format!("COSE_Sign1: {e}")))?;
        let (algorithm, key_id) = check_headers(&sign1)?;
        let payload = sign1.payload.as_deref().ok_or_else(|| {
            BundleError::InvalidStructure("the COSE_Sign1 has no payload (detached)".into())
        })?;
        let manifest = Manifest::from_bytes(payload, limits)?;
        if manifest.entries.len() != contents.len() {
            return Err(BundleError::EntryCountMismatch {
                manifest: manifest.entries.len(),
                carried: contents.len(),
            });
        }
        for (info, data) in manifest.entries.iter().zip(&contents) {
            if data.len() as u64 != info.length {
                return Err(BundleError::EntryLengthMismatch {
                    name: info.name.clone(),
                    declared: info.length,
                    actual: data.len() as u64,
                });
            }
            if <[u8; 32]>::from(Sha256::digest(data)) != info.sha256 {
                return Err(BundleError::EntryHashMismatch {
                    name: info.name.clone(),
                });
            }
        }
        Ok(Bundle {
            manifest,
            contents,
            sign1,
            algorithm,
            key_id,
            size,
            sha256: Sha256::digest(bytes).into(),
        })
    }

    /// Checks the signature against the pinned keys: the signer (named by the envelope's key
    /// id) must be pinned, its algorithm must match, and the signature must verify.
    pub fn verify(self, pins: &PinnedKeys) -> Result<VerifiedBundle, BundleError> {
        if pins.is_empty() {
            return Err(BundleError::NoPinnedKey);
        }
        let Some(key) = pins.find(&self.key_id) else {
            return Err(BundleError::UnpinnedSigner {
                key_id: hex::encode(self.key_id),
                pinned: pins.describe(),
            });
        };
        if key.algorithm() != self.algorithm {
            return Err(BundleError::UnsupportedAlgorithm(format!(
                "the bundle says {} but pinned key SHA256:{} is {}",
                algorithm_name(self.algorithm),
                key.fingerprint(),
                key.algorithm().name()
            )));
        }
        if !verify_signature(&self.sign1, key) {
            return Err(BundleError::BadSignature {
                key_id: key.fingerprint(),
            });
        }
        let signer = key.clone();
        Ok(VerifiedBundle {
            bundle: self,
            signer,
        })
    }

    /// The manifest (not yet vouched for by a signature).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The signer's key id as the envelope states it: hex SHA-256 of its SubjectPublicKeyInfo,
    /// the fingerprint `rootcellar key show` prints.
    pub fn signer_key_id(&self) -> String {
        hex::encode(self.key_id)
    }

    /// The COSE signature algorithm, `ES256` or `ES384`.
    pub fn signature_algorithm(&self) -> &'static str {
        algorithm_name(self.algorithm)
    }

    /// The contents of entry `name` before the signature is checked (its length and SHA-256
    /// are checked, as the manifest states them): only for a key the bundle carries to verify
    /// itself with, when trust rests on something else.
    pub fn entry_before_verifying(&self, name: &str) -> Option<&[u8]> {
        let index = self.manifest.entries.iter().position(|e| e.name == name)?;
        Some(&self.contents[index])
    }

    /// The size of the bundle file in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// SHA-256 of the bundle file (of the plain bundle, when it came sealed).
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// Serialises the bundle again. A decoded bundle was canonical, so this gives back exactly
    /// the bytes it was decoded from.
    pub fn to_bytes(&self) -> Vec<u8> {
        assemble(self.sign1.clone(), self.contents.clone())
    }
}

/// A bundle whose every check passed, including the signature by a pinned key.
#[derive(Clone, Debug)]
pub struct VerifiedBundle {
    bundle: Bundle,
    signer: PublicKey,
}

impl VerifiedBundle {
    /// The checked bundle.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.bundle.manifest
    }

    /// The pinned key that signed it.
    pub fn signer(&self) -> &PublicKey {
        &self.signer
    }

    /// Refuses the bundle unless it is of `kind` (an importer wants a response, the appliance
    /// a request).
    pub fn expect_kind(self, kind: BundleKind) -> Result<Self, BundleError> {
        if self.manifest().kind == kind {
            Ok(self)
        } else {
            Err(BundleError::WrongKind {
                found: self.manifest().kind.name(),
                expected: kind.name(),
            })
        }
    }

    /// Every entry with its contents, in manifest order.
    pub fn entries(&self) -> impl Iterator<Item = (&EntryInfo, &[u8])> {
        self.bundle
            .manifest
            .entries
            .iter()
            .zip(self.bundle.contents.iter().map(Vec::as_slice))
    }

    /// The contents of the entry named `name`.
    pub fn entry(&self, name: &str) -> Option<&[u8]> {
        self.entries()
            .find(|(info, _)| info.name == name)
            .map(|(_, data)| data)
    }

    /// Writes every entry into the new directory `dir`, which must not exist; returns the
    /// paths written. See [`super::extract`].
    pub fn extract(&self, dir: &Path) -> Result<Vec<PathBuf>, BundleError> {
        self.extract_placed(dir, |info| Some(vec![info.name.clone()]))
    }

    /// Writes the entries into the new directory `dir`, each at the place `place` gives it (a
    /// path below `dir` as plain names); an entry given no place is left out. Returns the paths
    /// written. See [`super::extract`].
    pub fn extract_placed(
        &self,
        dir: &Path,
        place: impl Fn(&EntryInfo) -> Option<Vec<String>>,
    ) -> Result<Vec<PathBuf>, BundleError> {
        super::extract::extract_into_new_dir(
            self.entries()
                .filter_map(|(info, data)| place(info).map(|p| (p, data))),
            dir,
        )
    }
}

/// Reads a file of at most `limit` bytes, refusing a larger one before reading it whole.
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, BundleError> {
    use std::io::Read;
    let unreadable = |source| BundleError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    if size > limit {
        return Err(BundleError::TooLarge { size, limit });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(BundleError::TooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}
