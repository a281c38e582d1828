//! The PKCS#11 backend (`cryptoki`): SoftHSM2, YubiHSM2's PKCS#11 module, OpenSC, vendor HSMs.
//!
//! A module is loaded and initialised once per provider ([`crate::keys::Hsm`]), and each token
//! is logged in to once: a second login attempt after a wrong PIN would spend another of the
//! few tries a token allows.

mod generate;
mod signer;

use crate::test_hooks::around_token_change;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::capabilities::{EcdsaSigning, TokenCapabilities};
use super::provider::ModuleClaim;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Slot, TokenInfo};
use rand::RngCore;

use super::{
    Enforcement, IntentOutcome, KeyAlgorithm, KeyBackend, KeyError, KeyInfo, KeyIntent,
    KeyLocation, PinSource, Pkcs11Uri, PublicKey, Signer,
};

/// The protection attributes of a private key, as the token reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyProtection {
    /// `CKA_TOKEN`: persistent on the token.
    pub token: bool,
    /// `CKA_SENSITIVE`: the value can never be read in the clear.
    pub sensitive: bool,
    /// `CKA_ALWAYS_SENSITIVE`: it has been sensitive since generation.
    pub always_sensitive: bool,
    /// `CKA_EXTRACTABLE`: it can be wrapped out of the token.
    pub extractable: bool,
    /// `CKA_NEVER_EXTRACTABLE`: it has never been extractable.
    pub never_extractable: bool,
    /// `CKA_SIGN`.
    pub sign: bool,
    /// `CKA_DECRYPT`.
    pub decrypt: bool,
    /// `CKA_UNWRAP`.
    pub unwrap: bool,
    /// `CKA_DERIVE`.
    pub derive: bool,
    /// `CKA_MODIFIABLE`: its attributes can still be changed (`C_SetAttributeValue`), e.g.
    /// `CKA_DERIVE` or `CKA_DECRYPT` turned on.
    pub modifiable: bool,
    /// `CKA_COPYABLE`: `C_CopyObject` may copy it, with other attributes.
    pub copyable: bool,
    /// `CKA_WRAP_WITH_TRUSTED`: only a wrapping key marked `CKA_TRUSTED` (which only the
    /// token's security officer can set) may wrap it.
    pub wrap_with_trusted: bool,
}

impl KeyProtection {
    /// True when the key is what rootcellar requires of a root key: persistent, sensitive since
    /// birth, never extractable, usable for signing only, and fixed so (not modifiable, not
    /// copyable).
    pub fn is_hardened(&self) -> bool {
        self.token
            && !self.modifiable
            && !self.copyable
            && self.sensitive
            && self.always_sensitive
            && !self.extractable
            && self.never_extractable
            && self.sign
            && !self.decrypt
            && !self.unwrap
            && !self.derive
    }

    /// One line for operators.
    pub fn summary(&self) -> String {
        let flag = |on: bool, name: &str| {
            if on {
                name.to_string()
            } else {
                format!("!{name}")
            }
        };
        [
            flag(self.token, "token"),
            flag(self.sensitive, "sensitive"),
            flag(self.always_sensitive, "always-sensitive"),
            flag(self.extractable, "extractable"),
            flag(self.never_extractable, "never-extractable"),
            flag(self.sign, "sign"),
            flag(self.decrypt, "decrypt"),
            flag(self.unwrap, "unwrap"),
            flag(self.derive, "derive"),
            flag(self.modifiable, "modifiable"),
            flag(self.copyable, "copyable"),
            flag(self.wrap_with_trusted, "wrap-with-trusted"),
        ]
        .join(" ")
    }
}

/// A logged-in session on one PKCS#11 token.
pub struct Pkcs11Token {
    label: String,
    /// The URI the token was opened with, minus any key attributes: the base for key URIs.
    token_uri: Pkcs11Uri,
    /// `Session` is `Send` but not `Sync`; signers on several threads share it through the lock.
    session: Mutex<Session>,
    /// What the token offers and what it is, read at login.
    capabilities: TokenCapabilities,
    /// The keys found for signers, by the (label, id) a URI names them with: found and read
    /// once while the token's objects stay as this session left them. Whatever changes them
    /// here (a generation, a removal, the session handed out) forgets them all.
    found: Mutex<HashMap<KeyName, FoundKey>>,
    /// The token's objects as last listed, kept (like `found`) until this session changes
    /// them: a generation right after [`Pkcs11Token::halves`] listed them (a recorded intent
    /// found absent) checks its label and id against that listing rather than search again.
    listing: Mutex<Option<Arc<Listing>>>,
}

/// Every object on a token, each read once: what one search tells of the token.
struct Listing(Vec<ListedObject>);

/// One object of a [`Listing`].
struct ListedObject {
    handle: ObjectHandle,
    class: Option<ObjectClass>,
    label: Vec<u8>,
    id: Vec<u8>,
}

impl Listing {
    fn has_label(&self, label: &[u8]) -> bool {
        self.0.iter().any(|o| o.label == label)
    }

    fn has_id(&self, id: &[u8]) -> bool {
        self.0.iter().any(|o| o.id == id)
    }
}

/// A key as a URI names it: `object=` and `id=`.
type KeyName = (Option<String>, Option<Vec<u8>>);

/// A private key found and read for signing.
#[derive(Clone)]
struct FoundKey {
    handle: ObjectHandle,
    public_key: PublicKey,
    key_uri: String,
}

type TokenKey = (PathBuf, String, Option<String>);

/// One provider's loaded modules and logged-in tokens (see [`crate::keys::Hsm`]).
#[derive(Default)]
pub(crate) struct Pkcs11Sessions {
    contexts: Mutex<HashMap<PathBuf, (Pkcs11, ModuleClaim)>>,
    tokens: Mutex<HashMap<TokenKey, Arc<Pkcs11Token>>>,
    /// Each module's slots with a token, and what each token said of itself
    /// (`C_GetSlotList`, `C_GetTokenInfo`), kept when `keep_slot_lists`: read once for all the
    /// tokens a provider logs in to, and again after it makes a token.
    slots: Mutex<HashMap<PathBuf, Vec<(Slot, TokenInfo)>>>,
    /// Whether slot lists are kept: only in a rehearsal, whose throwaway SoftHSM2 no one else
    /// changes. Elsewhere a token may be plugged in, pulled out or swapped between two log-ins,
    /// and each log-in reads the slots again (a second token with the same label is refused).
    keep_slot_lists: bool,
}

impl Pkcs11Sessions {
    /// No module loaded yet; slot lists kept between log-ins when `keep_slot_lists`.
    pub(crate) fn new(keep_slot_lists: bool) -> Self {
        Pkcs11Sessions {
            keep_slot_lists,
            ..Default::default()
        }
    }

    /// The module at `module`, loaded and initialised on first use. `softhsm_conf` is the
    /// SoftHSM2 configuration it must read (a rehearsal's): SoftHSM2 takes it only from the
    /// `SOFTHSM2_CONF` environment variable, and only in `C_Initialize`, so it is set for that
    /// call alone and put back at once.
    pub(crate) fn context(
        &self,
        module: &Path,
        softhsm_conf: Option<&Path>,
    ) -> Result<Pkcs11, KeyError> {
        let mut contexts = lock(&self.contexts);
        if let Some((ctx, _)) = contexts.get(module) {
            return Ok(ctx.clone());
        }
        let claim = super::provider::claim_module(module)?;
        let load_error = |reason: String| KeyError::ModuleLoad {
            path: module.to_path_buf(),
            reason,
        };
        let ctx = Pkcs11::new(module).map_err(|e| load_error(e.to_string()))?;
        let initialized = with_softhsm_conf(softhsm_conf, || {
            ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        });
        match initialized {
            Ok(()) => {}
            // Loaded by something else in the process than a provider (its owner keeps it).
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {
                return Err(KeyError::ModuleInUse {
                    path: module.to_path_buf(),
                })
            }
            Err(e) => return Err(load_error(e.to_string())),
        }
        contexts.insert(module.to_path_buf(), (ctx.clone(), claim));
        Ok(ctx)
    }

    /// Opens (or reuses) a logged-in session on the token `uri` names in `module`.
    pub(crate) fn open_token(
        &self,
        module: &Path,
        softhsm_conf: Option<&Path>,
        uri: &Pkcs11Uri,
        pin_source: &PinSource,
    ) -> Result<Arc<Pkcs11Token>, KeyError> {
        let key = (
            module.to_path_buf(),
            uri.token_label().to_string(),
            uri.serial.clone(),
        );
        if let Some(token) = lock(&self.tokens).get(&key) {
            return Ok(token.clone());
        }
        let ctx = self.context(module, softhsm_conf)?;
        let (slot, info) = self.find_slot(&ctx, uri, module)?;
        let token = Pkcs11Token::log_in(&ctx, slot, &info, module, uri, pin_source)?;
        lock(&self.tokens).insert(key, token.clone());
        Ok(token)
    }

    /// The one slot holding the token `uri` names, from the module's slots as last read.
    fn find_slot(
        &self,
        ctx: &Pkcs11,
        uri: &Pkcs11Uri,
        module: &Path,
    ) -> Result<(Slot, TokenInfo), KeyError> {
        if !self.keep_slot_lists {
            return find_slot(&read_slots(ctx)?, uri, module);
        }
        let mut slots = lock(&self.slots);
        let listed = match slots.entry(module.to_path_buf()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(read_slots(ctx)?),
        };
        find_slot(listed, uri, module)
    }

    /// Forgets the slots read from `module`: a token was made there.
    pub(crate) fn slots_changed(&self, module: &Path) {
        lock(&self.slots).remove(module);
    }

    /// Closes every session (a token is logged out when its last session closes), then
    /// finalizes every module and gives up its claim.
    pub(crate) fn close(&self) {
        lock(&self.tokens).clear();
        lock(&self.slots).clear();
        let contexts: Vec<_> = lock(&self.contexts).drain().map(|(_, c)| c).collect();
        for (ctx, claim) in contexts {
            // Already finalized: nothing to undo.
            let _ = ctx.finalize();
            drop(claim);
        }
    }
}

/// Runs `f` with `SOFTHSM2_CONF` set to `conf` (when given), then puts the variable back.
fn with_softhsm_conf<T>(conf: Option<&Path>, f: impl FnOnce() -> T) -> T {
    const VAR: &str = "SOFTHSM2_CONF";
    let Some(conf) = conf else {
        return f();
    };
    let saved = std::env::var_os(VAR);
    std::env::set_var(VAR, conf);
    let result = f();
    match saved {
        Some(value) => std::env::set_var(VAR, value),
        None => std::env::remove_var(VAR),
    }
    result
}

fn ck(operation: &'static str) -> impl FnOnce(CkError) -> KeyError {
    move |source| KeyError::Pkcs11 { operation, source }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a PKCS#11 session half-updated in our memory,
    // so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Initialises a new token labelled `label` in the module's free slot (`C_InitToken`), with
/// `so_pin` for its security officer and `user_pin` for its user (`C_InitPIN`). For rehearsal
/// tokens in SoftHSM2, which always offers one free slot: the PINs stay in this process, where
/// `softhsm2-util` would take them on its command line.
pub(crate) fn initialize_token(
    ctx: &Pkcs11,
    module: &Path,
    label: &str,
    so_pin: &super::Pin,
    user_pin: &super::Pin,
) -> Result<(), KeyError> {
    let refused = |reason: &str| KeyError::TokenInit {
        label: label.to_string(),
        reason: format!("{reason} (module {})", module.display()),
    };
    let mut free = None;
    let mut existing = None;
    for slot in ctx.get_all_slots().map_err(ck("C_GetSlotList"))? {
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        if info.label().trim_end() == label && info.token_initialized() {
            existing = Some(slot);
        }
        if free.is_none() && !info.token_initialized() {
            free = Some(slot);
        }
    }
    // A token with this label, made by an earlier run that was cut short (the PINs were
    // recorded before it was made): opened by the intended user PIN, it is adopted; opened by
    // the intended SO PIN, its user PIN is set now. Otherwise it is someone else's.
    if let Some(slot) = existing {
        let session = ctx.open_rw_session(slot).map_err(ck("C_OpenSession"))?;
        if session
            .login(UserType::User, Some(&user_pin.to_auth_pin()))
            .is_ok()
        {
            session.logout().map_err(ck("C_Logout"))?;
            return Ok(());
        }
        if session
            .login(UserType::So, Some(&so_pin.to_auth_pin()))
            .is_err()
        {
            return Err(refused(
                "a token with this label exists already, and the PINs recorded for it do not open it",
            ));
        }
        session
            .init_pin(&user_pin.to_auth_pin())
            .map_err(ck("C_InitPIN"))?;
        session.logout().map_err(ck("C_Logout"))?;
        return Ok(());
    }
    let slot = free.ok_or_else(|| refused("the module offers no free slot"))?;
    around_token_change("C_InitToken", label, || {
        ctx.init_token(slot, &so_pin.to_auth_pin(), label)
    })
    .map_err(ck("C_InitToken"))?;
    let session = ctx.open_rw_session(slot).map_err(ck("C_OpenSession"))?;
    session
        .login(UserType::So, Some(&so_pin.to_auth_pin()))
        .map_err(ck("C_Login"))?;
    around_token_change("C_InitPIN", label, || {
        session.init_pin(&user_pin.to_auth_pin())
    })
    .map_err(ck("C_InitPIN"))?;
    session.logout().map_err(ck("C_Logout"))?;
    Ok(())
}

/// The module's slots with a token, each with what its token says of itself.
fn read_slots(ctx: &Pkcs11) -> Result<Vec<(Slot, TokenInfo)>, KeyError> {
    ctx.get_slots_with_token()
        .map_err(ck("C_GetSlotList"))?
        .into_iter()
        .map(|slot| {
            let info = ctx.get_token_info(slot).map_err(ck("C_GetTokenInfo"))?;
            Ok((slot, info))
        })
        .collect()
}

fn find_slot(
    slots: &[(Slot, TokenInfo)],
    uri: &Pkcs11Uri,
    module: &Path,
) -> Result<(Slot, TokenInfo), KeyError> {
    let label = uri.token_label();
    let mut present = Vec::new();
    let mut matches = Vec::new();
    for (slot, info) in slots {
        let this_label = info.label().trim_end().to_string();
        let serial_ok = uri
            .serial
            .as_deref()
            .is_none_or(|s| info.serial_number().trim_end() == s);
        if this_label == label && serial_ok {
            matches.push((*slot, info.clone()));
        }
        present.push(format!("{this_label:?}"));
    }
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(KeyError::TokenNotFound {
            label: label.to_string(),
            module: module.to_path_buf(),
            present: if present.is_empty() {
                "none".into()
            } else {
                present.join(", ")
            },
        }),
        count => Err(KeyError::AmbiguousToken {
            label: label.to_string(),
            count,
        }),
    }
}

impl Pkcs11Token {
    /// Logs in to the token `uri` names, in `slot` (`info` its `C_GetTokenInfo`) of the
    /// initialised module `ctx` (through
    /// [`crate::keys::Hsm`], which keeps the session for later uses).
    fn log_in(
        ctx: &Pkcs11,
        slot: Slot,
        info: &TokenInfo,
        module: &Path,
        uri: &Pkcs11Uri,
        pin_source: &PinSource,
    ) -> Result<Arc<Self>, KeyError> {
        let capabilities = TokenCapabilities::read(ctx, slot, info);
        let session = ctx.open_rw_session(slot).map_err(ck("C_OpenSession"))?;
        let label = uri.token_label().to_string();
        let pin = pin_source.read(&label)?;
        match session.login(UserType::User, Some(&pin.to_auth_pin())) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                return Err(KeyError::WrongPin { token: label })
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(KeyError::PinLocked { token: label })
            }
            Err(e) => return Err(ck("C_Login")(e)),
        }
        let token_uri = Pkcs11Uri {
            object: None,
            id: None,
            module_path: Some(module.to_path_buf()),
            ..uri.clone()
        };
        Ok(Arc::new(Pkcs11Token {
            label,
            token_uri,
            session: Mutex::new(session),
            capabilities,
            found: Mutex::new(HashMap::new()),
            listing: Mutex::new(None),
        }))
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The device, as the token describes itself (`C_GetTokenInfo` at login).
    pub fn device(&self) -> &super::DeviceInfo {
        &self.capabilities.device
    }

    /// Changes the user PIN (`C_SetPIN`) of this logged-in token from `old` to `new`. The
    /// session stays logged in. A wrong `old` PIN is reported as such.
    pub fn change_pin(&self, old: &super::Pin, new: &super::Pin) -> Result<(), KeyError> {
        let changed = around_token_change("C_SetPIN", &self.label, || {
            lock(&self.session).set_pin(&old.to_auth_pin(), &new.to_auth_pin())
        });
        match changed {
            Ok(()) => Ok(()),
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(KeyError::WrongPin {
                token: self.label.clone(),
            }),
            Err(e) => Err(ck("C_SetPIN")(e)),
        }
    }

    fn find(&self, template: &[Attribute]) -> Result<Vec<ObjectHandle>, KeyError> {
        lock(&self.session)
            .find_objects(template)
            .map_err(ck("C_FindObjects"))
    }

    /// The attributes `kinds` of object `handle` that the token gives, in one
    /// `C_GetAttributeValue` (two when some are of variable length: their sizes, then them).
    /// SoftHSM2 reads the object's file again on every call: an operation asks once for all it
    /// needs of an object.
    fn read(
        &self,
        handle: ObjectHandle,
        kinds: &[AttributeType],
    ) -> Result<Vec<Attribute>, KeyError> {
        lock(&self.session)
            .get_attributes(handle, kinds)
            .map_err(ck("C_GetAttributeValue"))
    }

    /// The public half `public`'s curve and point, in one read.
    fn public_half(&self, public: ObjectHandle) -> Result<PublicHalf, KeyError> {
        let attrs = self.read(public, &[AttributeType::EcParams, AttributeType::EcPoint])?;
        Ok(PublicHalf {
            params: bytes_of(&attrs, AttributeType::EcParams).unwrap_or_default(),
            point: bytes_of(&attrs, AttributeType::EcPoint).unwrap_or_default(),
        })
    }

    /// The private half `private`'s label, id, curve and protection, in one read.
    fn private_half(&self, private: ObjectHandle) -> Result<PrivateHalf, KeyError> {
        let mut kinds = vec![
            AttributeType::Label,
            AttributeType::Id,
            AttributeType::EcParams,
        ];
        kinds.extend(PROTECTION_ATTRIBUTES);
        let attrs = self.read(private, &kinds)?;
        Ok(PrivateHalf {
            label: String::from_utf8_lossy(
                &bytes_of(&attrs, AttributeType::Label).unwrap_or_default(),
            )
            .into_owned(),
            id: bytes_of(&attrs, AttributeType::Id).unwrap_or_default(),
            params: bytes_of(&attrs, AttributeType::EcParams),
            protection: protection_of(&attrs),
        })
    }

    /// The logged-in session, locked, for a change to the token's objects: the keys found
    /// for signers are looked for again afterwards.
    pub(super) fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        let session = lock(&self.session);
        self.objects_changing();
        session
    }

    /// Forgets the keys found for signers and the listing: the token's objects are changing.
    fn objects_changing(&self) {
        lock(&self.found).clear();
        *lock(&self.listing) = None;
    }

    /// Lists every object on the token (one search), each read once for its class, label and
    /// id, and keeps the listing until the token's objects change.
    fn list_objects(&self) -> Result<Arc<Listing>, KeyError> {
        let mut objects = Vec::new();
        for handle in self.find(&[])? {
            let attrs = self.read(
                handle,
                &[
                    AttributeType::Class,
                    AttributeType::Label,
                    AttributeType::Id,
                ],
            )?;
            objects.push(ListedObject {
                handle,
                class: attrs.iter().find_map(|a| match a {
                    Attribute::Class(class) => Some(*class),
                    _ => None,
                }),
                label: bytes_of(&attrs, AttributeType::Label).unwrap_or_default(),
                id: bytes_of(&attrs, AttributeType::Id).unwrap_or_default(),
            });
        }
        let listing = Arc::new(Listing(objects));
        *lock(&self.listing) = Some(listing.clone());
        Ok(listing)
    }

    /// The listing kept since the token's objects last changed, or a new one.
    fn current_listing(&self) -> Result<Arc<Listing>, KeyError> {
        let kept = lock(&self.listing).clone();
        match kept {
            Some(listing) => Ok(listing),
            None => self.list_objects(),
        }
    }

    pub(super) fn public_key_for_id(&self, id: &[u8]) -> Result<PublicKey, KeyError> {
        let handles = self.find(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(id.to_vec()),
        ])?;
        let [handle] = handles[..] else {
            return Err(KeyError::Malformed(format!(
                "expected one public key with CKA_ID {}, found {}",
                hex::encode(id),
                handles.len()
            )));
        };
        self.public_half(handle)?.public_key()
    }

    /// The key whose private half is `handle`: its public half found by id.
    fn key_info(&self, handle: ObjectHandle) -> Result<(KeyInfo, Vec<u8>), KeyError> {
        let private = self.private_half(handle)?;
        let public_key = self.public_key_for_id(&private.id)?;
        Ok(self.info_of(private, public_key))
    }

    /// What [`Self::key_info`] says, from halves already read.
    fn info_of(&self, private: PrivateHalf, public_key: PublicKey) -> (KeyInfo, Vec<u8>) {
        let info = KeyInfo {
            uri: self
                .token_uri
                .for_key(&private.label, &private.id)
                .to_string(),
            label: private.label,
            public_key,
            protection: Some(private.protection),
            enforcement: None,
        };
        (info, private.id)
    }

    /// Finds the one private key `uri` names, by label and/or id.
    fn find_private_key(&self, parsed: &Pkcs11Uri) -> Result<ObjectHandle, KeyError> {
        if parsed.object.is_none() && parsed.id.is_none() {
            return Err(KeyError::InvalidUri {
                uri: parsed.without_query().to_string(),
                reason: "names no key: add object=LABEL and/or id=…".into(),
            });
        }
        let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
        if let Some(label) = &parsed.object {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = &parsed.id {
            template.push(Attribute::Id(id.clone()));
        }
        let handles = self.find(&template)?;
        match handles[..] {
            [handle] => Ok(handle),
            [] => Err(KeyError::KeyNotFound {
                uri: parsed.without_query().to_string(),
                token: self.label.clone(),
            }),
            _ => Err(KeyError::AmbiguousKey {
                uri: parsed.without_query().to_string(),
                count: handles.len(),
            }),
        }
    }
}

/// `CKA_EC_POINT` is specified as a DER OCTET STRING around the point, but some modules return
/// the bare point. A wrapped point is `04 len 04 x y` with `len` the rest's length.
fn unwrap_octet_string(value: &[u8]) -> &[u8] {
    match value {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
        _ => value,
    }
}

/// The attributes [`KeyProtection`] is made of.
const PROTECTION_ATTRIBUTES: [AttributeType; 12] = [
    AttributeType::Token,
    AttributeType::Sensitive,
    AttributeType::AlwaysSensitive,
    AttributeType::Extractable,
    AttributeType::NeverExtractable,
    AttributeType::Sign,
    AttributeType::Decrypt,
    AttributeType::Unwrap,
    AttributeType::Derive,
    AttributeType::Modifiable,
    AttributeType::Copyable,
    AttributeType::WrapWithTrusted,
];

/// The protection `attrs` (read with [`PROTECTION_ATTRIBUTES`]) give.
fn protection_of(attrs: &[Attribute]) -> KeyProtection {
    // A token that does not report CKA_MODIFIABLE or CKA_COPYABLE is taken at the
    // standard's default (true): nothing says it refuses.
    let mut p = KeyProtection {
        modifiable: true,
        copyable: true,
        ..KeyProtection::default()
    };
    for attr in attrs {
        match *attr {
            Attribute::Token(v) => p.token = v,
            Attribute::Sensitive(v) => p.sensitive = v,
            Attribute::AlwaysSensitive(v) => p.always_sensitive = v,
            Attribute::Extractable(v) => p.extractable = v,
            Attribute::NeverExtractable(v) => p.never_extractable = v,
            Attribute::Sign(v) => p.sign = v,
            Attribute::Decrypt(v) => p.decrypt = v,
            Attribute::Unwrap(v) => p.unwrap = v,
            Attribute::Derive(v) => p.derive = v,
            Attribute::Modifiable(v) => p.modifiable = v,
            Attribute::Copyable(v) => p.copyable = v,
            Attribute::WrapWithTrusted(v) => p.wrap_with_trusted = v,
            _ => {}
        }
    }
    p
}

/// The byte string attribute `kind` among `attrs`, when the token gave it.
fn bytes_of(attrs: &[Attribute], kind: AttributeType) -> Option<Vec<u8>> {
    attrs.iter().find_map(|a| match a {
        Attribute::Label(v) | Attribute::Id(v) | Attribute::EcParams(v) | Attribute::EcPoint(v)
            if a.attribute_type() == kind =>
        {
            Some(v.clone())
        }
        _ => None,
    })
}

/// A public key object, as read.
struct PublicHalf {
    params: Vec<u8>,
    point: Vec<u8>,
}

impl PublicHalf {
    /// Whether it holds its key (see [`Pkcs11Token::whole_pair`]).
    fn holds_key(&self) -> bool {
        !self.params.is_empty() && !self.point.is_empty()
    }

    fn public_key(&self) -> Result<PublicKey, KeyError> {
        let algorithm = KeyAlgorithm::from_ec_params(&self.params)?;
        PublicKey::from_point(algorithm, unwrap_octet_string(&self.point))
    }
}

/// A private key object, as read.
struct PrivateHalf {
    label: String,
    id: Vec<u8>,
    /// `CKA_EC_PARAMS`, when the token shows it.
    params: Option<Vec<u8>>,
    protection: KeyProtection,
}

impl PrivateHalf {
    /// Whether it holds its key, as far as can be told: its curve (`CKA_EC_PARAMS`, set with
    /// the sensitive `CKA_VALUE`) is not empty. A token that does not show a private key's
    /// curve at all is taken at its word.
    fn holds_key(&self) -> bool {
        self.params.as_ref().is_none_or(|p| !p.is_empty())
    }
}

/// What a token holds for an intended key id.
struct Halves {
    public: Vec<ObjectHandle>,
    private: Vec<ObjectHandle>,
    anonymous: Vec<ObjectHandle>,
}

impl KeyBackend for Arc<Pkcs11Token> {
    fn generate(&self, label: &str, algorithm: KeyAlgorithm) -> Result<KeyInfo, KeyError> {
        self.generate_key(label, algorithm, false, None)
    }

    fn generate_for_backup(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<KeyInfo, KeyError> {
        self.generate_key(label, algorithm, true, None)
    }

    fn ensure_label_free(&self, label: &str) -> Result<(), KeyError> {
        self.check_label_free(label)
    }

    fn enforcement(&self) -> Result<Option<Enforcement>, KeyError> {
        self.probe_enforcement().map(Some)
    }

    fn device_info(&self) -> Result<Option<super::DeviceInfo>, KeyError> {
        Ok(Some(self.capabilities.device.clone()))
    }

    fn generate_intended(&self, intent: &KeyIntent) -> Result<KeyInfo, KeyError> {
        self.generate_key(
            &intent.label,
            intent.algorithm()?,
            intent.for_backup,
            Some(intent.id_bytes()),
        )
    }

    fn find_intended(&self, intent: &KeyIntent) -> Result<IntentOutcome, KeyError> {
        let halves = self.halves(&intent.id_bytes())?;
        match (&halves.public[..], &halves.private[..]) {
            ([], []) if halves.anonymous.is_empty() => Ok(IntentOutcome::Absent),
            ([public], [private]) if halves.anonymous.is_empty() => {
                match self.whole_pair(*public, *private)? {
                    Some((info, _)) if info.label != intent.label => {
                        Err(KeyError::Malformed(format!(
                            "the key with CKA_ID {} on token {:?} is labelled {:?}, not {:?}",
                            intent.id, self.label, info.label, intent.label
                        )))
                    }
                    Some((info, _)) => Ok(IntentOutcome::Complete(Box::new(info))),
                    None => Ok(IntentOutcome::Partial {
                        public: 1,
                        private: 1,
                        unnamed: 0,
                    }),
                }
            }
            _ => Ok(IntentOutcome::Partial {
                public: halves.public.len(),
                private: halves.private.len(),
                unnamed: halves.anonymous.len(),
            }),
        }
    }

    fn remove_partial(&self, intent: &KeyIntent) -> Result<usize, KeyError> {
        let mut halves = self.halves(&intent.id_bytes())?;
        let mut doomed = std::mem::take(&mut halves.anonymous);
        // A whole key is adopted, never removed.
        let whole = match (&halves.public[..], &halves.private[..]) {
            ([public], [private]) => self.whole_pair(*public, *private)?.is_some(),
            _ => false,
        };
        if !whole {
            doomed.extend(halves.public.iter().chain(&halves.private));
        }
        let session = self.session();
        for handle in &doomed {
            around_token_change(
                "C_DestroyObject",
                &format!("{}/{}", self.label, intent.label),
                || session.destroy_object(*handle),
            )
            .map_err(ck("C_DestroyObject"))?;
        }
        Ok(doomed.len())
    }

    fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let handles = self.find(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
        ])?;
        let mut keys = handles
            .into_iter()
            .map(|h| self.key_info(h).map(|(info, _)| info))
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by(|a, b| a.label.cmp(&b.label));
        Ok(keys)
    }

    fn show(&self, location: &KeyLocation) -> Result<KeyInfo, KeyError> {
        let handle = self.find_private_key(pkcs11_uri(location)?)?;
        Ok(self.key_info(handle)?.0)
    }

    fn signer(&self, location: &KeyLocation) -> Result<Arc<dyn Signer>, KeyError> {
        self.signer_for(pkcs11_uri(location)?)
    }
}

/// The PKCS#11 URI of `location`; a YubiHSM2 URI names no key in a PKCS#11 token.
fn pkcs11_uri(location: &KeyLocation) -> Result<&Pkcs11Uri, KeyError> {
    match location {
        KeyLocation::Pkcs11(uri) => Ok(uri),
        KeyLocation::YubiHsm(_) => Err(KeyError::InvalidUri {
            uri: location.without_query(),
            reason: "a yubihsm: URI names no key in a PKCS#11 token".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_is_unwrapped_only_when_wrapped() {
        let bare = [0x04u8; 65];
        assert_eq!(unwrap_octet_string(&bare), &bare[..]);
        let mut wrapped = vec![0x04, 65];
        wrapped.extend_from_slice(&bare);
        assert_eq!(unwrap_octet_string(&wrapped), &bare[..]);
    }
}
