//! The bundle decoder on arbitrary bytes: it must never panic, hang or allocate without bound,
//! and whatever it accepts must be canonical (re-serialise to the same bytes) and, when signed
//! by the seed corpus's key, verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rootcellar::bundle::{Bundle, Limits, PinnedKeys, SoftwareKey};
use rootcellar::keys::Signer;

fn pins() -> PinnedKeys {
    // The (public, test-only) key the seed corpus is signed with.
    let key = SoftwareKey::p256_from_bytes(&[42u8; 32], "fuzz:seed-key").expect("valid scalar");
    PinnedKeys::new(vec![key.public_key().clone()])
}

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = Bundle::decode(data, &Limits::default()) {
        assert_eq!(bundle.to_bytes(), data, "an accepted bundle is canonical");
        if let Ok(verified) = bundle.verify(&pins()) {
            assert_eq!(
                verified.entries().count(),
                verified.manifest().entries.len()
            );
        }
    }
});
