//! Certificate revocation lists signed by the root: revoking an intermediate by serial.
//!
//! The CRL number is the `thisUpdate` time in seconds, so successive CRLs from ceremonies (whose
//! times only move forward) always carry increasing numbers without a counter to keep.

use std::path::PathBuf;

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, RevokedCertParams, SerialNumber,
};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::hsm_key::LintingSigner;
use super::issue::{issuer_facts, read_certificate, signed_der};
use super::X509Error;
use crate::files;
use crate::keys::Signer;

/// A signed, checked CRL.
#[derive(Clone, Debug)]
pub struct IssuedCrl {
    /// DER encoding.
    pub der: Vec<u8>,
    /// The CRL number.
    pub number: u64,
    /// Revoked serials, hex.
    pub revoked: Vec<String>,
    /// `thisUpdate`, RFC 3339.
    pub this_update: String,
    /// `nextUpdate`, RFC 3339.
    pub next_update: String,
}

impl IssuedCrl {
    /// PEM encoding.
    pub fn pem(&self) -> String {
        pem::encode(&pem::Pem::new("X509 CRL", self.der.clone())).replace("\r\n", "\n")
    }
}

/// Parses a serial number written in hex (`0a1b…`, with or without colons or a `0x`).
pub fn parse_serial(text: &str) -> Result<Vec<u8>, X509Error> {
    let cleaned: String = text
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let bytes = hex::decode(&cleaned)
        .map_err(|_| X509Error::InvalidValidity(format!("serial {text:?} is not hex")))?;
    if bytes.is_empty() || bytes.len() > 20 {
        return Err(X509Error::InvalidValidity(format!(
            "serial {text:?} must be 1 to 20 octets"
        )));
    }
    Ok(bytes)
}

/// Signs a CRL for `issuer_der` with `issuer_key`, revoking `serials` as of `this_update`,
/// valid for `days`; parses it again and verifies its signature before returning it.
pub fn issue_crl(
    issuer_der: &[u8],
    issuer_key: &dyn Signer,
    serials: &[Vec<u8>],
    this_update: crate::time::ConfirmedTime,
    days: u32,
) -> Result<IssuedCrl, X509Error> {
    let facts = issuer_facts(issuer_der, issuer_key.public_key())?;
    let time = |s: i64| {
        time::OffsetDateTime::from_unix_timestamp(s)
            .map_err(|e| X509Error::InvalidValidity(e.to_string()))
    };
    if days == 0 {
        return Err(X509Error::InvalidValidity(
            "a CRL must be valid for at least one day".into(),
        ));
    }
    // The CRL number is thisUpdate in seconds: it grows because confirmed times never go
    // backwards (the journal refuses it).
    let start = this_update.timestamp().as_second();
    let number = u64::try_from(start)
        .map_err(|_| X509Error::InvalidValidity("the ceremony time is before 1970".into()))?;
    let params = CertificateRevocationListParams {
        this_update: time(start)?,
        next_update: time(start + i64::from(days) * 86_400)?,
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|serial| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: time(start)?,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<Result<_, X509Error>>()?,
        key_identifier_method: KeyIdMethod::PreSpecified(facts.subject_key_id.clone()),
    };
    let signer = LintingSigner::unlinted(issuer_key);
    let issuer = Issuer::from_ca_cert_der(&issuer_der.to_vec().into(), &signer)
        .map_err(|e| X509Error::BadIssuer(e.to_string()))?;
    let der = signed_der(params.signed_by(&issuer).map(|c| c.der().to_vec()), &signer)?;

    // Check after signing: it parses, names the issuer, lists the serials, and verifies.
    let fail = |p: &str| X509Error::CheckAfterSigning(vec![p.to_string()]);
    let (_, crl) =
        CertificateRevocationList::from_der(&der).map_err(|_| fail("the CRL does not parse"))?;
    if crl.issuer().as_raw() != facts.subject.as_slice() {
        return Err(fail(
            "the CRL's issuer is not the issuer certificate's subject",
        ));
    }
    let listed: Vec<Vec<u8>> = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect();
    if listed.len() != serials.len() || serials.iter().any(|s| !listed.iter().any(|l| l == s)) {
        return Err(fail("the CRL does not list exactly the serials asked for"));
    }
    if !issuer_key
        .public_key()
        .verify(crl.tbs_cert_list.as_ref(), &crl.signature_value.data)
    {
        return Err(fail(
            "the CRL's signature does not verify with the issuer's key",
        ));
    }
    let text = |s: i64| {
        jiff::Timestamp::from_second(s)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    Ok(IssuedCrl {
        der,
        number,
        revoked: serials.iter().map(hex::encode).collect(),
        this_update: text(start),
        next_update: text(start + i64::from(days) * 86_400),
    })
}

/// Everything `x509 crl` needs.
pub struct CrlOrder {
    /// The issuing CA's certificate.
    pub issuer_cert: PathBuf,
    /// Serials to revoke, hex.
    pub revoke: Vec<String>,
    /// `thisUpdate`: the confirmed ceremony time.
    pub this_update: crate::time::ConfirmedTime,
    /// Days until `nextUpdate`.
    pub days: u32,
    /// Output PEM file; must not exist.
    pub out: PathBuf,
}

impl CrlOrder {
    /// Checks inputs, signs with the issuer's `key`, checks the result, writes the PEM.
    pub fn execute(&self, key: &dyn Signer) -> Result<IssuedCrl, X509Error> {
        let crl = self.sign(key)?;
        self.write(&crl)?;
        Ok(crl)
    }

    /// Checks the inputs, touching no key (see [`crate::x509::RootCaOrder::check`]).
    pub fn check(&self) -> Result<(), X509Error> {
        self.checked().map(|_| ())
    }

    fn checked(&self) -> Result<(Vec<Vec<u8>>, Vec<u8>), X509Error> {
        let serials = self
            .revoke
            .iter()
            .map(|s| parse_serial(s))
            .collect::<Result<Vec<_>, _>>()?;
        let issuer_der = read_certificate(&self.issuer_cert)?;
        files::ensure_absent([self.out.as_path()])?;
        Ok((serials, issuer_der))
    }

    /// Writes the signed CRL's PEM to `out`, which must not exist; it appears whole.
    pub fn write(&self, crl: &IssuedCrl) -> Result<(), X509Error> {
        files::write_new(&self.out, crl.pem().as_bytes())?;
        Ok(())
    }

    /// Checks inputs, signs with `key` and checks the result, writing nothing: a caller that
    /// journals records the CRL before [`CrlOrder::write`] makes it appear.
    pub fn sign(&self, key: &dyn Signer) -> Result<IssuedCrl, X509Error> {
        let (serials, issuer_der) = self.checked()?;
        issue_crl(&issuer_der, key, &serials, self.this_update, self.days)
    }
}
