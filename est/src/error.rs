//! The EST error type: a refusal with the HTTP status RFC 7030 §4.2.3 asks for and a
//! short, safe reason for the client.

/// Errors of the EST service. Each maps to one HTTP status; the message is sent to the
/// client as `text/plain`, so it never carries a secret or internal detail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable credentials: 401 with `WWW-Authenticate` (RFC 7030 §3.2.3).
    #[error("{0}")]
    Unauthenticated(String),
    /// Too many failed password checks from this address or for this account: 429 with
    /// `Retry-After` (RFC 6585 §4), answered without checking the password.
    #[error("too many failed password attempts; retry in {retry_after} seconds")]
    RateLimited {
        /// Seconds until the limit ends.
        retry_after: u64,
    },
    /// Credentials were given but do not allow this: 403.
    #[error("{0}")]
    Forbidden(String),
    /// The request is malformed (body, CSR, encoding): 400.
    #[error("{0}")]
    BadRequest(String),
    /// No such EST endpoint (label): 404.
    #[error("{0}")]
    NotFound(String),
    /// The operation is not implemented (fullcmc, RFC 7030 §4.3): 501.
    #[error("{0}")]
    NotImplemented(String),
    /// The configuration is invalid.
    #[error("EST configuration: {0}")]
    Config(String),
    /// The authority refused or failed.
    #[error(transparent)]
    Core(#[from] ca_core::Error),
    /// A key operation failed.
    #[error(transparent)]
    Key(#[from] hsm::Error),
}

impl Error {
    /// The audit/refusal form of this error for ca-core's audit log.
    pub fn to_core(&self) -> ca_core::Error {
        match self {
            Error::Unauthenticated(m) => ca_core::Error::Unauthorized(m.clone()),
            Error::RateLimited { .. } => ca_core::Error::Unauthorized(self.to_string()),
            Error::Forbidden(m) => ca_core::Error::PolicyRefused(m.clone()),
            Error::BadRequest(m) | Error::NotFound(m) | Error::NotImplemented(m) => {
                ca_core::Error::BadRequest(m.clone())
            }
            Error::Config(m) => ca_core::Error::Config(m.clone()),
            Error::Core(e) => e.refusal(),
            Error::Key(e) => ca_core::Error::Internal(e.to_string()),
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
