//! The import state directory: the trust a cluster host holds between imports.
//!
//! ```text
//! STATE/state.json                      what was imported last (the commit point)
//! STATE/roots/N.root.json               every TUF root version verified so far
//! STATE/trusted-roots/SHA256.json       the trusted_root.json imported last
//! STATE/bundle-keys/FINGERPRINT.pem     the appliance bundle keys pinned
//! ```
//!
//! `state.json` names every file it relies on with its SHA-256, and is replaced by a rename only
//! after those files are on disk: a crash leaves the previous state, perhaps with an unused file
//! or two. Before the rename the state is read again; if another import advanced it meanwhile,
//! nothing is recorded.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::output::sync_dir;
use super::ImportError;
use crate::trustroot::TrustedRoot;
use crate::tuf::sha256_hex;

/// The state file's name.
pub(super) const STATE_FILE: &str = "state.json";
/// What `format` says.
const FORMAT: &str = "rootcellar-import-state/1";

/// `state.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StateRecord {
    /// Always [`FORMAT`].
    pub format: String,
    /// How many imports this state has recorded.
    pub imports: u64,
    /// The TUF root version trusted.
    pub root_version: u64,
    /// Every root verified, oldest first; the last is the trusted one.
    pub roots: Vec<FileRef>,
    /// The timestamp version imported last.
    pub timestamp_version: u64,
    /// The snapshot version imported last.
    pub snapshot_version: u64,
    /// The targets version imported last.
    pub targets_version: u64,
    /// The targets imported last: name → SHA-256.
    pub targets: BTreeMap<String, String>,
    /// The trusted_root.json imported last.
    pub trusted_root: FileRef,
    /// The appliance bundle keys pinned.
    pub bundle_keys: Vec<FileRef>,
    /// The last import.
    pub last_import: LastImport,
    /// The admission policy the last import wrote, kept for the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<super::AdmissionPolicy>,
}

/// A file of the state directory and its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRef {
    /// Relative to the state directory.
    pub path: String,
    /// Lowercase hex.
    pub sha256: String,
}

/// What the last import was.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LastImport {
    /// The verification time.
    pub at: String,
    /// The bundle's id.
    pub bundle_id: String,
    /// SHA-256 of the bundle file.
    pub bundle_sha256: String,
    /// Where the outputs were written.
    pub out: String,
}

/// A state directory as read.
pub(super) struct LoadedState {
    /// The directory.
    pub dir: PathBuf,
    /// `state.json` as read, to notice a concurrent import.
    pub raw: Vec<u8>,
    /// What it says.
    pub record: StateRecord,
    /// Every root, by version.
    pub roots: BTreeMap<u64, Vec<u8>>,
    /// The trusted_root.json imported last, parsed.
    pub trusted_root_parsed: TrustedRoot,
    /// The pinned bundle key files.
    pub bundle_keys: Vec<PathBuf>,
}

/// Reads the state in `dir`: `None` when the directory or its `state.json` does not exist.
pub(super) fn load(dir: &Path) -> Result<Option<LoadedState>, ImportError> {
    let state_file = dir.join(STATE_FILE);
    let raw = match std::fs::read(&state_file) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(&state_file, e.to_string())),
    };
    let record: StateRecord =
        serde_json::from_slice(&raw).map_err(|e| bad(&state_file, e.to_string()))?;
    if record.format != FORMAT {
        return Err(bad(
            &state_file,
            format!("format {:?} is not {FORMAT:?}", record.format),
        ));
    }
    let read = |file: &FileRef| -> Result<Vec<u8>, ImportError> {
        let path = checked_path(dir, &file.path).ok_or_else(|| {
            bad(
                &state_file,
                format!("{:?} is not a path inside the state directory", file.path),
            )
        })?;
        let bytes = std::fs::read(&path).map_err(|e| bad(&path, e.to_string()))?;
        if sha256_hex(&bytes) != file.sha256 {
            return Err(bad(
                &path,
                format!("its SHA-256 is not the {} state.json records", file.sha256),
            ));
        }
        Ok(bytes)
    };
    let mut roots = BTreeMap::new();
    for file in &record.roots {
        let version = file
            .path
            .strip_prefix("roots/")
            .and_then(|n| n.strip_suffix(".root.json"))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| {
                bad(
                    &state_file,
                    format!("{:?} is not roots/N.root.json", file.path),
                )
            })?;
        roots.insert(version, read(file)?);
    }
    if !roots.contains_key(&record.root_version) {
        return Err(bad(
            &state_file,
            format!(
                "the trusted root v{} is not among its roots",
                record.root_version
            ),
        ));
    }
    let trusted_root_path = dir.join(&record.trusted_root.path);
    let trusted_root_parsed = super::parse_trusted_root(&read(&record.trusted_root)?)
        .map_err(|e| bad(&trusted_root_path, e.to_string()))?;
    let mut bundle_keys = Vec::new();
    for file in &record.bundle_keys {
        read(file)?;
        bundle_keys.push(dir.join(&file.path));
    }
    Ok(Some(LoadedState {
        dir: dir.to_path_buf(),
        raw,
        record,
        roots,
        trusted_root_parsed,
        bundle_keys,
    }))
}

fn bad(path: &Path, reason: String) -> ImportError {
    ImportError::BadState {
        path: path.to_path_buf(),
        reason,
    }
}

/// `relative` inside `dir`, if it is a plain relative path.
fn checked_path(dir: &Path, relative: &str) -> Option<PathBuf> {
    let plain = !relative.is_empty()
        && relative
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'));
    plain.then(|| dir.join(relative))
}

/// A state to record: `state.json` and the files it names.
pub(super) struct NewState {
    pub record: StateRecord,
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The files of a new state, collected as the record is built.
#[derive(Default)]
pub(super) struct StateFiles(pub BTreeMap<String, Vec<u8>>);

impl StateFiles {
    /// Adds a file and returns its reference.
    pub fn add(&mut self, path: String, bytes: Vec<u8>) -> FileRef {
        let file = FileRef {
            path: path.clone(),
            sha256: sha256_hex(&bytes),
        };
        self.0.insert(path, bytes);
        file
    }
}

/// A new record of this format.
pub(super) fn format() -> String {
    FORMAT.to_string()
}

/// Records `new` in `dir` (created if absent), provided `state.json` still holds `previous`.
pub(super) fn commit(
    dir: &Path,
    previous: Option<&[u8]>,
    new: &NewState,
    out: &Path,
) -> Result<(), ImportError> {
    let failed = |source: std::io::Error| ImportError::StateCommit {
        state: dir.to_path_buf(),
        out: out.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let mut dirs = std::collections::BTreeSet::new();
    for (relative, bytes) in &new.files {
        let path = dir.join(relative);
        let parent = path.parent().unwrap_or(dir).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(failed)?;
        if std::fs::read(&path).is_ok_and(|existing| existing == *bytes) {
            continue;
        }
        replace_file(&path, bytes).map_err(failed)?;
        dirs.insert(parent);
    }
    for d in &dirs {
        sync_dir(d).map_err(failed)?;
    }
    let state_file = dir.join(STATE_FILE);
    let current = match std::fs::read(&state_file) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(failed(e)),
    };
    if current.as_deref() != previous {
        return Err(ImportError::StateChanged {
            state: dir.to_path_buf(),
            out: out.to_path_buf(),
        });
    }
    let mut json = serde_json::to_vec_pretty(&new.record).expect("the state record serialises");
    json.push(b'\n');
    replace_file(&state_file, &json).map_err(failed)?;
    sync_dir(dir).map_err(failed)
}

/// Writes `bytes` to a temporary sibling, flushes it, and renames it over `path`.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut nonce = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let temp = dir.join(format!(".tmp-{}-{name}", hex::encode(nonce)));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
