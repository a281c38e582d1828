//! Root signatures from custodians where they are. At the appliance, a drafted root is
//! described for one custodian ([`root_signing_request`]): the draft's bytes, every published
//! root (so that a custodian who trusts any earlier root can follow the chain) and the change.
//! On the custodian's own machine, [`check_root_request`] follows the chain from the root they
//! trust, as a TUF client does, and checks that their key may sign the draft; the signature
//! they make is a [`RootSignature`]. Back at the appliance, [`accept_root_signatures`] checks
//! each one over the exact staged bytes and adds them to the draft, all or none.
//!
//! The bundles that carry these across the air gap are made in [`crate::remote_signing`].

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::diff::describe_root_draft;
use super::layout::Repo;
use super::metadata::{SignedMetadata, TufKey};
use super::record::{BeforeWrite, PendingFile};
use super::status::{DraftStatus, KeyLabel, Staged};
use super::verify::{self, KeyCache, OverlaySource, ReadError, RepositorySource, TrustedRoot};
use super::{Role, TufError};
use crate::keys::{PublicKey, Signer};

/// What a custodian away from the appliance needs to sign a drafted root.
#[derive(Clone, Debug)]
pub struct RootSigningRequest {
    /// The key asked to sign.
    pub key: KeyLabel,
    /// The current (published) root's version.
    pub previous_version: u64,
    /// The draft's version.
    pub version: u64,
    /// SHA-256 of the draft's payload (canonical JSON): what the custodian signs.
    pub payload_sha256: String,
    /// The draft file as staged.
    pub draft: Vec<u8>,
    /// Every published root, `(version, file)`, from 1 to `previous_version`.
    pub roots: Vec<(u64, Vec<u8>)>,
    /// The change, as the console shows it before a custodian signs.
    pub change: Vec<String>,
    /// Key id → policy name, for every key the roots list.
    pub names: BTreeMap<String, String>,
}

/// A request for `custodian` (a policy key name or a TUF key id) to sign the root drafted in
/// the repository in `dir`. Refuses when no root is drafted or the key may not sign it.
pub fn root_signing_request(dir: &Path, custodian: &str) -> Result<RootSigningRequest, TufError> {
    let repo = Repo::open(dir)?;
    let staged = Staged::load(&repo)?;
    let Some((draft, new)) = &staged.root else {
        return Err(TufError::NothingStaged {
            dir: repo.staged_dir(),
            hint: "draft the next root first (tuf rotate)".into(),
        });
    };
    let entitled = staged.entitled(draft);
    let key_id = entitled
        .iter()
        .find(|id| *id == custodian || staged.names.get(*id).map(String::as_str) == Some(custodian))
        .cloned()
        .ok_or_else(|| TufError::NotEntitled {
            key_id: custodian.to_string(),
            uri: "a custodian away from the appliance".into(),
            entitled: format!(
                "root v{} may be signed by {}",
                draft.version,
                entitled
                    .iter()
                    .map(|id| label(&staged.names, id).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    let mut roots = Vec::new();
    for version in 1..=staged.current.version {
        let path = repo.metadata_path(&format!("{version}.root.json"));
        let bytes =
            std::fs::read(&path).map_err(|source| super::layout::io_error(&path, source))?;
        roots.push((version, bytes));
    }
    Ok(RootSigningRequest {
        key: label(&staged.names, &key_id),
        previous_version: staged.current.version,
        version: draft.version,
        payload_sha256: draft.metadata.payload_sha256(),
        draft: draft.metadata.to_bytes(),
        roots,
        change: describe_root_draft(&staged.current, new, &draft.metadata, &staged.names),
        names: staged.names.clone(),
    })
}

fn label(names: &BTreeMap<String, String>, key_id: &str) -> KeyLabel {
    KeyLabel {
        key_id: key_id.to_string(),
        name: names.get(key_id).cloned(),
    }
}

/// A signing request checked on the custodian's machine: it chains from the root they trust,
/// and their key may sign it.
#[derive(Clone, Debug)]
pub struct CheckedRootRequest {
    /// The root the chain was followed to (the draft's predecessor).
    pub previous_version: u64,
    /// The draft's version.
    pub version: u64,
    /// SHA-256 of the draft's payload.
    pub payload_sha256: String,
    /// The custodian's key.
    pub key: KeyLabel,
    /// The change, computed here from the roots themselves (not taken from the request).
    pub change: Vec<String>,
    draft: SignedMetadata,
}

/// Checks a request on the custodian's machine: the request's roots must follow from
/// `trusted_root` by TUF's root rotation rules up to the draft's predecessor, the draft must be
/// the next version, well formed and not expired at `now`, and `key` must be the key the
/// request asks for and a root key of the predecessor or of the draft.
pub fn check_root_request(
    trusted_root: &[u8],
    request: &RootSigningRequest,
    key: &PublicKey,
    now: Timestamp,
) -> Result<CheckedRootRequest, TufError> {
    let mut cache = KeyCache::default();
    let trusted = verify::load_trusted_root(trusted_root, &mut cache)?;
    let trusted_version = trusted.version;
    let files = request
        .roots
        .iter()
        .map(|(version, bytes)| (format!("metadata/{version}.root.json"), bytes.clone()))
        .collect();
    let source = OverlaySource {
        base: &NoFiles,
        files,
    };
    let current = verify::walk_roots(trusted, &source, u64::MAX, &mut cache).map_err(|e| {
        TufError::RequestDoesNotChain {
            trusted_version,
            problem: e.to_string(),
        }
    })?;
    let carried_previous = request
        .roots
        .iter()
        .find(|(version, _)| *version == request.previous_version)
        .and_then(|(_, bytes)| SignedMetadata::from_slice(bytes).ok())
        .map(|root| root.payload_sha256());
    // Nothing was walked: the request's root must be the very root trusted (same payload).
    if current.version == request.previous_version
        && trusted_version == current.version
        && carried_previous != Some(current.metadata.payload_sha256())
    {
        return Err(TufError::RequestDoesNotChain {
            trusted_version,
            problem: format!(
                "the request's root v{} is not the root v{trusted_version} you trust",
                request.previous_version
            ),
        });
    }
    if current.version != request.previous_version {
        let problem = if trusted_version > request.previous_version {
            format!(
                "you already trust a root newer than the request's root v{}",
                request.previous_version
            )
        } else {
            format!(
                "the request's roots lead to root v{}, not to root v{}, the draft's predecessor",
                current.version, request.previous_version
            )
        };
        return Err(TufError::RequestDoesNotChain {
            trusted_version,
            problem,
        });
    }
    let invalid = |problem: String| TufError::RequestInvalid { problem };
    let draft = SignedMetadata::from_slice(&request.draft)
        .map_err(|reason| invalid(format!("the draft is not TUF metadata: {reason}")))?;
    let new = verify::parse_root("the drafted root", &request.draft, &mut cache)
        .map_err(|e| invalid(e.to_string()))?;
    if new.version != current.version + 1 || new.version != request.version {
        return Err(invalid(format!(
            "the draft is root v{}, not v{}, the version after root v{}",
            new.version,
            current.version + 1,
            current.version
        )));
    }
    if draft.payload_sha256() != request.payload_sha256 {
        return Err(invalid(
            "the draft's payload is not the one the request names".into(),
        ));
    }
    verify::same_keys_under_same_ids(&current, &new).map_err(|e| invalid(e.to_string()))?;
    if new.expires <= now {
        return Err(TufError::Expired {
            role: Role::Root,
            version: new.version,
            expires: new.expires,
            now,
            hint: "not signing an expired draft; ask for a new request".into(),
        });
    }
    let tuf_key = TufKey::from_public(key).map_err(|algorithm| TufError::RequestNotForThisKey {
        problem: format!("your key is {algorithm}; TUF root keys are ECDSA P-256"),
    })?;
    if tuf_key.key_id != request.key.key_id {
        return Err(TufError::RequestNotForThisKey {
            problem: format!(
                "this request is for key {}, but the key given is {}",
                request.key, tuf_key.key_id
            ),
        });
    }
    if root_key(&current, &tuf_key.key_id).or_else(|| root_key(&new, &tuf_key.key_id)) != Some(key)
    {
        return Err(TufError::RequestNotForThisKey {
            problem: format!(
                "key {} is not a root key of root v{} or of the draft root v{}",
                tuf_key.key_id, current.version, new.version
            ),
        });
    }
    Ok(CheckedRootRequest {
        previous_version: current.version,
        version: new.version,
        payload_sha256: draft.payload_sha256(),
        key: label(&request.names, &tuf_key.key_id),
        change: describe_root_draft(&current, &new, &draft, &request.names),
        draft,
    })
}

/// The public key `root` lists as a root key under `key_id`.
fn root_key<'a>(root: &'a TrustedRoot, key_id: &str) -> Option<&'a PublicKey> {
    if !root.role(Role::Root).keyids.iter().any(|id| id == key_id) {
        return None;
    }
    root.keys
        .get(key_id)
        .and_then(Option::as_ref)
        .map(|key| key.public())
}

impl CheckedRootRequest {
    /// Signs the draft's payload with `signer` (the custodian's token), checking the signature.
    pub fn sign(&self, signer: &dyn Signer) -> Result<RootSignature, TufError> {
        let mut draft = self.draft.clone();
        let keyid = draft.sign_with(signer)?;
        let sig = draft
            .signature(&keyid)
            .expect("sign_with adds the signature")
            .sig
            .clone();
        Ok(RootSignature {
            role: Role::Root.name().to_string(),
            version: self.version,
            payload_sha256: self.payload_sha256.clone(),
            keyid,
            sig,
        })
    }
}

/// A root signature made away from the appliance, as it travels back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootSignature {
    /// Always `root`.
    pub role: String,
    /// The draft's version.
    pub version: u64,
    /// SHA-256 of the payload signed.
    pub payload_sha256: String,
    /// The signing key's TUF key id.
    pub keyid: String,
    /// The signature, hex DER, as TUF metadata carries it.
    pub sig: String,
}

/// A repository source with no files: the request carries every root there is.
struct NoFiles;

impl RepositorySource for NoFiles {
    fn read(&self, _path: &str, _limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(None)
    }
}

/// Every key that may sign the root drafted in `dir` (root keys of the current root and of the
/// draft), with its TUF key id: the keys a signature bundle may be signed by. Also the current
/// root's version and the draft's (the current one's when none is drafted), for messages.
#[allow(clippy::type_complexity)]
pub fn root_signing_keys(dir: &Path) -> Result<(u64, u64, Vec<(String, PublicKey)>), TufError> {
    let repo = Repo::open(dir)?;
    let staged = Staged::load(&repo)?;
    let mut keys = Vec::new();
    let roots = std::iter::once(&staged.current).chain(staged.root.as_ref().map(|(_, r)| r));
    for root in roots {
        for id in &root.role(Role::Root).keyids {
            if let Some(public) = root_key(root, id) {
                if !keys.iter().any(|(known, _)| known == id) {
                    keys.push((id.clone(), public.clone()));
                }
            }
        }
    }
    let draft_version = staged
        .root
        .as_ref()
        .map_or(staged.current.version, |(d, _)| d.version);
    Ok((staged.current.version, draft_version, keys))
}

/// A root signature as received at the appliance: where it came from and the key that vouched
/// for it (the bundle's signer).
#[derive(Clone, Debug)]
pub struct ReceivedSignature {
    /// Where it came from (the bundle file), for messages.
    pub from: String,
    /// The key that signed the bundle carrying it.
    pub signer: PublicKey,
    /// The signature.
    pub signature: RootSignature,
}

/// What [`accept_root_signatures`] did.
#[derive(Clone, Debug)]
pub struct AcceptReport {
    /// Keys whose signatures were added.
    pub added: Vec<KeyLabel>,
    /// Keys whose signatures were in the draft already.
    pub already: Vec<KeyLabel>,
    /// The draft's status afterwards.
    pub status: DraftStatus,
}

impl AcceptReport {
    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for key in &self.added {
            text.push_str(&format!(
                "added the signature of {key} to root v{}\n",
                self.status.version
            ));
        }
        for key in &self.already {
            text.push_str(&format!(
                "root v{} already had the signature of {key}\n",
                self.status.version
            ));
        }
        text.push_str(&super::status::draft_text(&self.status));
        text
    }
}

/// Adds `received` signatures to the root drafted in `dir`, all or none: each must be for the
/// staged draft's version and payload, by a root key of the current root or of the draft (the
/// key that signed its bundle), and verify over the draft's exact bytes. Recorded through
/// `record` before the draft is rewritten.
pub fn accept_root_signatures(
    dir: &Path,
    received: &[ReceivedSignature],
    now: crate::time::ConfirmedTime,
    record: &mut dyn BeforeWrite,
) -> Result<AcceptReport, TufError> {
    let repo = Repo::open(dir)?;
    let _lock = repo.lock()?;
    let staged = Staged::load(&repo)?;
    let Some((draft, new)) = &staged.root else {
        return Err(TufError::NothingStaged {
            dir: repo.staged_dir(),
            hint: "no root is drafted: these signatures are for a root published or withdrawn \
                   since"
                .into(),
        });
    };
    let entitled = staged.entitled(draft);
    let payload = draft.metadata.payload_sha256();
    let mut signed = draft.clone();
    let mut added = Vec::new();
    let mut already = Vec::new();
    for item in received {
        let signature = &item.signature;
        if signature.role != Role::Root.name()
            || signature.version != draft.version
            || signature.payload_sha256 != payload
        {
            return Err(TufError::SignatureStale {
                from: item.from.clone(),
                signed_version: signature.version,
                signed_payload: signature.payload_sha256.clone(),
                draft_version: draft.version,
                draft_payload: payload,
                why: if signature.version < draft.version {
                    "a newer draft exists"
                } else {
                    "the draft changed since the request"
                },
            });
        }
        let signer_id = TufKey::from_public(&item.signer)
            .map(|k| k.key_id)
            .unwrap_or_else(|_| item.signer.fingerprint());
        let listed = root_key(&staged.current, &signer_id).or_else(|| root_key(new, &signer_id));
        if !entitled.contains(&signer_id) || listed != Some(&item.signer) {
            return Err(TufError::NotARootKey {
                from: item.from.clone(),
                key: signer_id,
                current_version: staged.current.version,
                draft_version: draft.version,
            });
        }
        let verifies = signature.keyid == signer_id
            && hex::decode(&signature.sig)
                .is_ok_and(|der| item.signer.verify(draft.metadata.canonical_signed(), &der));
        if !verifies {
            return Err(TufError::SignatureOverOtherBytes {
                from: item.from.clone(),
                key_id: signer_id,
                version: draft.version,
            });
        }
        let key = label(&staged.names, &signer_id);
        if signed.metadata.verifies(&signer_id, &item.signer) {
            already.push(key);
        } else {
            let der = hex::decode(&signature.sig).expect("checked above");
            signed.metadata.add_signature(&signer_id, &der);
            added.push(key);
        }
    }
    if !added.is_empty() {
        super::record::record(
            record,
            &repo.dir,
            vec![PendingFile::of(&signed.path, &signed.metadata.to_bytes())],
        )?;
        repo.save_draft(&signed)?;
    }
    let staged = Staged::load(&repo)?;
    let draft = staged
        .drafts()
        .into_iter()
        .find(|d| d.role == Role::Root)
        .cloned()
        .expect("the root draft is still staged");
    Ok(AcceptReport {
        added,
        already,
        status: staged.draft_status(&draft, &repo, now.timestamp()),
    })
}
