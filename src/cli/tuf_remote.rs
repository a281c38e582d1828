//! `rootcellar tuf request-signature | sign-request | add-signatures`: a drafted root signed by
//! custodians where they are.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use rootcellar::keys::{Hsm, KeyLocation, PublicKey};
use rootcellar::remote_signing;
use rootcellar::tuf;

use super::CliError;

/// `tuf request-signature`.
#[derive(Debug, clap::Args)]
pub struct RequestSignatureArgs {
    /// The repository with a drafted root (tuf rotate).
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// The custodian's key: its name in the policy (as drafted) or its TUF key id.
    #[arg(long, value_name = "NAME")]
    custodian: String,
    /// The appliance's bundle key (pkcs11:…), which signs the request.
    #[arg(long, value_name = "URI")]
    bundle_key: String,
    /// The request bundle to write; it must not exist.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The confirmed time the bundle is dated by.
    #[command(flatten)]
    time: super::SigningTime,
    /// Journal the request in this state directory.
    #[command(flatten)]
    state: super::journal::StateArg,
}

/// `tuf sign-request`.
#[derive(Debug, clap::Args)]
pub struct SignRequestArgs {
    /// The signing request bundle from the appliance.
    #[arg(value_name = "REQUEST")]
    request: PathBuf,
    /// Your key's URI (pkcs11:…); the PIN comes from pin-source or the prompt.
    #[arg(long, value_name = "URI")]
    key: String,
    /// The root metadata file you already trust; the request's roots must follow from it.
    #[arg(long, value_name = "FILE")]
    trusted_root: PathBuf,
    /// The appliance's bundle key (PEM): require the request to be signed by it.
    #[arg(long, value_name = "FILE")]
    pin: Option<PathBuf>,
    /// The signature bundle to write; it must not exist.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The time the draft's expiry is checked at and the bundle dated by.
    #[command(flatten)]
    time: super::SigningTime,
    /// Journal the signature in this state directory.
    #[command(flatten)]
    state: super::journal::StateArg,
}

/// `tuf add-signatures`.
#[derive(Debug, clap::Args)]
pub struct AddSignaturesArgs {
    /// The repository with the drafted root.
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// Signature bundles from custodians (tuf sign-request).
    #[arg(value_name = "BUNDLE", required = true)]
    bundles: Vec<PathBuf>,
    /// The confirmed time.
    #[command(flatten)]
    time: super::SigningTime,
    /// Journal the change in this state directory.
    #[command(flatten)]
    state: super::journal::StateArg,
}

pub fn request_signature(args: RequestSignatureArgs, hsm: &Hsm) -> Result<(), CliError> {
    let now = args.time.confirm(args.state.resolve().as_deref())?;
    rootcellar::files::ensure_absent([args.out.as_path()])?;
    let request = tuf::root_signing_request(&args.repo, &args.custodian)?;
    let bundle_key = hsm.signer(&KeyLocation::parse(&args.bundle_key)?)?;
    let rehearsal = request_is_rehearsal(&request);
    let bytes = remote_signing::request_bundle(&request, bundle_key.as_ref(), now, rehearsal)?;
    write_recorded(
        &args.state,
        now,
        "tuf.request-signature",
        format!(
            "{}: root v{} (payload SHA-256 {}) to be signed by {}",
            args.repo.display(),
            request.version,
            request.payload_sha256,
            request.key
        ),
        &args.out,
        &bytes,
    )?;
    println!(
        "wrote {}: root v{} for {} to sign\n  payload sha256 {}",
        args.out.display(),
        request.version,
        request.key,
        request.payload_sha256
    );
    for line in &request.change {
        println!("  {line}");
    }
    Ok(())
}

/// A rehearsal's draft carries the mark; so does the request made from it.
fn request_is_rehearsal(request: &tuf::RootSigningRequest) -> bool {
    serde_json::from_slice::<serde_json::Value>(&request.draft)
        .ok()
        .and_then(|v| v.pointer("/signed").cloned())
        .is_some_and(|signed| signed.get(tuf::REHEARSAL_FIELD).is_some())
}

pub fn sign_request(args: SignRequestArgs, hsm: &Hsm) -> Result<(), CliError> {
    let now = args.time.confirm(args.state.resolve().as_deref())?;
    rootcellar::files::ensure_absent([args.out.as_path()])?;
    let trusted = std::fs::read(&args.trusted_root).map_err(|e| {
        CliError::Usage(format!("cannot read {}: {e}", args.trusted_root.display()))
    })?;
    let pin: Option<PublicKey> = args
        .pin
        .as_deref()
        .map(rootcellar::bundle::PinnedKeys::read_pin)
        .transpose()?;
    let signer = hsm.signer(&KeyLocation::parse(&args.key)?)?;
    let opened = remote_signing::open_request(
        &args.request,
        pin.as_ref(),
        &trusted,
        signer.public_key(),
        now.timestamp(),
    )?;
    let checked = &opened.checked;
    println!(
        "signing request {} from the appliance bundle key SHA256:{} ({})",
        opened.id,
        opened.bundle_signer.fingerprint(),
        if opened.pinned {
            "pinned"
        } else {
            "not pinned: trust rests on the root chain below"
        }
    );
    if opened.rehearsal {
        println!("REHEARSAL - NOT FOR PRODUCTION: this request was made by a rehearsal");
    }
    println!(
        "root v{} follows from your trusted root ({}); your key {} is asked to sign:",
        checked.previous_version,
        args.trusted_root.display(),
        checked.key
    );
    for line in &checked.change {
        println!("  {line}");
    }
    // The same kind of code a ceremony step asks for: the digest's first 8 characters, read
    // aloud in the room and typed here only by someone who read the change.
    let code = &checked.payload_sha256[..8];
    print!(
        "Type {code} to sign root v{} with your key: ",
        checked.version
    );
    std::io::stdout().flush().ok();
    let mut typed = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut typed)
        .map_err(|e| CliError::Usage(format!("cannot read the confirmation: {e}")))?;
    if typed.trim() != code {
        return Err(CliError::Usage(format!(
            "not confirmed (typed {:?}, not {code}): nothing was signed",
            typed.trim()
        )));
    }
    println!();
    let bytes = remote_signing::signature_bundle(&opened, signer.as_ref(), now)?;
    write_recorded(
        &args.state,
        now,
        "tuf.sign-request",
        format!(
            "root v{} (payload SHA-256 {}) signed by {}",
            checked.version, checked.payload_sha256, checked.key
        ),
        &args.out,
        &bytes,
    )?;
    println!(
        "signed root v{} with key {}: carry {} back to the appliance",
        checked.version,
        checked.key,
        args.out.display()
    );
    Ok(())
}

pub fn add_signatures(args: AddSignaturesArgs) -> Result<(), CliError> {
    let now = args.time.confirm(args.state.resolve().as_deref())?;
    let report = accept(&args.repo, &args.bundles, now, &args.state)?;
    print!("{}", report.to_text());
    Ok(())
}

/// Reads the signature bundles and adds them to the drafted root (journaled with `state`).
pub fn accept(
    repo: &Path,
    bundles: &[PathBuf],
    now: rootcellar::time::ConfirmedTime,
    state: &super::journal::StateArg,
) -> Result<tuf::AcceptReport, CliError> {
    let received = remote_signing::read_signature_bundles(repo, bundles)?;
    let names: Vec<String> = bundles.iter().map(|b| b.display().to_string()).collect();
    let mut record = super::tuf::journal_before(
        state,
        now,
        "tuf.add-signatures",
        format!("{}: signatures from {}", repo.display(), names.join(", ")),
        repo,
    );
    Ok(tuf::accept_root_signatures(
        repo,
        &received,
        now,
        &mut record,
    )?)
}

/// Journals (with a state directory) then writes a new file: a command that cannot journal
/// writes nothing.
fn write_recorded(
    state: &super::journal::StateArg,
    now: rootcellar::time::ConfirmedTime,
    action: &str,
    detail: String,
    out: &Path,
    bytes: &[u8],
) -> Result<(), CliError> {
    let record = rootcellar::journal::Record::new(now, super::actor(), action)
        .detail(detail)
        .output(rootcellar::journal::Digest {
            name: out.display().to_string(),
            sha256: <sha2::Sha256 as sha2::Digest>::digest(bytes).into(),
        });
    super::journal_action(state, record)?;
    rootcellar::files::write_new(out, bytes)?;
    Ok(())
}
