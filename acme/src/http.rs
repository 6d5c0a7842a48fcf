//! The HTTP mapping of ACME (RFC 8555 §6.1): routes `/acme/<endpoint>/<resource>` on the
//! HTTPS listener; the service runs on the blocking pool.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use crate::jws::MAX_JWS_BYTES;
use crate::service::{AcmeRequest, AcmeResponse, AcmeService, Method};
use crate::{Error, problem};

/// The ACME routes of every endpoint of `service`.
pub fn router(service: Arc<AcmeService>) -> Router {
    Router::new().route(
        "/acme/{endpoint}/{*rest}",
        any(move |req: Request| {
            let s = service.clone();
            async move { dispatch(s, req).await }
        }),
    )
}

fn respond(r: AcmeResponse) -> Response {
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    for (name, value) in r.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            h.append(n, v);
        }
    }
    resp
}

async fn dispatch(service: Arc<AcmeService>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix("/acme/").unwrap_or_default();
    let (endpoint, resource) = rest.split_once('/').unwrap_or((rest, ""));
    let method = match *req.method() {
        axum::http::Method::GET => Method::Get,
        axum::http::Method::HEAD => Method::Head,
        axum::http::Method::POST => Method::Post,
        _ => Method::Other,
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let (endpoint, resource) = (endpoint.to_string(), resource.to_string());
    let body = match axum::body::to_bytes(req.into_body(), MAX_JWS_BYTES).await {
        Ok(b) => b.to_vec(),
        Err(_) => {
            let e = Error::Malformed(format!(
                "the request body is larger than {MAX_JWS_BYTES} bytes or was cut off"
            ));
            let p = problem::Problem::from(&e);
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                [(header::CONTENT_TYPE, problem::CONTENT_TYPE)],
                p.to_json(),
            )
                .into_response();
        }
    };
    let acme_req = AcmeRequest {
        method,
        endpoint,
        path: resource,
        content_type,
        body,
        peer,
    };
    match ca_core::deadline::spawn_blocking(move || service.handle(&acme_req)).await {
        Ok(r) => respond(r),
        Err(e) => {
            tracing::error!(error = %e, "ACME request task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}
