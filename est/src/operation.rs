//! The EST operations (RFC 7030 §3.2.2): their path segments, which the configuration
//! keeps out of endpoint labels and the service dispatches on.

/// The operation path segments (RFC 7030 §3.2.2, Table 1).
pub const OPERATIONS: [&str; 6] = [
    "cacerts",
    "simpleenroll",
    "simplereenroll",
    "fullcmc",
    "serverkeygen",
    "csrattrs",
];

/// An EST operation (RFC 7030 §3.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `cacerts` (§4.1).
    CaCerts,
    /// `simpleenroll` (§4.2.1).
    SimpleEnroll,
    /// `simplereenroll` (§4.2.2).
    SimpleReenroll,
    /// `fullcmc` (§4.3): not offered.
    FullCmc,
    /// `serverkeygen` (§4.4).
    ServerKeyGen,
    /// `csrattrs` (§4.5).
    CsrAttrs,
}

impl Operation {
    /// From a path segment.
    pub fn parse(s: &str) -> Option<Operation> {
        Some(match s {
            "cacerts" => Operation::CaCerts,
            "simpleenroll" => Operation::SimpleEnroll,
            "simplereenroll" => Operation::SimpleReenroll,
            "fullcmc" => Operation::FullCmc,
            "serverkeygen" => Operation::ServerKeyGen,
            "csrattrs" => Operation::CsrAttrs,
            _ => return None,
        })
    }

    /// The path segment.
    pub fn name(self) -> &'static str {
        match self {
            Operation::CaCerts => "cacerts",
            Operation::SimpleEnroll => "simpleenroll",
            Operation::SimpleReenroll => "simplereenroll",
            Operation::FullCmc => "fullcmc",
            Operation::ServerKeyGen => "serverkeygen",
            Operation::CsrAttrs => "csrattrs",
        }
    }

    /// True for the operations that take a POSTed CSR.
    pub fn is_post(self) -> bool {
        matches!(
            self,
            Operation::SimpleEnroll
                | Operation::SimpleReenroll
                | Operation::FullCmc
                | Operation::ServerKeyGen
        )
    }
}
