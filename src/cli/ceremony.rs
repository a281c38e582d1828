//! `rootcellar ceremony …`

use std::path::PathBuf;

use clap::Subcommand;
use rootcellar::ceremony::{self, Answers, Interactive, Prompter, RunOptions};

use super::CliError;

#[derive(Debug, Subcommand)]
pub enum CeremonyCommand {
    /// Check a ceremony script completely and report every problem at once.
    Check {
        /// The script (ceremony/*.toml).
        script: PathBuf,
    },
    /// Run (or resume) a ceremony at the console.
    Run {
        /// The script (ceremony/*.toml).
        script: PathBuf,
        /// The appliance state directory (journal, ceremony progress).
        #[arg(long, env = "ROOTCELLAR_STATE", value_name = "DIR")]
        state: PathBuf,
        /// A directory holding the request's entries, when the script has inputs.
        #[arg(long, value_name = "DIR")]
        inputs: Option<PathBuf>,
        /// Where to write the outputs and the transcript; must not exist.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Answers for an unattended run (rehearsals and tests).
        #[arg(long, value_name = "FILE")]
        answers: Option<PathBuf>,
        /// Use throwaway SoftHSM2 tokens and mark every output as rehearsal.
        #[arg(long)]
        rehearsal: bool,
        /// Write the outputs, the transcript and the ceremony's journal segment as
        /// OUT/response.rcb, signed by this key of the script (e.g. bundle-key).
        #[arg(long, value_name = "KEY-NAME")]
        bundle_key: Option<String>,
    },
}

pub fn run(command: CeremonyCommand) -> Result<(), CliError> {
    match command {
        CeremonyCommand::Check { script } => {
            let script = ceremony::check(&script)?;
            println!(
                "{}: ok ({} steps, {} keys, {} inputs, {} outputs)",
                script.path.display(),
                script.steps.len(),
                script.keys.len(),
                script.inputs.len(),
                script.outputs.len()
            );
        }
        CeremonyCommand::Run {
            script,
            state,
            inputs,
            out,
            answers,
            rehearsal,
            bundle_key,
        } => {
            let options = RunOptions {
                script,
                state,
                inputs,
                out,
                rehearsal,
                bundle_key,
            };
            let mut prompter: Box<dyn Prompter> = match answers {
                Some(path) => Box::new(Answers::load(&path)?),
                None => Box::new(Interactive::terminal()),
            };
            ceremony::run(&options, prompter.as_mut())?;
        }
    }
    Ok(())
}
