//! Distinguished names: parsed from `CN=…,O=…` text, or copied from a CSR.

use rcgen::{DistinguishedName, DnType};
use x509_parser::x509::X509Name;

use super::X509Error;

/// The attribute types accepted in subject text, with their rcgen types.
fn dn_type(key: &str) -> Option<DnType> {
    match key.trim().to_ascii_uppercase().as_str() {
        "CN" => Some(DnType::CommonName),
        "O" => Some(DnType::OrganizationName),
        "OU" => Some(DnType::OrganizationalUnitName),
        "C" => Some(DnType::CountryName),
        "ST" => Some(DnType::StateOrProvinceName),
        "L" => Some(DnType::LocalityName),
        _ => None,
    }
}

/// The first character of `value` that must not stand in a name: a control character (a
/// newline would forge a line in every transcript and log that prints the name) or a
/// bidirectional override (which reorders what a person reads). Named as `U+XXXX`.
fn forbidden_character(value: &str) -> Option<String> {
    value
        .chars()
        .find(|c| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
        .map(|c| format!("U+{:04X}", c as u32))
}

/// Parses `CN=Example Root CA,O=Example,C=NL` (or with `/` separators, openssl style).
pub fn parse_subject(text: &str) -> Result<DistinguishedName, X509Error> {
    let invalid = |reason: String| X509Error::InvalidSubject {
        subject: text.to_string(),
        reason,
    };
    let separator = if text.starts_with('/') { '/' } else { ',' };
    let mut dn = DistinguishedName::new();
    let mut any = false;
    for part in text.split(separator).filter(|p| !p.trim().is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| invalid(format!("{part:?} is not KEY=VALUE")))?;
        let kind = dn_type(key).ok_or_else(|| {
            invalid(format!(
                "unsupported attribute {key:?} (use CN, O, OU, C, ST, L)"
            ))
        })?;
        // Checked before trimming: Rust trims some control characters (U+0085) as spaces.
        if let Some(c) = forbidden_character(value) {
            return Err(invalid(format!(
                "{key} contains the control or bidirectional character {c}"
            )));
        }
        let value = value.trim();
        if value.is_empty() {
            return Err(invalid(format!("{key} is empty")));
        }
        if kind == DnType::CountryName && value.len() != 2 {
            return Err(invalid("C must be a two-letter country code".into()));
        }
        dn.push(kind, value);
        any = true;
    }
    if !any {
        return Err(invalid(
            "a subject needs at least one attribute, e.g. CN=…".into(),
        ));
    }
    Ok(dn)
}

/// Copies a parsed name (from a CSR) into an rcgen name, attribute by attribute.
pub fn from_x509_name(name: &X509Name<'_>) -> Result<DistinguishedName, X509Error> {
    let mut dn = DistinguishedName::new();
    for attr in name.iter_attributes() {
        let value = attr
            .as_str()
            .map_err(|_| X509Error::MalformedCsr("a subject attribute is not a string".into()))?;
        if let Some(c) = forbidden_character(value) {
            return Err(X509Error::MalformedCsr(format!(
                "the subject {value:?} contains the control or bidirectional character {c}"
            )));
        }
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| X509Error::MalformedCsr("subject attribute OID too large".into()))?
            .collect();
        // The DER writer (rcgen's yasna) panics on an identifier it cannot encode canonically:
        // found by fuzzing with a signed request whose attribute type starts 5.13 (#15).
        let encodable = match oid.as_slice() {
            [2, second, ..] => *second < u64::MAX - 80,
            [first, second, ..] => *first < 2 && *second < 40,
            _ => false,
        };
        if !encodable {
            let dotted: Vec<String> = oid.iter().map(u64::to_string).collect();
            return Err(X509Error::MalformedCsr(format!(
                "a subject attribute's type {} is not a valid object identifier",
                dotted.join(".")
            )));
        }
        let kind = match oid.as_slice() {
            [2, 5, 4, 3] => DnType::CommonName,
            [2, 5, 4, 10] => DnType::OrganizationName,
            [2, 5, 4, 11] => DnType::OrganizationalUnitName,
            [2, 5, 4, 6] => DnType::CountryName,
            [2, 5, 4, 8] => DnType::StateOrProvinceName,
            [2, 5, 4, 7] => DnType::LocalityName,
            _ => DnType::CustomDnType(oid),
        };
        dn.push(kind, value);
    }
    if dn.iter().next().is_none() {
        return Err(X509Error::MalformedCsr(
            "the CSR has an empty subject; give --subject".into(),
        ));
    }
    Ok(dn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comma_and_slash_forms() {
        let dn = parse_subject("CN=Example Root CA, O=Example,C=NL").unwrap();
        assert_eq!(dn.iter().count(), 3);
        let dn = parse_subject("/CN=x/O=y").unwrap();
        assert_eq!(dn.iter().count(), 2);
    }

    #[test]
    fn refuses_bad_subjects() {
        assert!(parse_subject("").is_err());
        assert!(parse_subject("CN").is_err());
        assert!(parse_subject("XX=1").is_err());
        assert!(parse_subject("C=Netherlands").is_err());
        assert!(parse_subject("CN=").is_err());
    }

    #[test]
    fn refuses_control_and_bidirectional_characters() {
        for bad in [
            "CN=a\nb",
            "CN=a\rb",
            "CN=\u{1b}[2J",
            "CN=a\u{202E}b",
            "O=x\u{85}",
        ] {
            let err = parse_subject(bad).unwrap_err().to_string();
            assert!(
                err.contains("control or bidirectional character U+"),
                "{err}"
            );
            // The subject is shown escaped in the error.
            assert!(!err.contains('\n') && !err.contains('\u{1b}'), "{err}");
        }
        assert!(parse_subject("CN=Ünïcode Root — ok").is_ok());
    }
}
