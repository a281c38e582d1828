//! Certificate serial numbers, chosen before signing: a ceremony records the serial it is about
//! to sign under, so that a certificate signed just before a crash is recognised on resume
//! (adopted, or journaled as discarded) and no serial is ever signed twice.

use rcgen::SerialNumber;

use super::X509Error;

/// A positive serial number of 16 random octets (about 127 bits): never derived from the key,
/// so a re-issue for the same key gets a new serial.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Serial(Vec<u8>);

impl Serial {
    /// A new random serial.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        bytes[0] &= 0x7f;
        if bytes[0] == 0 {
            bytes[0] = 0x01;
        }
        Serial(bytes.to_vec())
    }

    /// Lower-case hex, as certificates are listed (`openssl x509 -serial` in upper case).
    pub fn hex(&self) -> String {
        hex::encode(&self.0)
    }

    pub(super) fn to_rcgen(&self) -> SerialNumber {
        SerialNumber::from_slice(&self.0)
    }
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

impl TryFrom<String> for Serial {
    type Error = X509Error;

    fn try_from(text: String) -> Result<Self, X509Error> {
        let bytes = super::parse_serial(&text)?;
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(X509Error::InvalidValidity(format!(
                "serial {text:?} is negative"
            )));
        }
        Ok(Serial(bytes))
    }
}

impl From<Serial> for String {
    fn from(serial: Serial) -> String {
        serial.hex()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_serials_are_positive_distinct_and_round_trip_as_hex() {
        let a = Serial::random();
        let b = Serial::random();
        assert_ne!(a, b);
        assert_eq!(a.0.len(), 16);
        assert_eq!(a.0[0] & 0x80, 0);
        assert_ne!(a.0[0], 0);
        assert_eq!(Serial::try_from(a.hex()).unwrap(), a);
        assert!(Serial::try_from("80ff".to_string()).is_err());
        assert!(Serial::try_from("not hex".to_string()).is_err());
    }
}
