//! `rootcellar tuf …`

use std::path::PathBuf;

use clap::Subcommand;
use rootcellar::tuf::{self, Policy};

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
        /// The ceremony time (RFC 3339) that expiries count from; defaults to the system clock.
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: TufCommand) -> Result<(), CliError> {
    match command {
        TufCommand::Init {
            policy,
            keys,
            out,
            targets,
            now,
            json,
        } => {
            let now = super::parse_time(now.as_deref())?;
            let policy = Policy::load(&policy, keys.as_deref())?;
            let report = tuf::init_repository(&policy, &targets, &out, now)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report.to_json()).expect("JSON values serialise")
                );
            } else {
                print!("{}", report.to_text());
            }
        }
    }
    Ok(())
}
