//! The error type of the server crate.

/// Why a server or CLI operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid or unreadable configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// The authority refused or failed.
    #[error(transparent)]
    Core(#[from] ca_core::Error),
    /// Key backend failure.
    #[error("keys: {0}")]
    Key(#[from] hsm::Error),
    /// Store failure.
    #[error("store: {0}")]
    Store(#[from] store::Error),
    /// EST configuration or service error.
    #[error(transparent)]
    Est(#[from] est::Error),
    /// File or socket failure.
    #[error("{0}")]
    Io(String),
    /// The admin API answered with an error.
    #[error("server answered {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// Invalid command-line usage.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// An I/O error with context.
    pub fn io(context: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
        Error::Io(format!("{context}: {e}"))
    }

    /// Whether the store could not be opened because another process (a running server)
    /// holds it: online commands then go through that server's admin API.
    pub fn is_store_locked(&self) -> bool {
        matches!(
            self,
            Error::Store(store::Error::Locked(_))
                | Error::Core(ca_core::Error::Store(store::Error::Locked(_)))
        )
    }
}
