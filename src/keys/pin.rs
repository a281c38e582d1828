//! Where a token PIN comes from, and how it is held.
//!
//! A PIN is read either from an interactive prompt with echo off, or from a `pin-source` file
//! (rehearsals and tests). It is never taken from the command line, where it would land in shell
//! history and `/proc/*/cmdline`. In memory it lives in a [`Pin`], which zeroes itself on drop.

use std::io::IsTerminal;
use std::path::PathBuf;

use zeroize::Zeroizing;

use super::KeyError;

/// A PIN held in memory that is wiped when dropped. Its `Debug` never shows the value.
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Wraps a PIN that is already in memory (the caller's buffer should be zeroized too).
    pub fn new(value: Zeroizing<String>) -> Self {
        Pin(value)
    }

    /// The PIN's text, for splitting it into shares; callers keep any copy zeroized.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// The PIN as the PKCS#11 layer wants it. `SecretString` zeroizes its copy on drop.
    pub(crate) fn to_auth_pin(&self) -> cryptoki::types::AuthPin {
        cryptoki::types::AuthPin::from(self.0.as_str())
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// Where to obtain a PIN.
#[derive(Clone, Debug)]
pub enum PinSource {
    /// Ask at the console, echo off.
    Prompt,
    /// Read the first line of a file.
    File(PathBuf),
    /// A PIN already in memory: typed at a ceremony prompt or rebuilt from custodians' shares.
    Given(std::sync::Arc<Pin>),
}

impl PinSource {
    /// Obtains the PIN for `token`. A prompt is refused when standard input is not a terminal,
    /// so an unattended run fails clearly instead of hanging.
    pub fn read(&self, token: &str) -> Result<Pin, KeyError> {
        match self {
            PinSource::File(path) => {
                let unavailable = |reason: String| KeyError::PinUnavailable {
                    source_desc: format!("file {}", path.display()),
                    reason,
                };
                let contents = Zeroizing::new(
                    std::fs::read_to_string(path).map_err(|e| unavailable(e.to_string()))?,
                );
                let line = contents.lines().next().unwrap_or_default();
                if line.is_empty() {
                    return Err(unavailable("the file is empty".into()));
                }
                Ok(Pin(Zeroizing::new(line.to_string())))
            }
            PinSource::Given(pin) => Ok(Pin(pin.0.clone())),
            PinSource::Prompt => {
                if !std::io::stdin().is_terminal() {
                    return Err(KeyError::PinUnavailable {
                        source_desc: "the console".into(),
                        reason:
                            "standard input is not a terminal; give pin-source=FILE in the key URI"
                                .into(),
                    });
                }
                let value = rpassword::prompt_password(format!("PIN for token {token:?}: "))
                    .map_err(|e| KeyError::PinUnavailable {
                        source_desc: "the console".into(),
                        reason: e.to_string(),
                    })?;
                Ok(Pin(Zeroizing::new(value)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_first_line_of_pin_file_and_hides_it_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        std::fs::write(&path, "918273\n").unwrap();
        let pin = PinSource::File(path).read("t").unwrap();
        assert_eq!(pin.0.as_str(), "918273");
        assert_eq!(format!("{pin:?}"), "Pin(<redacted>)");
    }

    #[test]
    fn empty_or_missing_pin_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        std::fs::write(&path, "").unwrap();
        let err = PinSource::File(path.clone()).read("t").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let err = PinSource::File(dir.path().join("nope"))
            .read("t")
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot read PIN from file"),
            "{err}"
        );
    }
}
