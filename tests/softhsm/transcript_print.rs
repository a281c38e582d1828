//! The printed transcript as an auditor holds it: a rehearsal root-init (stopped once and
//! resumed, when the crash hooks are built in), its `transcript.html` printed to PDF by a real
//! browser (headless Chromium, `--print-to-pdf`) and read back as text (poppler's `pdftotext`):
//! the signature lines are there, underscores and all, on one page, with each person's name;
//! so are the SHA-256 of `1.root.json`, every key's fingerprint and TUF key id, the page
//! numbers, and the interruption and the resume.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::common::*;

fn run_root_init(dir: &Path, crash_at: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rootcellar"));
    cmd.env_remove("ROOTCELLAR_PKCS11_MODULE")
        .env_remove("SOFTHSM2_CONF")
        .env_remove("ROOTCELLAR_TEST_CRASH_AT")
        .args(["ceremony", "run"])
        .arg(repo_file("ceremony/root-init.toml"))
        .arg("--rehearsal")
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--answers")
        .arg(dir.join("answers.toml"))
        .arg("--out")
        .arg(dir.join("out"));
    if let Some(point) = crash_at {
        cmd.env("ROOTCELLAR_TEST_CRASH_AT", point);
    }
    cmd.output().unwrap()
}

/// `html` printed to PDF by headless Chromium, on its default paper (Letter).
fn print_to_pdf(html: &Path, dir: &Path) -> PathBuf {
    let pdf = dir.join("transcript.pdf");
    let out = Command::new("timeout")
        // Not under `scripts/test-shifted-clock.sh`'s faketime: the browser only prints.
        .env_remove("LD_PRELOAD")
        .env_remove("FAKETIME")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
        ])
        // Its profile in the test's directory: nothing of the user's is read or written.
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium").display()
        ))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium runs (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success() && pdf.is_file(),
        "chromium did not print: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pdf
}

fn pdf_text(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .arg("-layout")
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext runs (scripts/install-deps.sh installs poppler-utils)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Text without any white space: long hashes wrap anywhere on paper.
fn squashed(text: &str) -> String {
    text.split_whitespace().collect()
}

#[test]
fn printed_transcript_has_signature_lines_hashes_and_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("answers.toml"), answers_toml(&clock_time(), None)).unwrap();
    let resumed = cfg!(feature = "test-hooks");
    if resumed {
        let stopped = run_root_init(dir, Some("root-certificate:before"));
        assert!(!stopped.status.success(), "the crash hook stopped the run");
    }
    let out = run_root_init(dir, None);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let delivered = dir.join("out");
    let text = pdf_text(&print_to_pdf(&delivered.join("transcript.html"), dir));
    let flat = squashed(&text);

    // One signature line per person present, with their name, and all on one page.
    let pages: Vec<&str> = text.split('\u{c}').collect();
    let signing = [
        "Operator: Olga,",
        "Witness 1: Wim,",
        "Witness 2: Wanda,",
        "Custodian 1 (custodian-1): Carol,",
        "Custodian 2 (custodian-2): Chidi,",
        "Custodian 3 (custodian-3): Cem,",
    ];
    let page = pages
        .iter()
        .position(|p| p.contains(signing[0]))
        .unwrap_or_else(|| panic!("no operator's line in:\n{text}"));
    for who in signing {
        let line = pages[page]
            .lines()
            .find(|l| l.contains(who))
            .unwrap_or_else(|| panic!("{who} not on the signatures' page:\n{}", pages[page]));
        let after = &line[line.find(who).unwrap() + who.len()..];
        assert!(
            after.contains(&format!("signature: {}", "_".repeat(30)))
                && after.contains(&format!("date: {}", "_".repeat(14))),
            "{who}: {line}"
        );
    }
    assert!(
        text.contains("page 1 of ") && text.contains(&format!("page {} of", pages.len() - 1)),
        "page numbers: {text}"
    );

    // The SHA-256 of every file of the TUF repository, 1.root.json first of all.
    let metadata = delivered.join("tuf/metadata");
    let root_json = std::fs::read(metadata.join("1.root.json")).unwrap();
    let root_digest = sha256_hex(&root_json);
    assert!(
        flat.contains(&format!("tuf/metadata/1.root.json:SHA-256{root_digest}")),
        "1.root.json's SHA-256 {root_digest} is printed:\n{text}"
    );
    for name in ["root.pem", "tuf-root-1.pub.pem", "bundle-key.pub.pem"] {
        let digest = sha256_hex(&std::fs::read(delivered.join(name)).unwrap());
        assert!(flat.contains(&digest), "{name}: {digest}");
    }

    // Every key's fingerprint (SHA-256 of its SubjectPublicKeyInfo, computed by openssl from
    // the PEM delivered) and each root key's TUF key id, as 1.root.json lists them.
    for key in [
        "root-ca",
        "tuf-root-1",
        "tuf-root-2",
        "tuf-root-3",
        "bundle-key",
    ] {
        let pem = delivered.join(format!("{key}.pub.pem"));
        let read_aloud = openssl_fingerprint_read_aloud(&pem);
        let fingerprint = squashed(read_aloud.trim_start_matches("SHA256 "));
        assert!(flat.contains(&fingerprint), "{key}: {fingerprint}");
    }
    let root: serde_json::Value = serde_json::from_slice(&root_json).unwrap();
    let key_ids = root["signed"]["roles"]["root"]["keyids"]
        .as_array()
        .unwrap();
    assert_eq!(key_ids.len(), 3);
    for id in key_ids {
        assert!(
            flat.contains(&format!("TUFkeyid{}", id.as_str().unwrap())),
            "{id}"
        );
    }

    // What ran it, the tree hash's formula, and the interruption and the resume.
    assert!(flat.contains(&squashed(&format!(
        "software: rootcellar {}",
        env!("CARGO_PKG_VERSION")
    ))));
    assert!(flat.contains("imagemanifest:none"));
    assert!(flat.contains("LC_ALL=Csort|xargssha256sum|sha256sum"));
    if resumed {
        assert!(
            flat.contains("run1stoppedduringsteproot-certificate") && flat.contains("run2resumed"),
            "{text}"
        );
        assert!(flat.contains("doneinanearlierrun:shown"), "{text}");
    }
}
