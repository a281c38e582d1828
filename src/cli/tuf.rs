use super::CliError;
#[derive(Debug, clap::Subcommand)]
pub enum TufCommand {}
pub fn run(_c: TufCommand) -> Result<(), CliError> {
    Ok(())
}
