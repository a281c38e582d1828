//! Files and directories of a ceremony's work, hashed and copied whole: an output is a file or
//! a directory (a TUF repository), and either is recorded by one SHA-256.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn sha256_file(path: &Path) -> std::io::Result<String> {
    Ok(hex::encode(Sha256::digest(std::fs::read(path)?)))
}

/// SHA-256 of a file, or of a directory's files (sorted relative paths and contents).
pub(super) fn sha256_tree(path: &Path) -> std::io::Result<String> {
    if path.is_file() {
        return sha256_file(path);
    }
    let mut files = Vec::new();
    collect_files(path, path, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    for relative in files {
        let digest = sha256_file(&path.join(&relative))?;
        hasher.update(format!("{digest}  {}\n", relative.display()));
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Every file below `dir`, as a path relative to `root`.
pub(super) fn collect_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// Copies a file, or a directory and everything in it.
pub(super) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_file() {
        std::fs::copy(from, to)?;
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        copy_tree(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}
