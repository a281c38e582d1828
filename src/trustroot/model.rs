//! The JSON forms of Sigstore's protobuf-specs `TrustedRoot` and `SigningConfig` (v0.2), as
//! today's clients (sigstore-go, sigstore-python, cosign) read them: camelCase field names,
//! bytes as standard base64, times as RFC 3339, every list present even when empty.

use serde::{Deserialize, Serialize};

/// The trusted root media type today's clients accept.
pub const TRUSTED_ROOT_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1";
/// The signing config media type.
pub const SIGNING_CONFIG_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.signingconfig.v0.2+json";
/// The client trust config media type (`sigstore verify --trust-config`).
pub const CLIENT_TRUST_CONFIG_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json";

/// `dev.sigstore.trustroot.v1.TrustedRoot`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustedRoot {
    /// Always [`TRUSTED_ROOT_MEDIA_TYPE`].
    pub media_type: String,
    /// Rekor transparency logs.
    #[serde(default)]
    pub tlogs: Vec<TransparencyLog>,
    /// Fulcio certificate authorities.
    #[serde(default)]
    pub certificate_authorities: Vec<CertificateAuthority>,
    /// Certificate transparency logs.
    #[serde(default)]
    pub ctlogs: Vec<TransparencyLog>,
    /// RFC 3161 timestamp authorities.
    #[serde(default)]
    pub timestamp_authorities: Vec<CertificateAuthority>,
}

/// `TransparencyLogInstance`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransparencyLog {
    /// The log's base URL.
    pub base_url: String,
    /// `SHA2_256`.
    pub hash_algorithm: String,
    /// The log's public key and when it is valid.
    pub public_key: PublicKeyEntry,
    /// SHA-256 of the DER public key.
    pub log_id: LogId,
}

/// `PublicKey`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyEntry {
    /// DER SubjectPublicKeyInfo, base64.
    pub raw_bytes: String,
    /// e.g. `PKIX_ECDSA_P256_SHA_256`.
    pub key_details: String,
    /// When the key may be used.
    pub valid_for: TimeRange,
}

/// `LogId`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogId {
    /// base64 of the SHA-256 of the DER public key.
    pub key_id: String,
}

/// `TimeRange`: an open end means "still in use".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeRange {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339; absent while current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// `CertificateAuthority`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAuthority {
    /// The leaf certificate's subject.
    pub subject: DistinguishedName,
    /// The service's URI.
    pub uri: String,
    /// Certificates, leaf (the issuing intermediate) first, root last.
    pub cert_chain: CertChain,
    /// When certificates from this authority are valid.
    pub valid_for: TimeRange,
}

/// `DistinguishedName` (organization and common name only, as protobuf-specs has it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DistinguishedName {
    /// O=.
    #[serde(default)]
    pub organization: String,
    /// CN=.
    #[serde(default)]
    pub common_name: String,
}

/// `X509CertificateChain`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CertChain {
    /// The certificates.
    pub certificates: Vec<RawBytes>,
}

/// A `{"rawBytes": base64}` wrapper.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawBytes {
    /// base64 DER.
    pub raw_bytes: String,
}

/// `dev.sigstore.trustroot.v1.SigningConfig` (media type v0.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningConfig {
    /// Always [`SIGNING_CONFIG_MEDIA_TYPE`].
    pub media_type: String,
    /// Fulcio instances.
    pub ca_urls: Vec<Service>,
    /// OIDC providers.
    pub oidc_urls: Vec<Service>,
    /// Rekor instances.
    pub rekor_tlog_urls: Vec<Service>,
    /// Timestamp authorities.
    pub tsa_urls: Vec<Service>,
    /// Which Rekor instances a client must use.
    pub rekor_tlog_config: ServiceConfiguration,
    /// Which timestamp authorities a client must use.
    pub tsa_config: ServiceConfiguration,
}

/// `Service`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// The service URL.
    pub url: String,
    /// The API major version (Fulcio 1, Rekor 1 or 2, TSA 1, OIDC 1).
    pub major_api_version: u32,
    /// When the service may be used.
    pub valid_for: TimeRange,
    /// Who runs it.
    pub operator: String,
}

/// `dev.sigstore.trustroot.v1.ClientTrustConfig`: everything a client needs to sign and verify
/// against one deployment, in one file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientTrustConfig {
    /// Always [`CLIENT_TRUST_CONFIG_MEDIA_TYPE`].
    pub media_type: String,
    /// What to verify against.
    pub trusted_root: TrustedRoot,
    /// Where to sign.
    pub signing_config: SigningConfig,
}

impl ClientTrustConfig {
    /// The trust config of a trusted root and the signing config published beside it.
    pub fn new(trusted_root: TrustedRoot, signing_config: SigningConfig) -> Self {
        ClientTrustConfig {
            media_type: CLIENT_TRUST_CONFIG_MEDIA_TYPE.into(),
            trusted_root,
            signing_config,
        }
    }
}

/// `ServiceConfiguration`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceConfiguration {
    /// `ANY`, `ALL` or `EXACT`.
    pub selector: String,
    /// With `EXACT`: how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signing_config() -> SigningConfig {
        let service = |url: &str| Service {
            url: url.into(),
            major_api_version: 1,
            valid_for: TimeRange {
                start: "2026-12-06T00:00:00Z".into(),
                end: None,
            },
            operator: "example.internal".into(),
        };
        let any = ServiceConfiguration {
            selector: "ANY".into(),
            count: None,
        };
        SigningConfig {
            media_type: SIGNING_CONFIG_MEDIA_TYPE.into(),
            ca_urls: vec![service("https://fulcio.example.internal")],
            oidc_urls: vec![service("https://oidc.example.internal")],
            rekor_tlog_urls: vec![service("https://rekor.example.internal")],
            tsa_urls: vec![],
            rekor_tlog_config: any.clone(),
            tsa_config: any,
        }
    }

    fn trusted_root() -> TrustedRoot {
        TrustedRoot {
            media_type: TRUSTED_ROOT_MEDIA_TYPE.into(),
            tlogs: vec![],
            certificate_authorities: vec![],
            ctlogs: vec![],
            timestamp_authorities: vec![],
        }
    }

    /// Field names as protobuf-specs' JSON mapping of `ClientTrustConfig` has them (checked
    /// against protobuf-specs' ClientTrustConfig JSON schema and sigstore-python 4.5.1's models).
    #[test]
    fn client_trust_config_has_protobuf_specs_field_names() {
        let config = ClientTrustConfig::new(trusted_root(), signing_config());
        let json = serde_json::to_value(&config).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["mediaType", "signingConfig", "trustedRoot"]);
        assert_eq!(
            json["mediaType"],
            "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
        );
        assert_eq!(json["trustedRoot"]["mediaType"], TRUSTED_ROOT_MEDIA_TYPE);
        for list in [
            "tlogs",
            "certificateAuthorities",
            "ctlogs",
            "timestampAuthorities",
        ] {
            assert!(json["trustedRoot"][list].is_array(), "{list}");
        }
        let signing = &json["signingConfig"];
        assert_eq!(
            signing["mediaType"],
            "application/vnd.dev.sigstore.signingconfig.v0.2+json"
        );
        assert_eq!(
            signing["caUrls"][0]["url"],
            "https://fulcio.example.internal"
        );
        assert_eq!(signing["oidcUrls"][0]["majorApiVersion"], 1);
        assert_eq!(
            signing["rekorTlogUrls"][0]["validFor"]["start"],
            "2026-12-06T00:00:00Z"
        );
        assert!(signing["rekorTlogUrls"][0]["validFor"].get("end").is_none());
        assert_eq!(signing["rekorTlogConfig"]["selector"], "ANY");
        assert_eq!(signing["tsaConfig"]["selector"], "ANY");
        // And it reads back to the same value.
        let back: ClientTrustConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, config);
    }
}
