//! HTTP: publishing (CRLs, CA certificates: `publish`), the OCSP responder (`ocsp`),
//! health (`health`) and the admin API (`admin`), on hyper 1 + axum with our own accept
//! loop ([`crate::listener`]: header timeout, body limit, request timeout, graceful
//! shutdown; docs/architecture.md). This module holds the router, the limits every
//! listener applies, and the replies the handlers share.

mod admin;
pub mod console;
pub(crate) mod health;
mod ocsp;
mod publish;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ca_core::Authority;
use serde::Serialize;
use sha2::Digest;

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
    /// `[acme]`, for the EAB key admin operations.
    pub acme: acme::AcmeConfig,
    /// The key store, probed by `/healthz` (a PKCS#11 token can go away).
    pub keys: Option<Arc<dyn hsm::KeyStore>>,
    /// Periodic test signatures with the CA, OCSP, RA and HTTPS listener keys, whose
    /// cached outcome `/healthz` reports (it never waits for the key backend).
    pub key_probe: Option<Arc<hsm::probe::KeyProbe>>,
    /// The renewal of privca's own certificates, whose expiry report `/healthz` shows.
    pub renewer: Option<Arc<crate::renewal::Renewer>>,
    /// The web console's sessions and login links (`/ui`).
    pub console: console::Console,
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
    let routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/crl/{file}", get(publish::crl))
        .route("/ca/{file}", get(publish::ca_cert))
        .route("/ocsp", post(ocsp::ocsp_post))
        .route("/ocsp/", post(ocsp::ocsp_post))
        .route("/ocsp/{*request}", get(ocsp::ocsp_get))
        .nest("/admin/v1", admin::routes(state.clone()))
        .nest("/ui", console::routes(state.clone()))
        .route(
            "/ui/",
            get(|| async { axum::response::Redirect::to("/ui") }),
        )
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

pub(crate) fn plain(status: StatusCode, msg: &str) -> Response {
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

/// Maps an authority error to an HTTP status ([`crate::admin::status_of`]); internal
/// detail is logged, not sent.
fn error_response(e: &ca_core::Error) -> Response {
    let status = StatusCode::from_u16(crate::admin::status_of(e.kind()))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(error = %e, "temporarily unavailable");
    } else if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "internal error");
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
        Err(e) => Err(task_failed(&e)),
    }
}

/// The answer when a blocking task panicked or was cancelled.
fn task_failed(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "blocking task failed");
    plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
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
