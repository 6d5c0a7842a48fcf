//! One admin interface, two transports.
//!
//! [`Admin`] names every administrative operation once. [`LocalAdmin`] carries them out
//! in this process over the [`ca_core::Authority`] (the admin API's handlers use it, and
//! so does the CLI when no server holds the database); [`RemoteAdmin`] sends them to a
//! running server's admin API (the CLI when a server holds the database). Both take and
//! return the admin API's JSON types ([`types`]), so the two transports cannot drift
//! apart; docs/admin-api.md describes the routes and docs/architecture.md where this sits.

mod local;
mod remote;
pub mod types;

pub use local::LocalAdmin;
pub use remote::RemoteAdmin;
pub use types::{
    CertListPage, CertView, CrlView, IssueInput, IssueOutput, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT,
    ListQuery, LoginLinkOutput, ProfileView, RejectInput, RequestView, RequestsQuery,
    RevokeCertInput, RevokeInput, RevokeKeyInput, RevokedList, TokenCreateInput, TokenCreateOutput,
    TokenView, pem, rfc3339, token_view, view,
};

use crate::Error;
use crate::acme_wiring::{EabCreateInput, EabCreateOutput, EabView};
use crate::scep_wiring::{ChallengeInput, ChallengeOutput};
use store::AuditVerification;

/// Every administrative operation. Online operations from the CLI go through the running
/// server's admin API; with no server, the CLI runs them here (one process owns the
/// database: docs/architecture.md).
///
/// Errors: the in-process transport returns [`Error::Core`] (the authority's refusal,
/// whose kind the admin API maps to a status with [`status_of`]); the remote one returns
/// [`Error::Api`] with the server's status and message, or [`Error::Io`] when the server
/// cannot be reached or answers something that is not the admin API's JSON.
pub trait Admin {
    /// `POST /admin/v1/certificates`: issues a certificate from a CSR or a key the
    /// server generates.
    fn issue(&self, input: &IssueInput) -> Result<IssueOutput, Error>;
    /// `GET /admin/v1/certificates`: one page of certificates, soonest expiry first.
    fn list(&self, query: &ListQuery) -> Result<CertListPage, Error>;
    /// `GET /admin/v1/certificates/{serial}`: one certificate with its PEM.
    fn show(&self, serial: &str) -> Result<CertView, Error>;
    /// `POST /admin/v1/certificates/{serial}/revoke` (reason names of RFC 5280 §5.3.1,
    /// optional invalidity date of §5.3.2).
    fn revoke(&self, serial: &str, input: &RevokeInput) -> Result<CertView, Error>;
    /// `POST /admin/v1/certificates/{serial}/release`: a certificate on hold
    /// (RFC 5280 §5.3.1 certificateHold) is valid again.
    fn release(&self, serial: &str) -> Result<CertView, Error>;
    /// `POST /admin/v1/revocations/by-certificate`: revokes the certificate given, which
    /// must be one this CA issued.
    fn revoke_by_certificate(&self, input: &RevokeCertInput) -> Result<CertView, Error>;
    /// `POST /admin/v1/revocations/by-key`: revokes every unrevoked certificate of a
    /// public key; a key that matches none is not found and changes nothing.
    fn revoke_by_key(&self, input: &RevokeKeyInput) -> Result<RevokedList, Error>;
    /// `POST /admin/v1/crl/{ca}` (one authority) or `POST /admin/v1/crl` (all, when
    /// `ca` is `None`): signs and publishes a new CRL now (RFC 5280 §5).
    fn crl(&self, ca: Option<&str>) -> Result<Vec<CrlView>, Error>;
    /// `GET /admin/v1/profiles`.
    fn profiles(&self) -> Result<Vec<ProfileView>, Error>;
    /// `GET /admin/v1/audit/verify`: walks the hash chain of the audit log.
    fn audit_verify(&self) -> Result<AuditVerification, Error>;
    /// `POST /admin/v1/scep/challenges`: a one-time SCEP challenge password
    /// (RFC 8894 §2.3), shown once.
    fn scep_challenge(&self, input: &ChallengeInput) -> Result<ChallengeOutput, Error>;
    /// `POST /admin/v1/acme/eab`: a new External Account Binding key for an ACME
    /// endpoint (RFC 8555 §7.3.4), its HMAC key shown once.
    fn acme_eab_create(&self, input: &EabCreateInput) -> Result<EabCreateOutput, Error>;
    /// `GET /admin/v1/acme/eab`: every EAB key, without HMAC keys.
    fn acme_eab_list(&self) -> Result<Vec<EabView>, Error>;
    /// `GET /admin/v1/requests`: held enrollment requests.
    fn requests(&self, query: &RequestsQuery) -> Result<Vec<RequestView>, Error>;
    /// `POST /admin/v1/requests/{id}/approve`: issues the held request's certificate.
    fn approve(&self, id: u64) -> Result<CertView, Error>;
    /// `POST /admin/v1/requests/{id}/reject`.
    fn reject(&self, id: u64, input: &RejectInput) -> Result<RequestView, Error>;
    /// `POST /admin/v1/console/login-links`: a one-time login link for the web console
    /// (docs/console.md). Only a running server has a console, so the in-process
    /// transport refuses.
    fn console_login_link(&self) -> Result<LoginLinkOutput, Error>;
    /// `POST /admin/v1/tokens`: a new API token, its secret shown once.
    fn token_create(&self, input: &TokenCreateInput) -> Result<TokenCreateOutput, Error>;
    /// `GET /admin/v1/tokens`: every API token, never a secret.
    fn token_list(&self) -> Result<Vec<TokenView>, Error>;
    /// `POST /admin/v1/tokens/{id}/revoke`: the token is refused from now on.
    fn token_revoke(&self, id: &str) -> Result<TokenView, Error>;
    /// `GET /admin/v1/notify/log?limit=N`: the last notification deliveries, oldest first.
    fn notify_log(&self, limit: usize) -> Result<Vec<crate::notify::Delivery>, Error>;
}

/// The HTTP status of an authority error kind in the admin API (RFC 9110 §15).
pub fn status_of(kind: ca_core::ErrorKind) -> u16 {
    // The one mapping of error kinds to protocol answers (docs/architecture.md).
    kind.answer().http_status
}
