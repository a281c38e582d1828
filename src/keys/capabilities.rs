//! What a PKCS#11 token says of itself, read once when it is logged in to: which ECDSA
//! mechanisms it offers, so that rootcellar signs with what the token has (never by the
//! module's name), and which device it is, so that every key a ceremony makes is recorded
//! with the device that made it.
//!
//! Measured: SoftHSM2 2.6.1 offers `CKM_ECDSA` alone; tpm2-pkcs11 1.9.0 (a TPM 2.0) offers
//! `CKM_ECDSA` and `CKM_ECDSA_SHA256`/`384`. A token offering only the hashing mechanisms is
//! given the message; one offering `CKM_ECDSA` is given the digest, hashed here.

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::slot::{Slot, TokenInfo};

use super::{KeyAlgorithm, KeyError};

/// The device a key lives on, as it describes itself: a PKCS#11 token's `C_GetTokenInfo`, or
/// a YubiHSM2's device information. Recorded with each key a ceremony makes, so an auditor can
/// tie the key to a device.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// `manufacturerID` (`Yubico` for a YubiHSM2).
    pub manufacturer: String,
    /// `model` (`YubiHSM2`).
    pub model: String,
    /// `serialNumber`.
    pub serial: String,
    /// `firmwareVersion`, `major.minor` (a YubiHSM2's `major.minor.build`).
    pub firmware: String,
    /// `hardwareVersion`, when the device gives one.
    pub hardware: Option<String>,
}

impl DeviceInfo {
    /// One line for the journal and the transcript.
    pub fn summary(&self) -> String {
        let hardware = self
            .hardware
            .as_ref()
            .map(|h| format!(", hardware {h}"))
            .unwrap_or_default();
        format!(
            "manufacturer {:?}, model {:?}, serial {:?}, firmware {}{hardware}",
            self.manufacturer, self.model, self.serial, self.firmware
        )
    }
}

/// How a token is asked for an ECDSA signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EcdsaSigning {
    /// `CKM_ECDSA` over a digest made here.
    OverDigest,
    /// `CKM_ECDSA_SHA256` or `CKM_ECDSA_SHA384` over the message: the token hashes.
    TokenHashes,
}

/// What one token offers, and what it is.
#[derive(Clone, Debug)]
pub(crate) struct TokenCapabilities {
    pub(crate) device: DeviceInfo,
    /// `None` when the token would not list them: it is then asked for `CKM_ECDSA`, as every
    /// token rootcellar has met offers it, and its own answer to each call stands.
    mechanisms: Option<Vec<MechanismType>>,
    /// `CKM_EC_KEY_PAIR_GEN`'s key sizes in bits, when the token says.
    ec_key_bits: Option<(usize, usize)>,
}

impl TokenCapabilities {
    /// Reads the token in `slot`, whose `C_GetTokenInfo` is `info`: `C_GetMechanismList`, and
    /// `C_GetMechanismInfo` of EC key generation.
    pub(crate) fn read(ctx: &Pkcs11, slot: Slot, info: &TokenInfo) -> Self {
        // Blank-padded, as PKCS#11 says; tpm2-pkcs11 pads its model with NULs.
        let field = |s: &str| s.trim_end_matches([' ', '\0']).to_string();
        let device = DeviceInfo {
            manufacturer: field(info.manufacturer_id()),
            model: field(info.model()),
            serial: field(info.serial_number()),
            firmware: info.firmware_version().to_string(),
            hardware: Some(info.hardware_version().to_string()),
        };
        let mechanisms = ctx.get_mechanism_list(slot).ok();
        let ec_key_bits = ctx
            .get_mechanism_info(slot, MechanismType::ECC_KEY_PAIR_GEN)
            .ok()
            .map(|m| (m.min_key_size(), m.max_key_size()));
        TokenCapabilities {
            device,
            mechanisms,
            ec_key_bits,
        }
    }

    /// How to sign with an `algorithm` key: `CKM_ECDSA` where offered (every hash made here),
    /// else the token's own hashing mechanism for the algorithm's digest.
    pub(crate) fn ecdsa_signing(
        &self,
        algorithm: KeyAlgorithm,
    ) -> Result<(Mechanism<'static>, EcdsaSigning), KeyError> {
        let Some(mechanisms) = &self.mechanisms else {
            return Ok((Mechanism::Ecdsa, EcdsaSigning::OverDigest));
        };
        if mechanisms.contains(&MechanismType::ECDSA) {
            return Ok((Mechanism::Ecdsa, EcdsaSigning::OverDigest));
        }
        let (hashing, mechanism) = match algorithm {
            KeyAlgorithm::EcdsaP256 => (MechanismType::ECDSA_SHA256, Mechanism::EcdsaSha256),
            KeyAlgorithm::EcdsaP384 => (MechanismType::ECDSA_SHA384, Mechanism::EcdsaSha384),
        };
        if mechanisms.contains(&hashing) {
            return Ok((mechanism, EcdsaSigning::TokenHashes));
        }
        Err(KeyError::UnsupportedAlgorithm(format!(
            "token {} {} offers neither CKM_ECDSA nor {hashing} for a {} key",
            self.device.manufacturer,
            self.device.model,
            algorithm.name()
        )))
    }

    /// Refuses, before anything is made, a key the token says it cannot generate: no
    /// `CKM_EC_KEY_PAIR_GEN`, or a curve outside the key sizes it gives.
    pub(crate) fn check_can_generate(&self, algorithm: KeyAlgorithm) -> Result<(), KeyError> {
        if self
            .mechanisms
            .as_ref()
            .is_some_and(|m| !m.contains(&MechanismType::ECC_KEY_PAIR_GEN))
        {
            return Err(KeyError::UnsupportedAlgorithm(format!(
                "token {} {} does not offer CKM_EC_KEY_PAIR_GEN",
                self.device.manufacturer, self.device.model
            )));
        }
        let bits = algorithm.scalar_len() * 8;
        match self.ec_key_bits {
            // Some modules give sizes in bytes: only a range that excludes the curve either way
            // is taken as a refusal.
            Some((min, max))
                if !(min..=max).contains(&bits) && !(min..=max).contains(&(bits / 8)) =>
            {
                Err(KeyError::UnsupportedAlgorithm(format!(
                    "token {} {} generates EC keys of {min} to {max} bits, not {} ({bits} bits)",
                    self.device.manufacturer,
                    self.device.model,
                    algorithm.name()
                )))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offering(mechanisms: Vec<MechanismType>) -> TokenCapabilities {
        TokenCapabilities {
            device: DeviceInfo {
                manufacturer: "maker".into(),
                model: "model".into(),
                serial: "1".into(),
                firmware: "1.0".into(),
                hardware: None,
            },
            mechanisms: Some(mechanisms),
            ec_key_bits: Some((256, 384)),
        }
    }

    #[test]
    fn raw_ecdsa_is_preferred_and_hashing_mechanisms_follow_the_curve() {
        let both = offering(vec![MechanismType::ECDSA, MechanismType::ECDSA_SHA256]);
        assert_eq!(
            both.ecdsa_signing(KeyAlgorithm::EcdsaP256).unwrap().1,
            EcdsaSigning::OverDigest
        );
        let hashing = offering(vec![MechanismType::ECDSA_SHA256]);
        let (mechanism, how) = hashing.ecdsa_signing(KeyAlgorithm::EcdsaP256).unwrap();
        assert_eq!(how, EcdsaSigning::TokenHashes);
        assert_eq!(mechanism.mechanism_type(), MechanismType::ECDSA_SHA256);
        assert!(hashing.ecdsa_signing(KeyAlgorithm::EcdsaP384).is_err());
    }

    #[test]
    fn a_token_that_lists_no_mechanisms_is_asked_for_ckm_ecdsa() {
        let unlisted = TokenCapabilities {
            mechanisms: None,
            ec_key_bits: None,
            ..offering(vec![])
        };
        let (mechanism, how) = unlisted.ecdsa_signing(KeyAlgorithm::EcdsaP384).unwrap();
        assert_eq!(mechanism.mechanism_type(), MechanismType::ECDSA);
        assert_eq!(how, EcdsaSigning::OverDigest);
        assert!(unlisted.check_can_generate(KeyAlgorithm::EcdsaP384).is_ok());
    }

    #[test]
    fn generation_is_refused_outside_the_offered_key_sizes() {
        let mut token = offering(vec![MechanismType::ECC_KEY_PAIR_GEN]);
        assert!(token.check_can_generate(KeyAlgorithm::EcdsaP384).is_ok());
        token.ec_key_bits = Some((256, 256));
        assert!(token.check_can_generate(KeyAlgorithm::EcdsaP384).is_err());
        assert!(offering(vec![])
            .check_can_generate(KeyAlgorithm::EcdsaP256)
            .is_err());
    }
}
