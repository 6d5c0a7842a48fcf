//! `/healthz`: whether the store takes writes and the key backend signs.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{AppState, blocking, plain};

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
    /// Each CA certificate and each of privca's own certificates (OCSP responder, SCEP
    /// RA, HTTPS listener) with its days to expiry and whether it is inside the renewal
    /// margin (`[server.renewal]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    expiry: Vec<crate::renewal::Expiry>,
    /// The certificates inside the margin that need an operator (CA certificates,
    /// certificates privca does not renew) or whose renewal failed: `name: why`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// The store's state in `/healthz`.
#[derive(Serialize)]
struct StoreHealth {
    /// `ok` or `unavailable` (writes fail: disk full or failing, PostgreSQL unreachable
    /// or a read-only standby).
    status: &'static str,
    /// Why, when unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The key backend's state in `/healthz`.
#[derive(Serialize)]
pub(super) struct KeysHealth {
    /// `soft` or `pkcs11`.
    pub(super) backend: &'static str,
    /// `ok` or `unavailable`.
    pub(super) status: &'static str,
    /// Why it is unavailable (no secrets: module, token and `CKR_…` codes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
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
pub(super) fn keys_health(state: &AppState) -> Option<KeysHealth> {
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
pub(super) async fn healthz(State(state): State<Arc<AppState>>) -> Response {
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
                    error: Some("writes fail: disk full, I/O error, or the database unreachable or read-only (see the log)".into()),
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
            expiry: Vec::new(),
            warnings: Vec::new(),
        })
    })
    .await
    {
        Ok(mut h) => {
            let keys_down = keys.as_ref().is_some_and(|k| k.status != "ok");
            let store_down = h.store.status != "ok";
            h.keys = keys;
            if let Some(r) = &state.renewer {
                h.expiry = r.report();
                h.warnings = h
                    .expiry
                    .iter()
                    .filter(|c| c.status != "ok" && (c.status != "renewal-due" || c.note.is_some()))
                    .map(|c| {
                        format!(
                            "{}: {} in {} days{}",
                            c.name,
                            if c.status == "expired" {
                                "expired"
                            } else {
                                "expires"
                            },
                            c.days_left,
                            c.note
                                .as_deref()
                                .map(|n| format!(" ({n})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
            }
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
