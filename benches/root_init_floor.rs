//! A rehearsed root-init against its floor (issue #19): a program that makes the same
//! token-changing PKCS#11 calls bare, measured in the same run.
//!
//! The floor makes root-init's five SoftHSM2 tokens (`C_InitToken`, `C_InitPIN`), logs in to
//! each, generates the same eight key pairs with the same templates (`C_GenerateKeyPair`),
//! changes the root CA token's PIN (`C_SetPIN`) and signs seven times with the keys that sign in
//! root-init (the root certificate, the three custodians' signatures on TUF root 1, targets,
//! snapshot and timestamp). Nothing else: no journal, no checks, no files. Each side is a
//! process of its own on fresh tokens (this bench again, with `--floor DIR`, and `rootcellar
//! ceremony run ceremony/root-init.toml --rehearsal`), so both pay for starting and loading
//! SoftHSM2. Rounds alternate, and the median of each is compared: wall time, and the CPU time
//! of the child process (user + system, all threads), which depends far less on what else the
//! machine is doing.
//!
//! `make bench` (or `cargo bench --bench root_init_floor`). Issue #19's goal: at most 1.15.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rootcellar::keys::KeyAlgorithm;
use support::{cpu_time, median, softhsm_module, Cpu};

const ROUNDS: usize = 7;
const SO_PIN: &str = "so-246810";
const PIN: &str = "246810";

/// root-init's keys: token, label, algorithm, made for backup, signatures made with it.
const KEYS: [(&str, &str, KeyAlgorithm, bool, usize); 8] = [
    ("root-ca", "root-ca", KeyAlgorithm::EcdsaP384, true, 1),
    ("custodian-1", "tuf-root", KeyAlgorithm::EcdsaP256, false, 1),
    ("custodian-2", "tuf-root", KeyAlgorithm::EcdsaP256, false, 1),
    ("custodian-3", "tuf-root", KeyAlgorithm::EcdsaP256, false, 1),
    (
        "appliance",
        "tuf-targets",
        KeyAlgorithm::EcdsaP256,
        false,
        1,
    ),
    (
        "appliance",
        "tuf-snapshot",
        KeyAlgorithm::EcdsaP256,
        false,
        1,
    ),
    (
        "appliance",
        "tuf-timestamp",
        KeyAlgorithm::EcdsaP256,
        false,
        1,
    ),
    ("appliance", "bundle-key", KeyAlgorithm::EcdsaP256, false, 0),
];
const TOKENS: [&str; 5] = [
    "root-ca",
    "custodian-1",
    "custodian-2",
    "custodian-3",
    "appliance",
];

/// Wall time and CPU time of one run.
#[derive(Clone, Copy)]
struct Round {
    wall: Duration,
    cpu: Duration,
}

/// Runs `command` to its end, timed.
fn timed(mut command: Command, what: &str) -> Round {
    let cpu = cpu_time(Cpu::Children);
    let start = Instant::now();
    let out = command.output().unwrap();
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Round {
        wall,
        cpu: cpu_time(Cpu::Children) - cpu,
    }
}

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The floor, in this process: root-init's token changes in a SoftHSM2 whose tokens are in
/// `dir`.
fn floor(dir: &Path) {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let ctx = Pkcs11::new(softhsm_module()).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let so_pin = AuthPin::from(SO_PIN);
    let pin = AuthPin::from(PIN);
    let mut sessions: Vec<(&str, Session)> = Vec::new();
    for label in TOKENS {
        // SoftHSM2 always offers one free slot, the last.
        let slot = *ctx.get_all_slots().unwrap().last().unwrap();
        ctx.init_token(slot, &so_pin, label).unwrap();
        let session = ctx.open_rw_session(slot).unwrap();
        session.login(UserType::So, Some(&so_pin)).unwrap();
        session.init_pin(&pin).unwrap();
        session.logout().unwrap();
        session.login(UserType::User, Some(&pin)).unwrap();
        sessions.push((label, session));
    }
    let session_of = |token: &str| &sessions.iter().find(|(l, _)| *l == token).unwrap().1;
    let mut keys: Vec<(ObjectHandle, KeyAlgorithm, usize)> = Vec::new();
    for (n, (token, label, algorithm, backup, signatures)) in KEYS.into_iter().enumerate() {
        let id = vec![n as u8; 16];
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Wrap(false),
            Attribute::Derive(false),
            Attribute::EcParams(algorithm.ec_params().to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
            Attribute::Modifiable(false),
        ];
        let mut private = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(backup),
            Attribute::Sign(true),
            Attribute::SignRecover(false),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id),
            Attribute::Copyable(false),
        ];
        if backup {
            private.push(Attribute::WrapWithTrusted(true));
        }
        private.push(Attribute::Modifiable(false));
        let (_, key) = session_of(token)
            .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
            .unwrap();
        keys.push((key, algorithm, signatures));
    }
    session_of("root-ca")
        .set_pin(&pin, &AuthPin::from("13579-new"))
        .unwrap();
    for ((token, ..), (key, algorithm, signatures)) in KEYS.iter().zip(&keys) {
        for _ in 0..*signatures {
            let digest = algorithm.digest(b"the bytes a ceremony signs");
            std::hint::black_box(
                session_of(token)
                    .sign(&Mechanism::Ecdsa, *key, &digest)
                    .unwrap(),
            );
        }
    }
    drop(sessions);
    ctx.finalize().unwrap();
}

/// One floor run in a process of its own, on fresh tokens.
fn time_floor() -> Round {
    let dir = tempfile::tempdir().unwrap();
    let mut floor = Command::new(std::env::current_exe().unwrap());
    floor.arg("--floor").arg(dir.path());
    timed(floor, "floor")
}

/// One rehearsed root-init, as the operator runs it, on fresh tokens and state.
fn time_rehearsal() -> Round {
    let dir = tempfile::tempdir().unwrap();
    let answers = dir.path().join("answers.toml");
    std::fs::write(
        &answers,
        format!(
            "time = \"{}\"\nconfirm = true\n[present]\noperator = [\"Olga\"]\n\
             witness = [\"Wim\", \"Wanda\"]\ncustodian-1 = [\"Carol\"]\n\
             custodian-2 = [\"Chidi\"]\ncustodian-3 = [\"Cem\"]\n",
            jiff::Timestamp::now().round(jiff::Unit::Second).unwrap()
        ),
    )
    .unwrap();
    // `ROOT_INIT_FLOOR_ROOTCELLAR=PATH` times another build (an older commit's) against the
    // same floor.
    let rootcellar = std::env::var_os("ROOT_INIT_FLOOR_ROOTCELLAR")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_rootcellar").into());
    let mut rehearsal = Command::new(rootcellar);
    rehearsal
        .args(["ceremony", "run"])
        .arg(repo_file("ceremony/root-init.toml"))
        .arg("--rehearsal")
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg("--answers")
        .arg(&answers)
        .arg("--out")
        .arg(dir.path().join("out"))
        .env_remove("SOFTHSM2_CONF")
        .env_remove("ROOTCELLAR_PKCS11_MODULE")
        .env_remove("ROOTCELLAR_STATE");
    timed(rehearsal, "root-init")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--floor") {
        floor(Path::new(&args[at + 1]));
        return;
    }
    // One of each first, unmeasured: the page cache and the dynamic loader warmed alike.
    time_floor();
    time_rehearsal();
    let mut floor_rounds = Vec::new();
    let mut rehearsal_rounds = Vec::new();
    for _ in 0..ROUNDS {
        floor_rounds.push(time_floor());
        rehearsal_rounds.push(time_rehearsal());
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let summary = |rounds: &[Round]| {
        let wall = median(rounds.iter().map(|r| r.wall).collect());
        let cpu = median(rounds.iter().map(|r| r.cpu).collect());
        let min = rounds.iter().map(|r| r.wall).min().unwrap();
        let max = rounds.iter().map(|r| r.wall).max().unwrap();
        (wall, cpu, format!("{:.0}–{:.0} ms", ms(min), ms(max)))
    };
    let (floor_wall, floor_cpu, floor_range) = summary(&floor_rounds);
    let (ours_wall, ours_cpu, ours_range) = summary(&rehearsal_rounds);
    println!("root-init rehearsal against its floor, median of {ROUNDS} alternating rounds");
    println!("                                         wall time               CPU time");
    println!(
        "  floor (the same token changes, bare) : {:>6.1} ms ({floor_range:>11})  {:>6.1} ms",
        ms(floor_wall),
        ms(floor_cpu)
    );
    println!(
        "  rootcellar root-init --rehearsal     : {:>6.1} ms ({ours_range:>11})  {:>6.1} ms",
        ms(ours_wall),
        ms(ours_cpu)
    );
    println!(
        "  ratio (rehearsal / floor)            : {:>6.3}   (goal <= 1.15)    {:>6.3}",
        ms(ours_wall) / ms(floor_wall),
        ms(ours_cpu) / ms(floor_cpu)
    );
}
