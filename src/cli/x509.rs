//! `rootcellar x509 …`

use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;
use rootcellar::journal::{Digest, Record};
use rootcellar::x509::{
    write_certificate, CrlOrder, IntermediateOrder, IssuedCertificate, Profile, RootCaOrder,
    RootCaSpec, Serial, Validity,
};

use rootcellar::keys::{Hsm, HsmConfig, KeyLocation, Signer};

use super::CliError;

#[derive(Debug, Subcommand)]
pub enum X509Command {
    /// Self-sign the root CA certificate with an HSM key.
    Root {
        /// The root CA key (pkcs11:…).
        #[arg(long)]
        key: String,
        /// Subject, e.g. "CN=Example Root CA,O=Example". Overrides the profile file's.
        #[arg(long)]
        subject: Option<String>,
        /// A TOML profile with `subject` and `validity_days`.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Start of validity: the confirmed time.
        #[command(flatten)]
        time: super::SigningTime,
        /// Lifetime in days (default: the profile's, else 3652).
        #[arg(long)]
        days: Option<u32>,
        /// Output PEM file; must not exist.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        state: super::journal::StateArg,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
    },
    /// Issue an intermediate CA certificate from a CSR under a profile (fulcio, tsa).
    Issue {
        /// fulcio or tsa.
        #[arg(long)]
        profile: String,
        /// The CSR (PEM or DER).
        #[arg(long)]
        csr: PathBuf,
        /// The issuing CA's certificate.
        #[arg(long)]
        issuer_cert: PathBuf,
        /// The issuing CA's key (pkcs11:…).
        #[arg(long)]
        issuer_key: String,
        /// Subject overriding the CSR's.
        #[arg(long)]
        subject: Option<String>,
        /// Start of validity: the confirmed time.
        #[command(flatten)]
        time: super::SigningTime,
        /// Lifetime in days (default 1826; must end within the issuer's lifetime).
        #[arg(long)]
        days: Option<u32>,
        /// Output PEM file; must not exist.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        state: super::journal::StateArg,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
    },
    /// Sign a certificate revocation list revoking certificates by serial.
    Crl {
        /// The issuing CA's certificate.
        #[arg(long)]
        issuer_cert: PathBuf,
        /// The issuing CA's key (pkcs11:…).
        #[arg(long)]
        issuer_key: String,
        /// A serial number to revoke (hex); repeatable. None gives an empty CRL.
        #[arg(long)]
        revoke: Vec<String>,
        /// thisUpdate: the confirmed time (its seconds are also the CRL number).
        #[command(flatten)]
        time: super::SigningTime,
        /// Days until nextUpdate.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Output PEM file; must not exist.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        state: super::journal::StateArg,
    },
}

fn journal_certificate(
    state: &super::journal::StateArg,
    action: &str,
    key_uri: &str,
    cert: &IssuedCertificate,
    out: &std::path::Path,
    time: rootcellar::time::ConfirmedTime,
) -> Result<(), CliError> {
    super::journal_action(
        state,
        Record::new(time, super::actor(), action)
            .detail(format!(
                "{} serial {} signed by {}",
                cert.subject,
                cert.serial_hex,
                key_uri.split('?').next().unwrap_or_default()
            ))
            .output(Digest::of(out.display().to_string(), cert.pem().as_bytes())),
    )
}

fn print(cert: &IssuedCertificate, out: &std::path::Path, json: bool) {
    if json {
        let mut value = cert.to_json();
        value["path"] = serde_json::Value::String(out.display().to_string());
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values serialise")
        );
        return;
    }
    println!("wrote {}", out.display());
    println!("  subject:     {}", cert.subject);
    println!("  serial:      {}", cert.serial_hex);
    println!("  valid:       {} to {}", cert.not_before, cert.not_after);
    println!("  fingerprint: SHA256:{}", cert.fingerprint());
    for ignored in &cert.ignored_extensions {
        println!("  ignored from CSR: {ignored}");
    }
}

/// Opens the key `uri` names, once the order's inputs are checked (a refused input costs no
/// PIN attempt).
fn open_key(hsm: &Hsm, uri: &str) -> Result<Arc<dyn Signer>, CliError> {
    Ok(hsm.signer(&KeyLocation::parse(uri)?)?)
}

pub fn run(command: X509Command, hsm: &HsmConfig) -> Result<(), CliError> {
    let hsm = hsm.open();
    match command {
        X509Command::Root {
            key,
            subject,
            profile,
            time,
            days,
            out,
            json,
            state,
        } => {
            let spec = profile.as_deref().map(RootCaSpec::load).transpose()?;
            let subject = subject
                .or_else(|| spec.as_ref().map(|s| s.subject.clone()))
                .ok_or_else(|| {
                    CliError::Usage("give --subject or a --profile with a subject".into())
                })?;
            let days = days
                .or_else(|| spec.as_ref().and_then(|s| s.validity_days))
                .unwrap_or(RootCaSpec::DEFAULT_DAYS);
            let order = RootCaOrder {
                subject,
                validity: Validity {
                    not_before: time.confirm(state.resolve().as_deref())?,
                    days,
                },
                serial: Serial::random(),
                out,
            };
            // Journaled before the file appears: no certificate leaves unrecorded.
            order.check()?;
            let signer = open_key(&hsm, &key)?;
            let cert = order.sign(signer.as_ref())?;
            journal_certificate(
                &state,
                "x509.root",
                &signer.key_uri(),
                &cert,
                &order.out,
                order.validity.not_before,
            )?;
            write_certificate(&order.out, &cert)?;
            print(&cert, &order.out, json);
        }
        X509Command::Issue {
            profile,
            csr,
            issuer_cert,
            issuer_key,
            subject,
            time,
            days,
            out,
            json,
            state,
        } => {
            let profile = Profile::from_name(&profile)?;
            let order = IntermediateOrder {
                csr,
                profile,
                issuer_cert,
                subject,
                validity: Validity {
                    not_before: time.confirm(state.resolve().as_deref())?,
                    days: days.unwrap_or(profile.default_days()),
                },
                serial: Serial::random(),
                out,
            };
            order.check()?;
            let signer = open_key(&hsm, &issuer_key)?;
            let cert = order.sign(signer.as_ref())?;
            journal_certificate(
                &state,
                "x509.issue",
                &signer.key_uri(),
                &cert,
                &order.out,
                order.validity.not_before,
            )?;
            write_certificate(&order.out, &cert)?;
            print(&cert, &order.out, json);
        }
        X509Command::Crl {
            issuer_cert,
            issuer_key,
            revoke,
            time,
            days,
            out,
            state,
        } => {
            let order = CrlOrder {
                issuer_cert,
                revoke,
                this_update: time.confirm(state.resolve().as_deref())?,
                days,
                out,
            };
            order.check()?;
            let signer = open_key(&hsm, &issuer_key)?;
            let crl = order.sign(signer.as_ref())?;
            super::journal_action(
                &state,
                Record::new(order.this_update, super::actor(), "x509.crl")
                    .detail(format!(
                        "CRL {} by {} revoking [{}]",
                        crl.number,
                        signer.key_uri(),
                        crl.revoked.join(", ")
                    ))
                    .output(Digest::of(
                        order.out.display().to_string(),
                        crl.pem().as_bytes(),
                    )),
            )?;
            order.write(&crl)?;
            println!("wrote {}", order.out.display());
            println!(
                "  CRL number {}, {} to {}",
                crl.number, crl.this_update, crl.next_update
            );
            for serial in &crl.revoked {
                println!("  revoked: {serial}");
            }
        }
    }
    Ok(())
}
