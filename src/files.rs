//! Output files: created new and whole, never overwritten, never half-written.
//!
//! A file is written to a temporary sibling, flushed to disk, then hard-linked into place: the
//! link fails if the name exists, so an existing output is never replaced, and a crash leaves
//! either no file or the complete file (plus, at worst, a stray `.tmp-` sibling).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output exists already; rootcellar never overwrites.
    #[error("output {0} exists already; refusing to overwrite it")]
    Exists(PathBuf),
    /// The file system refused.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Fails if any of `paths` exists. Called before an HSM is asked to sign, so that a signature
/// is never made for an output that cannot be written.
pub fn ensure_absent<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<(), OutputError> {
    for path in paths {
        if path.symlink_metadata().is_ok() {
            return Err(OutputError::Exists(path.to_path_buf()));
        }
    }
    Ok(())
}

/// A fresh, unpredictable name beside `path` (`.tmp-NONCE-NAME`) to build an output in before
/// it is moved into place; `None` when `path` has no final component.
pub fn temp_sibling(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut nonce = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    Some(dir.join(format!(".tmp-{}-{name}", hex::encode(nonce))))
}

/// Writes `contents` to `path`, which must not exist.
pub fn write_new(path: &Path, contents: &[u8]) -> Result<(), OutputError> {
    let io = |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    };
    ensure_absent([path])?;
    let temp = temp_sibling(path).ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the output has no file name",
        ))
    })?;
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::hard_link(&temp, path)
    })();
    let _ = std::fs::remove_file(&temp);
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(OutputError::Exists(path.to_path_buf()))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_once_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.pem");
        write_new(&path, b"first").unwrap();
        let err = write_new(&path, b"second").unwrap_err();
        assert!(matches!(err, OutputError::Exists(_)), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }
}
