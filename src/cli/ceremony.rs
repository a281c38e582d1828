//! `rootcellar ceremony …`

use std::path::PathBuf;

use clap::Subcommand;
use rootcellar::ceremony::{self, Answers, ConsoleOptions, Interactive, Prompter, RunOptions};
use rootcellar::keys::HsmConfig;

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
    /// The appliance's operator console: image identity, clock, and a menu of the ceremony
    /// scripts, each rehearsed or run for real with the request read from (and the response
    /// written to) the sneakernet disk. Line-based: a serial line works as well as a screen.
    Console(ConsoleArgs),
}

/// Where the console finds the image's files and the disks (defaults: the appliance image's).
#[derive(Debug, clap::Args)]
pub struct ConsoleArgs {
    /// The image manifest; its SHA-256 is shown as the image identity.
    #[arg(long, env = "ROOTCELLAR_IMAGE_MANIFEST", value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// The ceremony scripts offered (every *.toml that checks).
    #[arg(
        long,
        env = "ROOTCELLAR_CEREMONY_DIR",
        value_name = "DIR",
        default_value = "/usr/share/rootcellar/ceremony"
    )]
    scripts: PathBuf,
    /// Use this state directory as it is (no state disk, no RAM fallback).
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Mounts the state disk at --state-media-dir (the state is then DIR/rootcellar-state),
    /// e.g. "rc-media --label RCSTATE --dir /media/state --wait 10 mount".
    #[arg(long, value_name = "COMMAND")]
    state_mount_command: Option<String>,
    /// Where --state-mount-command mounts the state disk.
    #[arg(long, value_name = "DIR", default_value = "/media/state")]
    state_media_dir: PathBuf,
    /// The state directory in RAM, used (with a warning) when there is no state disk.
    #[arg(long, value_name = "DIR", default_value = "/run/rootcellar/state")]
    ram_state: PathBuf,
    /// Where the sneakernet disk is mounted.
    #[arg(
        long,
        env = "ROOTCELLAR_MEDIA_DIR",
        value_name = "DIR",
        default_value = "/media/sneaker"
    )]
    media_dir: PathBuf,
    /// Mounts the sneakernet disk (split on spaces, no shell).
    #[arg(long, value_name = "COMMAND", default_value = "rc-media mount")]
    mount_command: String,
    /// Flushes and unmounts the sneakernet disk.
    #[arg(long, value_name = "COMMAND", default_value = "rc-media umount")]
    umount_command: String,
    /// Held while a ceremony runs, so that two consoles never run one at once.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/run/rootcellar/ceremony.lock"
    )]
    lock: PathBuf,
    /// Offer a shell (the image passes it when the kernel command line has rootcellar.debug=1).
    #[arg(long)]
    debug: bool,
    /// The shell offered with --debug.
    #[arg(long, value_name = "COMMAND", default_value = "/bin/sh")]
    shell_command: String,
    /// Powers the appliance off.
    #[arg(long, value_name = "COMMAND", default_value = "poweroff")]
    poweroff_command: String,
    /// The terminal's name, for the `console ready on …` line (the image sets it).
    #[arg(long, env = "ROOTCELLAR_TTY", value_name = "NAME")]
    terminal: Option<String>,
}

fn words(command: &str) -> Vec<String> {
    command.split_whitespace().map(str::to_string).collect()
}

pub fn run(command: CeremonyCommand, hsm: &HsmConfig) -> Result<(), CliError> {
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
                hsm: hsm.clone(),
                // `ceremony run` is not the appliance's console: the transcript says so.
                image_manifest: None,
            };
            let mut prompter: Box<dyn Prompter> = match answers {
                Some(path) => Box::new(Answers::load(&path)?),
                None => Box::new(Interactive::terminal()),
            };
            ceremony::run(&options, prompter.as_mut())?;
        }
        CeremonyCommand::Console(args) => {
            let options = ConsoleOptions {
                manifest: args.manifest,
                scripts: args.scripts,
                state: args.state,
                state_mount: args
                    .state_mount_command
                    .map(|c| (words(&c), args.state_media_dir)),
                ram_state: args.ram_state,
                media_dir: args.media_dir,
                mount: words(&args.mount_command),
                umount: words(&args.umount_command),
                lock: args.lock,
                debug: args.debug,
                shell: words(&args.shell_command),
                poweroff: words(&args.poweroff_command),
                terminal: args.terminal.filter(|t| !t.is_empty()),
                hsm: hsm.clone(),
            };
            ceremony::console(&options, std::io::stdin().lock(), std::io::stdout())?;
        }
    }
    Ok(())
}
