//! `rootcellar journal …`

use clap::Subcommand;

use super::CliError;

#[derive(Debug, Subcommand)]
pub enum JournalCommand {}

pub fn run(command: JournalCommand) -> Result<(), CliError> {
    match command {}
}
