//! The one error type of the ACME crate. Each variant is answered with one ACME problem
//! type (RFC 8555 §6.7); the text is safe to show to the client.

/// Why an ACME request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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
        }
    }

    pub(crate) fn malformed(msg: impl Into<String>) -> Error {
        Error::Malformed(msg.into())
    }
}

/// Result with the ACME [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
