//! Problem documents (RFC 9457, formerly RFC 7807; ACME's use in RFC 8555 §6.7), the body
//! of every ACME error response, served as `application/problem+json`.

use serde::Serialize;

use crate::Error;

/// The media type of a problem document (RFC 9457 §3).
pub const CONTENT_TYPE: &str = "application/problem+json";

/// An identifier a subproblem is about (RFC 8555 §7.1.3, §6.7.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identifier {
    /// `dns` or `ip` (RFC 8738).
    #[serde(rename = "type")]
    pub kind: String,
    /// The name or address.
    pub value: String,
}

/// One problem of several (RFC 8555 §6.7.1), for example one refused identifier of an
/// order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Subproblem {
    /// The ACME error type.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong, for a person.
    pub detail: String,
    /// The identifier it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
}

/// A problem document (RFC 9457 §3.1 members `type`, `detail`, `status`; RFC 8555 §6.7.1
/// `subproblems`; §6.2 `algorithms` with `badSignatureAlgorithm`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The ACME error type, `urn:ietf:params:acme:error:*`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong, for a person; safe to show (no secrets, no internal detail).
    pub detail: String,
    /// The HTTP status of the response.
    pub status: u16,
    /// Problems per identifier, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subproblems: Vec<Subproblem>,
    /// The accepted algorithms, with `badSignatureAlgorithm` (RFC 8555 §6.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<&'static str>>,
}

impl Problem {
    /// The document answering a refusal of ca-core: type and status from the one
    /// error-kind table (`ca_core::ErrorKind::answer`), the client-safe message as detail.
    pub fn from_core(e: &ca_core::Error) -> Problem {
        let a = e.answer();
        Problem {
            kind: a.acme.to_owned(),
            detail: e.client_message(),
            status: a.http_status,
            subproblems: Vec::new(),
            algorithms: None,
        }
    }

    /// The document as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing strings, numbers and vectors of them cannot fail.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

impl From<&Error> for Problem {
    fn from(e: &Error) -> Problem {
        Problem {
            kind: e.problem_type().to_owned(),
            detail: e.to_string(),
            status: e.status(),
            subproblems: match e {
                Error::RejectedIdentifier { subproblems, .. } => subproblems.clone(),
                _ => Vec::new(),
            },
            algorithms: match e {
                Error::BadSignatureAlgorithm { allowed, .. } => Some(allowed.to_vec()),
                _ => None,
            },
        }
    }
}
