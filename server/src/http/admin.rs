//! The admin API (`/admin/v1`, docs/admin-api.md): bearer-token authentication and one
//! handler per route, each running the in-process [`LocalAdmin`] on the blocking pool.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{AppState, error_response, plain, task_failed, token_hash};
use crate::Error;
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
        .layer(middleware::from_fn_with_state(state, admin_auth))
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
    if !hsm::ct_eq(&presented, &state.admin_token_hash) {
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

/// Runs one admin operation on the blocking pool over [`LocalAdmin`] and answers its
/// JSON with `status`, or the error's status and `{"error": …}`.
async fn run<T, F>(state: &Arc<AppState>, status: StatusCode, op: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce(&dyn Admin) -> Result<T, Error> + Send + 'static,
{
    let state = state.clone();
    let done = ca_core::deadline::spawn_blocking(move || {
        op(&LocalAdmin::new(&state.auth, &state.scep, ACTOR).with_acme(&state.acme))
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

async fn admin_scep_challenge(State(state): State<Arc<AppState>>, bytes: Bytes) -> Response {
    match body::<ChallengeInput>(&bytes) {
        Ok(input) => run(&state, StatusCode::OK, move |a| a.scep_challenge(&input)).await,
        Err(r) => r,
    }
}

async fn admin_acme_eab_create(State(state): State<Arc<AppState>>, bytes: Bytes) -> Response {
    match body::<crate::acme_wiring::EabCreateInput>(&bytes) {
        Ok(input) => {
            run(&state, StatusCode::CREATED, move |a| {
                a.acme_eab_create(&input)
            })
            .await
        }
        Err(r) => r,
    }
}

async fn admin_acme_eab_list(State(state): State<Arc<AppState>>) -> Response {
    run(&state, StatusCode::OK, move |a| a.acme_eab_list()).await
}

async fn admin_list(State(state): State<Arc<AppState>>, Query(q): Query<ListQuery>) -> Response {
    run(&state, StatusCode::OK, move |a| a.list(&q)).await
}

async fn admin_issue(State(state): State<Arc<AppState>>, bytes: Bytes) -> Response {
    match body::<IssueInput>(&bytes) {
        Ok(input) => run(&state, StatusCode::CREATED, move |a| a.issue(&input)).await,
        Err(r) => r,
    }
}

async fn admin_requests(
    State(state): State<Arc<AppState>>,
    Query(q): Query<RequestsQuery>,
) -> Response {
    run(&state, StatusCode::OK, move |a| a.requests(&q)).await
}

async fn admin_approve(State(state): State<Arc<AppState>>, Path(id): Path<u64>) -> Response {
    run(&state, StatusCode::OK, move |a| a.approve(id)).await
}

async fn admin_reject(
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
    bytes: Bytes,
) -> Response {
    match body::<RejectInput>(&bytes) {
        Ok(input) => run(&state, StatusCode::OK, move |a| a.reject(id, &input)).await,
        Err(r) => r,
    }
}

async fn admin_show(State(state): State<Arc<AppState>>, Path(serial): Path<String>) -> Response {
    run(&state, StatusCode::OK, move |a| a.show(&serial)).await
}

async fn admin_revoke(
    State(state): State<Arc<AppState>>,
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
        Ok(input) => run(&state, StatusCode::OK, move |a| a.revoke(&serial, &input)).await,
        Err(r) => r,
    }
}

async fn admin_release(State(state): State<Arc<AppState>>, Path(serial): Path<String>) -> Response {
    run(&state, StatusCode::OK, move |a| a.release(&serial)).await
}

async fn admin_revoke_by_certificate(State(state): State<Arc<AppState>>, bytes: Bytes) -> Response {
    match body::<RevokeCertInput>(&bytes) {
        Ok(input) => {
            run(&state, StatusCode::OK, move |a| {
                a.revoke_by_certificate(&input)
            })
            .await
        }
        Err(r) => r,
    }
}

async fn admin_revoke_by_key(State(state): State<Arc<AppState>>, bytes: Bytes) -> Response {
    match body::<RevokeKeyInput>(&bytes) {
        Ok(input) => run(&state, StatusCode::OK, move |a| a.revoke_by_key(&input)).await,
        Err(r) => r,
    }
}

async fn admin_crl(State(state): State<Arc<AppState>>, Path(ca): Path<String>) -> Response {
    run(&state, StatusCode::OK, move |a| a.crl(Some(&ca))).await
}

async fn admin_crl_all(State(state): State<Arc<AppState>>) -> Response {
    run(&state, StatusCode::OK, |a| a.crl(None)).await
}

async fn admin_profiles(State(state): State<Arc<AppState>>) -> Response {
    run(&state, StatusCode::OK, |a| a.profiles()).await
}

async fn admin_audit_verify(State(state): State<Arc<AppState>>) -> Response {
    run(&state, StatusCode::OK, |a| a.audit_verify()).await
}

/// A one-time console login link; its creation is audited (the link itself is not).
async fn admin_console_login_link(State(state): State<Arc<AppState>>) -> Response {
    let secret = state.console.new_login_link();
    let auth = state.auth.clone();
    let audited = tokio::task::spawn_blocking(move || {
        auth.store().append_audit(&store::AuditEvent {
            time: auth.now(),
            action: "console-login-link".into(),
            actor: ACTOR.into(),
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
