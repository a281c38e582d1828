//! Sealed bundles: a signed bundle encrypted with `age`, to one or more X25519 recipients
//! (custodians) or to a passphrase.
//!
//! Sealing wraps the finished bundle file; opening gives it back byte for byte, and it is then
//! checked like any other bundle. The passphrase comes from a no-echo prompt or a file, never
//! from the command line, and is held in zeroized memory.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::SecretString;
use zeroize::Zeroizing;

use super::error::BundleError;

/// The first bytes of a (binary) age file.
const AGE_MAGIC: &[u8] = b"age-encryption.org/";

/// Whether `bytes` is an age file rather than a plain bundle.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(AGE_MAGIC)
}

/// Parses an age X25519 recipient (`age1…`).
pub fn parse_recipient(text: &str) -> Result<age::x25519::Recipient, BundleError> {
    age::x25519::Recipient::from_str(text.trim()).map_err(|reason| BundleError::BadRecipient {
        recipient: text.to_string(),
        reason: reason.to_string(),
    })
}

/// Reads a recipients file: one `age1…` recipient per line; blank lines and `#` comments are
/// skipped.
pub fn read_recipients_file(path: &Path) -> Result<Vec<age::x25519::Recipient>, BundleError> {
    let text = std::fs::read_to_string(path).map_err(|e| BundleError::BadRecipient {
        recipient: path.display().to_string(),
        reason: e.to_string(),
    })?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(parse_recipient)
        .collect()
}

/// A passphrase held in zeroized memory. Its `Debug` never shows it.
pub struct Passphrase(Zeroizing<String>);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl Passphrase {
    /// Wraps a passphrase already in (zeroized) memory.
    pub fn new(value: Zeroizing<String>) -> Self {
        Passphrase(value)
    }

    /// Reads the first line of `path`.
    pub fn from_file(path: &Path) -> Result<Self, BundleError> {
        let unavailable = |reason: String| BundleError::PassphraseUnavailable {
            source_desc: format!("file {}", path.display()),
            reason,
        };
        let contents =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| unavailable(e.to_string()))?);
        let line = contents.lines().next().unwrap_or_default();
        if line.is_empty() {
            return Err(unavailable("the file is empty".into()));
        }
        Ok(Passphrase(Zeroizing::new(line.to_string())))
    }

    /// Asks at the console with echo off; when `confirm`, asks twice and requires the same
    /// answer (for sealing, where a typo would lock the bundle away).
    pub fn prompt(confirm: bool) -> Result<Self, BundleError> {
        let unavailable = |reason: String| BundleError::PassphraseUnavailable {
            source_desc: "the console".into(),
            reason,
        };
        if !std::io::stdin().is_terminal() {
            return Err(unavailable(
                "standard input is not a terminal; give a passphrase file".into(),
            ));
        }
        let ask = |prompt: &str| {
            rpassword::prompt_password(prompt)
                .map(Zeroizing::new)
                .map_err(|e| unavailable(e.to_string()))
        };
        let first = ask("Passphrase: ")?;
        if first.is_empty() {
            return Err(unavailable("the passphrase is empty".into()));
        }
        if confirm && *ask("Passphrase again: ")? != *first {
            return Err(unavailable("the two passphrases differ".into()));
        }
        Ok(Passphrase(first))
    }

    fn secret(&self) -> SecretString {
        SecretString::from(self.0.as_str().to_string())
    }
}

/// Encrypts `bundle` so that any one of `recipients` can open it.
pub fn seal_to_recipients(
    bundle: &[u8],
    recipients: &[age::x25519::Recipient],
) -> Result<Vec<u8>, BundleError> {
    if recipients.is_empty() {
        return Err(BundleError::Seal("no recipient given".into()));
    }
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| BundleError::Seal(e.to_string()))?;
    encrypt(encryptor, bundle)
}

/// Encrypts `bundle` to a passphrase (scrypt, at age's default work factor of about a second).
pub fn seal_with_passphrase(
    bundle: &[u8],
    passphrase: &Passphrase,
) -> Result<Vec<u8>, BundleError> {
    encrypt(
        age::Encryptor::with_user_passphrase(passphrase.secret()),
        bundle,
    )
}

fn encrypt(encryptor: age::Encryptor, bundle: &[u8]) -> Result<Vec<u8>, BundleError> {
    let seal_err = |e: std::io::Error| BundleError::Seal(e.to_string());
    let mut writer = encryptor.wrap_output(Vec::new()).map_err(seal_err)?;
    writer.write_all(bundle).map_err(seal_err)?;
    writer.finish().map_err(seal_err)
}

/// How to open a sealed bundle.
pub enum Opener {
    /// The age identities of an identity file (a custodian's key).
    Identities(Vec<Box<dyn age::Identity + Send + Sync>>),
    /// A passphrase.
    Passphrase(Passphrase),
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opener::Identities(ids) => write!(f, "Opener::Identities({} identities)", ids.len()),
            Opener::Passphrase(_) => f.write_str("Opener::Passphrase(<redacted>)"),
        }
    }
}

impl Opener {
    /// Reads an age identity file (`AGE-SECRET-KEY-1…` lines, as `age-keygen` writes).
    pub fn identity_file(path: &Path) -> Result<Self, BundleError> {
        let bad = |reason: String| BundleError::BadIdentityFile {
            path: path.to_path_buf(),
            reason,
        };
        let file = age::IdentityFile::from_file(path.to_string_lossy().into_owned())
            .map_err(|e| bad(e.to_string()))?;
        let identities = file.into_identities().map_err(|e| bad(e.to_string()))?;
        if identities.is_empty() {
            return Err(bad("it holds no identity".into()));
        }
        Ok(Opener::Identities(identities))
    }
}

/// Decrypts a sealed bundle, giving back at most `limit` bytes (the reader's bundle size limit).
pub fn unseal(sealed: &[u8], opener: &Opener, limit: u64) -> Result<Vec<u8>, BundleError> {
    let decryptor =
        age::Decryptor::new_buffered(sealed).map_err(|e| BundleError::Unseal(e.to_string()))?;
    let reader = match opener {
        Opener::Identities(identities) => {
            if decryptor.is_scrypt() {
                return Err(BundleError::Unseal(
                    "it is sealed with a passphrase, not to age recipients; give the passphrase"
                        .into(),
                ));
            }
            decryptor
                .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
                .map_err(|e| match e {
                    age::DecryptError::NoMatchingKeys => BundleError::WrongIdentity,
                    other => BundleError::Unseal(other.to_string()),
                })?
        }
        Opener::Passphrase(passphrase) => {
            if !decryptor.is_scrypt() {
                return Err(BundleError::Unseal(
                    "it is sealed to age recipients, not with a passphrase; give an identity file"
                        .into(),
                ));
            }
            let identity = age::scrypt::Identity::new(passphrase.secret());
            decryptor
                .decrypt(std::iter::once(&identity as &dyn age::Identity))
                .map_err(|e| match e {
                    age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                        BundleError::WrongPassphrase
                    }
                    other => BundleError::Unseal(other.to_string()),
                })?
        }
    };
    let mut plain = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut plain)
        .map_err(|e| BundleError::Unseal(e.to_string()))?;
    if plain.len() as u64 > limit {
        return Err(BundleError::TooLarge {
            size: plain.len() as u64,
            limit,
        });
    }
    Ok(plain)
}
