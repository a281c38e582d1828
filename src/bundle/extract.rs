//! Extraction: entries into a new directory, which appears whole or not at all.
//!
//! An entry lands under its own name, or at a place the caller gives (a relative path of plain
//! names, as a ceremony lays a TUF repository out of a request's entries).
//!
//! The entries are written into a temporary sibling (`.tmp-<random>-<name>`), each file created
//! new and flushed, the directory flushed, and then the sibling is renamed to the target. The
//! target must not exist beforehand. (`rename(2)` would replace an *empty* directory created in
//! the instant between that check and the rename; it never replaces a file or a directory with
//! anything in it.)

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::BundleError;
use super::names::check_entry_name;

/// Writes each `(place, contents)` into the new directory `dir`, where `place` is the path
/// below `dir` as a list of plain names (each checked with [`check_entry_name`]). Returns the
/// paths written.
pub(super) fn extract_into_new_dir<'a>(
    entries: impl Iterator<Item = (Vec<String>, &'a [u8])>,
    dir: &Path,
) -> Result<Vec<PathBuf>, BundleError> {
    if dir.symlink_metadata().is_ok() {
        return Err(BundleError::TargetExists(dir.to_path_buf()));
    }
    let temp = crate::files::temp_sibling(dir).ok_or_else(|| BundleError::Extract {
        path: dir.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the target has no directory name",
        ),
    })?;
    // temp_sibling always names a path inside the output's parent directory.
    let parent = temp.parent().unwrap_or(Path::new("."));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BundleError::Extract { path, source }
    };
    // A failure here is about the parent (missing, read-only): name it, not the temporary.
    std::fs::create_dir(&temp).map_err(io(parent))?;
    let written = (|| {
        let mut places = Vec::new();
        for (place, data) in entries {
            // Checked when the bundle was read; checked again at the one place it matters.
            let relative = place_path(&place)?;
            let path = temp.join(&relative);
            if place.len() > 1 {
                // Inside the fresh temporary directory, below names just checked.
                let parent = path.parent().unwrap_or(&temp);
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(io(&path))?;
            file.write_all(data).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
            places.push(relative);
        }
        sync_directories(&temp).map_err(io(&temp))?;
        if dir.symlink_metadata().is_ok() {
            return Err(BundleError::TargetExists(dir.to_path_buf()));
        }
        std::fs::rename(&temp, dir).map_err(io(dir))?;
        sync_dir(parent).map_err(io(parent))?;
        Ok(places)
    })();
    match written {
        Ok(places) => Ok(places.into_iter().map(|p| dir.join(p)).collect()),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&temp);
            Err(e)
        }
    }
}

/// The path below the extraction directory that `place` (a list of names) stands for, each name
/// checked with [`check_entry_name`]; an empty place is checked as an empty name, and refused as
/// one. What this accepts cannot name anything outside the directory.
pub fn place_path(place: &[String]) -> Result<PathBuf, BundleError> {
    if place.is_empty() {
        check_entry_name("")?;
    }
    let mut relative = PathBuf::new();
    for name in place {
        check_entry_name(name)?;
        relative.push(name);
    }
    Ok(relative)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Flushes `dir` and every directory below it (children first).
fn sync_directories(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_directories(&entry.path())?;
        }
    }
    sync_dir(dir)
}
