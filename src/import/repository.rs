//! The TUF repository a response bundle carries, read in place: the checks an import makes
//! around the verifier (where the chain starts, gaps, rollback across imports), and the files
//! of the mirror it writes.
//!
//! A bundle's entry names are plain file names, so a repository travels flat: each
//! `tuf-metadata` entry is a metadata file under its own name (`2.root.json`, `timestamp.json`,
//! `3.snapshot.json`, …), and any other entry may be a target file, under the name a mirror
//! stores it by (`<sha256>.trusted_root.json` under consistent snapshots) or under its target
//! name (`trusted_root.json`). The verifier reads them as `metadata/NAME` and `targets/NAME`;
//! entries it does not ask for (a transcript, a journal segment) are never part of the mirror,
//! and target files are written to the mirror under the names clients fetch them by.

use std::collections::BTreeMap;

use super::ImportError;
use crate::bundle::{EntryType, VerifiedBundle};
use crate::tuf::{sha256_hex, ReadError, RepositorySource, Role, VerifiedRepository};

/// A verified bundle seen as a repository directory (`metadata/`, `targets/`).
pub(super) struct BundleRepository<'a> {
    metadata: BTreeMap<&'a str, &'a [u8]>,
    files: BTreeMap<&'a str, &'a [u8]>,
}

impl<'a> BundleRepository<'a> {
    pub fn new(bundle: &'a VerifiedBundle) -> Self {
        let mut metadata = BTreeMap::new();
        let mut files = BTreeMap::new();
        for (info, data) in bundle.entries() {
            match info.entry_type {
                EntryType::TufMetadata => metadata.insert(info.name.as_str(), data),
                _ => files.insert(info.name.as_str(), data),
            };
        }
        BundleRepository { metadata, files }
    }

    /// The root versions carried (`N.root.json`, N written without leading zeros), in order.
    pub fn root_versions(&self) -> BTreeMap<u64, &'a [u8]> {
        self.metadata
            .iter()
            .filter_map(|(name, data)| {
                let digits = name.strip_suffix(".root.json")?;
                let version: u64 = digits.parse().ok()?;
                (version.to_string() == digits).then_some((version, *data))
            })
            .collect()
    }

    /// A file by its repository path, if the bundle carries it. A target file stored under a
    /// hash prefix (`targets/<sha256>.NAME`) may travel under its plain name (`NAME`); whether
    /// its bytes have that hash is for the verifier to say.
    pub fn file(&self, path: &str) -> Option<&'a [u8]> {
        if let Some(name) = path.strip_prefix("metadata/") {
            self.metadata.get(name).copied()
        } else if let Some(name) = path.strip_prefix("targets/") {
            self.files.get(name).copied().or_else(|| {
                let (_, plain) = crate::tuf::hash_prefixed_target(name)?;
                self.files.get(plain).copied()
            })
        } else {
            None
        }
    }
}

impl RepositorySource for BundleRepository<'_> {
    fn read(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
        match self.file(path) {
            Some(bytes) if bytes.len() as u64 > limit => Err(ReadError::TooLarge),
            Some(bytes) => Ok(Some(bytes.to_vec())),
            None => Ok(None),
        }
    }
}

/// Checks, before the verifier runs, that the bundle's chain of roots can start at the trusted
/// root: the bundle's root of the trusted version (if it carries one) is that root byte for
/// byte; it carries no newest root older than the trusted one (a rollback); and its newer roots
/// follow on without a gap (a verifier would otherwise stop at the gap and ignore the rest).
pub(super) fn check_chain(
    repo: &BundleRepository<'_>,
    trusted_version: u64,
    trusted_bytes: &[u8],
) -> Result<(), ImportError> {
    if repo.metadata.is_empty() {
        return Err(ImportError::NoMetadata);
    }
    let roots = repo.root_versions();
    if let Some(bytes) = roots.get(&trusted_version) {
        if *bytes != trusted_bytes {
            return Err(ImportError::ChainStart {
                version: trusted_version,
                trusted: sha256_hex(trusted_bytes),
                found: sha256_hex(bytes),
            });
        }
    }
    if let Some((&newest, _)) = roots.last_key_value() {
        if newest < trusted_version {
            return Err(ImportError::RootRollback {
                newest,
                trusted: trusted_version,
            });
        }
    }
    let mut expected = trusted_version.saturating_add(1);
    for &version in roots.keys().filter(|v| **v > trusted_version) {
        if version != expected {
            return Err(ImportError::ChainGap {
                trusted: trusted_version,
                missing: expected,
                present: version,
            });
        }
        expected = version.saturating_add(1);
    }
    Ok(())
}

/// The versions a previous import recorded, for the rollback check across imports.
#[derive(Clone, Copy, Debug)]
pub(super) struct ImportedVersions {
    pub timestamp: u64,
    pub snapshot: u64,
    pub targets: u64,
}

/// Refuses timestamp, snapshot or targets metadata older than what was imported before (TUF
/// §5.4.3, §5.5.5, §5.6.5, across imports instead of across refreshes).
pub(super) fn check_versions(
    verified: &VerifiedRepository,
    previous: Option<ImportedVersions>,
) -> Result<(), ImportError> {
    let Some(previous) = previous else {
        return Ok(());
    };
    for (role, imported) in [
        (Role::Timestamp, previous.timestamp),
        (Role::Snapshot, previous.snapshot),
        (Role::Targets, previous.targets),
    ] {
        let found = verified.role(role).version;
        if found < imported {
            return Err(ImportError::MetadataRollback {
                role,
                found,
                imported,
            });
        }
    }
    Ok(())
}

/// The roots the verifier walked after the trusted one, by version.
pub(super) fn walked_roots(
    repo: &BundleRepository<'_>,
    verified: &VerifiedRepository,
) -> BTreeMap<u64, Vec<u8>> {
    (verified.trusted_root_version + 1..=verified.root_version())
        .map(|version| {
            let path = format!("metadata/{version}.root.json");
            let bytes = repo
                .file(&path)
                .expect("the verifier read every root it walked");
            (version, bytes.to_vec())
        })
        .collect()
}

/// The files of the mirror, by path relative to it, in the layout cosign, sigstore-go and
/// policy-controller read: metadata at the top (`roots`: every root version the cluster has
/// verified; `timestamp.json`; the snapshot and targets verified), target files under
/// `targets/` by the names the verifier found them under.
pub(super) fn mirror_files(
    repo: &BundleRepository<'_>,
    verified: &VerifiedRepository,
    roots: &BTreeMap<u64, Vec<u8>>,
) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for (version, bytes) in roots {
        files.insert(format!("{version}.root.json"), bytes.clone());
    }
    for role in [Role::Timestamp, Role::Snapshot, Role::Targets] {
        let path = &verified.role(role).file;
        let bytes = repo
            .file(path)
            .expect("the verifier read every role's file");
        let name = path.strip_prefix("metadata/").unwrap_or(path);
        files.insert(name.to_string(), bytes.to_vec());
    }
    for target in &verified.targets {
        let path = target
            .path
            .as_deref()
            .expect("target files are checked on import");
        let bytes = repo
            .file(path)
            .expect("the verifier read every target file");
        files.insert(path.to_string(), bytes.to_vec());
    }
    files
}

/// The bytes of the verified target `name`, if the targets metadata lists it.
pub(super) fn target_bytes<'a>(
    repo: &BundleRepository<'a>,
    verified: &VerifiedRepository,
    name: &str,
) -> Option<&'a [u8]> {
    let target = verified.targets.iter().find(|t| t.name == name)?;
    repo.file(target.path.as_deref()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo<'a>(
        metadata: &[(&'a str, &'a [u8])],
        files: &[(&'a str, &'a [u8])],
    ) -> BundleRepository<'a> {
        BundleRepository {
            metadata: metadata.iter().copied().collect(),
            files: files.iter().copied().collect(),
        }
    }

    #[test]
    fn the_chain_must_start_at_the_trusted_root_and_continue_without_a_gap() {
        let ok = repo(
            &[
                ("2.root.json", b"two"),
                ("3.root.json", b"three"),
                ("1.root.json", b"old"),
            ],
            &[],
        );
        // Roots older than the trusted one are not compared: the state holds its own copies.
        assert!(check_chain(&ok, 2, b"two").is_ok());
        let err = check_chain(&ok, 2, b"other").unwrap_err();
        assert!(
            matches!(err, ImportError::ChainStart { version: 2, .. }),
            "{err}"
        );

        let gap = repo(&[("2.root.json", b"two"), ("4.root.json", b"four")], &[]);
        let err = check_chain(&gap, 2, b"two").unwrap_err();
        assert!(
            matches!(
                err,
                ImportError::ChainGap {
                    trusted: 2,
                    missing: 3,
                    present: 4
                }
            ),
            "{err}"
        );

        let old = repo(&[("1.root.json", b"one"), ("timestamp.json", b"{}")], &[]);
        let err = check_chain(&old, 2, b"two").unwrap_err();
        assert!(
            matches!(
                err,
                ImportError::RootRollback {
                    newest: 1,
                    trusted: 2
                }
            ),
            "{err}"
        );

        // No root at all: the chain is the trusted root alone (the verifier checks the rest).
        let none = repo(&[("timestamp.json", b"{}")], &[]);
        assert!(check_chain(&none, 2, b"two").is_ok());
        let err = check_chain(&repo(&[], &[]), 2, b"two").unwrap_err();
        assert!(matches!(err, ImportError::NoMetadata), "{err}");
        // Leading zeros do not name a root version.
        assert!(repo(&[("01.root.json", b"x")], &[])
            .root_versions()
            .is_empty());
    }

    #[test]
    fn metadata_older_than_the_previous_import_is_a_rollback() {
        let role = |role: Role, version: u64| crate::tuf::VerifiedRole {
            role,
            version,
            expires: jiff::Timestamp::UNIX_EPOCH,
            file: String::new(),
            threshold: 1,
            keyids: Vec::new(),
            signed_by: Vec::new(),
        };
        let verified = VerifiedRepository {
            trusted_root_version: 1,
            roles: vec![
                role(Role::Root, 1),
                role(Role::Timestamp, 5),
                role(Role::Snapshot, 4),
                role(Role::Targets, 3),
            ],
            targets: Vec::new(),
            root_bytes: Vec::new(),
            rehearsal: false,
        };
        let previous = |timestamp, snapshot, targets| {
            Some(ImportedVersions {
                timestamp,
                snapshot,
                targets,
            })
        };
        assert!(check_versions(&verified, None).is_ok());
        assert!(check_versions(&verified, previous(5, 4, 3)).is_ok());
        let err = check_versions(&verified, previous(6, 4, 3)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rollback check failed: the bundle's timestamp metadata is v5, older than the v6 \
             imported before"
        );
        let err = check_versions(&verified, previous(5, 4, 9)).unwrap_err();
        assert!(
            matches!(
                err,
                ImportError::MetadataRollback {
                    role: Role::Targets,
                    found: 3,
                    imported: 9
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn target_files_are_found_by_stored_or_plain_name() {
        let hash = "ab".repeat(32);
        let stored = format!("{hash}.signing_config.json");
        let r = repo(
            &[("timestamp.json", b"ts")],
            &[
                ("trusted_root.json", b"plain"),
                (stored.as_str(), b"stored"),
            ],
        );
        assert_eq!(r.file("metadata/timestamp.json"), Some(&b"ts"[..]));
        assert_eq!(r.file("targets/trusted_root.json"), Some(&b"plain"[..]));
        assert_eq!(
            r.file(&format!("targets/{hash}.trusted_root.json")),
            Some(&b"plain"[..])
        );
        assert_eq!(r.file(&format!("targets/{stored}")), Some(&b"stored"[..]));
        // Only a hash prefix is stripped; metadata is never a target and vice versa.
        assert_eq!(r.file("targets/prefix.trusted_root.json"), None);
        assert_eq!(r.file("targets/timestamp.json"), None);
        assert_eq!(r.file("metadata/trusted_root.json"), None);
        assert_eq!(r.file("trusted_root.json"), None);
    }
}
