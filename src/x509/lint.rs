//! The profile lint: RFC 5280 basics and the profile's own rules, applied to the to-be-signed
//! certificate before signing and to the finished certificate after.

use x509_parser::certificate::TbsCertificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Version;

use super::profile::{CertificateRules, RequiredEku};

const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_EXT_KEY_USAGE: &str = "2.5.29.37";
const OID_SUBJECT_KEY_ID: &str = "2.5.29.14";
const OID_AUTHORITY_KEY_ID: &str = "2.5.29.35";

/// Checks DER to-be-signed certificate bytes; returns every problem found.
pub fn check_tbs_der(der: &[u8], rules: &CertificateRules) -> Vec<String> {
    match TbsCertificate::from_der(der) {
        Ok((&[], tbs)) => check_tbs(&tbs, rules),
        Ok(_) => vec!["trailing bytes after the to-be-signed certificate".into()],
        Err(e) => vec![format!("the to-be-signed certificate does not parse: {e}")],
    }
}

/// Checks a parsed to-be-signed certificate; returns every problem found.
pub fn check_tbs(tbs: &TbsCertificate<'_>, rules: &CertificateRules) -> Vec<String> {
    let mut problems = Vec::new();
    let mut fail = |p: String| problems.push(format!("{}: {p}", rules.name));

    if tbs.version != X509Version::V3 {
        fail(format!("version is {:?}, must be v3", tbs.version));
    }

    // Serial: positive, 64 bits of entropy at least, at most 20 octets (RFC 5280 4.1.2.2).
    let serial = tbs.raw_serial();
    if serial.len() > 20 {
        fail(format!(
            "serial is {} octets, at most 20 allowed",
            serial.len()
        ));
    }
    if serial.first().is_some_and(|b| b & 0x80 != 0) {
        fail("serial is negative".into());
    }
    let significant = serial.iter().skip_while(|b| **b == 0).count();
    if significant < 9 {
        fail(format!(
            "serial has {significant} significant octets, at least 9 (64+ bits) required"
        ));
    }

    if tbs.signature.algorithm.to_id_string() != rules.signature_oid {
        fail(format!(
            "signature algorithm {} does not match the issuer key ({})",
            tbs.signature.algorithm.to_id_string(),
            rules.signature_oid
        ));
    }

    if tbs.subject.iter_attributes().next().is_none() {
        fail("subject is empty".into());
    }
    match &rules.issuer_name {
        Some(issuer) if tbs.issuer.as_raw() != issuer.as_slice() => {
            fail("issuer name differs from the issuer certificate's subject".into())
        }
        None if tbs.issuer.as_raw() != tbs.subject.as_raw() => {
            fail("a self-signed root must have issuer = subject".into())
        }
        _ => {}
    }

    let not_before = tbs.validity.not_before.timestamp();
    let not_after = tbs.validity.not_after.timestamp();
    if not_after <= not_before {
        fail("validity ends before it starts".into());
    }
    if let Some((issuer_from, issuer_to)) = rules.issuer_validity {
        if not_before < issuer_from {
            fail("validity starts before the issuer's".into());
        }
        if not_after > issuer_to {
            fail(format!(
                "validity ends {} after the issuer's; shorten it to fit within the issuer's lifetime",
                humanize_seconds(not_after - issuer_to)
            ));
        }
    }

    if tbs.subject_pki.raw != rules.subject_spki.as_slice() {
        fail("the certified public key is not the requested one".into());
    }

    check_extensions(tbs, rules, &mut fail);
    problems
}

fn check_extensions(
    tbs: &TbsCertificate<'_>,
    rules: &CertificateRules,
    fail: &mut impl FnMut(String),
) {
    let mut seen = std::collections::HashSet::new();
    for ext in tbs.extensions() {
        let oid = ext.oid.to_id_string();
        if !seen.insert(oid.clone()) {
            fail(format!("extension {oid} appears twice"));
        }
        match oid.as_str() {
            OID_BASIC_CONSTRAINTS | OID_KEY_USAGE | OID_SUBJECT_KEY_ID => {}
            OID_AUTHORITY_KEY_ID if rules.authority_key_id.is_some() => {}
            OID_EXT_KEY_USAGE if rules.eku.is_some() => {}
            _ => fail(format!("extension {oid} is not allowed by the profile")),
        }
    }

    match tbs.basic_constraints() {
        Ok(Some(bc)) => {
            if !bc.critical {
                fail("basicConstraints must be critical".into());
            }
            if !bc.value.ca {
                fail("basicConstraints must say CA:TRUE".into());
            }
            let got = bc.value.path_len_constraint;
            if got != rules.path_len.map(u32::from) {
                fail(format!(
                    "pathLenConstraint is {got:?}, the profile requires {:?}",
                    rules.path_len
                ));
            }
        }
        Ok(None) => fail("basicConstraints is missing".into()),
        Err(e) => fail(format!("basicConstraints: {e}")),
    }

    match tbs.key_usage() {
        Ok(Some(ku)) => {
            if !ku.critical {
                fail("keyUsage must be critical".into());
            }
            let k = ku.value;
            let others = [
                k.digital_signature(),
                k.non_repudiation(),
                k.key_encipherment(),
                k.data_encipherment(),
                k.key_agreement(),
                k.encipher_only(),
                k.decipher_only(),
            ];
            if !(k.key_cert_sign() && k.crl_sign()) || others.iter().any(|f| *f) {
                fail(format!(
                    "keyUsage must be exactly keyCertSign, cRLSign (is {})",
                    ku.value
                ));
            }
        }
        Ok(None) => fail("keyUsage is missing".into()),
        Err(e) => fail(format!("keyUsage: {e}")),
    }

    match (tbs.extended_key_usage(), rules.eku) {
        (Ok(Some(eku)), Some(required)) => {
            let e = eku.value;
            let only = |flag: bool| {
                flag && e.other.is_empty()
                    && !e.any
                    && [
                        e.server_auth,
                        e.client_auth,
                        e.email_protection,
                        e.ocsp_signing,
                    ]
                    .iter()
                    .all(|f| !f)
            };
            let ok = match required {
                RequiredEku::CodeSigning => only(e.code_signing) && !e.time_stamping,
                RequiredEku::TimeStamping => only(e.time_stamping) && !e.code_signing,
            };
            if !ok {
                fail(format!("extendedKeyUsage must be exactly {required:?}"));
            }
        }
        (Ok(None), Some(required)) => fail(format!("extendedKeyUsage {required:?} is missing")),
        (Err(e), _) => fail(format!("extendedKeyUsage: {e}")),
        _ => {}
    }

    let mut subject_key_id = None;
    let mut authority_key_id = None;
    for ext in tbs.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key_id = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key_id = Some(aki.key_identifier.as_ref().map(|k| k.0.to_vec()))
            }
            _ => {}
        }
    }
    match subject_key_id {
        Some(id) if !id.is_empty() => {}
        _ => fail("subjectKeyIdentifier is missing".into()),
    }
    if let Some(expected) = &rules.authority_key_id {
        match authority_key_id {
            Some(Some(id)) if &id == expected => {}
            Some(_) => fail(
                "authorityKeyIdentifier does not match the issuer's subjectKeyIdentifier".into(),
            ),
            None => fail("authorityKeyIdentifier is missing".into()),
        }
    }
}

fn humanize_seconds(seconds: i64) -> String {
    if seconds >= 86_400 {
        format!("{} days", seconds / 86_400)
    } else {
        format!("{seconds} seconds")
    }
}
