//! The admin API's JSON: the inputs and answers of every admin operation (both
//! transports of [`super::Admin`] carry exactly these), and the views of records.

use base64::Engine;
use ca_core::RevocationReason;
use ca_core::asn1::serial_hex;
use ca_core::profile::San;
use serde::{Deserialize, Serialize};
use store::{CertCursor, CertRecord, CertStatus};

/// Body of `POST /admin/v1/certificates`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueInput {
    /// Profile name.
    pub profile: String,
    /// A PKCS#10 CSR in PEM. Either this or `generate_key`.
    #[serde(default)]
    pub csr_pem: Option<String>,
    /// Generate the key pair on the server with this algorithm and return it.
    #[serde(default)]
    pub generate_key: Option<hsm::KeyAlgorithm>,
    /// Subject (RFC 4514, `CN=a.example,O=Example`) when generating the key.
    #[serde(default)]
    pub subject: Option<String>,
    /// Extra SANs (`a.example`, `10.0.0.1`, `me@a.example`, `uri:…`), added to the CSR's.
    #[serde(default)]
    pub sans: Vec<String>,
    /// Shorter validity than the profile's, in days.
    #[serde(default)]
    pub validity_days: Option<u32>,
}

/// Answer of an issuance.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IssueOutput {
    /// Serial, hex.
    pub serial: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The issuer chain (issuing CA first), PEM.
    pub chain_pem: String,
    /// The generated private key (PKCS#8 PEM), when the server generated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_pem: Option<String>,
}

/// A certificate as the admin API and CLI show it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertView {
    /// Serial, hex.
    pub serial: String,
    /// Issuing authority.
    pub issuer: String,
    /// Subject.
    pub subject: String,
    /// SANs.
    pub sans: Vec<String>,
    /// Profile.
    pub profile: String,
    /// Requester.
    pub requester: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// `valid`, `revoked` or `expired`.
    pub status: String,
    /// Revocation time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Revocation reason name (`certificateHold` while on hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// RFC 5280 §5.3.2 invalidity date of the revocation, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalidity_date: Option<String>,
    /// The certificate, PEM (only from `show`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
}

/// Query of `GET /admin/v1/certificates`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `valid`, `revoked` or `expired`.
    #[serde(default)]
    pub status: Option<String>,
    /// Only certificates expiring within this many days (and not yet expired).
    #[serde(default)]
    pub expiring_days: Option<u32>,
    /// Only this profile.
    #[serde(default)]
    pub profile: Option<String>,
    /// Only this issuer.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Subject or SAN text.
    #[serde(default)]
    pub text: Option<String>,
    /// Page size: at most this many ([`LIST_DEFAULT_LIMIT`] when absent, at most
    /// [`LIST_MAX_LIMIT`]).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Where to continue: the `next_cursor` of the previous page (opaque). Give the same
    /// filters as for the first page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Page size of `GET /admin/v1/certificates` without `limit`.
pub const LIST_DEFAULT_LIMIT: usize = 100;
/// Largest page size of `GET /admin/v1/certificates`.
pub const LIST_MAX_LIMIT: usize = 1000;

/// Answer of `GET /admin/v1/certificates`: one page.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertListPage {
    /// The certificates of this page, soonest expiry first.
    pub certificates: Vec<CertView>,
    /// Pass as `cursor` to get the next page; `null` after the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// The opaque cursor of a page end: base64url of notAfter (8 octets, big-endian) and the
/// serial.
pub(super) fn encode_cursor(c: &CertCursor) -> String {
    let mut bytes = c.not_after.to_be_bytes().to_vec();
    bytes.extend_from_slice(&c.serial);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) fn decode_cursor(text: &str) -> Result<CertCursor, ca_core::Error> {
    let bad = || ca_core::Error::BadRequest("cursor is not one this server gave out".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| bad())?;
    if bytes.len() < 9 || bytes.len() > 8 + 20 {
        return Err(bad());
    }
    let (time, serial) = bytes.split_at(8);
    let time: [u8; 8] = time.try_into().map_err(|_| bad())?;
    Ok(CertCursor {
        not_after: i64::from_be_bytes(time),
        serial: serial.to_vec(),
    })
}

/// Body of `POST /admin/v1/certificates/{serial}/revoke`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeInput {
    /// RFC 5280 §5.3.1 reason name; default `unspecified`. `keyCompromise` also blocks
    /// the key; `certificateHold` only where the profile has `allow_hold = true`.
    #[serde(default)]
    pub reason: Option<String>,
    /// RFC 5280 §5.3.2 invalidityDate, RFC 3339 (`2026-01-02T03:04:05Z`); not in the
    /// future.
    #[serde(default)]
    pub invalidity_date: Option<String>,
}

/// Body of `POST /admin/v1/revocations/by-certificate`: revoke the certificate given (it
/// must be one this CA issued).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeCertInput {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// RFC 5280 §5.3.1 reason name, as for a revocation by serial.
    #[serde(default)]
    pub reason: Option<String>,
    /// RFC 5280 §5.3.2 invalidityDate, RFC 3339, as for a revocation by serial.
    #[serde(default)]
    pub invalidity_date: Option<String>,
}

/// Body of `POST /admin/v1/revocations/by-key`: revoke every unrevoked certificate of a
/// public key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeKeyInput {
    /// The key, PEM: a `PUBLIC KEY`, a `CERTIFICATE REQUEST` or a `CERTIFICATE`.
    pub key_pem: String,
    /// RFC 5280 §5.3.1 reason name, as for a revocation by serial.
    #[serde(default)]
    pub reason: Option<String>,
    /// RFC 5280 §5.3.2 invalidityDate, RFC 3339, as for a revocation by serial.
    #[serde(default)]
    pub invalidity_date: Option<String>,
}

impl RevokeCertInput {
    /// Its reason and invalidity date.
    pub fn revoke(&self) -> RevokeInput {
        RevokeInput {
            reason: self.reason.clone(),
            invalidity_date: self.invalidity_date.clone(),
        }
    }
}

impl RevokeKeyInput {
    /// Its reason and invalidity date.
    pub fn revoke(&self) -> RevokeInput {
        RevokeInput {
            reason: self.reason.clone(),
            invalidity_date: self.invalidity_date.clone(),
        }
    }
}

/// Answer of `POST /admin/v1/revocations/by-key`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevokedList {
    /// The certificates revoked, in serial order.
    pub certificates: Vec<CertView>,
}

/// A CRL summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CrlView {
    /// Authority.
    pub ca: String,
    /// cRLNumber.
    pub number: u64,
    /// thisUpdate, RFC 3339.
    pub this_update: String,
    /// nextUpdate, RFC 3339.
    pub next_update: String,
    /// Where it is published.
    pub url: String,
    /// Size, bytes.
    pub bytes: usize,
}

/// A profile summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProfileView {
    /// Name.
    pub name: String,
    /// Issuer.
    pub issuer: String,
    /// Validity in days.
    pub validity_days: u32,
    /// Extended key usages.
    pub extended_key_usage: Vec<String>,
    /// CA profile.
    pub ca: bool,
    /// Allowed key algorithms (empty: all).
    pub key_algorithms: Vec<String>,
}

pub use ca_core::clock::rfc3339;

/// PEM of a DER object.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The view of a record at time `now`.
pub fn view(r: &CertRecord, now: i64, with_pem: bool) -> CertView {
    let status = match r.status {
        CertStatus::Revoked => "revoked",
        CertStatus::Valid if r.not_after < now => "expired",
        CertStatus::Valid => "valid",
    };
    CertView {
        serial: serial_hex(&r.serial),
        issuer: r.issuer.clone(),
        subject: r.subject.clone(),
        sans: r.sans.clone(),
        profile: r.profile.clone(),
        requester: r.requester.clone(),
        not_before: rfc3339(r.not_before),
        not_after: rfc3339(r.not_after),
        status: status.into(),
        revoked_at: r.revocation.map(|v| rfc3339(v.time)),
        reason: r
            .revocation
            .map(|v| RevocationReason::name_of(v.reason).to_string()),
        invalidity_date: r.revocation.and_then(|v| v.invalidity_date).map(rfc3339),
        pem: with_pem.then(|| pem("CERTIFICATE", &r.der)),
    }
}

/// A held enrollment request as the admin API and CLI show it
/// (`GET /admin/v1/requests`, `privca requests list`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestView {
    /// Request id.
    pub id: u64,
    /// `pending`, `issued` or `rejected`.
    pub state: String,
    /// Endpoint it came through.
    pub endpoint: String,
    /// Profile.
    pub profile: String,
    /// Requester.
    pub requester: String,
    /// Requested subject.
    pub subject: String,
    /// Requested SANs.
    pub sans: Vec<String>,
    /// Arrival time, RFC 3339.
    pub created_at: String,
    /// Serial of the issued certificate, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Reason given on rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Body of `POST /admin/v1/requests/{id}/reject`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectInput {
    /// Why (the SCEP client sees it as failInfoText).
    pub reason: String,
}

/// The view of a held request.
pub(super) fn request_view(p: &store::PendingRequest) -> RequestView {
    let (subject, sans) = match ca_core::csr::decode_held(&p.csr_der) {
        Ok(csr) => (
            csr.subject.to_string(),
            csr.sans.iter().map(San::display).collect(),
        ),
        Err(_) => ("(undecodable CSR)".into(), Vec::new()),
    };
    RequestView {
        id: p.id,
        state: ca_core::pending::state_name(p.state).into(),
        endpoint: p.endpoint.clone(),
        profile: p.profile.clone(),
        requester: p.requester.clone(),
        subject,
        sans,
        created_at: rfc3339(p.created_at),
        serial: p.serial.as_deref().map(serial_hex),
        note: p.note.clone(),
    }
}

/// Query of `GET /admin/v1/requests`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RequestsQuery {
    /// Only requests in this state: `pending`, `issued` or `rejected`.
    #[serde(default)]
    pub state: Option<String>,
}

/// A one-time console login link (`POST /admin/v1/console/login-links`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginLinkOutput {
    /// The path to open on any of the server's listeners, with the link's secret.
    pub path: String,
    /// Seconds the link may wait to be opened.
    pub expires_in: u64,
}

/// `POST /admin/v1/tokens`: a new API token (docs/admin-api.md, "Roles and tokens").
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreateInput {
    /// What to call it (1–64 characters); audit entries name it.
    pub name: String,
    /// `administrator`, `operator`, `auditor`, `challenges` or `issuer`.
    pub role: String,
    /// Only these profiles may be issued under (empty: any the role may).
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Only these SCEP endpoints may get challenges (empty: any the role may).
    #[serde(default)]
    pub scep_endpoints: Vec<String>,
    /// Lifetime (`3600`, `30m`, `1h`, `90d`); none: until revoked.
    #[serde(default)]
    pub expires: Option<String>,
}

/// A new token: the secret text is shown only here.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenCreateOutput {
    /// The bearer token (`pca_<id>_<secret>`).
    pub token: String,
    /// The token as listed.
    pub view: TokenView,
}

/// An API token as listed (never its secret).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// Its profiles, if limited.
    pub profiles: Vec<String>,
    /// Its SCEP endpoints, if limited.
    pub scep_endpoints: Vec<String>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    /// Made, RFC 3339, and by whom.
    pub created_at: String,
    /// Who made it.
    pub created_by: String,
    /// Expiry, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Last use, RFC 3339 (to the minute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    /// Revocation, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// The view of a stored token at time `now`.
pub fn token_view(t: &store::tokens::ApiToken, now: i64) -> TokenView {
    let state = if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    };
    TokenView {
        id: t.id.clone(),
        name: t.name.clone(),
        role: t.role.clone(),
        profiles: t.profiles.clone(),
        scep_endpoints: t.scep_endpoints.clone(),
        state: state.into(),
        created_at: rfc3339(t.created_at),
        created_by: t.created_by.clone(),
        expires_at: t.expires_at.map(rfc3339),
        last_used_at: t.last_used_at.map(rfc3339),
        revoked_at: t.revoked_at.map(rfc3339),
    }
}
