//! Pinned keys: the public keys a reader trusts to sign bundles.

use std::path::Path;

use x509_parser::prelude::FromDer;

use super::cose::key_id;
use super::error::BundleError;
use crate::keys::PublicKey;

/// The keys a bundle may be signed by. A pin is a public key or a certificate (whose key is
/// taken; the certificate is a carrier, its validity period is not judged here: the appliance
/// has no trustworthy clock).
#[derive(Clone, Debug, Default)]
pub struct PinnedKeys {
    keys: Vec<PublicKey>,
}

impl PinnedKeys {
    /// Pins the given keys.
    pub fn new(keys: Vec<PublicKey>) -> Self {
        PinnedKeys { keys }
    }

    /// Reads one pin per file (see [`PinnedKeys::read_pin`]).
    pub fn from_files<P: AsRef<Path>>(paths: &[P]) -> Result<Self, BundleError> {
        let keys = paths
            .iter()
            .map(|p| Self::read_pin(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PinnedKeys { keys })
    }

    /// Reads one key from a file holding a single PEM `PUBLIC KEY` or `CERTIFICATE` block, or
    /// the DER of either.
    pub fn read_pin(path: &Path) -> Result<PublicKey, BundleError> {
        let bad = |reason: String| BundleError::BadPin {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let (label, der) = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            let blocks = pem::parse_many(&bytes).map_err(|e| bad(format!("bad PEM: {e}")))?;
            match blocks.as_slice() {
                [one] => (one.tag().to_string(), one.contents().to_vec()),
                _ => {
                    return Err(bad(format!(
                        "it holds {} PEM blocks; give one public key or certificate per pin",
                        blocks.len()
                    )))
                }
            }
        } else {
            (String::new(), bytes)
        };
        match label.as_str() {
            "PUBLIC KEY" => PublicKey::from_spki(&der).map_err(|e| bad(e.to_string())),
            "CERTIFICATE" => key_of_certificate(&der).map_err(bad),
            "" => PublicKey::from_spki(&der)
                .or_else(|_| key_of_certificate(&der))
                .map_err(|_| {
                    bad("neither a P-256/P-384 public key nor a certificate with one".into())
                }),
            other => Err(bad(format!(
                "a PEM {other:?} block is neither PUBLIC KEY nor CERTIFICATE"
            ))),
        }
    }

    /// The pinned keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Whether no key is pinned.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The pinned key with this key id.
    pub(super) fn find(&self, id: &[u8; 32]) -> Option<&PublicKey> {
        self.keys.iter().find(|k| &key_id(k) == id)
    }

    /// The fingerprints, for messages.
    pub(super) fn describe(&self) -> String {
        self.keys
            .iter()
            .map(|k| format!("SHA256:{}", k.fingerprint()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn key_of_certificate(der: &[u8]) -> Result<PublicKey, String> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| format!("not a certificate: {e}"))?;
    PublicKey::from_spki(cert.public_key().raw).map_err(|e| e.to_string())
}
