//! HTTP: publishing (CRLs, CA certificates), the OCSP responder, health, and the admin
//! API, on hyper 1 + axum with our own accept loop (header timeout, body limit, request
//! timeout, graceful shutdown; DESIGN.md decision 8).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ca_core::{Authority, ErrorKind};
use serde::Serialize;
use sha2::Digest;

use crate::ops;

/// Shared state of the handlers.
pub struct AppState {
    /// The authority.
    pub auth: Arc<Authority>,
    /// SHA-256 of the admin token (compared in constant time).
    pub admin_token_hash: [u8; 32],
    /// Admin API only for loopback peers.
    pub admin_loopback_only: bool,
    /// `[scep]`, for the one-time challenge admin operation.
    pub scep: scep::config::ScepConfig,
    /// The key store, probed by `/healthz` (a PKCS#11 token can go away).
    pub keys: Option<Arc<dyn hsm::KeyStore>>,
    /// Periodic test signatures with the CA, OCSP, RA and HTTPS listener keys, whose
    /// cached outcome `/healthz` reports (it never waits for the key backend).
    pub key_probe: Option<Arc<hsm::probe::KeyProbe>>,
}

/// Listener limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest body.
    pub max_body_bytes: usize,
    /// Header read timeout.
    pub header_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// How long a connection may stay open with no request in progress: before its first
    /// request (after the TLS handshake) and between keep-alive requests, HTTP/1 and /2.
    pub idle_timeout: Duration,
    /// Most connections one listener holds open at once; further ones wait in the
    /// kernel's listen backlog until one closes.
    pub max_connections: usize,
    /// Most connections from one client address (IPv6: one /64) per listener; more are
    /// closed at once. 0: no per-client limit.
    pub max_connections_per_client: usize,
}

/// SHA-256 of a token.
pub fn token_hash(token: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(token).into()
}

/// How long a request whose certificate is being recorded when its timeout fires may
/// still take before the answer is given up on (the record is then durable or failed).
const COMMIT_GRACE: Duration = Duration::from_secs(120);

/// Adds the per-request limits every listener applies (request timeout, declared body
/// size, request span).
///
/// The request timeout is also the request's [`ca_core::deadline::Deadline`]: when it
/// fires before the issuance pipeline started its durable record, the pipeline will record
/// nothing and the client gets 503 "request timed out"; when the record has started, the
/// answer waits for it (so "timed out" never hides an issued certificate).
pub fn with_limits<S: Clone + Send + Sync + 'static>(r: Router<S>, limits: Limits) -> Router<S> {
    r.layer(middleware::from_fn(move |req: Request, next: Next| {
        let t = limits.request_timeout;
        async move {
            let deadline = ca_core::deadline::Deadline::new(std::time::Instant::now() + t);
            let run = deadline.run(next.run(req));
            tokio::pin!(run);
            match tokio::time::timeout(t, &mut run).await {
                Ok(r) => r,
                Err(_) if deadline.give_up() => {
                    timed_out()
                }
                Err(_) => {
                    tracing::info!("request timeout reached while its record is being committed; answering when it is done");
                    match tokio::time::timeout(COMMIT_GRACE, run).await {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::error!("a request's record did not commit within {} s", COMMIT_GRACE.as_secs());
                            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                        }
                    }
                }
            }
        }
    }))
    .layer(middleware::from_fn(move |req: Request, next: Next| {
        refuse_declared_oversize(req, next, limits.max_body_bytes)
    }))
    .layer(middleware::from_fn(trace_request))
}

fn timed_out() -> Response {
    let mut r = plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "request timed out; nothing was issued",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

/// Answers 413 as soon as a request's `Content-Length` exceeds `max` (RFC 9110 §15.5.14),
/// before anything polls the body: hyper sends `100 Continue` only when the body is first
/// read (RFC 9110 §10.1.1 lets a server answer a final status instead), so a client that
/// waits for it learns at once, and nobody streams a body that will be thrown away. The
/// connection is closed after the answer, because the unread body is still on it.
async fn refuse_declared_oversize(req: Request, next: Next, max: usize) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > max as u64 => {
            let mut r = plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the request body is larger than {max} bytes"),
            );
            if req.version() < axum::http::Version::HTTP_2 {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            r
        }
        _ => next.run(req).await,
    }
}

/// The router with every route.
pub fn router(state: Arc<AppState>, limits: Limits) -> Router {
    router_with(state, limits, Router::new())
}

/// The router with every route plus `extra` (protocol routes such as SCEP), all under
/// the same limits.
pub fn router_with(state: Arc<AppState>, limits: Limits, extra: Router) -> Router {
    let admin = Router::new()
        .route("/certificates", get(admin_list).post(admin_issue))
        .route("/certificates/{serial}", get(admin_show))
        .route("/certificates/{serial}/revoke", post(admin_revoke))
        .route("/crl", post(admin_crl_all))
        .route("/crl/{ca}", post(admin_crl))
        .route("/profiles", get(admin_profiles))
        .route("/audit/verify", get(admin_audit_verify))
        .route("/scep/challenges", post(admin_scep_challenge))
        .route("/requests", get(admin_requests))
        .route("/requests/{id}/approve", post(admin_approve))
        .route("/requests/{id}/reject", post(admin_reject))
        .layer(middleware::from_fn_with_state(state.clone(), admin_auth));
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/crl/{file}", get(crl))
        .route("/ca/{file}", get(ca_cert))
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/", post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .nest("/admin/v1", admin)
        .merge(extra.with_state(()))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    with_limits(routes, limits).with_state(state)
}

async fn trace_request(req: Request, next: Next) -> Response {
    let id: u64 = rand::random();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", id = format_args!("{id:016x}"), %method, path = %truncate(&path, 128));
    let _enter = span.clone().entered();
    drop(_enter);
    let resp = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    span.in_scope(|| tracing::info!(status = resp.status().as_u16(), "done"));
    resp
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn plain(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{msg}\n"),
    )
        .into_response()
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

/// Maps an authority error to an HTTP status; internal detail is logged, not sent.
fn error_response(e: &ca_core::Error) -> Response {
    // The status from the one mapping of error kinds (ca_core::ErrorKind::answer).
    let status = StatusCode::from_u16(e.kind().answer().http_status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match e.kind() {
        ErrorKind::Unavailable => tracing::warn!(error = %e, "temporarily unavailable"),
        ErrorKind::Internal => tracing::error!(error = %e, "internal error"),
        _ => {}
    }
    let mut r = (
        status,
        axum::Json(ErrorBody {
            error: e.client_message(),
        }),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(ca_core::RETRY_AFTER_SECONDS),
        );
    }
    r
}

/// Runs a blocking authority call on the blocking pool.
async fn blocking<T, F>(state: &Arc<AppState>, f: F) -> Result<T, Response>
where
    T: Send + 'static,
    F: FnOnce(&Authority) -> Result<T, ca_core::Error> + Send + 'static,
{
    let auth = state.auth.clone();
    match ca_core::deadline::spawn_blocking(move || f(&auth)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error_response(&e)),
        Err(e) => {
            tracing::error!(error = %e, "blocking task failed");
            Err(plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
        }
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    authorities: Vec<String>,
    certificates: u64,
    revoked: u64,
    audit_entries: u64,
    /// Whether the store takes writes.
    store: StoreHealth,
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<KeysHealth>,
}

/// The store's state in `/healthz`.
#[derive(Serialize)]
struct StoreHealth {
    /// `ok` or `unavailable` (writes fail: disk full or failing).
    status: &'static str,
    /// Why, when unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The key backend's state in `/healthz`.
#[derive(Serialize)]
struct KeysHealth {
    /// `soft` or `pkcs11`.
    backend: &'static str,
    /// `ok` or `unavailable`.
    status: &'static str,
    /// Why it is unavailable (no secrets: module, token and `CKR_…` codes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Each probed key (`ca:<name>`, `ocsp:<name>`, `ra:<name>`, `scep-ra:<endpoint>`,
    /// `https`) with the outcome of its last test signature.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    probed: Vec<ProbedKey>,
}

#[derive(Serialize)]
struct ProbedKey {
    name: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The key backend's state: the backend's own connection state (no PKCS#11 call) and the
/// cached outcome of the periodic test signatures ([`hsm::probe::KeyProbe`]). Never waits
/// for the backend: neither a busy session pool nor a hanging signature delays `/healthz`.
fn keys_health(state: &AppState) -> Option<KeysHealth> {
    let keys = state.keys.as_ref()?;
    let backend = keys.backend_name();
    let report = state.key_probe.as_ref().map(|p| p.report());
    let error = keys
        .health()
        .err()
        .map(|e| e.to_string())
        .or_else(|| report.as_ref().and_then(|r| r.first_error()));
    let probed = report
        .map(|r| {
            r.keys
                .into_iter()
                .map(|k| ProbedKey {
                    name: k.name,
                    status: if k.ok { "ok" } else { "unavailable" },
                    error: k.error,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(KeysHealth {
        backend,
        status: if error.is_none() { "ok" } else { "unavailable" },
        error,
        probed,
    })
}

/// `/healthz`: 200 with JSON when the store and the key backend work, 503 otherwise.
/// The store works when it can be read and takes writes ([`store::Store::check_writable`],
/// which after a storage failure retries a 1 MiB write, so that the answer turns to 200 by
/// itself once the disk has space again).
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let keys = keys_health(&state);
    match blocking(&state, |a| {
        let store = match a.store().check_writable() {
            Ok(()) => StoreHealth {
                status: "ok",
                error: None,
            },
            Err(e) => {
                // The detail (paths, OS errors) goes to the log, not to this public page.
                tracing::warn!(error = %e, "healthz: the store does not take writes");
                StoreHealth {
                    status: "unavailable",
                    error: Some("writes fail: disk full or I/O error (see the log)".into()),
                }
            }
        };
        let s = a.store().stats()?;
        Ok(Health {
            status: "ok",
            authorities: a.authorities().keys().cloned().collect(),
            certificates: s.certificates,
            revoked: s.revoked,
            audit_entries: s.audit_entries,
            store,
            keys: None,
        })
    })
    .await
    {
        Ok(mut h) => {
            let keys_down = keys.as_ref().is_some_and(|k| k.status != "ok");
            let store_down = h.store.status != "ok";
            h.keys = keys;
            if store_down {
                h.status = "unavailable";
                let mut r = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(h)).into_response();
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(ca_core::RETRY_AFTER_SECONDS),
                );
                r
            } else if keys_down {
                h.status = "unavailable";
                (StatusCode::SERVICE_UNAVAILABLE, axum::Json(h)).into_response()
            } else {
                axum::Json(h).into_response()
            }
        }
        Err(_) => plain(StatusCode::SERVICE_UNAVAILABLE, "store unavailable"),
    }
}

fn http_date(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn set(h: &mut HeaderMap, name: header::HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(name, v);
    }
}

/// `GET /crl/<ca>.crl`: the CA's current CRL, DER (RFC 5280 §5, RFC 2585 §4.2).
async fn crl(State(state): State<Arc<AppState>>, Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".crl").map(str::to_string) else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    if !state.auth.authorities().contains_key(&name) {
        return plain(StatusCode::NOT_FOUND, "no such authority");
    }
    let refresh = state.auth.settings().crl_refresh;
    match blocking(&state, move |a| a.current_crl(&name)).await {
        Ok(c) => {
            let now = state.auth.now();
            let mut h = HeaderMap::new();
            set(&mut h, header::CONTENT_TYPE, "application/pkix-crl".into());
            set(&mut h, header::LAST_MODIFIED, http_date(c.this_update));
            set(&mut h, header::EXPIRES, http_date(c.next_update));
            let max_age = (c.this_update + refresh).min(c.next_update) - now;
            set(
                &mut h,
                header::CACHE_CONTROL,
                format!("public, max-age={}", max_age.max(0)),
            );
            (StatusCode::OK, h, c.der).into_response()
        }
        Err(r) => r,
    }
}

/// `GET /ca/<ca>.crt` (DER, `application/pkix-cert`, RFC 2585 §4.1) and
/// `GET /ca/<ca>.pem` (the chain, PEM).
async fn ca_cert(State(state): State<Arc<AppState>>, Path(file): Path<String>) -> Response {
    if let Some(name) = file.strip_suffix(".crt") {
        return match state.auth.authorities().get(name) {
            Some(ca) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/pkix-cert")],
                ca.cert_der.clone(),
            )
                .into_response(),
            None => plain(StatusCode::NOT_FOUND, "no such authority"),
        };
    }
    if let Some(name) = file.strip_suffix(".pem") {
        return match state.auth.chain(name) {
            Ok(chain) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
                chain
                    .iter()
                    .map(|c| ops::pem("CERTIFICATE", c))
                    .collect::<String>(),
            )
                .into_response(),
            Err(_) => plain(StatusCode::NOT_FOUND, "no such authority"),
        };
    }
    plain(StatusCode::NOT_FOUND, "not found")
}

/// `POST /ocsp` with an `application/ocsp-request` body (RFC 6960 Appendix A.1).
async fn ocsp_post(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim().eq_ignore_ascii_case("application/ocsp-request"));
    if !ct_ok {
        return ocsp_reply(
            &state,
            ca_core::ocsp::OcspAnswer {
                der: ca_core::ocsp::error_response(ca_core::ocsp::ResponseStatus::MalformedRequest),
                status: ca_core::ocsp::ResponseStatus::MalformedRequest,
                this_update: 0,
                next_update: 0,
                nonced: false,
                statuses: Vec::new(),
            },
        );
    }
    ocsp_answer(&state, body.to_vec()).await
}

/// `GET /ocsp/<url-encoded base64 DER>` (RFC 6960 Appendix A.1, RFC 9919 §5). The whole
/// rest of the path is taken, percent-decoded, and base64-decoded with or without padding,
/// because clients often leave `/`, `+` and `=` unescaped.
async fn ocsp_get(State(state): State<Arc<AppState>>, Path(request): Path<String>) -> Response {
    // axum percent-decodes path parameters already.
    match ca_core::ocsp::decode_get_request(&request) {
        Ok(der) => ocsp_answer(&state, der).await,
        Err(_) => ocsp_reply(
            &state,
            ca_core::ocsp::OcspAnswer {
                der: ca_core::ocsp::error_response(ca_core::ocsp::ResponseStatus::MalformedRequest),
                status: ca_core::ocsp::ResponseStatus::MalformedRequest,
                this_update: 0,
                next_update: 0,
                nonced: false,
                statuses: Vec::new(),
            },
        ),
    }
}

async fn ocsp_answer(state: &Arc<AppState>, der: Vec<u8>) -> Response {
    match blocking(state, move |a| Ok(a.ocsp(&der))).await {
        Ok(answer) => ocsp_reply(state, answer),
        Err(r) => r,
    }
}

/// Builds the HTTP reply with RFC 9919 §6 cache headers for non-nonced, successful
/// responses; nonced ones must not be cached.
fn ocsp_reply(state: &Arc<AppState>, a: ca_core::ocsp::OcspAnswer) -> Response {
    let mut h = HeaderMap::new();
    set(
        &mut h,
        header::CONTENT_TYPE,
        "application/ocsp-response".into(),
    );
    if a.status == ca_core::ocsp::ResponseStatus::Successful && !a.nonced {
        let now = state.auth.now();
        set(&mut h, header::LAST_MODIFIED, http_date(a.this_update));
        set(&mut h, header::EXPIRES, http_date(a.next_update));
        set(
            &mut h,
            header::ETAG,
            format!("\"{}\"", hex::encode(&sha2::Sha256::digest(&a.der)[..16])),
        );
        set(
            &mut h,
            header::CACHE_CONTROL,
            format!(
                "max-age={}, public, no-transform, must-revalidate",
                (a.next_update - now).max(0)
            ),
        );
    } else {
        set(&mut h, header::CACHE_CONTROL, "no-store".into());
    }
    (StatusCode::OK, h, a.der).into_response()
}

/// Admin API authentication: `Authorization: Bearer <token>`, compared in constant time
/// over SHA-256 digests; loopback peers only unless configured otherwise.
async fn admin_auth(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    if state.admin_loopback_only && !peer.ip().is_loopback() {
        return plain(
            StatusCode::FORBIDDEN,
            "the admin API is served to loopback clients only",
        );
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| token_hash(t.trim().as_bytes()));
    let Some(presented) = presented else {
        let mut r = plain(StatusCode::UNAUTHORIZED, "admin token required");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    };
    let diff = presented
        .iter()
        .zip(state.admin_token_hash.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        // Unauthenticated: counted and summarised, not audited one by one (issue item 6).
        let auth = state.auth.clone();
        let source = peer.ip().to_string();
        let _ = tokio::task::spawn_blocking(move || {
            auth.note_unauthenticated("admin-refused", &source, "wrong admin token")
        })
        .await;
        // RFC 6750 §3: a 401 carries the challenge, also for a token that is wrong.
        let mut r = plain(StatusCode::UNAUTHORIZED, "wrong admin token");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        return r;
    }
    next.run(req).await
}

async fn admin_scep_challenge(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let input: crate::scep_wiring::ChallengeInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => return error_response(&ca_core::Error::BadRequest(format!("request body: {e}"))),
    };
    let scep = state.scep.clone();
    match blocking(&state, move |a| {
        crate::scep_wiring::create_challenge(a, &scep, &input, "admin-api")
    })
    .await
    {
        Ok(v) => json(v),
        Err(r) => r,
    }
}

fn json<T: Serialize>(v: T) -> Response {
    axum::Json(v).into_response()
}

async fn admin_list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ops::ListQuery>,
) -> Response {
    match blocking(&state, move |a| ops::list(a, &q)).await {
        Ok(v) => json(v),
        Err(r) => r,
    }
}

async fn admin_issue(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let input: ops::IssueInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => return error_response(&ca_core::Error::BadRequest(format!("request body: {e}"))),
    };
    match blocking(&state, move |a| ops::issue(a, &input, "admin-api")).await {
        Ok(v) => (StatusCode::CREATED, axum::Json(v)).into_response(),
        Err(r) => r,
    }
}

#[derive(serde::Deserialize)]
struct RequestsQuery {
    state: Option<String>,
}

async fn admin_requests(
    State(state): State<Arc<AppState>>,
    Query(q): Query<RequestsQuery>,
) -> Response {
    match blocking(&state, move |a| ops::list_requests(a, q.state.as_deref())).await {
        Ok(v) => json(v),
        Err(r) => r,
    }
}

async fn admin_approve(State(state): State<Arc<AppState>>, Path(id): Path<u64>) -> Response {
    match blocking(&state, move |a| ops::approve_request(a, id, "admin-api")).await {
        Ok(v) => json(v),
        Err(r) => r,
    }
}

async fn admin_reject(
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    let input: ops::RejectInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => return error_response(&ca_core::Error::BadRequest(format!("request body: {e}"))),
    };
    match blocking(&state, move |a| {
        ops::reject_request(a, id, &input, "admin-api")
    })
    .await
    {
        Ok(v) => json(v),
        Err(r) => r,
    }
}

async fn admin_show(State(state): State<Arc<AppState>>, Path(serial): Path<String>) -> Response {
    match blocking(&state, move |a| ops::show(a, &serial)).await {
        Ok(v) => json(v),
        Err(r) => r,
    }
}

async fn admin_revoke(
    State(state): State<Arc<AppState>>,
    Path(serial): Path<String>,
    body: Bytes,
) -> Response {
    let input: ops::RevokeInput = if body.is_empty() {
        ops::RevokeInput { reason: None }
    } else {
        match serde_json::from_slice(&body) {
            Ok(i) => i,
            Err(e) => {
                return error_response(&ca_core::Error::BadRequest(format!("request body: {e}")));
            }
        }
    };
    match blocking(&state, move |a| {
        ops::revoke(a, &serial, &input, "admin-api")
    })
    .await
    {
        Ok(v) => json(v),
        Err(r) => r,
    }
}

async fn admin_crl(State(state): State<Arc<AppState>>, Path(ca): Path<String>) -> Response {
    match blocking(&state, move |a| ops::crl(a, Some(&ca), "admin-api")).await {
        Ok(v) => json(v),
        Err(r) => r,
    }
}

async fn admin_crl_all(State(state): State<Arc<AppState>>) -> Response {
    match blocking(&state, move |a| ops::crl(a, None, "admin-api")).await {
        Ok(v) => json(v),
        Err(r) => r,
    }
}

async fn admin_profiles(State(state): State<Arc<AppState>>) -> Response {
    match blocking(&state, |a| Ok(ops::profiles(a))).await {
        Ok(v) => json(v),
        Err(r) => r,
    }
}

async fn admin_audit_verify(State(state): State<Arc<AppState>>) -> Response {
    match blocking(&state, ops::audit_verify).await {
        Ok(v) => json(v),
        Err(r) => r,
    }
}

pub use crate::listener::{TlsAccept, serve, serve_with};
