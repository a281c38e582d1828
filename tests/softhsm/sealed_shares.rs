//! Custodians' shares handed out sealed to their age recipients or written down with a
//! re-typing check, and brought back at a quorum ceremony: the sealed files are opened with the
//! independent `age` CLI, as a custodian does on their own machine, and typed back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rootcellar::keys::{split_secret, Share};

use crate::common::*;

fn run_rehearsal(
    dir: &Path,
    script: &str,
    answers: &Path,
    inputs: Option<&Path>,
    out: &str,
) -> Output {
    rehearsal_command(script, &dir.join("state"), answers, inputs, &dir.join(out))
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A custodian's age key made with the `age` CLI's own `age-keygen`: the identity file and its
/// recipient.
fn age_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{name}.key"));
    let made = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success(), "age-keygen: {}", text(&made));
    let public = Command::new("age-keygen")
        .arg("-y")
        .arg(&key)
        .output()
        .unwrap();
    assert!(public.status.success(), "age-keygen -y: {}", text(&public));
    (
        key,
        String::from_utf8(public.stdout).unwrap().trim().to_string(),
    )
}

/// What `age -d -i KEY FILE` prints: the custodian opening their sealed share at home.
fn age_decrypt(key: &Path, sealed: &Path) -> String {
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(key)
        .arg(sealed)
        .output()
        .unwrap();
    assert!(out.status.success(), "age -d: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The one file in `dir` whose name starts with `prefix`.
fn only_file(dir: &Path, prefix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "{prefix} in {}: {found:?}", dir.display());
    found.into_iter().next().unwrap()
}

/// Changes one character of group `group` (from 1) of a grouped share, as a slip of the pen.
fn mistype(grouped: &str, group: usize) -> String {
    let mut groups: Vec<String> = grouped
        .lines()
        .flat_map(|l| l.split_whitespace().skip(1))
        .map(str::to_string)
        .collect();
    let first = groups[group - 1].remove(0);
    groups[group - 1].insert(0, if first == '7' { '8' } else { '7' });
    groups.join(" ")
}

#[test]
fn shares_sealed_to_two_custodians_and_written_down_by_the_third_rebuild_the_pin() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let (key1, recipient1) = age_key(d, "carol");
    let (key2, recipient2) = age_key(d, "chidi");
    // Custodian 3 types back, first, a share with a slip in group 3, then another split's
    // share (each check passes, the share is not the one shown), then what they wrote down.
    let decoy = split_secret(b"0123456789abcdef0123456789abcdef", 2, 3)
        .unwrap()
        .remove(2);
    let slip = d.join("slip.txt");
    std::fs::write(&slip, mistype(&decoy.to_grouped(), 3)).unwrap();
    let stranger = d.join("stranger.txt");
    std::fs::write(&stranger, decoy.to_grouped().as_bytes()).unwrap();
    let papers = d.join("papers");
    let answers = d.join("root-init.toml");
    std::fs::write(
        &answers,
        format!(
            "share_dir = \"{}\"\n{}[recipients]\ncustodian-1 = \"{recipient1}\"\n\
             custodian-2 = \"{recipient2}\"\n[mistyped]\ncustodian-3 = [\"{}\", \"{}\"]\n",
            papers.display(),
            answers_toml(&clock_time(), None),
            slip.display(),
            stranger.display()
        ),
    )
    .unwrap();

    let out = run_rehearsal(d, "ceremony/root-init.toml", &answers, None, "root-init");
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    // The re-typing check said what was wrong each time, and went on only once it matched.
    let slip_said = said
        .find(
            "custodian-3: What was typed back is not the share: group 3 (line 1, group 3 of \
               the line) does not match its check character",
        )
        .unwrap_or_else(|| panic!("{said}"));
    let stranger_said = said
        .find("custodian-3: What was typed back reads as a share, but not as the one shown")
        .unwrap_or_else(|| panic!("{said}"));
    let matched = said
        .find("custodian-3's share was typed back correctly.")
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        slip_said < stranger_said && stranger_said < matched,
        "{said}"
    );

    // Custodians 1 and 2 got sealed files among the outputs; custodian 3 a paper, nobody else.
    let sealed_dir = d.join("root-init/shares");
    let sealed1 = only_file(&sealed_dir, "custodian-1.root-ca.");
    let sealed2 = only_file(&sealed_dir, "custodian-2.root-ca.");
    assert_eq!(std::fs::read_dir(&sealed_dir).unwrap().count(), 2);
    let paper_names: Vec<String> = std::fs::read_dir(&papers)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(paper_names, ["custodian-3.share"]);
    let set_id = sealed1
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("custodian-1.root-ca.")
        .trim_end_matches(".age")
        .to_string();
    assert!(std::fs::read(&sealed1)
        .unwrap()
        .starts_with(b"age-encryption.org/v1"));

    // Opened with the independent age CLI, each is that custodian's share of the token's
    // current split; the other custodian's key does not open it.
    let opened1 = age_decrypt(&key1, &sealed1);
    let opened2 = age_decrypt(&key2, &sealed2);
    let share1 = Share::parse_typed(&opened1).unwrap();
    let share2 = Share::parse_typed(&opened2).unwrap();
    assert_eq!((share1.index(), share2.index()), (1, 2));
    assert_eq!(share1.set_id(), set_id);
    assert_eq!(share2.set_id(), set_id);
    let wrong_key = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&key2)
        .arg(&sealed1)
        .output()
        .unwrap();
    assert!(!wrong_key.status.success());
    let share3 =
        Share::parse_typed(&std::fs::read_to_string(papers.join("custodian-3.share")).unwrap())
            .unwrap();
    assert_eq!((share3.index(), share3.set_id()), (3, set_id.clone()));

    // The transcript (and the journal) say who holds which share by its fingerprint and the
    // recipient it was sealed to; never the share.
    let transcript = std::fs::read_to_string(d.join("root-init/transcript.md")).unwrap();
    for (custodian, share, how) in [
        ("custodian-1", &share1, format!("sealed to {recipient1}")),
        ("custodian-2", &share2, format!("sealed to {recipient2}")),
        (
            "custodian-3",
            &share3,
            "written down at the console and typed back".to_string(),
        ),
    ] {
        let line = format!(
            "{custodian}: share {} of split {set_id} (root-ca), fingerprint {}, {how}",
            share.index(),
            share.fingerprint()
        );
        assert!(transcript.contains(&line), "{line}\n{transcript}");
    }
    let journal = ok(rootcellar()
        .args(["journal", "show", "--state"])
        .arg(d.join("state")));
    let journal = String::from_utf8_lossy(&journal.stdout);
    assert_eq!(journal.matches("share.handout").count(), 3, "{journal}");
    assert!(journal.contains(&share1.fingerprint()), "{journal}");
    for share in [&share1, &share2, &share3] {
        let hex = hex::encode(&share.to_bytes()[..]);
        for record in [&transcript, &journal.to_string(), &said] {
            assert!(!record.contains(&hex[20..60]), "a share was recorded");
        }
    }
    // The rehearsal keeps the written-down share, and marks the sealed ones to be asked for.
    let set = d.join("state/rehearsal/shares/root-ca").join(&set_id);
    assert!(set.join("custodian-3.share").exists());
    assert!(set.join("custodian-1.sealed").exists() && !set.join("custodian-1.share").exists());

    // A quorum ceremony: custodians 1 and 2 bring what `age -d` printed. A slip in group 2 is
    // named (and nothing is signed); typed right, the PIN is rebuilt and the token signs.
    let request = d.join("request");
    std::fs::create_dir(&request).unwrap();
    std::fs::copy(d.join("root-init/root.pem"), request.join("root.pem")).unwrap();
    for name in ["fulcio", "tsa"] {
        let csr = openssl_csr(d, name, "prime256v1", &format!("/CN={name}"));
        std::fs::rename(csr, request.join(format!("{name}.csr"))).unwrap();
    }
    let typed1 = d.join("carol-typed.txt");
    let typed2 = d.join("chidi-typed.txt");
    std::fs::write(&typed1, mistype(&share1.to_grouped(), 2)).unwrap();
    std::fs::write(&typed2, &opened2).unwrap();
    let quorum = d.join("quorum.toml");
    std::fs::write(
        &quorum,
        format!(
            "{}[shares]\ncustodian-1 = \"{}\"\ncustodian-2 = \"{}\"\n",
            answers_toml(&clock_time(), None),
            typed1.display(),
            typed2.display()
        ),
    )
    .unwrap();
    let refused = run_rehearsal(
        d,
        "ceremony/issue-intermediate.toml",
        &quorum,
        Some(&request),
        "intermediates",
    );
    let said = text(&refused);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("the share of custodian-1 is refused: group 2 (line 1, group 2 of the line)"),
        "{said}"
    );
    assert!(!d.join("intermediates").exists());

    std::fs::write(&typed1, &opened1).unwrap();
    let signed = run_rehearsal(
        d,
        "ceremony/issue-intermediate.toml",
        &quorum,
        Some(&request),
        "intermediates",
    );
    assert!(signed.status.success(), "{}", text(&signed));
    let root = d.join("root-init/root.pem");
    let cert = d.join("intermediates/intermediate-fulcio.pem");
    assert!(openssl_verify(&root, &cert).status.success());
}
