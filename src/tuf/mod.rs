//! t
/// e
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct TufError;
