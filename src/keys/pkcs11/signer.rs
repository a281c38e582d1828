//! Signing with a token's private key: the key found once and kept until the token changes,
//! signed with the mechanism the token offers.

use super::*;

impl Pkcs11Token {
    /// A signer for the one private key `uri` names.
    pub(crate) fn signer_for(
        self: &Arc<Self>,
        uri: &Pkcs11Uri,
    ) -> Result<Arc<dyn Signer>, KeyError> {
        let name = (uri.object.clone(), uri.id.clone());
        let found = lock(&self.found).get(&name).cloned();
        let found = match found {
            Some(found) => found,
            None => {
                let found = self.find_for_signing(uri)?;
                lock(&self.found).insert(name, found.clone());
                found
            }
        };
        Ok(Arc::new(Pkcs11Signer {
            token: self.clone(),
            handle: found.handle,
            public_key: found.public_key,
            key_uri: found.key_uri,
        }))
    }

    /// The one private key `uri` names, read: refused when it holds no key material.
    pub(super) fn find_for_signing(&self, uri: &Pkcs11Uri) -> Result<FoundKey, KeyError> {
        let handle = self.find_private_key(uri)?;
        let private = self.private_half(handle)?;
        let holds_key = private.holds_key();
        let public_key = self.public_key_for_id(&private.id)?;
        let (info, id) = self.info_of(private, public_key);
        let key_uri = self
            .token_uri
            .for_key(&info.label, &id)
            .without_query()
            .to_string();
        // Said before the token answers C_Sign with a bare CKR_GENERAL_ERROR.
        if !holds_key {
            return Err(KeyError::Malformed(format!(
                "the private half of key {key_uri} on token {:?} holds no key material (what \
                 SoftHSM2 leaves when killed while it makes or unwraps a key): it cannot sign, \
                 and cannot be repaired. Treat the key as lost: restore it from its backup \
                 into a new token (restore-keys), or replace it (a custodian's TUF root key: \
                 rotate-tuf-root)",
                self.label
            )));
        }
        Ok(FoundKey {
            handle,
            public_key: info.public_key,
            key_uri,
        })
    }
}

/// A private key in a PKCS#11 token.
struct Pkcs11Signer {
    token: Arc<Pkcs11Token>,
    handle: ObjectHandle,
    public_key: PublicKey,
    key_uri: String,
}

impl Signer for Pkcs11Signer {
    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let algorithm = self.public_key.algorithm();
        // CKM_ECDSA over a digest made here where the token offers it (SoftHSM2 offers nothing
        // else), else the token's own hashing mechanism.
        let (mechanism, how) = self.token.capabilities.ecdsa_signing(algorithm)?;
        let digest;
        let input = match how {
            EcdsaSigning::OverDigest => {
                digest = algorithm.digest(message);
                &digest[..]
            }
            EcdsaSigning::TokenHashes => message,
        };
        let raw = lock(&self.token.session)
            .sign(&mechanism, self.handle, input)
            .map_err(|source| KeyError::Pkcs11Key {
                operation: "C_Sign",
                key: self.key_uri.clone(),
                source: Box::new(source),
            })?;
        if raw.len() != 2 * algorithm.scalar_len() {
            return Err(KeyError::Malformed(format!(
                "{}-byte signature from a {} key",
                raw.len(),
                algorithm.name()
            )));
        }
        algorithm.raw_signature_to_der(&raw)
    }

    fn key_uri(&self) -> String {
        self.key_uri.clone()
    }
}
