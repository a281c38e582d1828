//! The bridge from rcgen to an HSM key: rcgen hands over the to-be-signed bytes, the profile
//! lint reads them, and only if it passes does the token sign.

use std::sync::Mutex;

use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};

use super::lint;
use super::profile::CertificateRules;
use crate::keys::{KeyAlgorithm, PublicKey, Signer};

fn rcgen_algorithm(algorithm: KeyAlgorithm) -> &'static SignatureAlgorithm {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
    }
}

/// A public key as rcgen wants it (the subject key of a certificate).
pub struct SubjectKey<'a>(pub &'a PublicKey);

impl PublicKeyData for SubjectKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.point()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        rcgen_algorithm(self.0.algorithm())
    }
}

/// What stopped a signature, kept aside because rcgen's error type cannot carry it.
#[derive(Debug)]
pub enum Refusal {
    /// The lint found these problems in the to-be-signed certificate.
    Lint(Vec<String>),
    /// The token failed to sign.
    Key(crate::keys::KeyError),
}

/// An HSM key that lints every to-be-signed certificate before signing it (or, without rules,
/// signs what rcgen gives it: CRLs, which have no certificate profile).
pub struct LintingSigner<'a> {
    signer: &'a dyn Signer,
    rules: Option<&'a CertificateRules>,
    refusal: Mutex<Option<Refusal>>,
}

impl<'a> LintingSigner<'a> {
    /// Wraps `signer`; `rules` are applied to whatever it is asked to sign.
    pub fn new(signer: &'a dyn Signer, rules: &'a CertificateRules) -> Self {
        LintingSigner {
            signer,
            rules: Some(rules),
            refusal: Mutex::new(None),
        }
    }

    /// Wraps `signer` without a certificate lint.
    pub fn unlinted(signer: &'a dyn Signer) -> Self {
        LintingSigner {
            signer,
            rules: None,
            refusal: Mutex::new(None),
        }
    }

    /// Why the last signature was refused, if it was.
    pub fn take_refusal(&self) -> Option<Refusal> {
        self.refusal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn refuse(&self, refusal: Refusal) -> rcgen::Error {
        *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(refusal);
        rcgen::Error::RemoteKeyError
    }
}

impl PublicKeyData for LintingSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.signer.public_key().point()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        rcgen_algorithm(self.signer.public_key().algorithm())
    }
}

impl SigningKey for LintingSigner<'_> {
    fn sign(&self, to_be_signed: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        if let Some(rules) = self.rules {
            let problems = lint::check_tbs_der(to_be_signed, rules);
            if !problems.is_empty() {
                return Err(self.refuse(Refusal::Lint(problems)));
            }
        }
        self.signer
            .sign(to_be_signed)
            .map_err(|e| self.refuse(Refusal::Key(e)))
    }
}
