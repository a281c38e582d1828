//! Rehearsal tokens: every token a script names is created, once, in a throwaway SoftHSM2 under
//! the state directory, with a random PIN kept in a file beside it (`pins/LABEL.pin`), and the
//! SO PIN `so-` and that PIN (a backup logs in as the security officer). Rehearsals of successive
//! ceremonies (root-init, then an intermediate, then a rotation) share the same tokens.
//!
//! A YubiHSM2 reached over USB or `yubihsm-connector` is rehearsed the same way: its keys move
//! to a SoftHSM2 token named after the device (`yubihsm-SERIAL-auth-0xNNNN`), so that a
//! rehearsal never touches the production device. A YubiHSM2 behind a connector registered in
//! the process (a MockHsm in tests) is already a throwaway device and is used as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{CeremonyError, Script};
use crate::keys::yubihsm::ConnectorSpec;
use crate::keys::{Hsm, HsmConfig, KeyLocation, Pin, Pkcs11Uri};
use zeroize::Zeroizing;

/// Where Debian installs SoftHSM2's PKCS#11 module.
const SOFTHSM_MODULES: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];

/// The module rehearsal tokens are made in: SoftHSM2's. With the `test-hooks` feature,
/// `ROOTCELLAR_TEST_REHEARSAL_MODULE` names another (a shim in front of SoftHSM2 that counts
/// the calls made, `tests/softhsm/call_counts.rs`).
fn rehearsal_module() -> Option<PathBuf> {
    #[cfg(feature = "test-hooks")]
    if let Some(module) = std::env::var_os("ROOTCELLAR_TEST_REHEARSAL_MODULE") {
        return Some(PathBuf::from(module));
    }
    SOFTHSM_MODULES
        .iter()
        .map(PathBuf::from)
        .find(|m| m.exists())
}

/// A rehearsal's tokens, made and ready: the provider that reaches them (and nothing else),
/// each token's PIN file, and what was repaired in them before this run.
pub struct RehearsalTokens {
    /// The rehearsal's own provider ([`HsmConfig::rehearsal`]): dropped when the rehearsal
    /// ends, with every session it opened.
    pub hsm: Hsm,
    /// Each token's PIN file, by token label.
    pub pin_files: BTreeMap<String, PathBuf>,
    /// What was repaired in the rehearsal tokens before this run, for the operator.
    pub repairs: Vec<String>,
}

/// SoftHSM2 rewrites a token's `token.object` in place (on a PIN change, for one), and a kill
/// in the middle leaves it empty: the token then shows no label, and its keys are out of
/// reach. Before each run every rehearsal token's `token.object` is copied aside (written whole,
/// then renamed); one found empty or cut short is put back from that copy, and said. Only a
/// PIN change of this run's unfinished step is undone by it, and that step is redone.
///
/// A token that was being made when a run was killed (its PIN is still only in `PIN.new`, and
/// it has no copy yet: [`make_token`] copies a token the moment it is made) is removed, and made
/// again from the recorded PIN: SoftHSM2 writes the label before the PINs, so a kill inside
/// `C_InitToken` leaves a token nobody can open. No key can be on it.
///
/// (Real tokens are never touched: a damaged one is the operator's to report, with the vendor's
/// tools.)
fn repair_token_files(tokens: &Path, pins: &Path) -> std::io::Result<Vec<String>> {
    let names: Vec<String> = std::fs::read_dir(pins)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let made: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".pin"))
        .collect();
    let pending: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".pin.new"))
        .filter(|label| !made.contains(label))
        .collect();
    // As SoftHSM2 stores a label: the 32-byte, blank-padded PKCS#11 label field.
    let holds_label = |bytes: &[u8], label: &str| {
        let field: String = format!("{label:<32}").chars().take(32).collect();
        bytes.windows(field.len()).any(|w| w == field.as_bytes())
    };
    let mut repairs = Vec::new();
    for entry in std::fs::read_dir(tokens)? {
        let dir = entry?.path();
        let token = dir.join("token.object");
        let copy = dir.join("token.object.copy");
        let size = std::fs::metadata(&token).map(|m| m.len()).unwrap_or(0);
        let copy_size = std::fs::metadata(&copy).map(|m| m.len()).unwrap_or(0);
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if copy_size > 0 && size < copy_size {
            std::fs::copy(&copy, &token)?;
            std::fs::File::open(&token)?.sync_all()?;
            repairs.push(format!(
                "rehearsal token {name}: SoftHSM2 left its token.object {size} bytes long (killed \
                 while writing it); put back from the copy made before the last run"
            ));
        } else if copy_size == 0 && !pending.is_empty() {
            // Without a copy, and not a token made before (whose label it would hold): the
            // one being made, however far SoftHSM2 got in writing it.
            let bytes = std::fs::read(&token).unwrap_or_default();
            let unfinished = bytes.is_empty()
                || pending.iter().any(|label| holds_label(&bytes, label))
                || !made.iter().any(|label| holds_label(&bytes, label));
            if unfinished {
                std::fs::remove_dir_all(&dir)?;
                repairs.push(format!(
                    "rehearsal token {name}: being made when the last run was killed; removed, \
                     to be made again with the PIN recorded for it"
                ));
            }
        }
    }
    copy_token_files(tokens)?;
    Ok(repairs)
}

/// Copies every rehearsal token's `token.object` aside (see [`repair_token_files`]).
fn copy_token_files(tokens: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(tokens)? {
        let dir = entry?.path();
        let token = dir.join("token.object");
        if std::fs::metadata(&token).map(|m| m.len()).unwrap_or(0) > 0 {
            let temp = dir.join("token.object.copy.tmp");
            std::fs::copy(&token, &temp)?;
            std::fs::File::open(&temp)?.sync_all()?;
            std::fs::rename(&temp, dir.join("token.object.copy"))?;
        }
    }
    Ok(())
}

/// A rehearsal token's security officer PIN: `so-` and its first user PIN (the one in its PIN
/// file, which a split replaces on the token but not in the file).
fn so_pin_for(user_pin: &Pin) -> Pin {
    Pin::new(Zeroizing::new(format!("so-{}", user_pin.expose())))
}

/// The SO PIN of the rehearsal token whose PIN file is `pin_file`.
pub(super) fn so_pin(pin_file: &Path) -> Result<Pin, CeremonyError> {
    let unreadable = |e: std::io::Error| CeremonyError::State {
        path: pin_file.to_path_buf(),
        reason: e.to_string(),
    };
    let text = Zeroizing::new(std::fs::read_to_string(pin_file).map_err(unreadable)?);
    let user_pin = Pin::new(Zeroizing::new(text.trim().to_string()));
    Ok(so_pin_for(&user_pin))
}

/// Makes rehearsal token `label`, intent before effect: its PIN is chosen and written to
/// `PIN_FILE.new` before the token exists, and renamed to `pin_file` once the token is made.
/// A run killed in between finds the `.new` file and finishes (or adopts) the token with the
/// PIN it recorded, instead of meeting a token whose PIN nobody knows.
/// The new token's `token.object` is copied aside at once (see [`repair_token_files`]).
fn make_token(hsm: &Hsm, tokens: &Path, label: &str, pin_file: &Path) -> Result<(), CeremonyError> {
    let intended = pin_file.with_extension("pin.new");
    let pin = match std::fs::read_to_string(&intended) {
        Ok(text) => Pin::new(Zeroizing::new(text.trim().to_string())),
        Err(_) => {
            let mut bytes = [0u8; 8];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
            let pin = Pin::new(Zeroizing::new(hex::encode(bytes)));
            // An unfinished write (no PIN in it) is replaced: the token was not made from it.
            let _ = std::fs::remove_file(&intended);
            crate::files::write_new(&intended, pin.expose().as_bytes())?;
            pin
        }
    };
    let so_pin = so_pin_for(&pin);
    hsm.initialize_token(label, &so_pin, &pin)?;
    super::progress::crash_point("rehearsal", format_args!("made-token-{label}"));
    let state = |e: std::io::Error| CeremonyError::State {
        path: tokens.to_path_buf(),
        reason: e.to_string(),
    };
    copy_token_files(tokens).map_err(state)?;
    let done = std::fs::rename(&intended, pin_file).and_then(|()| match pin_file.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    });
    done.map_err(|e| CeremonyError::State {
        path: pin_file.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Creates the script's tokens if needed, and a provider confined to them (made from
/// `config`, whose registered YubiHSM2 connectors it keeps: those are throwaway devices too).
/// The script's keys are pointed at the rehearsal tokens. Nothing of the process changes: the
/// SoftHSM2 configuration is the provider's.
pub fn prepare_tokens(
    state: &Path,
    script: &mut Script,
    config: &HsmConfig,
) -> Result<RehearsalTokens, CeremonyError> {
    // Absolute paths: the configuration outlives this process and its working directory.
    let state = std::path::absolute(state).unwrap_or_else(|_| state.to_path_buf());
    let dir = state.join("rehearsal");
    let fail = |reason: String| CeremonyError::State {
        path: dir.clone(),
        reason,
    };
    let module = rehearsal_module()
        .ok_or_else(|| fail("SoftHSM2 is not installed (apt-get install softhsm2)".into()))?;
    let tokens = dir.join("tokens");
    let pins = dir.join("pins");
    for d in [&tokens, &pins] {
        std::fs::create_dir_all(d).map_err(|e| fail(e.to_string()))?;
    }
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .map_err(|e| fail(e.to_string()))?;
    let repairs = repair_token_files(&tokens, &pins).map_err(|e| fail(e.to_string()))?;
    let hsm = config.rehearsal(&module, &conf).open();
    let mut files = BTreeMap::new();
    for spec in script.keys.values_mut() {
        let location = KeyLocation::parse(&spec.uri)?;
        let label = match &location {
            KeyLocation::YubiHsm(uri) if matches!(uri.connector, ConnectorSpec::Registered(_)) => {
                continue
            }
            KeyLocation::YubiHsm(uri) => {
                spec.uri = Pkcs11Uri {
                    token: Some(location.device()),
                    object: uri.label.clone(),
                    ..Default::default()
                }
                .to_string();
                location.device()
            }
            // The same token label, in the rehearsal's SoftHSM2: a module the script names is
            // the real one, and not the rehearsal's to reach.
            KeyLocation::Pkcs11(uri) => {
                spec.uri = Pkcs11Uri {
                    module_path: None,
                    pin_source: None,
                    ..uri.clone()
                }
                .to_string();
                uri.token_label().to_string()
            }
        };
        let pin_file = pins.join(format!("{label}.pin"));
        if !pin_file.exists() {
            make_token(&hsm, &tokens, &label, &pin_file)?;
        }
        files.insert(label, pin_file);
    }
    Ok(RehearsalTokens {
        hsm,
        pin_files: files,
        repairs,
    })
}
