//! Records what a ceremony transcript says of the binary that ran it, and when it was built:
//!
//! - `ROOTCELLAR_BUILD_TIME`, a lower bound for any time a ceremony may confirm: an appliance
//!   whose clock was reset to 1970 (or typed as 2020) cannot sign "before it existed".
//!   Reproducible builds (the appliance image) set SOURCE_DATE_EPOCH, and the binary then
//!   carries that instead of the wall clock.
//! - `ROOTCELLAR_COMMIT`, the git commit the binary was built from (`git rev-parse HEAD`), or
//!   the variable of that name when set (a build from a source archive), else "unknown". Two
//!   builds of one checkout get the same value: the image build compares their bytes.

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-env-changed=ROOTCELLAR_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|value| value.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=ROOTCELLAR_BUILD_TIME={epoch}");
    println!("cargo:rustc-env=ROOTCELLAR_COMMIT={}", commit());
}

fn commit() -> String {
    if let Ok(commit) = std::env::var("ROOTCELLAR_COMMIT") {
        return commit;
    }
    let Some(head) = git(&["rev-parse", "HEAD"]) else {
        return "unknown".into();
    };
    // Built again when HEAD moves: HEAD itself, the branch it names, and the packed refs.
    // (A worktree has its own HEAD; the refs are in the common directory.)
    let git_dir = git(&["rev-parse", "--git-dir"]).map(PathBuf::from);
    let common = git(&["rev-parse", "--git-common-dir"]).map(PathBuf::from);
    if let (Some(git_dir), Some(common)) = (git_dir, common) {
        let mut watched = vec![git_dir.join("HEAD"), common.join("packed-refs")];
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(common.join(branch));
        }
        for path in watched.into_iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    head
}

/// A git command's output, trimmed; None when git or the repository is not there.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
