//! The admin API (`/admin/v1`, docs/admin-api.md): bearer-token authentication and one
//! handler per route, each running the in-process [`LocalAdmin`] on the blocking pool.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{AppState, error_response, plain, task_failed, token_hash};
use crate::Error;
use crate::access::{Principal, Right, Target};
use crate::admin::{
    Admin, IssueInput, ListQuery, LocalAdmin, RejectInput, RequestsQuery, RevokeCertInput,
    RevokeInput, RevokeKeyInput,
};
use crate::scep_wiring::ChallengeInput;

/// Who the admin API's operations are recorded under.
const ACTOR: &str = "admin-api";

/// The routes under `/admin/v1`, behind [`admin_auth`].
pub(super) fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/certificates", get(admin_list).post(admin_issue))
        .route("/certificates/{serial}", get(admin_show))
        .route("/certificates/{serial}/revoke", post(admin_revoke))
        .route("/certificates/{serial}/release", post(admin_release))
        .route(
            "/revocations/by-certificate",
            post(admin_revoke_by_certificate),
        )
        .route("/revocations/by-key", post(admin_revoke_by_key))
        .route("/crl", post(admin_crl_all))
        .route("/crl/{ca}", post(admin_crl))
        .route("/profiles", get(admin_profiles))
        .route("/audit/verify", get(admin_audit_verify))
        .route("/scep/challenges", post(admin_scep_challenge))
        .route(
            "/acme/eab",
            post(admin_acme_eab_create).get(admin_acme_eab_list),
        )
        .route("/requests", get(admin_requests))
        .route("/requests/{id}/approve", post(admin_approve))
        .route("/requests/{id}/reject", post(admin_reject))
        .route("/console/login-links", post(admin_console_login_link))
        .route("/tokens", post(admin_token_create).get(admin_token_list))
        .route("/tokens/{id}/revoke", post(admin_token_revoke))
        .route("/notify/log", get(admin_notify_log))
        .layer(middleware::from_fn_with_state(state, admin_auth))
}

/// Admin API authentication and the route's right: `Authorization: Bearer <token>`, the
/// configured admin token (compared in constant time over SHA-256 digests) or an API
/// token ([`crate::access`]); loopback peers only unless configured otherwise. The
/// principal goes to the handler, which checks a scoped right (profile, SCEP endpoint).
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
        .map(|t| t.trim().to_string());
    let Some(presented) = presented else {
        let mut r = plain(StatusCode::UNAUTHORIZED, "admin token required");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    };
    let principal = if hsm::ct_eq(
        &token_hash(presented.trim().as_bytes()),
        &state.admin_token_hash,
    ) {
        Principal::bootstrap(ACTOR)
    } else {
        match api_token_principal(&state, presented.trim()).await {
            Some(p) => p,
            None => {
                // Unauthenticated: counted and summarised, not audited one by one.
                let auth = state.auth.clone();
                let source = peer.ip().to_string();
                let _ = tokio::task::spawn_blocking(move || {
                    auth.note_unauthenticated("admin-refused", &source, "wrong admin token")
                })
                .await;
                // RFC 6750 §3: a 401 carries the challenge, also for a token that is wrong.
                let mut r = plain(
                    StatusCode::UNAUTHORIZED,
                    "unknown, expired or revoked token",
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                return r;
            }
        }
    };
    if let Err(r) = allowed(
        &state,
        &principal,
        right_of(req.method(), req.uri().path()),
        Target::Any,
    )
    .await
    {
        return r;
    }
    let mut req = req;
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// The principal of an API token (`privca token create`), or `None` when it is unknown,
/// wrong, expired or revoked. A successful use is recorded once a minute at most.
async fn api_token_principal(state: &Arc<AppState>, presented: &str) -> Option<Principal> {
    let auth = state.auth.clone();
    let presented = presented.to_string();
    let found = tokio::task::spawn_blocking(move || {
        let now = auth.now();
        let found = crate::access::authenticate(auth.store().as_ref(), &presented, now);
        if let Ok(Some((_, token))) = &found
            && token.last_used_at.is_none_or(|t| now - t >= 60)
            && let Err(e) = auth.store().touch_api_token(&token.id, now)
        {
            tracing::warn!(error = %e, "recording an API token's last use failed");
        }
        found
    })
    .await;
    match found {
        Ok(Ok(Some((p, _)))) => Some(p),
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "checking an API token failed");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "checking an API token failed");
            None
        }
    }
}

/// The right a route needs (before any scope; docs/admin-api.md lists them).
fn right_of(method: &axum::http::Method, path: &str) -> Right {
    let path = path.strip_prefix("/admin/v1").unwrap_or(path);
    let get = method == axum::http::Method::GET;
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "certificates" if get => Right::Read,
        "certificates" if path.ends_with("/revoke") || path.ends_with("/release") => Right::Revoke,
        "certificates" => Right::Issue,
        "revocations" => Right::Revoke,
        "crl" => Right::Crl,
        "profiles" => Right::Read,
        "audit" | "notify" => Right::Audit,
        "scep" => Right::Challenge,
        "acme" => Right::Eab,
        "requests" if get => Right::Read,
        "requests" => Right::Approve,
        // Tokens, console links, and anything a later route adds: administrators only.
        _ => Right::Tokens,
    }
}

/// 403 with the reason ([`checked`]), as the admin API answers it.
pub(super) async fn allowed(
    state: &Arc<AppState>,
    who: &Principal,
    right: Right,
    target: Target<'_>,
) -> Result<(), Response> {
    checked(state, who, right, target).await.map_err(|why| {
        (
            StatusCode::FORBIDDEN,
            axum::Json(super::ErrorBody { error: why }),
        )
            .into_response()
    })
}

/// Whether `who` may do what needs `right` on `target`; a refusal is audited
/// (`access-refused`, naming the caller and the missing right) and its reason returned,
/// for each front end to answer 403 its own way.
pub(super) async fn checked(
    state: &Arc<AppState>,
    who: &Principal,
    right: Right,
    target: Target<'_>,
) -> Result<(), String> {
    let Err(why) = who.check(right, target) else {
        return Ok(());
    };
    let auth = state.auth.clone();
    let event = store::AuditEvent {
        time: auth.now(),
        action: "access-refused".into(),
        actor: who.actor.clone(),
        subject: format!("{right:?}"),
        detail: why.clone(),
    };
    let audited = tokio::task::spawn_blocking(move || auth.store().append_audit(&event)).await;
    if !matches!(audited, Ok(Ok(_))) {
        tracing::error!("recording a refused operation in the audit log failed");
    }
    Err(why)
}

/// Runs one admin operation on the blocking pool over [`LocalAdmin`] and answers its
/// JSON with `status`, or the error's status and `{"error": …}`.
async fn run<T, F>(state: &Arc<AppState>, who: &Principal, status: StatusCode, op: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce(&dyn Admin) -> Result<T, Error> + Send + 'static,
{
    let state = state.clone();
    let actor = who.actor.clone();
    let done = ca_core::deadline::spawn_blocking(move || {
        op(&LocalAdmin::new(&state.auth, &state.scep, &actor).with_acme(&state.acme))
    })
    .await;
    match done {
        Ok(Ok(v)) => (status, axum::Json(v)).into_response(),
        Ok(Err(Error::Core(e))) => error_response(&e),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "admin operation failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
        Err(e) => task_failed(&e),
    }
}

/// A JSON request body, or the 400 answer naming what is wrong with it.
#[allow(clippy::result_large_err)]
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(bytes)
        .map_err(|e| error_response(&ca_core::Error::BadRequest(format!("request body: {e}"))))
}

async fn admin_scep_challenge(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    bytes: Bytes,
) -> Response {
    match body::<ChallengeInput>(&bytes) {
        Ok(input) => {
            let endpoint = Target::ScepEndpoint(&input.endpoint);
            if let Err(r) = allowed(&state, &who, Right::Challenge, endpoint).await {
                return r;
            }
            run(&state, &who, StatusCode::OK, move |a| {
                a.scep_challenge(&input)
            })
            .await
        }
        Err(r) => r,
    }
}

async fn admin_acme_eab_create(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    bytes: Bytes,
) -> Response {
    match body::<crate::acme_wiring::EabCreateInput>(&bytes) {
        Ok(input) => {
            run(&state, &who, StatusCode::CREATED, move |a| {
                a.acme_eab_create(&input)
            })
            .await
        }
        Err(r) => r,
    }
}

async fn admin_acme_eab_list(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
) -> Response {
    run(&state, &who, StatusCode::OK, move |a| a.acme_eab_list()).await
}

async fn admin_list(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Response {
    run(&state, &who, StatusCode::OK, move |a| a.list(&q)).await
}

async fn admin_issue(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    bytes: Bytes,
) -> Response {
    match body::<IssueInput>(&bytes) {
        Ok(input) => {
            if let Err(r) =
                allowed(&state, &who, Right::Issue, Target::Profile(&input.profile)).await
            {
                return r;
            }
            run(&state, &who, StatusCode::CREATED, move |a| a.issue(&input)).await
        }
        Err(r) => r,
    }
}

async fn admin_requests(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Query(q): Query<RequestsQuery>,
) -> Response {
    run(&state, &who, StatusCode::OK, move |a| a.requests(&q)).await
}

async fn admin_approve(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<u64>,
) -> Response {
    run(&state, &who, StatusCode::OK, move |a| a.approve(id)).await
}

async fn admin_reject(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<u64>,
    bytes: Bytes,
) -> Response {
    match body::<RejectInput>(&bytes) {
        Ok(input) => run(&state, &who, StatusCode::OK, move |a| a.reject(id, &input)).await,
        Err(r) => r,
    }
}

async fn admin_show(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(serial): Path<String>,
) -> Response {
    run(&state, &who, StatusCode::OK, move |a| a.show(&serial)).await
}

async fn admin_revoke(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(serial): Path<String>,
    bytes: Bytes,
) -> Response {
    // An empty body is the default reason.
    let input = if bytes.is_empty() {
        Ok(RevokeInput::default())
    } else {
        body::<RevokeInput>(&bytes)
    };
    match input {
        Ok(input) => {
            run(&state, &who, StatusCode::OK, move |a| {
                a.revoke(&serial, &input)
            })
            .await
        }
        Err(r) => r,
    }
}

async fn admin_release(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(serial): Path<String>,
) -> Response {
    run(&state, &who, StatusCode::OK, move |a| a.release(&serial)).await
}

async fn admin_revoke_by_certificate(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    bytes: Bytes,
) -> Response {
    match body::<RevokeCertInput>(&bytes) {
        Ok(input) => {
            run(&state, &who, StatusCode::OK, move |a| {
                a.revoke_by_certificate(&input)
            })
            .await
        }
        Err(r) => r,
    }
}

async fn admin_revoke_by_key(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    bytes: Bytes,
) -> Response {
    match body::<RevokeKeyInput>(&bytes) {
        Ok(input) => {
            run(&state, &who, StatusCode::OK, move |a| {
                a.revoke_by_key(&input)
            })
            .await
        }
        Err(r) => r,
    }
}

async fn admin_crl(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(ca): Path<String>,
) -> Response {
    run(&state, &who, StatusCode::OK, move |a| a.crl(Some(&ca))).await
}

async fn admin_crl_all(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
) -> Response {
    run(&state, &who, StatusCode::OK, |a| a.crl(None)).await
}

async fn admin_profiles(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
) -> Response {
    run(&state, &who, StatusCode::OK, |a| a.profiles()).await
}

async fn admin_audit_verify(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
) -> Response {
    run(&state, &who, StatusCode::OK, |a| a.audit_verify()).await
}

/// A one-time console login link; its creation is audited (the link itself is not).
async fn admin_console_login_link(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
) -> Response {
    let secret = state.console.new_login_link();
    let auth = state.auth.clone();
    let audited = tokio::task::spawn_blocking(move || {
        auth.store().append_audit(&store::AuditEvent {
            time: auth.now(),
            action: "console-login-link".into(),
            actor: who.actor.clone(),
            subject: "console".into(),
            detail: String::new(),
        })
    })
    .await;
    if !matches!(audited, Ok(Ok(_))) {
        tracing::error!("recording a console login link in the audit log failed");
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    }
    let out = crate::admin::LoginLinkOutput {
        path: format!("/ui/login?link={secret}"),
        expires_in: super::console::LINK_LIFETIME.as_secs(),
    };
    (StatusCode::CREATED, axum::Json(out)).into_response()
}

async fn admin_token_create(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    bytes: Bytes,
) -> Response {
    match body::<crate::admin::TokenCreateInput>(&bytes) {
        Ok(input) => {
            run(&state, &who, StatusCode::CREATED, move |a| {
                a.token_create(&input)
            })
            .await
        }
        Err(r) => r,
    }
}

async fn admin_token_list(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
) -> Response {
    run(&state, &who, StatusCode::OK, |a| a.token_list()).await
}

async fn admin_token_revoke(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    run(&state, &who, StatusCode::OK, move |a| a.token_revoke(&id)).await
}

#[derive(serde::Deserialize)]
struct LogQuery {
    #[serde(default)]
    limit: Option<usize>,
}

async fn admin_notify_log(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Query(q): Query<LogQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    run(&state, &who, StatusCode::OK, move |a| a.notify_log(limit)).await
}
