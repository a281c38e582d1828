//! Integration tests against a real SoftHSM2 token (see `common.rs`).

mod ceremony;
mod common;
mod keys;
mod tuf;
mod tuf_lifecycle;
mod x509;
mod trustroot;
