//! The error type of ca-core (docs/architecture.md, decision 10).
//!
//! Every error has a [`ErrorKind`] and a message that is safe to show to the client that
//! caused it. Internal detail (I/O, backend failures) is kept in [`Error::Internal`], whose
//! [`Error::client_message`] hides it; callers log the full error with their request id.

use std::fmt;

/// What kind of failure, for mapping to a protocol status (HTTP status, SCEP failInfo,
/// ACME problem type). The one mapping is [`ErrorKind::answer`]; the HTTP mappings of
/// each protocol read their wire values from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (bad DER, missing parts, contradictions).
    BadRequest,
    /// A signature of the request (the CSR's proof of possession, a message signature)
    /// does not verify.
    BadSignature,
    /// The request uses a signature or key algorithm this server does not support.
    UnsupportedAlgorithm,
    /// The key is of a type or size the profile does not allow (too weak, wrong curve).
    RefusedKey,
    /// The request's public key was revoked for keyCompromise and is on the blocklist
    /// (RFC 5280 §5.3.1): no certificate is issued for it again, on any channel.
    ///
    /// Its answers: HTTP 403, not 400, because the request is well formed and understood
    /// and the server refuses to act on it (RFC 9110 §15.5.4; EST, RFC 7030 §4.2.3, leaves
    /// the status to HTTP), like every other policy refusal; SCEP failInfo badRequest
    /// ("transaction not permitted", RFC 8894 §3.2.1.4.5), not badAlg, which would tell a
    /// client to retry with another algorithm when only a new key helps; ACME
    /// badPublicKey (RFC 8555 §6.7, as for any refused key).
    CompromisedKey,
    /// A time is out of range: a requested validity, or the certificate being renewed
    /// has expired or is not yet valid.
    BadTime,
    /// The certificate the request names (the one being renewed, a GetCert target) is
    /// unknown to this CA or revoked.
    UnknownCertificate,
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
    /// Too many attempts (failed passwords): retry after a while (RFC 6585 §4).
    RateLimited,
    /// The operation is not offered (EST fullcmc, serverkeygen turned off).
    Unsupported,
}

/// SCEP failInfo values (RFC 8894 §3.2.1.4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailInfo {
    /// badAlg (0): unrecognised or unsupported algorithm.
    BadAlg = 0,
    /// badMessageCheck (1): integrity check (signature) failed.
    BadMessageCheck = 1,
    /// badRequest (2): transaction not permitted or supported.
    BadRequest = 2,
    /// badTime (3): messageTime was not close enough to the system time.
    BadTime = 3,
    /// badCertId (4): no certificate could be identified matching the criteria.
    BadCertId = 4,
}

/// What each protocol answers for one [`ErrorKind`]: one row of the mapping table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The SCEP failInfo of the CertRep FAILURE (RFC 8894 §3.2.1.4.5); `None` when no
    /// CertRep is sent and the HTTP status answers instead (a temporary failure of the
    /// server: 503 with Retry-After, RFC 8894 §4.3 leaves HTTP errors to the transport).
    pub scep: Option<FailInfo>,
    /// The HTTP status for EST (RFC 7030 §4.2.3) and ACME (RFC 8555 §6.7).
    pub http_status: u16,
    /// The ACME problem type (RFC 8555 §6.7), `urn:ietf:params:acme:error:*`.
    pub acme: &'static str,
}

impl ErrorKind {
    /// The class of a kind: the precise kinds belong to the class whose HTTP status they
    /// share (a bad signature and an unsupported algorithm are bad requests; a refused
    /// key, a bad time and an unknown certificate are policy refusals); the others are
    /// their own class.
    pub const fn class(self) -> ErrorKind {
        match self {
            ErrorKind::BadSignature | ErrorKind::UnsupportedAlgorithm => ErrorKind::BadRequest,
            ErrorKind::RefusedKey
            | ErrorKind::CompromisedKey
            | ErrorKind::BadTime
            | ErrorKind::UnknownCertificate => ErrorKind::PolicyRefused,
            other => other,
        }
    }

    /// Every kind, in the order of the table.
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::BadRequest,
        ErrorKind::BadSignature,
        ErrorKind::UnsupportedAlgorithm,
        ErrorKind::RefusedKey,
        ErrorKind::CompromisedKey,
        ErrorKind::BadTime,
        ErrorKind::UnknownCertificate,
        ErrorKind::Unauthorized,
        ErrorKind::PolicyRefused,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::Unavailable,
        ErrorKind::Internal,
        ErrorKind::RateLimited,
        ErrorKind::Unsupported,
    ];

    /// The one mapping from a kind to each protocol's answer (SCEP failInfo, EST/ACME
    /// HTTP status, ACME problem type). Protocol front ends take their wire values from
    /// here and nowhere else (docs/architecture.md).
    pub const fn answer(self) -> Answer {
        const fn row(scep: Option<FailInfo>, http_status: u16, acme: &'static str) -> Answer {
            Answer {
                scep,
                http_status,
                acme,
            }
        }
        use FailInfo as F;
        match self {
            ErrorKind::BadRequest => row(Some(F::BadRequest), 400, ACME_MALFORMED),
            ErrorKind::BadSignature => row(Some(F::BadMessageCheck), 400, ACME_BAD_CSR),
            ErrorKind::UnsupportedAlgorithm => {
                row(Some(F::BadAlg), 400, ACME_BAD_SIGNATURE_ALGORITHM)
            }
            ErrorKind::RefusedKey => row(Some(F::BadAlg), 403, ACME_BAD_PUBLIC_KEY),
            ErrorKind::CompromisedKey => row(Some(F::BadRequest), 403, ACME_BAD_PUBLIC_KEY),
            ErrorKind::BadTime => row(Some(F::BadTime), 403, ACME_MALFORMED),
            ErrorKind::UnknownCertificate => row(Some(F::BadCertId), 403, ACME_UNAUTHORIZED),
            ErrorKind::Unauthorized => row(Some(F::BadRequest), 401, ACME_UNAUTHORIZED),
            ErrorKind::PolicyRefused => row(Some(F::BadRequest), 403, ACME_REJECTED_IDENTIFIER),
            ErrorKind::NotFound => row(Some(F::BadRequest), 404, ACME_MALFORMED),
            ErrorKind::Conflict => row(Some(F::BadRequest), 409, ACME_MALFORMED),
            ErrorKind::Unavailable => row(None, 503, ACME_SERVER_INTERNAL),
            ErrorKind::Internal => row(Some(F::BadRequest), 500, ACME_SERVER_INTERNAL),
            ErrorKind::RateLimited => row(Some(F::BadRequest), 429, ACME_RATE_LIMITED),
            ErrorKind::Unsupported => row(Some(F::BadRequest), 501, ACME_MALFORMED),
        }
    }
}

const ACME_MALFORMED: &str = "urn:ietf:params:acme:error:malformed";
const ACME_BAD_CSR: &str = "urn:ietf:params:acme:error:badCSR";
const ACME_BAD_SIGNATURE_ALGORITHM: &str = "urn:ietf:params:acme:error:badSignatureAlgorithm";
const ACME_BAD_PUBLIC_KEY: &str = "urn:ietf:params:acme:error:badPublicKey";
const ACME_UNAUTHORIZED: &str = "urn:ietf:params:acme:error:unauthorized";
const ACME_REJECTED_IDENTIFIER: &str = "urn:ietf:params:acme:error:rejectedIdentifier";
const ACME_SERVER_INTERNAL: &str = "urn:ietf:params:acme:error:serverInternal";
const ACME_RATE_LIMITED: &str = "urn:ietf:params:acme:error:rateLimited";

impl ErrorKind {
    /// A stable snake_case name of the kind, for metric labels and machine-readable
    /// output (the table in docs/architecture.md).
    pub const fn label(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::BadSignature => "bad_signature",
            ErrorKind::UnsupportedAlgorithm => "unsupported_algorithm",
            ErrorKind::RefusedKey => "refused_key",
            ErrorKind::CompromisedKey => "compromised_key",
            ErrorKind::BadTime => "bad_time",
            ErrorKind::UnknownCertificate => "unknown_certificate",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::PolicyRefused => "policy_refused",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::BadRequest => "bad request",
            ErrorKind::BadSignature => "bad signature",
            ErrorKind::UnsupportedAlgorithm => "unsupported algorithm",
            ErrorKind::RefusedKey => "key refused",
            ErrorKind::CompromisedKey => "key compromised",
            ErrorKind::BadTime => "bad time",
            ErrorKind::UnknownCertificate => "unknown certificate",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::Unsupported => "not supported",
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
    /// A signature of the request does not verify ([`ErrorKind::BadSignature`]).
    #[error("bad request: {0}")]
    BadSignature(String),
    /// An unsupported algorithm ([`ErrorKind::UnsupportedAlgorithm`]).
    #[error("bad request: {0}")]
    UnsupportedAlgorithm(String),
    /// A key the profile does not allow ([`ErrorKind::RefusedKey`]).
    #[error("refused: {0}")]
    RefusedKey(String),
    /// A public key on the blocklist ([`ErrorKind::CompromisedKey`]).
    #[error("refused: {0}")]
    CompromisedKey(String),
    /// A time out of range ([`ErrorKind::BadTime`]).
    #[error("refused: {0}")]
    BadTime(String),
    /// The certificate named is unknown or revoked ([`ErrorKind::UnknownCertificate`]).
    #[error("refused: {0}")]
    UnknownCertificate(String),
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
    /// The kind of this error as docs/architecture.md classes it (bad request, unauthorized,
    /// policy refused, not found, conflict, unavailable, internal): the
    /// [`ErrorKind::class`] of [`Error::precise_kind`].
    pub fn kind(&self) -> ErrorKind {
        self.precise_kind().class()
    }

    /// The precise kind of this error, which picks its row of the protocol answers
    /// ([`Error::answer`]): a bad signature, an unsupported algorithm, a refused key, a
    /// bad time and an unknown certificate are told apart from the rest.
    pub fn precise_kind(&self) -> ErrorKind {
        match self {
            Error::BadRequest(_) => ErrorKind::BadRequest,
            Error::BadSignature(_) => ErrorKind::BadSignature,
            Error::UnsupportedAlgorithm(_) => ErrorKind::UnsupportedAlgorithm,
            Error::RefusedKey(_) => ErrorKind::RefusedKey,
            Error::CompromisedKey(_) => ErrorKind::CompromisedKey,
            Error::BadTime(_) => ErrorKind::BadTime,
            Error::UnknownCertificate(_) => ErrorKind::UnknownCertificate,
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

    /// What each protocol answers for this error ([`ErrorKind::answer`] of its precise
    /// kind).
    pub fn answer(&self) -> Answer {
        self.precise_kind().answer()
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
            | Error::BadSignature(m)
            | Error::UnsupportedAlgorithm(m)
            | Error::RefusedKey(m)
            | Error::CompromisedKey(m)
            | Error::BadTime(m)
            | Error::UnknownCertificate(m)
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
        match (self.precise_kind(), self) {
            (ErrorKind::BadRequest, _) => Error::BadRequest(self.reason()),
            (ErrorKind::BadSignature, _) => Error::BadSignature(self.reason()),
            (ErrorKind::UnsupportedAlgorithm, _) => Error::UnsupportedAlgorithm(self.reason()),
            (ErrorKind::RefusedKey, _) => Error::RefusedKey(self.reason()),
            (ErrorKind::CompromisedKey, _) => Error::CompromisedKey(self.reason()),
            (ErrorKind::BadTime, _) => Error::BadTime(self.reason()),
            (ErrorKind::UnknownCertificate, _) => Error::UnknownCertificate(self.reason()),
            // Kinds of the protocol front ends; ca-core does not produce them.
            (ErrorKind::RateLimited | ErrorKind::Unsupported, _) => {
                Error::BadRequest(self.reason())
            }
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

impl Error {
    /// An error of `kind` with `message` (a refusal that a front end audits).
    pub fn with_kind(kind: ErrorKind, message: &str) -> Error {
        let m = message.to_string();
        match kind {
            ErrorKind::BadRequest | ErrorKind::RateLimited | ErrorKind::Unsupported => {
                Error::BadRequest(m)
            }
            ErrorKind::BadSignature => Error::BadSignature(m),
            ErrorKind::UnsupportedAlgorithm => Error::UnsupportedAlgorithm(m),
            ErrorKind::RefusedKey => Error::RefusedKey(m),
            ErrorKind::CompromisedKey => Error::CompromisedKey(m),
            ErrorKind::BadTime => Error::BadTime(m),
            ErrorKind::UnknownCertificate => Error::UnknownCertificate(m),
            ErrorKind::Unauthorized => Error::Unauthorized(m),
            ErrorKind::PolicyRefused => Error::PolicyRefused(m),
            ErrorKind::NotFound => Error::NotFound(m),
            ErrorKind::Conflict => Error::Conflict(m),
            ErrorKind::Unavailable => Error::Unavailable(m),
            ErrorKind::Internal => Error::Internal(m),
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
