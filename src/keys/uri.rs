//! RFC 7512 `pkcs11:` URIs: how rootcellar names a token or a key.
//!
//! Keys are referred to by URI everywhere (policy files, ceremony scripts, the CLI) so that any
//! PKCS#11 module works unchanged. Only the attributes rootcellar uses are kept; unknown path
//! attributes are refused rather than silently ignored, because a typo in a key reference must
//! not select a different key. `pin-value` is refused: a PIN must never travel in a URI.

use std::fmt;
use std::path::PathBuf;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use super::KeyError;

/// Characters escaped in path attribute values (RFC 7512 `pchar` minus the separators).
const PATH_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b';')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Characters escaped in query attribute values (paths keep their slashes); `yubihsm:` URIs
/// share it.
pub(super) const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A parsed `pkcs11:` URI naming a token and, optionally, one key on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token=`: the token label.
    pub token: Option<String>,
    /// `serial=`: the token serial number, to tell apart tokens with equal labels.
    pub serial: Option<String>,
    /// `object=`: the key label (`CKA_LABEL`).
    pub object: Option<String>,
    /// `id=`: the key id (`CKA_ID`), raw bytes.
    pub id: Option<Vec<u8>>,
    /// `module-path=`: the PKCS#11 module to load.
    pub module_path: Option<PathBuf>,
    /// `pin-source=`: a file holding the user PIN (rehearsal and tests only).
    pub pin_source: Option<PathBuf>,
}

impl Pkcs11Uri {
    /// Parses an RFC 7512 URI. Unknown attributes and `pin-value` are refused.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let invalid = |reason: &str| KeyError::InvalidUri {
            uri: redact(text),
            reason: reason.to_string(),
        };
        let rest = text
            .strip_prefix("pkcs11:")
            .ok_or_else(|| invalid("must start with \"pkcs11:\""))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut uri = Pkcs11Uri::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| invalid(&format!("path attribute {attr:?} has no '='")))?;
            let decoded = decode(value).map_err(|_| invalid(&format!("{name}: bad escape")))?;
            let slot = match name {
                "token" => &mut uri.token,
                "serial" => &mut uri.serial,
                "object" => &mut uri.object,
                "id" => {
                    if uri.id.replace(decoded).is_some() {
                        return Err(invalid("id given twice"));
                    }
                    continue;
                }
                // Attributes that only narrow the match further; harmless to accept but we
                // do not act on them, so refuse to avoid a false sense of precision.
                "type" => {
                    if value != "private" {
                        return Err(invalid("only type=private is meaningful for a signing key"));
                    }
                    continue;
                }
                other => {
                    return Err(invalid(&format!("unsupported path attribute {other:?}")));
                }
            };
            let decoded =
                String::from_utf8(decoded).map_err(|_| invalid(&format!("{name} is not UTF-8")))?;
            if slot.replace(decoded).is_some() {
                return Err(invalid(&format!("{name} given twice")));
            }
        }
        for attr in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|a| !a.is_empty())
        {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| invalid(&format!("query attribute {attr:?} has no '='")))?;
            let decoded = decode(value)
                .ok()
                .and_then(|v| String::from_utf8(v).ok())
                .ok_or_else(|| invalid(&format!("{name}: bad escape")))?;
            match name {
                "module-path" => uri.module_path = Some(PathBuf::from(decoded)),
                "pin-source" => {
                    let path = decoded.strip_prefix("file://").unwrap_or(&decoded);
                    let path = path.strip_prefix("file:").unwrap_or(path);
                    uri.pin_source = Some(PathBuf::from(path));
                }
                "pin-value" => {
                    return Err(invalid(
                        "pin-value is refused: PINs never travel in URIs; use pin-source=FILE or the prompt",
                    ))
                }
                other => return Err(invalid(&format!("unsupported query attribute {other:?}"))),
            }
        }
        if uri.token.is_none() {
            return Err(invalid("token=… is required"));
        }
        Ok(uri)
    }

    /// The token label (always present after parsing).
    pub fn token_label(&self) -> &str {
        self.token.as_deref().unwrap_or_default()
    }

    /// The same URI narrowed to one key, identified by label and id.
    pub fn for_key(&self, label: &str, id: &[u8]) -> Self {
        Pkcs11Uri {
            object: Some(label.to_string()),
            id: Some(id.to_vec()),
            ..self.clone()
        }
    }

    /// The URI without its query (module and PIN source), as shown to people and recorded in
    /// metadata: it names the key, not how this machine reaches it.
    pub fn without_query(&self) -> Self {
        Pkcs11Uri {
            module_path: None,
            pin_source: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path = Vec::new();
        if let Some(t) = &self.token {
            path.push(format!("token={}", utf8_percent_encode(t, PATH_VALUE)));
        }
        if let Some(s) = &self.serial {
            path.push(format!("serial={}", utf8_percent_encode(s, PATH_VALUE)));
        }
        if let Some(o) = &self.object {
            path.push(format!("object={}", utf8_percent_encode(o, PATH_VALUE)));
        }
        if let Some(id) = &self.id {
            let hex: String = id.iter().map(|b| format!("%{b:02x}")).collect();
            path.push(format!("id={hex}"));
        }
        write!(f, "pkcs11:{}", path.join(";"))?;
        let mut query = Vec::new();
        if let Some(m) = &self.module_path {
            let m = m.to_string_lossy();
            query.push(format!(
                "module-path={}",
                utf8_percent_encode(&m, QUERY_VALUE)
            ));
        }
        if let Some(p) = &self.pin_source {
            let p = p.to_string_lossy();
            query.push(format!(
                "pin-source={}",
                utf8_percent_encode(&p, QUERY_VALUE)
            ));
        }
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

fn decode(value: &str) -> Result<Vec<u8>, ()> {
    // percent_decode_str passes malformed escapes through; RFC 7512 requires them to be valid.
    let bytes = value.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%'
            && !(i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit())
        {
            return Err(());
        }
    }
    Ok(percent_decode_str(value).collect())
}

/// A URI as it may be shown in an error: any pin-value is cut out.
fn redact(text: &str) -> String {
    match text.find("pin-value=") {
        Some(at) => format!("{}pin-value=<redacted>", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_full_uri() {
        let text = "pkcs11:token=Root%20CA;object=tuf-root-1;id=%01%ab?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/run/pin";
        let uri = Pkcs11Uri::parse(text).unwrap();
        assert_eq!(uri.token.as_deref(), Some("Root CA"));
        assert_eq!(uri.object.as_deref(), Some("tuf-root-1"));
        assert_eq!(uri.id.as_deref(), Some(&[0x01, 0xab][..]));
        assert_eq!(
            uri.module_path.as_deref(),
            Some(std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(
            uri.pin_source.as_deref(),
            Some(std::path::Path::new("/run/pin"))
        );
        assert_eq!(uri.to_string(), text);
    }

    #[test]
    fn accepts_file_scheme_pin_source() {
        let uri = Pkcs11Uri::parse("pkcs11:token=t?pin-source=file:///etc/pin").unwrap();
        assert_eq!(
            uri.pin_source.as_deref(),
            Some(std::path::Path::new("/etc/pin"))
        );
    }

    #[test]
    fn refuses_pin_value_without_echoing_it() {
        let err = Pkcs11Uri::parse("pkcs11:token=t?pin-value=123456").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("pin-value is refused"), "{message}");
        assert!(!message.contains("123456"), "{message}");
    }

    #[test]
    fn refuses_unknown_attributes_and_bad_escapes() {
        assert!(Pkcs11Uri::parse("pkcs11:token=t;slot-id=3").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:token=t;id=%zz").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:token=t;id=%1").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:object=k").is_err());
        assert!(Pkcs11Uri::parse("yubihsm:1").is_err());
    }
}
