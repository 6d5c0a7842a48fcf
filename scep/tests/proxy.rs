//! Outbound calls of the challenge methods honour the standard proxy environment
//! variables (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`), so that privca can reach
//! Microsoft from networks that require a proxy. The workspace forbids `unsafe`, which
//! `std::env::set_var` needs, so the test re-runs itself as a child process with the
//! variables set; the parent plays the proxy.

mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::routing::post;
use scep::challenge::{ChallengeMethod, Verdict};
use scep::webhook::{Webhook, WebhookConfig};
use serde_json::json;
use support::{Pki, context, serve};

const TEST: &str = "http_proxy_from_the_environment_is_used";
const CHILD: &str = "PRIVCA_PROXY_TEST_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_proxy_from_the_environment_is_used() {
    if std::env::var_os(CHILD).is_some() {
        return child().await;
    }
    // The "proxy" answers the forwarded request itself and records its absolute URI.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let router = Router::new()
        .route(
            "/decide",
            post(
                |State(seen): State<Arc<Mutex<Vec<String>>>>, uri: Uri| async move {
                    seen.lock().expect("seen").push(uri.to_string());
                    axum::Json(json!({"allow": true}))
                },
            ),
        )
        .with_state(seen.clone());
    let proxy = serve(router).await;
    let exe = std::env::current_exe().expect("test binary");
    let out = tokio::process::Command::new(exe)
        .args(["--exact", TEST, "--nocapture"])
        .env(CHILD, "1")
        .env("HTTP_PROXY", &proxy)
        .env("http_proxy", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .await
        .expect("run the child");
    assert!(
        out.status.success(),
        "child failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = seen.lock().expect("seen").clone();
    assert_eq!(
        seen,
        ["http://localhost:9/decide"],
        "the request went through the proxy in absolute form"
    );
}

/// Runs with the proxy variables set: the configured host (port 9, discard) cannot
/// answer; only the proxy can.
async fn child() {
    let cfg: WebhookConfig = serde_json::from_value(json!({
        "url": "http://localhost:9/decide", "timeout_ms": 3000}))
    .expect("config");
    let hook = Webhook::new(&cfg, None).expect("webhook");
    let pki = Pki::new();
    let csr = pki.csr("p", "proxied", Some("pw"), None);
    let ctx = context("net", "TXP", &csr);
    match hook.verify(&ctx).await {
        Verdict::Accept(_) => {}
        Verdict::Reject(r) => panic!("not through the proxy: {r:?}"),
    }
}
