//! The error type of the scep crate (DESIGN.md decision 10).

/// Why a SCEP operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration of an endpoint or a challenge method is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// An error from the authority.
    #[error(transparent)]
    Authority(#[from] ca_core::Error),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
