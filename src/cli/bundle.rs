//! `rootcellar bundle …`

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use rootcellar::bundle::seal::{self, Opener, Passphrase};
use rootcellar::bundle::{
    Bundle, BundleBuilder, BundleKind, EntryType, JournalHead, Limits, PinnedKeys, SoftwareKey,
    VerifiedBundle,
};
use rootcellar::journal::{Digest, Journal, Record, Selection};
use rootcellar::keys::{Hsm, HsmConfig, KeyLocation, Signer};

use super::journal::{check_carried_segment, journal_to, StateArg};
use super::{CliError, SigningTime};

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// The online side: build a request (or backup) bundle from files and sign it with the
    /// requester's key.
    New {
        /// request or backup.
        #[arg(long, default_value = "request")]
        kind: String,
        /// The signing key: a PEM private key file (online side) or a pkcs11:/yubihsm: URI.
        #[arg(long, value_name = "FILE|URI")]
        sign_key: String,
        #[command(flatten)]
        common: Box<WriteArgs>,
    },
    /// The appliance: write a response bundle signed by the bundle key in the HSM; with a state
    /// directory it carries the journal segment (of --ceremony, else the whole journal) and the
    /// journal head, and is journaled as bundle.export.
    Respond {
        /// The appliance's bundle key (pkcs11:token=…;object=… or yubihsm:…).
        #[arg(long, value_name = "URI")]
        key: String,
        #[command(flatten)]
        common: Box<WriteArgs>,
    },
    /// Show a bundle's manifest after every structural, limit, name and hash check; with --pin
    /// the signature is checked too.
    Inspect {
        /// The bundle file.
        bundle: PathBuf,
        /// A pinned public key or certificate (PEM or DER) to check the signature against.
        #[arg(long, value_name = "FILE")]
        pin: Vec<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a bundle completely against pinned keys: structure, limits, names, hashes,
    /// signature, and any journal segment it carries.
    Verify {
        /// The bundle file.
        bundle: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
        #[command(flatten)]
        read: ReadArgs,
        #[command(flatten)]
        journal: JournalArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify a bundle and write its entries into a new directory (created whole, never over
    /// an existing path). Journaled as bundle.import when a state directory is given.
    Extract {
        /// The bundle file.
        bundle: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
        #[command(flatten)]
        read: ReadArgs,
        /// The directory to create.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        journal: JournalArgs,
    },
    /// Encrypt a bundle with age to recipients or a passphrase.
    Seal {
        /// The bundle file.
        bundle: PathBuf,
        #[command(flatten)]
        seal: SealArgs,
        /// The sealed file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Decrypt a sealed bundle (the result is checked as a bundle before it is written).
    Unseal {
        /// The sealed file.
        bundle: PathBuf,
        #[command(flatten)]
        open: OpenArgs,
        /// The bundle file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Journaling of `verify` and `extract` (when a state directory is given).
#[derive(Debug, Args)]
pub struct JournalArgs {
    #[command(flatten)]
    state: StateArg,
    /// Who acts (journaled; default $USER).
    #[arg(long)]
    actor: Option<String>,
    #[command(flatten)]
    time: SigningTime,
}

/// What `new` and `respond` share: the output, manifest fields, entries, sealing, journal.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// The bundle file to write (.rcb); must not exist.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The bundle id (default: 32 random hex digits).
    #[arg(long)]
    id: Option<String>,
    /// The ceremony that produced the bundle (or that a request is for).
    #[arg(long)]
    ceremony: Option<String>,
    /// The bundle's creation time (`--time`), also its journal record's.
    #[command(flatten)]
    time: SigningTime,
    #[command(flatten)]
    entries: EntryArgs,
    #[command(flatten)]
    seal: SealArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    state: StateArg,
    /// Who makes the bundle (journaled; default $USER).
    #[arg(long)]
    actor: Option<String>,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
}

/// Entries, each `[NAME=]FILE` (NAME defaults to the file's name). Each flag takes one or more
/// files and may be repeated.
#[derive(Debug, Args)]
pub struct EntryArgs {
    /// A certificate signing request (PEM or DER).
    #[arg(long, value_name = "[NAME=]FILE", num_args = 1..)]
    csr: Vec<String>,
    /// An online public key (PEM or DER SubjectPublicKeyInfo).
    #[arg(long, value_name = "[NAME=]FILE", num_args = 1..)]
    public_key: Vec<String>,
    /// A Rekor or CT log public key.
    #[arg(long, value_name = "[NAME=]FILE", num_args = 1..)]
    log_key: Vec<String>,
    /// A TSA certificate chain (PEM).
    #[arg(long, value_name = "[NAME=]FILE", num_args = 1..)]
    tsa_chain: Vec<String>,
    /// A certificate or chain (PEM or DER).
    #[arg(long, value_name = "[NAME=]FILE", num_args = 1..)]
    certificate: Vec<String>,
    /// A TUF metadata file (JSON).
    #[arg(long, value_name = "[NAME=]FILE", num_args = 1..)]
    tuf_metadata: Vec<String>,
    /// A Sigstore trusted_root.json.
    #[arg(long, value_name = "[NAME=]FILE", num_args = 1..)]
    trusted_root: Vec<String>,
    /// A ceremony transcript (UTF-8 text).
    #[arg(long, value_name = "[NAME=]FILE", num_args = 1..)]
    transcript: Vec<String>,
    /// A journal segment (from `journal export`).
    #[arg(long, value_name = "[NAME=]FILE", num_args = 1..)]
    journal_segment: Vec<String>,
    /// Any other file, carried as opaque bytes.
    #[arg(long, value_name = "[NAME=]FILE", num_args = 1..)]
    file: Vec<String>,
}

impl EntryArgs {
    fn all(&self) -> Vec<(EntryType, &str)> {
        let groups: [(EntryType, &Vec<String>); 10] = [
            (EntryType::Csr, &self.csr),
            (EntryType::PublicKey, &self.public_key),
            (EntryType::PublicKey, &self.log_key),
            (EntryType::Certificate, &self.tsa_chain),
            (EntryType::Certificate, &self.certificate),
            (EntryType::TufMetadata, &self.tuf_metadata),
            (EntryType::TrustedRoot, &self.trusted_root),
            (EntryType::Transcript, &self.transcript),
            (EntryType::JournalSegment, &self.journal_segment),
            (EntryType::OpaqueFile, &self.file),
        ];
        groups
            .into_iter()
            .flat_map(|(t, values)| values.iter().map(move |v| (t, v.as_str())))
            .collect()
    }
}

/// Splits `[NAME=]FILE`: a prefix without a path separator before the first `=` is the name.
fn split_entry_arg(value: &str) -> (Option<&str>, &Path) {
    match value.split_once('=') {
        Some((name, file)) if !name.is_empty() && !name.contains('/') => {
            (Some(name), Path::new(file))
        }
        _ => (None, Path::new(value)),
    }
}

/// Reader limits.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Largest bundle accepted, in bytes (default 64 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = Limits::DEFAULT_MAX_BUNDLE_SIZE)]
    max_size: u64,
    /// Most entries accepted (default 256).
    #[arg(long, value_name = "N", default_value_t = Limits::DEFAULT_MAX_ENTRIES)]
    max_entries: usize,
    /// Largest entry accepted, in bytes (default 16 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = Limits::DEFAULT_MAX_ENTRY_SIZE)]
    max_entry_size: u64,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            max_bundle_size: self.max_size,
            max_entries: self.max_entries,
            max_entry_size: self.max_entry_size,
        }
    }
}

/// How to read a bundle: limits, and how to open it when sealed.
#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    open: OpenArgs,
}

/// Opening a sealed bundle: an identity file or a passphrase (never on the command line).
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// An age identity file (AGE-SECRET-KEY-1…) for a sealed bundle.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["passphrase_file", "ask_passphrase"])]
    identity: Option<PathBuf>,
    /// A file whose first line is the passphrase of a sealed bundle.
    #[arg(long, value_name = "FILE", conflicts_with = "ask_passphrase")]
    passphrase_file: Option<PathBuf>,
    /// Ask for the passphrase of a sealed bundle at the console (echo off).
    #[arg(long)]
    ask_passphrase: bool,
}

impl OpenArgs {
    fn opener(&self) -> Result<Option<Opener>, CliError> {
        Ok(if let Some(path) = &self.identity {
            Some(Opener::identity_file(path)?)
        } else if let Some(path) = &self.passphrase_file {
            Some(Opener::Passphrase(Passphrase::from_file(path)?))
        } else if self.ask_passphrase {
            Some(Opener::Passphrase(Passphrase::prompt(false)?))
        } else {
            None
        })
    }
}

/// Sealing with age: recipients, or a passphrase (never on the command line).
#[derive(Debug, Args)]
pub struct SealArgs {
    /// Seal to this age recipient (age1…). Repeatable.
    #[arg(long, value_name = "AGE1…")]
    recipient: Vec<String>,
    /// Seal to every recipient listed in this file (one per line). Repeatable.
    #[arg(long, value_name = "FILE")]
    recipients_file: Vec<PathBuf>,
    /// Seal with the passphrase on the first line of this file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["recipient", "recipients_file", "ask_seal_passphrase"])]
    seal_passphrase_file: Option<PathBuf>,
    /// Seal with a passphrase asked at the console (twice, echo off).
    #[arg(long, conflicts_with_all = ["recipient", "recipients_file"])]
    ask_seal_passphrase: bool,
}

impl SealArgs {
    fn wanted(&self) -> bool {
        !self.recipient.is_empty()
            || !self.recipients_file.is_empty()
            || self.seal_passphrase_file.is_some()
            || self.ask_seal_passphrase
    }

    /// Seals `bundle` as asked; returns the sealed bytes and a description.
    fn seal(&self, bundle: &[u8]) -> Result<(Vec<u8>, String), CliError> {
        if let Some(path) = &self.seal_passphrase_file {
            let sealed = seal::seal_with_passphrase(bundle, &Passphrase::from_file(path)?)?;
            return Ok((sealed, "a passphrase".into()));
        }
        if self.ask_seal_passphrase {
            let sealed = seal::seal_with_passphrase(bundle, &Passphrase::prompt(true)?)?;
            return Ok((sealed, "a passphrase".into()));
        }
        let mut recipients = self
            .recipient
            .iter()
            .map(|r| seal::parse_recipient(r))
            .collect::<Result<Vec<_>, _>>()?;
        for file in &self.recipients_file {
            recipients.extend(seal::read_recipients_file(file)?);
        }
        let sealed = seal::seal_to_recipients(bundle, &recipients)?;
        Ok((sealed, format!("{} age recipient(s)", recipients.len())))
    }
}

/// Pinned keys for verification.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// A pinned public key or certificate (PEM or DER) of the expected signer. Repeatable.
    #[arg(long, value_name = "FILE", required = true)]
    pin: Vec<PathBuf>,
    /// Refuse the bundle unless it is of this kind (request, response, backup).
    #[arg(long)]
    kind: Option<String>,
}

impl TrustArgs {
    fn verify(&self, bundle: Bundle) -> Result<VerifiedBundle, CliError> {
        let verified = bundle.verify(&PinnedKeys::from_files(&self.pin)?)?;
        Ok(match &self.kind {
            Some(kind) => verified.expect_kind(BundleKind::from_name(kind)?)?,
            None => verified,
        })
    }
}

fn actor(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "operator".into())
}

/// Whether `spec` names a key in an HSM (rather than a PEM file).
fn is_token_key(spec: &str) -> bool {
    spec.starts_with("pkcs11:") || spec.starts_with("yubihsm:")
}

fn open_signer(hsm: &Hsm, spec: &str) -> Result<Arc<dyn Signer>, CliError> {
    if is_token_key(spec) {
        Ok(hsm.signer(&KeyLocation::parse(spec)?)?)
    } else {
        Ok(Arc::new(SoftwareKey::from_pem_file(Path::new(spec))?))
    }
}

/// Builds, signs, optionally seals, journals and writes a bundle.
fn write_bundle(
    kind: BundleKind,
    signer: &dyn Signer,
    args: Box<WriteArgs>,
    carry_journal: bool,
) -> Result<(), CliError> {
    let state = args.state.resolve();
    let created = args.time.confirm(state.as_deref())?;
    let limits = args.limits.limits();
    rootcellar::files::ensure_absent([args.out.as_path()])?;
    let mut builder = BundleBuilder::new(kind, created).limits(limits);
    if let Some(id) = &args.id {
        builder = builder.id(id);
    }
    if let Some(c) = &args.ceremony {
        builder = builder.ceremony(c);
    }
    for (entry_type, value) in args.entries.all() {
        let (name, path) = split_entry_arg(value);
        builder.add_file(entry_type, name, path)?;
    }
    if carry_journal {
        if let Some(state) = &state {
            let journal = Journal::open(state)?;
            if journal.head()?.seq > 0 {
                let selection = match &args.ceremony {
                    Some(c)
                        if !journal
                            .entries(&Selection::Ceremony(c.clone()))?
                            .0
                            .is_empty() =>
                    {
                        Selection::Ceremony(c.clone())
                    }
                    _ => Selection::All,
                };
                let segment = journal.export(&selection)?;
                let head = segment.journal_head();
                builder.add(
                    EntryType::JournalSegment,
                    "journal-segment.json",
                    segment.to_json(),
                )?;
                builder = builder.journal_head(JournalHead {
                    seq: head.seq,
                    sha256: head.hash,
                });
            }
        }
    }
    let manifest = builder.manifest().clone();
    let bytes = builder.sign(signer)?;
    let summary = Bundle::decode(&bytes, &limits)?;
    let (file_bytes, sealed_to) = if args.seal.wanted() {
        let (sealed, to) = args.seal.seal(&bytes)?;
        (sealed, Some(to))
    } else {
        (bytes, None)
    };
    // Journaled before the file appears: nothing leaves the appliance unrecorded.
    let record_seq = match &state {
        Some(state) => {
            let mut record = Record::new(created, actor(args.actor), "bundle.export")
                .detail(format!(
                    "{} bundle {} signed by {}",
                    kind.name(),
                    manifest.id,
                    signer.key_uri()
                ))
                .output(Digest::of(args.out.display().to_string(), &file_bytes));
            if let Some(c) = &manifest.ceremony {
                record = record.ceremony(c);
            }
            for entry in &manifest.entries {
                record = record.input(Digest {
                    name: entry.name.clone(),
                    sha256: entry.sha256,
                });
            }
            Some(journal_to(state, record)?)
        }
        None => None,
    };
    rootcellar::files::write_new(&args.out, &file_bytes)?;
    if args.json {
        let mut value = inspect_json(&args.out, &summary, None);
        // Checked by the builder against the signer's own public key.
        value["signature"]["verified"] = serde_json::json!(true);
        value["sealed_to"] = serde_json::json!(sealed_to);
        value["journal_record"] = serde_json::json!(record_seq);
        print_json(&value);
    } else {
        println!("wrote {} ({} bytes)", args.out.display(), file_bytes.len());
        print!(
            "{}",
            inspect_text(&summary, "made and checked by this command")
        );
        if let Some(to) = sealed_to {
            println!("sealed to:   {to}");
        }
        if let Some(seq) = record_seq {
            println!("journaled:   record {seq} (bundle.export)");
        }
    }
    Ok(())
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialise")
    );
}

fn inspect_json(
    path: &Path,
    bundle: &Bundle,
    verified: Option<&VerifiedBundle>,
) -> serde_json::Value {
    let m = bundle.manifest();
    serde_json::json!({
        "path": path.display().to_string(),
        "size": bundle.size(),
        "sha256": hex::encode(bundle.sha256()),
        "version": m.version,
        "kind": m.kind.name(),
        "id": m.id,
        "created": m.created.to_string(),
        "ceremony": m.ceremony,
        "rehearsal": m.rehearsal,
        "journal_head": m.journal_head.map(|h| serde_json::json!({
            "seq": h.seq,
            "sha256": hex::encode(h.sha256),
        })),
        "signature": {
            "algorithm": bundle.signature_algorithm(),
            "key_id": bundle.signer_key_id(),
            "verified": verified.is_some(),
        },
        "entries": m.entries.iter().map(|e| serde_json::json!({
            "type": e.entry_type.name(),
            "name": e.name,
            "media_type": e.media_type,
            "length": e.length,
            "sha256": hex::encode(e.sha256),
        })).collect::<Vec<_>>(),
    })
}

/// The text `bundle inspect` prints; `signature` says what is known of the signature.
fn inspect_text(bundle: &Bundle, signature: &str) -> String {
    let m = bundle.manifest();
    let mut text = format!(
        "bundle:      rootcellar bundle format {}, {} bytes, SHA256:{}\n\
         kind:        {}\nid:          {}\ncreated:     {}\n",
        m.version,
        bundle.size(),
        hex::encode(bundle.sha256()),
        m.kind.name(),
        m.id,
        m.created
    );
    if let Some(c) = &m.ceremony {
        text.push_str(&format!("ceremony:    {c}\n"));
    }
    if m.rehearsal {
        text.push_str("rehearsal:   yes: REHEARSAL - NOT FOR PRODUCTION (throwaway keys)\n");
    }
    if let Some(h) = &m.journal_head {
        text.push_str(&format!(
            "journal:     head record {} SHA256:{}\n",
            h.seq,
            hex::encode(h.sha256)
        ));
    }
    text.push_str(&format!(
        "signed by:   key SHA256:{} ({})\n",
        bundle.signer_key_id(),
        bundle.signature_algorithm()
    ));
    text.push_str(&format!("signature:   {signature}\n"));
    text.push_str(&format!("entries:     {}\n", m.entries.len()));
    for e in &m.entries {
        text.push_str(&format!(
            "  {:<16} {:>9}  SHA256:{}  {}  ({})\n",
            e.entry_type.name(),
            e.length,
            hex::encode(e.sha256),
            e.name,
            e.media_type
        ));
    }
    text
}

/// Checks every journal segment a verified bundle carries against the head its manifest states.
fn check_segments(bundle: &VerifiedBundle) -> Result<usize, CliError> {
    let stated = bundle
        .manifest()
        .journal_head
        .map(|h| rootcellar::journal::Head {
            seq: h.seq,
            hash: h.sha256,
        });
    let mut count = 0;
    for (info, data) in bundle.entries() {
        if info.entry_type == EntryType::JournalSegment {
            check_carried_segment(data, stated)?;
            count += 1;
        }
    }
    Ok(count)
}

fn bundle_record(
    action: &str,
    journal: &JournalArgs,
    path: &Path,
    bundle: &VerifiedBundle,
) -> Result<Record, CliError> {
    let m = bundle.manifest();
    let mut record = Record::new(
        journal.time.confirm(journal.state.resolve().as_deref())?,
        actor(journal.actor.clone()),
        action,
    )
    .detail(format!(
        "{} bundle {} signed by SHA256:{}",
        m.kind.name(),
        m.id,
        bundle.signer().fingerprint()
    ))
    .input(Digest {
        name: path.display().to_string(),
        sha256: bundle.bundle().sha256(),
    });
    if let Some(c) = &m.ceremony {
        record = record.ceremony(c);
    }
    Ok(record)
}

pub fn run(command: BundleCommand, hsm: &HsmConfig) -> Result<(), CliError> {
    let hsm = hsm.open();
    match command {
        BundleCommand::New {
            kind,
            sign_key,
            common,
        } => {
            let kind = match BundleKind::from_name(&kind)? {
                BundleKind::Response => {
                    return Err(CliError::Usage(
                        "response bundles are made on the appliance with `bundle respond`".into(),
                    ))
                }
                other => other,
            };
            // Before the key is opened: never sign what cannot be written.
            rootcellar::files::ensure_absent([common.out.as_path()])?;
            let signer = open_signer(&hsm, &sign_key)?;
            write_bundle(kind, signer.as_ref(), common, false)?;
        }
        BundleCommand::Respond { key, common } => {
            if !is_token_key(&key) {
                return Err(CliError::Usage(
                    "the appliance's bundle key lives in a token: give --key pkcs11:… or yubihsm:…"
                        .into(),
                ));
            }
            rootcellar::files::ensure_absent([common.out.as_path()])?;
            let signer = open_signer(&hsm, &key)?;
            write_bundle(BundleKind::Response, signer.as_ref(), common, true)?;
        }
        BundleCommand::Inspect {
            bundle,
            pin,
            read,
            json,
        } => {
            let decoded =
                Bundle::read_file(&bundle, &read.limits.limits(), read.open.opener()?.as_ref())?;
            let verified = if pin.is_empty() {
                None
            } else {
                Some(decoded.clone().verify(&PinnedKeys::from_files(&pin)?)?)
            };
            if json {
                print_json(&inspect_json(&bundle, &decoded, verified.as_ref()));
            } else {
                let signature = match verified {
                    Some(_) => "verified against the pinned key",
                    None => "not checked (give --pin to check it)",
                };
                print!("{}", inspect_text(&decoded, signature));
            }
        }
        BundleCommand::Verify {
            bundle,
            trust,
            read,
            journal,
            json,
        } => {
            let decoded =
                Bundle::read_file(&bundle, &read.limits.limits(), read.open.opener()?.as_ref())?;
            let verified = trust.verify(decoded)?;
            let segments = check_segments(&verified)?;
            let record_seq = match journal.state.resolve() {
                Some(state) => Some(journal_to(
                    &state,
                    bundle_record("bundle.verify", &journal, &bundle, &verified)?,
                )?),
                None => None,
            };
            if json {
                let mut value = inspect_json(&bundle, verified.bundle(), Some(&verified));
                value["journal_segments_checked"] = serde_json::json!(segments);
                value["journal_record"] = serde_json::json!(record_seq);
                print_json(&value);
            } else {
                let m = verified.manifest();
                println!(
                    "verified {}: {} bundle {}, {} entries, every hash checked, signed by pinned key SHA256:{}",
                    bundle.display(),
                    m.kind.name(),
                    m.id,
                    m.entries.len(),
                    verified.signer().fingerprint()
                );
                if segments > 0 {
                    println!(
                        "journal segment checked: chained, ends at the head the manifest states"
                    );
                }
            }
        }
        BundleCommand::Extract {
            bundle,
            trust,
            read,
            out,
            journal,
        } => {
            let decoded =
                Bundle::read_file(&bundle, &read.limits.limits(), read.open.opener()?.as_ref())?;
            let verified = trust.verify(decoded)?;
            check_segments(&verified)?;
            if out.symlink_metadata().is_ok() {
                return Err(rootcellar::bundle::BundleError::TargetExists(out).into());
            }
            if let Some(state) = journal.state.resolve() {
                let mut record = bundle_record("bundle.import", &journal, &bundle, &verified)?;
                for (info, _) in verified.entries() {
                    record = record.output(Digest {
                        name: info.name.clone(),
                        sha256: info.sha256,
                    });
                }
                journal_to(&state, record)?;
            }
            let written = verified.extract(&out)?;
            println!("extracted {} entries into {}", written.len(), out.display());
            for path in written {
                println!("  {}", path.display());
            }
        }
        BundleCommand::Seal { bundle, seal, out } => {
            if !seal.wanted() {
                return Err(CliError::Usage(
                    "give --recipient, --recipients-file, --seal-passphrase-file or --ask-seal-passphrase".into(),
                ));
            }
            rootcellar::files::ensure_absent([out.as_path()])?;
            let decoded = Bundle::read_file(&bundle, &Limits::default(), None)?;
            let (sealed, to) = seal.seal(&decoded.to_bytes())?;
            rootcellar::files::write_new(&out, &sealed)?;
            println!(
                "wrote {} ({} bytes), sealed to {to}",
                out.display(),
                sealed.len()
            );
        }
        BundleCommand::Unseal { bundle, open, out } => {
            let opener = open.opener()?.ok_or_else(|| {
                CliError::Usage(
                    "give --identity FILE, --passphrase-file FILE or --ask-passphrase".into(),
                )
            })?;
            rootcellar::files::ensure_absent([out.as_path()])?;
            let decoded = Bundle::read_file(&bundle, &Limits::default(), Some(&opener))?;
            let bytes = decoded.to_bytes();
            rootcellar::files::write_new(&out, &bytes)?;
            println!(
                "wrote {} ({} bytes): {} bundle {} (signature not checked: use bundle verify)",
                out.display(),
                bytes.len(),
                decoded.manifest().kind.name(),
                decoded.manifest().id
            );
        }
    }
    Ok(())
}
