//! The HTTP mapping (RFC 8894 §4.1): `GET|POST /scep/<name>[/pkiclient.exe]?operation=…`,
//! and `/cgi-bin/pkiclient.exe` plus `/scep` for the default endpoint. The server mounts
//! [`router`] on any listener (plain HTTP, HTTPS).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine;

use crate::codec::MAX_MESSAGE_BYTES;
use crate::service::Endpoint;

/// The endpoints a router serves.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    /// By name.
    pub by_name: BTreeMap<String, Arc<Endpoint>>,
}

impl Endpoints {
    fn default_endpoint(&self) -> Option<&Arc<Endpoint>> {
        self.by_name
            .values()
            .find(|e| e.config().default)
            .or_else(|| {
                // A single endpoint is the default too.
                if self.by_name.len() == 1 {
                    self.by_name.values().next()
                } else {
                    None
                }
            })
    }
}

/// The SCEP routes. Bodies above [`MAX_MESSAGE_BYTES`] are refused by the listener's own
/// limit or here.
pub fn router(endpoints: Endpoints) -> Router {
    let state = Arc::new(endpoints);
    Router::new()
        .route("/scep/{name}", any(named))
        .route("/scep/{name}/", any(named))
        .route("/scep/{name}/pkiclient.exe", any(named))
        .route("/scep/{name}/cgi-bin/pkiclient.exe", any(named))
        .route("/scep", any(default))
        .route("/cgi-bin/pkiclient.exe", any(default))
        .route("/scep/cgi-bin/pkiclient.exe", any(default))
        .with_state(state)
}

async fn named(
    State(eps): State<Arc<Endpoints>>,
    Path(name): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    match eps.by_name.get(&name) {
        Some(ep) => serve(ep, method, query, body).await,
        None => text(StatusCode::NOT_FOUND, "no such SCEP endpoint"),
    }
}

async fn default(
    State(eps): State<Arc<Endpoints>>,
    method: Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    match eps.default_endpoint() {
        Some(ep) => serve(ep, method, query, body).await,
        None => text(StatusCode::NOT_FOUND, "no default SCEP endpoint"),
    }
}

fn text(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{msg}\n"),
    )
        .into_response()
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Splits a raw query string into its parameters without turning `+` into a space:
/// macOS leaves `+` and `/` raw in GET PKIOperation (docs/client-quirks.md).
pub fn query_params(raw: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for pair in raw.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = String::from_utf8_lossy(&percent_decode(k)).to_ascii_lowercase();
        out.entry(k).or_insert_with(|| percent_decode(v));
    }
    out
}

/// Decodes a GET PKIOperation message: whitespace and line breaks (Cisco `%0A`) are
/// dropped, a space is a `+` that a form decoder mangled, URL-safe letters and missing
/// padding are accepted.
pub fn lenient_base64(raw: &[u8]) -> Option<Vec<u8>> {
    let cleaned: Vec<u8> = raw
        .iter()
        .filter(|b| !matches!(b, b'\r' | b'\n' | b'\t'))
        .map(|&b| match b {
            b' ' => b'+',
            b'-' => b'+',
            b'_' => b'/',
            other => other,
        })
        .filter(|&b| b != b'=')
        .collect();
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&cleaned)
        .ok()
}

async fn serve(ep: &Arc<Endpoint>, method: Method, query: Option<String>, body: Bytes) -> Response {
    let params = query_params(query.as_deref().unwrap_or(""));
    let operation = params
        .get("operation")
        .map(|o| String::from_utf8_lossy(o).into_owned())
        .unwrap_or_default();
    match (operation.as_str(), &method) {
        ("GetCACaps", &Method::GET) => {
            ([(header::CONTENT_TYPE, "text/plain")], ep.caps()).into_response()
        }
        ("GetCACert", &Method::GET) => match ep.ca_cert() {
            Ok(a) => ([(header::CONTENT_TYPE, a.content_type)], a.body).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "GetCACert failed");
                text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        },
        ("GetNextCACert", &Method::GET) => match ep.next_ca_cert().await {
            Ok(Some(b)) => (
                [(header::CONTENT_TYPE, "application/x-x509-next-ca-cert")],
                b,
            )
                .into_response(),
            Ok(None) => text(
                StatusCode::NOT_FOUND,
                "no next CA certificate is configured",
            ),
            Err(e) => {
                tracing::error!(error = %e, "GetNextCACert failed");
                text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        },
        ("PKIOperation", &Method::POST) => pki(ep, body.to_vec()).await,
        ("PKIOperation", &Method::GET) => {
            let Some(msg) = params.get("message") else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "PKIOperation by GET needs message=",
                );
            };
            if msg.len() > MAX_MESSAGE_BYTES * 4 / 3 + 1024 {
                return text(StatusCode::PAYLOAD_TOO_LARGE, "message too large");
            }
            match lenient_base64(msg) {
                Some(der) => pki(ep, der).await,
                None => text(StatusCode::BAD_REQUEST, "message= is not base64"),
            }
        }
        ("", _) => text(StatusCode::BAD_REQUEST, "missing operation="),
        (_, &Method::GET | &Method::POST) => {
            text(StatusCode::BAD_REQUEST, "unknown SCEP operation")
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST"),
    }
}

async fn pki(ep: &Arc<Endpoint>, der: Vec<u8>) -> Response {
    if der.len() > MAX_MESSAGE_BYTES {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "message too large");
    }
    match ep.pki_operation(der).await {
        Ok(rep) => ([(header::CONTENT_TYPE, "application/x-pki-message")], rep).into_response(),
        Err(crate::Error::Malformed(m)) => text(
            StatusCode::BAD_REQUEST,
            &format!("malformed SCEP message: {m}"),
        ),
        // The key backend is down or the store cannot write (disk full or failing): a
        // transient server error, so HTTP 503 with Retry-After (RFC 8894 §4.3 leaves HTTP
        // errors to the transport).
        Err(e) if e.is_unavailable() => {
            tracing::warn!(error = %e, "PKIOperation: temporarily unavailable");
            let msg = match &e {
                crate::Error::Authority(a) => a.client_message(),
                _ => "temporarily unavailable (key backend); retry later".to_string(),
            };
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, &msg);
            r.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from(ca_core::RETRY_AFTER_SECONDS),
            );
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "PKIOperation failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_messages_decode_leniently() {
        let der = vec![0xfbu8, 0xff, 0xbf, 0x00, 0x10];
        let std = base64::engine::general_purpose::STANDARD.encode(&der);
        assert!(std.contains('+') || std.contains('/'));
        // Raw + and / (macOS), %2B-escaped, a + turned into a space, %0A line breaks.
        for q in [
            format!("operation=PKIOperation&message={std}"),
            format!(
                "operation=PKIOperation&message={}",
                std.replace('+', "%2B")
                    .replace('/', "%2F")
                    .replace('=', "%3D")
            ),
            format!("operation=PKIOperation&message={}", std.replace('+', " ")),
            format!("operation=PKIOperation&message={}%0A", &std),
        ] {
            let p = query_params(&q);
            assert_eq!(
                lenient_base64(&p["message"]).as_deref(),
                Some(&der[..]),
                "{q}"
            );
        }
        assert!(lenient_base64(b"!!!").is_none());
    }
}
