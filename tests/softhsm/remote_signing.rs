//! Custodians where they are: a drafted root carried out as a signing request bundle, signed on
//! each custodian's own SoftHSM2 token (its own directory and SOFTHSM2_CONF, its own
//! `rootcellar tuf sign-request` process), and the signature bundles brought back and
//! published. And every refusal: a root the custodian's machine does not chain to, a key the
//! roots do not list, a signature over other bytes, a stale draft, each with nothing changed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rootcellar::bundle::{BundleBuilder, BundleKind, EntryType, SoftwareKey};
use rootcellar::keys::Signer;
use serde_json::Value;

use crate::common::*;
use crate::tpm_token::TpmToken;

/// A custodian away from the appliance: their own token `custodian-N` (a SoftHSM2, or a TPM
/// through tpm2-pkcs11), their key, and the root they trust, in a directory of their own.
struct Custodian {
    hsm: CustodianToken,
    uri: String,
    trusted_root: PathBuf,
}

/// The token on a custodian's own machine.
enum CustodianToken {
    /// A SoftHSM2 and its token's label.
    SoftHsm(SoftHsm, String),
    Tpm(TpmToken),
}

impl CustodianToken {
    /// `rootcellar` as the custodian runs it, reaching their token only.
    fn rootcellar(&self) -> Command {
        match self {
            CustodianToken::SoftHsm(hsm, _) => hsm.rootcellar(),
            CustodianToken::Tpm(tpm) => tpm.rootcellar(),
        }
    }

    /// A path in the custodian's own directory.
    fn path(&self, name: &str) -> PathBuf {
        match self {
            CustodianToken::SoftHsm(hsm, _) => hsm.path(name),
            CustodianToken::Tpm(tpm) => tpm.path(name),
        }
    }

    /// Generates the custodian's TUF root key; returns its URI and public key PEM.
    fn generate(&self) -> (String, String) {
        let uri = match self {
            CustodianToken::SoftHsm(hsm, token) => hsm.uri(token, Some("tuf-root")),
            CustodianToken::Tpm(tpm) => tpm.uri(Some("tuf-root")),
        };
        let out =
            ok(self
                .rootcellar()
                .args(["key", "generate", &uri, "--algorithm", "p256", "--json"]));
        let info: Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            info["uri"].as_str().unwrap().to_string(),
            info["public_key_pem"].as_str().unwrap().to_string(),
        )
    }
}

/// The appliance: custodian 1's token and the appliance's (targets, snapshot, timestamp,
/// bundle key); a repository at root v1 (custodian 1 alone, threshold 1); custodians 2 and 3
/// on their own machines, trusting that root v1.
struct Appliance {
    hsm: SoftHsm,
    keys_file: PathBuf,
    bundle_key: String,
    c1: String,
    repo: PathBuf,
    state: PathBuf,
    target: PathBuf,
    custodians: Vec<Custodian>,
}

/// Generates a key on `hsm`'s `token`; returns its URI and public key PEM.
fn generate(hsm: &SoftHsm, token: &str, label: &str) -> (String, String) {
    let out = ok(hsm.rootcellar().args([
        "key",
        "generate",
        &hsm.uri(token, Some(label)),
        "--algorithm",
        "p256",
        "--json",
    ]));
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        info["uri"].as_str().unwrap().to_string(),
        info["public_key_pem"].as_str().unwrap().to_string(),
    )
}

impl Appliance {
    fn new() -> Self {
        Self::with_custodians(
            ["custodian-2", "custodian-3"]
                .map(|label| CustodianToken::SoftHsm(SoftHsm::new(label), label.into()))
                .into(),
        )
    }

    /// The appliance with custodians 2 and 3 on these tokens of their own.
    fn with_custodians(tokens: Vec<CustodianToken>) -> Self {
        let hsm = SoftHsm::new("custodian-1");
        hsm.add_token("appliance");
        let (c1, _) = generate(&hsm, "custodian-1", "tuf-root");
        let mut keys = format!("[keys]\nc1 = {}\n", toml::Value::String(c1.clone()));
        for role in ["targets", "snapshot", "timestamp"] {
            let (uri, _) = generate(&hsm, "appliance", &format!("tuf-{role}"));
            keys.push_str(&format!("{role} = {}\n", toml::Value::String(uri)));
        }
        let (bundle_key, _) = generate(&hsm, "appliance", "bundle-key");
        let mut custodians = Vec::new();
        for (n, custodian) in (2..).zip(tokens) {
            let (uri, pem) = custodian.generate();
            // The appliance knows only the public half, as the custodian handed it over.
            let pem_file = hsm.path(&format!("c{n}.pub.pem"));
            std::fs::write(&pem_file, pem).unwrap();
            keys.push_str(&format!(
                "c{n} = {{ public_key = {} }}\n",
                toml::Value::String(pem_file.display().to_string())
            ));
            let trusted_root = custodian.path("trusted-root.json");
            custodians.push(Custodian {
                hsm: custodian,
                uri,
                trusted_root,
            });
        }
        let keys_file = hsm.path("keys.toml");
        std::fs::write(&keys_file, keys).unwrap();
        let target = hsm.path("hello.txt");
        std::fs::write(&target, b"hello from the appliance\n").unwrap();
        let repo = hsm.path("repo");
        let appliance = Appliance {
            keys_file,
            bundle_key,
            c1,
            state: hsm.path("state"),
            repo,
            target,
            custodians,
            hsm,
        };
        let policy = appliance.policy("policy-1.toml", &["c1"], 1);
        let mut init = appliance.tuf(&["init", "--policy"]);
        init.arg(&policy)
            .arg("--keys")
            .arg(&appliance.keys_file)
            .arg("--out")
            .arg(&appliance.repo)
            .arg("--target")
            .arg(&appliance.target);
        ok(&mut init);
        for custodian in &appliance.custodians {
            std::fs::copy(
                appliance.repo.join("metadata/1.root.json"),
                &custodian.trusted_root,
            )
            .unwrap();
        }
        appliance
    }

    fn policy(&self, file: &str, root: &[&str], threshold: u64) -> PathBuf {
        let names: Vec<String> = root.iter().map(|n| format!("{n:?}")).collect();
        let text = format!(
            "consistent_snapshot = true\nmode = \"offline\"\n\
             [roles.root]\nkeys = [{}]\nthreshold = {threshold}\nexpires_days = 182\n\
             [roles.targets]\nkeys = [\"targets\"]\nthreshold = 1\nexpires_days = 182\n\
             [roles.snapshot]\nkeys = [\"snapshot\"]\nthreshold = 1\nexpires_days = 21\n\
             [roles.timestamp]\nkeys = [\"timestamp\"]\nthreshold = 1\nexpires_days = 7\n",
            names.join(", ")
        );
        let path = self.hsm.path(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn tuf(&self, args: &[&str]) -> Command {
        let mut cmd = self.hsm.rootcellar();
        cmd.arg("tuf").args(args);
        cmd
    }

    /// Drafts the next root from `policy`; returns the draft's payload digest.
    fn rotate(&self, policy: &Path) -> String {
        let mut cmd = self.tuf(&["rotate", "--json", "--repo"]);
        cmd.arg(&self.repo)
            .arg("--policy")
            .arg(policy)
            .arg("--keys")
            .arg(&self.keys_file);
        let report: Value = serde_json::from_slice(&ok(&mut cmd).stdout).unwrap();
        report["payload_sha256"].as_str().unwrap().to_string()
    }

    /// A signing request for `custodian` (a policy key name), journaled in the state, written
    /// as `request-NAME.rcb`.
    fn request(&self, custodian: &str, name: &str) -> PathBuf {
        let out = self.hsm.path(&format!("request-{name}.rcb"));
        let mut cmd = self.tuf(&["request-signature", "--repo"]);
        cmd.arg(&self.repo)
            .args(["--custodian", custodian, "--bundle-key", &self.bundle_key])
            .arg("--out")
            .arg(&out)
            .arg("--state")
            .arg(&self.state);
        ok(&mut cmd);
        out
    }

    fn add_signatures(&self, bundles: &[&Path]) -> Command {
        let mut cmd = self.tuf(&["add-signatures", "--repo"]);
        cmd.arg(&self.repo)
            .args(bundles)
            .arg("--state")
            .arg(&self.state);
        cmd
    }

    fn publish(&self, policy: &Path, signatures: &[&Path]) -> Command {
        let mut cmd = self.tuf(&["publish", "--repo"]);
        cmd.arg(&self.repo)
            .arg("--policy")
            .arg(policy)
            .arg("--keys")
            .arg(&self.keys_file)
            .arg("--state")
            .arg(&self.state);
        if !signatures.is_empty() {
            cmd.arg("--signatures").args(signatures);
        }
        cmd
    }

    /// The staged root draft's bytes and the journal as `journal show` prints it: what a
    /// refusal must leave as it was.
    fn snapshot(&self) -> (Vec<Vec<u8>>, String) {
        let mut drafts = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.repo.join("staged")) {
            let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
            paths.sort();
            for path in paths.iter().filter(|p| p.is_file()) {
                drafts.push(std::fs::read(path).unwrap());
            }
        }
        // Before anything is journaled there is no journal: `journal show` says so, unchanged.
        let journal = rootcellar()
            .args(["journal", "show", "--state"])
            .arg(&self.state)
            .output()
            .unwrap();
        (
            drafts,
            format!(
                "{}{}",
                String::from_utf8_lossy(&journal.stdout),
                String::from_utf8_lossy(&journal.stderr)
            ),
        )
    }
}

impl Custodian {
    /// `rootcellar tuf sign-request` on the custodian's own machine, typing `typed` to confirm.
    fn sign_request(
        &self,
        request: &Path,
        trusted_root: &Path,
        typed: &str,
    ) -> (bool, String, PathBuf) {
        // The request travels on a stick: the custodian reads their own copy.
        let copy = self
            .hsm
            .path(request.file_name().unwrap().to_str().unwrap());
        if !copy.exists() {
            std::fs::copy(request, &copy).unwrap();
        }
        let out = self.hsm.path(&format!(
            "signature-{}",
            request.file_name().unwrap().to_str().unwrap()
        ));
        let mut child = self
            .hsm
            .rootcellar()
            .args(["tuf", "sign-request"])
            .arg(&copy)
            .arg("--key")
            .arg(&self.uri)
            .arg("--trusted-root")
            .arg(trusted_root)
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{typed}\n").as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text, out)
    }

    /// Signs `request` for root payload `payload`; returns the signature bundle.
    fn sign(&self, request: &Path, payload: &str) -> PathBuf {
        let (signed, text, out) = self.sign_request(request, &self.trusted_root, &payload[..8]);
        assert!(signed, "sign-request failed: {text}");
        out
    }
}

#[test]
fn two_custodians_sign_where_they_are_and_python_tuf_follows() {
    let appliance = Appliance::new();
    let policy = appliance.policy("policy-2.toml", &["c1", "c2", "c3"], 3);
    let payload = appliance.rotate(&policy);
    let requests: Vec<PathBuf> = ["c2", "c3"]
        .iter()
        .map(|c| appliance.request(c, c))
        .collect();

    // Each custodian, on their own machine, sees the change before typing the code.
    let (signed, text, c2_signature) = appliance.custodians[0].sign_request(
        &requests[0],
        &appliance.custodians[0].trusted_root,
        &payload[..8],
    );
    assert!(signed, "{text}");
    assert!(text.contains("signs root v2 (a rotation of v1)"), "{text}");
    assert!(text.contains("root: threshold 1 → 3"), "{text}");
    assert!(text.contains("+ c2 ("), "{text}");
    assert!(
        text.contains(&format!("Type {} to sign root v2", &payload[..8])),
        "{text}"
    );
    let c3_signature = appliance.custodians[1].sign(&requests[1], &payload);

    // Custodian 1 signs at the appliance, as today; then publish takes the two bundles.
    let mut sign = appliance.tuf(&["sign", "--repo"]);
    sign.arg(&appliance.repo).arg("--key").arg(&appliance.c1);
    ok(&mut sign);
    let out = ok(&mut appliance.publish(&policy, &[&c2_signature, &c3_signature]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("root      v2"), "{stdout}");
    assert!(appliance.repo.join("metadata/2.root.json").is_file());
    python_tuf_accepts(&appliance.repo, &[&appliance.target]);

    // Every step is in the journal.
    let (_, journal) = appliance.snapshot();
    for action in ["tuf.request-signature", "tuf.add-signatures", "tuf.publish"] {
        assert!(
            journal.contains(action),
            "{action} not journaled:\n{journal}"
        );
    }
}

#[test]
fn a_custodian_signs_from_a_tpm_token_and_python_tuf_follows() {
    // Custodian 3 holds their root key in a TPM (swtpm + tpm2-pkcs11), custodian 2 in a
    // SoftHSM2, each on their own machine; custodian 1 signs at the appliance.
    let Some(tpm) = TpmToken::start("custodian-3") else {
        return;
    };
    let appliance = Appliance::with_custodians(vec![
        CustodianToken::SoftHsm(SoftHsm::new("custodian-2"), "custodian-2".into()),
        CustodianToken::Tpm(tpm),
    ]);
    let policy = appliance.policy("policy-2.toml", &["c1", "c2", "c3"], 3);
    let payload = appliance.rotate(&policy);
    let c2_signature = appliance.custodians[0].sign(&appliance.request("c2", "c2"), &payload);
    let (signed, text, c3_signature) = appliance.custodians[1].sign_request(
        &appliance.request("c3", "c3"),
        &appliance.custodians[1].trusted_root,
        &payload[..8],
    );
    assert!(signed, "{text}");
    assert!(text.contains("+ c3 ("), "{text}");
    let mut sign = appliance.tuf(&["sign", "--repo"]);
    sign.arg(&appliance.repo).arg("--key").arg(&appliance.c1);
    ok(&mut sign);
    ok(&mut appliance.publish(&policy, &[&c2_signature, &c3_signature]));
    python_tuf_accepts(&appliance.repo, &[&appliance.target]);
    // The published root carries the TPM key's signature under c3's key id.
    let root: Value = serde_json::from_slice(
        &std::fs::read(appliance.repo.join("metadata/2.root.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(root["signatures"].as_array().unwrap().len(), 3, "{root}");
}

#[test]
fn a_custodian_refuses_a_request_their_trusted_root_does_not_lead_to() {
    let appliance = Appliance::new();
    let policy = appliance.policy("policy-2.toml", &["c1", "c2", "c3"], 3);
    let payload = appliance.rotate(&policy);
    let request = appliance.request("c2", "c2");
    let custodian = &appliance.custodians[0];

    // A root v1 of another repository (another expiry, so another root).
    let other = Appliance::new();
    let other_root = custodian.hsm.path("other-root.json");
    std::fs::copy(other.repo.join("metadata/1.root.json"), &other_root).unwrap();
    let (signed, text, out) = custodian.sign_request(&request, &other_root, &payload[..8]);
    assert!(!signed);
    assert!(
        text.contains("this request is for a root your trusted root (v1) does not lead to"),
        "{text}"
    );
    assert!(text.contains("nothing was signed"), "{text}");
    assert!(!out.exists());

    // A key the request does not name (custodian 3 with custodian 2's request).
    let (signed, text, out) = appliance.custodians[1].sign_request(
        &request,
        &appliance.custodians[1].trusted_root,
        &payload[..8],
    );
    assert!(!signed);
    assert!(text.contains("this request is for key c2 ("), "{text}");
    assert!(!out.exists());

    // The wrong code typed.
    let (signed, text, out) = custodian.sign_request(&request, &custodian.trusted_root, "00000000");
    assert!(!signed);
    assert!(text.contains("not confirmed"), "{text}");
    assert!(!out.exists());
}

/// A signature bundle made by hand: `key` signs `signed` (as the TUF signature) and the bundle.
fn forged_signature_bundle(
    dir: &Path,
    name: &str,
    key: &SoftwareKey,
    version: u64,
    payload_sha256: &str,
    signed: &[u8],
) -> PathBuf {
    let tuf_key = rootcellar::tuf::TufKey::from_public(key.public_key()).unwrap();
    let signature = rootcellar::tuf::RootSignature {
        role: "root".into(),
        version,
        payload_sha256: payload_sha256.into(),
        keyid: tuf_key.key_id,
        sig: hex::encode(key.sign(signed).unwrap()),
    };
    let reference = rootcellar::time::Reference {
        clock: clock(),
        build_time: clock(),
        latest_record: None,
        policy: rootcellar::time::TimePolicy::default(),
    };
    let rootcellar::time::Checked::Confirmed(now) =
        rootcellar::time::check(clock(), &reference).unwrap()
    else {
        unreachable!("the clock is the time")
    };
    let mut builder = BundleBuilder::new(BundleKind::Response, now)
        .ceremony(rootcellar::remote_signing::SIGNATURE_CEREMONY);
    builder
        .add(
            EntryType::TufMetadata,
            "root-signature.json",
            serde_json::to_vec(&signature).unwrap(),
        )
        .unwrap();
    let path = dir.join(name);
    std::fs::write(&path, builder.sign(key).unwrap()).unwrap();
    path
}

#[test]
fn the_appliance_refuses_a_key_no_root_lists_and_a_signature_over_other_bytes() {
    let appliance = Appliance::new();
    // Custodian 5 holds a key the test plays (software), listed in the draft.
    let c5 = SoftwareKey::generate_p256("c5");
    let c5_pem = appliance.hsm.path("c5.pub.pem");
    std::fs::write(&c5_pem, c5.public_key().spki_pem()).unwrap();
    let mut keys = std::fs::read_to_string(&appliance.keys_file).unwrap();
    keys.push_str(&format!(
        "c5 = {{ public_key = {} }}\n",
        toml::Value::String(c5_pem.display().to_string())
    ));
    std::fs::write(&appliance.keys_file, keys).unwrap();
    let policy = appliance.policy("policy-2.toml", &["c1", "c2", "c5"], 2);
    let payload = appliance.rotate(&policy);
    let draft = std::fs::read(appliance.repo.join("staged/2.root.json")).unwrap();
    let canonical = rootcellar::tuf::SignedMetadata::from_slice(&draft)
        .unwrap()
        .canonical_signed()
        .to_vec();
    let before = appliance.snapshot();

    let stranger = SoftwareKey::generate_p256("stranger");
    let bundle = forged_signature_bundle(
        &appliance.hsm.path(""),
        "stranger.rcb",
        &stranger,
        2,
        &payload,
        &canonical,
    );
    let message = fails(&mut appliance.add_signatures(&[&bundle]));
    assert!(
        message.contains("which is not a root key of root v1 or of the draft root v2"),
        "{message}"
    );
    assert!(message.contains("nothing was changed"), "{message}");
    assert_eq!(appliance.snapshot(), before);

    let mut other = canonical.clone();
    other.extend_from_slice(b" ");
    let bundle = forged_signature_bundle(
        &appliance.hsm.path(""),
        "other-bytes.rcb",
        &c5,
        2,
        &payload,
        &other,
    );
    let message = fails(&mut appliance.add_signatures(&[&bundle]));
    assert!(
        message.contains("is not a signature over the staged root v2's bytes"),
        "{message}"
    );
    assert_eq!(appliance.snapshot(), before);
    let message = fails(&mut appliance.publish(&policy, &[&bundle]));
    assert!(
        message.contains("is not a signature over the staged root v2's bytes"),
        "{message}"
    );
    assert_eq!(appliance.snapshot(), before);
    assert!(!appliance.repo.join("metadata/2.root.json").exists());

    // The same key over the right bytes is taken.
    let bundle = forged_signature_bundle(
        &appliance.hsm.path(""),
        "c5.rcb",
        &c5,
        2,
        &payload,
        &canonical,
    );
    let out = ok(&mut appliance.add_signatures(&[&bundle]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("added the signature of c5 ("));
}

#[test]
fn the_appliance_refuses_signatures_for_a_stale_draft() {
    let appliance = Appliance::new();
    let policy = appliance.policy("policy-2.toml", &["c1", "c2", "c3"], 2);
    let payload = appliance.rotate(&policy);
    let request = appliance.request("c2", "c2-first");
    let c2_signature = appliance.custodians[0].sign(&request, &payload);

    // The draft is withdrawn and drafted again otherwise: the signature is for the old one.
    std::fs::remove_file(appliance.repo.join("staged/2.root.json")).unwrap();
    let policy = appliance.policy("policy-2b.toml", &["c1", "c2", "c3"], 3);
    let new_payload = appliance.rotate(&policy);
    assert_ne!(payload, new_payload);
    let before = appliance.snapshot();
    let message = fails(&mut appliance.add_signatures(&[&c2_signature]));
    assert!(
        message.contains("the draft changed since the request"),
        "{message}"
    );
    assert!(
        message.contains(&format!("payload SHA-256 {payload}")),
        "{message}"
    );
    assert_eq!(appliance.snapshot(), before);

    // Root v2 published without custodian 2; their signature for v2 meets the v3 draft.
    let request = appliance.request("c3", "c3");
    let c3_signature = appliance.custodians[1].sign(&request, &new_payload);
    let mut sign = appliance.tuf(&["sign", "--repo"]);
    sign.arg(&appliance.repo).arg("--key").arg(&appliance.c1);
    ok(&mut sign);
    let request = appliance.request("c2", "c2-second");
    let c2_signature = appliance.custodians[0].sign(&request, &new_payload);
    ok(&mut appliance.publish(&policy, &[&c2_signature, &c3_signature]));
    let policy = appliance.policy("policy-3.toml", &["c1", "c2", "c3"], 2);
    appliance.rotate(&policy);
    let before = appliance.snapshot();
    let message = fails(&mut appliance.add_signatures(&[&c2_signature]));
    assert!(message.contains("a newer draft exists"), "{message}");
    assert!(message.contains("staged draft is root v3"), "{message}");
    assert_eq!(appliance.snapshot(), before);
}

#[test]
fn a_rotation_ceremony_with_a_custodian_away_publishes_once_their_signature_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("answers.toml"), answers_toml(&clock_time(), None)).unwrap();
    let run = |script: &str, inputs: Option<&Path>, out: &str| {
        ok(&mut rehearsal_command(
            script,
            &path("state"),
            &path("answers.toml"),
            inputs,
            &path(out),
        ))
    };
    let copy = |from: &Path, to: &Path| {
        assert!(Command::new("cp")
            .arg("-r")
            .arg(from)
            .arg(to)
            .status()
            .unwrap()
            .success());
    };
    run("ceremony/root-init.toml", None, "root-init");

    // At the appliance: custodians 1 and 4 sign; custodian 2 is sent a request.
    let request = path("rotate-request");
    std::fs::create_dir(&request).unwrap();
    copy(&path("root-init/tuf"), &request.join("tuf"));
    copy(
        &path("root-init/tuf-root-2.pub.pem"),
        &request.join("tuf-root-2.pub.pem"),
    );
    run(
        "ceremony/rotate-tuf-root-remote.toml",
        Some(&request),
        "rotated",
    );
    let awaiting = path("rotated/tuf-awaiting-signatures");
    assert!(awaiting.join("staged/2.root.json").is_file());
    assert!(!awaiting.join("metadata/2.root.json").exists());
    let transcript = std::fs::read_to_string(path("rotated/transcript.md")).unwrap();
    assert!(
        transcript.contains("request-root-custodian-2.rcb: root-custodian-2 ("),
        "{transcript}"
    );

    // Custodian 2, where they are, with their (rehearsal) token and the root they trust.
    let draft = std::fs::read(awaiting.join("staged/2.root.json")).unwrap();
    let payload = rootcellar::tuf::SignedMetadata::from_slice(&draft)
        .unwrap()
        .payload_sha256();
    let signature = path("signature-custodian-2.rcb");
    let key = format!(
        "pkcs11:token=custodian-2;object=tuf-root?module-path={}&pin-source={}",
        softhsm_module().display(),
        path("state/rehearsal/pins/custodian-2.pin").display()
    );
    let mut child = rootcellar()
        .env("SOFTHSM2_CONF", path("state/rehearsal/softhsm2.conf"))
        .args(["tuf", "sign-request"])
        .arg(path(
            "rotated/signing-requests/request-root-custodian-2.rcb",
        ))
        .arg("--key")
        .arg(&key)
        .arg("--trusted-root")
        .arg(path("root-init/tuf/metadata/1.root.json"))
        .arg("--out")
        .arg(&signature)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{}\n", &payload[..8]).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("REHEARSAL - NOT FOR PRODUCTION"), "{text}");
    assert!(text.contains("+ root-custodian-4 ("), "{text}");

    // Back at the appliance: the signature is added and the root published.
    let collect = path("collect-request");
    std::fs::create_dir(&collect).unwrap();
    copy(&awaiting, &collect.join("tuf"));
    copy(&signature, &collect.join("signature-custodian-2.rcb"));
    for key in ["tuf-root-1", "tuf-root-2"] {
        copy(
            &path(&format!("root-init/{key}.pub.pem")),
            &collect.join(format!("{key}.pub.pem")),
        );
    }
    copy(
        &path("rotated/tuf-root-4.pub.pem"),
        &collect.join("tuf-root-4.pub.pem"),
    );
    run(
        "ceremony/collect-root-signatures.toml",
        Some(&collect),
        "collected",
    );
    let repo = path("collected/tuf-rotated");
    assert!(repo.join("metadata/2.root.json").is_file());
    let transcript = std::fs::read_to_string(path("collected/transcript.md")).unwrap();
    assert!(
        transcript.contains("root-custodian-2 (")
            && transcript.contains("signed root v2 (where they are)"),
        "{transcript}"
    );
    python_tuf_accepts(&repo, &[]);
}
