//! What a device really enforces of the protection rootcellar gives its keys at birth: that a
//! key's attributes cannot be changed afterwards, that it cannot be copied with other
//! attributes, and that only a wrapping key the security officer trusts can wrap it. Attributes
//! a token accepts and then ignores protect nothing, so a PKCS#11 token is asked by experiment,
//! on throwaway session objects that never reach its storage: a probe key fixed as rootcellar
//! fixes a key for backup, then `C_SetAttributeValue`, `C_CopyObject` and `C_WrapKey` under an
//! ordinary session key, each of which must be refused.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::pkcs11::Pkcs11Token;
use super::{KeyAlgorithm, KeyError};

/// What a device was found to enforce, and how that was established.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Enforcement {
    /// A key made fixed cannot have its attributes changed (PKCS#11: `C_SetAttributeValue`
    /// refused on a `CKA_MODIFIABLE=false` key; YubiHSM2: capabilities are fixed at birth).
    pub fixed_attributes: bool,
    /// A key made non-copyable cannot be copied (`C_CopyObject` refused).
    pub copy_refused: bool,
    /// A key that may be backed up can be wrapped only under a wrapping key the security
    /// officer made trusted, not under one anyone holding the user PIN makes.
    pub wrap_only_trusted: bool,
    /// How each was established, for the operator (the calls made and the token's answers).
    pub basis: String,
}

impl Enforcement {
    /// One line for operators: what holds, what does not.
    pub fn summary(&self) -> String {
        let said = |holds: bool, yes: &str, no: &str| {
            if holds {
                yes.to_string()
            } else {
                no.to_string()
            }
        };
        [
            said(
                self.fixed_attributes,
                "attributes fixed",
                "ATTRIBUTES CAN BE CHANGED",
            ),
            said(self.copy_refused, "copy refused", "COPY ALLOWED"),
            said(
                self.wrap_only_trusted,
                "wrap only under a trusted key",
                "WRAP UNDER ANY KEY",
            ),
        ]
        .join(", ")
    }
}

/// The name PKCS#11 gives a return value (`CKR_KEY_NOT_WRAPPABLE`), or the error as the
/// library says it.
pub(crate) fn rv_name(error: &CkError) -> String {
    match error {
        CkError::Pkcs11(rv, _) => {
            let mut name = String::from("CKR");
            for c in format!("{rv:?}").chars() {
                if c.is_ascii_uppercase() {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
        other => other.to_string(),
    }
}

fn answer<T>(result: &Result<T, CkError>) -> String {
    match result {
        Ok(_) => "accepted".into(),
        Err(e) => rv_name(e),
    }
}

impl Pkcs11Token {
    /// Measures what the token enforces (see the module documentation). Everything it makes
    /// is a session object, destroyed before it returns (and gone with the process if it is
    /// killed). A token that will not make the probe key is reported as enforcing nothing.
    pub fn probe_enforcement(&self) -> Result<Enforcement, KeyError> {
        let session = self.session();
        let label = b"rootcellar-probe".to_vec();
        let algorithm = KeyAlgorithm::EcdsaP256;
        let public_template = [
            Attribute::Token(false),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(algorithm.ec_params().to_vec()),
            Attribute::Label(label.clone()),
            Attribute::Modifiable(false),
        ];
        let private_template = [
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Label(label.clone()),
            Attribute::Copyable(false),
            Attribute::WrapWithTrusted(true),
            Attribute::Modifiable(false),
        ];
        let (public, private) = match session.generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &public_template,
            &private_template,
        ) {
            Ok(pair) => pair,
            Err(e) => {
                return Ok(Enforcement {
                    fixed_attributes: false,
                    copy_refused: false,
                    wrap_only_trusted: false,
                    basis: format!(
                        "the token would not make a session key with CKA_MODIFIABLE, \
                         CKA_COPYABLE and CKA_WRAP_WITH_TRUSTED set ({}), so it cannot be \
                         shown to enforce them",
                        rv_name(&e)
                    ),
                })
            }
        };
        let measured = probe(&session, private, &label);
        for handle in [private, public] {
            let _ = session.destroy_object(handle);
        }
        Ok(measured)
    }
}

/// The three experiments on probe key `private`.
fn probe(session: &Session, private: ObjectHandle, label: &[u8]) -> Enforcement {
    // Turning on a usage is what an attacker with the user PIN would try first.
    let set = session.update_attributes(private, &[Attribute::Derive(true)]);
    let fixed_attributes = matches!(
        set,
        Err(CkError::Pkcs11(
            RvError::ActionProhibited | RvError::AttributeReadOnly,
            _
        ))
    );
    let copy = session.copy_object(private, &[Attribute::Token(false)]);
    if let Ok(copied) = &copy {
        let _ = session.destroy_object(*copied);
    }
    let copy_refused = matches!(
        copy,
        Err(CkError::Pkcs11(
            RvError::ActionProhibited | RvError::FunctionNotSupported,
            _
        ))
    );
    let wrapping_key = session.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(false),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Wrap(true),
            Attribute::Label(label.to_vec()),
        ],
    );
    let (wrap_only_trusted, wrap_answer) = match &wrapping_key {
        Ok(wrapping_key) => {
            let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, *wrapping_key, private);
            let _ = session.destroy_object(*wrapping_key);
            (
                matches!(wrapped, Err(CkError::Pkcs11(RvError::KeyNotWrappable, _))),
                answer(&wrapped),
            )
        }
        Err(e) => (
            false,
            format!("not tried: no session AES key ({})", rv_name(e)),
        ),
    };
    Enforcement {
        fixed_attributes,
        copy_refused,
        wrap_only_trusted,
        basis: format!(
            "measured on a session key made fixed, non-copyable and wrap-with-trusted: \
             C_SetAttributeValue(CKA_DERIVE) {}, C_CopyObject {}, C_WrapKey under an untrusted \
             session AES key {}",
            answer(&set),
            answer(&copy),
            wrap_answer
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_values_are_named_as_pkcs11_names_them() {
        use cryptoki::context::Function;
        let error = CkError::Pkcs11(RvError::KeyNotWrappable, Function::WrapKey);
        assert_eq!(rv_name(&error), "CKR_KEY_NOT_WRAPPABLE");
    }

    #[test]
    fn the_summary_shouts_what_does_not_hold() {
        let all = Enforcement {
            fixed_attributes: true,
            copy_refused: true,
            wrap_only_trusted: true,
            basis: String::new(),
        };
        assert_eq!(
            all.summary(),
            "attributes fixed, copy refused, wrap only under a trusted key"
        );
        let none = Enforcement {
            wrap_only_trusted: false,
            ..all
        };
        assert!(none.summary().ends_with("WRAP UNDER ANY KEY"));
    }
}
