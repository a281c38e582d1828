//! Keys generated inside the token: attributes, listing, and refusals.

use crate::common::*;

#[test]
fn placeholder_generates_a_key() {
    let hsm = SoftHsm::new("keys");
    let uri = hsm.generate("keys", "k1", "p256");
    assert!(uri.contains("object=k1"));
}
