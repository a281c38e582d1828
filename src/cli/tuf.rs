//! `rootcellar tuf …`

use std::path::{Path, PathBuf};

use clap::Subcommand;
use rootcellar::keys::{HsmConfig, KeyLocation};
use rootcellar::tuf::{self, Policy, TargetChange};

use super::CliError;

#[derive(Debug, Subcommand)]
pub enum TufCommand {
    /// Create a new TUF repository: root v1 signed by every root key, then targets, snapshot
    /// and timestamp v1, with the target files under consistent-snapshot names.
    Init {
        /// The repository policy (roles, key names, thresholds, expiry), e.g. tuf-repo/policy.toml.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// A TOML file whose [keys] table maps the policy's key names to key URIs.
        #[arg(long, value_name = "FILE")]
        keys: Option<PathBuf>,
        /// The repository directory to create; it must not exist.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// A file to list as a target (its file name is the target name); repeatable.
        #[arg(long = "target", value_name = "FILE")]
        targets: Vec<PathBuf>,
        /// The confirmed time expiries count from.
        #[command(flatten)]
        time: super::SigningTime,
        /// Journal the signing in this state directory.
        #[command(flatten)]
        state: super::journal::StateArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Draft the next root from a policy (rotation, key replacement, threshold change, or a
    /// re-sign with the same keys) into REPO/staged/, for the custodians to sign.
    Rotate {
        /// The repository.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// The policy the new root follows.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// The keys file mapping the policy's key names to URIs or PEM public keys.
        #[arg(long, value_name = "FILE")]
        keys: Option<PathBuf>,
        /// The confirmed time expiries count from.
        #[command(flatten)]
        time: super::SigningTime,
        /// Journal the signing in this state directory.
        #[command(flatten)]
        state: super::journal::StateArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Sign, with one key, every staged draft that key may sign.
    Sign {
        /// The repository.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// The key's URI (pkcs11:…); the PIN comes from pin-source or the prompt.
        #[arg(long, value_name = "URI")]
        key: String,
        /// The confirmed time expiries count from.
        #[command(flatten)]
        time: super::SigningTime,
        /// Journal the signing in this state directory.
        #[command(flatten)]
        state: super::journal::StateArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// At the appliance: a signing request bundle for a custodian away from it, to sign the
    /// drafted root on their own token (tuf sign-request).
    RequestSignature(super::tuf_remote::RequestSignatureArgs),
    /// On a custodian's own machine: check a signing request against the root you trust, show
    /// the change, and, once you type its code, sign it with your token into a signature bundle.
    SignRequest(super::tuf_remote::SignRequestArgs),
    /// At the appliance: add custodians' signature bundles to the drafted root (all or none).
    AddSignatures(super::tuf_remote::AddSignaturesArgs),
    /// Show each role's published version and expiry, and each staged draft's signatures and
    /// thresholds.
    Status {
        /// The repository.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// The policy whose signing periods apply (default: each role's default period).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// The keys file of the policy.
        #[arg(long, value_name = "FILE")]
        keys: Option<PathBuf>,
        /// The time to judge expiry at.
        #[command(flatten)]
        time: super::CheckTime,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Publish the staged drafts that meet their thresholds into REPO/metadata/ (offline mode:
    /// with a new snapshot and timestamp signed by the appliance; with nothing staged, only
    /// those: a refresh).
    Publish {
        /// The repository.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// The repository policy.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// The keys file mapping the policy's key names to URIs or PEM public keys.
        #[arg(long, value_name = "FILE")]
        keys: Option<PathBuf>,
        /// Signature bundles from custodians (tuf sign-request), added to the drafted root
        /// first (as tuf add-signatures does).
        #[arg(long = "signatures", value_name = "BUNDLE", num_args = 1..)]
        signatures: Vec<PathBuf>,
        /// The confirmed time expiries count from.
        #[command(flatten)]
        time: super::SigningTime,
        /// Journal the signing in this state directory.
        #[command(flatten)]
        state: super::journal::StateArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-sign snapshot and timestamp over what is published, and nothing else (offline mode,
    /// nothing staged): keeps a disconnected cluster's metadata fresh. Only the policy's
    /// snapshot and timestamp keys need locations.
    Refresh {
        /// The repository.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// The repository policy (its snapshot and timestamp expiries are used).
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// The keys file mapping the snapshot and timestamp key names to URIs.
        #[arg(long, value_name = "FILE")]
        keys: Option<PathBuf>,
        /// The confirmed time expiries count from.
        #[command(flatten)]
        time: super::SigningTime,
        /// Journal the signing in this state directory.
        #[command(flatten)]
        state: super::journal::StateArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stage changes to the targets role.
    #[command(subcommand)]
    Targets(TargetsCommand),
    /// Verify a repository as a TUF client does, from a root you already trust.
    Verify {
        /// The root metadata file you trust (obtained out of band).
        #[arg(long, value_name = "FILE")]
        trusted_root: PathBuf,
        /// The repository directory (metadata/, targets/).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The time at which nothing may have expired.
        #[command(flatten)]
        time: super::CheckTime,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TargetsCommand {
    /// Add a target file, or replace the target of the same name.
    Add {
        /// The repository.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// The file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The target name (default: the file name).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Custom metadata, a JSON object (kept from the replaced target when not given).
        #[arg(long, value_name = "JSON")]
        custom: Option<String>,
        #[command(flatten)]
        common: TargetsCommon,
    },
    /// Remove a target.
    Remove {
        /// The repository.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// The target name.
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        common: TargetsCommon,
    },
    /// Renew the targets metadata unchanged: new version, new expiry.
    Renew {
        /// The repository.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        #[command(flatten)]
        common: TargetsCommon,
    },
}

#[derive(Debug, clap::Args)]
pub struct TargetsCommon {
    /// The repository policy (for the targets expiry).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The keys file of the policy.
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// The confirmed time the targets expiry counts from.
    #[command(flatten)]
    time: super::SigningTime,
    /// Journal the signing in this state directory.
    #[command(flatten)]
    state: super::journal::StateArg,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// What `tuf publish` and `tuf refresh` print: the roles written and how long the repository
/// now stays valid from the confirmed time (warnings on stderr too under --json).
fn print_published(
    report: &tuf::PublishReport,
    policy: &Policy,
    now: rootcellar::time::ConfirmedTime,
    json: bool,
) -> Result<(), CliError> {
    let validity = tuf::repository_status(&report.repo, Some(policy), now.timestamp())?.validity();
    let mut value = report.to_json();
    value["validity"] = validity.iter().map(tuf::RoleValidity::to_json).collect();
    let text = format!(
        "{}the repository now, counted from {now}:\n{}",
        report.to_text(),
        tuf::validity_text(&validity)
    );
    print(json, value, text);
    if json {
        for warning in validity.iter().filter_map(tuf::RoleValidity::warning) {
            eprintln!("rootcellar: {warning}");
        }
    }
    Ok(())
}

fn print(json: bool, value: serde_json::Value, text: String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values serialise")
        );
    } else {
        print!("{text}");
    }
}

pub fn run(command: TufCommand, hsm: &HsmConfig) -> Result<(), CliError> {
    let hsm = hsm.open();
    match command {
        TufCommand::Init {
            policy,
            keys,
            out,
            targets,
            time,
            state,
            json,
        } => {
            let now = time.confirm(state.resolve().as_deref())?;
            let policy = Policy::load(&policy, keys.as_deref())?;
            let mut record =
                journal_before(&state, now, "tuf.init", out.display().to_string(), &out);
            let report = tuf::init_repository(&policy, &targets, &out, &hsm, now, &mut record)?;
            print(json, report.to_json(), report.to_text());
        }
        TufCommand::Rotate {
            repo,
            policy,
            keys,
            time,
            state,
            json,
        } => {
            let now = time.confirm(state.resolve().as_deref())?;
            let policy = Policy::load(&policy, keys.as_deref())?;
            let mut record = journal_before(
                &state,
                now,
                "tuf.rotate",
                format!("{}: root drafted", repo.display()),
                &repo,
            );
            let report = tuf::draft_root(&repo, &policy, &hsm, now, &mut record)?;
            print(json, report.to_json(), report.to_text());
        }
        TufCommand::Sign {
            repo,
            key,
            time,
            state,
            json,
        } => {
            let now = time.confirm(state.resolve().as_deref())?;
            let key = KeyLocation::parse(&key)?;
            let mut record = journal_before(
                &state,
                now,
                "tuf.sign",
                format!("{} signed in {}", key.without_query(), repo.display()),
                &repo,
            );
            let report = tuf::sign_staged(&repo, &hsm, &key, now, &mut record)?;
            print(json, report.to_json(), report.to_text());
        }
        TufCommand::Status {
            repo,
            policy,
            keys,
            time,
            json,
        } => {
            let now = time.resolve()?;
            let policy = policy
                .map(|p| Policy::load_roles(&p, keys.as_deref()))
                .transpose()?;
            let report = tuf::repository_status(&repo, policy.as_ref(), now)?;
            print(json, report.to_json(), report.to_text());
        }
        TufCommand::RequestSignature(args) => super::tuf_remote::request_signature(args, &hsm)?,
        TufCommand::SignRequest(args) => super::tuf_remote::sign_request(args, &hsm)?,
        TufCommand::AddSignatures(args) => super::tuf_remote::add_signatures(args)?,
        TufCommand::Publish {
            repo,
            policy,
            keys,
            signatures,
            time,
            state,
            json,
        } => {
            let now = time.confirm(state.resolve().as_deref())?;
            let policy = Policy::load(&policy, keys.as_deref())?;
            if !signatures.is_empty() {
                let report = super::tuf_remote::accept(&repo, &signatures, now, &state)?;
                eprint!("{}", report.to_text());
            }
            let mut record = journal_before(
                &state,
                now,
                "tuf.publish",
                repo.display().to_string(),
                &repo,
            );
            let report = tuf::publish(&repo, &policy, &hsm, now, &mut record)?;
            print_published(&report, &policy, now, json)?;
        }
        TufCommand::Refresh {
            repo,
            policy,
            keys,
            time,
            state,
            json,
        } => {
            let now = time.confirm(state.resolve().as_deref())?;
            let policy = Policy::load_for_refresh(&policy, keys.as_deref())?;
            let mut record = journal_before(
                &state,
                now,
                "tuf.refresh",
                repo.display().to_string(),
                &repo,
            );
            let report = tuf::refresh(&repo, &policy, &hsm, now, &mut record)?;
            print_published(&report, &policy, now, json)?;
        }
        TufCommand::Targets(command) => run_targets(command)?,
        TufCommand::Verify {
            trusted_root,
            dir,
            time,
            json,
        } => {
            let at = time.resolve()?;
            let bytes = std::fs::read(&trusted_root).map_err(|e| {
                CliError::Usage(format!("cannot read {}: {e}", trusted_root.display()))
            })?;
            let options = tuf::VerifyOptions::at(at);
            let report = tuf::verify_repository(&bytes, &dir, &options)
                .map_err(|e| CliError::Tuf(e.into()))?;
            print(json, report.to_json(), report.to_text());
        }
    }
    Ok(())
}

fn run_targets(command: TargetsCommand) -> Result<(), CliError> {
    let (repo, change, common) = match command {
        TargetsCommand::Add {
            repo,
            file,
            name,
            custom,
            common,
        } => {
            let custom = custom
                .map(|text| {
                    serde_json::from_str(&text)
                        .map_err(|e| CliError::Usage(format!("--custom is not JSON ({e}): {text}")))
                })
                .transpose()?;
            (repo, TargetChange::Add { file, name, custom }, common)
        }
        TargetsCommand::Remove { repo, name, common } => {
            (repo, TargetChange::Remove { name }, common)
        }
        TargetsCommand::Renew { repo, common } => (repo, TargetChange::Renew, common),
    };
    let now = common.time.confirm(common.state.resolve().as_deref())?;
    let policy = Policy::load_roles(&common.policy, common.keys.as_deref())?;
    let mut record = journal_before(
        &common.state,
        now,
        "tuf.targets",
        format!("{}: targets drafted", Path::new(&repo).display()),
        Path::new(&repo),
    );
    let report = tuf::stage_targets(Path::new(&repo), &policy, &change, now, &mut record)?;
    print(common.json, report.to_json(), report.to_text());
    Ok(())
}

/// Journals what a TUF signing command is about to write, when a state directory is given:
/// the files (paths under the repository) with the SHA-256 of each, recorded before the first
/// of them appears, so a command killed while writing still left its record. A command that
/// fails before writing leaves none.
pub(super) fn journal_before<'a>(
    state: &'a super::journal::StateArg,
    time: rootcellar::time::ConfirmedTime,
    action: &'a str,
    detail: String,
    repo: &'a Path,
) -> impl FnMut(&[tuf::PendingFile]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + 'a {
    move |files| {
        if state.resolve().is_none() {
            return Ok(());
        }
        let names: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        let mut record = rootcellar::journal::Record::new(time, super::actor(), action)
            .detail(format!("{detail}: writing {}", names.join(", ")));
        for file in files {
            record = record.output(rootcellar::journal::Digest {
                name: repo.join(&file.path).display().to_string(),
                sha256: file.sha256,
            });
        }
        super::journal_action(state, record).map_err(|e| e.to_string())?;
        rootcellar::test_hooks::crash_point(action, "recorded");
        Ok(())
    }
}
