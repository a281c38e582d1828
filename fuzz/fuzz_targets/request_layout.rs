//! A request bundle's entries laid out as the console lays them out for a ceremony's inputs
//! ([`lay_out_inputs`], the decision `extract_inputs` makes before it writes anything), against
//! the inputs of every real script in `ceremony/`.
//!
//! The input is a list of entries, each introduced by a line `=TYPE NAME` (the first at the
//! very start, the others after a newline, which is not part of the entry before); the rest is
//! the entry's contents. They are added to a request as a reader would accept them: names and
//! duplicates are checked, contents are not (a hostile requester need not use `bundle new`), and
//! an entry that a reader would refuse (unknown type, unsafe or duplicate name) ends the input.
//!
//! For each script, the request is refused, or every entry is placed: at a path of plain names
//! below the inputs directory (what the writer accepts), no two entries at one path or one
//! below another, a named input's entry under its own name and of a type that fits, and the
//! others in the repository input's `metadata/` (TUF metadata) or `targets/` (stored target
//! names), with the repository's `1.root.json` among them.
#![no_main]

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rootcellar::bundle::{place_path, BundleBuilder, BundleKind, EntryInfo, EntryType};
use rootcellar::ceremony::{lay_out_inputs, InputKind, Script};

/// The real scripts.
fn scripts() -> &'static [Script] {
    static SCRIPTS: OnceLock<Vec<Script>> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        [
            (
                "backup-keys",
                include_str!("../../ceremony/backup-keys.toml"),
            ),
            ("issue-crl", include_str!("../../ceremony/issue-crl.toml")),
            (
                "issue-intermediate",
                include_str!("../../ceremony/issue-intermediate.toml"),
            ),
            (
                "publish-trust-root",
                include_str!("../../ceremony/publish-trust-root.toml"),
            ),
            (
                "restore-keys",
                include_str!("../../ceremony/restore-keys.toml"),
            ),
            ("root-init", include_str!("../../ceremony/root-init.toml")),
            (
                "rotate-tuf-root",
                include_str!("../../ceremony/rotate-tuf-root.toml"),
            ),
        ]
        .into_iter()
        .map(|(name, text)| {
            let path = PathBuf::from(format!("ceremony/{name}.toml"));
            Script::parse(text, &path).expect("the real scripts parse")
        })
        .collect()
    })
}

/// A fixed request time (the layout does not depend on it).
fn confirmed() -> rootcellar::time::ConfirmedTime {
    let time = rootcellar::time::parse("2026-12-06T00:00:00Z").expect("a valid time");
    let reference = rootcellar::time::Reference {
        clock: time,
        build_time: time,
        latest_record: None,
        policy: rootcellar::time::TimePolicy::default(),
    };
    match rootcellar::time::check(time, &reference) {
        Ok(rootcellar::time::Checked::Confirmed(t)) => t,
        _ => unreachable!("the clock is the time"),
    }
}

/// The entries of the input: `(header, contents)`.
fn split(data: &[u8]) -> Vec<(&[u8], &[u8])> {
    let Some(rest) = data.strip_prefix(b"=") else {
        return vec![];
    };
    let mut entries = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < rest.len() {
        if rest[i] == b'\n' && rest[i + 1] == b'=' {
            entries.push(&rest[start..i]);
            start = i + 2;
            i = start;
        } else {
            i += 1;
        }
    }
    entries.push(&rest[start..]);
    entries
        .into_iter()
        .map(|entry| match entry.iter().position(|&b| b == b'\n') {
            Some(n) => (&entry[..n], &entry[n + 1..]),
            None => (entry, &entry[entry.len()..]),
        })
        .collect()
}

/// The request's entries as a reader accepts them, or `None` when it would refuse them.
fn request(data: &[u8]) -> Option<Vec<EntryInfo>> {
    let mut builder = BundleBuilder::new(BundleKind::Request, confirmed());
    for (header, contents) in split(data) {
        let header = std::str::from_utf8(header).ok()?;
        let (type_name, name) = header.split_once(' ')?;
        let entry_type = EntryType::from_name(type_name)?;
        builder
            .add_with_media_type(
                entry_type,
                name,
                "application/octet-stream",
                contents.to_vec(),
            )
            .ok()?;
    }
    Some(builder.manifest().entries.clone())
}

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

/// `<sha256 or sha512 hex>.<name>`: a target file as a repository stores it.
fn stored_target(name: &str) -> bool {
    name.split_once('.').is_some_and(|(digest, target)| {
        matches!(digest.len(), 64 | 128)
            && digest.bytes().all(|b| b.is_ascii_hexdigit())
            && !target.is_empty()
    })
}

fn check(script: &Script, entries: &[EntryInfo]) {
    let ceremony = &script.ceremony.name;
    let Ok(places) = lay_out_inputs(ceremony, &script.inputs, entries.iter()) else {
        return;
    };
    let mut paths = BTreeSet::new();
    for entry in entries {
        let place = places
            .get(&entry.name)
            .unwrap_or_else(|| panic!("{ceremony}: {:?} has no place", entry.name));
        let path = place_path(place)
            .unwrap_or_else(|e| panic!("{ceremony}: {place:?} cannot be written: {e}"));
        assert!(
            path.components().all(|c| matches!(c, Component::Normal(_))),
            "{ceremony}: {path:?} leaves the inputs directory"
        );
        assert!(Path::new("/inputs").join(&path).starts_with("/inputs"));
        assert!(paths.insert(path), "{ceremony}: two entries at {place:?}");
        match script.inputs.iter().find(|i| i.name == entry.name) {
            Some(input) => {
                assert_eq!(place, &[entry.name.clone()], "{ceremony}");
                assert!(fits(input.kind, entry.entry_type), "{ceremony}: {entry:?}");
            }
            None => {
                let [repo, dir, name] = place.as_slice() else {
                    panic!("{ceremony}: {:?} placed at {place:?}", entry.name);
                };
                assert_eq!(name, &entry.name);
                let input = script.inputs.iter().find(|i| &i.name == repo);
                assert!(
                    input.is_some_and(|i| i.kind == InputKind::TufMetadata),
                    "{ceremony}: {place:?} is not in a repository input"
                );
                match dir.as_str() {
                    "metadata" => assert_eq!(entry.entry_type, EntryType::TufMetadata),
                    "targets" => assert!(stored_target(name), "{ceremony}: {name:?}"),
                    other => panic!("{ceremony}: {other:?} in a repository"),
                }
            }
        }
    }
    assert_eq!(
        places.len(),
        entries.len(),
        "{ceremony}: a place for no entry"
    );
    for path in &paths {
        for other in &paths {
            assert!(
                path == other || !other.starts_with(path),
                "{ceremony}: {other:?} is below the file {path:?}"
            );
        }
    }
    if places.values().any(|p| p.len() > 1) {
        assert!(entries
            .iter()
            .any(|e| e.name == "1.root.json" && e.entry_type == EntryType::TufMetadata));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(entries) = request(data) else {
        return;
    };
    for script in scripts() {
        check(script, &entries);
    }
});
