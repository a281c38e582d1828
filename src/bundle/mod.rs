//! Sneakernet bundles (stub; being built).

/// Why a bundle was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Placeholder until the module is built.
    #[error("bundles are not implemented yet")]
    NotImplemented,
}
