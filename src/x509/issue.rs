//! Issuing certificates: the self-signed root CA, and intermediates from CSRs.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, Issuer};
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

use super::csr::CertificateRequest;
use super::hsm_key::{LintingSigner, Refusal, SubjectKey};
use super::lint;
use super::name;
use super::profile::{apply_ca_fields, CertificateRules, Profile, ROOT_PATH_LEN};
use super::serial::Serial;
use super::X509Error;
use crate::files;
use crate::keys::{self, KeyAlgorithm, Signer};

/// When a certificate's validity starts and how long it lasts.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// Start of validity: the operator-confirmed ceremony time, not the appliance clock.
    pub not_before: crate::time::ConfirmedTime,
    /// Lifetime in days.
    pub days: u32,
}

impl Validity {
    fn bounds(&self) -> Result<(time::OffsetDateTime, time::OffsetDateTime), X509Error> {
        if self.days == 0 {
            return Err(X509Error::InvalidValidity(
                "the lifetime must be at least one day".into(),
            ));
        }
        let start = self.not_before.timestamp().as_second();
        let end = start + i64::from(self.days) * 86_400;
        let convert = |s: i64| {
            time::OffsetDateTime::from_unix_timestamp(s)
                .map_err(|e| X509Error::InvalidValidity(e.to_string()))
        };
        Ok((convert(start)?, convert(end)?))
    }
}

/// The root CA's subject and lifetime, as kept in a profile file (TOML):
/// `subject = "CN=Example Root CA,O=Example"` and `validity_days = 3652`.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootCaSpec {
    /// The subject name, `CN=…,O=…`.
    pub subject: String,
    /// Lifetime in days.
    pub validity_days: Option<u32>,
}

impl RootCaSpec {
    /// Default root lifetime: ten years, as Sigstore's public roots have.
    pub const DEFAULT_DAYS: u32 = 3652;

    /// Reads a root CA profile file.
    pub fn load(path: &Path) -> Result<Self, X509Error> {
        let bad = |reason: String| X509Error::BadRootSpec {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        toml::from_str(&text).map_err(|e| bad(e.to_string()))
    }
}

/// A signed, checked certificate.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// DER encoding.
    pub der: Vec<u8>,
    /// Serial number, hex.
    pub serial_hex: String,
    /// Subject, as openssl would print it.
    pub subject: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Extensions the CSR asked for that the profile overrode.
    pub ignored_extensions: Vec<String>,
}

impl IssuedCertificate {
    /// PEM encoding.
    pub fn pem(&self) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", self.der.clone())).replace("\r\n", "\n")
    }

    /// SHA-256 of the DER, hex.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(&self.der))
    }

    /// A summary for `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "subject": self.subject,
            "serial": self.serial_hex,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "fingerprint_sha256": self.fingerprint(),
            "ignored_csr_extensions": self.ignored_extensions,
        })
    }
}

fn signature_oid(algorithm: KeyAlgorithm) -> &'static str {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => "1.2.840.10045.4.3.2",
        KeyAlgorithm::EcdsaP384 => "1.2.840.10045.4.3.3",
    }
}

fn base_params(
    subject: DistinguishedName,
    validity: &Validity,
    serial: &Serial,
) -> Result<CertificateParams, X509Error> {
    let (not_before, not_after) = validity.bounds()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(serial.to_rcgen());
    Ok(params)
}

/// Turns rcgen's outcome into ours, recovering the lint or key error the signer set aside.
pub(super) fn signed_der(
    result: Result<Vec<u8>, rcgen::Error>,
    signer: &LintingSigner<'_>,
) -> Result<Vec<u8>, X509Error> {
    match (result, signer.take_refusal()) {
        (Ok(der), None) => Ok(der),
        (_, Some(Refusal::Lint(problems))) => Err(X509Error::LintBeforeSigning(problems)),
        (_, Some(Refusal::Key(e))) => Err(X509Error::Signing(e)),
        (Err(e), None) => Err(X509Error::Build(e.to_string())),
    }
}

/// Parses the signed certificate again, re-runs the lint on it and verifies its signature with
/// the issuer's public key. Nothing is written unless this passes.
fn check_after_signing(
    der: &[u8],
    rules: &CertificateRules,
    issuer_key: &keys::PublicKey,
    ignored_extensions: Vec<String>,
) -> Result<IssuedCertificate, X509Error> {
    let fail = |p: Vec<String>| X509Error::CheckAfterSigning(p);
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| fail(vec![format!("the certificate does not parse: {e}")]))?;
    let mut problems = Vec::new();
    if !rest.is_empty() {
        problems.push("trailing bytes after the certificate".into());
    }
    problems.extend(lint::check_tbs(&cert.tbs_certificate, rules));
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        problems.push("outer and inner signature algorithms differ".into());
    }
    if !issuer_key.verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data) {
        problems.push("the signature does not verify with the issuer's public key".into());
    }
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    let time = |t: &x509_parser::time::ASN1Time| {
        jiff::Timestamp::from_second(t.timestamp())
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    Ok(IssuedCertificate {
        der: der.to_vec(),
        serial_hex: hex::encode(cert.tbs_certificate.raw_serial()),
        subject: cert.subject().to_string(),
        not_before: time(&cert.validity().not_before),
        not_after: time(&cert.validity().not_after),
        ignored_extensions,
    })
}

/// Self-signs the root CA certificate with `signer` under `serial`: CA (critical, path length
/// 1), keyUsage keyCertSign + cRLSign (critical), subject key identifier.
pub fn issue_root_ca(
    signer: &dyn Signer,
    subject: DistinguishedName,
    validity: &Validity,
    serial: &Serial,
) -> Result<IssuedCertificate, X509Error> {
    let mut params = base_params(subject, validity, serial)?;
    apply_ca_fields(&mut params, ROOT_PATH_LEN, None);
    params.use_authority_key_identifier_extension = false;
    let public_key = signer.public_key();
    let rules = root_rules(public_key);
    let linting = LintingSigner::new(signer, &rules);
    let der = signed_der(
        params.self_signed(&linting).map(|c| c.der().to_vec()),
        &linting,
    )?;
    check_after_signing(&der, &rules, public_key, vec![])
}

fn root_rules(public_key: &keys::PublicKey) -> CertificateRules {
    CertificateRules {
        name: "root CA",
        path_len: Some(ROOT_PATH_LEN),
        eku: None,
        authority_key_id: None,
        issuer_name: None,
        issuer_validity: None,
        subject_spki: public_key.spki_der(),
        signature_oid: signature_oid(public_key.algorithm()),
    }
}

/// Checks a certificate found after an interruption against what was about to be signed: it
/// must carry `serial`, meet `rules` and verify with `issuer_key`. Then it is the certificate
/// that was signed, and may be adopted rather than signed again.
fn check_found(
    pem_or_der: &[u8],
    serial: &Serial,
    rules: &CertificateRules,
    issuer_key: &keys::PublicKey,
    ignored_extensions: Vec<String>,
) -> Result<IssuedCertificate, X509Error> {
    let not_it = |problems: Vec<String>| X509Error::NotTheIntended(problems);
    let der = certificate_der(pem_or_der).map_err(|e| not_it(vec![e]))?;
    let (_, parsed) = X509Certificate::from_der(&der)
        .map_err(|e| not_it(vec![format!("it does not parse: {e}")]))?;
    let found = hex::encode(parsed.tbs_certificate.raw_serial());
    if found != serial.hex() {
        return Err(not_it(vec![format!("its serial is {found}, not {serial}")]));
    }
    check_after_signing(&der, rules, issuer_key, ignored_extensions).map_err(|e| match e {
        X509Error::CheckAfterSigning(problems) => not_it(problems),
        other => other,
    })
}

/// The DER of a PEM or DER certificate.
fn certificate_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.starts_with(b"-----") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(bytes)
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        Ok(pem.contents)
    } else {
        Ok(bytes.to_vec())
    }
}

/// What an issuer certificate contributes to the rules of the certificates it issues.
pub(super) struct IssuerFacts {
    pub(super) subject: Vec<u8>,
    pub(super) subject_key_id: Vec<u8>,
    pub(super) validity: (i64, i64),
}

pub(super) fn issuer_facts(
    issuer_der: &[u8],
    issuer_key: &keys::PublicKey,
) -> Result<IssuerFacts, X509Error> {
    let bad = |s: &str| X509Error::BadIssuer(s.to_string());
    let (_, cert) = X509Certificate::from_der(issuer_der).map_err(|_| bad("does not parse"))?;
    if cert.public_key().raw != issuer_key.spki_der().as_slice() {
        return Err(bad(
            "does not match the issuer key: the key URI names a different key",
        ));
    }
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {
            if bc.value.path_len_constraint == Some(0) {
                return Err(bad("has path length 0 and cannot issue intermediates"));
            }
        }
        _ => return Err(bad("is not a CA certificate")),
    }
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.key_cert_sign() => {}
        _ => return Err(bad("lacks keyCertSign")),
    }
    let subject_key_id = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
        .ok_or_else(|| bad("has no subjectKeyIdentifier"))?;
    Ok(IssuerFacts {
        subject: cert.subject().as_raw().to_vec(),
        subject_key_id,
        validity: (
            cert.validity().not_before.timestamp(),
            cert.validity().not_after.timestamp(),
        ),
    })
}

/// Reads a PEM (or DER) certificate file.
pub(super) fn read_certificate(path: &Path) -> Result<Vec<u8>, X509Error> {
    let bytes = std::fs::read(path)
        .map_err(|e| X509Error::BadIssuer(format!("{}: {e}", path.display())))?;
    certificate_der(&bytes).map_err(|e| X509Error::BadIssuer(format!("{}: {e}", path.display())))
}

/// Issues an intermediate CA certificate for `request` under `profile` and `serial`, signed by
/// `issuer_key` whose certificate is `issuer_der`. Only the CSR's subject (unless `subject`
/// overrides it) and public key are used; the profile sets everything else.
pub fn issue_intermediate(
    request: &CertificateRequest,
    profile: Profile,
    issuer_der: &[u8],
    issuer_key: &dyn Signer,
    subject: Option<DistinguishedName>,
    validity: &Validity,
    serial: &Serial,
) -> Result<IssuedCertificate, X509Error> {
    let issuer_public = issuer_key.public_key();
    let rules = intermediate_rules(request, profile, issuer_der, issuer_public)?;
    let mut params = base_params(
        subject.unwrap_or_else(|| request.subject.clone()),
        validity,
        serial,
    )?;
    apply_ca_fields(&mut params, 0, Some(profile.eku()));
    params.use_authority_key_identifier_extension = true;
    let linting = LintingSigner::new(issuer_key, &rules);
    let issuer = Issuer::from_ca_cert_der(&issuer_der.to_vec().into(), &linting)
        .map_err(|e| X509Error::BadIssuer(e.to_string()))?;
    let der = signed_der(
        params
            .signed_by(&SubjectKey(&request.public_key), &issuer)
            .map(|c| c.der().to_vec()),
        &linting,
    )?;
    check_after_signing(
        &der,
        &rules,
        issuer_public,
        request.ignored_extensions.clone(),
    )
}

fn intermediate_rules(
    request: &CertificateRequest,
    profile: Profile,
    issuer_der: &[u8],
    issuer_public: &keys::PublicKey,
) -> Result<CertificateRules, X509Error> {
    let facts = issuer_facts(issuer_der, issuer_public)?;
    Ok(CertificateRules {
        name: profile.name(),
        path_len: Some(0),
        eku: Some(profile.eku()),
        authority_key_id: Some(facts.subject_key_id),
        issuer_name: Some(facts.subject),
        issuer_validity: Some(facts.validity),
        subject_spki: request.public_key.spki_der(),
        signature_oid: signature_oid(issuer_public.algorithm()),
    })
}

/// Everything `x509 root` needs: subject, validity, key and output path.
pub struct RootCaOrder {
    /// Subject text (`CN=…`).
    pub subject: String,
    /// Validity.
    pub validity: Validity,
    /// The serial to sign under, chosen (and recorded, by a caller that journals) in advance.
    pub serial: Serial,
    /// Where to write the PEM certificate (must not exist).
    pub out: PathBuf,
}

impl RootCaOrder {
    /// Checks the inputs, touching no key: a caller checks them before it opens the key (a
    /// refused input then costs no PIN attempt).
    pub fn check(&self) -> Result<(), X509Error> {
        name::parse_subject(&self.subject)?;
        self.validity.bounds()?;
        files::ensure_absent([self.out.as_path()])?;
        Ok(())
    }

    /// Checks the inputs, signs with `key` and checks the result, writing nothing: a caller
    /// that journals records the certificate before [`write_certificate`] makes it appear.
    pub fn sign(&self, key: &dyn Signer) -> Result<IssuedCertificate, X509Error> {
        self.check()?;
        let subject = name::parse_subject(&self.subject)?;
        issue_root_ca(key, subject, &self.validity, &self.serial)
    }

    /// The certificate an interrupted run of this order signed with `key`, if `found` is it:
    /// this order's serial, the key's own certificate, every rule met, the signature verifying.
    pub fn adopt(&self, found: &[u8], key: &dyn Signer) -> Result<IssuedCertificate, X509Error> {
        let public_key = key.public_key();
        check_found(
            found,
            &self.serial,
            &root_rules(public_key),
            public_key,
            vec![],
        )
    }
}

/// Everything `x509 issue` needs.
pub struct IntermediateOrder {
    /// The CSR file (PEM or DER).
    pub csr: PathBuf,
    /// The profile.
    pub profile: Profile,
    /// The issuer certificate file.
    pub issuer_cert: PathBuf,
    /// Subject text overriding the CSR's.
    pub subject: Option<String>,
    /// Validity.
    pub validity: Validity,
    /// The serial to sign under, chosen (and recorded, by a caller that journals) in advance.
    pub serial: Serial,
    /// Where to write the PEM certificate (must not exist).
    pub out: PathBuf,
}

impl IntermediateOrder {
    /// Checks every input (CSR, subject, issuer certificate, validity, output), touching no
    /// key (see [`RootCaOrder::check`]).
    pub fn check(&self) -> Result<(), X509Error> {
        self.checked().map(|_| ())
    }

    /// The parsed request, subject and issuer certificate, once every input is checked.
    #[allow(clippy::type_complexity)]
    fn checked(
        &self,
    ) -> Result<(CertificateRequest, Option<DistinguishedName>, Vec<u8>), X509Error> {
        let request = self.request()?;
        let subject = self
            .subject
            .as_deref()
            .map(name::parse_subject)
            .transpose()?;
        let issuer_der = read_certificate(&self.issuer_cert)?;
        self.validity.bounds()?;
        files::ensure_absent([self.out.as_path()])?;
        Ok((request, subject, issuer_der))
    }

    /// Checks every input before touching the key, signs with the issuer's `key` and checks
    /// the result, writing nothing (see [`RootCaOrder::sign`]).
    pub fn sign(&self, key: &dyn Signer) -> Result<IssuedCertificate, X509Error> {
        let (request, subject, issuer_der) = self.checked()?;
        issue_intermediate(
            &request,
            self.profile,
            &issuer_der,
            key,
            subject,
            &self.validity,
            &self.serial,
        )
    }

    /// The certificate an interrupted run of this order signed, if `found` is it: this
    /// order's serial, the CSR's key, the issuer's name and key id, every rule of the profile
    /// met, the signature verifying with the issuer's key.
    pub fn adopt(&self, found: &[u8], key: &dyn Signer) -> Result<IssuedCertificate, X509Error> {
        let request = self.request()?;
        let issuer_der = read_certificate(&self.issuer_cert)?;
        let issuer_public = key.public_key();
        let rules = intermediate_rules(&request, self.profile, &issuer_der, issuer_public)?;
        check_found(
            found,
            &self.serial,
            &rules,
            issuer_public,
            request.ignored_extensions.clone(),
        )
    }

    fn request(&self) -> Result<CertificateRequest, X509Error> {
        let csr = std::fs::read(&self.csr)
            .map_err(|e| X509Error::MalformedCsr(format!("{}: {e}", self.csr.display())))?;
        CertificateRequest::parse(&csr)
    }
}

/// A certificate order whose serial is chosen at the last moment, by a caller that records it
/// before signing, and that can recognise the certificate an interrupted run signed under it.
pub trait CertificateOrder {
    /// Sets the serial to sign under.
    fn set_serial(&mut self, serial: Serial);
    /// Checks the inputs, touching no key.
    fn check(&self) -> Result<(), X509Error>;
    /// Checks the inputs, signs with `key` and checks the result, writing nothing.
    fn sign(&self, key: &dyn Signer) -> Result<IssuedCertificate, X509Error>;
    /// The certificate an interrupted run of this order signed with `key`, if `found` is it.
    fn adopt(&self, found: &[u8], key: &dyn Signer) -> Result<IssuedCertificate, X509Error>;
}

impl CertificateOrder for RootCaOrder {
    fn set_serial(&mut self, serial: Serial) {
        self.serial = serial;
    }
    fn check(&self) -> Result<(), X509Error> {
        RootCaOrder::check(self)
    }
    fn sign(&self, key: &dyn Signer) -> Result<IssuedCertificate, X509Error> {
        RootCaOrder::sign(self, key)
    }
    fn adopt(&self, found: &[u8], key: &dyn Signer) -> Result<IssuedCertificate, X509Error> {
        RootCaOrder::adopt(self, found, key)
    }
}

impl CertificateOrder for IntermediateOrder {
    fn set_serial(&mut self, serial: Serial) {
        self.serial = serial;
    }
    fn check(&self) -> Result<(), X509Error> {
        IntermediateOrder::check(self)
    }
    fn sign(&self, key: &dyn Signer) -> Result<IssuedCertificate, X509Error> {
        IntermediateOrder::sign(self, key)
    }
    fn adopt(&self, found: &[u8], key: &dyn Signer) -> Result<IssuedCertificate, X509Error> {
        IntermediateOrder::adopt(self, found, key)
    }
}

/// Writes a signed certificate's PEM to `out`, which must not exist; it appears whole.
pub fn write_certificate(out: &Path, cert: &IssuedCertificate) -> Result<(), X509Error> {
    files::write_new(out, cert.pem().as_bytes())?;
    Ok(())
}
