//! The error type of ca-core (DESIGN.md decision 10).
//!
//! Every error has a [`ErrorKind`] and a message that is safe to show to the client that
//! caused it. Internal detail (I/O, backend failures) is kept in [`Error::Internal`], whose
//! [`Error::client_message`] hides it; callers log the full error with their request id.

use std::fmt;

/// What kind of failure, for mapping to a protocol status (HTTP status, SCEP failInfo,
/// OCSP responseStatus). Only the HTTP mappings turn kinds into wire values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (bad DER, bad signature, unsupported algorithm).
    BadRequest,
    /// The requester is not who it claims or lacks rights.
    Unauthorized,
    /// The request is well-formed but policy refuses it (names, key size, profile).
    PolicyRefused,
    /// The thing asked for does not exist.
    NotFound,
    /// The request conflicts with the current state (already revoked, CA exists).
    Conflict,
    /// A resource the CA needs is unavailable for now (the key backend, or the store's
    /// disk is full or failing), or the request's time ran out before anything was
    /// recorded: nothing was done and the same request may succeed later. HTTP mappings
    /// answer 503 with `Retry-After` (RFC 9110 §15.6.4).
    Unavailable,
    /// Something failed inside the CA.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::BadRequest => "bad request",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::PolicyRefused => "refused by policy",
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "temporarily unavailable",
            ErrorKind::Internal => "internal error",
        })
    }
}

/// Why an authority operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Malformed input.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Not authorised.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Refused by profile or policy.
    #[error("refused: {0}")]
    PolicyRefused(String),
    /// Not found.
    #[error("not found: {0}")]
    NotFound(String),
    /// Conflicts with the current state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A lint refused an object before it was signed (a CA bug or a bad profile).
    #[error("lint refused the {object}: {findings}")]
    Lint {
        /// What was linted (`certificate`, `CRL`).
        object: &'static str,
        /// The findings, joined.
        findings: String,
    },
    /// Invalid configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// Key backend failure.
    #[error("key backend: {0}")]
    Key(#[from] hsm::Error),
    /// Store failure.
    #[error("store: {0}")]
    Store(store::Error),
    /// Temporarily unavailable: retry later (see [`ErrorKind::Unavailable`]).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Any other internal failure.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadRequest(_) => ErrorKind::BadRequest,
            Error::Unauthorized(_) => ErrorKind::Unauthorized,
            Error::PolicyRefused(_) => ErrorKind::PolicyRefused,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Store(store::Error::NotFound(_)) => ErrorKind::NotFound,
            Error::Store(store::Error::Conflict(_)) => ErrorKind::Conflict,
            Error::Store(store::Error::Unavailable(_)) => ErrorKind::Unavailable,
            Error::Key(hsm::Error::NotFound(_)) => ErrorKind::NotFound,
            Error::Unavailable(_) | Error::Key(hsm::Error::Unavailable(_)) => {
                ErrorKind::Unavailable
            }
            Error::Lint { .. }
            | Error::Config(_)
            | Error::Key(_)
            | Error::Store(_)
            | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// A message safe to send to the client: the full text for client-caused errors,
    /// only the kind for internal ones.
    pub fn client_message(&self) -> String {
        match self {
            Error::Key(hsm::Error::Unavailable(_)) => {
                return "the key backend is unavailable; retry later".to_string();
            }
            Error::Unavailable(_) => return self.to_string(),
            _ => {}
        }
        match self.kind() {
            ErrorKind::Internal => "internal error".to_string(),
            ErrorKind::Unavailable => UNAVAILABLE_MESSAGE.to_string(),
            _ => self.to_string(),
        }
    }

    /// [`Error::client_message`] without the kind in front (`bad request: x` gives `x`),
    /// for callers that put it into a text of their own, so that prefixes do not pile
    /// up (`bad request: CSR: bad request: …`).
    pub fn reason(&self) -> String {
        match self {
            Error::BadRequest(m)
            | Error::Unauthorized(m)
            | Error::PolicyRefused(m)
            | Error::NotFound(m)
            | Error::Conflict(m) => m.clone(),
            other => other.client_message(),
        }
    }

    /// A copy to audit or log a refusal with: the same kind and [`Error::reason`];
    /// internal errors keep their text (logged, never sent).
    pub fn refusal(&self) -> Error {
        match (self.kind(), self) {
            (ErrorKind::BadRequest, _) => Error::BadRequest(self.reason()),
            (ErrorKind::Unauthorized, _) => Error::Unauthorized(self.reason()),
            (ErrorKind::PolicyRefused, _) => Error::PolicyRefused(self.reason()),
            (ErrorKind::NotFound, _) => Error::NotFound(self.reason()),
            (ErrorKind::Conflict, _) => Error::Conflict(self.reason()),
            (ErrorKind::Unavailable, Error::Unavailable(m)) => Error::Unavailable(m.clone()),
            (ErrorKind::Unavailable, other) => Error::Unavailable(other.to_string()),
            (ErrorKind::Internal, Error::Internal(m)) => Error::Internal(m.clone()),
            (ErrorKind::Internal, other) => Error::Internal(other.to_string()),
        }
    }
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        Error::Store(e)
    }
}

impl From<der::Error> for Error {
    fn from(e: der::Error) -> Self {
        Error::Internal(format!("DER encoding: {e}"))
    }
}

/// What a client is told when the store cannot write (the detail goes to the log only).
pub const UNAVAILABLE_MESSAGE: &str = "storage is temporarily unavailable; retry later";

/// Seconds a client is asked to wait (`Retry-After`) after an [`ErrorKind::Unavailable`].
pub const RETRY_AFTER_SECONDS: u32 = 30;

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
