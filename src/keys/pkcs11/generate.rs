//! Making keys on a token: generation with both halves fixed at birth, under a label and an id
//! that one listing of the token shows to be free, and the halves an interrupted run left.

use super::*;

impl Pkcs11Token {
    /// Generates a key pair in the token. With `extractable`, the private key can later leave
    /// the token wrapped (for a backup), never in the clear: it stays sensitive, and only a
    /// wrapping key the security officer marked trusted can wrap it (`CKA_WRAP_WITH_TRUSTED`).
    /// Both halves are fixed at birth (`CKA_MODIFIABLE` false; the private half also
    /// `CKA_COPYABLE` false): no one holding the user PIN can later turn on a usage, make the
    /// key extractable, or copy it with other attributes.
    /// (`id`: the CKA_ID chosen in advance by a recorded intent; otherwise a random one.)
    pub(super) fn generate_key(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        extractable: bool,
        id: Option<Vec<u8>>,
    ) -> Result<KeyInfo, KeyError> {
        self.refuse_empty_label(label)?;
        // One listing of the token answers both: no object carries the label, none the id.
        let listing = self.current_listing()?;
        if listing.has_label(label.as_bytes()) {
            return Err(KeyError::LabelExists {
                token: self.label.clone(),
                label: label.to_string(),
            });
        }
        self.capabilities.check_can_generate(algorithm)?;
        let label_bytes = label.as_bytes().to_vec();
        // A random CKA_ID pairs the private and public halves unambiguously; labels can repeat
        // across tokens and are easy to mistype.
        let id = match id {
            Some(id) => {
                if listing.has_id(&id) {
                    return Err(KeyError::Malformed(format!(
                        "token {:?} already holds an object with CKA_ID {}",
                        self.label,
                        hex::encode(&id)
                    )));
                }
                id
            }
            None => loop {
                let mut id = vec![0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut id);
                if !listing.has_id(&id) {
                    break id;
                }
            },
        };
        // The public half's CKA_VERIFY and CKA_ENCRYPT are left to the token: they protect
        // nothing (anyone can verify with a public key), and tpm2-pkcs11 derives them from the
        // TPM key's sign/decrypt bits, failing a template that states them otherwise.
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Wrap(false),
            Attribute::Derive(false),
            Attribute::EcParams(algorithm.ec_params().to_vec()),
            Attribute::Label(label_bytes.clone()),
            Attribute::Id(id.clone()),
            Attribute::Modifiable(false),
        ];
        // Tokens default CKA_DECRYPT/CKA_UNWRAP/CKA_DERIVE to true unless told otherwise.
        let mut private_template = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(extractable),
            Attribute::Sign(true),
            Attribute::SignRecover(false),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Label(label_bytes),
            Attribute::Id(id.clone()),
            Attribute::Copyable(false),
        ];
        if extractable {
            private_template.push(Attribute::WrapWithTrusted(true));
        }
        // Last, as SoftHSM2 refuses any attribute it meets after it when it unwraps (see
        // `backup::restored_template`); kept in the same place here.
        private_template.push(Attribute::Modifiable(false));
        let object = format!("{}/{label}", self.label);
        self.objects_changing();
        let (public, private) = around_token_change("C_GenerateKeyPair", &object, || {
            lock(&self.session).generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &public_template,
                &private_template,
            )
        })
        .map_err(ck("C_GenerateKeyPair"))?;
        // Read back from the objects the token made (not from the templates): what it keeps.
        let public_key = self.public_half(public)?.public_key()?;
        Ok(self.info_of(self.private_half(private)?, public_key).0)
    }
}

impl Pkcs11Token {
    /// Refuses an empty label.
    pub(super) fn refuse_empty_label(&self, label: &str) -> Result<(), KeyError> {
        if label.is_empty() {
            return Err(KeyError::InvalidUri {
                uri: self.token_uri.without_query().to_string(),
                reason: "the key label (object=…) is empty".into(),
            });
        }
        Ok(())
    }

    /// Refuses an empty label, and one any object on the token carries already.
    pub(super) fn check_label_free(&self, label: &str) -> Result<(), KeyError> {
        self.refuse_empty_label(label)?;
        if !self
            .find(&[Attribute::Label(label.as_bytes().to_vec())])?
            .is_empty()
        {
            return Err(KeyError::LabelExists {
                token: self.label.clone(),
                label: label.to_string(),
            });
        }
        Ok(())
    }

    /// The key `public` and `private` make, when both hold their key: the public half its
    /// point, the private half its curve. SoftHSM2 makes a key object in steps, each written to
    /// its file before the next: first its defaults, then the caller's template (label, id),
    /// and only then what the generation or unwrapping made (`CKA_EC_POINT`; `CKA_EC_PARAMS`
    /// and `CKA_VALUE` of a private key). Killed between the last two, it leaves a half that is
    /// found by label and id but holds no key: a private half without key material fails
    /// `C_Sign` with `CKR_GENERAL_ERROR`. Each half is read once.
    pub(super) fn whole_pair(
        &self,
        public: ObjectHandle,
        private: ObjectHandle,
    ) -> Result<Option<(KeyInfo, Vec<u8>)>, KeyError> {
        let public = self.public_half(public)?;
        let private = self.private_half(private)?;
        if !public.holds_key() || !private.holds_key() {
            return Ok(None);
        }
        Ok(Some(self.info_of(private, public.public_key()?)))
    }

    /// The public and private key objects under `id`, and the key objects with neither a
    /// label nor an id: what SoftHSM2 leaves when killed inside `C_GenerateKeyPair` before it
    /// set them (rootcellar always sets both; a token that generates atomically has none).
    /// One search lists the token's objects, each read once (class, label and id together),
    /// and the ids are compared here; the listing is kept for a generation that follows.
    pub(super) fn halves(&self, id: &[u8]) -> Result<Halves, KeyError> {
        let mut halves = Halves {
            public: Vec::new(),
            private: Vec::new(),
            anonymous: Vec::new(),
        };
        for object in &self.list_objects()?.0 {
            let halves_of_class = match object.class {
                Some(ObjectClass::PUBLIC_KEY) => &mut halves.public,
                Some(ObjectClass::PRIVATE_KEY) => &mut halves.private,
                _ => continue,
            };
            if object.id == id {
                halves_of_class.push(object.handle);
            } else if object.label.is_empty() && object.id.is_empty() {
                halves.anonymous.push(object.handle);
            }
        }
        Ok(halves)
    }
}
