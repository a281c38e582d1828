//! The TUF client over hostile metadata: a trusted root, a chain of roots, timestamp, snapshot,
//! targets and target files, all from the input. It must never panic or hang, and whatever it
//! accepts must hold together: every role verified, none expired at the verification time, each
//! signed by at least its threshold of distinct listed keys, the final root one of the roots
//! served, and every target exactly the bytes served for it (length and SHA-256). Verifying
//! twice gives the same answer. It never asks for a file outside the repository's `metadata/`
//! and `targets/`.
//!
//! The input is a list of parts, each introduced by a line `=NAME` (the first at the very
//! start, the others after a newline, which is not part of the part before):
//!
//! - `=trusted`: the root the client already trusts (the first such part);
//! - `=root`: the chain, served in order as `metadata/N.root.json` from the first `N` asked for;
//! - `=timestamp`, `=snapshot`, `=targets`: served for that role's file, whatever its version;
//! - `=target NAME`: served for a target file whose path ends with `NAME`.
//!
//! A signature cannot be forged, so a mutated payload signed by the demo's HSM keys stops at the
//! signature check. Metadata that carries a signature entry by one of three fixed test keys is
//! therefore signed afresh by that key over its payload as mutated (and served as rootcellar
//! writes metadata), so that mutations of a repository of test keys reach what is checked after
//! the signatures: versions, expiry, the listings, target names and files.
//!
//! The seeds are the demo's repositories and one of test keys (made with placeholder
//! signatures), laid out this way; the verification time is fixed inside their validity.
#![no_main]

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use rootcellar::bundle::SoftwareKey;
use rootcellar::keys::Signer;
use rootcellar::tuf::{
    sha256_hex, verify_source, ReadError, RepositorySource, Role, SignedMetadata, TufKey,
    VerifiedRepository, VerifyOptions,
};

/// A day after the demo that made the seeds: every role of theirs is valid then.
const AT: &str = "2026-12-07T00:00:00Z";

/// The (public, test-only) keys whose signatures are made afresh, by TUF key id.
fn test_keys() -> &'static HashMap<String, SoftwareKey> {
    static KEYS: OnceLock<HashMap<String, SoftwareKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        [0x11u8, 0x22, 0x33]
            .into_iter()
            .map(|byte| {
                let key = SoftwareKey::p256_from_bytes(&[byte; 32], "fuzz:tuf-key")
                    .expect("valid scalar");
                let id = TufKey::from_public(key.public_key())
                    .expect("a P-256 key")
                    .key_id;
                (id, key)
            })
            .collect()
    })
}

/// `part` with each signature by a test key made afresh over its payload, written as rootcellar
/// writes metadata; `None` when it is not metadata or names no test key. Signatures are
/// deterministic (RFC 6979), so those made for an unchanged payload are kept.
fn resign(part: &[u8]) -> Option<Vec<u8>> {
    static MADE: Mutex<Option<HashMap<(String, Vec<u8>), Vec<u8>>>> = Mutex::new(None);
    let mut metadata = SignedMetadata::from_slice(part).ok()?;
    let keyids: Vec<String> = metadata
        .signatures()
        .iter()
        .map(|s| s.keyid.clone())
        .filter(|id| test_keys().contains_key(id))
        .collect();
    if keyids.is_empty() {
        return None;
    }
    let mut made = MADE.lock().unwrap();
    let made = made.get_or_insert_with(HashMap::new);
    if made.len() > 4096 {
        made.clear();
    }
    for keyid in keyids {
        let payload = metadata.canonical_signed().to_vec();
        let der = made
            .entry((keyid.clone(), payload))
            .or_insert_with_key(|(id, payload)| test_keys()[id].sign(payload).expect("signs"))
            .clone();
        metadata.add_signature(&keyid, &der);
    }
    Some(metadata.to_bytes())
}

#[derive(Default)]
struct Parts<'a> {
    trusted: Option<Cow<'a, [u8]>>,
    roots: Vec<Cow<'a, [u8]>>,
    timestamp: Option<Cow<'a, [u8]>>,
    snapshot: Option<Cow<'a, [u8]>>,
    targets: Option<Cow<'a, [u8]>>,
    files: Vec<(&'a [u8], &'a [u8])>,
}

/// A metadata part, signed afresh where it names a test key.
fn metadata(body: &[u8]) -> Option<Cow<'_, [u8]>> {
    Some(resign(body).map_or(Cow::Borrowed(body), Cow::Owned))
}

fn split(data: &[u8]) -> Parts<'_> {
    let mut parts = Parts::default();
    let Some(rest) = data.strip_prefix(b"=") else {
        return parts;
    };
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < rest.len() {
        if rest[i] == b'\n' && rest[i + 1] == b'=' {
            chunks.push(&rest[start..i]);
            start = i + 2;
            i = start;
        } else {
            i += 1;
        }
    }
    chunks.push(&rest[start..]);
    for chunk in chunks {
        let (head, body) = match chunk.iter().position(|&b| b == b'\n') {
            Some(n) => (&chunk[..n], &chunk[n + 1..]),
            None => (chunk, &chunk[chunk.len()..]),
        };
        match head {
            b"trusted" if parts.trusted.is_none() => parts.trusted = metadata(body),
            b"root" => parts.roots.extend(metadata(body)),
            b"timestamp" => parts.timestamp = metadata(body),
            b"snapshot" => parts.snapshot = metadata(body),
            b"targets" => parts.targets = metadata(body),
            _ => {
                if let Some(name) = head.strip_prefix(b"target ") {
                    parts.files.push((name, body));
                }
            }
        }
    }
    parts
}

/// Serves the parts by the role of the path asked for, and remembers what it served.
struct Source<'a> {
    parts: &'a Parts<'a>,
    first_root: Cell<Option<u64>>,
    served: RefCell<Vec<(String, &'a [u8])>>,
}

impl<'a> Source<'a> {
    fn find(&self, path: &str) -> Option<&'a [u8]> {
        let parts = self.parts;
        if let Some(file) = path.strip_prefix("metadata/") {
            if let Some(version) = file.strip_suffix(".root.json") {
                let version: u64 = version.parse().ok()?;
                let first = self.first_root.get().unwrap_or(version);
                self.first_root.set(Some(first));
                let index = usize::try_from(version.checked_sub(first)?).ok()?;
                return parts.roots.get(index).map(|r| &**r);
            }
            let part = if file.ends_with("timestamp.json") {
                &parts.timestamp
            } else if file.ends_with("snapshot.json") {
                &parts.snapshot
            } else if file.ends_with("targets.json") {
                &parts.targets
            } else {
                return None;
            };
            return part.as_deref();
        }
        if path.starts_with("targets/") {
            return parts
                .files
                .iter()
                .find(|(name, _)| !name.is_empty() && path.as_bytes().ends_with(name))
                .map(|(_, body)| *body);
        }
        None
    }
}

impl RepositorySource for Source<'_> {
    fn read(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
        let inside = path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains(['\\', '\0']));
        assert!(
            inside && (path.starts_with("metadata/") || path.starts_with("targets/")),
            "the client asks for {path:?}, outside the repository"
        );
        match self.find(path) {
            Some(bytes) if bytes.len() as u64 > limit => Err(ReadError::TooLarge),
            Some(bytes) => {
                self.served.borrow_mut().push((path.to_string(), bytes));
                Ok(Some(bytes.to_vec()))
            }
            None => Ok(None),
        }
    }
}

fn at() -> jiff::Timestamp {
    rootcellar::time::parse(AT).expect("a valid time")
}

/// Verifies `parts` from `trusted`; returns the outcome and the files served, in order.
fn verify<'a>(
    parts: &'a Parts<'a>,
    trusted: &[u8],
) -> (Result<VerifiedRepository, String>, Vec<(String, &'a [u8])>) {
    let source = Source {
        parts,
        first_root: Cell::new(None),
        served: RefCell::new(Vec::new()),
    };
    let result =
        verify_source(trusted, &source, &VerifyOptions::at(at())).map_err(|e| e.to_string());
    (result, source.served.into_inner())
}

fn check(parts: &Parts<'_>, trusted: &[u8], served: &[(String, &[u8])], v: &VerifiedRepository) {
    let roles: Vec<Role> = v.roles.iter().map(|r| r.role).collect();
    assert_eq!(
        roles,
        [Role::Root, Role::Timestamp, Role::Snapshot, Role::Targets]
    );
    assert!(v.root_version() >= v.trusted_root_version);
    assert!(
        v.root_bytes == trusted || parts.roots.iter().any(|r| **r == v.root_bytes),
        "the final root is one of the roots served"
    );
    for role in &v.roles {
        assert!(
            role.expires > at(),
            "{} v{} expired",
            role.role,
            role.version
        );
        assert!(role.threshold >= 1);
        assert!(role.signed_by.len() as u64 >= role.threshold, "{role:?}");
        for (i, keyid) in role.signed_by.iter().enumerate() {
            assert!(role.keyids.contains(keyid), "{role:?}");
            assert!(!role.signed_by[..i].contains(keyid), "{role:?}");
        }
    }
    for target in &v.targets {
        let path = target.path.as_deref().expect("target files are checked");
        assert!(path.starts_with("targets/"), "{path}");
        assert!(
            path.split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."),
            "{path}"
        );
        let (_, bytes) = served
            .iter()
            .rev()
            .find(|(p, _)| p == path)
            .expect("a verified target was served");
        assert_eq!(target.length, bytes.len() as u64, "{path}");
        if let Some(sha256) = target.hashes.get("sha256") {
            assert!(sha256.eq_ignore_ascii_case(&sha256_hex(bytes)), "{path}");
        }
    }
    let _ = v.to_text();
}

fuzz_target!(|data: &[u8]| {
    let parts = split(data);
    let Some(trusted) = parts.trusted.as_deref() else {
        return;
    };
    let (result, served) = verify(&parts, trusted);
    if let Ok(verified) = &result {
        check(&parts, trusted, &served, verified);
        let (again, _) = verify(&parts, trusted);
        let again = again.expect("verifies again");
        assert_eq!(verified.to_json(), again.to_json());
    }
});
