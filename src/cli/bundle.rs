//! `rootcellar bundle …`

use clap::Subcommand;

use super::CliError;

#[derive(Debug, Subcommand)]
pub enum BundleCommand {}

pub fn run(command: BundleCommand) -> Result<(), CliError> {
    match command {}
}
