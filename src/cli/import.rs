//! `rootcellar import`

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use rootcellar::import::{import, ImportOptions, PolicyRequest};

use super::CliError;

/// Verify a response bundle against the trust this cluster holds, then write a TUF mirror, the
/// verified trusted_root.json, Kubernetes manifests and a change report into a new directory.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("trust").required(true).multiple(true).args(["root", "state"])))]
pub struct ImportArgs {
    /// The response bundle from the appliance (.rcb).
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,
    /// First import: the TUF root this cluster pins, obtained out of band (e.g. 1.root.json).
    #[arg(long, value_name = "FILE")]
    root: Option<PathBuf>,
    /// The import state directory: holds the trust from the previous import, and is advanced
    /// after this one succeeds (created on the first import, with --root).
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// The output directory to create (must not exist).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The time at which no metadata may have expired.
    #[command(flatten)]
    time: super::CheckTime,
    /// The appliance's bundle public key or certificate (PEM or DER). Needed on the first
    /// import; later imports use the keys the state recorded unless given. Repeatable.
    #[arg(long, value_name = "PEM")]
    bundle_key: Vec<PathBuf>,
    /// The name of the TrustRoot and policies written.
    #[arg(long, value_name = "NAME", default_value = "rootcellar")]
    name: String,
    /// An image glob the admission policies cover, starting with the registry host; `**` means
    /// any characters (a lone `*` is refused: the two engines read it differently). Repeatable.
    /// With --issuer and --identity; later imports keep the policy recorded in --state.
    #[arg(long = "image", value_name = "GLOB")]
    images: Vec<String>,
    /// The OIDC issuer URL of every --identity.
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// A subject (email or URI) whose signature admits an image. Repeatable: any one suffices.
    #[arg(long = "identity", value_name = "SUBJECT")]
    identities: Vec<String>,
    /// Write the policies as templates with placeholders, for filling in by hand.
    #[arg(long)]
    template: bool,
    /// Import a rehearsal's bundle (refused otherwise): for a test cluster only.
    #[arg(long)]
    allow_rehearsal: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ImportArgs) -> Result<(), CliError> {
    let mut options = ImportOptions::new(args.bundle, args.out, args.time.resolve()?);
    options.root = args.root;
    options.state = args.state;
    options.bundle_keys = args.bundle_key;
    options.name = args.name;
    options.allow_rehearsal = args.allow_rehearsal;
    options.policy = PolicyRequest {
        images: args.images,
        issuer: args.issuer,
        subjects: args.identities,
        template: args.template,
    };
    let report = import(&options)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).expect("JSON values serialise")
        );
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
