//! Key provenance: every key a ceremony makes is recorded, in the journal and the transcript,
//! with the device that made it (manufacturer, model, serial, firmware), as the token reports
//! itself to OpenSC's `pkcs11-tool` too. Also the small real ceremony the TPM tests run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{clock_time, ok, SoftHsm};

/// A ceremony on the token `token`: generate `root-ca` (P-384, never leaves the token), with
/// `split_pin` replace the token's PIN by a random one split 2 of 3 among three custodians
/// (`C_SetPIN`), and self-sign the root certificate with the key.
pub fn small_root_script(dir: &Path, token: &str, split_pin: bool) -> PathBuf {
    let script = dir.join("small-root.toml");
    let (roles, pin, split) = if split_pin {
        (
            "custodians = [\"custodian-1\", \"custodian-2\", \"custodian-3\"]\nquorum = 2\n",
            "pin = \"shares\"\n",
            "[[steps]]\nid = \"split-root-pin\"\ntitle = \"Split the root token's PIN\"\n\
             action = \"split-pin\"\nkey = \"root-ca\"\n\n",
        )
    } else {
        ("", "", "")
    };
    std::fs::write(
        &script,
        format!(
            r#"outputs = ["root.pem", "root-ca.pub.pem"]

[ceremony]
name = "small-root"
title = "A root CA key and certificate on one token"
summary = "Generates the root CA key inside its token and self-signs the root certificate."

[roles]
witnesses = 2
{roles}
[keys.root-ca]
uri = "pkcs11:token={token};object=root-ca"
algorithm = "p384"
{pin}
[[steps]]
id = "generate-keys"
title = "Generate the root CA key inside its token"
action = "generate-keys"
keys = ["root-ca"]

{split}[[steps]]
id = "root-certificate"
title = "Self-sign the root CA certificate"
action = "root-certificate"
key = "root-ca"
subject = "O=rootcellar tests,CN=Small Root CA"
days = 365
output = "root.pem"
"#
        ),
    )
    .unwrap();
    script
}

/// Runs [`small_root_script`] for real (not a rehearsal) with `rootcellar` (a command with the
/// token's environment): the clock's time, an operator, two witnesses and three custodians, the
/// token's PIN as its holder types it (from `pin_file`), shares written down into
/// `DIR/shares`. Returns the state and output directories.
pub fn run_small_root(
    mut rootcellar: Command,
    dir: &Path,
    token: &str,
    split_pin: bool,
    module: &Path,
    pin_file: &Path,
) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir.join("shares")).unwrap();
    let answers = dir.join("answers.toml");
    let custodians = if split_pin {
        "custodian-1 = [\"Carol\"]\ncustodian-2 = [\"Chidi\"]\ncustodian-3 = [\"Cem\"]\n"
    } else {
        ""
    };
    std::fs::write(
        &answers,
        format!(
            "time = \"{}\"\nconfirm = true\nshare_dir = \"{}\"\n[present]\n\
             operator = [\"Olga\"]\nwitness = [\"Wim\", \"Wanda\"]\n{custodians}\
             [pins]\n{token} = \"{}\"\n",
            clock_time(),
            dir.join("shares").display(),
            pin_file.display()
        ),
    )
    .unwrap();
    let (state, out) = (dir.join("state"), dir.join("out"));
    ok(rootcellar
        .env("ROOTCELLAR_PKCS11_MODULE", module)
        .args(["ceremony", "run"])
        .arg(small_root_script(dir, token, split_pin))
        .arg("--state")
        .arg(&state)
        .arg("--out")
        .arg(&out)
        .arg("--answers")
        .arg(&answers));
    (state, out)
}

/// The device as `pkcs11-tool -L` lists the token `label` (an independent reader of
/// `C_GetTokenInfo`): manufacturer, model, serial, firmware version.
pub fn listed_device(mut pkcs11_tool: Command, module: &Path, label: &str) -> [String; 4] {
    let out = ok(pkcs11_tool.arg("--module").arg(module).arg("-L"));
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let slot = listing
        .split("Slot ")
        .find(|slot| {
            slot.lines()
                .any(|l| l.trim() == format!("token label        : {label}"))
        })
        .unwrap_or_else(|| panic!("no token {label:?} in:\n{listing}"));
    let field = |name: &str| {
        slot.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|rest| rest.trim_start().strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {name} in:\n{slot}"))
            .trim()
            .to_string()
    };
    [
        field("token manufacturer"),
        field("token model"),
        field("serial num"),
        field("firmware version"),
    ]
}

/// Checks that the `key.generate` record of `root-ca` in the journal at `state`, and the
/// transcript in `out`, name the device `listed` as the key's.
pub fn assert_provenance_recorded(
    mut rootcellar: Command,
    state: &Path,
    out: &Path,
    listed: &[String; 4],
) {
    let [manufacturer, model, serial, firmware] = listed;
    let device = format!(
        "manufacturer {manufacturer:?}, model {model:?}, serial {serial:?}, firmware {firmware}"
    );
    let journal = ok(rootcellar
        .args(["journal", "show", "--json", "--state"])
        .arg(state));
    let segment: serde_json::Value = serde_json::from_slice(&journal.stdout).unwrap();
    let generated: Vec<String> = segment["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["action"] == "key.generate")
        .map(|r| r["detail"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(generated.len(), 1, "{segment:#}");
    assert!(
        generated[0].contains("object=root-ca") && generated[0].contains(&device),
        "the key.generate record does not name the device {device}: {}",
        generated[0]
    );
    let transcript = std::fs::read_to_string(out.join("transcript.md")).unwrap();
    assert!(
        transcript.contains(&format!("key root-ca device: {device}")),
        "the transcript's generate-keys step does not name the device {device}:\n{transcript}"
    );
}

#[test]
fn a_ceremony_records_the_softhsm_token_each_key_was_made_on() {
    let hsm = SoftHsm::new("small-root");
    let mut tool = Command::new("pkcs11-tool");
    tool.env("SOFTHSM2_CONF", &hsm.conf);
    let listed = listed_device(tool, &hsm.module, "small-root");
    assert_eq!(listed[0], "SoftHSM project", "{listed:?}");
    let (state, out) = run_small_root(
        hsm.rootcellar(),
        hsm.dir.path(),
        "small-root",
        false,
        &hsm.module,
        &hsm.pin_file,
    );
    assert_provenance_recorded(hsm.rootcellar(), &state, &out, &listed);
}
