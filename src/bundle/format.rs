//! The manifest: what a bundle says about itself, and its one canonical CBOR encoding.

use ciborium::value::{CanonicalValue, Value};

use super::error::BundleError;
use super::names::{check_entry_name, check_no_duplicates, is_hidden_or_control};
use super::Limits;

/// The bundle format version this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// The first element of every bundle: tells a rootcellar bundle from other CBOR.
pub(super) const MARKER: &str = "rootcellar-bundle";
/// The COSE content type of the signed manifest.
pub(super) const MANIFEST_CONTENT_TYPE: &str = "application/vnd.rootcellar.manifest+cbor";
/// COSE external additional data: binds a signature to this use, so that a COSE_Sign1 made for
/// something else is never taken for a bundle manifest.
pub(super) const MANIFEST_AAD: &[u8] = b"rootcellar-bundle manifest";

/// How deep CBOR may nest: the format needs 4 levels; anything deeper is hostile.
const MAX_DEPTH: usize = 16;
/// The longest id, ceremony name or media type accepted, in bytes.
const MAX_FIELD_BYTES: usize = 256;

/// What a bundle is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BundleKind {
    /// From the online side to the appliance: CSRs, online keys, log keys.
    Request,
    /// From the appliance: certificates, TUF metadata, trusted root, transcript, journal.
    Response,
    /// Backups of wrapped keys and custodian shares; meant to be sealed with age.
    Backup,
}

impl BundleKind {
    /// The name used in the manifest and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Response => "response",
            Self::Backup => "backup",
        }
    }

    /// Parses a kind name.
    pub fn from_name(name: &str) -> Result<Self, BundleError> {
        match name {
            "request" => Ok(Self::Request),
            "response" => Ok(Self::Response),
            "backup" => Ok(Self::Backup),
            other => Err(BundleError::UnknownKind(other.to_string())),
        }
    }
}

/// The type of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryType {
    /// A PKCS#10 certificate signing request (PEM or DER).
    Csr,
    /// A public key (PEM or DER SubjectPublicKeyInfo): an online key, a Rekor or CT log key.
    PublicKey,
    /// A TUF metadata file (JSON).
    TufMetadata,
    /// One certificate or a chain (PEM or DER): issued certificates, TSA chains.
    Certificate,
    /// A Sigstore `trusted_root.json`.
    TrustedRoot,
    /// A ceremony transcript (UTF-8 text).
    Transcript,
    /// An exported journal segment (JSON, `journal export`).
    JournalSegment,
    /// Anything else, carried as opaque bytes.
    OpaqueFile,
}

impl EntryType {
    /// Every entry type, in the order they are documented.
    pub const ALL: [EntryType; 8] = [
        Self::Csr,
        Self::PublicKey,
        Self::TufMetadata,
        Self::Certificate,
        Self::TrustedRoot,
        Self::Transcript,
        Self::JournalSegment,
        Self::OpaqueFile,
    ];

    /// The name used in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Self::Csr => "csr",
            Self::PublicKey => "public-key",
            Self::TufMetadata => "tuf-metadata",
            Self::Certificate => "certificate",
            Self::TrustedRoot => "trusted-root",
            Self::Transcript => "transcript",
            Self::JournalSegment => "journal-segment",
            Self::OpaqueFile => "opaque-file",
        }
    }

    /// The type named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// The journal head a response bundle vouches for: the last record's sequence number and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalHead {
    /// Sequence number of the last journal record.
    pub seq: u64,
    /// SHA-256 of that record.
    pub sha256: [u8; 32],
}

/// What the manifest says about one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// The entry's type.
    pub entry_type: EntryType,
    /// A plain file name, the name the entry is extracted under.
    pub name: String,
    /// The media type of the contents.
    pub media_type: String,
    /// Length of the contents in bytes.
    pub length: u64,
    /// SHA-256 of the contents.
    pub sha256: [u8; 32],
}

/// The signed description of a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The format version ([`FORMAT_VERSION`]).
    pub version: u64,
    /// What the bundle is for.
    pub kind: BundleKind,
    /// The bundle's id (32 hex digits unless the producer chose one).
    pub id: String,
    /// When the bundle was made (for response bundles: the confirmed ceremony time).
    pub created: jiff::Timestamp,
    /// The ceremony that produced it (or that a request is for), if any.
    pub ceremony: Option<String>,
    /// The journal head at the time the bundle was made (response bundles).
    pub journal_head: Option<JournalHead>,
    /// Made by a rehearsal: its keys are throwaway, and nothing in it is to be trusted. Encoded
    /// (`"rehearsal": true`) only when set, so that a production bundle's bytes do not change.
    pub rehearsal: bool,
    /// The entries, sorted by name.
    pub entries: Vec<EntryInfo>,
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

impl Manifest {
    /// The manifest as a CBOR value (maps not yet in canonical order; see [`canonical_bytes`]).
    pub(super) fn to_value(&self) -> Value {
        let mut fields = vec![
            (text("version"), Value::from(self.version)),
            (text("kind"), text(self.kind.name())),
            (text("id"), text(&self.id)),
            (text("created"), text(&self.created.to_string())),
        ];
        if let Some(ceremony) = &self.ceremony {
            fields.push((text("ceremony"), text(ceremony)));
        }
        if self.rehearsal {
            fields.push((text("rehearsal"), Value::Bool(true)));
        }
        if let Some(head) = &self.journal_head {
            fields.push((
                text("journal_head"),
                Value::Map(vec![
                    (text("seq"), Value::from(head.seq)),
                    (text("sha256"), Value::Bytes(head.sha256.to_vec())),
                ]),
            ));
        }
        let entries = self
            .entries
            .iter()
            .map(|e| {
                Value::Map(vec![
                    (text("type"), text(e.entry_type.name())),
                    (text("name"), text(&e.name)),
                    (text("media_type"), text(&e.media_type)),
                    (text("length"), Value::from(e.length)),
                    (text("sha256"), Value::Bytes(e.sha256.to_vec())),
                ])
            })
            .collect();
        fields.push((text("entries"), Value::Array(entries)));
        Value::Map(fields)
    }

    /// The manifest's canonical CBOR bytes: what the signature covers.
    pub(super) fn to_bytes(&self) -> Vec<u8> {
        canonical_bytes(self.to_value())
    }

    /// Decodes and checks a manifest. The checks run in the order that gives the most useful
    /// message: version, then kind, then fields, then entries (count, type, name, size, order).
    pub(super) fn from_bytes(bytes: &[u8], limits: &Limits) -> Result<Self, BundleError> {
        let value = decode_one(bytes).map_err(|failure| {
            BundleError::InvalidManifest(format!("not a single CBOR item: {}", failure.describe()))
        })?;
        let mut value = value;
        // The version first: a newer format may differ in everything else.
        let canonical = is_canonical(&mut value, bytes);
        let mut fields = Fields::new(value, "manifest")?;
        let version = fields.take("version")?;
        match version.as_integer().and_then(|i| u64::try_from(i).ok()) {
            Some(FORMAT_VERSION) => {}
            _ => {
                return Err(BundleError::UnsupportedVersion {
                    found: describe_value(&version),
                    supported: FORMAT_VERSION,
                })
            }
        }
        if !canonical {
            return Err(BundleError::NotCanonical("manifest"));
        }
        let kind = BundleKind::from_name(&fields.take_text("kind")?)?;
        let id = fields.take_text("id")?;
        check_field("id", &id)?;
        let created_text = fields.take_text("created")?;
        let created = parse_created(&created_text)?;
        let ceremony = fields
            .take_optional("ceremony")?
            .map(|v| expect_text(v, "ceremony"))
            .transpose()?;
        if let Some(c) = &ceremony {
            check_field("ceremony", c)?;
        }
        let journal_head = fields
            .take_optional("journal_head")?
            .map(parse_journal_head)
            .transpose()?;
        let rehearsal = match fields.take_optional("rehearsal")? {
            None => false,
            Some(Value::Bool(true)) => true,
            // `false` is written by leaving the field out: one encoding for each manifest.
            Some(other) => {
                return Err(BundleError::InvalidManifest(format!(
                    "field \"rehearsal\" must be true when present, not {}",
                    describe_value(&other)
                )))
            }
        };
        let entries_value = fields.take("entries")?;
        fields.finish()?;

        let Value::Array(entry_values) = entries_value else {
            return Err(BundleError::InvalidManifest(
                "field \"entries\" must be an array".into(),
            ));
        };
        if entry_values.len() > limits.max_entries {
            return Err(BundleError::TooManyEntries {
                count: entry_values.len(),
                limit: limits.max_entries,
            });
        }
        let entries = entry_values
            .into_iter()
            .enumerate()
            .map(|(i, v)| parse_entry(i, v, limits))
            .collect::<Result<Vec<_>, _>>()?;
        check_no_duplicates(entries.iter().map(|e| e.name.as_str()))?;
        check_sorted(&entries)?;
        Ok(Manifest {
            version: FORMAT_VERSION,
            kind,
            id,
            created,
            ceremony,
            journal_head,
            rehearsal,
            entries,
        })
    }

    /// Checks what a producer controls (id, ceremony, names, order), so that a bundle that
    /// would be refused on reading is never signed.
    pub(super) fn check(&self, limits: &Limits) -> Result<(), BundleError> {
        let bad = |e: BundleError| BundleError::BadField(e.to_string());
        check_field("id", &self.id).map_err(bad)?;
        if let Some(c) = &self.ceremony {
            check_field("ceremony", c).map_err(bad)?;
        }
        if self.entries.len() > limits.max_entries {
            return Err(BundleError::TooManyEntries {
                count: self.entries.len(),
                limit: limits.max_entries,
            });
        }
        for entry in &self.entries {
            check_entry_name(&entry.name)?;
            check_field("media_type", &entry.media_type).map_err(bad)?;
            if entry.length > limits.max_entry_size {
                return Err(BundleError::EntryTooLarge {
                    name: entry.name.clone(),
                    length: entry.length,
                    limit: limits.max_entry_size,
                });
            }
        }
        check_no_duplicates(self.entries.iter().map(|e| e.name.as_str()))?;
        check_sorted(&self.entries)
    }
}

/// Whole seconds, UTC, RFC 3339: the one textual form of an instant.
pub(super) fn normalise_time(t: jiff::Timestamp) -> jiff::Timestamp {
    crate::time::whole_seconds(t)
}

fn parse_created(text: &str) -> Result<jiff::Timestamp, BundleError> {
    let parsed: jiff::Timestamp = text.parse().map_err(|e| {
        BundleError::InvalidManifest(format!("field \"created\" is not an RFC 3339 time: {e}"))
    })?;
    if parsed.to_string() != text || normalise_time(parsed) != parsed {
        return Err(BundleError::InvalidManifest(format!(
            "field \"created\" ({text:?}) is not in the canonical form YYYY-MM-DDTHH:MM:SSZ"
        )));
    }
    Ok(parsed)
}

fn check_field(field: &str, value: &str) -> Result<(), BundleError> {
    if value.is_empty() {
        return Err(BundleError::InvalidManifest(format!(
            "field {field:?} is empty"
        )));
    }
    if value.len() > MAX_FIELD_BYTES {
        return Err(BundleError::InvalidManifest(format!(
            "field {field:?} is longer than {MAX_FIELD_BYTES} bytes"
        )));
    }
    if let Some(c) = value.chars().find(|&c| is_hidden_or_control(c)) {
        return Err(BundleError::InvalidManifest(format!(
            "field {field:?} contains control or bidirectional-format character U+{:04X}",
            u32::from(c)
        )));
    }
    Ok(())
}

fn check_sorted(entries: &[EntryInfo]) -> Result<(), BundleError> {
    for pair in entries.windows(2) {
        if pair[0].name.as_bytes() >= pair[1].name.as_bytes() {
            return Err(BundleError::EntriesOutOfOrder {
                after: pair[0].name.clone(),
                before: pair[1].name.clone(),
            });
        }
    }
    Ok(())
}

fn parse_journal_head(value: Value) -> Result<JournalHead, BundleError> {
    let mut fields = Fields::new(value, "journal_head")?;
    let seq = fields.take_u64("seq")?;
    let sha256 = fields.take_digest("sha256")?;
    fields.finish()?;
    Ok(JournalHead { seq, sha256 })
}

fn parse_entry(index: usize, value: Value, limits: &Limits) -> Result<EntryInfo, BundleError> {
    let context = format!("entry {}", index + 1);
    let mut fields = Fields::new(value, &context)?;
    let type_name = fields.take_text("type")?;
    let name = fields.take_text("name")?;
    check_entry_name(&name)?;
    let Some(entry_type) = EntryType::from_name(&type_name) else {
        return Err(BundleError::UnknownEntryType {
            name,
            entry_type: type_name,
        });
    };
    let media_type = fields.take_text("media_type")?;
    check_field("media_type", &media_type)?;
    let length = fields.take_u64("length")?;
    if length > limits.max_entry_size {
        return Err(BundleError::EntryTooLarge {
            name,
            length,
            limit: limits.max_entry_size,
        });
    }
    let sha256 = fields.take_digest("sha256")?;
    fields.finish()?;
    Ok(EntryInfo {
        entry_type,
        name,
        media_type,
        length,
        sha256,
    })
}

/// The fields of one CBOR map with text keys, taken one by one; whatever is left at the end is
/// an unknown field and refused.
struct Fields {
    context: String,
    entries: Vec<(Value, Value)>,
}

impl Fields {
    fn new(value: Value, context: &str) -> Result<Self, BundleError> {
        match value {
            Value::Map(entries) => Ok(Fields {
                context: context.to_string(),
                entries,
            }),
            other => Err(BundleError::InvalidManifest(format!(
                "{context} must be a map, found {}",
                describe_value(&other)
            ))),
        }
    }

    fn take_optional(&mut self, key: &str) -> Result<Option<Value>, BundleError> {
        let positions: Vec<usize> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, (k, _))| k.as_text() == Some(key))
            .map(|(i, _)| i)
            .collect();
        match positions.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(self.entries.remove(*one).1)),
            _ => Err(BundleError::InvalidManifest(format!(
                "{}: field {key:?} appears more than once",
                self.context
            ))),
        }
    }

    fn take(&mut self, key: &str) -> Result<Value, BundleError> {
        self.take_optional(key)?.ok_or_else(|| {
            BundleError::InvalidManifest(format!("{}: field {key:?} is missing", self.context))
        })
    }

    fn take_text(&mut self, key: &str) -> Result<String, BundleError> {
        let value = self.take(key)?;
        expect_text(value, &format!("{}: {key}", self.context))
    }

    fn take_u64(&mut self, key: &str) -> Result<u64, BundleError> {
        let value = self.take(key)?;
        value
            .as_integer()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| {
                BundleError::InvalidManifest(format!(
                    "{}: field {key:?} must be an unsigned integer, found {}",
                    self.context,
                    describe_value(&value)
                ))
            })
    }

    fn take_digest(&mut self, key: &str) -> Result<[u8; 32], BundleError> {
        let value = self.take(key)?;
        value
            .as_bytes()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| {
                BundleError::InvalidManifest(format!(
                    "{}: field {key:?} must be a 32-byte string, found {}",
                    self.context,
                    describe_value(&value)
                ))
            })
    }

    fn finish(self) -> Result<(), BundleError> {
        match self.entries.first() {
            None => Ok(()),
            Some((key, _)) => Err(BundleError::InvalidManifest(format!(
                "{}: unknown field {}",
                self.context,
                describe_value(key)
            ))),
        }
    }
}

fn expect_text(value: Value, context: &str) -> Result<String, BundleError> {
    match value {
        Value::Text(s) => Ok(s),
        other => Err(BundleError::InvalidManifest(format!(
            "{context} must be a text string, found {}",
            describe_value(&other)
        ))),
    }
}

/// A short description of a CBOR value for messages (never the whole of a large value).
pub(super) fn describe_value(value: &Value) -> String {
    match value {
        Value::Integer(i) => i128::from(*i).to_string(),
        Value::Text(s) if s.len() <= 64 => format!("{s:?}"),
        Value::Text(s) => format!("a text string of {} bytes", s.len()),
        Value::Bytes(b) => format!("a byte string of {} bytes", b.len()),
        Value::Float(_) => "a floating-point number".into(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Tag(t, _) => format!("a value with tag {t}"),
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Map(m) => format!("a map of {} fields", m.len()),
        _ => "an unknown CBOR item".into(),
    }
}

/// Encodes `value` with every map's keys in canonical order (RFC 8949 §4.2.1 as ciborium's
/// [`CanonicalValue`] orders them: shorter first, then bytewise). ciborium already writes
/// definite lengths and the shortest integer forms, so the result is the deterministic encoding.
pub(super) fn canonical_bytes(mut value: Value) -> Vec<u8> {
    sort_maps(&mut value);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&value, &mut out).expect("writing CBOR to memory cannot fail");
    out
}

/// Whether `bytes` is the canonical encoding of `value` (which it was decoded from). Compares
/// while encoding, so that a large bundle is not encoded a second time into memory. Sorts the
/// value's maps in place.
pub(super) fn is_canonical(value: &mut Value, bytes: &[u8]) -> bool {
    struct Compare<'a> {
        expected: &'a [u8],
        equal: bool,
    }
    impl std::io::Write for Compare<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            match self.expected.strip_prefix(buf) {
                Some(rest) if self.equal => self.expected = rest,
                _ => self.equal = false,
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    sort_maps(value);
    let mut compare = Compare {
        expected: bytes,
        equal: true,
    };
    ciborium::ser::into_writer(&*value, &mut compare).expect("comparing cannot fail");
    compare.equal && compare.expected.is_empty()
}

fn sort_maps(value: &mut Value) {
    match value {
        Value::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                sort_maps(k);
                sort_maps(v);
            }
            entries.sort_by_cached_key(|(k, _)| CanonicalValue::from(k.clone()));
        }
        Value::Array(items) => items.iter_mut().for_each(sort_maps),
        Value::Tag(_, inner) => sort_maps(inner),
        _ => {}
    }
}

/// Why bytes are not a single CBOR item.
pub(super) enum DecodeFailure {
    /// The data ends inside the item.
    Truncated,
    /// Bytes follow the item.
    Trailing(usize),
    /// Anything else the decoder refused.
    Malformed(String),
}

impl DecodeFailure {
    pub(super) fn describe(&self) -> String {
        match self {
            Self::Truncated => "the data ends early".into(),
            Self::Trailing(n) => format!("{n} bytes follow it"),
            Self::Malformed(m) => m.clone(),
        }
    }
}

/// Decodes exactly one CBOR item from `bytes`, nesting at most [`MAX_DEPTH`] levels.
pub(super) fn decode_one(bytes: &[u8]) -> Result<Value, DecodeFailure> {
    use ciborium::de::Error;
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH)
        .map_err(|e| match e {
            Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                DecodeFailure::Truncated
            }
            Error::Io(io) => DecodeFailure::Malformed(io.to_string()),
            Error::Syntax(offset) => {
                DecodeFailure::Malformed(format!("invalid CBOR at byte {offset}"))
            }
            Error::Semantic(Some(offset), m) => {
                DecodeFailure::Malformed(format!("invalid CBOR at byte {offset}: {m}"))
            }
            Error::Semantic(None, m) => DecodeFailure::Malformed(format!("invalid CBOR: {m}")),
            Error::RecursionLimitExceeded => {
                DecodeFailure::Malformed(format!("nested more than {MAX_DEPTH} levels deep"))
            }
        })?;
    if !rest.is_empty() {
        return Err(DecodeFailure::Trailing(rest.len()));
    }
    Ok(value)
}
