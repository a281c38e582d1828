//! `rootcellar key …`

use clap::{Args, Subcommand};
use rootcellar::journal::{Digest, Record};
use rootcellar::keys::{HsmConfig, KeyAlgorithm, KeyInfo, KeyLocation};

use super::CliError;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a key pair inside the token; the URI names the token and the new key's label
    /// (pkcs11:token=T;object=LABEL?module-path=…&pin-source=…).
    Generate {
        /// Token and label of the new key.
        uri: String,
        /// p256 or p384.
        #[arg(long, default_value = "p256")]
        algorithm: String,
        /// Let the private key leave the token wrapped, for a backup (it stays sensitive), and
        /// only under a wrap key the token's security officer made trusted
        /// (CKA_WRAP_WITH_TRUSTED). Without this the key can never leave its token.
        #[arg(long)]
        for_backup: bool,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        state: super::journal::StateArg,
        /// The journal record's time (only with a state directory).
        #[command(flatten)]
        time: super::SigningTime,
    },
    /// List the signing keys on a token, each with its protection attributes and what the
    /// token enforces of them (measured on throwaway session objects).
    List {
        /// The token (pkcs11:token=T?module-path=…).
        uri: String,
        #[command(flatten)]
        output: Output,
    },
    /// Show one key: URI, algorithm, fingerprint, public key, protection attributes, and what
    /// the token enforces of them.
    Show {
        /// The key (pkcs11:token=T;object=LABEL…).
        uri: String,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Args)]
pub struct Output {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl Output {
    fn print(&self, keys: &[KeyInfo], single: bool) {
        if self.json {
            let values: Vec<_> = keys.iter().map(KeyInfo::to_json).collect();
            let value = if single {
                values.into_iter().next().unwrap_or_default()
            } else {
                serde_json::Value::Array(values)
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&value).expect("JSON values serialise")
            );
        } else {
            let texts: Vec<_> = keys.iter().map(KeyInfo::to_text).collect();
            print!("{}", texts.join("\n"));
        }
    }
}

pub fn run(command: KeyCommand, hsm: &HsmConfig) -> Result<(), CliError> {
    let hsm = hsm.open();
    match command {
        KeyCommand::Generate {
            uri,
            algorithm,
            for_backup,
            output,
            state,
            time,
        } => {
            // Checked before the token is touched: a refused time leaves no key unrecorded.
            let time = match state.resolve() {
                Some(dir) => Some(time.confirm(Some(&dir))?),
                None => None,
            };
            let algorithm = KeyAlgorithm::from_name(&algorithm)?;
            let location = KeyLocation::parse(&uri)?;
            let label = location.key_label().unwrap_or_default().to_string();
            let backend = hsm.backend(&location)?;
            let info = if for_backup {
                backend.generate_for_backup(&label, algorithm)?
            } else {
                backend.generate(&label, algorithm)?
            };
            if let Some(time) = time {
                super::journal_action(
                    &state,
                    Record::new(time, super::actor(), "key.generate")
                        .detail(format!(
                            "{} on device: {}",
                            info.uri.split('?').next().unwrap_or_default(),
                            backend
                                .device_info()?
                                .map(|d| d.summary())
                                .unwrap_or_else(|| "not described by its backend".into())
                        ))
                        .output(Digest::of(
                            "public key (SPKI DER)",
                            &info.public_key.spki_der(),
                        )),
                )?;
            }
            output.print(&[info], true);
        }
        KeyCommand::List { uri, output } => {
            let backend = hsm.backend(&KeyLocation::parse(&uri)?)?;
            let enforcement = backend.enforcement()?;
            let mut keys = backend.list()?;
            for key in &mut keys {
                key.enforcement = enforcement.clone();
            }
            output.print(&keys, false);
        }
        KeyCommand::Show { uri, output } => {
            let location = KeyLocation::parse(&uri)?;
            let backend = hsm.backend(&location)?;
            let mut key = backend.show(&location)?;
            key.enforcement = backend.enforcement()?;
            output.print(&[key], true);
        }
    }
    Ok(())
}
