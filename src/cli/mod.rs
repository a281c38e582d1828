//! Command-line interface: one subcommand group per library module.

mod bundle;
mod ceremony;
mod import;
mod journal;
mod key;
mod time;
mod trustroot;
mod tuf;
mod tuf_remote;
mod x509;

use clap::{Parser, Subcommand};

/// rootcellar: the offline root of trust for a private Sigstore deployment.
#[derive(Debug, Parser)]
#[command(name = "rootcellar", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// The command line, parsed. `rootcellar ceremony console …`, which the appliance starts on
    /// each terminal at boot, is first parsed against the console's own arguments only:
    /// building every subcommand's arguments was almost half of the code the console ran before
    /// its first screen, and under emulation (the image's tests and boot benchmark) running code
    /// for the first time is what costs. Whatever does not parse that way (`--help`, a mistake)
    /// is parsed again in full, so help and errors are the same as for any command.
    pub fn parse_command_line() -> Self {
        Self::console_only().unwrap_or_else(Self::parse)
    }

    fn console_only() -> Option<Self> {
        use clap::{Args, FromArgMatches};
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        let [group, name, rest @ ..] = args.as_slice() else {
            return None;
        };
        if group != "ceremony" || name != "console" {
            return None;
        }
        let parser = clap::Command::new("console")
            .no_binary_name(true)
            .disable_help_flag(true);
        let matches = ceremony::ConsoleArgs::augment_args(parser)
            .try_get_matches_from(rest)
            .ok()?;
        let console = ceremony::ConsoleArgs::from_arg_matches(&matches).ok()?;
        Some(Cli {
            command: Command::Ceremony(ceremony::CeremonyCommand::Console(console)),
        })
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate, list and show keys inside HSM tokens.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Issue the root CA certificate and intermediates from CSRs.
    #[command(subcommand)]
    X509(x509::X509Command),
    /// Build and sign TUF repository metadata.
    #[command(subcommand)]
    Tuf(tuf::TufCommand),
    /// Build Sigstore trusted_root.json and signing_config.v0.2.json.
    #[command(subcommand)]
    Trustroot(trustroot::TrustRootCommand),
    /// Check and run ceremony scripts.
    #[command(subcommand)]
    Ceremony(ceremony::CeremonyCommand),
    /// Build, inspect, verify and extract sneakernet bundles.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Show, verify and export the hash-chained audit journal.
    #[command(subcommand)]
    Journal(journal::JournalCommand),
    /// Cluster side: import a response bundle into a TUF mirror and Kubernetes manifests.
    Import(import::ImportArgs),
}

/// Every failure the CLI can report, each rendered once by `main`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the key backend.
    #[error(transparent)]
    Key(#[from] rootcellar::keys::KeyError),
    /// From certificate issuance.
    #[error(transparent)]
    X509(#[from] rootcellar::x509::X509Error),
    /// From TUF metadata.
    #[error(transparent)]
    Tuf(#[from] rootcellar::tuf::TufError),
    /// From trust root building.
    #[error(transparent)]
    TrustRoot(#[from] rootcellar::trustroot::TrustRootError),
    /// From ceremonies.
    #[error(transparent)]
    Ceremony(#[from] rootcellar::ceremony::CeremonyError),
    /// From the operator console.
    #[error(transparent)]
    Console(#[from] rootcellar::ceremony::ConsoleError),
    /// From bundles.
    #[error(transparent)]
    Bundle(#[from] rootcellar::bundle::BundleError),
    /// From the journal.
    #[error(transparent)]
    Journal(#[from] rootcellar::journal::JournalError),
    /// From a signing request or signature bundle of a custodian away from the appliance.
    #[error(transparent)]
    RemoteSigning(#[from] rootcellar::remote_signing::RemoteSigningError),
    /// From the cluster import.
    #[error(transparent)]
    Import(#[from] rootcellar::import::ImportError),
    /// From writing outputs.
    #[error(transparent)]
    Output(#[from] rootcellar::files::OutputError),
    /// A time was refused.
    #[error(transparent)]
    Time(#[from] rootcellar::time::TimeError),
    /// A command-line value the parser could not check by itself.
    #[error("{0}")]
    Usage(String),
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    // The one place the environment names a PKCS#11 module; everything below is handed this.
    let hsm = rootcellar::keys::HsmConfig::from_environment();
    match cli.command {
        Command::Key(cmd) => key::run(cmd, &hsm),
        Command::X509(cmd) => x509::run(cmd, &hsm),
        Command::Tuf(cmd) => tuf::run(cmd, &hsm),
        Command::Trustroot(cmd) => trustroot::run(cmd),
        Command::Ceremony(cmd) => ceremony::run(cmd, &hsm),
        Command::Bundle(cmd) => bundle::run(cmd, &hsm),
        Command::Journal(cmd) => journal::run(cmd),
        Command::Import(args) => import::run(args),
    }
}

/// Journals `record` when a state directory is given (`--state` or `ROOTCELLAR_STATE`): on the
/// appliance every key generation and signature made outside a ceremony is recorded too.
pub fn journal_action(
    state: &journal::StateArg,
    record: rootcellar::journal::Record,
) -> Result<(), CliError> {
    if let Some(dir) = state.resolve() {
        journal::journal_to(&dir, record)?;
    }
    Ok(())
}

/// Who acts, for the journal: the login name, else "operator".
pub fn actor() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "operator".into())
}

pub use time::{CheckTime, SigningTime};
