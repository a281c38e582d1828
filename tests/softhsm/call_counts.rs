//! How many PKCS#11 calls a rehearsed root-init makes (issue #19): the run goes through the
//! shim in front of SoftHSM2 (`tests/softhsm/faulty_pkcs11.c`, counting with
//! `FAULTY_PKCS11_COUNTS`), put in place of the rehearsal's module by the `test-hooks` feature
//! (`ROOTCELLAR_TEST_REHEARSAL_MODULE`). SoftHSM2 reads its token files again on nearly every
//! call, so each round trip costs file opens; the bounds below hold the ceremony near the calls
//! it cannot do without (the floor in `benches/ceremony_floor.rs`).

use std::collections::BTreeMap;

use crate::common::*;
use crate::crash::{text, Appliance};
use crate::faults::build_faulty_module;

/// Each call's count in a rehearsed root-init, printed (`--nocapture`) and returned.
fn root_init_counts() -> BTreeMap<String, u64> {
    let appliance = Appliance::new();
    let module = build_faulty_module(&appliance.path(""));
    let counts = appliance.path("counts.txt");
    let run = appliance
        .command("root-init", "root-init", None)
        .env("ROOTCELLAR_TEST_REHEARSAL_MODULE", &module)
        .env("FAULTY_PKCS11_REAL", softhsm_module())
        .env("FAULTY_PKCS11_COUNTS", &counts)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let mut totals = BTreeMap::new();
    for line in std::fs::read_to_string(&counts).unwrap().lines() {
        let (name, n) = line.split_once(' ').unwrap();
        *totals.entry(name.to_string()).or_insert(0) += n.parse::<u64>().unwrap();
    }
    for (name, n) in &totals {
        println!("root-init rehearsal: {name:<20} {n:>5}");
    }
    totals
}

#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_rehearsed_root_init_makes_few_token_round_trips() {
    let counts = root_init_counts();
    let count = |name: &str| counts.get(name).copied().unwrap_or(0);
    // What the ceremony cannot do without: 5 tokens made, 8 key pairs and the session key pair
    // that measures what the root CA's token enforces, one PIN change.
    assert_eq!(count("C_InitToken"), 5, "{counts:#?}");
    assert_eq!(count("C_GenerateKeyPair"), 9, "{counts:#?}");
    assert_eq!(count("C_SetPIN"), 1, "{counts:#?}");
    // Before issue #19: 261 C_GetAttributeValue, 94 searches, 50 C_GetTokenInfo and 20
    // C_GetSlotList. Now each object is read once per operation with all that is needed of it,
    // one listing of a token answers whether a key's halves are there and whether its label
    // and id are free, a key found for signing is not looked for again, and a rehearsal lists
    // the slots once for its log-ins (measured: 84, 30, 21, 12).
    for (name, most) in [
        ("C_GetAttributeValue", 90),
        ("C_FindObjectsInit", 30),
        ("C_GetTokenInfo", 21),
        ("C_GetSlotList", 12),
    ] {
        assert!(count(name) <= most, "{name}: {} > {most}", count(name));
    }
}
