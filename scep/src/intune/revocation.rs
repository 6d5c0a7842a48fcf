//! Intune-driven revocation: when a device is wiped, retired or loses its profile, Intune
//! queues a revocation request for the certificates it had. A third-party CA fetches them
//! from Intune's `PkiConnectorFEService` and reports back (docs/intune.md, "Revocation"):
//!
//! 1. `POST {service}/CertificateAuthorityRequests/downloadRevocationRequests` with
//!    `{"downloadParameters": {"maxRequests": N}}` answers
//!    `{"value": [{"requestContext", "serialNumber", "issuerName", "caConfiguration"}]}`;
//! 2. privca revokes each named certificate — only one that this endpoint enrolled for
//!    Intune, so that an Intune tenant cannot revoke a server's or another endpoint's
//!    certificate — with the configured reason, through the authority (audited, the CRL
//!    re-published, the OCSP cache dropped);
//! 3. `POST {service}/CertificateAuthorityRequests/uploadRevocationResults` with one
//!    `{"requestContext", "succeeded", "errorCode", "errorMessage"}` per request answers
//!    `{"value": true}`.
//!
//! A request privca cannot act on (an unknown serial, another endpoint's certificate, a
//! certificate already revoked) is answered with a non-retryable error code and audited;
//! a store that is unavailable gets the retryable code, so Intune asks again.

use std::sync::Arc;
use std::time::Duration;

use ca_core::{Authority, ErrorKind, RevocationReason};
use tracing::{info, warn};

use super::wire::{
    RevocationRequest, RevocationResult, parse_revocation_requests, parse_upload_answer,
};
use super::{Intune, Service, clip};
use crate::Error;
use crate::error::Result;
use crate::outbound::IssuedFacts;

/// The `errorCode` values of `uploadRevocationResults` (Intune's PKI connector API).
pub mod revocation_error {
    /// Revoked.
    pub const NONE: u32 = 0;
    /// The request could not be read (a serial that is not hexadecimal).
    pub const INVALID_PARAMETERS: u32 = 4001;
    /// No certificate of this endpoint has that serial (and issuer).
    pub const NOT_FOUND: u32 = 4003;
    /// The certificate is already revoked.
    pub const ALREADY_REVOKED: u32 = 4004;
    /// privca could not act now (the store is unavailable); Intune asks again.
    pub const RETRYABLE: u32 = 4100;
}

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevocationRound {
    /// Requests downloaded.
    pub requests: usize,
    /// Certificates revoked.
    pub revoked: usize,
    /// The results, as uploaded.
    pub results: Vec<RevocationResult>,
}

const DOWNLOAD: &str = "CertificateAuthorityRequests/downloadRevocationRequests";
const UPLOAD: &str = "CertificateAuthorityRequests/uploadRevocationResults";

impl Intune {
    /// Time between revocation rounds; `None` when revocation is off.
    pub fn revocation_interval(&self) -> Option<Duration> {
        self.revocation
            .as_ref()
            .map(|r| Duration::from_secs(r.interval_seconds))
    }

    /// One round: download the pending requests, revoke, upload the results. `endpoint`
    /// is the SCEP endpoint whose Intune enrollments may be revoked.
    pub async fn revocation_round(
        &self,
        auth: Arc<Authority>,
        endpoint: &str,
    ) -> Result<RevocationRound> {
        let Some(settings) = self.revocation.clone() else {
            return Err(Error::Config(format!(
                "SCEP endpoint {endpoint}: Intune revocation is not configured"
            )));
        };
        let reason = RevocationReason::parse(&settings.reason)?;
        let round = format!("revocation:{endpoint}");
        let body = serde_json::json!({
            "downloadParameters": { "maxRequests": settings.max_requests }
        });
        let bytes = self
            .call(Service::Revocation, DOWNLOAD, &body, &round, 1)
            .await
            .map_err(|e| Error::Upstream(e.0))?;
        let max = usize::try_from(settings.max_requests).unwrap_or(usize::MAX);
        let requests = parse_revocation_requests(&bytes, max).map_err(|e| Error::Upstream(e.0))?;
        if requests.is_empty() {
            return Ok(RevocationRound::default());
        }
        let endpoint_owned = endpoint.to_string();
        let results = tokio::task::spawn_blocking(move || {
            requests
                .iter()
                .map(|r| revoke_one(&auth, &endpoint_owned, reason, r))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::Upstream(format!("revocation task: {e}")))?;
        let revoked = results.iter().filter(|r| r.succeeded).count();
        let body = serde_json::json!({ "results": results });
        let bytes = self
            .call(Service::Revocation, UPLOAD, &body, &round, 1)
            .await
            .map_err(|e| Error::Upstream(e.0))?;
        if !parse_upload_answer(&bytes).map_err(|e| Error::Upstream(e.0))? {
            warn!(endpoint, "Intune did not accept the revocation results");
        }
        info!(
            endpoint,
            requests = results.len(),
            revoked,
            "Intune revocation round"
        );
        Ok(RevocationRound {
            requests: results.len(),
            revoked,
            results,
        })
    }
}

/// Whether `requester` (of a certificate record) is an Intune enrollment through
/// `endpoint` (the requester names the Intune challenge method writes).
pub(super) fn enrolled_by(requester: &str, endpoint: &str) -> bool {
    requester
        .strip_prefix("intune:")
        .and_then(|r| r.strip_prefix(endpoint))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(":sid:"))
}

/// Acts on one request; never fails (a failure is the result's error code).
fn revoke_one(
    auth: &Authority,
    endpoint: &str,
    reason: RevocationReason,
    req: &RevocationRequest,
) -> RevocationResult {
    let actor = format!("intune:{endpoint}:revocation");
    let result = |code: u32, message: String| RevocationResult {
        request_context: req.request_context.clone(),
        succeeded: code == revocation_error::NONE,
        error_code: code,
        error_message: message,
    };
    let shown = clip(&req.serial_number, 64);
    let refuse = |code: u32, e: ca_core::Error| {
        auth.audit_refusal("intune-revoke", &actor, &shown, &e);
        result(code, clip(&e.reason(), 255))
    };
    let serial = match ca_core::asn1::parse_serial_hex(&req.serial_number) {
        Ok(s) => s,
        Err(e) => return refuse(revocation_error::INVALID_PARAMETERS, e),
    };
    let not_ours = || {
        ca_core::Error::UnknownCertificate(format!(
            "SCEP endpoint {endpoint} enrolled no certificate with serial {shown} for Intune"
        ))
    };
    let record = match auth.get(&serial) {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return refuse(revocation_error::NOT_FOUND, not_ours());
        }
        Err(e) => return refuse(revocation_error::RETRYABLE, e),
    };
    if !enrolled_by(&record.requester, endpoint) {
        return refuse(revocation_error::NOT_FOUND, not_ours());
    }
    if let Some(issuer) = req.issuer_name.as_deref().filter(|i| !i.is_empty())
        && IssuedFacts::read(&record.der)
            .is_ok_and(|facts| !facts.issuer.eq_ignore_ascii_case(issuer))
    {
        return refuse(revocation_error::NOT_FOUND, not_ours());
    }
    // A certificate on hold is revoked for good; one already revoked is a conflict.
    match auth.revoke(&serial, reason, &actor) {
        Ok(_) => result(revocation_error::NONE, String::new()),
        // revoke audits its own refusals.
        Err(e) => {
            let code = match e.kind() {
                ErrorKind::Conflict => revocation_error::ALREADY_REVOKED,
                ErrorKind::NotFound | ErrorKind::UnknownCertificate => revocation_error::NOT_FOUND,
                ErrorKind::Unavailable | ErrorKind::Internal => revocation_error::RETRYABLE,
                _ => revocation_error::INVALID_PARAMETERS,
            };
            result(code, clip(&e.reason(), 255))
        }
    }
}
