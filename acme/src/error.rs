//! The one error type of the ACME crate. Each variant is answered with one ACME problem
//! type (RFC 8555 §6.7); the text is safe to show to the client.

/// Why an ACME request was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The request is not well-formed (RFC 8555 §6.7 `malformed`).
    #[error("{0}")]
    Malformed(String),
    /// The JWS algorithm is not one this server accepts, or does not fit the key
    /// (RFC 8555 §6.2 `badSignatureAlgorithm`; the problem document lists `allowed`).
    #[error("the JWS algorithm {alg:?} is not accepted; accepted: {}", allowed.join(", "))]
    BadSignatureAlgorithm {
        /// The algorithm the request named.
        alg: String,
        /// The algorithms this server accepts (RFC 8555 §6.2 `algorithms` field).
        allowed: &'static [&'static str],
    },
    /// The account key is not acceptable (RFC 8555 §6.7 `badPublicKey`).
    #[error("{0}")]
    BadPublicKey(String),
    /// The nonce is missing, not genuine, expired or used (RFC 8555 §6.5, `badNonce`); the
    /// client retries with the nonce of the error response.
    #[error("{0}")]
    BadNonce(String),
    /// The signature does not verify, or the EAB binding does not hold
    /// (RFC 8555 §6.7 `unauthorized`).
    #[error("{0}")]
    Unauthorized(String),
    /// The `kid` names no account, or `onlyReturnExisting` found none (RFC 8555 §7.3.1,
    /// `accountDoesNotExist`).
    #[error("{0}")]
    AccountDoesNotExist(String),
    /// The endpoint requires an External Account Binding (RFC 8555 §7.3.4,
    /// `externalAccountRequired`).
    #[error("{0}")]
    ExternalAccountRequired(String),
    /// A contact is not a `mailto:` URL of one valid address (RFC 8555 §7.3,
    /// `invalidContact` / `unsupportedContact`).
    #[error("{detail}")]
    InvalidContact {
        /// Whether the scheme is one this server does not support (`unsupportedContact`).
        unsupported: bool,
        /// What is wrong.
        detail: String,
    },
    /// The terms of service must be agreed to (RFC 8555 §7.3.3, `userActionRequired`).
    #[error("{0}")]
    UserActionRequired(String),
    /// Identifiers refused by the endpoint's policy (RFC 8555 §7.4, `rejectedIdentifier`
    /// with one subproblem per identifier, §6.7.1).
    #[error("{detail}")]
    RejectedIdentifier {
        /// Summary.
        detail: String,
        /// One per refused identifier.
        subproblems: Vec<crate::problem::Subproblem>,
    },
    /// An identifier type other than `dns` and `ip` (RFC 8555 §7.4, RFC 8738;
    /// `unsupportedIdentifier`).
    #[error("{0}")]
    UnsupportedIdentifier(String),
    /// The order cannot be finalized in its state (RFC 8555 §7.4, `orderNotReady`).
    #[error("{0}")]
    OrderNotReady(String),
    /// The CSR is unacceptable (RFC 8555 §7.4, `badCSR`).
    #[error("{0}")]
    BadCsr(String),
    /// The certificate is revoked already (RFC 8555 §7.6, `alreadyRevoked`).
    #[error("{0}")]
    AlreadyRevoked(String),
    /// The revocation reason is not allowed (RFC 8555 §7.6, `badRevocationReason`).
    #[error("{0}")]
    BadRevocationReason(String),
    /// The profile named in newOrder is not one of the endpoint (draft-ietf-acme-profiles,
    /// `invalidProfile`).
    #[error("{0}")]
    InvalidProfile(String),
    /// No such resource (404, `malformed`).
    #[error("{0}")]
    NotFound(String),
    /// The request method or media type is not the one the resource takes (405/415,
    /// `malformed`).
    #[error("{detail}")]
    Method {
        /// 405 or 415.
        status: u16,
        /// What is wrong.
        detail: String,
    },
    /// The enrollment core refused or failed: its problem type and status from
    /// `ca_core::ErrorKind::answer` and its client-safe text.
    #[error("{detail}")]
    Core {
        /// The ACME problem type.
        problem_type: &'static str,
        /// The HTTP status.
        status: u16,
        /// Safe to show.
        detail: String,
    },
}

impl From<&ca_core::Error> for Error {
    fn from(e: &ca_core::Error) -> Error {
        let a = e.answer();
        Error::Core {
            problem_type: a.acme,
            status: a.http_status,
            detail: e.client_message(),
        }
    }
}

impl From<ca_core::Error> for Error {
    fn from(e: ca_core::Error) -> Error {
        Error::from(&e)
    }
}

impl Error {
    /// The ACME problem type of this error (RFC 8555 §6.7).
    pub fn problem_type(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "urn:ietf:params:acme:error:malformed",
            Error::BadSignatureAlgorithm { .. } => {
                "urn:ietf:params:acme:error:badSignatureAlgorithm"
            }
            Error::BadPublicKey(_) => "urn:ietf:params:acme:error:badPublicKey",
            Error::BadNonce(_) => "urn:ietf:params:acme:error:badNonce",
            Error::Unauthorized(_) => "urn:ietf:params:acme:error:unauthorized",
            Error::AccountDoesNotExist(_) => "urn:ietf:params:acme:error:accountDoesNotExist",
            Error::ExternalAccountRequired(_) => {
                "urn:ietf:params:acme:error:externalAccountRequired"
            }
            Error::InvalidContact {
                unsupported: true, ..
            } => "urn:ietf:params:acme:error:unsupportedContact",
            Error::InvalidContact { .. } => "urn:ietf:params:acme:error:invalidContact",
            Error::UserActionRequired(_) => "urn:ietf:params:acme:error:userActionRequired",
            Error::RejectedIdentifier { .. } => "urn:ietf:params:acme:error:rejectedIdentifier",
            Error::UnsupportedIdentifier(_) => "urn:ietf:params:acme:error:unsupportedIdentifier",
            Error::OrderNotReady(_) => "urn:ietf:params:acme:error:orderNotReady",
            Error::BadCsr(_) => "urn:ietf:params:acme:error:badCSR",
            Error::AlreadyRevoked(_) => "urn:ietf:params:acme:error:alreadyRevoked",
            Error::BadRevocationReason(_) => "urn:ietf:params:acme:error:badRevocationReason",
            Error::InvalidProfile(_) => "urn:ietf:params:acme:error:invalidProfile",
            Error::NotFound(_) | Error::Method { .. } => "urn:ietf:params:acme:error:malformed",
            Error::Core { problem_type, .. } => problem_type,
        }
    }

    /// The HTTP status of the answer (RFC 8555 §6.7: 403 for authorization failures, 400
    /// for the rest unless a resource says otherwise).
    pub fn status(&self) -> u16 {
        match self {
            Error::Unauthorized(_) | Error::UserActionRequired(_) | Error::OrderNotReady(_) => 403,
            Error::NotFound(_) => 404,
            Error::Method { status, .. } | Error::Core { status, .. } => *status,
            _ => 400,
        }
    }

    pub(crate) fn malformed(msg: impl Into<String>) -> Error {
        Error::Malformed(msg.into())
    }
}

/// Result with the ACME [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
