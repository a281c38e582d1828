//! The COSE_Sign1 envelope around the manifest (RFC 9052), ES256 or ES384 (RFC 9053).
//!
//! The protected header holds exactly three fields: `alg`, `content type`
//! ([`MANIFEST_CONTENT_TYPE`]) and `kid` (SHA-256 of the signer's DER SubjectPublicKeyInfo,
//! the fingerprint `key show` prints). The unprotected header is empty. The signature is the raw
//! `r‖s` COSE wants, not the DER that X.509 and `keys::Signer` use.

use coset::{iana, CborSerializable, CoseSign1, CoseSign1Builder, Header, HeaderBuilder};
use sha2::{Digest, Sha256};

use super::error::BundleError;
use super::format::{MANIFEST_AAD, MANIFEST_CONTENT_TYPE};
use crate::keys::{KeyAlgorithm, KeyError, PublicKey, Signer};

/// The COSE algorithm for a key: ES256 for P-256, ES384 for P-384.
fn cose_algorithm(algorithm: KeyAlgorithm) -> iana::Algorithm {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => iana::Algorithm::ES256,
        KeyAlgorithm::EcdsaP384 => iana::Algorithm::ES384,
    }
}

/// The name of a COSE algorithm as messages show it.
pub(super) fn algorithm_name(algorithm: KeyAlgorithm) -> &'static str {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => "ES256",
        KeyAlgorithm::EcdsaP384 => "ES384",
    }
}

/// The key id a bundle names its signer by: SHA-256 of the DER SubjectPublicKeyInfo.
pub(super) fn key_id(key: &PublicKey) -> [u8; 32] {
    Sha256::digest(key.spki_der()).into()
}

fn protected_header(algorithm: KeyAlgorithm, key_id: [u8; 32]) -> Header {
    HeaderBuilder::new()
        .algorithm(cose_algorithm(algorithm))
        .content_type(MANIFEST_CONTENT_TYPE.to_string())
        .key_id(key_id.to_vec())
        .build()
}

/// Signs `manifest` (its canonical bytes) with `signer`, and checks the signature before
/// returning it, so that a faulty token never produces a bundle that does not verify.
pub(super) fn sign_manifest(
    manifest: Vec<u8>,
    signer: &dyn Signer,
) -> Result<CoseSign1, BundleError> {
    let public = signer.public_key().clone();
    let algorithm = public.algorithm();
    let signing = |source: KeyError| BundleError::Signing {
        uri: signer.key_uri(),
        source,
    };
    let sign1 = CoseSign1Builder::new()
        .protected(protected_header(algorithm, key_id(&public)))
        .payload(manifest)
        .try_create_signature(MANIFEST_AAD, |tbs| {
            let der = signer.sign(tbs).map_err(signing)?;
            der_to_raw(algorithm, &der).map_err(signing)
        })?
        .build();
    if !verify_signature(&sign1, &public) {
        return Err(signing(KeyError::Malformed(
            "the signature it returned does not verify under its own public key".into(),
        )));
    }
    Ok(sign1)
}

fn der_to_raw(algorithm: KeyAlgorithm, der: &[u8]) -> Result<Vec<u8>, KeyError> {
    let malformed = |e: p256::ecdsa::Error| KeyError::Malformed(format!("ECDSA signature: {e}"));
    Ok(match algorithm {
        KeyAlgorithm::EcdsaP256 => p256::ecdsa::Signature::from_der(der)
            .map_err(malformed)?
            .to_bytes()
            .to_vec(),
        KeyAlgorithm::EcdsaP384 => p384::ecdsa::Signature::from_der(der)
            .map_err(malformed)?
            .to_bytes()
            .to_vec(),
    })
}

/// Checks the envelope's headers and returns the signing algorithm and the signer's key id.
pub(super) fn check_headers(sign1: &CoseSign1) -> Result<(KeyAlgorithm, [u8; 32]), BundleError> {
    let header = &sign1.protected.header;
    let algorithm = match &header.alg {
        Some(coset::Algorithm::Assigned(iana::Algorithm::ES256)) => KeyAlgorithm::EcdsaP256,
        Some(coset::Algorithm::Assigned(iana::Algorithm::ES384)) => KeyAlgorithm::EcdsaP384,
        Some(other) => {
            return Err(BundleError::UnsupportedAlgorithm(format!(
                "COSE algorithm {other:?}"
            )))
        }
        None => {
            return Err(BundleError::UnsupportedAlgorithm(
                "no algorithm in the protected header".into(),
            ))
        }
    };
    let key_id: [u8; 32] = header.key_id.as_slice().try_into().map_err(|_| {
        BundleError::InvalidStructure(format!(
            "the protected header's key id is {} bytes, expected 32",
            header.key_id.len()
        ))
    })?;
    let expected = protected_header(algorithm, key_id);
    if *header != expected {
        return Err(BundleError::InvalidStructure(
            "the protected header must hold exactly alg, content type (application/vnd.rootcellar.manifest+cbor) and kid".into(),
        ));
    }
    let canonical = expected
        .to_vec()
        .map_err(|e| BundleError::InvalidStructure(format!("protected header: {e}")))?;
    if sign1.protected.original_data.as_deref() != Some(canonical.as_slice()) {
        return Err(BundleError::NotCanonical("protected header"));
    }
    if sign1.unprotected != Header::default() {
        return Err(BundleError::InvalidStructure(
            "the unprotected header must be empty (nothing unsigned is accepted)".into(),
        ));
    }
    Ok((algorithm, key_id))
}

/// Verifies the envelope's signature under `key`.
pub(super) fn verify_signature(sign1: &CoseSign1, key: &PublicKey) -> bool {
    sign1
        .verify_signature(MANIFEST_AAD, |raw, tbs| {
            if raw.len() != 2 * key.algorithm().scalar_len() {
                return Err(());
            }
            let der = key.algorithm().raw_signature_to_der(raw).map_err(|_| ())?;
            if key.verify(tbs, &der) {
                Ok(())
            } else {
                Err(())
            }
        })
        .is_ok()
}
