//! Manual approval of EST enrollments (RFC 7030 §4.2.3: 202 Accepted with Retry-After;
//! the client retries with the same CSR). The enrollment core holds the request
//! ([`ca_core::Authority::enroll`]) keyed by a hash of the CSR, so a retry finds it again.

/// The lookup key of a CSR: `est:<label>:<SHA-256 of the CSR DER, hex>`.
pub fn lookup_key(label: &str, csr_der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, csr_der);
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("est:{label}:{hex}")
}
