use super::CliError;
#[derive(Debug, clap::Subcommand)]
pub enum X509Command {}
pub fn run(_c: X509Command) -> Result<(), CliError> {
    Ok(())
}
