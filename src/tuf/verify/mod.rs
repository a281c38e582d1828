//! The verifying client: the TUF client workflow (specification §5) over a repository
//! directory, from a root the caller already trusts, at a time the caller gives.
//!
//! 1. The trusted root must meet its own root threshold.
//! 2. Then `N+1.root.json`, `N+2.root.json`, … until the next is absent: each must parse, be
//!    signed by a threshold of the previous root's root keys, carry exactly the next version
//!    (an older one is a rollback, a newer one a skipped version), and be signed by a threshold
//!    of its own root keys. Intermediate roots may have expired; the final one may not.
//! 3. `timestamp.json`: signed by the timestamp threshold, not expired, listing the snapshot.
//! 4. The snapshot it lists: length and hashes as listed, signed, not expired, the version
//!    listed (anything else is mix-and-match).
//! 5. The targets metadata the snapshot lists: likewise.
//! 6. Every target file: length and every hash as listed.
//!
//! The order of checks is python-tuf's (`TrustedMetadataSet`), so that both name the same
//! failure. Signatures are checked over the canonical JSON (OLPC) of `signed`; only ECDSA P-256
//! keys (`ecdsa-sha2-nistp256`, PEM SPKI) can be verified, and a key of any other type counts for
//! nothing. The first thing wrong is returned as a [`VerifyError`].
//!
//! ECDSA verification here goes through aws-lc-rs (already in the tree for tough and rcgen) with
//! each key parsed once, rather than through [`PublicKey::verify`] (pure-Rust `p256`): a chain of
//! a thousand roots spends nearly all its time in signature checks, and aws-lc's P-256 is about
//! ten times faster. A unit test holds the two to the same answers.

mod error;
mod source;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

pub use error::{SignatureCount, Signers, VerifyError};
pub(crate) use source::OverlaySource;
pub use source::{DirectorySource, ReadError, RepositorySource};

use super::metadata::{
    hash_hex, parse_time, parse_tuf_key, MetaFile, MetaListFields, RoleKeys, RootFields,
    SignedMetadata, TargetFields, TargetsFields,
};
use super::Role;
use crate::keys::PublicKey;

/// Size limits for metadata files, as python-tuf's defaults.
const ROOT_LIMIT: u64 = 512_000;
const TIMESTAMP_LIMIT: u64 = 16_384;
const SNAPSHOT_LIMIT: u64 = 2_000_000;
const TARGETS_LIMIT: u64 = 5_000_000;

/// How to verify.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The time at which nothing may have expired.
    pub at: Timestamp,
    /// How many root versions after the trusted one are followed before giving up.
    pub max_root_rotations: u64,
    /// Whether every target file's length and hashes are checked (the metadata always is).
    pub check_target_files: bool,
}

impl VerifyOptions {
    /// Verifies at `at`, following up to 4096 root versions and checking every target file.
    pub fn at(at: Timestamp) -> Self {
        VerifyOptions {
            at,
            max_root_rotations: 4096,
            check_target_files: true,
        }
    }
}

/// A repository that verified: what a cluster import installs and records.
#[derive(Clone, Debug)]
pub struct VerifiedRepository {
    /// The version of the root the verification started from.
    pub trusted_root_version: u64,
    /// The final root, timestamp, snapshot and targets, in that order.
    pub roles: Vec<VerifiedRole>,
    /// The targets listed, with lengths and hashes, sorted by name.
    pub targets: Vec<VerifiedTarget>,
    /// The final root file, byte for byte: the next trusted root.
    pub root_bytes: Vec<u8>,
    /// The final root carries the rehearsal mark ([`crate::tuf::REHEARSAL_FIELD`]): its keys
    /// are a rehearsal's throwaway keys.
    pub rehearsal: bool,
}

impl VerifiedRepository {
    /// The final root's version.
    pub fn root_version(&self) -> u64 {
        self.roles[0].version
    }

    /// One role's entry.
    pub fn role(&self, role: Role) -> &VerifiedRole {
        self.roles
            .iter()
            .find(|r| r.role == role)
            .expect("every top-level role is verified")
    }

    /// The machine-readable form printed by `tuf verify --json`.
    pub fn to_json(&self) -> Value {
        let roles: Vec<Value> = self
            .roles
            .iter()
            .map(|r| {
                serde_json::json!({
                    "role": r.role.name(),
                    "version": r.version,
                    "expires": super::metadata::format_time(r.expires),
                    "file": r.file,
                    "threshold": r.threshold,
                    "keyids": r.keyids,
                    "signed_by": r.signed_by,
                })
            })
            .collect();
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "length": t.length,
                    "hashes": t.hashes,
                    "custom": t.custom,
                    "path": t.path,
                })
            })
            .collect();
        serde_json::json!({
            "verified": true,
            "trusted_root_version": self.trusted_root_version,
            "root_version": self.root_version(),
            "rehearsal": self.rehearsal,
            "roles": roles,
            "targets": targets,
        })
    }

    /// The human-readable form printed by `tuf verify`.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "verified: root v{} → v{}\n",
            self.trusted_root_version,
            self.root_version()
        );
        if self.rehearsal {
            text.push_str(&format!(
                "rehearsal: the root says \"{}\"\n",
                crate::tuf::REHEARSAL_MARK
            ));
        }
        for r in &self.roles {
            text.push_str(&format!(
                "{:<9}  v{:<5} expires {}  signed by {} of {} (threshold {})  {}\n",
                r.role.name(),
                r.version,
                super::metadata::format_time(r.expires),
                r.signed_by.len(),
                r.keyids.len(),
                r.threshold,
                r.file
            ));
        }
        for t in &self.targets {
            let sha = t.hashes.get("sha256").map(String::as_str).unwrap_or("-");
            text.push_str(&format!(
                "target     {}  {} bytes  sha256 {}\n",
                t.name, t.length, sha
            ));
        }
        text
    }
}

/// One role as verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRole {
    /// The role.
    pub role: Role,
    /// Its version.
    pub version: u64,
    /// When it expires.
    pub expires: Timestamp,
    /// The file it was read from, relative to the repository.
    pub file: String,
    /// The threshold the final root sets for it.
    pub threshold: u64,
    /// The key ids the final root lists for it.
    pub keyids: Vec<String>,
    /// The key ids whose signatures verified.
    pub signed_by: Vec<String>,
}

/// One target as verified.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedTarget {
    /// The target name.
    pub name: String,
    /// Its length in bytes.
    pub length: u64,
    /// Its hashes (algorithm → lowercase hex).
    pub hashes: BTreeMap<String, String>,
    /// Its custom metadata.
    pub custom: Option<Value>,
    /// Where the file is, relative to the repository (when target files were checked).
    pub path: Option<String>,
}

/// Verifies the repository in `dir` from `trusted_root` (the bytes of a root metadata file the
/// caller already trusts), at `options.at`. Returns what verified, or the first thing wrong.
pub fn verify_repository(
    trusted_root: &[u8],
    dir: &std::path::Path,
    options: &VerifyOptions,
) -> Result<VerifiedRepository, VerifyError> {
    verify_source(trusted_root, &DirectorySource::new(dir), options)
}

/// [`verify_repository`] over any [`RepositorySource`].
pub fn verify_source(
    trusted_root: &[u8],
    source: &dyn RepositorySource,
    options: &VerifyOptions,
) -> Result<VerifiedRepository, VerifyError> {
    let mut keys = KeyCache::default();
    let trusted = load_trusted_root(trusted_root, &mut keys)?;
    let trusted_root_version = trusted.version;
    let root = walk_roots(trusted, source, options.max_root_rotations, &mut keys)?;
    let at = options.at;

    // §5.3.10: the final root must not have expired.
    if root.expires <= at {
        return Err(expired(
            &root.file,
            Role::Root,
            root.version,
            root.expires,
            at,
        ));
    }
    let root_tally = tally(&root, Role::Root, &root.metadata, false);

    // §5.4: timestamp.
    let ts_file = "metadata/timestamp.json".to_string();
    let ts_bytes = read_required(source, &ts_file, Role::Timestamp, TIMESTAMP_LIMIT)?;
    let (ts_md, ts) = parse_listing(&ts_file, Role::Timestamp, &ts_bytes)?;
    let snapshot_meta =
        ts.meta
            .get("snapshot.json")
            .cloned()
            .ok_or_else(|| VerifyError::NotListed {
                parent: Role::Timestamp,
                version: ts.version,
                listed: "snapshot.json".into(),
            })?;
    let ts_tally = require_threshold(&root, Role::Timestamp, &ts_md, &ts_file, ts.version)?;
    let ts_expires = parse_expires(&ts_file, Role::Timestamp, &ts.expires)?;
    if ts_expires <= at {
        return Err(expired(
            &ts_file,
            Role::Timestamp,
            ts.version,
            ts_expires,
            at,
        ));
    }

    // §5.5: snapshot.
    let sn_file = role_file(&root, Role::Snapshot, snapshot_meta.version);
    let sn_bytes = read_required(source, &sn_file, Role::Snapshot, SNAPSHOT_LIMIT)?;
    check_length_and_hashes(&sn_file, Role::Timestamp, &snapshot_meta, &sn_bytes)?;
    let (sn_md, sn) = parse_listing(&sn_file, Role::Snapshot, &sn_bytes)?;
    let sn_tally = require_threshold(&root, Role::Snapshot, &sn_md, &sn_file, sn.version)?;
    let sn_expires = parse_expires(&sn_file, Role::Snapshot, &sn.expires)?;
    if sn_expires <= at {
        return Err(expired(
            &sn_file,
            Role::Snapshot,
            sn.version,
            sn_expires,
            at,
        ));
    }
    if sn.version != snapshot_meta.version {
        return Err(VerifyError::VersionMismatch {
            file: sn_file,
            role: Role::Snapshot,
            parent: Role::Timestamp,
            expected: snapshot_meta.version,
            found: sn.version,
        });
    }

    // §5.6: targets.
    let targets_meta =
        sn.meta
            .get("targets.json")
            .cloned()
            .ok_or_else(|| VerifyError::NotListed {
                parent: Role::Snapshot,
                version: sn.version,
                listed: "targets.json".into(),
            })?;
    let tg_file = role_file(&root, Role::Targets, targets_meta.version);
    let tg_bytes = read_required(source, &tg_file, Role::Targets, TARGETS_LIMIT)?;
    check_length_and_hashes(&tg_file, Role::Snapshot, &targets_meta, &tg_bytes)?;
    let (tg_md, tg) = parse_targets(&tg_file, &tg_bytes)?;
    let tg_tally = require_threshold(&root, Role::Targets, &tg_md, &tg_file, tg.version)?;
    if tg.version != targets_meta.version {
        return Err(VerifyError::VersionMismatch {
            file: tg_file,
            role: Role::Targets,
            parent: Role::Snapshot,
            expected: targets_meta.version,
            found: tg.version,
        });
    }
    let tg_expires = parse_expires(&tg_file, Role::Targets, &tg.expires)?;
    if tg_expires <= at {
        return Err(expired(&tg_file, Role::Targets, tg.version, tg_expires, at));
    }
    if tg
        .delegations
        .as_ref()
        .and_then(|d| d.get("roles"))
        .and_then(Value::as_array)
        .is_some_and(|roles| !roles.is_empty())
        || tg
            .delegations
            .as_ref()
            .is_some_and(|d| d.get("succinct_roles").is_some())
    {
        return Err(VerifyError::Unsupported {
            file: tg_file,
            feature: "delegated targets roles".into(),
        });
    }

    // §5.7: target files.
    let mut targets = Vec::with_capacity(tg.targets.len());
    for (name, info) in &tg.targets {
        let path = if options.check_target_files {
            Some(check_target_file(
                source, &root, tg.version, name, info, &tg_file,
            )?)
        } else {
            safe_target_name(name, tg.version)?;
            None
        };
        targets.push(VerifiedTarget {
            name: name.clone(),
            length: info.length,
            hashes: info.hashes.clone(),
            custom: info.custom.clone(),
            path,
        });
    }

    let role_entry = |role: Role, version, expires, file: String, t: Tally| {
        let keys = &root.roles[&role];
        VerifiedRole {
            role,
            version,
            expires,
            file,
            threshold: keys.threshold,
            keyids: keys.keyids.clone(),
            signed_by: t.valid,
        }
    };
    let roles = vec![
        role_entry(
            Role::Root,
            root.version,
            root.expires,
            root.file.clone(),
            root_tally,
        ),
        role_entry(Role::Timestamp, ts.version, ts_expires, ts_file, ts_tally),
        role_entry(Role::Snapshot, sn.version, sn_expires, sn_file, sn_tally),
        role_entry(Role::Targets, tg.version, tg_expires, tg_file, tg_tally),
    ];
    Ok(VerifiedRepository {
        trusted_root_version,
        roles,
        targets,
        rehearsal: root.rehearsal,
        root_bytes: root.bytes,
    })
}

/// A root the verifier trusts: its parsed keys and roles, and the file it came from.
#[derive(Clone, Debug)]
pub(crate) struct TrustedRoot {
    pub file: String,
    pub version: u64,
    pub expires: Timestamp,
    pub consistent_snapshot: bool,
    /// Key id → the key, when it is one rootcellar can verify.
    pub keys: HashMap<String, Option<Arc<VerifyingKey>>>,
    pub roles: BTreeMap<Role, RoleKeys>,
    pub metadata: SignedMetadata,
    pub bytes: Vec<u8>,
    /// It carries the rehearsal mark.
    pub rehearsal: bool,
}

impl TrustedRoot {
    /// The key ids and threshold of `role`.
    pub fn role(&self, role: Role) -> &RoleKeys {
        &self.roles[&role]
    }
}

/// An ECDSA P-256 public key, parsed once for verification.
pub(crate) struct VerifyingKey {
    public: PublicKey,
    parsed: aws_lc_rs::signature::ParsedPublicKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("VerifyingKey").field(&self.public).finish()
    }
}

impl VerifyingKey {
    fn new(public: PublicKey) -> Option<VerifyingKey> {
        let parsed = aws_lc_rs::signature::ParsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            public.point(),
        )
        .ok()?;
        Some(VerifyingKey { public, parsed })
    }

    /// The public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Whether `der` is a valid ECDSA P-256 / SHA-256 signature of `message` by this key.
    pub fn verify(&self, message: &[u8], der: &[u8]) -> bool {
        SIGNATURES_VERIFIED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.parsed.verify_sig(message, der).is_ok()
    }
}

/// Signature checks made by the TUF client in this process (a benchmark figure: verification
/// is most of the client's work).
static SIGNATURES_VERIFIED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many signatures the TUF client has verified in this process so far.
pub fn signatures_verified() -> u64 {
    SIGNATURES_VERIFIED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Parsed keys by key id, reused along a chain of roots that lists the same keys again and again.
#[derive(Default)]
pub(crate) struct KeyCache {
    keys: HashMap<String, (Value, Option<Arc<VerifyingKey>>)>,
}

impl KeyCache {
    fn get(&mut self, keyid: &str, json: &Value) -> Option<Arc<VerifyingKey>> {
        if let Some((cached, key)) = self.keys.get(keyid) {
            if cached == json {
                return key.clone();
            }
        }
        let key = parse_tuf_key(json)
            .and_then(VerifyingKey::new)
            .map(Arc::new);
        self.keys
            .insert(keyid.to_string(), (json.clone(), key.clone()));
        key
    }

    /// Forgets the keys `root` does not list: walking a long chain keeps only the keys still in
    /// use, so its memory stays flat however many rotations there are.
    fn keep_only(&mut self, root: &TrustedRoot) {
        self.keys.retain(|keyid, _| root.keys.contains_key(keyid));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }
}

/// Loads the trusted root: it must parse and meet its own root threshold (expiry is checked
/// only for the final root).
pub(crate) fn load_trusted_root(
    bytes: &[u8],
    keys: &mut KeyCache,
) -> Result<TrustedRoot, VerifyError> {
    let file = "trusted root".to_string();
    let root = parse_root(&file, bytes, keys)?;
    let t = tally(&root, Role::Root, &root.metadata, true);
    threshold_met(&t, &file, Role::Root, root.version, Signers::Itself)?;
    Ok(root)
}

/// How many roots are read ahead and checked together.
const ROOT_BATCH: usize = 64;

/// Follows `N+1.root.json`, `N+2.root.json`, … from `trusted` while they exist.
///
/// Each step is checked in python-tuf's order: parse, type, the previous root's threshold, the
/// version, the new root's own threshold. A batch of roots is read and parsed on every core (a
/// file past the end of the chain is only looked for), and their signature checks are
/// independent of each other, so they run on every core too; the chain is then walked in
/// order, so that the first thing wrong is the one named, and nothing past the first absent
/// root counts.
pub(crate) fn walk_roots(
    mut trusted: TrustedRoot,
    source: &dyn RepositorySource,
    max_rotations: u64,
    keys: &mut KeyCache,
) -> Result<TrustedRoot, VerifyError> {
    let mut walked = 0u64;
    loop {
        // The next versions, up to one past the limit (to tell that the chain goes on beyond it).
        let room = (max_rotations - walked)
            .saturating_add(1)
            .min(ROOT_BATCH as u64);
        let versions: Vec<u64> = (1..=room)
            .map_while(|n| trusted.version.checked_add(n))
            .collect();
        let mut last = (versions.len() as u64) < room;
        let fetched = parallel_map(versions, |version| {
            let file = format!("metadata/{version}.root.json");
            read_optional(source, &file, Role::Root, ROOT_LIMIT)
                .map(|bytes| bytes.map(|bytes| parse_root_unkeyed(file, bytes)))
        });
        // In order, up to the first absent one (or error, or the limit); their keys read.
        let mut batch: Vec<Result<TrustedRoot, VerifyError>> = Vec::with_capacity(fetched.len());
        for (i, item) in fetched.into_iter().enumerate() {
            let item = match item {
                Ok(None) => {
                    last = true;
                    break;
                }
                Ok(Some(_)) if walked + i as u64 == max_rotations => {
                    Err(VerifyError::TooManyRoots {
                        limit: max_rotations,
                    })
                }
                Ok(Some(parsed)) => parsed.and_then(|unkeyed| unkeyed.with_keys(keys)),
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            batch.push(item);
            if failed {
                break;
            }
        }
        let mut tallies = root_tallies(&trusted, &batch);
        for (item, tally) in batch.into_iter().zip(tallies.iter_mut()) {
            let new = item?;
            let (old, own) = tally.take().expect("every parsed root is tallied");
            let file = new.file.clone();
            threshold_met(
                &old,
                &file,
                Role::Root,
                new.version,
                Signers::Root(trusted.version),
            )?;
            let expected = trusted.version + 1;
            if new.version != expected {
                return Err(VerifyError::RootVersion {
                    file,
                    expected,
                    found: new.version,
                });
            }
            threshold_met(&own, &file, Role::Root, new.version, Signers::Itself)?;
            same_keys_under_same_ids(&trusted, &new)?;
            trusted = new;
            walked += 1;
        }
        keys.keep_only(&trusted);
        if last {
            return Ok(trusted);
        }
    }
}

/// Maps `f` over `items` on up to four threads (in order; on this thread for a few items).
fn parallel_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    // Asked once: the standard library reads the cgroup's CPU quota each time.
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let threads = *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4)
    });
    if threads < 2 || items.len() < 8 {
        return items.into_iter().map(f).collect();
    }
    let count = items.len();
    let mut chunks: Vec<Vec<(usize, T)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        chunks[i % threads].push((i, item));
    }
    let mut results: Vec<Option<R>> = (0..count).map(|_| None).collect();
    std::thread::scope(|scope| {
        let f = &f;
        let workers: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|(i, item)| (i, f(item)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for worker in workers {
            for (i, result) in worker.join().expect("a verification worker does not panic") {
                results[i] = Some(result);
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.expect("every item is mapped"))
        .collect()
}

/// For each parsed root of `batch`, its signatures counted against the previous root's root keys
/// and against its own, stopping at each threshold.
fn root_tallies(
    trusted: &TrustedRoot,
    batch: &[Result<TrustedRoot, VerifyError>],
) -> Vec<Option<(Tally, Tally)>> {
    parallel_map((0..batch.len()).collect(), |i: usize| {
        let new = batch[i].as_ref().ok()?;
        let previous = match i {
            0 => trusted,
            _ => batch[i - 1].as_ref().ok()?,
        };
        let (old, own, _) = rotation_tallies(previous, new);
        Some((old, own))
    })
}

/// The signatures of root `new` counted against `previous`'s root keys and its own, stopping at
/// each threshold; and how many signatures were verified. The old root's threshold is met with
/// the keys both roots list first, so that those checks count again for the new root: a
/// rotation that replaces one key of a 3-of-5 root costs 3 verifications, not 4 (the outgoing
/// key's signature is checked only if the shared keys fall short).
fn rotation_tallies(previous: &TrustedRoot, new: &TrustedRoot) -> (Tally, Tally, usize) {
    let mut checked = SignatureCache {
        prefer: new.role(Role::Root).keyids.clone(),
        ..SignatureCache::default()
    };
    let old = tally_cached(previous, Role::Root, &new.metadata, true, &mut checked);
    let own = tally_cached(new, Role::Root, &new.metadata, true, &mut checked);
    (old, own, checked.checked.len())
}

pub(crate) fn parse_root(
    file: &str,
    bytes: &[u8],
    keys: &mut KeyCache,
) -> Result<TrustedRoot, VerifyError> {
    parse_root_unkeyed(file.to_string(), bytes.to_vec())?.with_keys(keys)
}

/// A root parsed and checked for shape, its keys not yet read.
struct UnkeyedRoot {
    root: TrustedRoot,
    keys: BTreeMap<String, Value>,
}

impl UnkeyedRoot {
    /// The root with its keys read, refused when a role lists one public key under two key
    /// ids: a threshold counts keys, and "2 of 3" signed twice by one key is 1.
    fn with_keys(self, cache: &mut KeyCache) -> Result<TrustedRoot, VerifyError> {
        let UnkeyedRoot { mut root, keys } = self;
        root.keys = keys
            .iter()
            .map(|(keyid, json)| (keyid.clone(), cache.get(keyid, json)))
            .collect();
        for (role, role_keys) in &root.roles {
            let mut seen: Vec<(&String, &Arc<VerifyingKey>)> = Vec::new();
            for keyid in &role_keys.keyids {
                let Some(Some(key)) = root.keys.get(keyid) else {
                    continue;
                };
                if let Some((first, _)) = seen.iter().find(|(_, k)| k.public == key.public) {
                    return Err(VerifyError::Malformed {
                        file: root.file.clone(),
                        role: Role::Root,
                        reason: format!(
                            "roles.{role} lists one public key under two key ids, {first} and \
                             {keyid}: a threshold counts distinct keys"
                        ),
                    });
                }
                seen.push((keyid, key));
            }
        }
        Ok(root)
    }
}

/// Refuses a root that gives a key id of `previous` another key: key ids name keys (they are
/// the key's hash), so a new root that reuses one for a different key is not to be trusted,
/// whichever key its signers meant.
pub(crate) fn same_keys_under_same_ids(
    previous: &TrustedRoot,
    new: &TrustedRoot,
) -> Result<(), VerifyError> {
    for (keyid, key) in &new.keys {
        let (Some(Some(old)), Some(key)) = (previous.keys.get(keyid), key) else {
            continue;
        };
        if old.public != key.public {
            return Err(VerifyError::Malformed {
                file: new.file.clone(),
                role: Role::Root,
                reason: format!(
                    "key id {keyid} names another key than it did in root v{}",
                    previous.version
                ),
            });
        }
    }
    Ok(())
}

fn parse_root_unkeyed(file: String, bytes: Vec<u8>) -> Result<UnkeyedRoot, VerifyError> {
    let malformed = |reason: String| VerifyError::Malformed {
        file: file.clone(),
        role: Role::Root,
        reason,
    };
    let metadata = SignedMetadata::from_slice(&bytes).map_err(malformed)?;
    check_type(&file, Role::Root, &metadata)?;
    let fields =
        RootFields::deserialize(metadata.signed()).map_err(|e| malformed(e.to_string()))?;
    check_common(
        &file,
        Role::Root,
        &fields.kind,
        &fields.spec_version,
        fields.version,
    )?;
    let expires = parse_expires(&file, Role::Root, &fields.expires)?;
    let mut roles = BTreeMap::new();
    for (name, role_keys) in fields.roles {
        let role = Role::from_name(&name)
            .ok_or_else(|| malformed(format!("roles lists {name:?}, not a top-level role")))?;
        check_role_keys(&role_keys)
            .map_err(|reason| malformed(format!("roles.{name}: {reason}")))?;
        roles.insert(role, role_keys);
    }
    if roles.len() != Role::ALL.len() {
        let missing: Vec<&str> = Role::ALL
            .iter()
            .filter(|r| !roles.contains_key(r))
            .map(|r| r.name())
            .collect();
        return Err(malformed(format!(
            "roles lacks {}; a root lists every top-level role",
            missing.join(", ")
        )));
    }
    Ok(UnkeyedRoot {
        root: TrustedRoot {
            file,
            version: fields.version,
            expires,
            consistent_snapshot: fields.consistent_snapshot.unwrap_or(false),
            keys: HashMap::new(),
            roles,
            metadata,
            bytes,
            rehearsal: fields.rehearsal.is_some(),
        },
        keys: fields.keys,
    })
}

fn check_role_keys(keys: &RoleKeys) -> Result<(), String> {
    if keys.threshold < 1 {
        return Err("threshold must be at least 1".into());
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = keys.keyids.iter().find(|k| !seen.insert(k.as_str())) {
        return Err(format!("key id {dup} is listed twice"));
    }
    Ok(())
}

fn check_type(file: &str, role: Role, metadata: &SignedMetadata) -> Result<(), VerifyError> {
    match metadata.role_type() {
        Some(t) if t == role.name() => Ok(()),
        Some(t) => Err(VerifyError::WrongType {
            file: file.to_string(),
            expected: role,
            found: t.to_string(),
        }),
        None => Err(VerifyError::Malformed {
            file: file.to_string(),
            role,
            reason: "no \"_type\" string".into(),
        }),
    }
}

fn check_common(
    file: &str,
    role: Role,
    kind: &str,
    spec_version: &str,
    version: u64,
) -> Result<(), VerifyError> {
    let malformed = |reason: String| VerifyError::Malformed {
        file: file.to_string(),
        role,
        reason,
    };
    debug_assert_eq!(kind, role.name());
    let parts: Vec<&str> = spec_version.split('.').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(malformed(format!(
            "spec_version {spec_version:?} is not N.N(.N)"
        )));
    }
    if parts[0] != "1" {
        return Err(malformed(format!(
            "spec_version {spec_version} is not a version 1 specification"
        )));
    }
    if version == 0 {
        return Err(malformed("version must be at least 1".into()));
    }
    Ok(())
}

fn parse_expires(file: &str, role: Role, text: &str) -> Result<Timestamp, VerifyError> {
    parse_time(text).ok_or_else(|| VerifyError::Malformed {
        file: file.to_string(),
        role,
        reason: format!("expires {text:?} is not of the form YYYY-MM-DDTHH:MM:SSZ"),
    })
}

fn parse_listing(
    file: &str,
    role: Role,
    bytes: &[u8],
) -> Result<(SignedMetadata, MetaListFields), VerifyError> {
    let malformed = |reason: String| VerifyError::Malformed {
        file: file.to_string(),
        role,
        reason,
    };
    let metadata = SignedMetadata::from_slice(bytes).map_err(malformed)?;
    check_type(file, role, &metadata)?;
    let fields =
        MetaListFields::deserialize(metadata.signed()).map_err(|e| malformed(e.to_string()))?;
    check_common(
        file,
        role,
        &fields.kind,
        &fields.spec_version,
        fields.version,
    )?;
    for (name, meta) in &fields.meta {
        check_meta(meta).map_err(|reason| malformed(format!("meta.{name}: {reason}")))?;
    }
    Ok((metadata, fields))
}

fn check_meta(meta: &MetaFile) -> Result<(), String> {
    if meta.version == 0 {
        return Err("version must be at least 1".into());
    }
    if meta.hashes.as_ref().is_some_and(BTreeMap::is_empty) {
        return Err("hashes, when given, must not be empty".into());
    }
    Ok(())
}

fn parse_targets(file: &str, bytes: &[u8]) -> Result<(SignedMetadata, TargetsFields), VerifyError> {
    let malformed = |reason: String| VerifyError::Malformed {
        file: file.to_string(),
        role: Role::Targets,
        reason,
    };
    let metadata = SignedMetadata::from_slice(bytes).map_err(malformed)?;
    check_type(file, Role::Targets, &metadata)?;
    let fields =
        TargetsFields::deserialize(metadata.signed()).map_err(|e| malformed(e.to_string()))?;
    check_common(
        file,
        Role::Targets,
        &fields.kind,
        &fields.spec_version,
        fields.version,
    )?;
    for (name, target) in &fields.targets {
        if target.hashes.is_empty() {
            return Err(malformed(format!("target {name:?} lists no hashes")));
        }
    }
    Ok((metadata, fields))
}

/// The file a role's metadata is fetched from: versioned under consistent snapshots.
fn role_file(root: &TrustedRoot, role: Role, version: u64) -> String {
    if root.consistent_snapshot {
        format!("metadata/{version}.{}.json", role.name())
    } else {
        format!("metadata/{}.json", role.name())
    }
}

fn read_optional(
    source: &dyn RepositorySource,
    file: &str,
    role: Role,
    limit: u64,
) -> Result<Option<Vec<u8>>, VerifyError> {
    source.read(file, limit).map_err(|e| match e {
        ReadError::TooLarge => VerifyError::TooLarge {
            file: file.to_string(),
            role,
            limit,
        },
        ReadError::Io(e) => VerifyError::Unreadable {
            file: file.to_string(),
            reason: e.to_string(),
        },
    })
}

fn read_required(
    source: &dyn RepositorySource,
    file: &str,
    role: Role,
    limit: u64,
) -> Result<Vec<u8>, VerifyError> {
    read_optional(source, file, role, limit)?.ok_or_else(|| VerifyError::Missing {
        file: file.to_string(),
    })
}

fn check_length_and_hashes(
    file: &str,
    parent: Role,
    meta: &MetaFile,
    bytes: &[u8],
) -> Result<(), VerifyError> {
    if let Some(length) = meta.length {
        if bytes.len() as u64 != length {
            return Err(VerifyError::LengthMismatch {
                file: file.to_string(),
                parent,
                expected: length,
                found: bytes.len() as u64,
            });
        }
    }
    if let Some(hashes) = &meta.hashes {
        check_hashes(file, parent, hashes, bytes)?;
    }
    Ok(())
}

fn check_hashes(
    file: &str,
    parent: Role,
    hashes: &BTreeMap<String, String>,
    bytes: &[u8],
) -> Result<(), VerifyError> {
    for (algorithm, expected) in hashes {
        let found = hash_hex(algorithm, bytes).ok_or_else(|| VerifyError::UnsupportedHash {
            file: file.to_string(),
            parent,
            algorithm: algorithm.clone(),
        })?;
        if !found.eq_ignore_ascii_case(expected) {
            return Err(VerifyError::HashMismatch {
                file: file.to_string(),
                parent,
                algorithm: algorithm.clone(),
                expected: expected.clone(),
                found,
            });
        }
    }
    Ok(())
}

/// A target name as a relative path that stays inside `targets/`.
fn safe_target_name(name: &str, version: u64) -> Result<(), VerifyError> {
    let safe = !name.is_empty()
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && !name.contains('\0')
        && !name.contains('\\');
    if safe {
        Ok(())
    } else {
        Err(VerifyError::UnsafeTargetName {
            version,
            name: name.to_string(),
        })
    }
}

/// Checks one target file; returns where it was found.
fn check_target_file(
    source: &dyn RepositorySource,
    root: &TrustedRoot,
    version: u64,
    name: &str,
    info: &TargetFields,
    _targets_file: &str,
) -> Result<String, VerifyError> {
    safe_target_name(name, version)?;
    // Found by fuzzing: a listed hash such as "/2659…" or "../x" became part of the path asked
    // of the repository. A digest is hex, nothing else.
    for (algorithm, hash) in &info.hashes {
        if hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(VerifyError::MalformedTargetHash {
                version,
                name: name.to_string(),
                algorithm: algorithm.clone(),
            });
        }
    }
    let (dir, base) = match name.rsplit_once('/') {
        Some((dir, base)) => (format!("{dir}/"), base),
        None => (String::new(), name),
    };
    // Under consistent snapshots a file is stored as `<hash>.<name>`; python-tuf fetches it by
    // the first hash listed, so any listed hash names it.
    let candidates: Vec<String> = if root.consistent_snapshot {
        info.hashes
            .values()
            .map(|hash| format!("targets/{dir}{hash}.{base}"))
            .collect()
    } else {
        vec![format!("targets/{name}")]
    };
    let limit = info.length;
    for path in &candidates {
        let bytes = match source.read(path, limit) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => continue,
            Err(ReadError::TooLarge) => {
                return Err(VerifyError::LengthMismatch {
                    file: path.clone(),
                    parent: Role::Targets,
                    expected: info.length,
                    found: info.length.saturating_add(1),
                })
            }
            Err(ReadError::Io(e)) => {
                return Err(VerifyError::Unreadable {
                    file: path.clone(),
                    reason: e.to_string(),
                })
            }
        };
        if bytes.len() as u64 != info.length {
            return Err(VerifyError::LengthMismatch {
                file: path.clone(),
                parent: Role::Targets,
                expected: info.length,
                found: bytes.len() as u64,
            });
        }
        check_hashes(path, Role::Targets, &info.hashes, &bytes)?;
        return Ok(path.clone());
    }
    Err(VerifyError::Missing {
        file: candidates
            .into_iter()
            .next()
            .unwrap_or_else(|| format!("targets/{name}")),
    })
}

/// The signatures over one metadata file counted against one role of one root.
pub(crate) type Tally = SignatureCount;

/// Results of signature checks over one payload, by key id and point, so that a key that is in
/// both the old and the new root is checked once.
#[derive(Default)]
struct SignatureCache {
    checked: Vec<(String, Arc<VerifyingKey>, bool)>,
    /// Key ids whose signatures are checked before the others (they count twice).
    prefer: Vec<String>,
}

/// Counts the valid signatures of `metadata` by the keys `root` gives `role`.
pub(crate) fn tally(
    root: &TrustedRoot,
    role: Role,
    metadata: &SignedMetadata,
    stop_at_threshold: bool,
) -> Tally {
    tally_cached(
        root,
        role,
        metadata,
        stop_at_threshold,
        &mut SignatureCache::default(),
    )
}

fn tally_cached(
    root: &TrustedRoot,
    role: Role,
    metadata: &SignedMetadata,
    stop_at_threshold: bool,
    cache: &mut SignatureCache,
) -> Tally {
    let role_keys = root.role(role);
    let mut tally = Tally {
        threshold: role_keys.threshold,
        ..Tally::default()
    };
    // Keys whose signature over this payload was checked already (a key of both the old and
    // the new root) count first; the others are checked only while the threshold is not met.
    let mut pending = Vec::new();
    for keyid in &role_keys.keyids {
        match (root.keys.get(keyid), metadata.signature(keyid)) {
            (Some(Some(key)), Some(signature)) => {
                let known = cache.checked.iter().find(|(id, k, _)| {
                    id == keyid && (Arc::ptr_eq(k, key) || k.public == key.public)
                });
                match known {
                    Some((_, _, true)) => tally.valid.push(keyid.clone()),
                    Some((_, _, false)) => tally.unsigned.push(keyid.clone()),
                    None => pending.push((keyid, key, signature)),
                }
            }
            _ => tally.unsigned.push(keyid.clone()),
        }
    }
    // Stable: within each group, the role's order.
    pending.sort_by_key(|(keyid, _, _)| !cache.prefer.contains(keyid));
    for (keyid, key, signature) in pending {
        if stop_at_threshold && tally.met() {
            break;
        }
        let ok = hex::decode(&signature.sig)
            .is_ok_and(|der| key.verify(metadata.canonical_signed(), &der));
        cache.checked.push((keyid.clone(), key.clone(), ok));
        if ok {
            tally.valid.push(keyid.clone());
        } else {
            tally.unsigned.push(keyid.clone());
        }
    }
    if !stop_at_threshold {
        // Reported in the role's order.
        let order = |id: &String| role_keys.keyids.iter().position(|k| k == id);
        tally.valid.sort_by_key(order);
        tally.unsigned.sort_by_key(order);
    }
    tally.foreign = metadata
        .signatures()
        .iter()
        .filter(|s| !role_keys.keyids.contains(&s.keyid))
        .map(|s| s.keyid.clone())
        .collect();
    tally
}

fn threshold_met(
    tally: &Tally,
    file: &str,
    role: Role,
    version: u64,
    signers: Signers,
) -> Result<(), VerifyError> {
    if tally.met() {
        return Ok(());
    }
    Err(VerifyError::ThresholdNotMet {
        file: file.to_string(),
        role,
        version,
        signers,
        count: Box::new(tally.clone()),
    })
}

fn require_threshold(
    root: &TrustedRoot,
    role: Role,
    metadata: &SignedMetadata,
    file: &str,
    version: u64,
) -> Result<Tally, VerifyError> {
    let t = tally(root, role, metadata, false);
    threshold_met(&t, file, role, version, Signers::Root(root.version))?;
    Ok(t)
}

fn expired(file: &str, role: Role, version: u64, expires: Timestamp, at: Timestamp) -> VerifyError {
    VerifyError::Expired {
        file: file.to_string(),
        role,
        version,
        expires,
        at,
    }
}
