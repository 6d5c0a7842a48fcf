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
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use sha2::Digest;
use tokio::net::TcpListener;
use tower::ServiceExt;

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
}

/// SHA-256 of a token.
pub fn token_hash(token: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(token).into()
}

/// Adds the per-request limits every listener applies (request timeout, request span).
pub fn with_limits<S: Clone + Send + Sync + 'static>(r: Router<S>, limits: Limits) -> Router<S> {
    r.layer(middleware::from_fn(move |req: Request, next: Next| {
        let t = limits.request_timeout;
        async move {
            match tokio::time::timeout(t, next.run(req)).await {
                Ok(r) => r,
                Err(_) => plain(StatusCode::SERVICE_UNAVAILABLE, "request timed out"),
            }
        }
    }))
    .layer(middleware::from_fn(trace_request))
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
    let status = match e.kind() {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::PolicyRefused => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Internal => {
            tracing::error!(error = %e, "internal error");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    (
        status,
        axum::Json(ErrorBody {
            error: e.client_message(),
        }),
    )
        .into_response()
}

/// Runs a blocking authority call on the blocking pool.
async fn blocking<T, F>(state: &Arc<AppState>, f: F) -> Result<T, Response>
where
    T: Send + 'static,
    F: FnOnce(&Authority) -> Result<T, ca_core::Error> + Send + 'static,
{
    let auth = state.auth.clone();
    match tokio::task::spawn_blocking(move || f(&auth)).await {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<KeysHealth>,
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
}

/// Probes the key backend on the blocking pool (PKCS#11 calls block); bounded by the
/// backend's own backoff and by the request timeout.
async fn keys_health(keys: Option<Arc<dyn hsm::KeyStore>>) -> Option<KeysHealth> {
    let keys = keys?;
    let backend = keys.backend_name();
    let probe = tokio::task::spawn_blocking(move || keys.health()).await;
    Some(match probe {
        Ok(Ok(())) => KeysHealth {
            backend,
            status: "ok",
            error: None,
        },
        Ok(Err(e)) => KeysHealth {
            backend,
            status: "unavailable",
            error: Some(e.to_string()),
        },
        Err(e) => KeysHealth {
            backend,
            status: "unavailable",
            error: Some(format!("probe failed: {e}")),
        },
    })
}

/// `/healthz`: 200 with JSON when the store and the key backend work, 503 otherwise.
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let keys = keys_health(state.keys.clone()).await;
    match blocking(&state, |a| {
        let s = a.store().stats()?;
        Ok(Health {
            status: "ok",
            authorities: a.authorities().keys().cloned().collect(),
            certificates: s.certificates,
            revoked: s.revoked,
            audit_entries: s.audit_entries,
            keys: None,
        })
    })
    .await
    {
        Ok(mut h) => {
            let keys_down = keys.as_ref().is_some_and(|k| k.status != "ok");
            h.keys = keys;
            if keys_down {
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
        let e = ca_core::Error::Unauthorized("wrong admin token".into());
        let auth = state.auth.clone();
        let peer_s = peer.to_string();
        let _ = tokio::task::spawn_blocking(move || {
            auth.audit_refusal("admin-refused", &peer_s, "admin-api", &e)
        })
        .await;
        return plain(StatusCode::UNAUTHORIZED, "wrong admin token");
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

/// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (up to `grace`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    serve_with(listener, router, limits, shutdown, grace, None).await
}

/// TLS for [`serve_with`]: the acceptor and the time a client has for its handshake.
#[derive(Clone)]
pub struct TlsAccept {
    /// The rustls acceptor.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Handshake timeout (slow clients are dropped, others keep being served).
    pub handshake_timeout: Duration,
}

/// The one accept loop of every listener, plain or TLS: per connection it (for TLS)
/// completes the handshake within its timeout and puts [`est::TlsInfo`] (peer chain,
/// RFC 9266 exporter) into each request's extensions, then serves HTTP with the header
/// timeout, keep-alive and graceful shutdown of `limits`.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
    tls: Option<TlsAccept>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Without TCP_NODELAY the TLS handshake's several small writes meet the
                // client's delayed ACK: 40 ms per new connection (measured by bench est).
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY");
                }
                let router = router.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let Some(tls) = tls else {
                        serve_connection(&builder, watcher, TokioIo::new(stream), router, peer, None).await;
                        return;
                    };
                    let stream = match tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let info = crate::tls::connection_info(stream.get_ref().1);
                    serve_connection(&builder, watcher, TokioIo::new(stream), router, peer, Some(info)).await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time");
    }
}

async fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: TokioIo<I>,
    router: Router,
    peer: SocketAddr,
    tls: Option<est::TlsInfo>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = router.map_request(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        if let Some(info) = &tls {
            req.extensions_mut().insert(info.clone());
        }
        req
    });
    let conn = builder.serve_connection(io, TowerToHyperService::new(svc));
    let conn = watcher.watch(conn.into_owned());
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}
