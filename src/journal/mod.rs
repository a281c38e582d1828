//! The hash-chained audit journal (stub; being built).

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Placeholder until the module is built.
    #[error("the journal is not implemented yet")]
    NotImplemented,
}
