//! Building the trust root documents from certificates, log keys and service URLs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::model::*;
use super::TrustRootError;
use crate::files;
use crate::keys::{KeyAlgorithm, PublicKey};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn time_text(t: jiff::Timestamp) -> String {
    // Whole seconds: clients parse fractional seconds, but identical inputs should give
    // identical bytes whatever the sub-second part of the clock.
    crate::time::whole_seconds(t).to_string()
}

fn parse_time(text: &str) -> Result<jiff::Timestamp, TrustRootError> {
    text.parse()
        .map_err(|e: jiff::Error| TrustRootError::BadTime {
            value: text.to_string(),
            reason: e.to_string(),
        })
}

/// A certificate authority (Fulcio) or timestamp authority to list.
#[derive(Clone, Debug)]
pub struct CaInput {
    /// The service URI.
    pub uri: String,
    /// DER certificates, the issuing certificate first, the root last.
    pub chain: Vec<Vec<u8>>,
    /// Start of validity; default: the first certificate's notBefore.
    pub start: Option<jiff::Timestamp>,
}

/// A transparency log (Rekor) or certificate transparency log to list.
#[derive(Clone, Debug)]
pub struct LogInput {
    /// The log's base URL.
    pub base_url: String,
    /// The log's public key.
    pub public_key: PublicKey,
    /// Start of validity; default: the build time.
    pub start: Option<jiff::Timestamp>,
}

/// Service URLs for `signing_config.v0.2.json`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceUrls {
    /// Who operates the services (e.g. the organisation's domain).
    pub operator: String,
    /// Fulcio.
    #[serde(default)]
    pub ca_urls: Vec<String>,
    /// OIDC providers.
    #[serde(default)]
    pub oidc_urls: Vec<String>,
    /// Rekor.
    #[serde(default)]
    pub rekor_urls: Vec<String>,
    /// Rekor's API major version (1 unless a Rekor v2 log is deployed).
    #[serde(default)]
    pub rekor_api_version: Option<u32>,
    /// Timestamp authorities.
    #[serde(default)]
    pub tsa_urls: Vec<String>,
}

/// A trust root configuration file (TOML). Paths are relative to the file's directory.
///
/// ```toml
/// [[certificate_authorities]]
/// uri = "https://fulcio.example.internal"
/// chain = ["pki/intermediate-fulcio.pem", "pki/root.pem"]
///
/// [[tlogs]]
/// base_url = "https://rekor.example.internal"
/// public_key = "online/rekor.pub"
///
/// [signing_config]
/// operator = "example.internal"
/// ca_urls = ["https://fulcio.example.internal"]
/// rekor_urls = ["https://rekor.example.internal"]
/// ```
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustRootConfig {
    /// Fulcio certificate authorities.
    #[serde(default)]
    pub certificate_authorities: Vec<CaFile>,
    /// Timestamp authorities.
    #[serde(default)]
    pub timestamp_authorities: Vec<CaFile>,
    /// Rekor logs.
    #[serde(default)]
    pub tlogs: Vec<LogFile>,
    /// CT logs.
    #[serde(default)]
    pub ctlogs: Vec<LogFile>,
    /// Service URLs; when present, a signing config is written too.
    pub signing_config: Option<ServiceUrls>,
    #[serde(skip)]
    dir: PathBuf,
}

/// An authority as the config file names it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaFile {
    uri: String,
    chain: Vec<PathBuf>,
    start: Option<String>,
}

/// A log as the config file names it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    base_url: String,
    public_key: PathBuf,
    start: Option<String>,
}

impl ServiceUrls {
    /// The first list a signing client needs that is empty, as (field, what it is for).
    fn missing(&self) -> Option<(&'static str, &'static str)> {
        [
            (&self.ca_urls, "ca_urls", "certificate authority (Fulcio)"),
            (&self.oidc_urls, "oidc_urls", "OIDC provider"),
            (&self.rekor_urls, "rekor_urls", "transparency log (Rekor)"),
        ]
        .into_iter()
        .find(|(urls, _, _)| urls.is_empty())
        .map(|(_, field, service)| (field, service))
    }
}

/// The documents built from a configuration.
#[derive(Debug)]
pub struct TrustRootOutputs {
    /// `trusted_root.json`.
    pub trusted_root: TrustedRoot,
    /// `signing_config.v0.2.json`, when the configuration has service URLs.
    pub signing_config: Option<SigningConfig>,
}

/// The name `trustroot build` and `import` give the client trust config.
pub const TRUST_CONFIG_FILE: &str = "trust_config.json";

/// `trust_config.json`'s bytes: the trusted root and signing config as one client trust config.
pub fn trust_config_json(trusted_root: &TrustedRoot, signing_config: &SigningConfig) -> String {
    use erased::Json;
    ClientTrustConfig::new(trusted_root.clone(), signing_config.clone()).pretty()
}

impl TrustRootOutputs {
    /// Writes `trusted_root.json` (and, with service URLs, `signing_config.v0.2.json` and
    /// `trust_config.json`) into `dir`, refusing to overwrite any; returns the paths written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, TrustRootError> {
        let trusted_root = dir.join("trusted_root.json");
        let signing_config = dir.join("signing_config.v0.2.json");
        let trust_config = dir.join(TRUST_CONFIG_FILE);
        files::ensure_absent([
            trusted_root.as_path(),
            signing_config.as_path(),
            trust_config.as_path(),
        ])?;
        let mut written = vec![];
        let json = |v: &dyn erased::Json| v.pretty();
        files::write_new(&trusted_root, json(&self.trusted_root).as_bytes())?;
        written.push(trusted_root);
        if let Some(config) = &self.signing_config {
            files::write_new(&signing_config, json(config).as_bytes())?;
            written.push(signing_config);
            let client = trust_config_json(&self.trusted_root, config);
            files::write_new(&trust_config, client.as_bytes())?;
            written.push(trust_config);
        }
        Ok(written)
    }
}

mod erased {
    /// Pretty JSON with a trailing newline, for any of the model types.
    pub trait Json {
        fn pretty(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn pretty(&self) -> String {
            let mut text = serde_json::to_string_pretty(self).expect("model types serialise");
            text.push('\n');
            text
        }
    }
}

impl TrustRootConfig {
    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<Self, TrustRootError> {
        let bad = |reason: String| TrustRootError::BadConfig {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let mut config: TrustRootConfig = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        config.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // The signing config also goes into trust_config.json, which clients sign with.
        if let Some((field, service)) = config.signing_config.as_ref().and_then(|u| u.missing()) {
            return Err(TrustRootError::MissingServiceUrl {
                path: path.to_path_buf(),
                field,
                service,
            });
        }
        Ok(config)
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>, TrustRootError> {
        let full = self.dir.join(path);
        std::fs::read(&full).map_err(|e| TrustRootError::Unreadable {
            path: full,
            reason: e.to_string(),
        })
    }

    fn cas(&self, files: &[CaFile]) -> Result<Vec<CaInput>, TrustRootError> {
        files
            .iter()
            .map(|ca| {
                let mut chain = Vec::new();
                for path in &ca.chain {
                    chain.extend(pem_certificates(&self.read(path)?, &ca.uri)?);
                }
                Ok(CaInput {
                    uri: ca.uri.clone(),
                    chain,
                    start: ca.start.as_deref().map(parse_time).transpose()?,
                })
            })
            .collect()
    }

    fn logs(&self, files: &[LogFile]) -> Result<Vec<LogInput>, TrustRootError> {
        files
            .iter()
            .map(|log| {
                let bytes = self.read(&log.public_key)?;
                let public_key =
                    PublicKey::from_spki(&bytes).map_err(|e| TrustRootError::BadLogKey {
                        base_url: log.base_url.clone(),
                        reason: e.to_string(),
                    })?;
                Ok(LogInput {
                    base_url: log.base_url.clone(),
                    public_key,
                    start: log.start.as_deref().map(parse_time).transpose()?,
                })
            })
            .collect()
    }

    /// Builds both documents. `previous` is the trusted root currently published: authorities
    /// and keys it lists that this configuration no longer does are kept, closed at `now`.
    pub fn build(
        &self,
        previous: Option<&TrustedRoot>,
        now: crate::time::ConfirmedTime,
    ) -> Result<TrustRootOutputs, TrustRootError> {
        let trusted_root = build_trusted_root(
            &self.cas(&self.certificate_authorities)?,
            &self.cas(&self.timestamp_authorities)?,
            &self.logs(&self.tlogs)?,
            &self.logs(&self.ctlogs)?,
            previous,
            now,
        )?;
        let signing_config = self
            .signing_config
            .as_ref()
            .map(|urls| build_signing_config(urls, now));
        Ok(TrustRootOutputs {
            trusted_root,
            signing_config,
        })
    }
}

/// Reads a previously published `trusted_root.json`.
pub fn read_trusted_root(path: &Path) -> Result<TrustedRoot, TrustRootError> {
    let bad = |reason: String| TrustRootError::BadPrevious {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let root: TrustedRoot = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if root.media_type != TRUSTED_ROOT_MEDIA_TYPE {
        return Err(bad(format!(
            "media type {:?} is not {TRUSTED_ROOT_MEDIA_TYPE}",
            root.media_type
        )));
    }
    Ok(root)
}

fn pem_certificates(bytes: &[u8], uri: &str) -> Result<Vec<Vec<u8>>, TrustRootError> {
    let bad = |reason: String| TrustRootError::BadChain {
        uri: uri.to_string(),
        reason,
    };
    let certs: Vec<Vec<u8>> = x509_parser::pem::Pem::iter_from_buffer(bytes)
        .map(|pem| {
            pem.map(|p| p.contents)
                .map_err(|e| bad(format!("not PEM: {e}")))
        })
        .collect::<Result<_, _>>()?;
    if certs.is_empty() {
        return Err(bad("no certificates in file".into()));
    }
    Ok(certs)
}

/// What a chain must certify: a Fulcio CA (its first certificate is a CA) or a timestamp
/// authority (its first certificate carries the timeStamping extended key usage).
#[derive(Clone, Copy)]
enum ChainKind {
    Fulcio,
    Timestamping,
}

/// Checks that each certificate is issued by the next and the last is self-signed; returns the
/// entry for the first certificate.
fn authority(input: &CaInput, kind: ChainKind) -> Result<CertificateAuthority, TrustRootError> {
    let bad = |reason: String| TrustRootError::BadChain {
        uri: input.uri.clone(),
        reason,
    };
    let parsed = input
        .chain
        .iter()
        .enumerate()
        .map(|(i, der)| {
            X509Certificate::from_der(der)
                .map(|(_, c)| c)
                .map_err(|e| bad(format!("certificate {} does not parse: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let Some(first) = parsed.first() else {
        return Err(bad("the chain is empty".into()));
    };
    for (i, cert) in parsed.iter().enumerate() {
        let issuer = parsed.get(i + 1).unwrap_or(cert);
        if cert.issuer() != issuer.subject() {
            return Err(bad(format!(
                "certificate {} ({}) is not issued by {} — order the chain leaf first, root last",
                i + 1,
                cert.subject(),
                issuer.subject()
            )));
        }
        cert.verify_signature(Some(issuer.public_key()))
            .map_err(|_| {
                bad(format!(
                    "the signature on certificate {} ({}) does not verify",
                    i + 1,
                    cert.subject()
                ))
            })?;
    }
    match kind {
        ChainKind::Fulcio if !first.is_ca() => {
            return Err(bad("the first certificate is not a CA".into()))
        }
        ChainKind::Timestamping
            if !first
                .extended_key_usage()
                .ok()
                .flatten()
                .is_some_and(|e| e.value.time_stamping) =>
        {
            return Err(bad(
                "the first certificate lacks the timeStamping extended key usage".into(),
            ))
        }
        _ => {}
    }
    let start = match input.start {
        Some(t) => t,
        None => jiff::Timestamp::from_second(first.validity().not_before.timestamp())
            .map_err(|e| bad(e.to_string()))?,
    };
    Ok(CertificateAuthority {
        subject: DistinguishedName {
            organization: first_value(first.subject().iter_organization()),
            common_name: first_value(first.subject().iter_common_name()),
        },
        uri: input.uri.clone(),
        cert_chain: CertChain {
            certificates: input
                .chain
                .iter()
                .map(|der| RawBytes {
                    raw_bytes: b64(der),
                })
                .collect(),
        },
        valid_for: TimeRange {
            start: time_text(start),
            end: None,
        },
    })
}

fn first_value<'a>(
    mut values: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> String {
    values
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn log(input: &LogInput, now: jiff::Timestamp) -> TransparencyLog {
    let spki = input.public_key.spki_der();
    let key_details = match input.public_key.algorithm() {
        KeyAlgorithm::EcdsaP256 => "PKIX_ECDSA_P256_SHA_256",
        KeyAlgorithm::EcdsaP384 => "PKIX_ECDSA_P384_SHA_384",
    };
    TransparencyLog {
        base_url: input.base_url.clone(),
        hash_algorithm: "SHA2_256".into(),
        public_key: PublicKeyEntry {
            raw_bytes: b64(&spki),
            key_details: key_details.into(),
            valid_for: TimeRange {
                start: time_text(input.start.unwrap_or(now)),
                end: None,
            },
        },
        log_id: LogId {
            key_id: b64(&Sha256::digest(&spki)),
        },
    }
}

/// Keeps history: entries of `previous` that `current` no longer lists stay, with their
/// `validFor.end` closed at `now` if it was open; entries in both keep their original start.
fn with_history<T: Clone>(
    previous: &[T],
    mut current: Vec<T>,
    id: impl Fn(&T) -> String,
    valid_for: impl Fn(&mut T) -> &mut TimeRange,
    now: &str,
) -> Vec<T> {
    let current_ids: HashSet<String> = current.iter().map(&id).collect();
    let mut merged = Vec::new();
    for old in previous {
        let old_id = id(old);
        if current_ids.contains(&old_id) {
            if let Some(entry) = current.iter_mut().find(|c| id(c) == old_id) {
                let mut old = old.clone();
                valid_for(entry).start = valid_for(&mut old).start.clone();
            }
        } else {
            let mut retired = old.clone();
            let range = valid_for(&mut retired);
            if range.end.is_none() {
                range.end = Some(now.to_string());
            }
            merged.push(retired);
        }
    }
    merged.extend(current);
    merged
}

/// Builds `trusted_root.json` from authorities and logs, keeping `previous`'s history.
pub fn build_trusted_root(
    certificate_authorities: &[CaInput],
    timestamp_authorities: &[CaInput],
    tlogs: &[LogInput],
    ctlogs: &[LogInput],
    previous: Option<&TrustedRoot>,
    now: crate::time::ConfirmedTime,
) -> Result<TrustedRoot, TrustRootError> {
    let now = now.timestamp();
    let now_text = time_text(now);
    let cas = certificate_authorities
        .iter()
        .map(|c| authority(c, ChainKind::Fulcio))
        .collect::<Result<Vec<_>, _>>()?;
    let tsas = timestamp_authorities
        .iter()
        .map(|c| authority(c, ChainKind::Timestamping))
        .collect::<Result<Vec<_>, _>>()?;
    let tlogs: Vec<_> = tlogs.iter().map(|l| log(l, now)).collect();
    let ctlogs: Vec<_> = ctlogs.iter().map(|l| log(l, now)).collect();

    let ca_id = |c: &CertificateAuthority| {
        c.cert_chain
            .certificates
            .first()
            .map(|r| r.raw_bytes.clone())
            .unwrap_or_default()
    };
    let log_id = |l: &TransparencyLog| l.log_id.key_id.clone();
    let empty = TrustedRoot {
        media_type: TRUSTED_ROOT_MEDIA_TYPE.into(),
        tlogs: vec![],
        certificate_authorities: vec![],
        ctlogs: vec![],
        timestamp_authorities: vec![],
    };
    let previous = previous.unwrap_or(&empty);
    Ok(TrustedRoot {
        media_type: TRUSTED_ROOT_MEDIA_TYPE.into(),
        tlogs: with_history(
            &previous.tlogs,
            tlogs,
            log_id,
            |l| &mut l.public_key.valid_for,
            &now_text,
        ),
        certificate_authorities: with_history(
            &previous.certificate_authorities,
            cas,
            ca_id,
            |c| &mut c.valid_for,
            &now_text,
        ),
        ctlogs: with_history(
            &previous.ctlogs,
            ctlogs,
            log_id,
            |l| &mut l.public_key.valid_for,
            &now_text,
        ),
        timestamp_authorities: with_history(
            &previous.timestamp_authorities,
            tsas,
            ca_id,
            |c| &mut c.valid_for,
            &now_text,
        ),
    })
}

/// Builds `signing_config.v0.2.json`: every service valid from `now`, clients use any one
/// Rekor and any one timestamp authority.
pub fn build_signing_config(urls: &ServiceUrls, now: crate::time::ConfirmedTime) -> SigningConfig {
    let now = now.timestamp();
    let services = |list: &[String], version: u32| {
        list.iter()
            .map(|url| Service {
                url: url.clone(),
                major_api_version: version,
                valid_for: TimeRange {
                    start: time_text(now),
                    end: None,
                },
                operator: urls.operator.clone(),
            })
            .collect()
    };
    let any = ServiceConfiguration {
        selector: "ANY".into(),
        count: None,
    };
    SigningConfig {
        media_type: SIGNING_CONFIG_MEDIA_TYPE.into(),
        ca_urls: services(&urls.ca_urls, 1),
        oidc_urls: services(&urls.oidc_urls, 1),
        rekor_tlog_urls: services(&urls.rekor_urls, urls.rekor_api_version.unwrap_or(1)),
        tsa_urls: services(&urls.tsa_urls, 1),
        rekor_tlog_config: any.clone(),
        tsa_config: any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<TrustRootConfig, TrustRootError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trustroot.toml");
        std::fs::write(&path, text).unwrap();
        TrustRootConfig::load(&path)
    }

    #[test]
    fn a_signing_config_without_a_url_a_client_needs_is_refused_by_name() {
        let complete = "[signing_config]\noperator = \"x\"\n\
                        ca_urls = [\"https://fulcio.x\"]\noidc_urls = [\"https://oidc.x\"]\n\
                        rekor_urls = [\"https://rekor.x\"]\n";
        assert!(load(complete).is_ok());
        for (line, field, service) in [
            ("ca_urls", "ca_urls", "certificate authority (Fulcio)"),
            ("oidc_urls", "oidc_urls", "OIDC provider"),
            ("rekor_urls", "rekor_urls", "transparency log (Rekor)"),
        ] {
            // Left out, or given as an empty list: the same message.
            let without: String = complete
                .lines()
                .filter(|l| !l.starts_with(line))
                .map(|l| format!("{l}\n"))
                .collect();
            let empty = format!("{without}{line} = []\n");
            for text in [without, empty] {
                let err = load(&text).unwrap_err();
                assert!(
                    matches!(&err, TrustRootError::MissingServiceUrl { field: f, .. } if *f == field),
                    "{err}"
                );
                let message = err.to_string();
                assert!(
                    message.contains(&format!("[signing_config] {field} names no URL"))
                        && message.contains(service),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn without_service_urls_only_the_trusted_root_is_configured() {
        let config = load("").unwrap();
        assert!(config.signing_config.is_none());
    }
}
