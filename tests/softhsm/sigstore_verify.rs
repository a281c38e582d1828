//! A private Sigstore deployment on rootcellar's trust root, checked end to end by independent
//! clients. Rehearsal ceremonies make the appliance's side (root-init, issue-intermediate for
//! the online side's Fulcio and TSA CSRs, rotate-tuf-root, publish-trust-root); the online side
//! builds the trust root from them and its software log keys, and the cluster imports the
//! published response from the TUF root pinned at root-init. python-tuf and tuf-js refresh the
//! imported mirror; `tests/python/private_sigstore.py` plays Fulcio, a signer, Rekor and the
//! TSA from the online side's keys; sigstore-python (API and CLI) and sigstore-js verify its
//! bundles offline with the imported `trust_config.json`, and refuse them when the leaf chains
//! to another root, when the log key or the SCT's key is not ours, and when the signature time
//! is outside the Fulcio intermediate's `validFor`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::*;

const IDENTITY: &str = "release-bot@site.internal";
const OIDC_ISSUER: &str = "https://oidc.site.internal";
const REKOR_URL: &str = "https://rekor.site.internal";

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn openssl_ok(args: &[&str]) {
    let out = openssl(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Rehearsed appliances (each its own state and throwaway tokens) and the online side's files,
/// in one directory.
struct Deployment {
    dir: tempfile::TempDir,
}

/// What an appliance's root-init and issue-intermediate rehearsals delivered, and the keys of
/// the online side's CSRs.
struct Pki {
    /// root-init's output directory (root.pem, tuf/, bundle-key.pub.pem, response.rcb).
    root_init: PathBuf,
    fulcio_cert: PathBuf,
    fulcio_key: PathBuf,
    tsa_cert: PathBuf,
    tsa_key: PathBuf,
}

impl Deployment {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("answers.toml"),
            answers_toml(&clock_time(), None),
        )
        .unwrap();
        Deployment { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Rehearses `script` on the appliance whose state is `state`, into `out`.
    fn rehearse(&self, state: &str, script: &str, inputs: Option<&Path>, out: &str) -> PathBuf {
        ok(rehearsal_command(
            script,
            &self.path(state),
            &self.path("answers.toml"),
            inputs,
            &self.path(out),
        )
        .args(["--bundle-key", "bundle-key"]));
        self.path(out)
    }

    /// root-init, then issue-intermediate for the online side's CSRs (a P-384 Fulcio key and a
    /// P-256 TSA key, which stay with the online side), on the appliance `state`.
    fn appliance_pki(&self, state: &str) -> Pki {
        let root_init = self.rehearse(
            state,
            "ceremony/root-init.toml",
            None,
            &format!("{state}-root-init"),
        );
        let request = self.path(&format!("{state}-request"));
        std::fs::create_dir(&request).unwrap();
        std::fs::copy(root_init.join("root.pem"), request.join("root.pem")).unwrap();
        for (name, curve) in [("fulcio", "secp384r1"), ("tsa", "prime256v1")] {
            let csr = openssl_csr(
                self.dir.path(),
                &format!("{state}-{name}"),
                curve,
                &format!("/O=site/CN=site {name}"),
            );
            std::fs::rename(csr, request.join(format!("{name}.csr"))).unwrap();
        }
        let issued = self.rehearse(
            state,
            "ceremony/issue-intermediate.toml",
            Some(&request),
            &format!("{state}-intermediates"),
        );
        Pki {
            root_init,
            fulcio_cert: issued.join("intermediate-fulcio.pem"),
            fulcio_key: self.path(&format!("{state}-fulcio.key")),
            tsa_cert: issued.join("intermediate-tsa.pem"),
            tsa_key: self.path(&format!("{state}-tsa.key")),
        }
    }

    /// The online TSA's signing certificate `tsa-signer.pem`, issued by the TSA intermediate's
    /// software key as the demo does, and `tsa-chain.pem`: it, the intermediate and the root.
    fn tsa(&self, pki: &Pki) -> (PathBuf, PathBuf) {
        let csr = openssl_csr(
            self.dir.path(),
            "tsa-signer",
            "prime256v1",
            "/O=site/CN=site tsa signer",
        );
        let ext = self.path("tsa-signer.ext");
        std::fs::write(
            &ext,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=critical,timeStamping\n",
        )
        .unwrap();
        let signer = self.path("tsa-signer.pem");
        let path = |p: &Path| p.to_str().unwrap().to_string();
        openssl_ok(&[
            "x509",
            "-req",
            "-in",
            &path(&csr),
            "-CA",
            &path(&pki.tsa_cert),
            "-CAkey",
            &path(&pki.tsa_key),
            "-set_serial",
            "7",
            "-days",
            "365",
            "-extfile",
            &path(&ext),
            "-out",
            &path(&signer),
        ]);
        let chain = self.path("tsa-chain.pem");
        let pems: Vec<u8> = [&signer, &pki.tsa_cert, &pki.root_init.join("root.pem")]
            .iter()
            .flat_map(|p| std::fs::read(p).unwrap())
            .collect();
        std::fs::write(&chain, pems).unwrap();
        (chain, self.path("tsa-signer.key"))
    }

    /// A log key pair `NAME.key` / `NAME.pub` (P-256), the online side's.
    fn log_key(&self, name: &str) {
        let key = self.path(&format!("{name}.key"));
        let key = key.to_str().unwrap();
        openssl_ok(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            key,
        ]);
        let public = self.path(&format!("{name}.pub"));
        openssl_ok(&[
            "ec",
            "-in",
            key,
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ]);
    }
}

/// The files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Copies a directory tree with `cp -r`.
fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The notBefore of a PEM certificate, in Unix seconds.
fn not_before(pem: &Path) -> i64 {
    let bytes = std::fs::read(pem).unwrap();
    let pem = x509_parser::pem::parse_x509_pem(&bytes).unwrap().1;
    pem.parse_x509().unwrap().validity().not_before.timestamp()
}

/// Serves an imported mirror as the TUF clients read a repository: `metadata/` and `targets/`.
fn served(mirror: &Path, at: &Path) -> PathBuf {
    std::fs::create_dir(at).unwrap();
    let mirror = mirror.canonicalize().unwrap();
    std::os::unix::fs::symlink(&mirror, at.join("metadata")).unwrap();
    std::os::unix::fs::symlink(mirror.join("targets"), at.join("targets")).unwrap();
    at.to_path_buf()
}

/// A TUF client (`python3 tests/python/tuf_client.py` or `node tests/node/tuf_client.js`)
/// refreshing `repo` from `root` and downloading each target, compared with the file given.
fn tuf_client(program: &str, script: &str, repo: &Path, root: &Path, targets: &[&Path]) -> Output {
    let downloads = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(program);
    cmd.arg(repo_file(script))
        .arg("--repo")
        .arg(repo)
        .arg("--root")
        .arg(root)
        .arg("--download-dir")
        .arg(downloads.path());
    for target in targets {
        let name = target.file_name().unwrap().to_str().unwrap();
        cmd.arg(format!("{name}={}", target.display()));
    }
    cmd.output().unwrap()
}

/// How `private_sigstore.py` is told to deviate from an honest signature.
#[derive(Clone, Copy, Debug)]
enum Signing<'a> {
    /// Under our Fulcio intermediate, recorded in our log, at this time.
    Honest(i64),
    /// As `Honest` at the clock, with an RFC 3161 timestamp from our TSA (its chain and key).
    Timestamped(&'a Path, &'a Path, i64),
    /// Under another chain (this intermediate and its key), at this time.
    Chain(&'a Path, &'a Path, i64),
    /// Under a fresh software root and intermediate named like ours.
    ImpostorCa(i64),
    /// Recorded in a log whose key is not ours.
    ImpostorLog(i64),
    /// With an SCT signed by a key that is not our CT log's (our Rekor key).
    ForeignSct(i64),
}

/// A verdict of one verifier on one bundle: `Ok(summary)` or `Err(refusal)`.
type Verdict = Result<Value, String>;

struct Signer<'a> {
    d: &'a Deployment,
    fulcio: (PathBuf, PathBuf),
    artifact: PathBuf,
    trust_config: PathBuf,
}

impl Signer<'_> {
    /// Signs the artifact and its provenance as `how` says; returns the two bundles.
    fn sign(&self, how: Signing, out: &str) -> [PathBuf; 2] {
        let (cert, key, at, extra) = match how {
            Signing::Honest(at) => (&self.fulcio.0, &self.fulcio.1, at, None),
            Signing::Chain(cert, key, at) => (&cert.to_path_buf(), &key.to_path_buf(), at, None),
            Signing::ImpostorCa(at) => (&self.fulcio.0, &self.fulcio.1, at, Some("--impostor-ca")),
            Signing::ImpostorLog(at) => {
                (&self.fulcio.0, &self.fulcio.1, at, Some("--impostor-log"))
            }
            Signing::ForeignSct(at) => (&self.fulcio.0, &self.fulcio.1, at, None),
            Signing::Timestamped(_, _, at) => (&self.fulcio.0, &self.fulcio.1, at, None),
        };
        let ct_key = match how {
            Signing::ForeignSct(_) => "rekor.key",
            _ => "ctfe.key",
        };
        let dir = self.d.path(out);
        let mut cmd = Command::new("python3");
        cmd.arg(repo_file("tests/python/private_sigstore.py"))
            .arg("--fulcio-cert")
            .arg(cert)
            .arg("--fulcio-key")
            .arg(key)
            .arg("--rekor-key")
            .arg(self.d.path("rekor.key"))
            .arg("--ct-key")
            .arg(self.d.path(ct_key))
            .args(["--rekor-url", REKOR_URL, "--identity", IDENTITY])
            .args(["--issuer", OIDC_ISSUER, "--signed-at", &at.to_string()])
            .arg("--artifact")
            .arg(&self.artifact)
            .arg("--out")
            .arg(&dir)
            .args(extra);
        if let Signing::Timestamped(chain, key, _) = how {
            cmd.arg("--tsa-chain").arg(chain).arg("--tsa-key").arg(key);
        }
        ok(&mut cmd);
        [
            dir.join("artifact.sigstore.json"),
            dir.join("provenance.sigstore.json"),
        ]
    }

    /// sigstore-python's and sigstore-js's verdicts on `bundle`.
    fn verify(&self, bundle: &Path) -> [Verdict; 2] {
        let run = |program: &str, script: &str| -> Verdict {
            let out = Command::new(program)
                .arg(repo_file(script))
                .arg("--trust-config")
                .arg(&self.trust_config)
                .arg("--bundle")
                .arg(bundle)
                .args(["--identity", IDENTITY, "--issuer", OIDC_ISSUER])
                .arg("--artifact")
                .arg(&self.artifact)
                .output()
                .unwrap();
            let said: Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|_| {
                panic!(
                    "{script}: {}{}",
                    stdout(&out),
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            match (
                out.status.success(),
                said.get("verified"),
                said.get("refused"),
            ) {
                (true, Some(v), None) => Ok(v.clone()),
                (false, None, Some(Value::String(why))) => Err(why.clone()),
                _ => panic!("{script}: unexpected verdict {said}"),
            }
        };
        [
            run("python3", "tests/python/sigstore_verify.py"),
            run("node", "tests/node/sigstore_verify.js"),
        ]
    }

    /// sigstore-python's command line, `sigstore --trust-config … verify identity --offline`:
    /// whether it passed, and what it printed.
    fn cli(&self, bundle: &Path) -> (bool, String) {
        let out = Command::new("python3")
            .args(["-m", "sigstore", "--trust-config"])
            .arg(&self.trust_config)
            .args(["verify", "identity", "--offline", "--bundle"])
            .arg(bundle)
            .args([
                "--cert-identity",
                IDENTITY,
                "--cert-oidc-issuer",
                OIDC_ISSUER,
            ])
            .arg(&self.artifact)
            .output()
            .unwrap();
        let said = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), said)
    }

    /// Both verifiers refuse both bundles, each with the message expected of it.
    fn both_refuse(&self, bundles: &[PathBuf; 2], python: &str, js: &str, case: &str) {
        for bundle in bundles {
            let [p, j] = self.verify(bundle);
            let p = p.expect_err(&format!("sigstore-python accepted {case}"));
            let j = j.expect_err(&format!("sigstore-js accepted {case}"));
            assert!(p.contains(python), "sigstore-python on {case}: {p}");
            assert!(j.contains(js), "sigstore-js on {case}: {j}");
        }
    }
}

#[test]
fn independent_clients_verify_signatures_on_the_imported_trust_root_and_refuse_others() {
    for module in ["@sigstore/verify", "tuf-js"] {
        assert!(
            repo_file("tests/node/node_modules").join(module).is_dir(),
            "{module} is not installed in tests/node: run scripts/install-deps.sh (make deps)"
        );
    }
    let d = Deployment::new();
    // The appliance: root CA, Fulcio and TSA intermediates, TUF root rotated to custodians
    // 1, 2 and 4. Another appliance, rehearsed the same way, has a root of the same name.
    let pki = d.appliance_pki("appliance");
    let other = d.appliance_pki("other-appliance");
    let rotate_request = d.path("rotate-request");
    std::fs::create_dir(&rotate_request).unwrap();
    copy_tree(&pki.root_init.join("tuf"), &rotate_request.join("tuf"));
    let rotated = d.rehearse(
        "appliance",
        "ceremony/rotate-tuf-root.toml",
        Some(&rotate_request),
        "rotated",
    );
    let tsa = d.tsa(&pki);
    let fulcio = (pki.fulcio_cert.clone(), pki.fulcio_key.clone());
    d.log_key("rekor");
    d.log_key("ctfe");

    // The online side builds the trust root. The Fulcio intermediate's validFor starts 2 s
    // after its notBefore: a signature in between is valid X.509 but outside what
    // trusted_root.json says.
    let issued = not_before(&fulcio.0);
    let valid_from = jiff::Timestamp::from_second(issued + 2).unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    std::fs::write(
        d.path("trustroot.toml"),
        format!(
            "[[certificate_authorities]]\nuri = \"https://fulcio.site.internal\"\n\
             chain = [{:?}, {:?}]\nstart = \"{valid_from}\"\n\
             [[timestamp_authorities]]\nuri = \"https://tsa.site.internal\"\n\
             chain = [\"tsa-chain.pem\"]\n\
             [[tlogs]]\nbase_url = \"{REKOR_URL}\"\npublic_key = \"rekor.pub\"\n\
             [[ctlogs]]\nbase_url = \"https://ctfe.site.internal\"\npublic_key = \"ctfe.pub\"\n\
             [signing_config]\noperator = \"site.internal\"\n\
             ca_urls = [\"https://fulcio.site.internal\"]\noidc_urls = [\"{OIDC_ISSUER}\"]\n\
             rekor_urls = [\"{REKOR_URL}\"]\n",
            path(&fulcio.0),
            path(&pki.root_init.join("root.pem")),
        ),
    )
    .unwrap();
    let publish = d.path("publish-request");
    std::fs::create_dir(&publish).unwrap();
    copy_tree(&rotated.join("tuf-rotated"), &publish.join("tuf"));
    let built = stdout(&ok(rootcellar()
        .args(["trustroot", "build", "--config"])
        .arg(d.path("trustroot.toml"))
        .arg("--out")
        .arg(&publish)
        .args(["--time", &clock_time()])));
    assert!(built.contains("trust_config.json"), "{built}");
    let trust = publish.clone();

    // The appliance publishes it (a new targets version signed in a rehearsal); the cluster
    // imports the response from the TUF root pinned at root-init.
    let published = d.rehearse(
        "appliance",
        "ceremony/publish-trust-root.toml",
        Some(&publish),
        "published",
    );
    let pinned = pki.root_init.join("tuf/metadata/1.root.json");
    let report: Value = serde_json::from_slice(
        &ok(rootcellar()
            .arg("import")
            .arg("--bundle")
            .arg(published.join("response.rcb"))
            .arg("--root")
            .arg(&pinned)
            .arg("--bundle-key")
            .arg(pki.root_init.join("bundle-key.pub.pem"))
            .arg("--out")
            .arg(d.path("import"))
            .args(["--allow-rehearsal", "--json"]))
        .stdout,
    )
    .unwrap();
    let import = d.path("import");
    assert!(
        report["files"]
            .as_array()
            .unwrap()
            .contains(&Value::from("trust_config.json")),
        "{report}"
    );

    // trust_config.json: the imported trusted root and the published signing config, as
    // `trustroot build` wrote it.
    let trust_config = import.join("trust_config.json");
    let config = read_json(&trust_config);
    assert_eq!(config, read_json(&trust.join("trust_config.json")));
    assert_eq!(
        config["mediaType"],
        "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
    );
    assert_eq!(
        config["trustedRoot"],
        read_json(&import.join("trusted_root.json"))
    );
    assert_eq!(
        config["signingConfig"],
        read_json(&trust.join("signing_config.v0.2.json"))
    );
    assert_eq!(config["signingConfig"]["oidcUrls"][0]["url"], OIDC_ISSUER);

    // Two TUF clients refresh the imported mirror from the pinned root and download both
    // targets; both refuse it once the timestamp's signature is damaged.
    let repo = served(&import.join("repository"), &d.path("served"));
    let (trusted_root, signing_config) = (
        import.join("trusted_root.json"),
        trust.join("signing_config.v0.2.json"),
    );
    let targets: [&Path; 2] = [&trusted_root, &signing_config];
    for (program, script) in [
        ("python3", "tests/python/tuf_client.py"),
        ("node", "tests/node/tuf_client.js"),
    ] {
        let out = tuf_client(program, script, &repo, &pinned, &targets);
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(summary["root_version"], 2, "{script}: {summary}");
        let sha256 = |p: &Path| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
        };
        for target in targets {
            let name = target.file_name().unwrap().to_str().unwrap();
            assert_eq!(
                summary["targets"][name]["sha256"],
                sha256(target),
                "{script}"
            );
        }
    }
    let tampered = d.path("tampered");
    std::fs::create_dir(&tampered).unwrap();
    for file in listing(&import.join("repository")) {
        if file.is_file() {
            std::fs::copy(&file, tampered.join(file.file_name().unwrap())).unwrap();
        }
    }
    std::os::unix::fs::symlink(
        import.join("repository/targets").canonicalize().unwrap(),
        tampered.join("targets"),
    )
    .unwrap();
    let mut timestamp = read_json(&tampered.join("timestamp.json"));
    let sig = timestamp["signatures"][0]["sig"]
        .as_str()
        .unwrap()
        .to_string();
    let flipped = if sig.ends_with('0') { '1' } else { '0' };
    timestamp["signatures"][0]["sig"] = Value::from(format!("{}{flipped}", &sig[..sig.len() - 1]));
    std::fs::write(
        tampered.join("timestamp.json"),
        serde_json::to_vec(&timestamp).unwrap(),
    )
    .unwrap();
    let tampered_repo = served(&tampered, &d.path("served-tampered"));
    for (program, script) in [
        ("python3", "tests/python/tuf_client.py"),
        ("node", "tests/node/tuf_client.js"),
    ] {
        let out = tuf_client(program, script, &tampered_repo, &pinned, &targets);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{script} accepted a bad timestamp signature"
        );
        assert!(
            said.to_lowercase().contains("timestamp"),
            "{script}: {said}"
        );
    }

    // The private Sigstore signs; both verifiers accept, offline, with trust_config.json.
    std::fs::write(d.path("release.tar"), b"rootcellar release artifact\n").unwrap();
    let signer = Signer {
        d: &d,
        fulcio,
        artifact: d.path("release.tar"),
        trust_config,
    };
    let now = clock().as_second();
    assert!(now >= issued + 2, "the clock is before validFor.start");
    let [blob, provenance] = signer.sign(Signing::Timestamped(&tsa.0, &tsa.1, now), "honest");
    let artifact_sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            std::fs::read(&signer.artifact).unwrap(),
        ))
    };
    // The log's time and the TSA's timestamp both verified (the TSA chain from trust_config.json).
    let both_times = serde_json::json!(["timestamp-authority", "transparency-log"]);
    for verdict in signer.verify(&blob) {
        let verified = verdict.expect("the honest signature verifies");
        assert_eq!(verified["artifact_sha256"], artifact_sha256);
        assert_eq!(verified["times"], both_times, "{verified}");
    }
    for verdict in signer.verify(&provenance) {
        let verified = verdict.expect("the honest provenance verifies");
        assert_eq!(verified["times"], both_times, "{verified}");
        assert_eq!(verified["payload_type"], "application/vnd.in-toto+json");
        assert_eq!(verified["predicate_type"], "https://slsa.dev/provenance/v1");
    }

    // sigstore-python's command line agrees, from the same file.
    let ok_line = format!("OK: {}", signer.artifact.display());
    for bundle in [&blob, &provenance] {
        let (passed, said) = signer.cli(bundle);
        assert!(passed && said.contains(&ok_line), "sigstore CLI: {said}");
    }

    // (a) A leaf under another root: another appliance's rehearsal root of the same name, and
    // a look-alike chain made in software.
    let other_root = signer.sign(
        Signing::Chain(&other.fulcio_cert, &other.fulcio_key, now),
        "other-root",
    );
    signer.both_refuse(
        &other_root,
        "failed to build timestamp certificate chain",
        "CERTIFICATE_ERROR",
        "a leaf under another root",
    );
    let impostor = signer.sign(Signing::ImpostorCa(now), "impostor-ca");
    signer.both_refuse(
        &impostor,
        "failed to build timestamp certificate chain",
        "CERTIFICATE_ERROR",
        "a leaf under a look-alike chain",
    );

    // (b) An entry in a log whose key is not ours.
    let foreign_log = signer.sign(Signing::ImpostorLog(now), "impostor-log");
    signer.both_refuse(
        &foreign_log,
        "invalid log entry",
        "TLOG_INCLUSION_PROMISE_ERROR",
        "an entry in another log",
    );
    let (passed, said) = signer.cli(&foreign_log[0]);
    assert!(!passed && said.contains("FAIL:"), "sigstore CLI: {said}");

    // And a certificate whose SCT our CT log did not sign.
    let foreign_sct = signer.sign(Signing::ForeignSct(now), "foreign-sct");
    signer.both_refuse(
        &foreign_sct,
        "failed to verify SCT on signing certificate",
        "SCT verification failed",
        "an SCT from another key",
    );

    // (c) Signed before the intermediate's validFor.start. An hour before, the intermediate's
    // certificate was not valid either: both refuse.
    let early = signer.sign(Signing::Honest(issued - 3600), "before-issue");
    signer.both_refuse(
        &early,
        "cert is not valid at validation time",
        "CERTIFICATE_ERROR",
        "a signature before the intermediate existed",
    );
    // One second after notBefore and a second before validFor.start, only trusted_root.json
    // says no. sigstore-js refuses; sigstore-python 4.5.1 compares validFor with the clock, not
    // the signing time, and accepts (README: "What the independent verifiers prove").
    let between = signer.sign(Signing::Honest(issued + 1), "before-valid-for");
    for bundle in &between {
        let [python, js] = signer.verify(bundle);
        let js = js.expect_err("sigstore-js accepted a signature before validFor.start");
        assert!(js.contains("CERTIFICATE_ERROR"), "{js}");
        assert!(
            python.is_ok(),
            "sigstore-python now refuses a signature before validFor.start ({python:?}): \
             update the README and make this a refusal"
        );
    }

    // After validFor.end: the next trust root lists the other appliance's intermediate instead,
    // and keeps ours, closed (`trustroot build --previous`). A signature made now
    // under ours is refused by sigstore-js; sigstore-python 4.5.1 ignores validFor.end when
    // verifying and accepts it.
    let next = d.path("next-trustroot.toml");
    let config = std::fs::read_to_string(d.path("trustroot.toml")).unwrap();
    let replaced = config
        .replace(&path(&pki.fulcio_cert), &path(&other.fulcio_cert))
        .replace(
            &path(&pki.root_init.join("root.pem")),
            &path(&other.root_init.join("root.pem")),
        )
        .replace(&format!("start = \"{valid_from}\"\n"), "");
    assert_ne!(replaced, config);
    std::fs::write(&next, replaced).unwrap();
    // Closed at the clock (a signing time may not precede rootcellar's build), and signed two
    // seconds later.
    let retired_at = clock();
    let next_trust = d.path("next-trust");
    std::fs::create_dir(&next_trust).unwrap();
    ok(rootcellar()
        .args(["trustroot", "build", "--config"])
        .arg(&next)
        .arg("--previous")
        .arg(trust.join("trusted_root.json"))
        .arg("--out")
        .arg(&next_trust)
        .args(["--time", &retired_at.to_string()]));
    let next_config = read_json(&next_trust.join("trust_config.json"));
    let ours = &next_config["trustedRoot"]["certificateAuthorities"][0];
    assert_eq!(ours["validFor"]["start"], valid_from.to_string(), "{ours}");
    assert_eq!(ours["validFor"]["end"], retired_at.to_string(), "{ours}");
    let after_end = Signer {
        trust_config: next_trust.join("trust_config.json"),
        ..signer
    };
    while clock().as_second() < retired_at.as_second() + 2 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for bundle in &after_end.sign(Signing::Honest(clock().as_second()), "after-valid-for") {
        let [python, js] = after_end.verify(bundle);
        let js = js.expect_err("sigstore-js accepted a signature after validFor.end");
        assert!(js.contains("CERTIFICATE_ERROR"), "{js}");
        assert!(
            python.is_ok(),
            "sigstore-python now refuses a signature after validFor.end ({python:?}): \
             update the README and make this a refusal"
        );
    }
}
