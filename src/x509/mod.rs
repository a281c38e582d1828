//! x
/// e
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct X509Error;
