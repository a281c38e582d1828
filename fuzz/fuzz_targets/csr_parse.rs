//! The CSR parser on arbitrary bytes, PEM or DER. It must never panic, and a request it accepts
//! has a subject with at least one attribute, none holding a control or bidirectional-override
//! character (a subject is printed in transcripts and logs), and a key that reads back from its
//! own SPKI. A PEM request it accepts is accepted as the DER inside it too, with the same name
//! and key. And it can be issued: `issue_intermediate` builds the certificate from it (its
//! subject and key), lints it and hands it to a signer that signs nothing, without panicking;
//! what it refuses then is that signature alone (what passed the lint before signing passes
//! the same lint on the certificate parsed back).
//!
//! A signature cannot be forged, so mutated requests rarely get past the self-signature check.
//! An input that starts with `CRI:` is therefore taken as the DER of a CertificationRequestInfo,
//! which the target signs with the fixed test key its seeds carry (ECDSA P-256, SHA-256) before
//! parsing the request: mutations of the subject, the key and the requested extensions reach
//! what is checked after the signature.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rootcellar::bundle::SoftwareKey;
use rootcellar::keys::{KeyError, PublicKey, Signer};
use rootcellar::x509::{
    issue_intermediate, issue_root_ca, parse_subject, CertificateRequest, Profile, Serial,
    Validity, X509Error,
};

/// The (public, test-only) key the `CRI:` seeds carry.
fn key() -> &'static SoftwareKey {
    static KEY: OnceLock<SoftwareKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SoftwareKey::p256_from_bytes(&[42u8; 32], "fuzz:csr-key").expect("valid scalar")
    })
}

/// The issuer's public key, signing nothing (an empty signature): issuing runs up to the
/// signature and the checks after it, with no signing cost.
struct NoSignature(PublicKey);

impl Signer for NoSignature {
    fn public_key(&self) -> &PublicKey {
        &self.0
    }

    fn sign(&self, _message: &[u8]) -> Result<Vec<u8>, KeyError> {
        Ok(Vec::new())
    }

    fn key_uri(&self) -> String {
        "fuzz:no-signature".into()
    }
}

/// A fixed start of validity (nothing here depends on the clock).
fn validity() -> Validity {
    let time = rootcellar::time::parse("2026-12-06T00:00:00Z").expect("a valid time");
    let reference = rootcellar::time::Reference {
        clock: time,
        build_time: time,
        latest_record: None,
        policy: rootcellar::time::TimePolicy::default(),
    };
    let not_before = match rootcellar::time::check(time, &reference) {
        Ok(rootcellar::time::Checked::Confirmed(t)) => t,
        _ => unreachable!("the clock is the time"),
    };
    Validity {
        not_before,
        days: 365,
    }
}

fn serial() -> Serial {
    Serial::try_from("0123456789abcdef0123456789abcdef".to_string()).expect("a serial")
}

/// The root the requests are issued under, self-signed by the test key once.
fn issuer() -> &'static [u8] {
    static ROOT: OnceLock<Vec<u8>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let subject = parse_subject("CN=rootcellar fuzz root").expect("a subject");
        issue_root_ca(key(), subject, &validity(), &serial())
            .expect("the test key issues its root")
            .der
    })
}

/// DER: a tag, its definite length, the contents.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// The request `info` signed by the fixed key: SEQUENCE { info, ecdsa-with-SHA256, BIT STRING }.
fn signed_request(info: &[u8]) -> Vec<u8> {
    const ECDSA_WITH_SHA256: &[u8] = &[
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
    ];
    let signature = key().sign(info).expect("a software key signs");
    let mut bits = vec![0u8];
    bits.extend_from_slice(&signature);
    let mut body = info.to_vec();
    body.extend_from_slice(ECDSA_WITH_SHA256);
    body.extend_from_slice(&tlv(0x03, &bits));
    tlv(0x30, &body)
}

fn forbidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn check(bytes: &[u8]) {
    let Ok(csr) = CertificateRequest::parse(bytes) else {
        return;
    };
    let mut attributes = 0;
    for (_, value) in csr.subject.iter() {
        attributes += 1;
        if let rcgen::DnValue::Utf8String(text) = value {
            assert!(!text.chars().any(forbidden), "{text:?}");
        }
    }
    assert!(attributes > 0, "an empty subject is refused");
    let again = PublicKey::from_spki(&csr.public_key.spki_der()).expect("the key reads back");
    assert_eq!(again, csr.public_key);
    let issued = issue_intermediate(
        &csr,
        Profile::Fulcio,
        issuer(),
        &NoSignature(key().public_key().clone()),
        None,
        &validity(),
        &serial(),
    );
    match issued {
        Err(X509Error::CheckAfterSigning(problems)) => assert_eq!(
            problems,
            ["the signature does not verify with the issuer's public key"]
        ),
        Err(X509Error::LintBeforeSigning(_) | X509Error::Build(_)) => {}
        other => panic!("issued with no signature: {other:?}"),
    }
    if bytes.starts_with(b"-----") {
        if let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(bytes) {
            let der = CertificateRequest::parse(&pem.contents).expect("the DER inside parses too");
            assert_eq!(der.subject, csr.subject);
            assert_eq!(der.public_key, csr.public_key);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match data.strip_prefix(b"CRI:") {
        Some(info) => check(&signed_request(info)),
        None => check(data),
    }
});
