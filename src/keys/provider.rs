//! The HSM provider: the one value through which keys are reached.
//!
//! A process does not reach tokens through globals. [`HsmConfig`] says what may be reached —
//! the PKCS#11 module for URIs that name none, the YubiHSM2 connectors registered by the
//! embedding program (tests register MockHsm devices) — and [`HsmConfig::open`] makes an
//! [`Hsm`]: the loaded modules, the logged-in token sessions and the open YubiHSM2 sessions,
//! all owned by that value. Dropping it logs out of every token, closes every device session
//! and finalizes every module it loaded. A ceremony owns one and drops it when it ends.
//!
//! A rehearsal gets an [`Hsm`] of its own ([`HsmConfig::rehearsal`]) confined to its
//! throwaway SoftHSM2 tokens: a URI naming another module, or a YubiHSM2 over USB or HTTP, is
//! refused by it. A real ceremony's provider never carries the rehearsal's SoftHSM2
//! configuration. And a PKCS#11 module is a library loaded once per process whatever we do,
//! so one provider at a time may have it loaded: a second is refused until the first is dropped
//! (which finalizes it), so neither can use the other's sessions.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::pkcs11::Pkcs11Sessions;
use super::yubihsm::{ConnectorSpec, YubiHsm, YubiHsmBackend, YubiHsmSessions};
use super::{KeyBackend, KeyError, KeyLocation, Pkcs11Token, Signer};

/// The environment variable naming the PKCS#11 module for URIs without `module-path`. Read
/// once, by the command line ([`HsmConfig::from_environment`]); the library never reads it.
pub const MODULE_ENV: &str = "ROOTCELLAR_PKCS11_MODULE";

/// What an [`Hsm`] may reach. Cheap to clone: connectors share their device.
#[derive(Clone, Default)]
pub struct HsmConfig {
    pkcs11_module: Option<PathBuf>,
    connectors: BTreeMap<String, yubihsm::Connector>,
    rehearsal: Option<RehearsalTokens>,
}

/// A rehearsal's throwaway SoftHSM2: its module and the configuration naming its token
/// directory.
#[derive(Clone, Debug)]
pub(crate) struct RehearsalTokens {
    pub(crate) module: PathBuf,
    pub(crate) softhsm_conf: PathBuf,
}

impl std::fmt::Debug for HsmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmConfig")
            .field("pkcs11_module", &self.pkcs11_module)
            .field("connectors", &self.connectors.keys().collect::<Vec<_>>())
            .field("rehearsal", &self.rehearsal)
            .finish()
    }
}

impl HsmConfig {
    /// A configuration with `module` (if any) for PKCS#11 URIs without `module-path`.
    pub fn with_module(module: Option<PathBuf>) -> Self {
        HsmConfig {
            pkcs11_module: module,
            ..Default::default()
        }
    }

    /// The configuration the command line starts from: the module named by
    /// `ROOTCELLAR_PKCS11_MODULE`, if set.
    pub fn from_environment() -> Self {
        Self::with_module(
            std::env::var_os(MODULE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        )
    }

    /// The default PKCS#11 module, if any.
    pub fn pkcs11_module(&self) -> Option<&Path> {
        self.pkcs11_module.as_deref()
    }

    /// Makes `connector` reachable as `yubihsm:connector=NAME;…` through the providers made
    /// from this configuration.
    ///
    /// This is the seam for tests: the library never compiles the `yubihsm` crate's MockHsm,
    /// but a test builds `yubihsm::Connector::mockhsm()` and registers it here. It also lets an
    /// embedding program hand over a connector it configured itself. A name is lowercase
    /// letters, digits and `-` (not `usb` or `http`) and is registered once: replacing the
    /// device behind a name that key URIs already use would silently move keys.
    pub fn register_connector(
        &mut self,
        name: &str,
        connector: yubihsm::Connector,
    ) -> Result<(), KeyError> {
        let refuse = |reason: &str| KeyError::ConnectorRegistration {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        if !super::yubihsm::valid_connector_name(name) {
            return Err(refuse(
                "a name is lowercase letters, digits and '-', starts with a letter, and is not usb or http",
            ));
        }
        if self.connectors.contains_key(name) {
            return Err(refuse("the name is already registered"));
        }
        self.connectors.insert(name.to_string(), connector);
        Ok(())
    }

    /// The configuration of a rehearsal: SoftHSM2 `module` reading `softhsm_conf`, and
    /// nothing else but the registered (in-process, throwaway) YubiHSM2 connectors.
    pub(crate) fn rehearsal(&self, module: &Path, softhsm_conf: &Path) -> Self {
        HsmConfig {
            pkcs11_module: Some(module.to_path_buf()),
            connectors: self.connectors.clone(),
            rehearsal: Some(RehearsalTokens {
                module: module.to_path_buf(),
                softhsm_conf: softhsm_conf.to_path_buf(),
            }),
        }
    }

    /// Whether this is a rehearsal's configuration.
    pub fn is_rehearsal(&self) -> bool {
        self.rehearsal.is_some()
    }

    /// A provider: nothing is loaded or opened until a key is asked for.
    pub fn open(&self) -> Hsm {
        Hsm {
            config: self.clone(),
            pkcs11: Pkcs11Sessions::new(self.rehearsal.is_some()),
            yubihsm: YubiHsmSessions::default(),
        }
    }
}

/// The modules, token sessions and device sessions of one provider. Dropped: all logged out,
/// closed and finalized.
pub struct Hsm {
    config: HsmConfig,
    pkcs11: Pkcs11Sessions,
    yubihsm: YubiHsmSessions,
}

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Hsm {
    /// The configuration this provider was made from.
    pub fn config(&self) -> &HsmConfig {
        &self.config
    }

    /// The backend holding the key (or device) `location` names; logs in on first use.
    pub fn backend(&self, location: &KeyLocation) -> Result<Box<dyn KeyBackend>, KeyError> {
        match location {
            KeyLocation::Pkcs11(uri) => Ok(Box::new(self.pkcs11_token(uri, None)?)),
            KeyLocation::YubiHsm(uri) => Ok(Box::new(YubiHsmBackend::new(
                self.yubihsm_device(uri, None)?,
                uri.clone(),
            ))),
        }
    }

    /// A signer for the key `location` names: the key is found once, here.
    pub fn signer(&self, location: &KeyLocation) -> Result<Arc<dyn Signer>, KeyError> {
        match location {
            KeyLocation::Pkcs11(uri) => self.pkcs11_token(uri, None)?.signer_for(uri),
            KeyLocation::YubiHsm(uri) => {
                YubiHsmBackend::new(self.yubihsm_device(uri, None)?, uri.clone()).signer_for(uri)
            }
        }
    }

    /// The logged-in token `uri` names, its PIN from `pin` or else from the URI's
    /// `pin-source` or the console.
    pub(crate) fn pkcs11_token(
        &self,
        uri: &super::Pkcs11Uri,
        pin: Option<&super::PinSource>,
    ) -> Result<Arc<Pkcs11Token>, KeyError> {
        let module = self.module_for(uri)?;
        let pin_source = match (pin, &uri.pin_source) {
            (Some(given), _) => given.clone(),
            (None, Some(path)) => super::PinSource::File(path.clone()),
            (None, None) => super::PinSource::Prompt,
        };
        self.pkcs11
            .open_token(&module, self.softhsm_conf_for(&module), uri, &pin_source)
    }

    /// The authenticated YubiHSM2 session `uri` names, its password from `password` or else
    /// from the URI's `password-source` or the console.
    pub(crate) fn yubihsm_device(
        &self,
        uri: &super::YubiHsmUri,
        password: Option<&super::yubihsm::PasswordSource>,
    ) -> Result<Arc<YubiHsm>, KeyError> {
        if self.config.rehearsal.is_some() && !matches!(uri.connector, ConnectorSpec::Registered(_))
        {
            return Err(KeyError::OutsideRehearsal {
                what: format!("YubiHSM2 over connector={}", uri.connector),
            });
        }
        let source = password
            .cloned()
            .unwrap_or_else(|| super::yubihsm::PasswordSource::for_uri(uri));
        self.yubihsm.open(&self.config.connectors, uri, &source)
    }

    /// Initialises a new rehearsal token (see `pkcs11::initialize_token`).
    pub(crate) fn initialize_token(
        &self,
        label: &str,
        so_pin: &super::Pin,
        user_pin: &super::Pin,
    ) -> Result<(), KeyError> {
        let Some(rehearsal) = &self.config.rehearsal else {
            return Err(KeyError::OutsideRehearsal {
                what: format!("making token {label:?} (only rehearsal tokens are made)"),
            });
        };
        let ctx = self
            .pkcs11
            .context(&rehearsal.module, Some(&rehearsal.softhsm_conf))?;
        let made =
            super::pkcs11::initialize_token(&ctx, &rehearsal.module, label, so_pin, user_pin);
        self.pkcs11.slots_changed(&rehearsal.module);
        made
    }

    fn module_for(&self, uri: &super::Pkcs11Uri) -> Result<PathBuf, KeyError> {
        let module = match (&uri.module_path, &self.config.pkcs11_module) {
            (Some(path), _) => path.clone(),
            (None, Some(path)) => path.clone(),
            (None, None) => return Err(KeyError::NoModule),
        };
        if let Some(rehearsal) = &self.config.rehearsal {
            if !same_file(&module, &rehearsal.module) {
                return Err(KeyError::OutsideRehearsal {
                    what: format!("PKCS#11 module {}", module.display()),
                });
            }
        }
        Ok(module)
    }

    fn softhsm_conf_for(&self, module: &Path) -> Option<&Path> {
        self.config
            .rehearsal
            .as_ref()
            .filter(|r| same_file(module, &r.module))
            .map(|r| r.softhsm_conf.as_path())
    }
}

impl Drop for Hsm {
    fn drop(&mut self) {
        self.yubihsm.close();
        self.pkcs11.close();
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || canonical(a) == canonical(b)
}

pub(crate) fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The PKCS#11 modules loaded by some provider in this process. A module is a library loaded
/// once per process, with one set of sessions and (for SoftHSM2) one configuration: it belongs
/// to one provider at a time.
pub(crate) fn claim_module(module: &Path) -> Result<ModuleClaim, KeyError> {
    let path = canonical(module);
    let mut claimed = super::pkcs11::lock(claimed());
    if !claimed.insert(path.clone()) {
        return Err(KeyError::ModuleInUse {
            path: module.to_path_buf(),
        });
    }
    Ok(ModuleClaim(path))
}

fn claimed() -> &'static Mutex<HashSet<PathBuf>> {
    static CLAIMED: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    CLAIMED.get_or_init(Default::default)
}

/// A module's claim by one provider; released when dropped (after the module is finalized).
#[derive(Debug)]
pub(crate) struct ModuleClaim(PathBuf);

impl Drop for ModuleClaim {
    fn drop(&mut self) {
        super::pkcs11::lock(claimed()).remove(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOFTHSM_MODULES: [&str; 2] = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ];

    fn softhsm() -> &'static str {
        SOFTHSM_MODULES
            .iter()
            .find(|m| Path::new(m).exists())
            .expect("SoftHSM2 is installed (scripts/install-deps.sh)")
    }

    /// A SoftHSM2 configuration whose token directory is `dir` (no tokens).
    fn softhsm_conf(dir: &Path) -> PathBuf {
        let conf = dir.join("softhsm2.conf");
        std::fs::write(&conf, format!("directories.tokendir = {}\n", dir.display())).unwrap();
        conf
    }

    fn at(uri: &str) -> KeyLocation {
        KeyLocation::parse(uri).unwrap()
    }

    #[test]
    fn a_rehearsal_provider_reaches_nothing_but_its_own_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let conf = softhsm_conf(dir.path());
        let mut config = HsmConfig::with_module(Some("/opt/vendor/real-hsm.so".into()));
        config
            .register_connector("throwaway", yubihsm::Connector::mockhsm())
            .unwrap();
        let rehearsal = config.rehearsal(Path::new(softhsm()), &conf).open();
        assert!(rehearsal.config().is_rehearsal());
        // Another module, named in the URI: refused before anything is loaded.
        let err = rehearsal
            .signer(&at(
                "pkcs11:token=root-ca;object=root-ca?module-path=/opt/vendor/real-hsm.so",
            ))
            .err()
            .unwrap();
        assert!(
            matches!(&err, KeyError::OutsideRehearsal { what } if what.contains("real-hsm.so")),
            "{err}"
        );
        // A YubiHSM2 over USB or HTTP: refused before any connection is tried.
        for uri in [
            "yubihsm:connector=usb;label=root-ca?auth-key=0x0001",
            "yubihsm:connector=http://127.0.0.1:12345;label=root-ca?auth-key=0x0001",
        ] {
            let err = rehearsal.signer(&at(uri)).err().unwrap();
            assert!(
                matches!(err, KeyError::OutsideRehearsal { .. }),
                "{uri}: {err}"
            );
        }
        // Only a rehearsal makes tokens.
        let real = config.open();
        let pin = super::super::Pin::new(zeroize::Zeroizing::new("1234".into()));
        let err = real.initialize_token("x", &pin, &pin).unwrap_err();
        assert!(matches!(err, KeyError::OutsideRehearsal { .. }), "{err}");
    }

    #[test]
    fn a_module_belongs_to_one_provider_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let conf = softhsm_conf(dir.path());
        let config = HsmConfig::default().rehearsal(Path::new(softhsm()), &conf);
        let uri = at("pkcs11:token=absent;object=k");
        let first = config.open();
        // Loads the module (the token is not there).
        let err = first.signer(&uri).err().unwrap();
        assert!(matches!(err, KeyError::TokenNotFound { .. }), "{err}");
        let second = HsmConfig::with_module(Some(softhsm().into())).open();
        let err = second.signer(&uri).err().unwrap();
        assert!(matches!(err, KeyError::ModuleInUse { .. }), "{err}");
        // Dropped, the first gives the module up.
        drop(first);
        let err = second.signer(&uri).err().unwrap();
        assert!(matches!(err, KeyError::TokenNotFound { .. }), "{err}");
    }
}
