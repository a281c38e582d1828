//! Integration tests against a real SoftHSM2 token (see `common.rs`).

mod bundle;
mod call_counts;
mod ceremony;
mod common;
mod console;
mod console_tmux;
mod crash;
mod crash_points;
mod faults;
mod import;
mod journal;
mod key_protection;
mod keys;
mod provenance;
mod remote_signing;
mod sealed_shares;
mod serials;
mod sigstore_verify;
mod time;
mod tpm;
mod tpm_token;
mod transcript_print;
mod trustroot;
mod tuf;
mod tuf_lifecycle;
mod x509;
