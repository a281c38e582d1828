//! ECDSA P-256 signing throughput: rootcellar's key backend against a raw cryptoki `C_Sign` loop
//! on the same SoftHSM2 key, measured in the same run.
//!
//! `make bench` (or `cargo bench --bench sign_throughput`). The figure that matters is the ratio;
//! absolute rates depend on the machine. Rounds alternate between the two loops so that drift
//! in machine load affects both alike; the median round of each is compared.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use rootcellar::keys::{self, KeyAlgorithm};
use sha2::{Digest, Sha256};
use support::{median, softhsm_module};

const SIGNATURES: usize = 1000;
const ROUNDS: usize = 5;
const PIN: &str = "246810";
const LABEL: &str = "bench";

fn main() {
    // A throwaway token; SOFTHSM2_CONF must be set before the module is first initialised.
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let status = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--pin",
            PIN,
            "--so-pin",
            "12345678",
        ])
        .output()
        .unwrap();
    assert!(status.status.success());
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, PIN).unwrap();
    let uri = format!(
        "pkcs11:token=bench;object={LABEL}?module-path={}&pin-source={}",
        softhsm_module(),
        pin_file.display()
    );

    // Kept for the whole bench: dropping the provider would finalize the module.
    let hsm = keys::HsmConfig::default().open();
    let location = keys::KeyLocation::parse(&uri).unwrap();
    hsm.backend(&location)
        .unwrap()
        .generate(LABEL, KeyAlgorithm::EcdsaP256)
        .unwrap();
    let signer = hsm.signer(&location).unwrap();

    // The baseline: the same module (already initialised by rootcellar), its own session, the
    // same key, C_Sign(CKM_ECDSA) on a precomputed digest and nothing else.
    let raw = Pkcs11::new(softhsm_module()).unwrap();
    match raw.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("{e}"),
    }
    let slot = raw
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| raw.get_token_info(*s).unwrap().label().trim_end() == "bench")
        .unwrap();
    let session = raw.open_ro_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::from(PIN))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("{e}"),
    }
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(LABEL.as_bytes().to_vec()),
        ])
        .unwrap()[0];

    let message = b"{\"signed\":{\"_type\":\"timestamp\",\"version\":1}}".repeat(8);
    let digest = Sha256::digest(&message).to_vec();
    let mut raw_rounds = Vec::new();
    let mut ours_rounds = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..SIGNATURES {
            std::hint::black_box(session.sign(&Mechanism::Ecdsa, key, &digest).unwrap());
        }
        raw_rounds.push(start.elapsed());

        let start = Instant::now();
        for _ in 0..SIGNATURES {
            std::hint::black_box(signer.sign(&message).unwrap());
        }
        ours_rounds.push(start.elapsed());
    }
    // Every signature the backend makes must be valid; check one outside the timed loops.
    assert!(signer
        .public_key()
        .verify(&message, &signer.sign(&message).unwrap()));

    let raw = median(raw_rounds);
    let ours = median(ours_rounds);
    let rate = |d: Duration| SIGNATURES as f64 / d.as_secs_f64();
    println!(
        "ECDSA P-256 on SoftHSM2, {SIGNATURES} signatures per round, median of {ROUNDS} rounds"
    );
    println!(
        "  raw cryptoki C_Sign loop : {:>8.0} signatures/s",
        rate(raw)
    );
    println!(
        "  rootcellar key backend   : {:>8.0} signatures/s",
        rate(ours)
    );
    println!(
        "  ratio (rootcellar / raw) : {:>8.3}",
        rate(ours) / rate(raw)
    );
}
