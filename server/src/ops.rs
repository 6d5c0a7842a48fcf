//! Administrative operations shared by the admin API and the CLI's offline mode: the
//! same function serves `POST /admin/v1/certificates` and `privca issue` with no server
//! running, so the two cannot drift apart. Inputs and outputs are the admin API's JSON.

use base64::Engine;
use ca_core::asn1::{parse_serial_hex, serial_hex};
use ca_core::profile::San;
use ca_core::{Authority, IssueRequest, RevocationReason};
use serde::{Deserialize, Serialize};
use store::{AuditVerification, CertCursor, CertFilter, CertRecord, CertStatus};

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
    /// Revocation reason name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
fn encode_cursor(c: &CertCursor) -> String {
    let mut bytes = c.not_after.to_be_bytes().to_vec();
    bytes.extend_from_slice(&c.serial);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_cursor(text: &str) -> Result<CertCursor, ca_core::Error> {
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
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeInput {
    /// RFC 5280 reason name; default `unspecified`.
    #[serde(default)]
    pub reason: Option<String>,
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

/// RFC 3339 text of a Unix time.
pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

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
        pem: with_pem.then(|| pem("CERTIFICATE", &r.der)),
    }
}

/// Issues a certificate from a CSR or a server-generated key.
pub fn issue(
    auth: &Authority,
    input: &IssueInput,
    requester: &str,
) -> Result<IssueOutput, ca_core::Error> {
    let extra = input
        .sans
        .iter()
        .map(|s| San::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut req, key_pem) = match (&input.csr_pem, input.generate_key) {
        (Some(csr), None) => {
            let csr = ca_core::csr::parse(csr.as_bytes())?;
            if input.subject.is_some() {
                return Err(ca_core::Error::BadRequest(
                    "give the subject in the CSR, not beside it".into(),
                ));
            }
            (
                IssueRequest::from_csr(&csr, &input.profile, requester),
                None,
            )
        }
        (None, Some(alg)) => {
            let subject_text = input.subject.clone().unwrap_or_default();
            let subject: x509_cert::name::Name = if subject_text.is_empty() {
                x509_cert::name::Name::default()
            } else {
                subject_text.parse().map_err(|e| {
                    ca_core::Error::BadRequest(format!("subject {subject_text:?}: {e}"))
                })?
            };
            let generated = hsm::soft::generate_exportable(alg)?;
            let req = IssueRequest {
                profile: input.profile.clone(),
                subject,
                sans: Vec::new(),
                spki_der: generated.spki_der.clone(),
                key_algorithm: alg,
                extensions: Vec::new(),
                requester: requester.to_string(),
                validity_days: None,
                issuer: None,
            };
            (req, Some(pem("PRIVATE KEY", generated.pkcs8_der.expose())))
        }
        _ => {
            return Err(ca_core::Error::BadRequest(
                "give either a CSR or a key algorithm to generate".into(),
            ));
        }
    };
    for s in extra {
        if !req.sans.contains(&s) {
            req.sans.push(s);
        }
    }
    req.validity_days = input.validity_days;
    let issued = auth.issue(&req)?;
    Ok(IssueOutput {
        serial: serial_hex(&issued.record.serial),
        certificate_pem: pem("CERTIFICATE", &issued.record.der),
        chain_pem: issued.chain.iter().map(|c| pem("CERTIFICATE", c)).collect(),
        private_key_pem: key_pem,
    })
}

/// Lists certificates.
/// One page of certificates (memory bounded by the page size: records are read without
/// their DER).
pub fn list(auth: &Authority, q: &ListQuery) -> Result<CertListPage, ca_core::Error> {
    let now = auth.now();
    let limit = q.limit.unwrap_or(LIST_DEFAULT_LIMIT);
    if limit == 0 || limit > LIST_MAX_LIMIT {
        return Err(ca_core::Error::BadRequest(format!(
            "limit must be between 1 and {LIST_MAX_LIMIT}; page with cursor for more"
        )));
    }
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut filter = CertFilter {
        profile: q.profile.clone(),
        issuer: q.issuer.clone(),
        text: q.text.clone(),
        ..CertFilter::default()
    };
    match q.status.as_deref() {
        None => {}
        Some("valid") => {
            filter.status = Some(CertStatus::Valid);
            filter.expires_after = Some(now);
        }
        Some("revoked") => filter.status = Some(CertStatus::Revoked),
        Some("expired") => {
            filter.status = Some(CertStatus::Valid);
            filter.expires_before = Some(now);
        }
        Some(other) => {
            return Err(ca_core::Error::BadRequest(format!(
                "status {other:?} is not one of valid, revoked, expired"
            )));
        }
    }
    if let Some(days) = q.expiring_days {
        filter.expires_after = Some(now);
        filter.expires_before = Some(now + i64::from(days) * 86_400);
        filter.status.get_or_insert(CertStatus::Valid);
    }
    let page = auth.list_page(&filter, after.as_ref(), limit)?;
    Ok(CertListPage {
        certificates: page.records.iter().map(|r| view(r, now, false)).collect(),
        next_cursor: page.next.as_ref().map(encode_cursor),
    })
}

/// Shows one certificate.
pub fn show(auth: &Authority, serial: &str) -> Result<CertView, ca_core::Error> {
    let serial = parse_serial_hex(serial)?;
    Ok(view(&auth.get(&serial)?, auth.now(), true))
}

/// Revokes one certificate.
pub fn revoke(
    auth: &Authority,
    serial: &str,
    input: &RevokeInput,
    actor: &str,
) -> Result<CertView, ca_core::Error> {
    let serial = parse_serial_hex(serial)?;
    let reason = RevocationReason::parse(input.reason.as_deref().unwrap_or("unspecified"))?;
    let rec = auth.revoke(&serial, reason, actor)?;
    Ok(view(&rec, auth.now(), false))
}

/// Forces a new CRL for `ca` (all CAs when `None`).
pub fn crl(
    auth: &Authority,
    ca: Option<&str>,
    actor: &str,
) -> Result<Vec<CrlView>, ca_core::Error> {
    let names: Vec<String> = match ca {
        Some(c) => vec![auth.ca(c)?.name.clone()],
        None => auth.authorities().keys().cloned().collect(),
    };
    names
        .iter()
        .map(|n| {
            let c = auth.generate_crl(n, actor)?;
            Ok(CrlView {
                ca: n.clone(),
                number: c.number,
                this_update: rfc3339(c.this_update),
                next_update: rfc3339(c.next_update),
                url: auth.settings().crl_url(n),
                bytes: c.der.len(),
            })
        })
        .collect()
}

/// Lists profiles.
pub fn profiles(auth: &Authority) -> Vec<ProfileView> {
    auth.profiles()
        .values()
        .map(|p| ProfileView {
            name: p.name.clone(),
            issuer: p.issuer.clone(),
            validity_days: p.config.validity_days,
            extended_key_usage: p.config.extended_key_usage.clone(),
            ca: p.config.ca,
            key_algorithms: p
                .config
                .key_algorithms
                .iter()
                .map(|a| a.name().to_string())
                .collect(),
        })
        .collect()
}

/// Verifies the audit chain.
pub fn audit_verify(auth: &Authority) -> Result<AuditVerification, ca_core::Error> {
    Ok(auth.store().verify_audit()?)
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

fn request_view(p: &store::PendingRequest) -> RequestView {
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

/// Lists held requests, optionally in one state (`pending`, `issued`, `rejected`).
pub fn list_requests(
    auth: &Authority,
    state: Option<&str>,
) -> Result<Vec<RequestView>, ca_core::Error> {
    let state = state.map(ca_core::pending::parse_state).transpose()?;
    Ok(auth.list_held(state)?.iter().map(request_view).collect())
}

/// Approves a held request; returns the issued certificate's view.
pub fn approve_request(auth: &Authority, id: u64, actor: &str) -> Result<CertView, ca_core::Error> {
    let issued = auth.approve(id, actor)?;
    Ok(view(&issued.record, auth.now(), false))
}

/// Rejects a held request.
pub fn reject_request(
    auth: &Authority,
    id: u64,
    input: &RejectInput,
    actor: &str,
) -> Result<RequestView, ca_core::Error> {
    if input.reason.trim().is_empty() || input.reason.len() > 200 {
        return Err(ca_core::Error::BadRequest(
            "give a reason of 1 to 200 characters".into(),
        ));
    }
    Ok(request_view(&auth.reject(
        id,
        actor,
        input.reason.trim(),
    )?))
}
