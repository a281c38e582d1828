//! A repository on disk: what is published (`metadata/`, `targets/`), what is being prepared
//! (`staged/`), and the lock that keeps two commands from preparing at once.
//!
//! ```text
//! REPO/metadata/N.root.json        published roots, 1 … N (never rewritten)
//! REPO/metadata/N.targets.json     published targets versions
//! REPO/metadata/N.snapshot.json    published snapshot versions
//! REPO/metadata/timestamp.json     the one file replaced on each publish (written last)
//! REPO/targets/<sha256>.<name>     target files (never rewritten)
//! REPO/staged/N.root.json          draft of the next root, signatures accumulating
//! REPO/staged/N.targets.json       draft of the next targets, signatures accumulating
//! REPO/staged/targets/<sha256>.<name>   target files the draft adds
//! REPO/staged/key-names.json       key id → policy key name, for status
//! REPO/staged/.lock                held while a command changes staged/ or publishes
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::metadata::SignedMetadata;
use super::verify::{self, DirectorySource, KeyCache, TrustedRoot};
use super::{Role, TufError};
use crate::files::OutputError;

/// The directory of published metadata.
pub(crate) const METADATA_DIR: &str = "metadata";
/// The directory of published target files.
pub(crate) const TARGETS_DIR: &str = "targets";
/// The working area of drafts.
pub(crate) const STAGED_DIR: &str = "staged";
/// Splits a target file name as a repository with consistent snapshots stores it,
/// `<hex digest>.<target name>` (SHA-256 or SHA-512), into the digest and the target name.
pub(crate) fn hash_prefixed_target(name: &str) -> Option<(&str, &str)> {
    let (digest, target) = name.split_once('.')?;
    let hashed = matches!(digest.len(), 64 | 128) && digest.bytes().all(|b| b.is_ascii_hexdigit());
    (hashed && !target.is_empty()).then_some((digest, target))
}

/// The names of keys seen when drafting, for `tuf status`.
const KEY_NAMES: &str = "key-names.json";

/// A repository directory.
#[derive(Clone, Debug)]
pub(crate) struct Repo {
    pub dir: PathBuf,
}

/// A staged draft of one role.
#[derive(Clone, Debug)]
pub(crate) struct Draft {
    pub role: Role,
    pub version: u64,
    pub path: PathBuf,
    pub metadata: SignedMetadata,
}

impl Repo {
    /// The repository in `dir`, which must hold `metadata/1.root.json`.
    pub fn open(dir: &Path) -> Result<Repo, TufError> {
        let repo = Repo {
            dir: dir.to_path_buf(),
        };
        if !repo.metadata_path("1.root.json").is_file() {
            return Err(TufError::NotARepository {
                dir: dir.to_path_buf(),
                reason: "it has no metadata/1.root.json (create one with tuf init)".into(),
            });
        }
        Ok(repo)
    }

    pub fn metadata_path(&self, name: &str) -> PathBuf {
        self.dir.join(METADATA_DIR).join(name)
    }

    pub fn staged_dir(&self) -> PathBuf {
        self.dir.join(STAGED_DIR)
    }

    pub fn staged_targets_dir(&self) -> PathBuf {
        self.staged_dir().join(TARGETS_DIR)
    }

    /// The latest published root, reached from `1.root.json` through every later version, each
    /// step checked as a client checks it (expiry aside: a repository is maintained after its
    /// metadata expires).
    pub fn current_root(&self) -> Result<TrustedRoot, TufError> {
        let first = self.metadata_path("1.root.json");
        let bytes = std::fs::read(&first).map_err(|source| io_error(&first, source))?;
        let mut keys = KeyCache::default();
        let trusted = verify::load_trusted_root(&bytes, &mut keys)?;
        let source = DirectorySource::new(&self.dir);
        Ok(verify::walk_roots(trusted, &source, u64::MAX, &mut keys)?)
    }

    /// The highest version of `role` published as `metadata/N.<role>.json`.
    pub fn latest_version(&self, role: Role) -> Result<Option<u64>, TufError> {
        let dir = self.dir.join(METADATA_DIR);
        let suffix = format!(".{}.json", role.name());
        let mut latest = None;
        for entry in std::fs::read_dir(&dir).map_err(|source| io_error(&dir, source))? {
            let entry = entry.map_err(|source| io_error(&dir, source))?;
            let name = entry.file_name();
            let Some(version) = name
                .to_str()
                .and_then(|n| n.strip_suffix(&suffix))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            latest = latest.max(Some(version));
        }
        Ok(latest)
    }

    /// Reads a published metadata file.
    pub fn read_metadata(&self, name: &str) -> Result<SignedMetadata, TufError> {
        read_metadata_file(&self.metadata_path(name))
    }

    /// The staged draft of `role`, if there is one.
    pub fn draft(&self, role: Role) -> Result<Option<Draft>, TufError> {
        let dir = self.staged_dir();
        if !dir.is_dir() {
            return Ok(None);
        }
        let suffix = format!(".{}.json", role.name());
        let mut found: Option<(u64, PathBuf)> = None;
        for entry in std::fs::read_dir(&dir).map_err(|source| io_error(&dir, source))? {
            let entry = entry.map_err(|source| io_error(&dir, source))?;
            let name = entry.file_name();
            let Some(version) = name
                .to_str()
                .and_then(|n| n.strip_suffix(&suffix))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if self.already_published(&entry.path()) {
                // Left behind by a publish interrupted after writing it: not a draft any more.
                continue;
            }
            if let Some((_, other)) = &found {
                return Err(TufError::StagedInvalid {
                    file: entry.path(),
                    reason: format!(
                        "{} is staged too; only one draft of {role} may be staged",
                        other.display()
                    ),
                });
            }
            found = Some((version, entry.path()));
        }
        let Some((version, path)) = found else {
            return Ok(None);
        };
        let metadata = read_metadata_file(&path)?;
        if metadata.role_type() != Some(role.name()) || metadata.version() != Some(version) {
            return Err(TufError::StagedInvalid {
                file: path,
                reason: format!("it does not hold {role} v{version}"),
            });
        }
        Ok(Some(Draft {
            role,
            version,
            path,
            metadata,
        }))
    }

    /// Whether the staged file `path` is published under the same name with the same bytes.
    fn already_published(&self, path: &Path) -> bool {
        let Some(name) = path.file_name() else {
            return false;
        };
        let published = self.dir.join(METADATA_DIR).join(name);
        matches!(
            (std::fs::read(path), std::fs::read(published)),
            (Ok(staged), Ok(published)) if staged == published
        )
    }

    /// Writes a new draft (which must not exist yet).
    pub fn create_draft(&self, role: Role, metadata: &SignedMetadata) -> Result<Draft, TufError> {
        let version = metadata.version().expect("drafts carry a version");
        let dir = self.staged_dir();
        std::fs::create_dir_all(&dir).map_err(|source| io_error(&dir, source))?;
        let path = self.draft_path(role, version);
        crate::files::write_new(&path, &metadata.to_bytes())?;
        Ok(Draft {
            role,
            version,
            path,
            metadata: metadata.clone(),
        })
    }

    /// Where the draft of `role` version `version` is staged.
    pub fn draft_path(&self, role: Role, version: u64) -> PathBuf {
        self.staged_dir()
            .join(format!("{version}.{}.json", role.name()))
    }

    /// Replaces a draft with its signed (or edited) form.
    pub fn save_draft(&self, draft: &Draft) -> Result<(), TufError> {
        replace_file(&draft.path, &draft.metadata.to_bytes())
    }

    /// The key names recorded when drafting.
    pub fn key_names(&self) -> BTreeMap<String, String> {
        std::fs::read(self.staged_dir().join(KEY_NAMES))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Adds key names to the record kept for `tuf status`.
    pub fn record_key_names(&self, names: &BTreeMap<String, String>) -> Result<(), TufError> {
        let mut all = self.key_names();
        all.extend(names.iter().map(|(k, v)| (k.clone(), v.clone())));
        let dir = self.staged_dir();
        std::fs::create_dir_all(&dir).map_err(|source| io_error(&dir, source))?;
        let mut bytes = serde_json::to_vec_pretty(&all).expect("names serialise");
        bytes.push(b'\n');
        replace_file(&dir.join(KEY_NAMES), &bytes)
    }

    /// Takes the repository's lock until the guard is dropped.
    pub fn lock(&self) -> Result<RepoLock, TufError> {
        let dir = self.staged_dir();
        std::fs::create_dir_all(&dir).map_err(|source| io_error(&dir, source))?;
        let path = dir.join(".lock");
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                let _ = writeln!(file, "{}", std::process::id());
                Ok(RepoLock(path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(TufError::Locked { path })
            }
            Err(source) => Err(io_error(&path, source)),
        }
    }

    /// Removes the working area after a publish.
    pub fn clear_staged(&self) -> Result<(), TufError> {
        let dir = self.staged_dir();
        for entry in std::fs::read_dir(&dir).map_err(|source| io_error(&dir, source))? {
            let entry = entry.map_err(|source| io_error(&dir, source))?;
            let path = entry.path();
            if entry.file_name() == ".lock" {
                continue;
            }
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|source| io_error(&path, source))?;
        }
        Ok(())
    }
}

/// The repository lock; released on drop.
#[derive(Debug)]
pub(crate) struct RepoLock(PathBuf);

impl Drop for RepoLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        if let Some(dir) = self.0.parent() {
            // Leaves the working area only if nothing else is in it.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

pub(crate) fn read_metadata_file(path: &Path) -> Result<SignedMetadata, TufError> {
    let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
    SignedMetadata::from_slice(&bytes).map_err(|reason| TufError::StagedInvalid {
        file: path.to_path_buf(),
        reason,
    })
}

/// Replaces `path` whole: a temporary sibling, flushed, renamed over it, the directory flushed.
/// Used only for drafts and `timestamp.json`, the files that are meant to change.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), TufError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
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
        std::fs::rename(&temp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(|source| io_error(path, source))
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> TufError {
    TufError::Output(OutputError::Io {
        path: path.to_path_buf(),
        source,
    })
}
