//! The ACME service (RFC 8555 §7): the resources of every endpoint, free of HTTP so that
//! it can be tested directly; [`crate::http`] maps it onto axum. Requests are blocking
//! (they read and write the store); the HTTP layer runs them on the blocking pool.
//!
//! Shape, as SCEP and EST: authenticate (the JWS, §6.2) → one `Authority::enroll` call at
//! finalize (channel `acme:<endpoint>/<account>`) → map the outcome. What is issued is
//! decided by ca-core; this module only checks that the CSR asks for exactly the order's
//! identifiers and that those passed the endpoint's profile rules at newOrder.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use ca_core::acme_records::{
    AccountStatus, AcmeAccount, AcmeAuthz, AcmeChallenge, AcmeIdentifier, AcmeOrder, AcmeStore,
    AuthzStatus, ChallengeStatus, OrderStatus,
};
use ca_core::enroll::{Authentication, Channel, EnrollOutcome, EnrollmentRequest, Requester};
use ca_core::profile::San;
use ca_core::{Authority, EnrollmentPolicy, RevocationReason, RevokeOptions};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{AcmeConfig, AcmeEndpointConfig};
use crate::jws::{ExternalAccountBinding, Jwk, Jws, KeyRef, b64_decode, b64_encode};
use crate::nonce::{DEFAULT_LEDGER_ENTRIES, DEFAULT_LIFETIME, MemoryLedger, Nonces};
use crate::problem::{self, Problem, Subproblem};
use crate::{Error, Result};

/// The JWS media type every POST must carry (RFC 8555 §6.2).
pub const JOSE_JSON: &str = "application/jose+json";
/// The media type of a certificate download (RFC 8555 §7.4.2).
pub const PEM_CHAIN: &str = "application/pem-certificate-chain";
/// Seconds a client is asked to wait before polling a pending authorization or a
/// processing order again (RFC 8555 §7.4, `Retry-After`).
pub const RETRY_AFTER: u32 = 2;
/// Most identifiers in one order.
pub const MAX_IDENTIFIERS: usize = 100;
/// Seconds a client is asked to wait before asking for a certificate's renewal
/// information again (RFC 9773 §4.2, `Retry-After`): six hours.
pub const ARI_RETRY_AFTER: u32 = 6 * 3600;
/// The longest ARI certID read (RFC 9773 §4.1; an AKI of 20 bytes and a serial of 20
/// make 56 characters).
pub const MAX_CERT_ID: usize = 256;
/// Order URLs on one page of an account's orders list (RFC 8555 §7.1.2.1).
pub const ORDERS_PER_PAGE: usize = 50;
/// Most contacts of an account.
pub const MAX_CONTACTS: usize = 10;
/// Most validations running at once; more are answered `rateLimited`.
pub const MAX_VALIDATIONS: usize = 64;
/// Largest http-01 response body read (RFC 8555 §8.3: the key authorization, about 90
/// bytes; trailing whitespace allowed).
pub const MAX_HTTP01_BODY: usize = 8 * 1024;

/// The request method, as the service distinguishes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// POST.
    Post,
    /// Anything else.
    Other,
}

/// One request as the HTTP layer hands it over.
#[derive(Clone, Debug)]
pub struct AcmeRequest {
    /// The method.
    pub method: Method,
    /// The endpoint name (the path segment after `/acme/`).
    pub endpoint: String,
    /// The resource path after `/acme/<endpoint>/`.
    pub path: String,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body (at most [`crate::jws::MAX_JWS_BYTES`]).
    pub body: Vec<u8>,
    /// The peer address, for the audit log.
    pub peer: String,
}

/// What the service answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers (`Content-Type`, `Location`, `Link`, `Replay-Nonce`, `Retry-After`, …).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl AcmeResponse {
    fn json(status: u16, value: &Value) -> AcmeResponse {
        AcmeResponse {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    fn empty(status: u16) -> AcmeResponse {
        AcmeResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> AcmeResponse {
        self.headers.push((name, value.into()));
        self
    }

    fn problem(e: &Error) -> AcmeResponse {
        let p = Problem::from(e);
        AcmeResponse {
            status: p.status,
            headers: vec![("Content-Type", problem::CONTENT_TYPE.into())],
            body: p.to_json(),
        }
    }

    /// The value of header `name` (first occurrence).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (`Link` comes more than once, RFC 8288).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One http-01 validation (RFC 8555 §8.3) for a [`Validator`] to carry out.
#[derive(Clone, Debug)]
pub struct Http01Check {
    /// The identifier's value: the DNS name (the `Host` of the request) or the address.
    pub host: String,
    /// Where to connect, when the endpoint's `resolve` map or an IP identifier fixes it;
    /// `None`: resolve `host`.
    pub address: Option<IpAddr>,
    /// The port (80 unless the endpoint overrides it).
    pub port: u16,
    /// The challenge token (the last path segment).
    pub token: String,
    /// The expected body: the key authorization (§8.1).
    pub key_authorization: String,
    /// Time allowed for the whole request.
    pub timeout: Duration,
}

/// One dns-01 validation (RFC 8555 §8.4) for a [`Validator`] to carry out.
#[derive(Clone, Debug)]
pub struct Dns01Check {
    /// The name whose TXT records are read: `_acme-challenge.<identifier>`, the
    /// identifier without its wildcard label.
    pub name: String,
    /// The TXT value expected among them: base64url(SHA-256(key authorization)).
    pub expected: String,
    /// The DNS server to ask (`dns_resolver`); `None`: the system's.
    pub resolver: Option<SocketAddr>,
    /// Time allowed for the whole lookup.
    pub timeout: Duration,
}

/// One tls-alpn-01 validation (RFC 8737 §3) for a [`Validator`] to carry out.
#[derive(Clone, Debug)]
pub struct TlsAlpn01Check {
    /// The identifier the certificate must name, alone, in its subjectAltName.
    pub identifier: San,
    /// The TLS server name sent: the DNS name, or for an IP identifier its reverse
    /// name (RFC 8738 §6).
    pub sni: String,
    /// Where to connect, when the endpoint's `resolve` map or an IP identifier fixes it;
    /// `None`: resolve `sni`.
    pub address: Option<IpAddr>,
    /// The port (443 unless the endpoint overrides it).
    pub port: u16,
    /// SHA-256 of the key authorization, the acmeIdentifier extension's value.
    pub digest: [u8; 32],
    /// Time allowed for the connection and handshake.
    pub timeout: Duration,
}

/// Carries out challenge validations. Outbound connections are the server crate's
/// (docs/architecture.md: it owns every socket); this crate says what to check.
pub trait Validator: Send + Sync {
    /// Fetches `http://<host>:<port>/.well-known/acme-challenge/<token>` without following
    /// redirects, reading at most [`MAX_HTTP01_BODY`] bytes, and checks the body (trailing
    /// whitespace ignored) equals the key authorization. `Err` carries what went wrong,
    /// for the challenge's problem document.
    fn http01(&self, check: &Http01Check) -> std::result::Result<(), String>;
    /// Reads the TXT records of `check.name` from `check.resolver` (CNAMEs followed) and
    /// checks one of them equals `check.expected`.
    fn dns01(&self, check: &Dns01Check) -> std::result::Result<(), String>;
    /// Connects with ALPN `acme-tls/1` and SNI `check.sni`, accepts whatever certificate
    /// the peer shows for this handshake only, and checks it with
    /// [`crate::tls_alpn::check_certificate`].
    fn tls_alpn01(&self, check: &TlsAlpn01Check) -> std::result::Result<(), String>;
}

/// A validation to run, of any challenge type.
#[derive(Clone, Debug)]
enum Check {
    Http01(Http01Check),
    Dns01(Dns01Check),
    TlsAlpn01(TlsAlpn01Check),
}

/// The challenge types of RFC 8555 §8.3, §8.4 and RFC 8737.
pub const HTTP_01: &str = "http-01";
/// dns-01 (RFC 8555 §8.4).
pub const DNS_01: &str = "dns-01";
/// tls-alpn-01 (RFC 8737 §3).
pub const TLS_ALPN_01: &str = "tls-alpn-01";

/// The challenges offered for an identifier: a wildcard name only dns-01 (RFC 8555
/// §7.1.3), an IP address http-01 and tls-alpn-01 (RFC 8738 §7: no dns-01), a DNS name
/// all three.
pub fn challenge_types(ident: &AcmeIdentifier) -> &'static [&'static str] {
    if ident.kind == "ip" {
        &[HTTP_01, TLS_ALPN_01]
    } else if ident.value.starts_with("*.") {
        &[DNS_01]
    } else {
        &[HTTP_01, DNS_01, TLS_ALPN_01]
    }
}

/// The reverse-mapping name of an address (RFC 8738 §6: the tls-alpn-01 SNI of an IP
/// identifier; RFC 1035 §3.5, RFC 3596 §2.5).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// A configured endpoint.
struct Endpoint {
    name: String,
    cfg: AcmeEndpointConfig,
}

impl Endpoint {
    fn profiles(&self) -> Vec<&str> {
        let mut v = vec![self.cfg.profile.as_str()];
        v.extend(
            self.cfg
                .profiles
                .iter()
                .map(String::as_str)
                .filter(|p| *p != self.cfg.profile),
        );
        v
    }

    fn policy(&self, account: &str) -> EnrollmentPolicy {
        let mut p = EnrollmentPolicy::new(
            Channel::Acme {
                endpoint: self.name.clone(),
                account: account.to_string(),
            },
            &self.cfg.profile,
        );
        p.admitted_profiles = self.cfg.profiles.clone();
        p
    }
}

/// The ACME endpoints of one server.
pub struct AcmeService {
    auth: Arc<Authority>,
    base: String,
    nonces: Nonces<MemoryLedger>,
    endpoints: BTreeMap<String, Endpoint>,
    validator: Arc<dyn Validator>,
    running: AtomicUsize,
    rng: SystemRandom,
}

/// A store error as an ACME error (through ca-core's kinds).
fn st<T>(r: std::result::Result<T, impl Into<ca_core::Error>>) -> Result<T> {
    r.map_err(|e| Error::from(e.into()))
}

use ca_core::clock::rfc3339;

fn payload<T: serde::de::DeserializeOwned>(jws: &Jws, what: &str) -> Result<T> {
    serde_json::from_slice(&jws.payload)
        .map_err(|e| Error::Malformed(format!("the {what} payload is not valid: {e}")))
}

/// An id of a resource: 16 random bytes, base64url (22 characters).
fn valid_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl AcmeService {
    /// The endpoints of `cfg`, served under `base` (the external URL, `https://host:port`),
    /// validating through `validator`. Every endpoint's profiles must exist and issue no
    /// CA certificates.
    pub fn new(
        cfg: &AcmeConfig,
        base: &str,
        auth: Arc<Authority>,
        validator: Arc<dyn Validator>,
    ) -> Result<AcmeService> {
        cfg.validate()?;
        let rng = SystemRandom::new();
        // One node: the nonce key lives in memory and nonces die with the process, which
        // clients answer with one badNonce retry (RFC 8555 §6.5).
        let mut key = [0u8; 32];
        rng.fill(&mut key)
            .map_err(|_| Error::malformed("no randomness for the nonce key"))?;
        let nonces = Nonces::new(
            &key,
            DEFAULT_LIFETIME,
            MemoryLedger::new(DEFAULT_LEDGER_ENTRIES),
        )?
        .with_rejection(cfg.reject_nonce_every);
        let mut endpoints = BTreeMap::new();
        for (name, ep) in &cfg.endpoints {
            let e = Endpoint {
                name: name.clone(),
                cfg: ep.clone(),
            };
            e.policy("-").validate(&auth)?;
            endpoints.insert(name.clone(), e);
        }
        if !endpoints.is_empty() {
            auth.acme_records()?;
        }
        Ok(AcmeService {
            auth,
            base: base.trim_end_matches('/').to_string(),
            nonces,
            endpoints,
            validator,
            running: AtomicUsize::new(0),
            rng,
        })
    }

    /// The authority.
    pub fn authority(&self) -> &Arc<Authority> {
        &self.auth
    }

    /// The directory URL of endpoint `name`.
    pub fn directory_url(&self, name: &str) -> String {
        format!("{}/acme/{name}/directory", self.base)
    }

    fn url(&self, ep: &Endpoint, path: &str) -> String {
        format!("{}/acme/{}/{path}", self.base, ep.name)
    }

    fn records(&self) -> Result<&dyn AcmeStore> {
        Ok(self.auth.acme_records()?)
    }

    fn new_id(&self) -> Result<String> {
        let mut b = [0u8; 16];
        self.rng.fill(&mut b).map_err(|_| Error::Core {
            problem_type: "urn:ietf:params:acme:error:serverInternal",
            status: 500,
            detail: "no randomness".into(),
        })?;
        Ok(b64_encode(&b))
    }

    fn audit(
        &self,
        action: &str,
        actor: &str,
        subject: &str,
        detail: String,
    ) -> ca_core::acme_records::AuditEvent {
        ca_core::acme_records::AuditEvent {
            time: self.auth.now(),
            action: action.into(),
            actor: actor.into(),
            subject: subject.into(),
            detail,
        }
    }

    /// Answers one request: every answer carries a fresh `Replay-Nonce` (RFC 8555 §6.5)
    /// and, but the directory, `Link: <directory>;rel="index"` (§7.1).
    pub fn handle(self: &Arc<Self>, req: &AcmeRequest) -> AcmeResponse {
        let Some(ep) = self.endpoints.get(&req.endpoint) else {
            return AcmeResponse::problem(&Error::NotFound(format!(
                "no ACME endpoint named {:?}",
                req.endpoint
            )));
        };
        let now = self.auth.now();
        let mut resp = match self.route(ep, req, now) {
            Ok(r) => r,
            Err(e) => {
                let status = e.status();
                if status >= 500 {
                    tracing::error!(endpoint = %ep.name, path = %req.path, error = %e, "ACME request failed");
                } else {
                    tracing::info!(endpoint = %ep.name, path = %req.path, error = %e, "ACME request refused");
                }
                if req.method == Method::Post && status != 500 && status != 503 {
                    // Authenticated or not, a refused POST is counted (and summarised
                    // into the audit log) as the other protocols' refusals are.
                    self.auth
                        .note_unauthenticated("acme-refused", &req.peer, &e.to_string());
                }
                AcmeResponse::problem(&e)
            }
        };
        match self.nonces.issue(now) {
            Ok(n) => resp.headers.push(("Replay-Nonce", n)),
            Err(e) => tracing::error!(error = %e, "no nonce"),
        }
        if req.path != "directory" {
            resp.headers.push((
                "Link",
                format!("<{}>;rel=\"index\"", self.url(ep, "directory")),
            ));
        }
        resp
    }

    fn route(self: &Arc<Self>, ep: &Endpoint, req: &AcmeRequest, now: i64) -> Result<AcmeResponse> {
        let path = req.path.as_str();
        match (path, req.method) {
            ("directory", Method::Get | Method::Head) => return Ok(self.directory(ep)),
            ("new-nonce", Method::Head) => {
                return Ok(AcmeResponse::empty(200).header("Cache-Control", "no-store"));
            }
            ("new-nonce", Method::Get) => {
                return Ok(AcmeResponse::empty(204).header("Cache-Control", "no-store"));
            }
            (p, Method::Get) if p.starts_with("renewal-info/") => {
                return self.renewal_info(ep, &p["renewal-info/".len()..], now);
            }
            (_, Method::Post) => {}
            _ => {
                return Err(Error::Method {
                    status: 405,
                    detail: "this resource takes POST (RFC 8555 §6.3)".into(),
                });
            }
        }
        let ct = req.content_type.as_deref().unwrap_or("");
        if ct.split(';').next().map(str::trim) != Some(JOSE_JSON) {
            return Err(Error::Method {
                status: 415,
                detail: format!("a POST must be {JOSE_JSON} (RFC 8555 §6.2)"),
            });
        }
        let jws = Jws::parse(&req.body)?;
        jws.check_url(&self.url(ep, path))?;
        self.nonces.redeem(jws.protected.nonce.as_deref(), now)?;
        let segs: Vec<&str> = path.split('/').collect();
        match segs.as_slice() {
            ["new-nonce"] | ["directory"] => {
                let (_, _) = self.by_kid(ep, &jws)?;
                if path == "directory" {
                    Ok(self.directory(ep))
                } else {
                    Ok(AcmeResponse::empty(200).header("Cache-Control", "no-store"))
                }
            }
            ["new-account"] => self.new_account(ep, &jws, req, now),
            ["revoke-cert"] => self.revoke(ep, &jws),
            _ => {
                let (acct, _) = self.by_kid(ep, &jws)?;
                match segs.as_slice() {
                    ["acct", id] if *id == acct.id => self.account_post(ep, &jws, acct),
                    ["acct", id, "orders"] if *id == acct.id => self.orders_list(ep, &acct, 0),
                    ["acct", id, "orders", page] if *id == acct.id => {
                        let page = page
                            .parse::<usize>()
                            .ok()
                            .filter(|p| *p > 0 && p.to_string() == *page)
                            .ok_or_else(|| Error::NotFound("no such page of orders".into()))?;
                        self.orders_list(ep, &acct, page)
                    }
                    ["acct", _] | ["acct", _, "orders"] | ["acct", _, "orders", _] => {
                        Err(Error::Unauthorized(
                            "the account URL is not the one of the signing account".into(),
                        ))
                    }
                    ["new-order"] => self.new_order(ep, &jws, &acct, now),
                    ["key-change"] => self.key_change(ep, &jws, acct),
                    ["order", id] => {
                        let order = self.owned_order(&acct, id)?;
                        let order = self.refresh_order(order, now)?;
                        Ok(self.order_response(ep, &order, 200))
                    }
                    ["order", id, "finalize"] => self.finalize(ep, &jws, &acct, id, now),
                    ["authz", id] => self.authz_post(ep, &jws, &acct, id, now),
                    ["chall", id, idx] => self.challenge_post(ep, &jws, &acct, id, idx, now),
                    ["cert", id] => self.certificate(&acct, id),
                    _ => Err(Error::NotFound(format!("no ACME resource {path:?}"))),
                }
            }
        }
    }

    fn directory(&self, ep: &Endpoint) -> AcmeResponse {
        let mut meta = serde_json::Map::new();
        meta.insert("externalAccountRequired".into(), json!(ep.cfg.eab_required));
        if let Some(tos) = &ep.cfg.terms_of_service {
            meta.insert("termsOfService".into(), json!(tos));
        }
        let mut profiles = serde_json::Map::new();
        for p in ep.profiles() {
            let description = self
                .auth
                .profiles()
                .get(p)
                .map(|pr| format!("privca profile {}", pr.name))
                .unwrap_or_default();
            profiles.insert(p.to_string(), json!(description));
        }
        meta.insert("profiles".into(), Value::Object(profiles));
        AcmeResponse::json(
            200,
            &json!({
                "newNonce": self.url(ep, "new-nonce"),
                "newAccount": self.url(ep, "new-account"),
                "newOrder": self.url(ep, "new-order"),
                "revokeCert": self.url(ep, "revoke-cert"),
                "keyChange": self.url(ep, "key-change"),
                "renewalInfo": self.url(ep, "renewal-info"),
                "meta": meta,
            }),
        )
    }

    /// The account a `kid` request is signed by, its signature verified (RFC 8555 §6.2):
    /// the `kid` must be an account URL of this endpoint, the account valid.
    fn by_kid(&self, ep: &Endpoint, jws: &Jws) -> Result<(AcmeAccount, Jwk)> {
        let KeyRef::Kid(kid) = &jws.protected.key else {
            return Err(Error::Malformed(
                "this request must name its account with \"kid\", not \"jwk\" (RFC 8555 §6.2)"
                    .into(),
            ));
        };
        let prefix = self.url(ep, "acct/");
        let account = kid
            .strip_prefix(&prefix)
            .filter(|id| valid_id(id))
            .map(|id| {
                self.records()?
                    .account(id)
                    .map_err(|e| Error::from(ca_core::Error::Store(e)))
            })
            .transpose()?
            .flatten()
            .filter(|a| a.endpoint == ep.name)
            .ok_or_else(|| {
                Error::AccountDoesNotExist(format!("no account {kid:?} at this endpoint"))
            })?;
        let key = account_key(&account)?;
        jws.verify(&key)?;
        if account.status != AccountStatus::Valid {
            return Err(Error::Unauthorized(format!(
                "the account is {:?}",
                account.status
            )));
        }
        Ok((account, key))
    }

    fn account_json(&self, ep: &Endpoint, a: &AcmeAccount) -> Value {
        let status = match a.status {
            AccountStatus::Valid => "valid",
            AccountStatus::Deactivated => "deactivated",
            AccountStatus::Revoked => "revoked",
        };
        json!({
            "status": status,
            "contact": a.contacts,
            "orders": self.url(ep, &format!("acct/{}/orders", a.id)),
        })
    }

    /// newAccount (RFC 8555 §7.3), with `onlyReturnExisting` (§7.3.1) and External
    /// Account Binding (§7.3.4).
    fn new_account(
        &self,
        ep: &Endpoint,
        jws: &Jws,
        req: &AcmeRequest,
        now: i64,
    ) -> Result<AcmeResponse> {
        #[derive(Deserialize)]
        struct NewAccount {
            #[serde(default)]
            contact: Option<Vec<String>>,
            #[serde(default, rename = "termsOfServiceAgreed")]
            tos_agreed: bool,
            #[serde(default, rename = "onlyReturnExisting")]
            only_existing: bool,
            #[serde(default, rename = "externalAccountBinding")]
            eab: Option<Value>,
        }
        let KeyRef::Jwk(jwk) = &jws.protected.key else {
            return Err(Error::Malformed(
                "newAccount must carry the account key as \"jwk\" (RFC 8555 §6.2)".into(),
            ));
        };
        jws.verify(jwk)?;
        let p: NewAccount = payload(jws, "newAccount")?;
        let records = self.records()?;
        let thumbprint = jwk.thumbprint_b64();
        if let Some(existing) =
            st(records.account_by_thumbprint(&thumbprint))?.filter(|a| a.endpoint == ep.name)
        {
            if existing.status != AccountStatus::Valid {
                return Err(Error::Unauthorized(format!(
                    "the account of this key is {:?}",
                    existing.status
                )));
            }
            let url = self.url(ep, &format!("acct/{}", existing.id));
            return Ok(
                AcmeResponse::json(200, &self.account_json(ep, &existing)).header("Location", url)
            );
        }
        if p.only_existing {
            return Err(Error::AccountDoesNotExist(
                "no account has this key (onlyReturnExisting)".into(),
            ));
        }
        if ep.cfg.terms_of_service.is_some() && !p.tos_agreed {
            return Err(Error::UserActionRequired(
                "the terms of service must be agreed to (termsOfServiceAgreed)".into(),
            ));
        }
        let contacts = check_contacts(p.contact.unwrap_or_default())?;
        let id = self.new_id()?;
        let eab_kid = match (&p.eab, ep.cfg.eab_required) {
            (None, true) => {
                return Err(Error::ExternalAccountRequired(
                    "this endpoint requires an external account binding (RFC 8555 §7.3.4)".into(),
                ));
            }
            (None, false) => None,
            (Some(v), _) => {
                let binding = ExternalAccountBinding::parse(v, jws, jwk)?;
                let key = st(records.eab_key(&binding.key_id))?
                    .filter(|k| k.endpoint == ep.name)
                    .ok_or_else(|| {
                        Error::Unauthorized(format!(
                            "the external account binding names an unknown key id {:?}",
                            binding.key_id
                        ))
                    })?;
                binding.verify(&key.hmac_key)?;
                if key.account.is_some() {
                    return Err(Error::Unauthorized(
                        "the external account binding's key is bound to another account".into(),
                    ));
                }
                Some(binding.key_id)
            }
        };
        let account = AcmeAccount {
            id: id.clone(),
            endpoint: ep.name.clone(),
            thumbprint,
            jwk: jwk.to_json(),
            contacts,
            status: AccountStatus::Valid,
            eab_kid: eab_kid.clone(),
            created_at: now,
        };
        let actor = format!("acme:{}/{id}", ep.name);
        let audit = self.audit(
            "acme-account-create",
            &actor,
            &id,
            format!(
                "key {}; eab {}; from {}",
                account.thumbprint,
                eab_kid.as_deref().unwrap_or("-"),
                req.peer
            ),
        );
        match records.create_account(&account, eab_kid.as_deref(), &audit) {
            Ok(()) => {}
            // A racing request bound the key, or created the account, first.
            Err(
                e @ (ca_core::acme_records::StoreError::Conflict(_)
                | ca_core::acme_records::StoreError::NotFound(_)),
            ) => {
                return Err(Error::Unauthorized(format!(
                    "the account was not created: {e}"
                )));
            }
            Err(e) => return Err(Error::from(ca_core::Error::Store(e))),
        }
        let url = self.url(ep, &format!("acct/{id}"));
        Ok(AcmeResponse::json(201, &self.account_json(ep, &account)).header("Location", url))
    }

    /// POST to the account URL: fetch, update contacts, or deactivate (RFC 8555 §7.3.2,
    /// §7.3.6).
    fn account_post(
        &self,
        ep: &Endpoint,
        jws: &Jws,
        mut acct: AcmeAccount,
    ) -> Result<AcmeResponse> {
        #[derive(Deserialize)]
        struct Update {
            #[serde(default)]
            contact: Option<Vec<String>>,
            #[serde(default)]
            status: Option<String>,
        }
        let url = self.url(ep, &format!("acct/{}", acct.id));
        if !jws.is_post_as_get() {
            let u: Update = payload(jws, "account update")?;
            let mut what = Vec::new();
            if let Some(c) = u.contact {
                acct.contacts = check_contacts(c)?;
                what.push("contacts");
            }
            match u.status.as_deref() {
                None => {}
                Some("deactivated") => {
                    acct.status = AccountStatus::Deactivated;
                    what.push("deactivated");
                }
                Some(s) => {
                    return Err(Error::Malformed(format!(
                        "an account can only be \"deactivated\", not {s:?}"
                    )));
                }
            }
            if !what.is_empty() {
                let actor = format!("acme:{}/{}", ep.name, acct.id);
                let audit = self.audit("acme-account-update", &actor, &acct.id, what.join(", "));
                st(self.records()?.update_account(&acct, &audit))?;
            }
        }
        Ok(AcmeResponse::json(200, &self.account_json(ep, &acct)).header("Location", url))
    }

    /// The orders of an account (RFC 8555 §7.1.2.1), invalid ones left out.
    /// The orders list (RFC 8555 §7.1.2.1): [`ORDERS_PER_PAGE`] order URLs a page, in
    /// the store's order (creation time, then id), invalid orders left out; page `n` > 0 is `acct/<id>/orders/<n>`, and
    /// every page but the last links the next with `Link: <…>;rel="next"`.
    fn orders_list(&self, ep: &Endpoint, acct: &AcmeAccount, page: usize) -> Result<AcmeResponse> {
        let orders = st(self.records()?.orders_of(&acct.id))?;
        let mut listed = orders
            .iter()
            .filter(|o| o.status != OrderStatus::Invalid)
            .skip(page.saturating_mul(ORDERS_PER_PAGE));
        let urls: Vec<String> = listed
            .by_ref()
            .take(ORDERS_PER_PAGE)
            .map(|o| self.url(ep, &format!("order/{}", o.id)))
            .collect();
        if page > 0 && urls.is_empty() {
            return Err(Error::NotFound("no such page of orders".into()));
        }
        let mut r = AcmeResponse::json(200, &json!({ "orders": urls }));
        if listed.next().is_some() {
            let next = self.url(ep, &format!("acct/{}/orders/{}", acct.id, page + 1));
            r = r.header("Link", format!("<{next}>;rel=\"next\""));
        }
        Ok(r)
    }

    /// renewalInfo (RFC 9773 §4): unauthenticated GET of `renewal-info/<certID>` for a
    /// certificate this endpoint issued. The suggested window is the last third of the
    /// validity but its final sixth (from 2/3 to 5/6 of the lifetime), so a client that
    /// renews in it never runs into expiry; for a revoked certificate it lies in the
    /// past, so the client renews now (§4.2). Clients are asked to check again in
    /// [`ARI_RETRY_AFTER`] seconds.
    fn renewal_info(&self, ep: &Endpoint, cert_id: &str, now: i64) -> Result<AcmeResponse> {
        let (wanted, _aki, serial) = parse_cert_id(cert_id)?;
        let record = match self.auth.get(&serial) {
            Ok(r) => r,
            Err(ca_core::Error::NotFound(_)) => {
                return Err(Error::NotFound(format!("no certificate {wanted}")));
            }
            Err(e) => return Err(e.into()),
        };
        let ours = record.requester.starts_with(&format!("acme:{}/", ep.name));
        if !ours || cert_id_of(&record.der)? != wanted {
            return Err(Error::NotFound(format!(
                "no certificate {wanted} issued at this endpoint"
            )));
        }
        let (start, end) = if record.revocation.is_some() {
            (now - 2 * 3600, now - 3600)
        } else {
            let life = (record.not_after - record.not_before).max(0);
            (
                record.not_before + life * 2 / 3,
                record.not_before + life * 5 / 6,
            )
        };
        Ok(AcmeResponse::json(
            200,
            &json!({"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}}),
        )
        .header("Retry-After", ARI_RETRY_AFTER.to_string()))
    }

    /// The `replaces` of a newOrder (RFC 9773 §5), canonical: it must name a certificate
    /// an order of this account obtained, sharing an identifier with the new order, and
    /// no other order of the account may have named it already (`alreadyReplaced`).
    /// The check reads the account's orders; two racing orders replacing one
    /// certificate may both pass (each still issues only under policy).
    fn check_replaces(
        &self,
        acct: &AcmeAccount,
        cert_id: &str,
        identifiers: &[AcmeIdentifier],
    ) -> Result<String> {
        let (wanted, _aki, serial) = parse_cert_id(cert_id)?;
        let orders = st(self.records()?.orders_of(&acct.id))?;
        let Some(replaced) = orders
            .iter()
            .find(|o| o.status == OrderStatus::Valid && o.certificate.as_deref() == Some(&serial))
        else {
            return Err(Error::Malformed(format!(
                "\"replaces\" names {wanted}, which is no certificate of this account (RFC 9773 §5)"
            )));
        };
        let record = self.auth.get(&serial)?;
        if cert_id_of(&record.der)? != wanted {
            return Err(Error::Malformed(format!(
                "\"replaces\" names {wanted}, whose authority key identifier is not its issuer's"
            )));
        }
        if !replaced.identifiers.iter().any(|i| identifiers.contains(i)) {
            return Err(Error::Malformed(format!(
                "the certificate {wanted} shares no identifier with this order (RFC 9773 §5)"
            )));
        }
        if orders.iter().any(|o| {
            o.status != OrderStatus::Invalid && o.replaces.as_deref() == Some(wanted.as_str())
        }) {
            return Err(Error::Core {
                problem_type: "urn:ietf:params:acme:error:alreadyReplaced",
                status: 409,
                detail: format!(
                    "the certificate {wanted} is being replaced by another order already"
                ),
            });
        }
        Ok(wanted)
    }

    /// keyChange (RFC 8555 §7.3.5): the outer JWS is signed by the account's key (checked
    /// by the caller), the inner one, its payload, by the new key (`jwk`) over the same
    /// `url`, saying `{"account": <account URL>, "oldKey": <the current key>}`. A key that
    /// is already some account's is refused with 409 and that account's URL. The store
    /// moves the thumbprint index in the same commit (two racing changes to one key: one
    /// wins).
    fn key_change(
        &self,
        ep: &Endpoint,
        outer: &Jws,
        mut acct: AcmeAccount,
    ) -> Result<AcmeResponse> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct KeyChange {
            account: String,
            #[serde(rename = "oldKey")]
            old_key: Value,
        }
        let value: Value = serde_json::from_slice(&outer.payload).map_err(|e| {
            Error::Malformed(format!(
                "the keyChange payload is not a JWS (RFC 8555 §7.3.5): {e}"
            ))
        })?;
        let inner = Jws::from_value(&value)?;
        let KeyRef::Jwk(new_key) = &inner.protected.key else {
            return Err(Error::Malformed(
                "the inner JWS of a key change carries the new key as \"jwk\" (RFC 8555 §7.3.5)"
                    .into(),
            ));
        };
        inner.verify(new_key)?;
        if inner.protected.url != outer.protected.url {
            return Err(Error::Malformed(
                "the inner JWS \"url\" must be the outer one (RFC 8555 §7.3.5)".into(),
            ));
        }
        let p: KeyChange = payload(&inner, "keyChange")?;
        let url = self.url(ep, &format!("acct/{}", acct.id));
        if p.account != url {
            return Err(Error::Malformed(format!(
                "the key change names account {:?}, not the signing account {url}",
                p.account
            )));
        }
        let old = Jwk::from_value(&p.old_key)?;
        if old.thumbprint() != account_key(&acct)?.thumbprint() {
            return Err(Error::Malformed(
                "\"oldKey\" is not the account's current key (RFC 8555 §7.3.5)".into(),
            ));
        }
        let thumbprint = new_key.thumbprint_b64();
        let conflict = |holder: &str| Error::Core {
            problem_type: "urn:ietf:params:acme:error:malformed",
            status: 409,
            detail: format!("the new key is already the key of account {holder}"),
        };
        if let Some(other) = st(self.records()?.account_by_thumbprint(&thumbprint))? {
            let holder = self.url(ep, &format!("acct/{}", other.id));
            return Ok(AcmeResponse::problem(&conflict(&holder)).header("Location", holder));
        }
        acct.jwk = new_key.to_json();
        acct.thumbprint = thumbprint;
        let actor = format!("acme:{}/{}", ep.name, acct.id);
        let audit = self.audit(
            "acme-key-change",
            &actor,
            &acct.id,
            format!("new key thumbprint {}", acct.thumbprint),
        );
        match self.records()?.update_account(&acct, &audit) {
            Ok(()) => {}
            Err(ca_core::acme_records::StoreError::Conflict(_)) => {
                return Err(conflict("created meanwhile"));
            }
            Err(e) => return Err(Error::from(ca_core::Error::from(e))),
        }
        Ok(AcmeResponse::json(200, &self.account_json(ep, &acct)).header("Location", url))
    }

    /// newOrder (RFC 8555 §7.4): every identifier is checked against the profile's rules
    /// before any authorization exists; refusals are `rejectedIdentifier` with one
    /// subproblem per identifier.
    fn new_order(
        &self,
        ep: &Endpoint,
        jws: &Jws,
        acct: &AcmeAccount,
        now: i64,
    ) -> Result<AcmeResponse> {
        let p = parse_new_order(&jws.payload)?;
        let profile_name = match &p.profile {
            Some(name) if ep.profiles().contains(&name.as_str()) => name.clone(),
            Some(name) => {
                return Err(Error::InvalidProfile(format!(
                    "no profile {name:?} at this endpoint (offered: {})",
                    ep.profiles().join(", ")
                )));
            }
            None => ep.cfg.profile.clone(),
        };
        let profile = self
            .auth
            .profiles()
            .get(&profile_name)
            .ok_or_else(|| Error::InvalidProfile(format!("no profile {profile_name:?}")))?;
        let mut identifiers: Vec<AcmeIdentifier> = Vec::new();
        let mut subproblems = p.refused;
        for (ident, san) in p.identifiers {
            if let Err(e) = profile.check_name(&san) {
                subproblems.push(subproblem(
                    "urn:ietf:params:acme:error:rejectedIdentifier",
                    e.client_message(),
                    &ident.kind,
                    &ident.value,
                ));
                continue;
            }
            identifiers.push(ident);
        }
        let actor = format!("acme:{}/{}", ep.name, acct.id);
        if !subproblems.is_empty() {
            let why: Vec<String> = subproblems.iter().map(|s| s.detail.clone()).collect();
            let detail = format!(
                "{} identifier(s) refused by profile {profile_name}: {}",
                subproblems.len(),
                why.join("; ")
            );
            let listed: Vec<String> = subproblems
                .iter()
                .filter_map(|s: &Subproblem| s.identifier.as_ref().map(|i| i.value.clone()))
                .collect();
            self.auth.audit_refusal(
                "acme-order-refused",
                &actor,
                &listed.join(","),
                &ca_core::Error::PolicyRefused(detail.clone()),
            );
            return Err(Error::RejectedIdentifier {
                detail,
                subproblems,
            });
        }
        let replaces = match &p.replaces {
            Some(id) => Some(self.check_replaces(acct, id, &identifiers)?),
            None => None,
        };
        let expires = now.saturating_add(ep.cfg.order_lifetime_seconds);
        let mut authzs = Vec::with_capacity(identifiers.len());
        for ident in &identifiers {
            authzs.push(AcmeAuthz {
                id: self.new_id()?,
                endpoint: ep.name.clone(),
                account: acct.id.clone(),
                identifier: ident.clone(),
                status: AuthzStatus::Pending,
                expires,
                challenges: challenge_types(ident)
                    .iter()
                    .map(|kind| {
                        let mut b = [0u8; 32];
                        self.rng
                            .fill(&mut b)
                            .map_err(|_| Error::malformed("no randomness"))?;
                        Ok(AcmeChallenge {
                            kind: (*kind).into(),
                            token: b64_encode(&b),
                            status: ChallengeStatus::Pending,
                            validated: None,
                            error: None,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            });
        }
        let order = AcmeOrder {
            id: self.new_id()?,
            endpoint: ep.name.clone(),
            account: acct.id.clone(),
            status: OrderStatus::Pending,
            expires,
            identifiers,
            authorizations: authzs.iter().map(|a| a.id.clone()).collect(),
            profile: p.profile,
            csr_sha256: None,
            certificate: None,
            pending_id: None,
            error: None,
            created_at: now,
            replaces,
        };
        let names: Vec<&str> = order.identifiers.iter().map(|i| i.value.as_str()).collect();
        let audit = self.audit(
            "acme-order",
            &actor,
            &order.id,
            match &order.replaces {
                Some(r) => format!("profile {profile_name}; {}; replaces {r}", names.join(",")),
                None => format!("profile {profile_name}; {}", names.join(",")),
            },
        );
        st(self.records()?.create_order(&order, &authzs, &audit))?;
        Ok(self.order_response(ep, &order, 201))
    }

    fn owned_order(&self, acct: &AcmeAccount, id: &str) -> Result<AcmeOrder> {
        st(self.records()?.order(id))?
            .filter(|o| o.account == acct.id)
            .ok_or_else(|| Error::NotFound("no such order of this account".into()))
    }

    fn owned_authz(&self, acct: &AcmeAccount, id: &str) -> Result<AcmeAuthz> {
        st(self.records()?.authz(id))?
            .filter(|a| a.account == acct.id)
            .ok_or_else(|| Error::NotFound("no such authorization of this account".into()))
    }

    /// Moves an order on from what its authorizations and its expiry say (RFC 8555
    /// §7.1.6): pending → ready once every authorization is valid, → invalid when one
    /// failed or the order expired.
    fn refresh_order(&self, order: AcmeOrder, now: i64) -> Result<AcmeOrder> {
        let records = self.records()?;
        let mut next = order.clone();
        match order.status {
            OrderStatus::Pending => {
                let mut all_valid = true;
                for id in &order.authorizations {
                    let a = st(records.authz(id))?
                        .ok_or_else(|| Error::NotFound(format!("authorization {id} is missing")))?;
                    match a.status {
                        AuthzStatus::Valid => {}
                        AuthzStatus::Pending => all_valid = false,
                        other => {
                            next.status = OrderStatus::Invalid;
                            next.error = Some(
                                Problem::from(&Error::Unauthorized(format!(
                                    "the authorization for {} is {other:?}",
                                    a.identifier.value
                                )))
                                .to_json()
                                .into_iter()
                                .map(char::from)
                                .collect(),
                            );
                            break;
                        }
                    }
                }
                if next.status == OrderStatus::Pending {
                    if now >= order.expires {
                        next.status = OrderStatus::Invalid;
                    } else if all_valid {
                        next.status = OrderStatus::Ready;
                    }
                }
            }
            OrderStatus::Ready if now >= order.expires => next.status = OrderStatus::Invalid,
            _ => return Ok(order),
        }
        if next.status == order.status {
            return Ok(order);
        }
        match records.update_order(&next, order.status, None) {
            Ok(()) => Ok(next),
            Err(ca_core::acme_records::StoreError::Conflict(_)) => st(records.order(&order.id))?
                .ok_or_else(|| Error::NotFound("the order is gone".into())),
            Err(e) => Err(Error::from(ca_core::Error::Store(e))),
        }
    }

    fn order_response(&self, ep: &Endpoint, o: &AcmeOrder, status: u16) -> AcmeResponse {
        let st = match o.status {
            OrderStatus::Pending => "pending",
            OrderStatus::Ready => "ready",
            OrderStatus::Processing => "processing",
            OrderStatus::Valid => "valid",
            OrderStatus::Invalid => "invalid",
        };
        let mut v = json!({
            "status": st,
            "expires": rfc3339(o.expires),
            "identifiers": o.identifiers,
            "authorizations": o.authorizations.iter().map(|a| self.url(ep, &format!("authz/{a}"))).collect::<Vec<_>>(),
            "finalize": self.url(ep, &format!("order/{}/finalize", o.id)),
        });
        if let Some(p) = &o.profile {
            v["profile"] = json!(p);
        }
        if let Some(r) = &o.replaces {
            v["replaces"] = json!(r);
        }
        if o.status == OrderStatus::Valid {
            v["certificate"] = json!(self.url(ep, &format!("cert/{}", o.id)));
        }
        if let Some(e) = o
            .error
            .as_deref()
            .and_then(|e| serde_json::from_str::<Value>(e).ok())
        {
            v["error"] = e;
        }
        let mut r = AcmeResponse::json(status, &v)
            .header("Location", self.url(ep, &format!("order/{}", o.id)));
        if o.status == OrderStatus::Processing {
            r = r.header("Retry-After", RETRY_AFTER.to_string());
        }
        r
    }

    fn authz_json(&self, ep: &Endpoint, a: &AcmeAuthz) -> Value {
        let challenges: Vec<Value> = a
            .challenges
            .iter()
            .enumerate()
            .map(|(i, c)| self.challenge_json(ep, a, i, c))
            .collect();
        // A wildcard order's authorization names the base domain and says
        // "wildcard": true (RFC 8555 §7.1.4); the record keeps the order's identifier.
        let (identifier, wildcard) = match a.identifier.value.strip_prefix("*.") {
            Some(base) if a.identifier.kind == "dns" => (
                AcmeIdentifier {
                    kind: "dns".into(),
                    value: base.to_string(),
                },
                true,
            ),
            _ => (a.identifier.clone(), false),
        };
        let mut v = json!({
            "identifier": identifier,
            "status": authz_status(a.status),
            "expires": rfc3339(a.expires),
            "challenges": challenges,
        });
        if wildcard {
            v["wildcard"] = json!(true);
        }
        v
    }

    fn challenge_json(&self, ep: &Endpoint, a: &AcmeAuthz, i: usize, c: &AcmeChallenge) -> Value {
        let status = match c.status {
            ChallengeStatus::Pending => "pending",
            ChallengeStatus::Processing => "processing",
            ChallengeStatus::Valid => "valid",
            ChallengeStatus::Invalid => "invalid",
        };
        let mut v = json!({
            "type": c.kind,
            "url": self.url(ep, &format!("chall/{}/{i}", a.id)),
            "status": status,
            "token": c.token,
        });
        if let Some(t) = c.validated {
            v["validated"] = json!(rfc3339(t));
        }
        if let Some(e) = c
            .error
            .as_deref()
            .and_then(|e| serde_json::from_str::<Value>(e).ok())
        {
            v["error"] = e;
        }
        v
    }

    /// POST to an authorization: fetch it, or deactivate it (RFC 8555 §7.5, §7.5.2).
    fn authz_post(
        &self,
        ep: &Endpoint,
        jws: &Jws,
        acct: &AcmeAccount,
        id: &str,
        now: i64,
    ) -> Result<AcmeResponse> {
        let mut a = self.owned_authz(acct, id)?;
        if a.status == AuthzStatus::Pending && now >= a.expires {
            let old = a.clone();
            a.status = AuthzStatus::Expired;
            if let Err(e) = self.records()?.update_authz(&a, &old, None) {
                tracing::debug!(error = %e, "authorization changed meanwhile");
                a = self.owned_authz(acct, id)?;
            }
        }
        if !jws.is_post_as_get() {
            #[derive(Deserialize)]
            struct Deactivate {
                status: String,
            }
            let d: Deactivate = payload(jws, "authorization update")?;
            if d.status != "deactivated" {
                return Err(Error::Malformed(
                    "an authorization can only be \"deactivated\"".into(),
                ));
            }
            if !matches!(a.status, AuthzStatus::Pending | AuthzStatus::Valid) {
                return Err(Error::Malformed(format!(
                    "the authorization is {}",
                    authz_status(a.status)
                )));
            }
            let old = a.clone();
            a.status = AuthzStatus::Deactivated;
            let audit = self.audit(
                "acme-authz-deactivate",
                &format!("acme:{}/{}", ep.name, acct.id),
                &a.id,
                a.identifier.value.clone(),
            );
            st(self.records()?.update_authz(&a, &old, Some(&audit)))?;
        }
        let mut r = AcmeResponse::json(200, &self.authz_json(ep, &a));
        if a.status == AuthzStatus::Pending {
            r = r.header("Retry-After", RETRY_AFTER.to_string());
        }
        Ok(r)
    }

    /// POST to a challenge: `{}` starts its validation (RFC 8555 §7.5.1), POST-as-GET
    /// fetches it. Validation runs on its own thread; the client polls.
    fn challenge_post(
        self: &Arc<Self>,
        ep: &Endpoint,
        jws: &Jws,
        acct: &AcmeAccount,
        id: &str,
        idx: &str,
        now: i64,
    ) -> Result<AcmeResponse> {
        let mut a = self.owned_authz(acct, id)?;
        let i: usize = idx
            .parse()
            .ok()
            .filter(|i| *i < a.challenges.len())
            .ok_or_else(|| Error::NotFound("no such challenge".into()))?;
        if !jws.is_post_as_get() {
            let v: Value = payload(jws, "challenge")?;
            if !v.as_object().is_some_and(|o| o.is_empty()) {
                return Err(Error::Malformed(
                    "a challenge response is the empty object {} (RFC 8555 §7.5.1)".into(),
                ));
            }
            // One validation per authorization at a time: a second challenge started
            // while one runs stays pending (its outcome decides the authorization).
            if a.status == AuthzStatus::Pending
                && a.challenges[i].status == ChallengeStatus::Pending
                && !a
                    .challenges
                    .iter()
                    .any(|c| c.status == ChallengeStatus::Processing)
                && now < a.expires
            {
                if self.running.fetch_add(1, Ordering::SeqCst) >= MAX_VALIDATIONS {
                    self.running.fetch_sub(1, Ordering::SeqCst);
                    return Err(Error::Core {
                        problem_type: "urn:ietf:params:acme:error:rateLimited",
                        status: 503,
                        detail: "too many validations are running; try again".into(),
                    });
                }
                let old = a.clone();
                a.challenges[i].status = ChallengeStatus::Processing;
                match self.records()?.update_authz(&a, &old, None) {
                    Ok(()) => {
                        let key = account_key(acct)?;
                        self.spawn_validation(ep, a.clone(), i, key.thumbprint_b64());
                    }
                    Err(e) => {
                        self.running.fetch_sub(1, Ordering::SeqCst);
                        tracing::debug!(error = %e, "challenge started meanwhile");
                        a = self.owned_authz(acct, id)?;
                    }
                }
            }
        }
        let authz_url = self.url(ep, &format!("authz/{}", a.id));
        let mut r = AcmeResponse::json(200, &self.challenge_json(ep, &a, i, &a.challenges[i]))
            .header("Link", format!("<{authz_url}>;rel=\"up\""));
        if a.challenges[i].status == ChallengeStatus::Processing {
            r = r.header("Retry-After", RETRY_AFTER.to_string());
        }
        Ok(r)
    }

    fn spawn_validation(
        self: &Arc<Self>,
        ep: &Endpoint,
        authz: AcmeAuthz,
        i: usize,
        thumbprint: String,
    ) {
        let me = Arc::clone(self);
        let check = validation_check(ep, &authz, i, &thumbprint);
        let actor = format!("acme:{}/{}", ep.name, authz.account);
        let spawned = std::thread::Builder::new()
            .name("privca-acme-validate".into())
            .spawn(move || {
                let result = match check {
                    Ok(Check::Http01(c)) => me.validator.http01(&c),
                    Ok(Check::Dns01(c)) => me.validator.dns01(&c),
                    Ok(Check::TlsAlpn01(c)) => me.validator.tls_alpn01(&c),
                    Err(e) => Err(e),
                };
                me.finish_validation(authz, i, result, &actor);
                me.running.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            self.running.fetch_sub(1, Ordering::SeqCst);
            tracing::error!(error = %e, "could not start a validation");
        }
    }

    /// Records a validation's outcome: challenge and authorization valid, or both
    /// invalid with the problem (RFC 8555 §7.1.6, §8.2: no retry).
    fn finish_validation(
        &self,
        processing: AcmeAuthz,
        i: usize,
        result: std::result::Result<(), String>,
        actor: &str,
    ) {
        let now = self.auth.now();
        let mut a = processing.clone();
        let detail = match &result {
            Ok(()) => {
                a.status = AuthzStatus::Valid;
                a.challenges[i].status = ChallengeStatus::Valid;
                a.challenges[i].validated = Some(now);
                format!("{} valid", a.challenges[i].kind)
            }
            Err(why) => {
                a.status = AuthzStatus::Invalid;
                a.challenges[i].status = ChallengeStatus::Invalid;
                let p = Problem {
                    kind: if why.starts_with("connection") {
                        "urn:ietf:params:acme:error:connection".into()
                    } else if why.starts_with("dns:") {
                        "urn:ietf:params:acme:error:dns".into()
                    } else {
                        "urn:ietf:params:acme:error:incorrectResponse".into()
                    },
                    detail: why.clone(),
                    status: 403,
                    subproblems: Vec::new(),
                    algorithms: None,
                };
                a.challenges[i].error = Some(String::from_utf8_lossy(&p.to_json()).into_owned());
                format!("{} invalid: {why}", a.challenges[i].kind)
            }
        };
        let action = if result.is_ok() {
            "acme-validation"
        } else {
            "acme-validation-refused"
        };
        let audit = self.audit(action, actor, &a.identifier.value, detail);
        let stored = self
            .records()
            .and_then(|r| st(r.update_authz(&a, &processing, Some(&audit))));
        if let Err(e) = stored {
            tracing::warn!(error = %e, "the validation outcome was not recorded");
        }
    }

    /// finalize (RFC 8555 §7.4): the CSR must ask for exactly the order's identifiers;
    /// the certificate comes from one `Authority::enroll` call. Finalizing an order that
    /// is valid already answers it unchanged.
    fn finalize(
        &self,
        ep: &Endpoint,
        jws: &Jws,
        acct: &AcmeAccount,
        id: &str,
        now: i64,
    ) -> Result<AcmeResponse> {
        let order = self.owned_order(acct, id)?;
        let order = self.refresh_order(order, now)?;
        match order.status {
            OrderStatus::Ready => {}
            OrderStatus::Valid | OrderStatus::Processing => {
                return Ok(self.order_response(ep, &order, 200));
            }
            s => {
                return Err(Error::OrderNotReady(format!(
                    "the order is {s:?}, not ready"
                )));
            }
        }
        let csr = parse_finalize(&jws.payload)?;
        let der = csr.der.clone();
        check_csr_names(&csr, &order.identifiers)?;
        let account_spki = account_key(acct)?.spki_der()?;
        if csr.spki_der == account_spki {
            return Err(Error::BadCsr(
                "the CSR's key is the account key (RFC 8555 §11.1)".into(),
            ));
        }
        let records = self.records()?;
        let actor = format!("acme:{}/{}", ep.name, acct.id);
        let mut processing = order.clone();
        processing.status = OrderStatus::Processing;
        processing.csr_sha256 = Some(hex_sha256(&der));
        let audit = self.audit("acme-finalize", &actor, &order.id, String::new());
        match records.update_order(&processing, OrderStatus::Ready, Some(&audit)) {
            Ok(()) => {}
            Err(ca_core::acme_records::StoreError::Conflict(_)) => {
                // Another finalize won; answer the order as it is now.
                let now_order = self.owned_order(acct, id)?;
                return Ok(self.order_response(ep, &now_order, 200));
            }
            Err(e) => return Err(Error::from(ca_core::Error::Store(e))),
        }
        let policy = ep.policy(&acct.id);
        let key = format!("acme:{}/order/{}", ep.name, order.id);
        let outcome = self.auth.enroll(EnrollmentRequest {
            policy: &policy,
            requester: Requester {
                name: actor.clone(),
                authentication: Authentication::AccountKey,
            },
            csr,
            renewing: None,
            replay_key: Some(key.clone()),
            transaction_keys: Vec::new(),
            hold_key: Some(key),
            profile: order.profile.clone(),
            server_keygen: false,
            challenge: None,
            hook: None,
        });
        let mut done = processing.clone();
        let result = match outcome {
            EnrollOutcome::Issued(enrolled) => {
                done.status = OrderStatus::Valid;
                done.certificate = Some(enrolled.record.serial.clone());
                Ok(())
            }
            EnrollOutcome::Pending(held) => {
                done.pending_id = Some(held.id);
                Ok(())
            }
            EnrollOutcome::Refused(refusal) => {
                let e = match refusal.error {
                    Some(core) => Error::from(&core),
                    None => {
                        Error::from(&ca_core::Error::PolicyRefused(refusal.client_text.clone()))
                    }
                };
                done.status = OrderStatus::Invalid;
                done.error =
                    Some(String::from_utf8_lossy(&Problem::from(&e).to_json()).into_owned());
                Err(e)
            }
        };
        let audit = self.audit(
            if done.status == OrderStatus::Valid {
                "acme-order-valid"
            } else {
                "acme-order-update"
            },
            &actor,
            &order.id,
            match &done.certificate {
                Some(s) => format!("certificate {}", hex_lower(s)),
                None => format!("{:?}", done.status),
            },
        );
        st(records.update_order(&done, OrderStatus::Processing, Some(&audit)))?;
        result?;
        Ok(self.order_response(ep, &done, 200))
    }

    /// Certificate download (RFC 8555 §7.4.2): the certificate, then its issuer chain,
    /// PEM.
    fn certificate(&self, acct: &AcmeAccount, id: &str) -> Result<AcmeResponse> {
        let order = self.owned_order(acct, id)?;
        let serial = order
            .certificate
            .filter(|_| order.status == OrderStatus::Valid)
            .ok_or_else(|| Error::NotFound("the order has no certificate".into()))?;
        let record = self.auth.get(&serial)?;
        let mut pem = pem_cert(&record.der);
        for der in self.auth.chain(&record.issuer)? {
            pem.push_str(&pem_cert(&der));
        }
        Ok(AcmeResponse {
            status: 200,
            headers: vec![("Content-Type", PEM_CHAIN.into())],
            body: pem.into_bytes(),
        })
    }

    /// revokeCert (RFC 8555 §7.6): signed by the account that ordered the certificate
    /// (`kid`) or by the certificate's own key (`jwk`).
    fn revoke(&self, ep: &Endpoint, jws: &Jws) -> Result<AcmeResponse> {
        #[derive(Deserialize)]
        struct Revoke {
            certificate: String,
            #[serde(default)]
            reason: Option<u8>,
        }
        let (actor, by_account) = match &jws.protected.key {
            KeyRef::Jwk(k) => {
                jws.verify(k)?;
                (String::new(), None)
            }
            KeyRef::Kid(_) => {
                let (acct, _) = self.by_kid(ep, jws)?;
                (format!("acme:{}/{}", ep.name, acct.id), Some(acct))
            }
        };
        let r: Revoke = payload(jws, "revokeCert")?;
        let reason = match r.reason.unwrap_or(0) {
            0 => RevocationReason::Unspecified,
            1 => RevocationReason::KeyCompromise,
            3 => RevocationReason::AffiliationChanged,
            4 => RevocationReason::Superseded,
            5 => RevocationReason::CessationOfOperation,
            n => {
                return Err(Error::BadRevocationReason(format!(
                    "reason {n} is not accepted (0, 1, 3, 4, 5)"
                )));
            }
        };
        let der = b64_decode("the certificate", &r.certificate)?;
        let record = self
            .auth
            .issued_certificate(&der)?
            .ok_or_else(|| Error::NotFound("the certificate was not issued by this CA".into()))?;
        let actor = match by_account {
            Some(acct) => {
                if record.requester != actor {
                    return Err(Error::Unauthorized(
                        "the certificate was not ordered by this account".into(),
                    ));
                }
                let _ = acct;
                actor
            }
            None => {
                let KeyRef::Jwk(k) = &jws.protected.key else {
                    return Err(Error::malformed("no key"));
                };
                let cert_spki = ca_core::asn1::cert_spki_sha256(&der)?;
                if ca_core::asn1::spki_sha256(&k.spki_der()?) != cert_spki {
                    return Err(Error::Unauthorized(
                        "the request is signed neither by the ordering account nor by the certificate's key".into(),
                    ));
                }
                format!("acme:{}/certificate-key", ep.name)
            }
        };
        if record.revocation.is_some() {
            return Err(Error::AlreadyRevoked(
                "the certificate is revoked already".into(),
            ));
        }
        self.auth
            .revoke_with(&record.serial, RevokeOptions::reason(reason), &actor)?;
        Ok(AcmeResponse::empty(200))
    }
}

/// A newOrder payload (RFC 8555 §7.4) read and normalised: `dns` names lowercased,
/// `ip` addresses (RFC 8738 §3) in canonical form, duplicates removed. The profile's
/// rules are not applied here.
#[derive(Debug)]
pub struct NewOrderRequest {
    /// The identifiers, each with the SAN it stands for.
    pub identifiers: Vec<(AcmeIdentifier, San)>,
    /// Identifiers refused by their form alone (an `ip` that is no address, a `*` that
    /// is not a whole left-most label), as `rejectedIdentifier`/`malformed` subproblems.
    pub refused: Vec<Subproblem>,
    /// The profile asked for (draft-ietf-acme-profiles).
    pub profile: Option<String>,
    /// The certificate the order replaces, as its ARI certID (RFC 9773 §5), unchecked.
    pub replaces: Option<String>,
}

/// What validating challenge `i` of `authz` means (RFC 8555 §8.1: the key
/// authorization is `token.thumbprint`): where to connect or what to look up, and what
/// must be found. `Err`: the challenge cannot be validated as recorded.
fn validation_check(
    ep: &Endpoint,
    authz: &AcmeAuthz,
    i: usize,
    thumbprint: &str,
) -> std::result::Result<Check, String> {
    let c = &authz.challenges[i];
    let key_authorization = format!("{}.{thumbprint}", c.token);
    let timeout = Duration::from_secs(ep.cfg.validation_timeout_seconds);
    let ident = &authz.identifier;
    let ip: Option<IpAddr> = match ident.kind.as_str() {
        "ip" => Some(
            ident
                .value
                .parse()
                .map_err(|_| format!("{:?} is not an IP address", ident.value))?,
        ),
        _ => None,
    };
    let address = ip.or_else(|| ep.cfg.resolve.get(&ident.value).copied());
    let digest: [u8; 32] =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| "SHA-256 is not 32 bytes".to_string())?;
    match c.kind.as_str() {
        HTTP_01 => Ok(Check::Http01(Http01Check {
            host: ident.value.clone(),
            address,
            port: ep.cfg.http01_port,
            token: c.token.clone(),
            key_authorization,
            timeout,
        })),
        DNS_01 if ip.is_none() => {
            let base = ident.value.strip_prefix("*.").unwrap_or(&ident.value);
            Ok(Check::Dns01(Dns01Check {
                name: format!("_acme-challenge.{base}"),
                expected: b64_encode(&digest),
                resolver: ep.cfg.dns_resolver,
                timeout,
            }))
        }
        TLS_ALPN_01 if !ident.value.starts_with("*.") => Ok(Check::TlsAlpn01(TlsAlpn01Check {
            identifier: match ip {
                Some(ip) => San::Ip(ip),
                None => San::Dns(ident.value.clone()),
            },
            sni: match ip {
                Some(ip) => reverse_name(ip),
                None => ident.value.clone(),
            },
            address,
            port: ep.cfg.tls_alpn01_port,
            digest,
            timeout,
        })),
        other => Err(format!(
            "challenge type {other:?} does not apply to {} {:?}",
            ident.kind, ident.value
        )),
    }
}

/// Reads an ARI certID (RFC 9773 §4.1): `base64url(keyIdentifier).base64url(serial)`,
/// the serial the DER INTEGER content octets. Returns the canonical form (unpadded
/// base64url) with both parts decoded.
pub fn parse_cert_id(id: &str) -> Result<(String, Vec<u8>, Vec<u8>)> {
    if id.is_empty() || id.len() > MAX_CERT_ID {
        return Err(Error::Malformed(format!(
            "a certID is 1 to {MAX_CERT_ID} characters (RFC 9773 §4.1)"
        )));
    }
    let (aki, serial) = id.split_once('.').ok_or_else(|| {
        Error::Malformed(
            "a certID is base64url(AKI) \".\" base64url(serial) (RFC 9773 §4.1)".into(),
        )
    })?;
    let aki = b64_decode("certID keyIdentifier", aki.trim_end_matches('='))?;
    let serial = b64_decode("certID serial", serial.trim_end_matches('='))?;
    if aki.is_empty() || serial.is_empty() {
        return Err(Error::Malformed(
            "a certID names a key identifier and a serial number (RFC 9773 §4.1)".into(),
        ));
    }
    Ok((
        format!("{}.{}", b64_encode(&aki), b64_encode(&serial)),
        aki,
        serial,
    ))
}

/// The ARI certID of a certificate (RFC 9773 §4.1): its authorityKeyIdentifier's
/// keyIdentifier and its serial number.
pub fn cert_id_of(der: &[u8]) -> Result<String> {
    use der::Decode;
    use x509_cert::ext::pkix::AuthorityKeyIdentifier;
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| Error::Malformed(format!("a stored certificate does not parse: {e}")))?;
    let tbs = cert.tbs_certificate();
    let aki = tbs
        .extensions()
        .into_iter()
        .flatten()
        .find(|e| e.extn_id == ca_core::asn1::oid::AUTHORITY_KEY_IDENTIFIER)
        .and_then(|e| AuthorityKeyIdentifier::from_der(e.extn_value.as_bytes()).ok())
        .and_then(|a| a.key_identifier)
        .ok_or_else(|| {
            Error::Malformed("the certificate has no authority key identifier".into())
        })?;
    Ok(format!(
        "{}.{}",
        b64_encode(aki.as_bytes()),
        b64_encode(tbs.serial_number().as_bytes())
    ))
}

/// Reads a newOrder payload. `notBefore`/`notAfter` are refused (the profile sets the
/// validity), as are empty or oversized identifier lists and identifier types other
/// than `dns` and `ip` (`unsupportedIdentifier`).
pub fn parse_new_order(payload: &[u8]) -> Result<NewOrderRequest> {
    #[derive(Deserialize)]
    struct Ident {
        #[serde(rename = "type")]
        kind: String,
        value: String,
    }
    #[derive(Deserialize)]
    struct NewOrder {
        identifiers: Vec<Ident>,
        #[serde(default, rename = "notBefore")]
        not_before: Option<Value>,
        #[serde(default, rename = "notAfter")]
        not_after: Option<Value>,
        #[serde(default)]
        profile: Option<String>,
        #[serde(default)]
        replaces: Option<String>,
    }
    let p: NewOrder = serde_json::from_slice(payload)
        .map_err(|e| Error::Malformed(format!("the newOrder payload is not valid: {e}")))?;
    if p.not_before.is_some() || p.not_after.is_some() {
        return Err(Error::Malformed(
            "notBefore and notAfter are not supported: the profile sets the validity".into(),
        ));
    }
    if p.identifiers.is_empty() || p.identifiers.len() > MAX_IDENTIFIERS {
        return Err(Error::Malformed(format!(
            "an order has 1 to {MAX_IDENTIFIERS} identifiers"
        )));
    }
    let mut out = NewOrderRequest {
        identifiers: Vec::new(),
        refused: Vec::new(),
        profile: p.profile,
        replaces: p.replaces,
    };
    for i in p.identifiers {
        let (ident, san) = match i.kind.as_str() {
            "dns" => {
                let v = i.value.to_ascii_lowercase();
                (
                    AcmeIdentifier {
                        kind: "dns".into(),
                        value: v.clone(),
                    },
                    San::Dns(v),
                )
            }
            "ip" => match i.value.parse::<IpAddr>() {
                Ok(ip) => (
                    AcmeIdentifier {
                        kind: "ip".into(),
                        value: ip.to_string(),
                    },
                    San::Ip(ip),
                ),
                Err(_) => {
                    out.refused.push(subproblem(
                        "urn:ietf:params:acme:error:malformed",
                        format!("{:?} is not an IP address (RFC 8738 §3)", i.value),
                        &i.kind,
                        &i.value,
                    ));
                    continue;
                }
            },
            other => {
                return Err(Error::UnsupportedIdentifier(format!(
                    "identifier type {other:?} is not supported (dns, ip)"
                )));
            }
        };
        if out.identifiers.iter().any(|(seen, _)| *seen == ident) {
            continue;
        }
        // A wildcard is one leading "*." label (RFC 8555 §7.1.3); anywhere else a "*"
        // is no DNS name. Whether the profile allows wildcards is its SAN rules' say.
        let rest = ident.value.strip_prefix("*.").unwrap_or(&ident.value);
        if ident.kind == "dns" && (rest.is_empty() || rest.contains('*')) {
            out.refused.push(subproblem(
                "urn:ietf:params:acme:error:rejectedIdentifier",
                format!(
                    "{:?}: a wildcard is only a whole left-most label, \"*.\" then a name",
                    ident.value
                ),
                &ident.kind,
                &ident.value,
            ));
            continue;
        }
        out.identifiers.push((ident, san));
    }
    Ok(out)
}

/// Reads a finalize payload (RFC 8555 §7.4): `csr`, base64url DER, whose signature must
/// verify; anything wrong with it is `badCSR`.
pub fn parse_finalize(payload: &[u8]) -> Result<ca_core::csr::Csr> {
    #[derive(Deserialize)]
    struct Finalize {
        csr: String,
    }
    let f: Finalize = serde_json::from_slice(payload)
        .map_err(|e| Error::Malformed(format!("the finalize payload is not valid: {e}")))?;
    let der = b64_decode("the CSR", &f.csr).map_err(|e| Error::BadCsr(e.to_string()))?;
    ca_core::csr::parse(&der).map_err(|e| Error::BadCsr(e.client_message()))
}

fn authz_status(s: AuthzStatus) -> &'static str {
    match s {
        AuthzStatus::Pending => "pending",
        AuthzStatus::Valid => "valid",
        AuthzStatus::Invalid => "invalid",
        AuthzStatus::Deactivated => "deactivated",
        AuthzStatus::Expired => "expired",
        AuthzStatus::Revoked => "revoked",
    }
}

fn subproblem(kind: &str, detail: String, ident_kind: &str, value: &str) -> Subproblem {
    Subproblem {
        kind: kind.into(),
        detail,
        identifier: Some(problem::Identifier {
            kind: ident_kind.into(),
            value: value.into(),
        }),
    }
}

fn account_key(a: &AcmeAccount) -> Result<Jwk> {
    let v: Value = serde_json::from_str(&a.jwk).map_err(|_| {
        Error::from(ca_core::Error::Internal(
            "a stored account key is not JSON".into(),
        ))
    })?;
    Jwk::from_value(&v)
}

/// Checks `mailto:` contacts (RFC 8555 §7.3): one plain address each (RFC 6068 without
/// `hfields`), valid as an rfc822Name.
fn check_contacts(contacts: Vec<String>) -> Result<Vec<String>> {
    if contacts.len() > MAX_CONTACTS {
        return Err(Error::InvalidContact {
            unsupported: false,
            detail: format!("at most {MAX_CONTACTS} contacts"),
        });
    }
    for c in &contacts {
        let Some(addr) = c.strip_prefix("mailto:") else {
            return Err(Error::InvalidContact {
                unsupported: true,
                detail: format!("contact {c:?}: only mailto: is supported"),
            });
        };
        if addr.contains([',', '?', '%']) || San::parse(&format!("email:{addr}")).is_err() {
            return Err(Error::InvalidContact {
                unsupported: false,
                detail: format!("contact {c:?} is not one plain mail address"),
            });
        }
    }
    Ok(contacts)
}

/// The CSR must name exactly the order's identifiers (RFC 8555 §7.4): its DNS and IP
/// SANs as a set equal them, a subject CN must be one of them, and it asks for no
/// other kind of name.
pub fn check_csr_names(csr: &ca_core::csr::Csr, identifiers: &[AcmeIdentifier]) -> Result<()> {
    let mut asked: Vec<AcmeIdentifier> = Vec::new();
    for san in &csr.sans {
        let ident = match san {
            San::Dns(d) => AcmeIdentifier {
                kind: "dns".into(),
                value: d.to_ascii_lowercase(),
            },
            San::Ip(ip) => AcmeIdentifier {
                kind: "ip".into(),
                value: ip.to_string(),
            },
            other => {
                return Err(Error::BadCsr(format!(
                    "the CSR asks for {}, which is not an identifier of the order",
                    other.display()
                )));
            }
        };
        if !asked.contains(&ident) {
            asked.push(ident);
        }
    }
    let mut want = identifiers.to_vec();
    want.sort();
    asked.sort();
    if asked != want {
        return Err(Error::BadCsr(
            "the CSR's names are not exactly the order's identifiers".into(),
        ));
    }
    for text in ca_core::profile::common_names(&csr.subject) {
        let lower = text.to_ascii_lowercase();
        if !identifiers.iter().any(|i| i.value == lower) {
            return Err(Error::BadCsr(format!(
                "the CSR's common name {text:?} is not an identifier of the order"
            )));
        }
    }
    Ok(())
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_sha256(b: &[u8]) -> String {
    hex_lower(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b).as_ref())
}

fn pem_cert(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap_or_default()
}
