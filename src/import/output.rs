//! The output directory: built whole in a temporary sibling, then renamed into place, so that it
//! appears complete or not at all and never replaces anything.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::repository::{self, BundleRepository};
use super::ImportError;
use crate::trustroot::{SigningConfig, TrustedRoot, SIGNING_CONFIG_MEDIA_TYPE, TRUST_CONFIG_FILE};
use crate::tuf::VerifiedRepository;

/// The signing config target `trustroot build` writes and publish-trust-root publishes.
const SIGNING_CONFIG_TARGET: &str = "signing_config.v0.2.json";

/// `trust_config.json`, when the repository publishes a signing config: the verified trusted
/// root and the verified signing config target as one client trust config (`sigstore verify
/// --trust-config`).
pub(super) fn trust_config(
    repo: &BundleRepository<'_>,
    verified: &VerifiedRepository,
    trusted_root: &TrustedRoot,
) -> Result<Option<(String, Vec<u8>)>, ImportError> {
    let Some(bytes) = repository::target_bytes(repo, verified, SIGNING_CONFIG_TARGET) else {
        return Ok(None);
    };
    let bad = |reason: String| ImportError::BadSigningConfig {
        name: SIGNING_CONFIG_TARGET,
        reason,
    };
    let signing_config: SigningConfig =
        serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if signing_config.media_type != SIGNING_CONFIG_MEDIA_TYPE {
        return Err(bad(format!(
            "its media type {:?} is not {SIGNING_CONFIG_MEDIA_TYPE:?}",
            signing_config.media_type
        )));
    }
    let json = crate::trustroot::trust_config_json(trusted_root, &signing_config);
    Ok(Some((TRUST_CONFIG_FILE.into(), json.into_bytes())))
}

/// Writes `files` (paths relative to `dir`, `/`-separated) into the new directory `dir`, which
/// must not exist.
pub(super) fn write_new_dir(
    dir: &Path,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<(), ImportError> {
    if dir.symlink_metadata().is_ok() {
        return Err(ImportError::OutputExists(dir.to_path_buf()));
    }
    let temp = crate::files::temp_sibling(dir).ok_or_else(|| ImportError::Write {
        path: dir.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the output has no directory name",
        ),
    })?;
    // temp_sibling always names a path inside the output's parent directory.
    let parent = temp.parent().unwrap_or(Path::new("."));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImportError::Write { path, source }
    };
    // A failure here is about the parent (missing, read-only): name it, not the temporary.
    std::fs::create_dir(&temp).map_err(io(parent))?;
    let written = (|| {
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        dirs.insert(temp.clone());
        for (relative, bytes) in files {
            let path = temp.join(relative);
            let file_dir = path.parent().unwrap_or(&temp).to_path_buf();
            if !dirs.contains(&file_dir) {
                std::fs::create_dir_all(&file_dir).map_err(io(&file_dir))?;
                for ancestor in file_dir.ancestors().take_while(|a| *a != temp) {
                    dirs.insert(ancestor.to_path_buf());
                }
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(io(&path))?;
            file.write_all(bytes).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        // Deepest first, so each directory is flushed after what it holds.
        for d in dirs.iter().rev() {
            sync_dir(d).map_err(io(d))?;
        }
        if dir.symlink_metadata().is_ok() {
            return Err(ImportError::OutputExists(dir.to_path_buf()));
        }
        std::fs::rename(&temp, dir).map_err(io(dir))?;
        sync_dir(parent).map_err(io(parent))
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&temp);
    }
    written
}

/// Flushes a directory's entries to disk.
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
