//! `rootcellar import`, the cluster side: response bundles signed by the appliance's bundle key
//! in a real SoftHSM2 token, carrying TUF repositories signed by custodian tokens, imported
//! before and after a root rotation. The mirror is read by python-tuf; the manifests validate
//! against the upstream CRDs (`../shared/crds`); the TrustRoot's `mirrorFS` unpacks to a
//! repository that both rootcellar's verifier and python-tuf accept; refused imports write
//! nothing and leave the state as it was.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use serde_json::Value;

use crate::common::*;

fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The upstream CRDs, beside the checkout as `../shared/crds` (in CI as on a developer machine).
fn crds_dir() -> PathBuf {
    let dir = manifest_path("../shared/crds");
    assert!(
        dir.join("policy-controller_trustroots.yaml").exists(),
        "the upstream CRDs are expected in {} (the shared/ directory beside the checkout)",
        dir.display()
    );
    dir
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn b64_decode(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Every file under `dir`, relative, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let relative = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// A mirror (metadata at the top, `targets/`) as python-tuf's client and `tuf verify` read a
/// repository: `metadata/` and `targets/` beside each other, here as symbolic links.
fn served_layout(mirror: &Path, at: &Path) -> PathBuf {
    std::fs::create_dir(at).unwrap();
    let mirror = mirror.canonicalize().unwrap();
    std::os::unix::fs::symlink(&mirror, at.join("metadata")).unwrap();
    std::os::unix::fs::symlink(mirror.join("targets"), at.join("targets")).unwrap();
    at.to_path_buf()
}

/// python-tuf's Updater over HTTP: the summary, or the error.
fn python_tuf(served: &Path, root: &Path, expected_trusted_root: &Path) -> Result<Value, String> {
    let downloads = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(manifest_path("tests/python/tuf_client.py"))
        .arg("--repo")
        .arg(served)
        .arg("--root")
        .arg(root)
        .arg("--download-dir")
        .arg(downloads.path())
        .arg(format!(
            "trusted_root.json={}",
            expected_trusted_root.display()
        ))
        .output()
        .expect("python3 runs");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(stderr(&out))
    }
}

/// The manifests validated against the CRDs: the documents, or the validator's message.
fn validate_manifests(files: &[PathBuf]) -> Result<Vec<Value>, String> {
    let out = Command::new("python3")
        .arg(manifest_path("tests/python/crd_validate.py"))
        .arg("--crds")
        .arg(crds_dir())
        .args(files)
        .output()
        .expect("python3 runs");
    if out.status.success() {
        let docs: Value = serde_json::from_slice(&out.stdout).unwrap();
        Ok(docs.as_array().unwrap().clone())
    } else {
        Err(stderr(&out))
    }
}

/// Unpacks a tar.gz into `dir`, refusing anything but plain files and directories under it.
fn untar(bytes: &[u8], dir: &Path) -> Vec<String> {
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut tar_bytes)
        .unwrap();
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        assert!(!name.contains(".."), "{name}");
        let kind = entry.header().entry_type();
        assert!(kind.is_dir() || kind.is_file(), "{name}: {kind:?}");
        assert_eq!(entry.header().mtime().unwrap(), 315_532_800, "{name}");
        assert!(entry.unpack_in(dir).unwrap());
        names.push(name);
    }
    names
}

/// How a response bundle names the target files it carries.
#[derive(Clone, Copy)]
enum Naming {
    /// As the repository stores them: `<sha256>.trusted_root.json`.
    Stored,
    /// By target name: `trusted_root.json` (as the demo's response bundle does).
    Plain,
}

/// A rehearsal: custodian tokens for the TUF root, the appliance's token for the other roles,
/// its bundle key and a stranger's key, a root CA with a Fulcio intermediate, and log keys.
struct Site {
    hsm: SoftHsm,
    uris: BTreeMap<String, String>,
    keys_file: PathBuf,
    root_ca: String,
    bundle_key_pem: PathBuf,
}

impl Site {
    fn new(custodians: &[&str]) -> Self {
        let hsm = SoftHsm::new("appliance");
        let mut uris = BTreeMap::new();
        for (n, name) in custodians.iter().enumerate() {
            let token = format!("custodian-{}", n + 1);
            hsm.add_token(&token);
            uris.insert(name.to_string(), hsm.generate(&token, "tuf-root", "p256"));
        }
        for role in ["targets", "snapshot", "timestamp"] {
            uris.insert(
                role.to_string(),
                hsm.generate("appliance", &format!("tuf-{role}"), "p256"),
            );
        }
        for key in ["bundle", "stranger"] {
            uris.insert(key.to_string(), hsm.generate("appliance", key, "p256"));
        }
        let keys_file = hsm.path("keys.toml");
        let mut text = String::from("[keys]\n");
        for (name, uri) in &uris {
            text.push_str(&format!("{name} = {}\n", toml::Value::String(uri.clone())));
        }
        std::fs::write(&keys_file, text).unwrap();

        let info: Value = serde_json::from_slice(
            &ok(hsm
                .rootcellar()
                .args(["key", "show", &uris["bundle"], "--json"]))
            .stdout,
        )
        .unwrap();
        let bundle_key_pem = hsm.path("appliance-bundle-key.pem");
        std::fs::write(&bundle_key_pem, info["public_key_pem"].as_str().unwrap()).unwrap();

        let root_ca = hsm.generate("appliance", "root-ca", "p384");
        ok(hsm
            .rootcellar()
            .args(["x509", "root", "--key", &root_ca])
            .args(["--subject", "O=site,CN=site root", "--out", "root.pem"]));
        Site {
            hsm,
            uris,
            keys_file,
            root_ca,
            bundle_key_pem,
        }
    }

    fn cli(&self) -> Command {
        self.hsm.rootcellar()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.hsm.path(name)
    }

    /// A Fulcio intermediate `NAME.pem` issued by the root from an openssl CSR.
    fn intermediate(&self, name: &str) {
        let csr = openssl_csr(
            self.hsm.dir.path(),
            name,
            "prime256v1",
            &format!("/O=site/CN={name}"),
        );
        ok(self
            .cli()
            .args(["x509", "issue", "--profile", "fulcio"])
            .args(["--csr", csr.to_str().unwrap(), "--issuer-cert", "root.pem"])
            .args([
                "--issuer-key",
                &self.root_ca,
                "--out",
                &format!("{name}.pem"),
            ]));
    }

    /// A log's public key `NAME.pub` (its private half stays with the online side).
    fn log_key(&self, name: &str) {
        let dir = self.hsm.dir.path();
        let key = dir.join(format!("{name}.key"));
        assert!(openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            key.to_str().unwrap()
        ])
        .status
        .success());
        assert!(openssl(&[
            "ec",
            "-in",
            key.to_str().unwrap(),
            "-pubout",
            "-out",
            dir.join(format!("{name}.pub")).to_str().unwrap()
        ])
        .status
        .success());
    }

    /// `OUT/trusted_root.json` from a Fulcio intermediate, a Rekor key and the CT log key.
    fn trusted_root(
        &self,
        out: &str,
        fulcio: &str,
        rekor: &str,
        previous: Option<&Path>,
    ) -> PathBuf {
        let config = self.path(&format!("{out}.toml"));
        std::fs::write(
            &config,
            format!(
                "[[certificate_authorities]]\nuri = \"https://fulcio.site.internal\"\n\
                 chain = [\"{fulcio}.pem\", \"root.pem\"]\n\n\
                 [[tlogs]]\nbase_url = \"https://rekor.site.internal\"\npublic_key = \"{rekor}.pub\"\n\n\
                 [[ctlogs]]\nbase_url = \"https://ctfe.site.internal\"\npublic_key = \"ctfe.pub\"\n"
            ),
        )
        .unwrap();
        std::fs::create_dir(self.path(out)).unwrap();
        let mut cmd = self.cli();
        cmd.args(["trustroot", "build", "--config"])
            .arg(&config)
            .args(["--out", out, "--time", &clock_time()]);
        if let Some(previous) = previous {
            cmd.arg("--previous").arg(previous);
        }
        ok(&mut cmd);
        self.path(out).join("trusted_root.json")
    }

    /// A policy: these root keys and threshold; targets, snapshot, timestamp on the appliance.
    fn policy(&self, file: &str, root: &[&str], threshold: u64) -> PathBuf {
        let names: Vec<String> = root.iter().map(|n| format!("{n:?}")).collect();
        let text = format!(
            "consistent_snapshot = true\nmode = \"offline\"\n\
             [roles.root]\nkeys = [{}]\nthreshold = {threshold}\nexpires_days = 182\nsigning_days = 42\n\
             [roles.targets]\nkeys = [\"targets\"]\nthreshold = 1\nexpires_days = 182\n\
             [roles.snapshot]\nkeys = [\"snapshot\"]\nthreshold = 1\nexpires_days = 21\nsigning_days = 7\n\
             [roles.timestamp]\nkeys = [\"timestamp\"]\nthreshold = 1\nexpires_days = 7\nsigning_days = 2\n",
            names.join(", ")
        );
        let path = self.path(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn init(&self, repo: &Path, policy: &Path, target: &Path) {
        ok(self
            .cli()
            .args(["tuf", "init", "--policy"])
            .arg(policy)
            .arg("--keys")
            .arg(&self.keys_file)
            .arg("--out")
            .arg(repo)
            .arg("--target")
            .arg(target));
    }

    /// A response bundle carrying `repo` (metadata and target files under their stored
    /// names), signed by `key`.
    fn respond(&self, repo: &Path, name: &str, key: &str) -> PathBuf {
        self.respond_with(repo, name, key, Naming::Stored)
    }

    /// A response bundle carrying `repo`, target files named as `naming` says.
    fn respond_with(&self, repo: &Path, name: &str, key: &str, naming: Naming) -> PathBuf {
        let out = self.path(name);
        let listing = |dir: &str| -> Vec<PathBuf> {
            let mut files: Vec<PathBuf> = std::fs::read_dir(repo.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            files
        };
        let transcript = self.path("transcript.txt");
        std::fs::write(&transcript, "rehearsal: TUF repository published\n").unwrap();
        // By target name, only the current targets can travel (older versions share names).
        let current: Vec<String> = {
            let newest = listing("metadata")
                .into_iter()
                .filter(|p| p.to_string_lossy().ends_with(".targets.json"))
                .max_by_key(|p| {
                    let name = p.file_name().unwrap().to_str().unwrap();
                    name.split('.').next().unwrap().parse::<u64>().unwrap()
                })
                .unwrap();
            let targets = read_json(&newest)["signed"]["targets"].clone();
            targets
                .as_object()
                .unwrap()
                .iter()
                .map(|(name, t)| format!("{}.{name}", t["hashes"]["sha256"].as_str().unwrap()))
                .collect()
        };
        let targets: Vec<String> = listing("targets")
            .iter()
            .filter(|path| {
                matches!(naming, Naming::Stored) || current.iter().any(|c| path.ends_with(c))
            })
            .map(|path| {
                let stored = path.file_name().unwrap().to_str().unwrap();
                match naming {
                    Naming::Stored => path.display().to_string(),
                    // `<sha256>.NAME` travels as NAME.
                    Naming::Plain => format!("{}={}", &stored[65..], path.display()),
                }
            })
            .collect();
        let mut cmd = self.cli();
        cmd.args(["bundle", "respond", "--key", &self.uris[key], "--out"])
            .arg(&out)
            .arg("--tuf-metadata")
            .args(listing("metadata"))
            .arg("--transcript")
            .arg(&transcript);
        if !targets.is_empty() {
            cmd.arg("--file").args(&targets);
        }
        ok(&mut cmd);
        out
    }

    /// Runs `rootcellar import` with these arguments (after `--bundle BUNDLE --out OUT`).
    fn import(&self, bundle: &Path, out: &Path, extra: &[&str]) -> Output {
        self.cli()
            .arg("import")
            .arg("--bundle")
            .arg(bundle)
            .arg("--out")
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    }

    fn import_ok(&self, bundle: &Path, out: &Path, extra: &[&str]) -> Value {
        let result = self.import(bundle, out, &[extra, &["--json"]].concat());
        assert!(
            result.status.success(),
            "import failed: {}{}",
            String::from_utf8_lossy(&result.stdout),
            stderr(&result)
        );
        serde_json::from_slice(&result.stdout).unwrap()
    }

    /// Asserts that the import fails with one message containing `expected`, creates no output
    /// and leaves no temporary directory; the caller checks the state.
    fn import_refused(&self, bundle: &Path, extra: &[&str], expected: &str) {
        let out = self.path("refused-out");
        let result = self.import(bundle, &out, extra);
        let message = stderr(&result);
        assert!(!result.status.success(), "imported ({expected})");
        assert!(
            message.contains(expected),
            "expected {expected:?} in: {message}"
        );
        // Without --time, a first line says the import checked at the clock: a notice, not a
        // second message.
        let messages = message
            .trim_end()
            .lines()
            .filter(|line| !line.starts_with("rootcellar: no --time given: checking at"))
            .count();
        assert_eq!(messages, 1, "one message: {message}");
        assert!(!out.exists(), "no output may be written ({expected})");
        let strays: Vec<_> = std::fs::read_dir(self.hsm.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(strays.is_empty(), "temporary directories left: {strays:?}");
    }
}

/// The changes of an import.json, as `kind change description` lines, sorted.
fn trust_changes(report: &Value) -> Vec<String> {
    let mut lines: Vec<String> = report["changes"]["trust"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{} {} {}",
                t["kind"].as_str().unwrap(),
                t["change"].as_str().unwrap(),
                t["description"].as_str().unwrap()
            )
        })
        .collect();
    lines.sort();
    lines
}

fn keyids(root: &Value) -> Vec<String> {
    root["signed"]["roles"]["root"]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn import_before_and_after_a_rotation_writes_a_mirror_manifests_and_the_changes() {
    let site = Site::new(&["c1", "c2", "c3"]);
    site.intermediate("fulcio");
    site.log_key("rekor");
    site.log_key("ctfe");
    let tr1 = site.trusted_root("tr-v1", "fulcio", "rekor", None);
    let repo = site.path("repo");
    let p1 = site.policy("p1.toml", &["c1", "c2"], 2);
    site.init(&repo, &p1, &tr1);
    let pinned = site.path("pinned-1.root.json");
    std::fs::copy(repo.join("metadata/1.root.json"), &pinned).unwrap();
    let r1 = site.respond(&repo, "response-1.rcb", "bundle");

    // First import: the pinned root and the appliance's bundle key.
    let state = site.path("state");
    let out1 = site.path("import-1");
    let report = site.import_ok(
        &r1,
        &out1,
        &[
            "--root",
            pinned.to_str().unwrap(),
            "--bundle-key",
            site.bundle_key_pem.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--image",
            "registry.site.internal/apps/**",
            "--image",
            "registry.site.internal/base/**",
            "--issuer",
            "https://oidc.site.internal",
            "--identity",
            "ci@site.internal",
            "--identity",
            "release@site.internal",
        ],
    );
    assert_eq!(report["tuf"]["root_version"], 1);
    assert_eq!(report["policies"]["source"], "given");
    assert_eq!(report["changes"]["first_import"], true);
    let written: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .filter(|f| !f.starts_with("repository/"))
        .collect();
    assert_eq!(
        written,
        [
            "CHANGES.md",
            "import.json",
            "manifests/kyverno-imagevalidatingpolicy.yaml",
            "manifests/policy-controller-clusterimagepolicy.yaml",
            "manifests/policy-controller-trustroot.yaml",
            "trusted_root.json",
        ]
    );
    assert_eq!(
        std::fs::read(out1.join("trusted_root.json")).unwrap(),
        std::fs::read(&tr1).unwrap()
    );
    assert_eq!(
        read_json(&out1.join("import.json"))["changes"],
        report["changes"]
    );
    assert_eq!(
        trust_changes(&report),
        [
            "CT log added https://ctfe.site.internal",
            "certificate authority added O=site, CN=fulcio at https://fulcio.site.internal",
            "transparency log added https://rekor.site.internal",
        ]
    );
    let changes = std::fs::read_to_string(out1.join("CHANGES.md")).unwrap();
    assert!(
        changes.contains("First import: trust starts at the pinned TUF root v1."),
        "{changes}"
    );
    assert!(
        changes.contains("first metadata to expire is timestamp v1"),
        "{changes}"
    );

    // The mirror: metadata at the top, target files under targets/; python-tuf refreshes it.
    let mirror = out1.join("repository");
    let mirror_files: Vec<String> = tree(&mirror).into_keys().collect();
    let tr1_sha = sha256_hex(&std::fs::read(&tr1).unwrap());
    assert_eq!(
        mirror_files,
        [
            "1.root.json".to_string(),
            "1.snapshot.json".into(),
            "1.targets.json".into(),
            format!("targets/{tr1_sha}.trusted_root.json"),
            "timestamp.json".into(),
        ]
    );
    let served = served_layout(&mirror, &site.path("served-1"));
    let theirs = python_tuf(&served, &pinned, &tr1).unwrap();
    assert_eq!(theirs["root_version"], 1);
    assert_eq!(theirs["targets"]["trusted_root.json"]["sha256"], tr1_sha);

    // The manifests validate against the upstream CRDs.
    let manifests: Vec<PathBuf> = [
        "policy-controller-trustroot.yaml",
        "policy-controller-clusterimagepolicy.yaml",
        "kyverno-imagevalidatingpolicy.yaml",
    ]
    .iter()
    .map(|m| out1.join("manifests").join(m))
    .collect();
    let docs = validate_manifests(&manifests).unwrap();
    let kinds: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d["apiVersion"].as_str().unwrap(),
                d["kind"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "policy.sigstore.dev/v1alpha1 TrustRoot",
            "policy.sigstore.dev/v1beta1 ClusterImagePolicy",
            "policies.kyverno.io/v1 ImageValidatingPolicy",
        ]
    );
    let trust_root = &docs[0]["document"];
    let cip = &docs[1]["document"];
    let kyverno = &docs[2]["document"];
    assert_eq!(
        cip["spec"]["authorities"][0]["keyless"]["trustRootRef"],
        "rootcellar"
    );
    assert_eq!(
        cip["spec"]["authorities"][0]["ctlog"]["trustRootRef"],
        "rootcellar"
    );
    let carried = kyverno["spec"]["attestors"][0]["cosign"]["trustedRoot"]["value"]
        .as_str()
        .unwrap();
    assert_eq!(carried.as_bytes(), std::fs::read(&tr1).unwrap());
    // Both policies cover the same images for the same signers, and nothing is left to fill in.
    let globs = serde_json::json!([
        {"glob": "registry.site.internal/apps/**"},
        {"glob": "registry.site.internal/base/**"},
    ]);
    assert_eq!(cip["spec"]["images"], globs);
    assert_eq!(kyverno["spec"]["matchImageReferences"], globs);
    let identities = serde_json::json!([
        {"issuer": "https://oidc.site.internal", "subject": "ci@site.internal"},
        {"issuer": "https://oidc.site.internal", "subject": "release@site.internal"},
    ]);
    assert_eq!(
        cip["spec"]["authorities"][0]["keyless"]["identities"],
        identities
    );
    assert_eq!(
        kyverno["spec"]["attestors"][0]["cosign"]["keyless"]["identities"],
        identities
    );
    // Every container kind of Kyverno's `images` variable is checked.
    let expression = kyverno["spec"]["validations"][0]["expression"]
        .as_str()
        .unwrap();
    for kind in ["containers", "initContainers", "ephemeralContainers"] {
        assert!(
            expression.contains(&format!(
                "images.{kind}.map(image, verifyImageSignatures(image, [attestors.rootcellar])).all(e, e > 0)"
            )),
            "{kind}: {expression}"
        );
    }
    for manifest in &manifests {
        let text = std::fs::read_to_string(manifest).unwrap();
        assert!(
            !text.contains("example.internal") && !text.contains("TEMPLATE"),
            "{}: {text}",
            manifest.display()
        );
    }

    // The validator is not vacuous: an unknown field and a wrong type are refused.
    let mut bad = trust_root.clone();
    bad["spec"]["repository"]["mirrorFs"] = "x".into();
    let bad_file = site.path("bad-trustroot.yaml");
    std::fs::write(&bad_file, serde_json::to_string(&bad).unwrap()).unwrap();
    let err = validate_manifests(std::slice::from_ref(&bad_file)).unwrap_err();
    assert!(
        err.contains("mirrorFs") && err.contains("Additional properties"),
        "{err}"
    );
    let mut bad = kyverno.clone();
    bad["spec"]["validationActions"] = Value::Array(vec!["Reject".into()]);
    std::fs::write(&bad_file, serde_json::to_string(&bad).unwrap()).unwrap();
    let err = validate_manifests(&[bad_file]).unwrap_err();
    assert!(err.contains("validationActions"), "{err}");

    // The TrustRoot's root is the verified root; its mirrorFS unpacks (under repository/) to a
    // repository that rootcellar's verifier and python-tuf accept.
    let repository = &trust_root["spec"]["repository"];
    assert_eq!(repository["trustedRootTarget"], "trusted_root.json");
    let root_bytes = b64_decode(repository["root"].as_str().unwrap());
    assert_eq!(root_bytes, std::fs::read(&pinned).unwrap());
    let unpacked = site.path("mirrorfs-1");
    std::fs::create_dir(&unpacked).unwrap();
    let names = untar(
        &b64_decode(repository["mirrorFS"].as_str().unwrap()),
        &unpacked,
    );
    assert_eq!(names[0], "repository/");
    assert_eq!(tree(&unpacked.join("repository")), tree(&mirror));
    let served = served_layout(
        &unpacked.join("repository"),
        &site.path("served-mirrorfs-1"),
    );
    let manifest_root = site.path("manifest-root.json");
    std::fs::write(&manifest_root, &root_bytes).unwrap();
    let ours = ok(site
        .cli()
        .args(["tuf", "verify", "--json", "--trusted-root"])
        .arg(&manifest_root)
        .arg(&served));
    let ours: Value = serde_json::from_slice(&ours.stdout).unwrap();
    assert_eq!(ours["targets"][0]["name"], "trusted_root.json");
    python_tuf(&served, &manifest_root, &tr1).unwrap();

    // Rotation: root keys c1, c2 (2 of 2) → c1, c3 (2 of 2); a new Fulcio intermediate and
    // Rekor key, the old ones retired in trusted_root.json.
    site.intermediate("fulcio-2");
    site.log_key("rekor-2");
    let tr2 = site.trusted_root("tr-v2", "fulcio-2", "rekor-2", Some(&tr1));
    let p2 = site.policy("p2.toml", &["c1", "c3"], 2);
    ok(site
        .cli()
        .args(["tuf", "rotate", "--repo"])
        .arg(&repo)
        .arg("--policy")
        .arg(&p2)
        .arg("--keys")
        .arg(&site.keys_file));
    for key in ["c1", "c2", "c3"] {
        ok(site
            .cli()
            .args(["tuf", "sign", "--repo"])
            .arg(&repo)
            .args(["--key", &site.uris[key]]));
    }
    ok(site
        .cli()
        .args(["tuf", "targets", "add", "--repo"])
        .arg(&repo)
        .arg(&tr2)
        .arg("--policy")
        .arg(&p2));
    ok(site
        .cli()
        .args(["tuf", "sign", "--repo"])
        .arg(&repo)
        .args(["--key", &site.uris["targets"]]));
    ok(site
        .cli()
        .args(["tuf", "publish", "--repo"])
        .arg(&repo)
        .arg("--policy")
        .arg(&p2)
        .arg("--keys")
        .arg(&site.keys_file));
    let r2 = site.respond_with(&repo, "response-2.rcb", "bundle", Naming::Plain);

    // Second import: from the state alone (its root and its pinned bundle key).
    let state_before = tree(&state);
    let out2 = site.path("import-2");
    let report = site.import_ok(&r2, &out2, &["--state", state.to_str().unwrap()]);
    // The admission policy recorded by the first import is written again.
    assert_eq!(report["policies"]["source"], "kept");
    let kept = validate_manifests(&[
        out2.join("manifests/policy-controller-clusterimagepolicy.yaml"),
        out2.join("manifests/kyverno-imagevalidatingpolicy.yaml"),
    ])
    .unwrap();
    assert_eq!(kept[0]["document"]["spec"]["images"], globs);
    assert_eq!(
        kept[1]["document"]["spec"]["attestors"][0]["cosign"]["keyless"]["identities"],
        identities
    );
    let changes = &report["changes"];
    assert_eq!(changes["first_import"], false);
    assert_eq!(changes["root"]["from"], 1);
    assert_eq!(changes["root"]["to"], 2);
    let v1 = read_json(&repo.join("metadata/1.root.json"));
    let v2 = read_json(&repo.join("metadata/2.root.json"));
    let (old, new) = (keyids(&v1), keyids(&v2));
    let added: Vec<&String> = new.iter().filter(|k| !old.contains(k)).collect();
    let removed: Vec<&String> = old.iter().filter(|k| !new.contains(k)).collect();
    assert_eq!(
        changes["keys"],
        serde_json::json!([
            {"role": "root", "keyid": added[0], "change": "added"},
            {"role": "root", "keyid": removed[0], "change": "removed"},
        ])
    );
    assert_eq!(changes["thresholds"], serde_json::json!([]));
    let tr2_sha = sha256_hex(&std::fs::read(&tr2).unwrap());
    assert_eq!(
        changes["target_files"],
        serde_json::json!([{"name": "trusted_root.json", "change": "changed", "sha256": tr2_sha}])
    );
    assert_eq!(
        trust_changes(&report),
        [
            "certificate authority added O=site, CN=fulcio-2 at https://fulcio.site.internal",
            "certificate authority retired O=site, CN=fulcio at https://fulcio.site.internal",
            "transparency log added https://rekor.site.internal",
            "transparency log retired https://rekor.site.internal",
        ]
    );
    let text = std::fs::read_to_string(out2.join("CHANGES.md")).unwrap();
    for line in [
        "- TUF root: v1 → v2",
        &format!("- root key added: {}", added[0]),
        &format!("- root key removed: {}", removed[0]),
        "- target trusted_root.json: changed",
        "- certificate authority retired: O=site, CN=fulcio at https://fulcio.site.internal",
        "- certificate authority added: O=site, CN=fulcio-2 at https://fulcio.site.internal",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    assert!(!text.contains("First import"), "{text}");

    // The state advanced: root v2, both roots kept; the new mirror holds both, and python-tuf
    // walks it from the root pinned at the start.
    let record = read_json(&state.join("state.json"));
    assert_eq!(record["root_version"], 2);
    assert_eq!(record["imports"], 2);
    assert!(state.join("roots/1.root.json").exists() && state.join("roots/2.root.json").exists());
    assert_ne!(tree(&state), state_before);
    let mirror = out2.join("repository");
    assert!(mirror.join("1.root.json").exists() && mirror.join("2.root.json").exists());
    let served = served_layout(&mirror, &site.path("served-2"));
    let theirs = python_tuf(&served, &pinned, &tr2).unwrap();
    assert_eq!(theirs["root_version"], 2);
    let docs =
        validate_manifests(&[out2.join("manifests/policy-controller-trustroot.yaml")]).unwrap();
    let root_bytes = b64_decode(
        docs[0]["document"]["spec"]["repository"]["root"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        root_bytes,
        std::fs::read(repo.join("metadata/2.root.json")).unwrap()
    );

    // Importing the first bundle again is a rollback to root v1: refused, state unchanged.
    let state_now = tree(&state);
    site.import_refused(
        &r1,
        &["--state", state.to_str().unwrap()],
        "rollback check failed: the bundle's newest root is v1, older than the root v2 this cluster already trusts",
    );
    assert_eq!(tree(&state), state_now);
}

#[test]
fn bad_bundles_and_bad_trust_are_refused_with_one_message_and_nothing_written() {
    let site = Site::new(&["c1", "c2"]);
    site.intermediate("fulcio");
    site.log_key("rekor");
    site.log_key("ctfe");
    let tr = site.trusted_root("tr", "fulcio", "rekor", None);
    let policy = site.policy("p.toml", &["c1"], 1);
    let repo = site.path("repo");
    site.init(&repo, &policy, &tr);
    let pinned = site.path("pinned-1.root.json");
    std::fs::copy(repo.join("metadata/1.root.json"), &pinned).unwrap();
    let good = site.respond(&repo, "good.rcb", "bundle");
    let key = site.bundle_key_pem.to_str().unwrap();
    let pinned_arg = pinned.to_str().unwrap();

    // A state holding root v1, to be protected by every refusal below. No admission policy
    // given: the trust is installed, and no image policy is written.
    let state = site.path("state");
    let first = site.import_ok(
        &good,
        &site.path("first"),
        &[
            "--root",
            pinned_arg,
            "--bundle-key",
            key,
            "--state",
            state.to_str().unwrap(),
        ],
    );
    assert_eq!(first["policies"]["source"], "none");
    let manifests: Vec<String> = std::fs::read_dir(site.path("first/manifests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(manifests, ["policy-controller-trustroot.yaml"]);
    let state_before = tree(&state);
    let with_state = ["--state", state.to_str().unwrap()];

    // Signed by a key that is not pinned.
    let stranger = site.respond(&repo, "stranger.rcb", "stranger");
    site.import_refused(&stranger, &with_state, "pinned-key check failed");

    // Expired timestamp: valid for 7 days, imported as if 10 days from now.
    let later = days_from_now(10);
    site.import_refused(
        &good,
        &[&with_state[..], &["--time", &later]].concat(),
        "TUF check failed (from the trusted root v1): timestamp v1 (metadata/timestamp.json) expired at",
    );

    // A target whose bytes differ from what the targets metadata lists, in a bundle the
    // appliance signed: the bundle's own hashes are right, TUF's are not.
    let tampered = site.path("repo-tampered");
    copy_dir(&repo, &tampered);
    let target = std::fs::read_dir(tampered.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".trusted_root.json"))
        .unwrap();
    let mut bytes = std::fs::read(&target).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&target, bytes).unwrap();
    let tampered_bundle = site.respond(&tampered, "tampered.rcb", "bundle");
    site.import_refused(
        &tampered_bundle,
        &with_state,
        ".trusted_root.json has sha256",
    );

    // A bundle without the target files: the mirror would be incomplete.
    let bare = site.path("repo-bare");
    copy_dir(&repo, &bare);
    for entry in std::fs::read_dir(bare.join("targets")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let bare_bundle = site.respond(&bare, "bare.rcb", "bundle");
    site.import_refused(&bare_bundle, &with_state, ".trusted_root.json is missing");

    // A repository whose chain does not start at the pinned root: another root, other keys.
    let foreign = site.path("repo-foreign");
    site.init(&foreign, &site.policy("p-foreign.toml", &["c2"], 1), &tr);
    let foreign_bundle = site.respond(&foreign, "foreign.rcb", "bundle");
    let fresh_state = site.path("state-fresh");
    site.import_refused(
        &foreign_bundle,
        &[
            "--root",
            pinned_arg,
            "--bundle-key",
            key,
            "--state",
            fresh_state.to_str().unwrap(),
        ],
        "chain check failed: the bundle's 1.root.json",
    );
    assert!(
        !fresh_state.exists(),
        "no state is created by a refused import"
    );
    site.import_refused(
        &foreign_bundle,
        &with_state,
        "its TUF chain does not start at the root this cluster trusts",
    );

    // Trust given wrongly: a pinned root for a state that holds trust; no bundle key at all.
    site.import_refused(
        &good,
        &["--root", pinned_arg, "--state", state.to_str().unwrap()],
        "already trusts TUF root v1: --root is only for the first import",
    );
    site.import_refused(
        &good,
        &["--root", pinned_arg],
        "no appliance bundle key pinned",
    );
    site.import_refused(
        &good,
        &["--state", fresh_state.to_str().unwrap()],
        "holds no import state: give --root",
    );

    // Admission policies asked for incompletely, or with globs the two engines read apart.
    let policy_refused = |extra: &[&str], expected: &str| {
        site.import_refused(&good, &[&with_state[..], extra].concat(), expected)
    };
    policy_refused(
        &["--image", "registry.site.internal/**"],
        "admission policy refused, nothing written: no --issuer",
    );
    policy_refused(
        &[
            "--image",
            "registry.site.internal/apps/*",
            "--issuer",
            "https://oidc.site.internal",
            "--identity",
            "ci@site.internal",
        ],
        "a single * means one path segment to policy-controller but any characters to Kyverno",
    );
    policy_refused(
        &["--template", "--image", "registry.site.internal/**"],
        "--template writes placeholder templates",
    );

    // An existing output is never overwritten.
    let existing = site.path("first");
    let result = site.import(&good, &existing, &with_state);
    assert!(!result.status.success());
    assert!(
        stderr(&result).contains("exists already"),
        "{}",
        stderr(&result)
    );

    assert_eq!(
        tree(&state),
        state_before,
        "refused imports leave the state unchanged"
    );
    assert!(!fresh_state.exists());

    // The same bundle again, from the state: accepted, nothing changed.
    let report = site.import_ok(&good, &site.path("again"), &with_state);
    let text = std::fs::read_to_string(site.path("again/CHANGES.md")).unwrap();
    assert!(
        text.contains("nothing changed since the previous import"),
        "{text}"
    );
    assert_eq!(report["changes"]["root"]["from"], 1);

    // Templates only when asked: placeholders that match nothing, marked as templates.
    let template = site.import_ok(
        &good,
        &site.path("template"),
        &[&with_state[..], &["--template"]].concat(),
    );
    assert_eq!(template["policies"]["source"], "template");
    let kyverno =
        std::fs::read_to_string(site.path("template/manifests/kyverno-imagevalidatingpolicy.yaml"))
            .unwrap();
    assert!(
        kyverno.contains("(TEMPLATE)") && kyverno.contains("registry.example.internal/**"),
        "{kyverno}"
    );
    validate_manifests(&[
        site.path("template/manifests/kyverno-imagevalidatingpolicy.yaml"),
        site.path("template/manifests/policy-controller-clusterimagepolicy.yaml"),
    ])
    .unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
