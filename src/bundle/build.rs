//! Making a bundle: entries in, one signed, canonical file out.

use std::path::Path;

use ciborium::value::Value;
use coset::{AsCborValue, TaggedCborSerializable};
use sha2::{Digest, Sha256};

use super::content::media_type_for;
use super::cose::sign_manifest;
use super::error::BundleError;
use super::format::{canonical_bytes, normalise_time, MARKER};
use super::names::{check_entry_name, check_no_duplicates};
use super::{
    Bundle, BundleKind, EntryInfo, EntryType, JournalHead, Limits, Manifest, PinnedKeys,
    FORMAT_VERSION,
};
use crate::keys::Signer;

/// Collects entries for a new bundle and signs it.
///
/// The result is deterministic: entries are sorted by name and every map is in canonical order,
/// so the same kind, id, time, ceremony, journal head and entries give the same manifest bytes
/// (and the same file, with a deterministic signer).
#[derive(Clone, Debug)]
pub struct BundleBuilder {
    manifest: Manifest,
    contents: Vec<Vec<u8>>,
    limits: Limits,
}

impl BundleBuilder {
    /// A new bundle of `kind` made at the confirmed time `created`, with a random 128-bit id.
    pub fn new(kind: BundleKind, created: crate::time::ConfirmedTime) -> Self {
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        BundleBuilder {
            manifest: Manifest {
                version: FORMAT_VERSION,
                kind,
                id: hex::encode(id),
                created: normalise_time(created.timestamp()),
                ceremony: None,
                journal_head: None,
                rehearsal: false,
                entries: Vec::new(),
            },
            contents: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// Sets the id (instead of the random one).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.manifest.id = id.into();
        self
    }

    /// Names the ceremony that produced the bundle (or that a request is for).
    pub fn ceremony(mut self, ceremony: impl Into<String>) -> Self {
        self.manifest.ceremony = Some(ceremony.into());
        self
    }

    /// Marks the bundle as made by a rehearsal.
    pub fn rehearsal(mut self, rehearsal: bool) -> Self {
        self.manifest.rehearsal = rehearsal;
        self
    }

    /// Records the journal head the bundle vouches for (response bundles).
    pub fn journal_head(mut self, head: JournalHead) -> Self {
        self.manifest.journal_head = Some(head);
        self
    }

    /// The limits the bundle must respect (default: [`Limits::default`], what a default reader
    /// accepts).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Adds an entry after checking its name (plain file name, not yet used), its size and that
    /// its contents look like its type (a CSR parses, JSON is JSON, …). The media type follows
    /// from the type and the encoding (PEM or DER).
    pub fn add(
        &mut self,
        entry_type: EntryType,
        name: &str,
        contents: Vec<u8>,
    ) -> Result<&mut Self, BundleError> {
        let media_type =
            media_type_for(entry_type, &contents).map_err(|reason| BundleError::BadInput {
                path: name.into(),
                entry_type: entry_type.name(),
                reason,
            })?;
        self.add_with_media_type(entry_type, name, media_type, contents)
    }

    /// Adds an entry with a media type of the caller's choosing; the contents are not examined.
    pub fn add_with_media_type(
        &mut self,
        entry_type: EntryType,
        name: &str,
        media_type: &str,
        contents: Vec<u8>,
    ) -> Result<&mut Self, BundleError> {
        check_entry_name(name)?;
        check_no_duplicates(
            self.manifest
                .entries
                .iter()
                .map(|e| e.name.as_str())
                .chain([name]),
        )?;
        let length = contents.len() as u64;
        if length > self.limits.max_entry_size {
            return Err(BundleError::EntryTooLarge {
                name: name.to_string(),
                length,
                limit: self.limits.max_entry_size,
            });
        }
        if self.manifest.entries.len() >= self.limits.max_entries {
            return Err(BundleError::TooManyEntries {
                count: self.manifest.entries.len() + 1,
                limit: self.limits.max_entries,
            });
        }
        let info = EntryInfo {
            entry_type,
            name: name.to_string(),
            media_type: media_type.to_string(),
            length,
            sha256: Sha256::digest(&contents).into(),
        };
        // Kept sorted by name: the order is part of the canonical form.
        let at = self
            .manifest
            .entries
            .partition_point(|e| e.name.as_bytes() < name.as_bytes());
        self.manifest.entries.insert(at, info);
        self.contents.insert(at, contents);
        Ok(self)
    }

    /// Adds the file at `path` under `name` (default: the file's own name).
    pub fn add_file(
        &mut self,
        entry_type: EntryType,
        name: Option<&str>,
        path: &Path,
    ) -> Result<&mut Self, BundleError> {
        let bad = |reason: String| BundleError::BadInput {
            path: path.to_path_buf(),
            entry_type: entry_type.name(),
            reason,
        };
        let name = match name {
            Some(n) => n.to_string(),
            None => path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| bad("the path has no UTF-8 file name".into()))?
                .to_string(),
        };
        let size = std::fs::metadata(path)
            .map_err(|e| bad(e.to_string()))?
            .len();
        if size > self.limits.max_entry_size {
            return Err(BundleError::EntryTooLarge {
                name,
                length: size,
                limit: self.limits.max_entry_size,
            });
        }
        let contents = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let media_type = media_type_for(entry_type, &contents).map_err(bad)?;
        self.add_with_media_type(entry_type, &name, media_type, contents)
    }

    /// The manifest as it stands.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Signs the manifest with `signer` and returns the bundle's bytes.
    ///
    /// Before returning, the bytes are read back with the same checks and limits a reader
    /// applies, and the signature is verified under the signer's public key: a bundle that
    /// would be refused is never handed out.
    pub fn sign(self, signer: &dyn Signer) -> Result<Vec<u8>, BundleError> {
        self.manifest.check(&self.limits)?;
        let sign1 = sign_manifest(self.manifest.to_bytes(), signer)?;
        let bytes = assemble(sign1, self.contents);
        let total = bytes.len() as u64;
        if total > self.limits.max_bundle_size {
            return Err(BundleError::TooLarge {
                size: total,
                limit: self.limits.max_bundle_size,
            });
        }
        Bundle::decode(&bytes, &self.limits)?
            .verify(&PinnedKeys::new(vec![signer.public_key().clone()]))?;
        Ok(bytes)
    }
}

/// The file: `[marker, COSE_Sign1 (tag 18), [contents…]]` in canonical CBOR.
pub(super) fn assemble(sign1: coset::CoseSign1, contents: Vec<Vec<u8>>) -> Vec<u8> {
    let envelope = sign1
        .to_cbor_value()
        .expect("a COSE_Sign1 with a protected header converts to CBOR");
    let value = Value::Array(vec![
        Value::Text(MARKER.to_string()),
        Value::Tag(coset::CoseSign1::TAG, Box::new(envelope)),
        Value::Array(contents.into_iter().map(Value::Bytes).collect()),
    ]);
    canonical_bytes(value)
}
