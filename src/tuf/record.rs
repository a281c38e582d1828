//! What a TUF command is about to write, told to its caller before the first file appears: a
//! caller that keeps a journal (`rootcellar tuf … --state`) records it first, so that no signed
//! metadata exists unrecorded, even when the command is killed while writing. A command whose
//! record fails writes nothing.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::TufError;

/// A file a command is about to write: its path under the repository and its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingFile {
    /// The path, relative to the repository.
    pub path: PathBuf,
    /// The SHA-256 of the bytes to be written.
    pub sha256: [u8; 32],
}

impl PendingFile {
    pub(super) fn of(path: impl Into<PathBuf>, bytes: &[u8]) -> Self {
        PendingFile {
            path: path.into(),
            sha256: Sha256::digest(bytes).into(),
        }
    }
}

/// Told what a command is about to write.
pub trait BeforeWrite {
    /// Records `files` before the first of them is written; an error stops the command with
    /// nothing written.
    fn before_write(
        &mut self,
        files: &[PendingFile],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// For callers that record elsewhere: a ceremony journals each step's outputs as the engine
/// moves them into place, from the step's scratch directory.
pub struct Unrecorded;

impl BeforeWrite for Unrecorded {
    fn before_write(
        &mut self,
        _files: &[PendingFile],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(())
    }
}

impl<F> BeforeWrite for F
where
    F: FnMut(&[PendingFile]) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
{
    fn before_write(
        &mut self,
        files: &[PendingFile],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self(files)
    }
}

/// Calls `record` with `files` (paths made relative to `repo` where they are under it).
pub(super) fn record(
    record: &mut dyn BeforeWrite,
    repo: &Path,
    files: Vec<PendingFile>,
) -> Result<(), TufError> {
    let files: Vec<PendingFile> = files
        .into_iter()
        .map(|f| PendingFile {
            path: f
                .path
                .strip_prefix(repo)
                .map(Path::to_path_buf)
                .unwrap_or(f.path),
            sha256: f.sha256,
        })
        .collect();
    record
        .before_write(&files)
        .map_err(|source| TufError::NotRecorded { source })
}
