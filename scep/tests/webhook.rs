//! The webhook challenge method against a decision service on 127.0.0.1.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use scep::challenge::{ChallengeMethod, EnrollKind, FailInfo, Rejection, Verdict};
use scep::webhook::{Webhook, WebhookConfig};
use serde_json::{Value, json};
use support::{Pki, context, serve};

const TOKEN: &str = "hook-bearer-0123456789";

/// What the hook answers next.
#[derive(Clone)]
enum Answer {
    Json(u16, Value),
    Raw(u16, &'static str),
    Slow(u64),
}

#[derive(Default)]
struct Hook {
    answers: Vec<Answer>,
    decisions: Vec<(HeaderMap, Value)>,
    events: Vec<(HeaderMap, Value)>,
}

type Shared = Arc<Mutex<Hook>>;

async fn decide(State(h): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let answer = {
        let mut h = h.lock().expect("hook");
        h.decisions
            .push((headers, serde_json::from_str(&body).unwrap_or(Value::Null)));
        if h.answers.is_empty() {
            Answer::Json(200, json!({"allow": true}))
        } else {
            h.answers.remove(0)
        }
    };
    match answer {
        Answer::Json(s, v) => (
            StatusCode::from_u16(s).unwrap_or(StatusCode::OK),
            axum::Json(v),
        )
            .into_response(),
        Answer::Raw(s, text) => {
            (StatusCode::from_u16(s).unwrap_or(StatusCode::OK), text).into_response()
        }
        Answer::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            axum::Json(json!({"allow": true})).into_response()
        }
    }
}

async fn event(State(h): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    h.lock()
        .expect("hook")
        .events
        .push((headers, serde_json::from_str(&body).unwrap_or(Value::Null)));
    StatusCode::NO_CONTENT
}

async fn start() -> (Shared, String) {
    let hook: Shared = Arc::default();
    let router = Router::new()
        .route("/decide", post(decide))
        .route("/events", post(event))
        .with_state(hook.clone());
    let base = serve(router).await;
    (hook, base)
}

fn webhook(base: &str, timeout_ms: u64, notify: bool) -> Webhook {
    let mut cfg = json!({
        "url": format!("{base}/decide"),
        "bearer_token": {"env": "NOT_READ_HERE"},
        "timeout_ms": timeout_ms,
    });
    if notify {
        cfg["notify_url"] = format!("{base}/events").into();
    }
    let cfg: WebhookConfig = serde_json::from_value(cfg).expect("config");
    Webhook::new(&cfg, Some(hsm::Secret::new(TOKEN.as_bytes().to_vec()))).expect("webhook")
}

fn queue(h: &Shared, a: Answer) {
    h.lock().expect("hook").answers.push(a);
}

fn refused(v: Verdict) -> Rejection {
    match v {
        Verdict::Reject(r) => r,
        Verdict::Accept(a) => panic!("expected a refusal, got {a:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_sends_the_enrollment_and_takes_profile_and_requester() {
    let (hook, base) = start().await;
    let pki = Pki::new();
    let csr = pki.csr("r1", "router-7", Some("one-time-Pa55"), None);
    let mut ctx = context("network", "TXN-77", &csr);
    let method = webhook(&base, 3000, false);
    assert_eq!(method.name(), "webhook");

    queue(
        &hook,
        Answer::Json(
            200,
            json!({"allow": true, "profile": "tls-client", "requester": "netbox:router-7",
                "extra": "ignored"}),
        ),
    );
    let Verdict::Accept(a) = method.verify(&ctx).await else {
        panic!("expected acceptance")
    };
    assert_eq!(a.profile.as_deref(), Some("tls-client"));
    assert_eq!(a.requester, "webhook:network:netbox:router-7");

    let (headers, body) = hook.lock().expect("hook").decisions[0].clone();
    assert_eq!(
        headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    // The PEM form as OpenSSL writes it.
    let tmp = tempfile::tempdir().expect("tempdir");
    let der_path = tmp.path().join("r1.der");
    std::fs::write(&der_path, &csr).expect("write");
    let out = std::process::Command::new("openssl")
        .args(["req", "-inform", "DER", "-outform", "PEM", "-in"])
        .arg(&der_path)
        .output()
        .expect("openssl");
    let pem = String::from_utf8(out.stdout).expect("pem");
    assert_eq!(
        body,
        json!({
            "endpoint": "network",
            "transaction_id": "TXN-77",
            "kind": "initial",
            "renewal_of": null,
            "csr": base64::engine::general_purpose::STANDARD.encode(&csr),
            "csr_pem": pem,
            "challenge": "one-time-Pa55",
            "subject": "CN=router-7",
            "sans": ["DNS:router-7.devices.example"],
        })
    );

    // Without a profile or requester: the endpoint default and the endpoint's name.
    ctx.kind = EnrollKind::Renewal;
    ctx.renewal_of = Some("0ABC".into());
    let Verdict::Accept(a) = method.verify(&ctx).await else {
        panic!("expected acceptance")
    };
    assert_eq!(a.profile, None);
    assert_eq!(a.requester, "webhook:network");
    let body = hook.lock().expect("hook").decisions[1].1.clone();
    assert_eq!(body["kind"], "renewal");
    assert_eq!(body["renewal_of"], "0ABC");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_but_an_explicit_allow_is_a_refusal() {
    let (hook, base) = start().await;
    let pki = Pki::new();
    let csr = pki.csr("r2", "router-8", Some("pw"), None);
    let ctx = context("network", "TXN-78", &csr);
    let method = webhook(&base, 1000, false);

    // An explicit deny, with its reason passed on (control characters removed).
    queue(
        &hook,
        Answer::Json(200, json!({"allow": false, "reason": "unknown\r\n device"})),
    );
    let r = refused(method.verify(&ctx).await);
    assert_eq!(r.fail_info, FailInfo::BadRequest);
    assert_eq!(r.client_text, "unknown device");

    // Deny without reason.
    queue(&hook, Answer::Json(200, json!({"allow": false})));
    assert_eq!(
        refused(method.verify(&ctx).await).client_text,
        "enrollment refused"
    );

    let generic = "enrollment could not be authorized";
    // Non-2xx, even with an allowing body.
    queue(&hook, Answer::Json(403, json!({"allow": true})));
    let r = refused(method.verify(&ctx).await);
    assert_eq!(r.client_text, generic);
    assert!(r.detail.contains("403"), "{}", r.detail);
    queue(&hook, Answer::Json(500, json!({})));
    assert!(refused(method.verify(&ctx).await).detail.contains("500"));
    // A redirect is not followed (it would carry the bearer token elsewhere).
    queue(&hook, Answer::Raw(302, ""));
    assert!(refused(method.verify(&ctx).await).detail.contains("302"));

    // Bad JSON, the wrong JSON, and a bad profile name.
    queue(&hook, Answer::Raw(200, "allow"));
    let r = refused(method.verify(&ctx).await);
    assert!(r.detail.contains("not the expected JSON"), "{}", r.detail);
    queue(&hook, Answer::Json(200, json!({"allowed": true})));
    assert_eq!(refused(method.verify(&ctx).await).client_text, generic);
    queue(&hook, Answer::Json(200, json!({"allow": "yes"})));
    assert_eq!(refused(method.verify(&ctx).await).client_text, generic);
    queue(
        &hook,
        Answer::Json(200, json!({"allow": true, "profile": "bad\nname"})),
    );
    assert!(
        refused(method.verify(&ctx).await)
            .detail
            .contains("profile")
    );

    // A timeout: the hook would allow after 3 s, the limit is 1 s.
    queue(&hook, Answer::Slow(3000));
    let r = refused(method.verify(&ctx).await);
    assert!(r.detail.contains("timed out"), "{}", r.detail);

    // Nobody listening.
    let closed = support::serve(Router::new()).await;
    let nobody = webhook(&format!("{closed}/nothing-here"), 1000, false);
    assert!(refused(nobody.verify(&ctx).await).detail.contains("404"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_and_failed_events_are_sent_when_configured() {
    let (hook, base) = start().await;
    let pki = Pki::new();
    let csr = pki.csr("r3", "router-9", Some("pw"), None);
    let ctx = context("network", "TXN-79", &csr);

    // Without notify_url nothing is sent.
    let quiet = webhook(&base, 1000, false);
    let cert = pki.issue("r3", &csr, "01F2");
    quiet.issued(&ctx, &cert.der).await.expect("issued");
    quiet.failed(&ctx, &Rejection::bad_request("nope")).await;
    assert!(hook.lock().expect("hook").events.is_empty());

    let method = webhook(&base, 1000, true);
    method.issued(&ctx, &cert.der).await.expect("issued");
    method
        .failed(&ctx, &Rejection::bad_request("profile refused"))
        .await;
    let events = hook.lock().expect("hook").events.clone();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0].1,
        json!({"event": "issued", "endpoint": "network", "transaction_id": "TXN-79",
            "serial": "01F2", "not_after": cert.not_after,
            "certificate": base64::engine::general_purpose::STANDARD.encode(&cert.der)})
    );
    assert_eq!(
        events[1].1,
        json!({"event": "failed", "endpoint": "network", "transaction_id": "TXN-79",
            "fail_info": "badRequest", "reason": "profile refused"})
    );
    assert!(
        events[0]
            .0
            .get("authorization")
            .is_some_and(|v| v == format!("Bearer {TOKEN}").as_str())
    );

    // A notification endpoint that fails does not withhold the certificate.
    let broken = support::serve(Router::new()).await;
    let cfg: WebhookConfig = serde_json::from_value(json!({
        "url": format!("{base}/decide"), "notify_url": format!("{broken}/gone")}))
    .expect("config");
    let m = Webhook::new(&cfg, None).expect("webhook");
    m.issued(&ctx, &cert.der).await.expect("best effort");
}
