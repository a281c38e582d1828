//! `rootcellar trustroot …`

use std::path::PathBuf;

use clap::Subcommand;
use rootcellar::trustroot::{self, TrustRootConfig};

use super::CliError;

#[derive(Debug, Subcommand)]
pub enum TrustRootCommand {
    /// Build trusted_root.json (and, with service URLs, signing_config.v0.2.json and
    /// trust_config.json) from a TOML configuration naming certificate chains, log keys and
    /// service URLs.
    Build {
        /// The configuration (see `ceremony/config/trustroot.example.toml`).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The trusted root published so far: what it lists and the configuration does not is
        /// kept with its validity closed at --time, so old signatures still verify.
        #[arg(long, value_name = "FILE")]
        previous: Option<PathBuf>,
        /// Directory to write into; the files must not exist there.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The time new entries start at and dropped ones are closed at.
        #[command(flatten)]
        time: super::SigningTime,
    },
}

pub fn run(command: TrustRootCommand) -> Result<(), CliError> {
    match command {
        TrustRootCommand::Build {
            config,
            previous,
            out,
            time,
        } => {
            let now = time.confirm(None)?;
            let previous = previous
                .as_deref()
                .map(trustroot::read_trusted_root)
                .transpose()?;
            let outputs = TrustRootConfig::load(&config)?.build(previous.as_ref(), now)?;
            for path in outputs.write(&out)? {
                println!("wrote {}", path.display());
            }
            let root = &outputs.trusted_root;
            println!(
                "  {} certificate authorities, {} timestamp authorities, {} tlogs, {} ctlogs",
                root.certificate_authorities.len(),
                root.timestamp_authorities.len(),
                root.tlogs.len(),
                root.ctlogs.len()
            );
        }
    }
    Ok(())
}
