//! Publishing: the CRLs (RFC 5280 §5) and the CA certificates (RFC 2585 §4), the
//! URLs every issued certificate points to.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, blocking, http_date, plain, set};

/// `GET /crl/<ca>.crl`: the CA's current CRL, DER (RFC 5280 §5, RFC 2585 §4.2).
pub(super) async fn crl(State(state): State<Arc<AppState>>, Path(file): Path<String>) -> Response {
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
pub(super) async fn ca_cert(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
) -> Response {
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
                    .map(|c| crate::admin::pem("CERTIFICATE", c))
                    .collect::<String>(),
            )
                .into_response(),
            Err(_) => plain(StatusCode::NOT_FOUND, "no such authority"),
        };
    }
    plain(StatusCode::NOT_FOUND, "not found")
}
