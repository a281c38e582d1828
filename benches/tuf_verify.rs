//! Verifying a long root chain: rootcellar's client against python-tuf's `Updater` and tuftool
//! (awslabs/tough's command line), in the same run, over the same repository.
//!
//! `make bench` (or `cargo bench --bench tuf_verify`). The repository's root is rotated 1000
//! times, threshold 3 of 5: every rotation replaces one custodian key, and root N+1 is signed by
//! the three kept keys of root N and the new one (a threshold of the old root's keys and of its
//! own). The last root also replaces the three online keys, so no client reaches the timestamp,
//! snapshot and targets (signed once, by those keys; targets lists `trusted_root.json`) without
//! having walked the whole chain. Keys are software P-256 keys behind a bench-only `Signer`:
//! signing speed is not what is measured, and 1000 rotations on SoftHSM2 would only make the
//! setup slower.
//!
//! rootcellar verifies the repository on disk (`verify_repository`, in-process); python-tuf
//! refreshes it over HTTP from 127.0.0.1 and downloads the target (`tests/python/tuf_client.py`,
//! timed inside python from creating the Updater to the download, so interpreter start-up is not
//! counted against it); tuftool (`tuftool download`, from the cache `scripts/install-tuftool.sh`
//! installs it in; `make bench` runs that first) reads it from disk too, through `file://` URLs,
//! and downloads the target: timed as a whole process, start-up included (its `--version` is timed
//! beside it). Its download is checked against the target's bytes, and before the rounds it must
//! refuse a copy of the repository with one root in the middle of the chain altered. When tuftool
//! is not installed the bench says so and measures the other two. Rounds alternate; the median of
//! each is compared, as wall time and as CPU time (rootcellar's whole process, all threads;
//! tuftool's whole process, all threads; python-tuf's client thread, without the HTTP server
//! thread), since on a shared 2-core machine wall times move with the load.
//!
//! Then how rootcellar's time and memory grow with the chain: 100, 1000 and 4000 rotations,
//! time per rotation and the heap's peak during verification (a counting allocator), which
//! must stay flat (the client keeps only the keys still in use and a batch of roots).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p256::ecdsa::signature::Signer as _;
use rootcellar::keys::{KeyAlgorithm, KeyError, PublicKey, Signer};
use rootcellar::tuf::{
    sha256_hex, signatures_verified, verify_repository, SignedMetadata, TufKey, VerifyOptions,
};
use serde_json::{json, Value};
use support::{cpu_time, machine_load, median as median_of, Cpu};

/// The heap as the bench sees it, while counting: bytes in use (relative: what was allocated
/// before counting began may be freed during it), and the most since the last reset. Counting is
/// on only for the growth table: two threads updating shared counters on every allocation would
/// slow rootcellar's client in the timed comparison.
struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static HEAP_NOW: AtomicIsize = AtomicIsize::new(0);
static HEAP_PEAK: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on to the system allocator unchanged.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() && COUNTING.load(Ordering::Relaxed) {
            let size = layout.size() as isize;
            let now = HEAP_NOW.fetch_add(size, Ordering::Relaxed) + size;
            HEAP_PEAK.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            HEAP_NOW.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const ROTATIONS: u64 = 1000;
const KEYS: usize = 5;
const THRESHOLD: usize = 3;
const ROUNDS: usize = 5;

/// A software P-256 key: the bench plays every custodian.
struct SoftKey {
    key: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl SoftKey {
    fn random() -> Arc<SoftKey> {
        let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let point = key.verifying_key().to_encoded_point(false);
        let public = PublicKey::from_point(KeyAlgorithm::EcdsaP256, point.as_bytes()).unwrap();
        Arc::new(SoftKey { key, public })
    }

    fn tuf(&self) -> TufKey {
        TufKey::from_public(&self.public).unwrap()
    }
}

impl Signer for SoftKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let sig: p256::ecdsa::Signature = self.key.sign(message);
        Ok(sig.to_der().as_bytes().to_vec())
    }
    fn key_uri(&self) -> String {
        "soft:bench".into()
    }
}

const EXPIRES: &str = "2099-01-01T00:00:00Z";

fn root_payload(version: u64, root_keys: &[Arc<SoftKey>], online: &[Arc<SoftKey>; 3]) -> Value {
    let mut keys = serde_json::Map::new();
    let mut ids = |set: &[Arc<SoftKey>]| -> Vec<String> {
        set.iter()
            .map(|k| {
                let tuf = k.tuf();
                keys.insert(tuf.key_id.clone(), tuf.json);
                tuf.key_id
            })
            .collect()
    };
    let root_ids = ids(root_keys);
    let targets_ids = ids(&online[0..1]);
    let snapshot_ids = ids(&online[1..2]);
    let timestamp_ids = ids(&online[2..3]);
    json!({
        "_type": "root",
        "spec_version": "1.0.0",
        "consistent_snapshot": true,
        "version": version,
        "expires": EXPIRES,
        "keys": keys,
        "roles": {
            "root": {"keyids": root_ids, "threshold": THRESHOLD},
            "targets": {"keyids": targets_ids, "threshold": 1},
            "snapshot": {"keyids": snapshot_ids, "threshold": 1},
            "timestamp": {"keyids": timestamp_ids, "threshold": 1},
        },
    })
}

fn write(path: &Path, metadata: &SignedMetadata) -> Vec<u8> {
    let bytes = metadata.to_bytes();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// Builds the repository in `dir` with `ROTATIONS` rotations; returns the trusted root bytes.
fn build(dir: &Path) -> Vec<u8> {
    build_with(dir, ROTATIONS)
}

/// Builds the repository in `dir` with `rotations` root rotations; returns the trusted root
/// (v1) bytes.
fn build_with(dir: &Path, rotations: u64) -> Vec<u8> {
    let metadata = dir.join("metadata");
    let targets = dir.join("targets");
    std::fs::create_dir_all(&metadata).unwrap();
    std::fs::create_dir_all(&targets).unwrap();
    let online = [SoftKey::random(), SoftKey::random(), SoftKey::random()];
    // The last root's online keys, the only ones timestamp, snapshot and targets are signed by.
    let last_online = [SoftKey::random(), SoftKey::random(), SoftKey::random()];
    let mut custodians: Vec<Arc<SoftKey>> = (0..KEYS).map(|_| SoftKey::random()).collect();

    let mut root = SignedMetadata::new(root_payload(1, &custodians, &online)).unwrap();
    for key in &custodians {
        root.sign_with(key.as_ref()).unwrap();
    }
    let trusted = write(&metadata.join("1.root.json"), &root);
    for version in 2..=rotations + 1 {
        // Replace one custodian key; the three kept keys after it and the new key sign.
        let replaced = (version as usize) % KEYS;
        let newcomer = SoftKey::random();
        custodians[replaced] = newcomer.clone();
        let online_now = if version == rotations + 1 {
            &last_online
        } else {
            &online
        };
        let mut root = SignedMetadata::new(root_payload(version, &custodians, online_now)).unwrap();
        for offset in 1..=THRESHOLD {
            root.sign_with(custodians[(replaced + offset) % KEYS].as_ref())
                .unwrap();
        }
        root.sign_with(newcomer.as_ref()).unwrap();
        write(&metadata.join(format!("{version}.root.json")), &root);
    }

    let content = br#"{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#;
    let hash = sha256_hex(content);
    std::fs::write(targets.join(format!("{hash}.trusted_root.json")), content).unwrap();
    let meta = |version: u64, bytes: &[u8]| json!({"version": version, "length": bytes.len(), "hashes": {"sha256": sha256_hex(bytes)}});
    let mut targets_md = SignedMetadata::new(json!({
        "_type": "targets", "spec_version": "1.0.0", "version": 1, "expires": EXPIRES,
        "targets": {"trusted_root.json": {"length": content.len(), "hashes": {"sha256": hash}}},
    }))
    .unwrap();
    targets_md.sign_with(last_online[0].as_ref()).unwrap();
    let targets_bytes = write(&metadata.join("1.targets.json"), &targets_md);
    let mut snapshot = SignedMetadata::new(json!({
        "_type": "snapshot", "spec_version": "1.0.0", "version": 1, "expires": EXPIRES,
        "meta": {"targets.json": meta(1, &targets_bytes)},
    }))
    .unwrap();
    snapshot.sign_with(last_online[1].as_ref()).unwrap();
    let snapshot_bytes = write(&metadata.join("1.snapshot.json"), &snapshot);
    let mut timestamp = SignedMetadata::new(json!({
        "_type": "timestamp", "spec_version": "1.0.0", "version": 1, "expires": EXPIRES,
        "meta": {"snapshot.json": meta(1, &snapshot_bytes)},
    }))
    .unwrap();
    timestamp.sign_with(last_online[2].as_ref()).unwrap();
    write(&metadata.join("timestamp.json"), &timestamp);
    std::fs::write(dir.join("expected-trusted_root.json"), content).unwrap();
    trusted
}

/// Wall time and CPU time of one verification.
#[derive(Clone, Copy)]
struct Round {
    wall: Duration,
    cpu: Duration,
    /// Signatures verified (rootcellar's rounds only).
    signatures: u64,
}

fn rootcellar_round(trusted: &[u8], dir: &Path) -> Round {
    let cpu = cpu_time(Cpu::Process);
    let signatures = signatures_verified();
    let started = Instant::now();
    let report = verify_repository(trusted, dir, &VerifyOptions::at(jiff::Timestamp::now()))
        .expect("rootcellar verifies the repository");
    let wall = started.elapsed();
    let cpu = cpu_time(Cpu::Process) - cpu;
    let signatures = signatures_verified() - signatures;
    assert_eq!(report.root_version(), ROTATIONS + 1);
    assert_eq!(report.targets.len(), 1);
    Round {
        wall,
        cpu,
        signatures,
    }
}

fn python_round(dir: &Path, round: usize) -> Round {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/tuf_client.py");
    let output = Command::new("python3")
        .arg(script)
        .arg("--repo")
        .arg(dir)
        .arg("--root")
        .arg(dir.join("metadata/1.root.json"))
        .arg("--download-dir")
        .arg(dir.join(format!("python-downloads-{round}")))
        .arg("--max-root-rotations")
        .arg((ROTATIONS + 10).to_string())
        .arg(format!(
            "trusted_root.json={}",
            dir.join("expected-trusted_root.json").display()
        ))
        .output()
        .expect("python3 runs (make bench installs python-tuf)");
    assert!(
        output.status.success(),
        "python-tuf refused the repository: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["root_version"], ROTATIONS + 1);
    Round {
        wall: Duration::from_secs_f64(summary["seconds"].as_f64().unwrap()),
        cpu: Duration::from_secs_f64(summary["cpu_seconds"].as_f64().unwrap()),
        signatures: 0,
    }
}

/// tuftool, as `scripts/install-tuftool.sh` installed it: the binary and its `--version` line.
struct Tuftool {
    bin: PathBuf,
    version: String,
}

/// Finds tuftool in the bench's cache (`scripts/install-tuftool.sh --installed`), or says why not.
fn find_tuftool() -> Result<Tuftool, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-tuftool.sh");
    let found = Command::new(&script)
        .arg("--installed")
        .output()
        .map_err(|e| format!("{} did not run: {e}", script.display()))?;
    if !found.status.success() {
        return Err(String::from_utf8_lossy(&found.stderr).trim().to_string());
    }
    let bin = PathBuf::from(String::from_utf8_lossy(&found.stdout).trim());
    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} did not run: {e}", bin.display()))?;
    if !version.status.success() {
        return Err(format!("{} --version failed", bin.display()));
    }
    Ok(Tuftool {
        bin,
        version: String::from_utf8_lossy(&version.stdout).trim().to_string(),
    })
}

/// `tuftool download` of the one target from the repository in `repo`, read through `file://`
/// URLs, into `out` (which must not exist): the finished process's output.
fn tuftool_download(tuftool: &Tuftool, repo: &Path, out: &Path) -> std::process::Output {
    let url = |sub: &str| format!("file://{}/{sub}/", repo.display());
    Command::new(&tuftool.bin)
        .arg("download")
        .arg("--root")
        .arg(repo.join("metadata/1.root.json"))
        .arg("--metadata-url")
        .arg(url("metadata"))
        .arg("--targets-url")
        .arg(url("targets"))
        .arg("--target-name")
        .arg("trusted_root.json")
        .arg(out)
        .output()
        .expect("tuftool runs")
}

/// tuftool must refuse the chain when one root in its middle is altered after signing (a
/// contender that skipped signature checks, or stopped walking early, would be a false baseline;
/// the last root's new online keys catch a walk that stops early and succeeds).
fn tuftool_refuses_altered_root(tuftool: &Tuftool, dir: &Path) {
    let altered = tempfile::tempdir().unwrap();
    for sub in ["metadata", "targets"] {
        let status = Command::new("cp")
            .arg("-r")
            .arg(dir.join(sub))
            .arg(altered.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let middle = altered
        .path()
        .join(format!("metadata/{}.root.json", ROTATIONS / 2 + 1));
    let mut root: Value = serde_json::from_slice(&std::fs::read(&middle).unwrap()).unwrap();
    root["signed"]["expires"] = json!("2098-01-01T00:00:00Z");
    std::fs::write(&middle, serde_json::to_vec(&root).unwrap()).unwrap();
    let output = tuftool_download(tuftool, altered.path(), &altered.path().join("out"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("Failed to verify root metadata"),
        "tuftool accepted a chain whose root {} was altered after signing ({}): {stderr}",
        ROTATIONS / 2 + 1,
        output.status
    );
}

fn tuftool_round(tuftool: &Tuftool, dir: &Path, round: usize) -> Round {
    let out = dir.join(format!("tuftool-downloads-{round}"));
    let cpu = cpu_time(Cpu::Children);
    let started = Instant::now();
    let output = tuftool_download(tuftool, dir, &out);
    let wall = started.elapsed();
    let cpu = cpu_time(Cpu::Children) - cpu;
    assert!(
        output.status.success(),
        "tuftool refused the repository ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read(out.join("trusted_root.json")).unwrap(),
        std::fs::read(dir.join("expected-trusted_root.json")).unwrap(),
        "tuftool's download differs from the target"
    );
    Round {
        wall,
        cpu,
        signatures: 0,
    }
}

/// tuftool's process start-up, the median of 20 runs of `tuftool --version` (part of every
/// `tuftool download` timed: the process is timed whole).
fn tuftool_startup(tuftool: &Tuftool) -> Duration {
    let times = (0..20)
        .map(|_| {
            let started = Instant::now();
            let status = Command::new(&tuftool.bin)
                .arg("--version")
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
            started.elapsed()
        })
        .collect();
    median_of(times)
}

fn median(rounds: &[Round], part: impl Fn(&Round) -> Duration) -> Duration {
    let mut times: Vec<Duration> = rounds.iter().map(part).collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let trusted = build(dir.path());
    // TUF_VERIFY_BENCH_KEEP=DIR keeps a copy of the repository, to profile a client on it.
    if let Some(keep) = std::env::var_os("TUF_VERIFY_BENCH_KEEP") {
        let status = Command::new("cp")
            .arg("-r")
            .arg(dir.path())
            .arg(&keep)
            .status()
            .unwrap();
        assert!(status.success());
    }
    println!(
        "built a repository with {} root versions (threshold {THRESHOLD} of {KEYS}) in {:.1} s",
        ROTATIONS + 1,
        started.elapsed().as_secs_f64()
    );

    let tuftool = find_tuftool();
    if let Ok(tuftool) = &tuftool {
        tuftool_refuses_altered_root(tuftool, dir.path());
    }

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut tough = Vec::new();
    for round in 0..ROUNDS {
        ours.push(rootcellar_round(&trusted, dir.path()));
        theirs.push(python_round(dir.path(), round));
        if let Ok(tuftool) = &tuftool {
            tough.push(tuftool_round(tuftool, dir.path(), round));
        }
    }
    let load = machine_load();
    println!(
        "TUF client, {ROTATIONS} root rotations (3 of 5) then timestamp/snapshot/targets and one \
         target, median of {ROUNDS} alternating rounds"
    );
    println!("                                            wall time      CPU time");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (their_wall, their_cpu) = (median(&theirs, |r| r.wall), median(&theirs, |r| r.cpu));
    let (our_wall, our_cpu) = (median(&ours, |r| r.wall), median(&ours, |r| r.cpu));
    println!(
        "  python-tuf Updater (HTTP on 127.0.0.1) : {:>9.1} ms  {:>9.1} ms (client thread)",
        ms(their_wall),
        ms(their_cpu)
    );
    let tough_median = match &tuftool {
        Ok(tuftool) => {
            let (wall, cpu) = (median(&tough, |r| r.wall), median(&tough, |r| r.cpu));
            println!(
                "  tuftool download (file://, disk)       : {:>9.1} ms  {:>9.1} ms (all threads; {})",
                ms(wall),
                ms(cpu),
                tuftool.version
            );
            Some((wall, cpu))
        }
        Err(why) => {
            println!("  tuftool                                : not compared: {why}");
            None
        }
    };
    println!(
        "  rootcellar verify_repository (disk)    : {:>9.1} ms  {:>9.1} ms (all threads)",
        ms(our_wall),
        ms(our_cpu)
    );
    println!(
        "  ratio (rootcellar / python-tuf)        : {:>9.3}     {:>9.3}      (target: at most 0.05, wall)",
        our_wall.as_secs_f64() / their_wall.as_secs_f64(),
        our_cpu.as_secs_f64() / their_cpu.as_secs_f64()
    );
    if let (Ok(tuftool), Some((wall, cpu))) = (&tuftool, tough_median) {
        println!(
            "  ratio (rootcellar / tuftool)           : {:>9.3}     {:>9.3}      (target: at most 0.1, wall)",
            our_wall.as_secs_f64() / wall.as_secs_f64(),
            our_cpu.as_secs_f64() / cpu.as_secs_f64()
        );
        println!(
            "  tuftool's start-up (--version, in its time above): {:.1} ms",
            ms(tuftool_startup(tuftool))
        );
    }
    println!("  machine as the rounds ended            : {load}");
    // The trusted root's own signatures are not checked again; each rotation needs the old
    // root's threshold and its own, 3 when the kept keys sign; then timestamp, snapshot, targets.
    let signatures = ours[0].signatures;
    println!(
        "  rootcellar signature checks            : {signatures} ({:.2} per rotation; floor {})",
        signatures as f64 / ROTATIONS as f64,
        ROTATIONS * THRESHOLD as u64 + 3
    );
    scaling();
}

/// rootcellar's time per rotation and heap peak along chains of 100, 1000 and 4000 rotations
/// (median of three runs each).
fn scaling() {
    println!("TUF client growth with the chain (rootcellar, median of 3):");
    println!("  rotations   wall time   per rotation   heap peak during verification");
    let mut first: Option<(f64, usize)> = None;
    for rotations in [100u64, 1000, 4000] {
        let dir = tempfile::tempdir().unwrap();
        let trusted = build_with(dir.path(), rotations);
        let mut runs = Vec::new();
        for _ in 0..3 {
            let options = VerifyOptions::at(jiff::Timestamp::now());
            let base = HEAP_NOW.load(Ordering::Relaxed);
            HEAP_PEAK.store(base, Ordering::Relaxed);
            COUNTING.store(true, Ordering::Relaxed);
            let started = Instant::now();
            let report = verify_repository(&trusted, dir.path(), &options)
                .expect("rootcellar verifies the repository");
            let wall = started.elapsed();
            COUNTING.store(false, Ordering::Relaxed);
            assert_eq!(report.root_version(), rotations + 1);
            drop(report);
            let peak = (HEAP_PEAK.load(Ordering::Relaxed) - base).max(0) as usize;
            runs.push((wall, peak));
        }
        runs.sort();
        let (wall, peak) = runs[1];
        let per_rotation = wall.as_secs_f64() * 1e6 / rotations as f64;
        let (base_rate, base_peak) = *first.get_or_insert((per_rotation, peak));
        println!(
            "  {rotations:>9}   {:>7.1} ms   {per_rotation:>7.1} µs ({:.2}×)   {:>7.0} KiB ({:.2}×)",
            wall.as_secs_f64() * 1e3,
            per_rotation / base_rate,
            peak as f64 / 1024.0,
            peak as f64 / base_peak as f64
        );
    }
}
