//! Integration tests against a real SoftHSM2 token (see `common.rs`).

mod common;
mod keys;
mod tuf;
mod x509;
mod trustroot;
