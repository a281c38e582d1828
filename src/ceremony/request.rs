//! A request bundle as a ceremony's inputs.
//!
//! A bundle's entries are plain files (names without `/`), while a script's inputs are files
//! or, for a `tuf-metadata` input, a TUF repository directory. The request is laid out for the
//! runner like this:
//!
//! - an input is the entry of the same name, whose type must fit the input's kind (a `file`
//!   input takes any type);
//! - a `tuf-metadata` input that no entry is named after is a repository made of the request's
//!   other entries: every `tuf-metadata` entry in `NAME/metadata/`, and every entry named as a
//!   repository stores a target file (`<sha256>.<target name>`) in `NAME/targets/`. That is how
//!   `bundle new --tuf-metadata repo/metadata/*.json --file repo/targets/*` packs a repository
//!   (an import's `repository/` mirror, say), and how `import` reads one;
//! - an entry that no input takes is refused, so that what the witnesses see listed is exactly
//!   what the ceremony uses.
//!
//! Nothing is written unless every entry has its place; then all of them are written at once
//! (see [`crate::bundle::VerifiedBundle::extract_placed`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::script::{InputKind, InputSpec};
use crate::bundle::{BundleError, EntryInfo, EntryType, VerifiedBundle};
use crate::tuf::{hash_prefixed_target, METADATA_DIR, TARGETS_DIR};

/// Why a request does not fit the ceremony's inputs.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// An input has no entry.
    #[error("the request carries no entry {name:?}, which {ceremony} takes as its {kind} input")]
    Missing {
        /// The input (and the entry name expected).
        name: String,
        /// Its kind.
        kind: &'static str,
        /// The ceremony.
        ceremony: String,
    },
    /// An entry's type does not fit its input's kind.
    #[error("entry {name:?} is of type {found}, but {ceremony} takes it as a {kind} input")]
    WrongType {
        /// The entry.
        name: String,
        /// Its type in the bundle.
        found: &'static str,
        /// The input's kind.
        kind: &'static str,
        /// The ceremony.
        ceremony: String,
    },
    /// A repository input without its first root.
    #[error(
        "the request carries no TUF repository for {ceremony}'s input {name:?}: it needs the \
         repository's metadata as tuf-metadata entries, 1.root.json among them (bundle new \
         --tuf-metadata REPO/metadata/*.json --file REPO/targets/*)"
    )]
    NoRepository {
        /// The input.
        name: String,
        /// The ceremony.
        ceremony: String,
    },
    /// Two repository inputs: the entries could belong to either.
    #[error(
        "{ceremony} takes two TUF repositories ({first:?}, {second:?}); a request can carry one"
    )]
    TwoRepositories {
        /// The first.
        first: String,
        /// The second.
        second: String,
        /// The ceremony.
        ceremony: String,
    },
    /// An entry no input takes.
    #[error(
        "entry {name:?} is not one of {ceremony}'s inputs ({expected}); a request carries \
         exactly what the ceremony uses"
    )]
    Unused {
        /// The entry.
        name: String,
        /// The ceremony.
        ceremony: String,
        /// The inputs, listed.
        expected: String,
    },
    /// The entries could not be written.
    #[error(transparent)]
    Extract(#[from] BundleError),
}

/// Writes `request`'s entries into the new directory `dir` as `ceremony`'s `inputs` (see the
/// module documentation); returns each entry's name with the path it was written to.
pub fn extract_inputs(
    ceremony: &str,
    inputs: &[InputSpec],
    request: &VerifiedBundle,
    dir: &Path,
) -> Result<Vec<(String, PathBuf)>, RequestError> {
    let places = lay_out_inputs(ceremony, inputs, request.entries().map(|(info, _)| info))?;
    request.extract_placed(dir, |info| places.get(&info.name).cloned())?;
    let mut written: Vec<(String, PathBuf)> = places
        .into_iter()
        .map(|(name, place)| (name, place.iter().collect()))
        .collect();
    written.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(written)
}

/// Each entry's place below the inputs directory `extract_inputs` writes, as plain names (see
/// the module documentation): the whole decision, made before anything is written. Every entry
/// has a place, or the request is refused.
pub fn lay_out_inputs<'a>(
    ceremony: &str,
    inputs: &[InputSpec],
    entries: impl Iterator<Item = &'a EntryInfo>,
) -> Result<BTreeMap<String, Vec<String>>, RequestError> {
    let entries: Vec<&EntryInfo> = entries.collect();
    let by_name = |name: &str| entries.iter().find(|e| e.name == name).copied();
    let mut places = BTreeMap::new();
    let mut repository: Option<&str> = None;
    for input in inputs {
        match by_name(&input.name) {
            Some(entry) => {
                if !fits(input.kind, entry.entry_type) {
                    return Err(RequestError::WrongType {
                        name: entry.name.clone(),
                        found: entry.entry_type.name(),
                        kind: input.kind.name(),
                        ceremony: ceremony.to_string(),
                    });
                }
                places.insert(entry.name.clone(), vec![entry.name.clone()]);
            }
            None if input.kind == InputKind::TufMetadata => {
                if let Some(first) = repository {
                    return Err(RequestError::TwoRepositories {
                        first: first.to_string(),
                        second: input.name.clone(),
                        ceremony: ceremony.to_string(),
                    });
                }
                repository = Some(&input.name);
            }
            None => {
                return Err(RequestError::Missing {
                    name: input.name.clone(),
                    kind: input.kind.name(),
                    ceremony: ceremony.to_string(),
                })
            }
        }
    }
    if let Some(repo) = repository {
        for entry in &entries {
            if places.contains_key(&entry.name) {
                continue;
            }
            let dir = if entry.entry_type == EntryType::TufMetadata {
                METADATA_DIR
            } else if hash_prefixed_target(&entry.name).is_some() {
                TARGETS_DIR
            } else {
                continue;
            };
            places.insert(
                entry.name.clone(),
                vec![repo.to_string(), dir.to_string(), entry.name.clone()],
            );
        }
        let has_root = entries
            .iter()
            .any(|e| e.name == "1.root.json" && e.entry_type == EntryType::TufMetadata);
        if !has_root {
            return Err(RequestError::NoRepository {
                name: repo.to_string(),
                ceremony: ceremony.to_string(),
            });
        }
    }
    if let Some(unused) = entries.iter().find(|e| !places.contains_key(&e.name)) {
        return Err(RequestError::Unused {
            name: unused.name.clone(),
            ceremony: ceremony.to_string(),
            expected: expected_list(inputs),
        });
    }
    Ok(places)
}

/// Whether an entry of type `found` can be an input of `kind`.
fn fits(kind: InputKind, found: EntryType) -> bool {
    match kind {
        InputKind::File => true,
        InputKind::Csr => found == EntryType::Csr,
        InputKind::Certificate => found == EntryType::Certificate,
        InputKind::PublicKey => found == EntryType::PublicKey,
        InputKind::TufMetadata => found == EntryType::TufMetadata,
        InputKind::TrustedRoot => found == EntryType::TrustedRoot,
    }
}

fn expected_list(inputs: &[InputSpec]) -> String {
    inputs
        .iter()
        .map(|i| match i.kind {
            InputKind::TufMetadata => format!(
                "{}: a TUF repository's metadata and <sha256>.<name> target files",
                i.name
            ),
            kind => format!("{} ({})", i.name, kind.name()),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, kind: InputKind) -> InputSpec {
        InputSpec {
            name: name.into(),
            kind,
        }
    }

    fn entry(name: &str, entry_type: EntryType) -> EntryInfo {
        EntryInfo {
            name: name.into(),
            entry_type,
            media_type: "application/octet-stream".into(),
            length: 1,
            sha256: [0; 32],
        }
    }

    fn places(inputs: &[InputSpec], entries: &[EntryInfo]) -> Result<Vec<String>, RequestError> {
        Ok(lay_out_inputs("c", inputs, entries.iter())?
            .into_values()
            .map(|p| p.join("/"))
            .collect())
    }

    fn target(name: &str) -> String {
        format!("{}.{name}", "ab".repeat(32))
    }

    #[test]
    fn a_repository_is_laid_out_beside_named_inputs() {
        let inputs = [
            input("tuf", InputKind::TufMetadata),
            input("trusted_root.json", InputKind::TrustedRoot),
            input("signing_config.v0.2.json", InputKind::File),
        ];
        let old_target = target("trusted_root.json");
        let laid = places(
            &inputs,
            &[
                entry("1.root.json", EntryType::TufMetadata),
                entry("2.root.json", EntryType::TufMetadata),
                entry("timestamp.json", EntryType::TufMetadata),
                entry(&old_target, EntryType::OpaqueFile),
                entry("trusted_root.json", EntryType::TrustedRoot),
                entry("signing_config.v0.2.json", EntryType::OpaqueFile),
            ],
        )
        .unwrap();
        let mut expected = vec![
            "tuf/metadata/1.root.json".to_string(),
            "tuf/metadata/2.root.json".into(),
            "tuf/metadata/timestamp.json".into(),
            format!("tuf/targets/{old_target}"),
            "trusted_root.json".into(),
            "signing_config.v0.2.json".into(),
        ];
        let mut laid = laid;
        laid.sort();
        expected.sort();
        assert_eq!(laid, expected);
    }

    #[test]
    fn each_misfit_is_named() {
        let csr = [input("fulcio.csr", InputKind::Csr)];
        let err = places(&csr, &[]).unwrap_err();
        assert!(err.to_string().contains("no entry \"fulcio.csr\""), "{err}");
        let err = places(&csr, &[entry("fulcio.csr", EntryType::Certificate)]).unwrap_err();
        assert!(
            matches!(
                &err,
                RequestError::WrongType {
                    found: "certificate",
                    kind: "csr",
                    ..
                }
            ),
            "{err}"
        );
        let err = places(
            &csr,
            &[
                entry("fulcio.csr", EntryType::Csr),
                entry("extra.pem", EntryType::Certificate),
            ],
        )
        .unwrap_err();
        assert!(
            matches!(&err, RequestError::Unused { name, .. } if name == "extra.pem"),
            "{err}"
        );
        // A repository needs its first root; a stray non-target file is not taken into it.
        let tuf = [input("tuf", InputKind::TufMetadata)];
        let err = places(&tuf, &[entry("2.root.json", EntryType::TufMetadata)]).unwrap_err();
        assert!(matches!(err, RequestError::NoRepository { .. }), "{err}");
        let err = places(
            &tuf,
            &[
                entry("1.root.json", EntryType::TufMetadata),
                entry("notes.txt", EntryType::OpaqueFile),
            ],
        )
        .unwrap_err();
        assert!(
            matches!(&err, RequestError::Unused { name, .. } if name == "notes.txt"),
            "{err}"
        );
        let two = [
            input("tuf", InputKind::TufMetadata),
            input("other", InputKind::TufMetadata),
        ];
        let err = places(&two, &[entry("1.root.json", EntryType::TufMetadata)]).unwrap_err();
        assert!(matches!(err, RequestError::TwoRepositories { .. }), "{err}");
    }

    #[test]
    fn stored_target_names() {
        assert!(hash_prefixed_target(&target("trusted_root.json")).is_some());
        assert!(hash_prefixed_target("trusted_root.json").is_none());
        assert!(hash_prefixed_target(&format!("{}.", "ab".repeat(32))).is_none());
        assert!(hash_prefixed_target(&format!("{}.x", "zz".repeat(32))).is_none());
    }
}
