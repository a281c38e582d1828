//! Extraction: every entry into a new directory, which appears whole or not at all.
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
use super::EntryInfo;

pub(super) fn extract_into_new_dir<'a>(
    entries: impl Iterator<Item = (&'a EntryInfo, &'a [u8])>,
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
    std::fs::create_dir(&temp).map_err(io(&temp))?;
    let written = (|| {
        let mut names = Vec::new();
        for (info, data) in entries {
            // Checked when the bundle was read; checked again at the one place it matters.
            check_entry_name(&info.name)?;
            let path = temp.join(&info.name);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(io(&path))?;
            file.write_all(data).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
            names.push(info.name.clone());
        }
        sync_dir(&temp).map_err(io(&temp))?;
        if dir.symlink_metadata().is_ok() {
            return Err(BundleError::TargetExists(dir.to_path_buf()));
        }
        std::fs::rename(&temp, dir).map_err(io(dir))?;
        sync_dir(parent).map_err(io(parent))?;
        Ok(names)
    })();
    match written {
        Ok(names) => Ok(names.into_iter().map(|n| dir.join(n)).collect()),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&temp);
            Err(e)
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
