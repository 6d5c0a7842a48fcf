//! Manual approval of EST enrollments (RFC 7030 §4.2.3: 202 Accepted with Retry-After;
//! the client retries with the same CSR). The request is held by ca-core keyed by a hash
//! of the CSR, so a retry finds it again.

use ca_core::Authority;

use crate::Result;

/// What became of a held request.
#[derive(Debug)]
pub enum Decision {
    /// Still waiting for an administrator (or just held).
    Pending,
    /// Approved: the issued certificate, DER.
    Issued(Vec<u8>),
    /// Rejected, with the administrator's note.
    Rejected(Option<String>),
}

/// The lookup key of a CSR: `est:<label>:<SHA-256 of the CSR DER, hex>`.
pub fn lookup_key(label: &str, csr_der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, csr_der);
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("est:{label}:{hex}")
}

/// Finds the request held for this CSR, or holds it.
pub fn check(
    auth: &Authority,
    label: &str,
    profile: &str,
    requester: &str,
    csr_der: &[u8],
) -> Result<Decision> {
    let _ = (auth, profile, requester, lookup_key(label, csr_der));
    Err(crate::Error::NotImplemented(
        "this endpoint requires approval, but this build has no approval queue (ca-core pending.rs)".into(),
    ))
}
