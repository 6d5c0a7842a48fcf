//! The HTTP mapping of EST (RFC 7030 §3.2, §4; RFC 8951): routes under
//! `/.well-known/est/`, status codes, content types and base64 bodies. The routes are
//! meant for an HTTPS listener; the handler reads [`TlsInfo`] from the request's
//! extensions.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use crate::encoding::{self, CT_CERTS_ONLY, CT_CSRATTRS};
use crate::service::{EstAnswer, EstRequest, EstService, Operation};
use crate::{Error, TlsInfo};

/// The EST routes: `/.well-known/est/<op>` (default endpoint) and
/// `/.well-known/est/<label>/<op>`.
pub fn router(service: Arc<EstService>) -> Router {
    let s1 = service.clone();
    Router::new()
        .route(
            "/.well-known/est/{op}",
            any(move |req: Request| {
                let s = s1.clone();
                async move { dispatch(s, req).await }
            }),
        )
        .route(
            "/.well-known/est/{label}/{op}",
            any(move |req: Request| {
                let s = service.clone();
                async move { dispatch(s, req).await }
            }),
        )
}

fn plain(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{msg}\n"),
    )
        .into_response()
}

async fn dispatch(service: Arc<EstService>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let rest = path.trim_start_matches("/.well-known/est/");
    let (label, op) = match rest.split_once('/') {
        Some((l, o)) => (Some(l.to_string()), o.to_string()),
        None => (None, rest.to_string()),
    };
    let Some(op) = Operation::parse(&op) else {
        return plain(StatusCode::NOT_FOUND, "no such EST operation");
    };
    let want = if op.is_post() {
        Method::POST
    } else {
        Method::GET
    };
    if req.method() != want && !(want == Method::GET && req.method() == Method::HEAD) {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{} takes {want}", op.name()),
        );
        if let Ok(v) = HeaderValue::from_str(want.as_str()) {
            r.headers_mut().insert(header::ALLOW, v);
        }
        return r;
    }
    let tls = req.extensions().get::<TlsInfo>().cloned();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let body = if op.is_post() {
        match axum::body::to_bytes(req.into_body(), encoding::MAX_BODY_BYTES).await {
            Ok(b) => b.to_vec(),
            Err(_) => {
                let e = Error::BadRequest(format!(
                    "the request body is larger than {} bytes or was cut off",
                    encoding::MAX_BODY_BYTES
                ));
                // Before authentication: counted, not audited one by one (issue item 6).
                let auth = service.authority().clone();
                let source = crate::service::peer_source(&peer);
                let _ = tokio::task::spawn_blocking(move || {
                    auth.note_unauthenticated("est-refused", &source, &e.to_string())
                })
                .await;
                return plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is too large",
                );
            }
        }
    } else {
        Vec::new()
    };
    let est_req = EstRequest {
        authorization,
        tls,
        body,
        peer,
    };
    let label2 = label.clone();
    let result =
        ca_core::deadline::spawn_blocking(move || service.handle(label2.as_deref(), op, &est_req))
            .await;
    match result {
        Ok(Ok(answer)) => answer_response(answer),
        Ok(Err(e)) => error_response(&e, label.as_deref()),
        Err(e) => {
            tracing::error!(error = %e, "EST task failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

fn base64_response(ct: &str, der: &[u8]) -> Response {
    let mut r = encoding::base64_lines(der).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(ct) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        "content-transfer-encoding",
        HeaderValue::from_static("base64"),
    );
    r
}

fn answer_response(a: EstAnswer) -> Response {
    match a {
        EstAnswer::Certs(der) => base64_response(CT_CERTS_ONLY, &der),
        EstAnswer::CsrAttrs(der) => base64_response(CT_CSRATTRS, &der),
        EstAnswer::KeyAndCert { pkcs8, certs } => {
            let (ct, body) = encoding::serverkeygen_multipart(pkcs8.expose(), &certs);
            drop(pkcs8);
            let mut r = Response::new(Body::from(body));
            if let Ok(v) = HeaderValue::from_str(&ct) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        EstAnswer::Pending { retry_after } => {
            let mut r = plain(
                StatusCode::ACCEPTED,
                "the request is waiting for approval; retry with the same CSR",
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

/// The status of a refusal (RFC 7030 §4.2.3): the HTTP status of its kind in the one
/// mapping of error kinds ([`ca_core::ErrorKind::answer`]).
pub fn status_of(e: &Error) -> StatusCode {
    StatusCode::from_u16(e.kind().answer().http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn error_response(e: &Error, label: Option<&str>) -> Response {
    let status = status_of(e);
    let msg = match e {
        Error::Core(c) => c.client_message(),
        Error::Key(hsm::Error::Unavailable(_)) => {
            tracing::warn!(error = %e, "EST: key backend unavailable");
            "the key backend is unavailable; retry later".into()
        }
        Error::Config(_) | Error::Key(_) => {
            tracing::error!(error = %e, "EST internal error");
            "internal error".into()
        }
        other => other.to_string(),
    };
    let mut r = plain(status, &msg);
    if let Error::RateLimited { retry_after } = e
        && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    } else if status == StatusCode::SERVICE_UNAVAILABLE {
        // Retryable (the key backend is down, the store's disk is full or failing):
        // RFC 7030 §4.2.3 lets a client retry after Retry-After.
        tracing::error!(error = %e, "EST: temporarily unavailable");
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(ca_core::RETRY_AFTER_SECONDS),
        );
    }
    if status == StatusCode::UNAUTHORIZED {
        let realm = format!("Basic realm=\"privca EST {}\"", label.unwrap_or("default"));
        if let Ok(v) = HeaderValue::from_str(&realm) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    r
}
