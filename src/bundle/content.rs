//! What a new entry's contents must look like for its type, and the media type it gets.
//!
//! These are the producer's sanity checks (a CSR passed as `--csr` is a CSR), made when a bundle
//! is built. A reader checks hashes and the signature; judging contents is the consumer's
//! policy (`x509`, `tuf`, `import`).

use x509_parser::prelude::FromDer;

use super::EntryType;

/// The media type of a PEM file whose blocks are not a certificate chain.
const PEM: &str = "application/x-pem-file";

/// Checks `contents` against `entry_type` and returns the media type to record.
pub(super) fn media_type_for(
    entry_type: EntryType,
    contents: &[u8],
) -> Result<&'static str, String> {
    if contents.is_empty() {
        return Err("the file is empty".into());
    }
    match entry_type {
        EntryType::Csr => match pem_blocks(contents)? {
            Some(blocks) => {
                expect_labels(
                    &blocks,
                    &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"],
                    1,
                )?;
                parse_csr(blocks[0].contents())?;
                Ok(PEM)
            }
            None => parse_csr(contents).map(|()| "application/pkcs10"),
        },
        EntryType::PublicKey => match pem_blocks(contents)? {
            Some(blocks) => {
                expect_labels(&blocks, &["PUBLIC KEY"], 1)?;
                parse_spki(blocks[0].contents())?;
                Ok(PEM)
            }
            None => parse_spki(contents).map(|()| "application/octet-stream"),
        },
        EntryType::Certificate => match pem_blocks(contents)? {
            Some(blocks) => {
                expect_labels(&blocks, &["CERTIFICATE"], usize::MAX)?;
                for block in &blocks {
                    parse_certificate(block.contents())?;
                }
                Ok("application/pem-certificate-chain")
            }
            None => parse_certificate(contents).map(|()| "application/pkix-cert"),
        },
        EntryType::TufMetadata => json(contents).map(|()| "application/json"),
        EntryType::TrustedRoot => {
            json(contents).map(|()| "application/vnd.dev.sigstore.trustedroot+json;version=0.1")
        }
        EntryType::JournalSegment => {
            json(contents).map(|()| "application/vnd.rootcellar.journal-segment+json")
        }
        EntryType::Transcript => std::str::from_utf8(contents)
            .map(|_| "text/plain; charset=utf-8")
            .map_err(|e| format!("a transcript must be UTF-8 text: {e}")),
        EntryType::OpaqueFile => Ok("application/octet-stream"),
    }
}

/// The PEM blocks of `contents`, or `None` when it is not PEM (then it is taken as DER).
fn pem_blocks(contents: &[u8]) -> Result<Option<Vec<pem::Pem>>, String> {
    if !contents.trim_ascii_start().starts_with(b"-----BEGIN") {
        return Ok(None);
    }
    let blocks = pem::parse_many(contents).map_err(|e| format!("bad PEM: {e}"))?;
    if blocks.is_empty() {
        return Err("no PEM block found".into());
    }
    Ok(Some(blocks))
}

fn expect_labels(blocks: &[pem::Pem], labels: &[&str], max: usize) -> Result<(), String> {
    if blocks.len() > max {
        return Err(format!("expected one PEM block, found {}", blocks.len()));
    }
    match blocks.iter().find(|b| !labels.contains(&b.tag())) {
        Some(b) => Err(format!(
            "found a PEM {:?} block, expected {}",
            b.tag(),
            labels.join(" or ")
        )),
        None => Ok(()),
    }
}

fn parse_csr(der: &[u8]) -> Result<(), String> {
    x509_parser::certification_request::X509CertificationRequest::from_der(der)
        .map(|_| ())
        .map_err(|e| format!("not a PKCS#10 certificate signing request: {e}"))
}

fn parse_spki(der: &[u8]) -> Result<(), String> {
    x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
        .map(|_| ())
        .map_err(|e| format!("not a SubjectPublicKeyInfo public key: {e}"))
}

fn parse_certificate(der: &[u8]) -> Result<(), String> {
    x509_parser::certificate::X509Certificate::from_der(der)
        .map(|_| ())
        .map_err(|e| format!("not an X.509 certificate: {e}"))
}

fn json(contents: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(contents)
        .map(|_| ())
        .map_err(|e| format!("not JSON: {e}"))
}
