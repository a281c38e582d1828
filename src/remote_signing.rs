//! Custodians where they are: the bundles that carry a drafted root out to a custodian who is
//! not at the appliance, and their signature back.
//!
//! A *signing request* (a `request` bundle, ceremony `root-signing-request`, signed by the
//! appliance's bundle key) holds `request.json` (which key is asked, the versions, the payload
//! digest), `draft.root.json` (the draft as staged), every published root as `N.root.json`,
//! `change.txt` (the change as the console shows it) and `appliance-bundle-key.pub.pem`. The
//! custodian's trust does not rest on the bundle key: their machine follows the roots from the
//! root it already trusts ([`crate::tuf::check_root_request`]) and recomputes the change.
//!
//! A *signature bundle* (a `response` bundle, ceremony `root-signature`) holds
//! `root-signature.json` and is signed by the very key whose TUF signature it carries, so the
//! appliance needs no other trust: it pins the root keys of the current root and of the draft.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bundle::{
    Bundle, BundleBuilder, BundleError, BundleKind, EntryType, Limits, PinnedKeys,
};
use crate::keys::{PublicKey, Signer};
use crate::time::ConfirmedTime;
use crate::tuf::{
    CheckedRootRequest, KeyLabel, ReceivedSignature, RootSignature, RootSigningRequest, TufError,
};

/// The ceremony name a signing request's manifest carries.
pub const REQUEST_CEREMONY: &str = "root-signing-request";
/// The ceremony name a signature bundle's manifest carries.
pub const SIGNATURE_CEREMONY: &str = "root-signature";

const REQUEST_ENTRY: &str = "request.json";
const DRAFT_ENTRY: &str = "draft.root.json";
const CHANGE_ENTRY: &str = "change.txt";
const BUNDLE_KEY_ENTRY: &str = "appliance-bundle-key.pub.pem";
const SIGNATURE_ENTRY: &str = "root-signature.json";

/// Why a signing request or a signature bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum RemoteSigningError {
    /// The bundle itself failed a check.
    #[error("{file}: {source}")]
    Bundle {
        /// The bundle file.
        file: PathBuf,
        /// The check that failed.
        #[source]
        source: BundleError,
    },
    /// The bundle is well formed but is not what it should be.
    #[error("{file} is not a {expected}: {problem}")]
    WrongContents {
        /// The bundle file.
        file: PathBuf,
        /// "root signing request" or "root signature bundle".
        expected: &'static str,
        /// What is missing or wrong.
        problem: String,
    },
    /// The TUF check refused it.
    #[error(transparent)]
    Tuf(#[from] TufError),
}

/// What `request.json` says.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFields {
    key: RequestKey,
    previous_version: u64,
    version: u64,
    payload_sha256: String,
    names: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestKey {
    keyid: String,
    name: Option<String>,
}

/// The signing request bundle for `request`, signed by the appliance's bundle key.
pub fn request_bundle(
    request: &RootSigningRequest,
    bundle_key: &dyn Signer,
    created: ConfirmedTime,
    rehearsal: bool,
) -> Result<Vec<u8>, BundleError> {
    let fields = RequestFields {
        key: RequestKey {
            keyid: request.key.key_id.clone(),
            name: request.key.name.clone(),
        },
        previous_version: request.previous_version,
        version: request.version,
        payload_sha256: request.payload_sha256.clone(),
        names: request.names.clone(),
    };
    let mut builder = BundleBuilder::new(BundleKind::Request, created)
        .ceremony(REQUEST_CEREMONY)
        .rehearsal(rehearsal);
    builder.add(
        EntryType::TufMetadata,
        REQUEST_ENTRY,
        serde_json::to_vec_pretty(&fields).expect("request fields serialise"),
    )?;
    builder.add(EntryType::TufMetadata, DRAFT_ENTRY, request.draft.clone())?;
    for (version, bytes) in &request.roots {
        builder.add(
            EntryType::TufMetadata,
            &format!("{version}.root.json"),
            bytes.clone(),
        )?;
    }
    let mut change = request.change.join("\n");
    change.push('\n');
    builder.add(EntryType::Transcript, CHANGE_ENTRY, change.into_bytes())?;
    builder.add(
        EntryType::PublicKey,
        BUNDLE_KEY_ENTRY,
        bundle_key.public_key().spki_pem().into_bytes(),
    )?;
    builder.sign(bundle_key)
}

/// A signing request opened and checked on the custodian's machine.
#[derive(Clone, Debug)]
pub struct OpenedRequest {
    /// The bundle's id.
    pub id: String,
    /// The key that signed the request bundle.
    pub bundle_signer: PublicKey,
    /// Whether that key was pinned by the custodian (`--pin`); otherwise only the bundle's
    /// integrity was checked, and trust rests on the root chain.
    pub pinned: bool,
    /// Made by a rehearsal.
    pub rehearsal: bool,
    /// The checked request.
    pub checked: CheckedRootRequest,
}

/// Reads the signing request at `file` and checks it against `trusted_root` for `key` at `now`:
/// every bundle check (with `pin`, the bundle key must be it), then the TUF checks.
pub fn open_request(
    file: &Path,
    pin: Option<&PublicKey>,
    trusted_root: &[u8],
    key: &PublicKey,
    now: jiff::Timestamp,
) -> Result<OpenedRequest, RemoteSigningError> {
    let bundle_error = |source| RemoteSigningError::Bundle {
        file: file.to_path_buf(),
        source,
    };
    let wrong = |problem: String| RemoteSigningError::WrongContents {
        file: file.to_path_buf(),
        expected: "root signing request",
        problem,
    };
    let bundle = Bundle::read_file(file, &Limits::default(), None).map_err(bundle_error)?;
    // Without a pin, the bundle is verified under the key it carries: that checks its
    // integrity; what the custodian signs is vouched for by the root chain, checked below.
    let self_pinned = {
        let bytes = bundle
            .entry_before_verifying(BUNDLE_KEY_ENTRY)
            .ok_or_else(|| wrong(format!("it has no {BUNDLE_KEY_ENTRY}")))?;
        let pem = pem::parse(bytes).map_err(|e| wrong(format!("{BUNDLE_KEY_ENTRY}: {e}")))?;
        PublicKey::from_spki(pem.contents())
            .map_err(|e| wrong(format!("{BUNDLE_KEY_ENTRY}: {e}")))?
    };
    let pins = PinnedKeys::new(vec![pin.cloned().unwrap_or(self_pinned)]);
    let verified = bundle
        .verify(&pins)
        .and_then(|b| b.expect_kind(BundleKind::Request))
        .map_err(bundle_error)?;
    if verified.manifest().ceremony.as_deref() != Some(REQUEST_CEREMONY) {
        return Err(wrong(format!(
            "its manifest names ceremony {:?}, not {REQUEST_CEREMONY:?}",
            verified.manifest().ceremony
        )));
    }
    let entry = |name: &str| {
        verified
            .entry(name)
            .ok_or_else(|| wrong(format!("it has no {name}")))
    };
    let fields: RequestFields = serde_json::from_slice(entry(REQUEST_ENTRY)?)
        .map_err(|e| wrong(format!("{REQUEST_ENTRY}: {e}")))?;
    let mut roots = Vec::new();
    for version in 1..=fields.previous_version {
        roots.push((version, entry(&format!("{version}.root.json"))?.to_vec()));
    }
    let request = RootSigningRequest {
        key: KeyLabel {
            key_id: fields.key.keyid,
            name: fields.key.name,
        },
        previous_version: fields.previous_version,
        version: fields.version,
        payload_sha256: fields.payload_sha256,
        draft: entry(DRAFT_ENTRY)?.to_vec(),
        roots,
        change: Vec::new(),
        names: fields.names,
    };
    let checked = crate::tuf::check_root_request(trusted_root, &request, key, now)?;
    Ok(OpenedRequest {
        id: verified.manifest().id.clone(),
        bundle_signer: verified.signer().clone(),
        pinned: pin.is_some(),
        rehearsal: verified.manifest().rehearsal,
        checked,
    })
}

/// Signs the checked request with the custodian's key and wraps the signature in a bundle
/// signed by the same key.
pub fn signature_bundle(
    opened: &OpenedRequest,
    signer: &dyn Signer,
    created: ConfirmedTime,
) -> Result<Vec<u8>, RemoteSigningError> {
    let signature = opened.checked.sign(signer)?;
    let mut builder = BundleBuilder::new(BundleKind::Response, created)
        .ceremony(SIGNATURE_CEREMONY)
        .rehearsal(opened.rehearsal);
    builder
        .add(
            EntryType::TufMetadata,
            SIGNATURE_ENTRY,
            serde_json::to_vec_pretty(&signature).expect("a signature serialises"),
        )
        .map_err(|source| RemoteSigningError::Bundle {
            file: SIGNATURE_ENTRY.into(),
            source,
        })?;
    builder
        .sign(signer)
        .map_err(|source| RemoteSigningError::Bundle {
            file: SIGNATURE_ENTRY.into(),
            source,
        })
}

/// Reads signature bundles for the root drafted in `repo`: each must be signed by a root key of
/// the current root or of the draft, and carry that key's signature.
pub fn read_signature_bundles(
    repo: &Path,
    files: &[PathBuf],
) -> Result<Vec<ReceivedSignature>, RemoteSigningError> {
    let (current_version, draft_version, keys) = crate::tuf::root_signing_keys(repo)?;
    let mut received = Vec::new();
    for file in files {
        let bundle_error = |source| RemoteSigningError::Bundle {
            file: file.clone(),
            source,
        };
        let wrong = |problem: String| RemoteSigningError::WrongContents {
            file: file.clone(),
            expected: "root signature bundle",
            problem,
        };
        let bundle = Bundle::read_file(file, &Limits::default(), None).map_err(bundle_error)?;
        let signer_id = bundle.signer_key_id();
        let Some((_, public)) = keys.iter().find(|(_, k)| k.fingerprint() == signer_id) else {
            return Err(TufError::NotARootKey {
                from: file.display().to_string(),
                key: format!("SHA256:{signer_id}"),
                current_version,
                draft_version,
            }
            .into());
        };
        let verified = bundle
            .verify(&PinnedKeys::new(vec![public.clone()]))
            .and_then(|b| b.expect_kind(BundleKind::Response))
            .map_err(bundle_error)?;
        if verified.manifest().ceremony.as_deref() != Some(SIGNATURE_CEREMONY) {
            return Err(wrong(format!(
                "its manifest names ceremony {:?}, not {SIGNATURE_CEREMONY:?}",
                verified.manifest().ceremony
            )));
        }
        let bytes = verified
            .entry(SIGNATURE_ENTRY)
            .ok_or_else(|| wrong(format!("it has no {SIGNATURE_ENTRY}")))?;
        let signature: RootSignature =
            serde_json::from_slice(bytes).map_err(|e| wrong(format!("{SIGNATURE_ENTRY}: {e}")))?;
        received.push(ReceivedSignature {
            from: file.display().to_string(),
            signer: verified.signer().clone(),
            signature,
        });
    }
    Ok(received)
}
