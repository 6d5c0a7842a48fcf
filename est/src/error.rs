//! The EST error type: a refusal of a kind, whose HTTP status (RFC 7030 §4.2.3) comes from
//! the one mapping of error kinds ([`ca_core::ErrorKind::answer`]), and a short, safe
//! reason for the client.

use ca_core::ErrorKind;

/// Errors of the EST service. Each has a [`ca_core::ErrorKind`] ([`Error::kind`]), which
/// gives its HTTP status; the message is sent to the client as `text/plain`, so it never
/// carries a secret or internal detail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable credentials (kind unauthorized: 401 with `WWW-Authenticate`, RFC 7030
    /// §3.2.3).
    #[error("{0}")]
    Unauthenticated(String),
    /// Too many failed password checks from this address or for this account (kind rate
    /// limited: 429 with `Retry-After`, RFC 6585 §4), answered without checking the
    /// password.
    #[error("too many failed password attempts; retry in {retry_after} seconds")]
    RateLimited {
        /// Seconds until the limit ends.
        retry_after: u64,
    },
    /// Credentials were given but do not allow this (kind policy refused: 403).
    #[error("{0}")]
    Forbidden(String),
    /// The request is malformed: body, CSR, encoding (kind bad request: 400).
    #[error("{0}")]
    BadRequest(String),
    /// No such EST endpoint (label) (kind not found: 404).
    #[error("{0}")]
    NotFound(String),
    /// The operation is not offered (fullcmc, RFC 7030 §4.3) (kind unsupported: 501).
    #[error("{0}")]
    NotImplemented(String),
    /// The configuration is invalid.
    #[error("EST configuration: {0}")]
    Config(String),
    /// The enrollment core refused by its own rules (renewal, profile, a withheld
    /// certificate); its kind gives the status.
    #[error("{}", .0.client_text)]
    Refused(ca_core::enroll::Refusal),
    /// The authority refused or failed.
    #[error(transparent)]
    Core(#[from] ca_core::Error),
    /// A key operation failed.
    #[error(transparent)]
    Key(#[from] hsm::Error),
}

impl Error {
    /// The kind of this refusal, which picks its HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unauthenticated(_) => ErrorKind::Unauthorized,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::Forbidden(_) => ErrorKind::PolicyRefused,
            Error::BadRequest(_) => ErrorKind::BadRequest,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::NotImplemented(_) => ErrorKind::Unsupported,
            Error::Refused(r) => r.kind,
            Error::Core(e) => e.precise_kind(),
            Error::Key(hsm::Error::Unavailable(_)) => ErrorKind::Unavailable,
            Error::Config(_) | Error::Key(_) => ErrorKind::Internal,
        }
    }

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
            Error::Refused(r) => ca_core::Error::with_kind(r.kind, &r.detail),
            Error::Core(e) => e.refusal(),
            Error::Key(e) => ca_core::Error::Internal(e.to_string()),
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
