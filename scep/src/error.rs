//! The error type of the scep crate (docs/architecture.md, decision 10).

/// Why a SCEP operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration of an endpoint or a challenge method is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// A message that cannot be decoded far enough to answer with a CertRep (HTTP 400).
    #[error("malformed SCEP message: {0}")]
    Malformed(String),
    /// A reply could not be built or read (client side, or an internal encoding problem).
    #[error("SCEP reply: {0}")]
    Reply(String),
    /// An outside service privca calls on its own (Intune's revocation service) could not
    /// be reached or answered something unusable.
    #[error("upstream service: {0}")]
    Upstream(String),
    /// An error from the key backend.
    #[error(transparent)]
    Key(#[from] hsm::Error),
    /// An error from the authority.
    #[error(transparent)]
    Authority(#[from] ca_core::Error),
}

impl Error {
    /// A [`Error::Malformed`] with a message.
    pub fn malformed(msg: impl Into<String>) -> Error {
        Error::Malformed(msg.into())
    }

    /// True when the failure is the server's and temporary (the key backend is
    /// unavailable, the request's time ran out): answered with HTTP 503 so that the client
    /// retries, and audited as such, never as the client's fault.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Key(e) => matches!(e, hsm::Error::Unavailable(_)),
            Error::Authority(e) => e.kind() == ca_core::ErrorKind::Unavailable,
            _ => false,
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
