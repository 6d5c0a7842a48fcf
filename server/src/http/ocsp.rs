//! The OCSP responder over HTTP (RFC 6960 Appendix A, RFC 9919).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest;

use super::{AppState, blocking, http_date, set};

/// `POST /ocsp` with an `application/ocsp-request` body (RFC 6960 Appendix A.1).
pub(super) async fn ocsp_post(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim().eq_ignore_ascii_case("application/ocsp-request"));
    if !ct_ok {
        return malformed(&state);
    }
    ocsp_answer(&state, body.to_vec()).await
}

/// `GET /ocsp/<url-encoded base64 DER>` (RFC 6960 Appendix A.1, RFC 9919 §5). The whole
/// rest of the path is taken, percent-decoded, and base64-decoded with or without padding,
/// because clients often leave `/`, `+` and `=` unescaped.
pub(super) async fn ocsp_get(
    State(state): State<Arc<AppState>>,
    Path(request): Path<String>,
) -> Response {
    // axum percent-decodes path parameters already.
    match ca_core::ocsp::decode_get_request(&request) {
        Ok(der) => ocsp_answer(&state, der).await,
        Err(_) => malformed(&state),
    }
}

/// The `malformedRequest` answer (RFC 6960 §4.2.1), sent with HTTP 200 like every OCSP
/// response.
fn malformed(state: &Arc<AppState>) -> Response {
    let status = ca_core::ocsp::ResponseStatus::MalformedRequest;
    ocsp_reply(
        state,
        ca_core::ocsp::OcspAnswer {
            der: ca_core::ocsp::error_response(status),
            status,
            this_update: 0,
            next_update: 0,
            nonced: false,
            statuses: Vec::new(),
        },
    )
}

/// A pre-signed answer is sent straight from the cache, on the connection's task: no
/// store read, no signature, no hop to the blocking pool. Anything else (a miss, a
/// nonce, several certificates) is answered by `Authority::ocsp` on the blocking pool.
async fn ocsp_answer(state: &Arc<AppState>, der: Vec<u8>) -> Response {
    if let Some(answer) = state.auth.ocsp_cached(&der) {
        return ocsp_reply(state, answer);
    }
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
