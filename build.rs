//! Records when this binary was built, as a lower bound for any time a ceremony may confirm: an
//! appliance whose clock was reset to 1970 (or typed as 2020) cannot sign "before it existed".
//! Reproducible builds (the appliance image) set SOURCE_DATE_EPOCH, and the binary then carries
//! that instead of the wall clock.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
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
}
