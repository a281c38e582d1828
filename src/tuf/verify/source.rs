//! Where the verifier reads a repository from: a directory as a mirror serves it (`metadata/`,
//! `targets/`), or, while publishing, that directory with the files about to be written laid
//! over it, so that a repository is verified before it is changed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A repository the verifier can read. Paths are relative to the repository, `/`-separated
/// (`metadata/2.root.json`, `targets/<sha256>.<name>`). `Ok(None)` means the file is absent.
/// `Sync`: the client reads a batch of roots on several threads.
pub trait RepositorySource: Sync {
    /// Reads `path`, refusing more than `limit` bytes (`Err` with "larger than").
    fn read(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, ReadError>;
}

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// It is larger than the limit.
    TooLarge,
    /// The file system said this.
    Io(std::io::Error),
}

/// A repository directory.
#[derive(Clone, Debug)]
pub struct DirectorySource {
    dir: PathBuf,
}

impl DirectorySource {
    /// The repository in `dir`.
    pub fn new(dir: &Path) -> Self {
        DirectorySource {
            dir: dir.to_path_buf(),
        }
    }
}

impl RepositorySource for DirectorySource {
    fn read(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
        let full = self.dir.join(path);
        let file = match std::fs::File::open(&full) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ReadError::Io(e)),
        };
        // Sized from the file's length (up to the limit), so it is read without regrowing.
        let length = file.metadata().map_or(0, |m| m.len()).min(limit);
        let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0).saturating_add(1));
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(ReadError::Io)?;
        if bytes.len() as u64 > limit {
            return Err(ReadError::TooLarge);
        }
        Ok(Some(bytes))
    }
}

/// A repository with some files replaced or added in memory.
pub(crate) struct OverlaySource<'a> {
    pub base: &'a dyn RepositorySource,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl RepositorySource for OverlaySource<'_> {
    fn read(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
        match self.files.get(path) {
            Some(bytes) if bytes.len() as u64 > limit => Err(ReadError::TooLarge),
            Some(bytes) => Ok(Some(bytes.clone())),
            None => self.base.read(path, limit),
        }
    }
}
