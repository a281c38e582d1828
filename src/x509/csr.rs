//! Certificate signing requests from the online side: parsed, signature-checked, key-checked.
//! Only the subject name and public key are taken; requested extensions are reported and ignored.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

use super::X509Error;
use crate::keys::PublicKey;

/// A verified CSR: the name and key it asks to certify, and what it asked for that is ignored.
#[derive(Debug)]
pub struct CertificateRequest {
    /// The requested subject.
    pub subject: rcgen::DistinguishedName,
    /// The requested subject as text (`CN=…, O=…`), for people to read (its attributes hold
    /// no control characters: such a request is refused).
    pub subject_text: String,
    /// The key to certify (ECDSA P-256 or P-384).
    pub public_key: PublicKey,
    /// Human-readable list of requested extensions that the profile overrides.
    pub ignored_extensions: Vec<String>,
}

impl CertificateRequest {
    /// Parses a PEM (or DER) PKCS#10 request and verifies its self-signature.
    pub fn parse(bytes: &[u8]) -> Result<Self, X509Error> {
        let der = if bytes.starts_with(b"-----") {
            let (_, pem) = x509_parser::pem::parse_x509_pem(bytes)
                .map_err(|e| X509Error::MalformedCsr(format!("not PEM: {e}")))?;
            if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
                return Err(X509Error::MalformedCsr(format!(
                    "PEM block is {:?}, expected CERTIFICATE REQUEST",
                    pem.label
                )));
            }
            pem.contents
        } else {
            bytes.to_vec()
        };
        let (rest, csr) = X509CertificationRequest::from_der(&der)
            .map_err(|e| X509Error::MalformedCsr(format!("not a PKCS#10 request: {e}")))?;
        if !rest.is_empty() {
            return Err(X509Error::MalformedCsr(
                "trailing data after the request".into(),
            ));
        }
        let info = &csr.certification_request_info;
        let public_key = PublicKey::from_spki(info.subject_pki.raw)
            .map_err(|_| X509Error::UnsupportedKey(describe_key(&info.subject_pki)))?;
        // Checked after the key type so that an unsupported algorithm is named as such. The
        // CSR's own signature algorithm decides the hash (openssl signs P-384 CSRs with SHA-256).
        csr.verify_signature()
            .map_err(|_| X509Error::BadCsrSignature)?;
        let ignored_extensions = csr
            .requested_extensions()
            .into_iter()
            .flatten()
            .map(describe_extension)
            .collect();
        Ok(CertificateRequest {
            subject: super::name::from_x509_name(&info.subject)?,
            subject_text: info.subject.to_string(),
            public_key,
            ignored_extensions,
        })
    }
}

fn describe_key(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> String {
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        "1.2.840.113549.1.1.1" => "RSA".into(),
        "1.3.101.112" => "Ed25519".into(),
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                "1.3.132.0.35" => "ECDSA P-521".into(),
                "1.3.132.0.10" => "ECDSA secp256k1".into(),
                other => format!("ECDSA on curve {other}"),
            }
        }
        other => format!("algorithm {other}"),
    }
}

fn describe_extension(ext: &ParsedExtension<'_>) -> String {
    match ext {
        ParsedExtension::BasicConstraints(bc) => format!(
            "basicConstraints (CA:{}{})",
            bc.ca,
            bc.path_len_constraint
                .map(|p| format!(", pathlen:{p}"))
                .unwrap_or_default()
        ),
        ParsedExtension::KeyUsage(ku) => format!("keyUsage ({ku})"),
        ParsedExtension::ExtendedKeyUsage(_) => "extendedKeyUsage".into(),
        ParsedExtension::SubjectAlternativeName(_) => "subjectAltName".into(),
        ParsedExtension::NameConstraints(_) => "nameConstraints".into(),
        other => format!("{other:?}").chars().take(60).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Signer;

    /// DER: a tag, its definite length (short or one-byte long form), the contents.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match contents.len() {
            len @ 0..=0x7f => out.push(len as u8),
            len @ 0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
            len => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
        }
        out.extend_from_slice(contents);
        out
    }

    #[test]
    fn a_signed_request_whose_subject_type_cannot_be_encoded_is_refused() {
        // Found by the csr_parse fuzzer: a CertificationRequestInfo whose OU attribute type
        // was mutated from 2.5.4.3 to 5.13.4.3 (first arc 5), properly signed. It parsed, and
        // issuing from it panicked in the DER writer; it is refused as malformed now.
        let info = hex::decode(
            "3081b20201003050310b3009060355040613024e4c31183016060355040a0c0f726f6f7463656c6c61\
             722064656d6f310c300a060355040b0c03747361311930170603d504030c1074736120696e7465726d\
             6564696174653059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca8\
             5e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66\
             a651691606d8173e55bd37e381569ea000",
        )
        .unwrap();
        let key = crate::bundle::SoftwareKey::p256_from_bytes(&[42u8; 32], "test:csr-key")
            .expect("a valid scalar");
        let signature = key.sign(&info).unwrap();
        let mut bits = vec![0u8];
        bits.extend_from_slice(&signature);
        let mut body = info.clone();
        body.extend_from_slice(&[
            0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
        ]);
        body.extend_from_slice(&tlv(0x03, &bits));
        let csr = tlv(0x30, &body);
        let err = CertificateRequest::parse(&csr).expect_err("refused");
        assert!(
            matches!(&err, X509Error::MalformedCsr(why) if why.contains("5.13.4.3 is not a valid object identifier")),
            "{err}"
        );
    }
}
