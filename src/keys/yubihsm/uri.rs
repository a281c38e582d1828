//! `yubihsm:` URIs: how rootcellar names a YubiHSM2 and a key on it (syntax in the module doc
//! of [`super`]).
//!
//! Parsing is strict, as for `pkcs11:` URIs: unknown or repeated attributes are refused rather
//! than ignored, because a typo in a key reference must not select a different key or device,
//! and a password is never accepted in a URI.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::keys::KeyError;

/// Characters escaped in a label (RFC 3986 `pchar` minus the URI's own separators).
const LABEL_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'/')
    .add(b';')
    .add(b'<')
    .add(b'=')
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

use crate::keys::uri::QUERY_VALUE;

/// The port `yubihsm-connector` listens on unless configured otherwise.
pub const DEFAULT_CONNECTOR_PORT: u16 = 12345;
/// The longest object label a YubiHSM2 stores, in bytes.
pub const MAX_LABEL_LEN: usize = 40;

/// How rootcellar reaches the device.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConnectorSpec {
    /// Directly over USB (libusb); `serial=` picks one device among several.
    Usb,
    /// Through `yubihsm-connector` on this machine's loopback interface.
    Http {
        /// A loopback IPv4 address.
        addr: Ipv4Addr,
        /// The connector's port.
        port: u16,
    },
    /// A connector registered in this process with
    /// [`HsmConfig::register_connector`](crate::keys::HsmConfig::register_connector) (tests
    /// register MockHsm devices).
    Registered(String),
}

impl fmt::Display for ConnectorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectorSpec::Usb => f.write_str("usb"),
            ConnectorSpec::Http { addr, port } => write!(f, "http://{addr}:{port}"),
            ConnectorSpec::Registered(name) => f.write_str(name),
        }
    }
}

/// Whether `name` may be registered as a connector name: lowercase letters, digits and `-`,
/// starting with a letter, at most 64 characters, and not `usb` or `http`.
pub(crate) fn valid_connector_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !matches!(name, "usb" | "http" | "https")
}

/// A parsed `yubihsm:` URI naming a device and, optionally, one key on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YubiHsmUri {
    /// `connector=`: how to reach the device.
    pub connector: ConnectorSpec,
    /// `serial=`: the device's 10-digit serial number.
    pub serial: Option<String>,
    /// `id=`: the key's object id.
    pub id: Option<u16>,
    /// `label=`: the key's label.
    pub label: Option<String>,
    /// `auth-key=` (query): the authentication key to open a session with.
    pub auth_key: Option<u16>,
    /// `password-source=` (query): a file holding that authentication key's password.
    pub password_source: Option<PathBuf>,
}

/// Formats an object id as URIs and messages show it: `0x` and four hex digits.
pub fn format_id(id: u16) -> String {
    format!("0x{id:04x}")
}

fn parse_id(value: &str) -> Option<u16> {
    let digits = value.strip_prefix("0x")?;
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok().filter(|&id| id != 0)
}

fn parse_connector(value: &str) -> Result<ConnectorSpec, String> {
    if value == "usb" {
        return Ok(ConnectorSpec::Usb);
    }
    if let Some(rest) = value.strip_prefix("http://") {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("connector port {port:?} is not a port number"))?;
                (host, port)
            }
            None => (rest, DEFAULT_CONNECTOR_PORT),
        };
        let addr = if host == "localhost" {
            Ipv4Addr::LOCALHOST
        } else {
            host.parse::<Ipv4Addr>()
                .map_err(|_| format!("connector host {host:?} is not an IPv4 address"))?
        };
        // Keys must not be driven across a network: yubihsm-connector belongs on this machine.
        if !addr.is_loopback() {
            return Err(format!(
                "connector host {addr} is not a loopback address; rootcellar talks to \
                 yubihsm-connector on this machine only (127.0.0.1)"
            ));
        }
        return Ok(ConnectorSpec::Http { addr, port });
    }
    if value.starts_with("https://") {
        return Err("https connectors are not supported; use http://127.0.0.1:PORT".into());
    }
    if valid_connector_name(value) {
        return Ok(ConnectorSpec::Registered(value.to_string()));
    }
    Err(format!(
        "connector {value:?} is neither usb, http://127.0.0.1:PORT, nor a connector name"
    ))
}

impl YubiHsmUri {
    /// Parses a `yubihsm:` URI. Unknown or repeated attributes, and any password, are refused.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let invalid = |reason: String| KeyError::InvalidUri {
            uri: redact(text),
            reason,
        };
        let rest = text
            .strip_prefix("yubihsm:")
            .ok_or_else(|| invalid("must start with \"yubihsm:\"".into()))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut connector = None;
        let mut uri = YubiHsmUri {
            connector: ConnectorSpec::Usb,
            serial: None,
            id: None,
            label: None,
            auth_key: None,
            password_source: None,
        };
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, raw) = attr
                .split_once('=')
                .ok_or_else(|| invalid(format!("path attribute {attr:?} has no '='")))?;
            let value = decode(raw).ok_or_else(|| invalid(format!("{name}: bad escape")))?;
            let repeated = match name {
                "connector" => connector
                    .replace(parse_connector(&value).map_err(&invalid)?)
                    .is_some(),
                "serial" => {
                    if value.len() != 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(invalid(format!(
                            "serial {value:?} is not a 10-digit YubiHSM2 serial number"
                        )));
                    }
                    uri.serial.replace(value).is_some()
                }
                "id" => {
                    let id = parse_id(&value).ok_or_else(|| {
                        invalid(format!(
                            "id {value:?} is not an object id: write 0x and four hex digits, e.g. id=0x0102 (0x0000 is not an id)"
                        ))
                    })?;
                    uri.id.replace(id).is_some()
                }
                "label" => {
                    if value.is_empty() || value.len() > MAX_LABEL_LEN {
                        return Err(invalid(format!("label must be 1 to {MAX_LABEL_LEN} bytes")));
                    }
                    uri.label.replace(value).is_some()
                }
                other => {
                    return Err(invalid(format!(
                        "unsupported path attribute {other:?} (known: connector, serial, id, label)"
                    )))
                }
            };
            if repeated {
                return Err(invalid(format!("{name} given twice")));
            }
        }
        for attr in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|a| !a.is_empty())
        {
            let (name, raw) = attr
                .split_once('=')
                .ok_or_else(|| invalid(format!("query attribute {attr:?} has no '='")))?;
            let repeated = match name {
                "auth-key" => {
                    let value = decode(raw).ok_or_else(|| invalid("auth-key: bad escape".into()))?;
                    let id = parse_id(&value).ok_or_else(|| {
                        invalid(format!(
                            "auth-key {value:?} is not an object id: write 0x and four hex digits, e.g. auth-key=0x0001"
                        ))
                    })?;
                    uri.auth_key.replace(id).is_some()
                }
                "password-source" => {
                    let value = decode(raw)
                        .ok_or_else(|| invalid("password-source: bad escape".into()))?;
                    let path = value.strip_prefix("file://").unwrap_or(&value);
                    let path = path.strip_prefix("file:").unwrap_or(path);
                    if path.is_empty() {
                        return Err(invalid("password-source is empty".into()));
                    }
                    uri.password_source.replace(PathBuf::from(path)).is_some()
                }
                "password" | "password-value" | "pin-value" | "pin" => {
                    return Err(invalid(format!(
                        "{name} is refused: passwords never travel in URIs; use password-source=FILE or the prompt"
                    )))
                }
                other => {
                    return Err(invalid(format!(
                        "unsupported query attribute {other:?} (known: auth-key, password-source)"
                    )))
                }
            };
            if repeated {
                return Err(invalid(format!("{name} given twice")));
            }
        }
        uri.connector = connector.ok_or_else(|| {
            invalid(
                "connector=… is required (usb, http://127.0.0.1:PORT, or a registered name)".into(),
            )
        })?;
        Ok(uri)
    }

    /// The same device, without any key attributes.
    pub fn device(&self) -> Self {
        YubiHsmUri {
            id: None,
            label: None,
            ..self.clone()
        }
    }

    /// The same URI narrowed to one key, by id and label, on the device with `serial`.
    pub fn for_key(&self, serial: &str, id: u16, label: &str) -> Self {
        YubiHsmUri {
            serial: Some(serial.to_string()),
            id: Some(id),
            label: (!label.is_empty()).then(|| label.to_string()),
            ..self.clone()
        }
    }

    /// The URI without its query (authentication key and password source), as shown to people
    /// and recorded in metadata: it names the key, not how this machine logs in to it.
    pub fn without_query(&self) -> Self {
        YubiHsmUri {
            auth_key: None,
            password_source: None,
            ..self.clone()
        }
    }

    /// True when the URI names a key (by id, label or both).
    pub fn names_key(&self) -> bool {
        self.id.is_some() || self.label.is_some()
    }
}

impl fmt::Display for YubiHsmUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "yubihsm:connector={}", self.connector)?;
        if let Some(serial) = &self.serial {
            write!(f, ";serial={serial}")?;
        }
        if let Some(id) = self.id {
            write!(f, ";id={}", format_id(id))?;
        }
        if let Some(label) = &self.label {
            write!(f, ";label={}", utf8_percent_encode(label, LABEL_VALUE))?;
        }
        let mut query = Vec::new();
        if let Some(auth_key) = self.auth_key {
            query.push(format!("auth-key={}", format_id(auth_key)));
        }
        if let Some(path) = &self.password_source {
            let path = path.to_string_lossy();
            query.push(format!(
                "password-source={}",
                utf8_percent_encode(&path, QUERY_VALUE)
            ));
        }
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

/// Percent-decodes a value, refusing malformed escapes and non-UTF-8 results.
fn decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%'
            && !(i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit())
        {
            return None;
        }
    }
    percent_decode_str(value)
        .decode_utf8()
        .ok()
        .map(|v| v.into_owned())
}

/// A URI as it may be shown in an error: the value of any password attribute is cut out.
fn redact(text: &str) -> String {
    let Some((head, query)) = text.split_once('?') else {
        return text.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|attr| match attr.split_once('=') {
            Some((name, _))
                if matches!(name, "password" | "password-value" | "pin-value" | "pin") =>
            {
                format!("{name}=<redacted>")
            }
            _ => attr.to_string(),
        })
        .collect();
    format!("{head}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_full_usb_uri() {
        let text = "yubihsm:connector=usb;serial=0012345678;id=0x0102;label=root%20ca?auth-key=0x0002&password-source=/run/hsm.pw";
        let uri = YubiHsmUri::parse(text).unwrap();
        assert_eq!(uri.connector, ConnectorSpec::Usb);
        assert_eq!(uri.serial.as_deref(), Some("0012345678"));
        assert_eq!(uri.id, Some(0x0102));
        assert_eq!(uri.label.as_deref(), Some("root ca"));
        assert_eq!(uri.auth_key, Some(2));
        assert_eq!(
            uri.password_source.as_deref(),
            Some(std::path::Path::new("/run/hsm.pw"))
        );
        assert_eq!(uri.to_string(), text);
        assert_eq!(
            uri.without_query().to_string(),
            "yubihsm:connector=usb;serial=0012345678;id=0x0102;label=root%20ca"
        );
        assert_eq!(
            uri.device().to_string(),
            "yubihsm:connector=usb;serial=0012345678?auth-key=0x0002&password-source=/run/hsm.pw"
        );
    }

    #[test]
    fn http_connectors_are_loopback_only() {
        let uri = YubiHsmUri::parse("yubihsm:connector=http://127.0.0.1:12345;id=0x0001").unwrap();
        assert_eq!(
            uri.connector,
            ConnectorSpec::Http {
                addr: Ipv4Addr::LOCALHOST,
                port: 12345
            }
        );
        let uri = YubiHsmUri::parse("yubihsm:connector=http%3A%2F%2Flocalhost").unwrap();
        assert_eq!(uri.to_string(), "yubihsm:connector=http://127.0.0.1:12345");
        for bad in [
            "yubihsm:connector=http://10.0.0.5:12345",
            "yubihsm:connector=http://hsm.example:12345",
            "yubihsm:connector=https://127.0.0.1:12345",
            "yubihsm:connector=http://127.0.0.1:0",
            "yubihsm:connector=http://127.0.0.1:99999",
        ] {
            assert!(YubiHsmUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registered_connector_names() {
        let uri = YubiHsmUri::parse("yubihsm:connector=mock-a;label=k").unwrap();
        assert_eq!(uri.connector, ConnectorSpec::Registered("mock-a".into()));
        assert!(valid_connector_name("custodian-2"));
        for bad in ["usb", "http", "Mock", "-a", "a b", "", "a_b"] {
            assert!(!valid_connector_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn refuses_passwords_without_echoing_them() {
        for attr in ["password", "password-value", "pin-value"] {
            let err = YubiHsmUri::parse(&format!(
                "yubihsm:connector=usb?auth-key=0x0001&{attr}=hunter2"
            ))
            .unwrap_err();
            let message = err.to_string();
            assert!(message.contains("never travel in URIs"), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }

    #[test]
    fn refuses_unknown_repeated_and_malformed_attributes() {
        for bad in [
            "yubihsm:id=0x0102",                         // no connector
            "yubihsm:connector=usb;object=k",            // pkcs11 attribute
            "yubihsm:connector=usb;id=0x0102;id=0x0103", // repeated
            "yubihsm:connector=usb;connector=usb",       // repeated
            "yubihsm:connector=usb;id=258",              // decimal id
            "yubihsm:connector=usb;id=0x102",            // not four digits
            "yubihsm:connector=usb;id=0x0000",           // not an id
            "yubihsm:connector=usb;id=0x01020",          // too long
            "yubihsm:connector=usb;serial=12345",        // short serial
            "yubihsm:connector=usb;label=",              // empty label
            "yubihsm:connector=usb;label=%zz",           // bad escape
            "yubihsm:connector=usb;label=%ff",           // not UTF-8
            "yubihsm:connector=usb;label=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", // 41 bytes
            "yubihsm:connector=usb?auth-key=1",          // decimal auth key
            "yubihsm:connector=usb?auth-key=0x0001&auth-key=0x0002",
            "yubihsm:connector=usb?module-path=/x.so",
            "yubihsm:connector=usb?password-source=",
            "yubihsm:connector=usb;id",
            "pkcs11:token=t",
        ] {
            assert!(YubiHsmUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn for_key_pins_serial_id_and_label() {
        let uri = YubiHsmUri::parse("yubihsm:connector=mock-b?auth-key=0x0001").unwrap();
        let key = uri.for_key("0123456789", 0x00ab, "tuf/root 1");
        assert_eq!(
            key.to_string(),
            "yubihsm:connector=mock-b;serial=0123456789;id=0x00ab;label=tuf%2Froot%201?auth-key=0x0001"
        );
        assert_eq!(YubiHsmUri::parse(&key.to_string()).unwrap(), key);
    }
}
