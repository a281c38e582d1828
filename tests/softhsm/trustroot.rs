//! `trusted_root.json` and `signing_config.v0.2.json` built from the appliance's PKI and the
//! online side's log keys, read back by sigstore-python, with history kept across rotations.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use serde_json::Value;

use crate::common::*;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn pem_der(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    x509_parser::pem::parse_x509_pem(&bytes).unwrap().1.contents
}

/// A root CA in the token plus intermediates and online-side material made with openssl.
struct Site {
    hsm: SoftHsm,
    root_key: String,
}

impl Site {
    fn new() -> Self {
        let hsm = SoftHsm::new("ca");
        let root_key = hsm.generate("ca", "root-ca", "p384");
        ok(hsm
            .rootcellar()
            .args(["x509", "root", "--key", &root_key])
            .args(["--subject", "O=site,CN=site root", "--out", "root.pem"]));
        Site { hsm, root_key }
    }

    fn intermediate(&self, profile: &str, name: &str) -> PathBuf {
        let csr = openssl_csr(
            self.hsm.dir.path(),
            name,
            "prime256v1",
            &format!("/O=site/CN={name}"),
        );
        let out = self.hsm.path(&format!("{name}.pem"));
        ok(self
            .hsm
            .rootcellar()
            .args(["x509", "issue", "--profile", profile])
            .args(["--csr", csr.to_str().unwrap(), "--issuer-cert", "root.pem"])
            .args([
                "--issuer-key",
                &self.root_key,
                "--out",
                out.to_str().unwrap(),
            ]));
        out
    }

    /// The online TSA's signing certificate, issued by the TSA intermediate's (software) key.
    fn tsa_leaf(&self, intermediate: &Path, intermediate_key: &str) -> PathBuf {
        let dir = self.hsm.dir.path();
        let csr = openssl_csr(dir, "tsa-leaf", "prime256v1", "/O=site/CN=tsa signer");
        let ext = dir.join("tsa-leaf.ext");
        std::fs::write(&ext, "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n").unwrap();
        let out = dir.join("tsa-leaf.pem");
        let made = openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            intermediate.to_str().unwrap(),
            "-CAkey",
            dir.join(format!("{intermediate_key}.key"))
                .to_str()
                .unwrap(),
            "-set_serial",
            "7",
            "-days",
            "365",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            out.to_str().unwrap(),
        ]);
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        out
    }

    fn log_key(&self, name: &str) -> PathBuf {
        let dir = self.hsm.dir.path();
        let key = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pub"));
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
            public.to_str().unwrap()
        ])
        .status
        .success());
        public
    }

    /// `trustroot build` of `config` into `out`, with `time` the time arguments (`--time T`,
    /// and `--time-again T` when T is far from the clock).
    fn build(
        &self,
        config: &str,
        previous: Option<&str>,
        out: &str,
        time: &[&str],
    ) -> std::process::Output {
        let config_path = self.hsm.path(&format!("{out}.toml"));
        std::fs::write(&config_path, config).unwrap();
        std::fs::create_dir_all(self.hsm.path(out)).unwrap();
        let mut cmd = self.hsm.rootcellar();
        cmd.args([
            "trustroot",
            "build",
            "--config",
            config_path.to_str().unwrap(),
            "--out",
            out,
        ]);
        cmd.args(time);
        if let Some(previous) = previous {
            cmd.args(["--previous", previous]);
        }
        cmd.output().unwrap()
    }

    fn json(&self, path: &str) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.hsm.path(path)).unwrap()).unwrap()
    }
}

fn full_config(fulcio: &str, tsa_leaf: &str, rekor: &str) -> String {
    format!(
        r#"
[[certificate_authorities]]
uri = "https://fulcio.site.internal"
chain = ["{fulcio}", "root.pem"]

[[timestamp_authorities]]
uri = "https://tsa.site.internal"
chain = ["{tsa_leaf}", "tsa.pem", "root.pem"]

[[tlogs]]
base_url = "https://rekor.site.internal"
public_key = "{rekor}"

[[ctlogs]]
base_url = "https://ctfe.site.internal"
public_key = "ctfe.pub"

[signing_config]
operator = "site.internal"
ca_urls = ["https://fulcio.site.internal"]
oidc_urls = ["https://oidc.site.internal"]
rekor_urls = ["https://rekor.site.internal"]
tsa_urls = ["https://tsa.site.internal/api/v1/timestamp"]
"#
    )
}

#[test]
fn sigstore_python_reads_the_trust_root_and_its_chains_match_the_pki() {
    let site = Site::new();
    let fulcio = site.intermediate("fulcio", "fulcio");
    let tsa = site.intermediate("tsa", "tsa");
    let tsa_leaf = site.tsa_leaf(&tsa, "tsa");
    let rekor = site.log_key("rekor");
    site.log_key("ctfe");
    let config = full_config("fulcio.pem", "tsa-leaf.pem", "rekor.pub");
    // The clock, never ahead of it: clients ignore keys whose validity has not started yet.
    let now = clock_time();
    let built = site.build(&config, None, "v1", &["--time", &now]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let root = site.json("v1/trusted_root.json");
    assert_eq!(
        root["mediaType"],
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    );
    let rekor_der = rootcellar::keys::PublicKey::from_spki(&std::fs::read(&rekor).unwrap())
        .unwrap()
        .spki_der();
    let tlog = &root["tlogs"][0];
    assert_eq!(tlog["publicKey"]["rawBytes"], b64(&rekor_der));
    use sha2::Digest;
    assert_eq!(
        tlog["logId"]["keyId"],
        b64(&sha2::Sha256::digest(&rekor_der))
    );
    assert_eq!(tlog["publicKey"]["keyDetails"], "PKIX_ECDSA_P256_SHA_256");
    assert_eq!(tlog["publicKey"]["validFor"]["start"], now.as_str());
    assert!(root["ctlogs"][0]["logId"]["keyId"].is_string());

    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/sigstore_trustroot_check.py"
        ))
        .arg(site.hsm.path("v1/trusted_root.json"))
        .arg(site.hsm.path("v1/signing_config.v0.2.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sigstore-python refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    let chain =
        |paths: &[&Path]| Value::from(paths.iter().map(|p| b64(&pem_der(p))).collect::<Vec<_>>());
    let root_pem = site.hsm.path("root.pem");
    assert_eq!(
        seen["fulcio_certs"],
        chain(&[&fulcio, &root_pem]),
        "leaf first, root last"
    );
    assert_eq!(
        seen["timestamp_authorities"][0],
        chain(&[&tsa_leaf, &tsa, &root_pem])
    );
    assert_eq!(seen["fulcio_url"], "https://fulcio.site.internal");
    assert_eq!(seen["oidc_url"], "https://oidc.site.internal");
    assert_eq!(seen["tlogs"], 1);
    assert_eq!(seen["tsas"], 1);
}

#[test]
fn every_list_is_present_even_when_empty() {
    let site = Site::new();
    site.intermediate("fulcio", "fulcio");
    let config = "[[certificate_authorities]]\nuri = \"https://f\"\nchain = [\"fulcio.pem\", \"root.pem\"]\n";
    let built = site.build(config, None, "only-ca", &["--time", &clock_time()]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let root = site.json("only-ca/trusted_root.json");
    for list in ["tlogs", "ctlogs", "timestampAuthorities"] {
        assert_eq!(root[list], Value::Array(vec![]), "{list}");
    }
    assert!(!site.hsm.path("only-ca/signing_config.v0.2.json").exists());
}

#[test]
fn a_rotation_keeps_the_retired_intermediate_and_log_key_closed() {
    let site = Site::new();
    site.intermediate("fulcio", "fulcio");
    let tsa = site.intermediate("tsa", "tsa");
    site.tsa_leaf(&tsa, "tsa");
    site.log_key("rekor");
    site.log_key("ctfe");
    assert!(site
        .build(
            &full_config("fulcio.pem", "tsa-leaf.pem", "rekor.pub"),
            None,
            "v1",
            &["--time", &clock_time()]
        )
        .status
        .success());

    // Six months later (the time far from the clock, so typed again): a new Fulcio
    // intermediate and a new Rekor key.
    site.intermediate("fulcio", "fulcio-2");
    site.log_key("rekor-2");
    let later = days_from_now(182);
    let later = later.as_str();
    let previous = site.hsm.path("v1/trusted_root.json");
    let built = site.build(
        &full_config("fulcio-2.pem", "tsa-leaf.pem", "rekor-2.pub"),
        Some(previous.to_str().unwrap()),
        "v2",
        &time_typed_again(later),
    );
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let v1 = site.json("v1/trusted_root.json");
    let v2 = site.json("v2/trusted_root.json");

    let cas = v2["certificateAuthorities"].as_array().unwrap();
    assert_eq!(cas.len(), 2);
    assert_eq!(cas[0], {
        let mut retired = v1["certificateAuthorities"][0].clone();
        retired["validFor"]["end"] = later.into();
        retired
    });
    assert!(
        cas[1]["validFor"].get("end").is_none(),
        "the new intermediate is current"
    );
    let tlogs = v2["tlogs"].as_array().unwrap();
    assert_eq!(tlogs.len(), 2);
    assert_eq!(tlogs[0]["publicKey"]["validFor"]["end"], later);
    assert_eq!(tlogs[0]["logId"], v1["tlogs"][0]["logId"]);
    assert!(tlogs[1]["publicKey"]["validFor"].get("end").is_none());
    // Unchanged entries keep their original start and stay open.
    assert_eq!(v2["ctlogs"], v1["ctlogs"]);
    assert_eq!(v2["timestampAuthorities"], v1["timestampAuthorities"]);
}

#[test]
fn broken_chains_and_existing_outputs_are_refused() {
    let site = Site::new();
    let time = clock_time();
    let now: &[&str] = &["--time", &time];
    site.intermediate("fulcio", "fulcio");
    let reversed = "[[certificate_authorities]]\nuri = \"https://f\"\nchain = [\"root.pem\", \"fulcio.pem\"]\n";
    let built = site.build(reversed, None, "bad-order", now);
    let err = String::from_utf8_lossy(&built.stderr);
    assert!(
        !built.status.success() && err.contains("order the chain leaf first"),
        "{err}"
    );
    assert!(!site.hsm.path("bad-order/trusted_root.json").exists());

    // A Fulcio chain is not a timestamp authority: its first certificate lacks timeStamping.
    let wrong_kind =
        "[[timestamp_authorities]]\nuri = \"https://t\"\nchain = [\"fulcio.pem\", \"root.pem\"]\n";
    let built = site.build(wrong_kind, None, "wrong-kind", now);
    let err = String::from_utf8_lossy(&built.stderr);
    assert!(
        !built.status.success() && err.contains("lacks the timeStamping"),
        "{err}"
    );

    let unknown = "[[certificate_authorities]]\nurl = \"https://f\"\nchain = []\n";
    let built = site.build(unknown, None, "unknown-field", now);
    let err = String::from_utf8_lossy(&built.stderr);
    assert!(
        !built.status.success() && err.contains("unknown field `url`"),
        "{err}"
    );

    let good = "[[certificate_authorities]]\nuri = \"https://f\"\nchain = [\"fulcio.pem\", \"root.pem\"]\n";
    assert!(site.build(good, None, "once", now).status.success());
    let again = site.build(good, None, "once", now);
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
}
