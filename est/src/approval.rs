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

/// Finds the request held for this CSR, or holds it (idempotent per lookup key, so a
/// client's retry finds its request again).
pub fn check(
    auth: &Authority,
    label: &str,
    profile: &str,
    requester: &str,
    csr_der: &[u8],
) -> Result<Decision> {
    let key = lookup_key(label, csr_der);
    let held = match auth.find_held(&key)? {
        Some(p) => p,
        None => auth.hold(ca_core::pending::HoldRequest {
            lookup_key: key,
            endpoint: format!("est:{label}"),
            profile: profile.to_string(),
            requester: requester.to_string(),
            csr_der: csr_der.to_vec(),
        })?,
    };
    // The state by name keeps this crate off `store` (DESIGN.md dependency rule).
    Ok(match ca_core::pending::state_name(held.state) {
        "issued" => match &held.serial {
            Some(serial) => Decision::Issued(auth.get(serial)?.der),
            None => {
                return Err(crate::Error::Core(ca_core::Error::Internal(format!(
                    "held request {} is issued without a serial",
                    held.id
                ))));
            }
        },
        "rejected" => Decision::Rejected(held.note.clone()),
        _ => Decision::Pending,
    })
}
