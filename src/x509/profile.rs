//! Certificate profiles: what each kind of certificate must contain, decided by rootcellar and
//! never by the requester.

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};

use super::X509Error;

/// The profiles an intermediate can be issued under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// A Fulcio intermediate (Fulcio's certificate specification): CA, path length 0, key usage
    /// certSign + cRLSign (critical), extended key usage codeSigning only.
    Fulcio,
    /// The intermediate of a Sigstore timestamp authority chain: CA, path length 0, key usage
    /// certSign + cRLSign (critical), extended key usage timeStamping only.
    Tsa,
}

/// The extended key usage a certificate must carry, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequiredEku {
    /// `id-kp-codeSigning`.
    CodeSigning,
    /// `id-kp-timeStamping`.
    TimeStamping,
}

/// The rules a certificate is linted against, before and after signing.
#[derive(Clone, Debug)]
pub struct CertificateRules {
    /// A name for messages.
    pub name: &'static str,
    /// The exact basicConstraints path length.
    pub path_len: Option<u8>,
    /// The extended key usage, or none at all.
    pub eku: Option<RequiredEku>,
    /// The authority key identifier the certificate must carry (the issuer's SKID); `None`
    /// for a self-signed root, which carries none.
    pub authority_key_id: Option<Vec<u8>>,
    /// The issuer name, DER; `None` for a self-signed root (issuer must equal subject).
    pub issuer_name: Option<Vec<u8>>,
    /// The issuer's validity window (Unix seconds) that the certificate must lie within.
    pub issuer_validity: Option<(i64, i64)>,
    /// The SubjectPublicKeyInfo the certificate must certify, DER.
    pub subject_spki: Vec<u8>,
    /// The signature algorithm OID the issuer key produces.
    pub signature_oid: &'static str,
}

/// Path length of the root CA: root → intermediate → leaf.
pub const ROOT_PATH_LEN: u8 = 1;

impl Profile {
    /// Looks up a profile by name.
    pub fn from_name(name: &str) -> Result<Self, X509Error> {
        match name {
            "fulcio" => Ok(Self::Fulcio),
            "tsa" => Ok(Self::Tsa),
            other => Err(X509Error::UnknownProfile(other.to_string())),
        }
    }

    /// The profile's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fulcio => "fulcio",
            Self::Tsa => "tsa",
        }
    }

    /// The extended key usage the profile requires.
    pub fn eku(self) -> RequiredEku {
        match self {
            Self::Fulcio => RequiredEku::CodeSigning,
            Self::Tsa => RequiredEku::TimeStamping,
        }
    }

    /// Default lifetime of an intermediate under this profile, in days.
    pub fn default_days(self) -> u32 {
        // Both must end before the root does; 5 years leaves room under a 10-year root.
        1826
    }
}

/// Sets every policy field of `params` for a CA certificate with the given path length and
/// extended key usage. All fields are overwritten: nothing a requester asked for survives.
pub fn apply_ca_fields(params: &mut CertificateParams, path_len: u8, eku: Option<RequiredEku>) {
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.extended_key_usages = match eku {
        None => vec![],
        Some(RequiredEku::CodeSigning) => vec![ExtendedKeyUsagePurpose::CodeSigning],
        Some(RequiredEku::TimeStamping) => vec![ExtendedKeyUsagePurpose::TimeStamping],
    };
    params.subject_alt_names = vec![];
    params.name_constraints = None;
    params.crl_distribution_points = vec![];
    params.custom_extensions = vec![];
    params.key_identifier_method = rcgen::KeyIdMethod::Sha256;
}
