//! The Intune challenge method against a fake Entra ID + Graph + Intune validation
//! service on 127.0.0.1. The fake checks what Microsoft's service checks (client
//! credentials, scopes, bearer tokens and their expiry, the headers) and records every
//! call, so the tests can assert the exact request bodies.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use scep::challenge::{ChallengeMethod, EnrollmentContext, Rejection, Verdict};
use scep::intune::{Intune, IntuneConfig};
use serde_json::{Value, json};
use support::{Pki, SID, context, intune_challenge, serve};

const TENANT: &str = "contoso.onmicrosoft.com";
const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT_SECRET: &str = "s3cret~Value.from-Entra";
const CALLER: &str = "privca-test/1.0";
const INTUNE_SCOPE: &str = "https://api.manage.microsoft.com//.default";
const INTUNE_APP: &str = "0000000a-0000-0000-c000-000000000000";

/// How the fake answers the next ScepActions call.
#[derive(Clone, Debug)]
enum Mode {
    Code(&'static str),
    Status(u16),
    Garbage,
    /// Waits, then answers Success (too late for a short client timeout).
    Slow(u64),
}

#[derive(Clone, Debug)]
struct Call {
    action: String,
    service: String,
    headers: HeaderMap,
    body: Value,
    /// What the fake answered (HTTP status).
    status: u16,
}

struct TokenInfo {
    scope: String,
    issued: Instant,
    lifetime: u64,
    revoked: bool,
}

#[derive(Default)]
struct FakeState {
    base: String,
    tokens: HashMap<String, TokenInfo>,
    token_requests: Vec<String>,
    discoveries: u32,
    /// Path segment where the validation service currently lives.
    service: String,
    /// Old service locations that answer 503 instead of 404.
    dead: Vec<String>,
    modes: HashMap<String, Vec<Mode>>,
    calls: Vec<Call>,
}

#[derive(Clone)]
struct Fake {
    state: Arc<Mutex<FakeState>>,
    lifetime: Arc<AtomicU64>,
}

impl Fake {
    fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake state")
    }
    /// Queues answers for an action (`validateRequest`, …); afterwards: Success.
    fn queue(&self, action: &str, modes: &[Mode]) {
        self.st()
            .modes
            .entry(action.into())
            .or_default()
            .extend(modes.iter().cloned());
    }
    fn calls(&self, action: &str) -> Vec<Call> {
        self.st()
            .calls
            .iter()
            .filter(|c| c.action == action)
            .cloned()
            .collect()
    }
    fn token_requests(&self, scope: &str) -> usize {
        self.st()
            .token_requests
            .iter()
            .filter(|s| *s == scope)
            .count()
    }
    fn discoveries(&self) -> u32 {
        self.st().discoveries
    }
    fn revoke_all_tokens(&self) {
        for t in self.st().tokens.values_mut() {
            t.revoked = true;
        }
    }
    fn move_service(&self, to: &str, old_is_dead: bool) {
        let mut st = self.st();
        if old_is_dead {
            let old = st.service.clone();
            st.dead.push(old);
        }
        st.service = to.into();
    }
    fn graph_scope(&self) -> String {
        format!("{}/graph/.default", self.st().base)
    }
}

/// Checks a bearer token: known, for `scope`, not expired, not revoked.
fn authorized(st: &FakeState, headers: &HeaderMap, scope: &str) -> bool {
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    st.tokens.get(token).is_some_and(|t| {
        t.scope == scope && !t.revoked && t.issued.elapsed() < Duration::from_secs(t.lifetime)
    })
}

async fn token(
    State(fake): State<Fake>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let graph_scope = fake.graph_scope();
    let mut st = fake.st();
    let scope = form.get("scope").cloned().unwrap_or_default();
    st.token_requests.push(scope.clone());
    if tenant != TENANT
        || form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"})),
        )
            .into_response();
    }
    if scope != INTUNE_SCOPE && scope != graph_scope {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_scope", "error_description": "AADSTS70011"})),
        )
            .into_response();
    }
    let lifetime = fake.lifetime.load(Ordering::SeqCst);
    let value = format!(
        "tok-{}-{}",
        st.token_requests.len(),
        if scope == INTUNE_SCOPE {
            "intune"
        } else {
            "graph"
        }
    );
    st.tokens.insert(
        value.clone(),
        TokenInfo {
            scope,
            issued: Instant::now(),
            lifetime,
            revoked: false,
        },
    );
    axum::Json(
        json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
        "access_token": value}),
    )
    .into_response()
}

async fn endpoints(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    let graph_scope = fake.graph_scope();
    let mut st = fake.st();
    st.discoveries += 1;
    if !authorized(&st, &headers, &graph_scope) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if headers.get("client-request-id").is_none() {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let base = st.base.clone();
    axum::Json(json!({"value": [
        {"providerName": "PkiConnectorFEService", "uri": format!("{base}/pki")},
        {"providerName": "scepRequestValidationFEService", "uri": format!("{base}/{}", st.service)},
        {"providerName": "OtherService", "uri": "https://elsewhere.example/x"},
    ]}))
    .into_response()
}

async fn action(
    State(fake): State<Fake>,
    Path((service, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mode = {
        let mut st = fake.st();
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let mut record = Call {
            action: action.clone(),
            service: service.clone(),
            headers: headers.clone(),
            body,
            status: 200,
        };
        let status = if st.dead.contains(&service) {
            Some(StatusCode::SERVICE_UNAVAILABLE)
        } else if service != st.service {
            Some(StatusCode::NOT_FOUND)
        } else if !authorized(&st, &headers, INTUNE_SCOPE) {
            Some(StatusCode::UNAUTHORIZED)
        } else {
            None
        };
        if let Some(s) = status {
            record.status = s.as_u16();
            st.calls.push(record);
            return s.into_response();
        }
        let queue = st.modes.entry(action.clone()).or_default();
        let mode = if queue.is_empty() {
            Mode::Code("Success")
        } else {
            queue.remove(0)
        };
        if let Mode::Status(s) = mode {
            record.status = s;
        }
        st.calls.push(record);
        mode
    };
    match mode {
        Mode::Code(code) => axum::Json(json!({"code": code,
            "errorDescription": if code == "Success" { "" } else { "described by the fake" }}))
        .into_response(),
        Mode::Status(s) => StatusCode::from_u16(s)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        Mode::Garbage => (StatusCode::OK, "<html>proxy error</html>").into_response(),
        Mode::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            axum::Json(json!({"code": "Success", "errorDescription": ""})).into_response()
        }
    }
}

async fn start_fake(lifetime: u64) -> (Fake, String) {
    let fake = Fake {
        state: Arc::new(Mutex::new(FakeState {
            service: "svc1".into(),
            ..FakeState::default()
        })),
        lifetime: Arc::new(AtomicU64::new(lifetime)),
    };
    let router = Router::new()
        .route("/login/{tenant}/oauth2/v2.0/token", post(token))
        .route(
            &format!("/graph/v1.0/servicePrincipals/appId={INTUNE_APP}/endpoints"),
            get(endpoints),
        )
        .route("/{service}/ScepActions/{action}", post(action))
        .with_state(fake.clone());
    let base = serve(router).await;
    fake.st().base = base.clone();
    (fake, base)
}

fn config(base: &str, timeout_ms: u64, retries: u32) -> IntuneConfig {
    serde_json::from_value(json!({
        "tenant": TENANT,
        "client_id": CLIENT_ID,
        "client_secret": {"env": "UNUSED_IN_THIS_TEST"},
        "login_url": format!("{base}/login"),
        "graph_url": format!("{base}/graph"),
        "caller_info": CALLER,
        "timeout_ms": timeout_ms,
        "validate_retries": retries,
    }))
    .expect("config")
}

fn intune(base: &str, timeout_ms: u64, retries: u32) -> Intune {
    Intune::new(
        &config(base, timeout_ms, retries),
        hsm::Secret::new(CLIENT_SECRET.as_bytes().to_vec()),
    )
    .expect("Intune method")
}

fn accepted(v: Verdict) -> scep::challenge::Acceptance {
    match v {
        Verdict::Accept(a) => a,
        Verdict::Reject(r) => panic!("expected acceptance, got {r:?}"),
    }
}

fn rejected(v: Verdict) -> Rejection {
    match v {
        Verdict::Accept(a) => panic!("expected a refusal, got {a:?}"),
        Verdict::Reject(r) => r,
    }
}

fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

/// A device enrollment: a fresh CSR with Intune's challenge and the SID URI.
fn device(pki: &Pki, n: u32) -> EnrollmentContext {
    let csr = pki.csr(
        &format!("dev{n}"),
        &format!("device-{n}"),
        Some(&intune_challenge()),
        Some(SID),
    );
    context("intune-devices", &format!("TX{n:04}ABCDEF"), &csr)
}

fn header<'a>(c: &'a Call, name: &str) -> &'a str {
    c.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_validates_then_notifies_with_exact_bodies() {
    let (fake, base) = start_fake(3600).await;
    let pki = Pki::new();
    let method = intune(&base, 5000, 1);
    let ctx = device(&pki, 1);
    assert_eq!(method.name(), "intune");

    let a = accepted(method.verify(&ctx).await);
    assert_eq!(a.requester, format!("intune:intune-devices:sid:{SID}"));
    assert_eq!(a.profile, None);

    let v = fake.calls("validateRequest");
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].service, "svc1", "the discovered service was called");
    assert_eq!(
        v[0].body,
        json!({"request": {"transactionId": "TX0001ABCDEF",
            "certificateRequest": b64(&ctx.csr.der), "callerInfo": CALLER}})
    );
    // The CSR Intune receives carries the whole challenge as challengePassword.
    let sent = base64::engine::general_purpose::STANDARD
        .decode(
            v[0].body["request"]["certificateRequest"]
                .as_str()
                .expect("csr"),
        )
        .expect("base64");
    let parsed = ca_core::csr::parse(&sent).expect("a CSR");
    assert_eq!(
        parsed.challenge_password.as_deref(),
        Some(intune_challenge().as_str())
    );
    assert_eq!(header(&v[0], "api-version"), "2018-02-20");
    assert_eq!(header(&v[0], "UserAgent"), CALLER);
    assert!(header(&v[0], "content-type").starts_with("application/json"));
    assert!(
        is_guid(header(&v[0], "client-request-id")),
        "{:?}",
        v[0].headers
    );
    assert!(header(&v[0], "authorization").ends_with("-intune"));

    // Both tokens came from the token endpoint, with the double-slash Intune scope.
    assert_eq!(fake.token_requests(INTUNE_SCOPE), 1);
    assert_eq!(fake.token_requests(&fake.graph_scope()), 1);
    assert_eq!(fake.discoveries(), 1);

    let issued = pki.issue("dev1", &ctx.csr.der, "4F2A19C3B7D5E6F1020304A5");
    method
        .issued(&ctx, &issued.der)
        .await
        .expect("successNotification accepted");
    let s = fake.calls("successNotification");
    assert_eq!(s.len(), 1);
    assert_eq!(
        s[0].body,
        json!({"notification": {
            "transactionId": "TX0001ABCDEF",
            "certificateRequest": b64(&ctx.csr.der),
            "certificateThumbprint": issued.sha1,
            "certificateSerialNumber": issued.serial,
            "certificateExpirationDateUtc": issued.not_after,
            "issuingCertificateAuthority": issued.issuer,
            "callerInfo": CALLER,
        }})
    );
    assert_eq!(issued.serial, "4F2A19C3B7D5E6F1020304A5");
    assert_eq!(header(&s[0], "api-version"), "2018-02-20");
    assert_ne!(
        header(&s[0], "client-request-id"),
        header(&v[0], "client-request-id"),
        "a new client-request-id per call"
    );
    assert!(fake.calls("failureNotification").is_empty());
    // Tokens and the service location were reused.
    assert_eq!(fake.token_requests(INTUNE_SCOPE), 1);
    assert_eq!(fake.discoveries(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_by_validate_request_sends_failure_notification() {
    let (fake, base) = start_fake(3600).await;
    let pki = Pki::new();
    let method = intune(&base, 5000, 1);
    let ctx = device(&pki, 2);
    fake.queue("validateRequest", &[Mode::Code("ChallengeExpired")]);

    let r = rejected(method.verify(&ctx).await);
    assert_eq!(
        r.client_text,
        "Intune refused the request: ChallengeExpired"
    );
    assert!(r.detail.contains("ChallengeExpired"), "{}", r.detail);
    assert!(!r.detail.contains("unknown"), "{}", r.detail);
    // The service reports the refusal to the method, which tells Intune.
    method.failed(&ctx, &r).await;
    let f = fake.calls("failureNotification");
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].body,
        json!({"notification": {
            "transactionId": "TX0002ABCDEF",
            "certificateRequest": b64(&ctx.csr.der),
            "hResult": 0x8007_0057u32,
            "errorDescription": "Intune refused the request: ChallengeExpired",
            "callerInfo": CALLER,
        }})
    );
    assert_eq!(header(&f[0], "UserAgent"), CALLER);
    assert!(fake.calls("successNotification").is_empty());

    // A CSR without challenge is refused without asking Intune, and Intune is not told
    // about a transaction it never saw.
    let bare = pki.csr("bare", "device-bare", None, Some(SID));
    let ctx = context("intune-devices", "TXBARE", &bare);
    let r = rejected(method.verify(&ctx).await);
    assert_eq!(r.client_text, "the request has no Intune challenge");
    assert_eq!(fake.calls("validateRequest").len(), 1);
    method.failed(&ctx, &r).await;
    assert_eq!(fake.calls("failureNotification").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_errors_are_refusals() {
    let (fake, base) = start_fake(3600).await;
    let pki = Pki::new();
    // No retries here, so that each queued answer decides one enrollment.
    let method = intune(&base, 1500, 0);

    // HTTP 500.
    fake.queue("validateRequest", &[Mode::Status(500)]);
    let ctx = device(&pki, 3);
    let r = rejected(method.verify(&ctx).await);
    assert_eq!(
        r.client_text,
        "Intune validation is unavailable; try again later"
    );
    assert!(r.detail.contains("500"), "{}", r.detail);
    // Intune was unreachable: no failureNotification is attempted.
    method.failed(&ctx, &r).await;
    assert!(fake.calls("failureNotification").is_empty());

    // A 200 whose body is not JSON.
    fake.queue("validateRequest", &[Mode::Garbage]);
    let ctx = device(&pki, 4);
    let r = rejected(method.verify(&ctx).await);
    assert!(r.detail.contains("not the expected JSON"), "{}", r.detail);

    // A result code privca does not know: a refusal, not a crash, not an acceptance.
    fake.queue(
        "validateRequest",
        &[Mode::Code("SomethingIntuneAddedLater")],
    );
    let ctx = device(&pki, 5);
    let r = rejected(method.verify(&ctx).await);
    assert!(
        r.detail.contains("unknown code SomethingIntuneAddedLater"),
        "{}",
        r.detail
    );
    method.failed(&ctx, &r).await;
    assert_eq!(
        fake.calls("failureNotification").len(),
        1,
        "Intune answered: report it"
    );

    // Too slow: the fake would answer Success after 4 s, the client gives up at 1.5 s.
    fake.queue("validateRequest", &[Mode::Slow(4000)]);
    let ctx = device(&pki, 6);
    let r = rejected(method.verify(&ctx).await);
    assert!(r.detail.contains("timed out"), "{}", r.detail);

    // The same outage with one retry allowed: the second attempt succeeds.
    let retrying = intune(&base, 1500, 1);
    fake.queue("validateRequest", &[Mode::Status(503)]);
    let ctx = device(&pki, 7);
    accepted(retrying.verify(&ctx).await);
    let v = fake.calls("validateRequest");
    let last_two: Vec<u16> = v[v.len() - 2..].iter().map(|c| c.status).collect();
    assert_eq!(last_two, [503, 200]);

    // Entra ID refusing the credentials is a refusal too, and names the AADSTS error.
    let bad = config(&base, 1500, 0);
    let wrong = Intune::new(&bad, hsm::Secret::new(b"wrong-secret".to_vec())).expect("builds");
    let ctx = device(&pki, 8);
    let r = rejected(wrong.verify(&ctx).await);
    assert!(r.detail.contains("invalid_client"), "{}", r.detail);
    assert!(r.detail.contains("AADSTS7000215"), "{}", r.detail);
    assert!(!r.detail.contains("wrong-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_renewed_before_expiry_and_after_a_401() {
    // Tokens live 2 s at the fake, which refuses them afterwards.
    let (fake, base) = start_fake(2).await;
    let pki = Pki::new();
    let method = intune(&base, 5000, 0);

    accepted(method.verify(&device(&pki, 10)).await);
    assert_eq!(fake.token_requests(INTUNE_SCOPE), 1);
    let first = header(&fake.calls("validateRequest")[0], "authorization").to_string();

    // Past half of the lifetime privca renews before using the token again.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    accepted(method.verify(&device(&pki, 11)).await);
    assert_eq!(
        fake.token_requests(INTUNE_SCOPE),
        2,
        "a new token was fetched"
    );
    let v = fake.calls("validateRequest");
    assert_eq!(v.len(), 2, "no call was refused for a stale token");
    assert_ne!(header(&v[1], "authorization"), first);
    // Discovery was cached, so no new Graph token was needed.
    assert_eq!(fake.token_requests(&fake.graph_scope()), 1);
    assert_eq!(fake.discoveries(), 1);

    // Long-lived tokens that the service suddenly refuses: one 401, one refresh, success.
    fake.lifetime.store(3600, Ordering::SeqCst);
    accepted(method.verify(&device(&pki, 12)).await);
    let before = fake.token_requests(INTUNE_SCOPE);
    fake.revoke_all_tokens();
    accepted(method.verify(&device(&pki, 13)).await);
    assert_eq!(fake.token_requests(INTUNE_SCOPE), before + 1);
    let v = fake.calls("validateRequest");
    let statuses: Vec<u16> = v[v.len() - 2..].iter().map(|c| c.status).collect();
    assert_eq!(statuses, [401, 200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_is_cached_and_redone_after_a_failure() {
    let (fake, base) = start_fake(3600).await;
    let pki = Pki::new();
    let method = intune(&base, 5000, 0);

    accepted(method.verify(&device(&pki, 20)).await);
    accepted(method.verify(&device(&pki, 21)).await);
    assert_eq!(fake.discoveries(), 1, "the service location is cached");

    // Intune moves the service; the old location answers 404.
    fake.move_service("svc2", false);
    let r = rejected(method.verify(&device(&pki, 22)).await);
    assert!(r.detail.contains("404"), "{}", r.detail);
    // The failure cleared the cache: the next enrollment discovers the new location.
    accepted(method.verify(&device(&pki, 23)).await);
    assert_eq!(fake.discoveries(), 2);
    assert_eq!(
        fake.calls("validateRequest").last().expect("call").service,
        "svc2"
    );

    // With a retry allowed, a move (old location answering 503) heals within one enrollment.
    let retrying = intune(&base, 5000, 1);
    accepted(retrying.verify(&device(&pki, 24)).await);
    let d = fake.discoveries();
    fake.move_service("svc3", true);
    accepted(retrying.verify(&device(&pki, 25)).await);
    assert_eq!(fake.discoveries(), d + 1);
    let v = fake.calls("validateRequest");
    let tail: Vec<(String, u16)> = v[v.len() - 2..]
        .iter()
        .map(|c| (c.service.clone(), c.status))
        .collect();
    assert_eq!(tail, [("svc2".to_string(), 503), ("svc3".to_string(), 200)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_success_notification_withholds_the_certificate() {
    let (fake, base) = start_fake(3600).await;
    let pki = Pki::new();
    let method = intune(&base, 1500, 1);

    for (n, mode) in [
        (30, Mode::Status(500)),
        (31, Mode::Code("ChallengeExpired")),
        (32, Mode::Garbage),
        (33, Mode::Slow(4000)),
    ] {
        let ctx = device(&pki, n);
        accepted(method.verify(&ctx).await);
        let cert = pki.issue(&format!("dev{n}"), &ctx.csr.der, "0A0B0C");
        fake.queue("successNotification", std::slice::from_ref(&mode));
        let r = method
            .issued(&ctx, &cert.der)
            .await
            .expect_err("the certificate must be withheld");
        assert_eq!(
            r.client_text,
            "Intune did not confirm the certificate; try again later"
        );
        // No failureNotification for a failed notification call (Microsoft's rule).
        method.failed(&ctx, &r).await;
        assert!(fake.calls("failureNotification").is_empty(), "{mode:?}");
    }
    // successNotification is not retried (only validateRequest is).
    assert_eq!(fake.calls("successNotification").len(), 4);

    // A certificate that does not even decode cannot be reported: withheld as well.
    let ctx = device(&pki, 34);
    accepted(method.verify(&ctx).await);
    assert!(method.issued(&ctx, b"\x30\x03\x02\x01\x01").await.is_err());

    // A certificate for a request Intune never validated (e.g. a renewal the service let
    // through without a challenge) is withheld without telling Intune anything.
    let before = fake.calls("successNotification").len();
    let ctx = device(&pki, 35);
    let cert = pki.issue("dev35", &ctx.csr.der, "0A0B0D");
    let r = method.issued(&ctx, &cert.der).await.expect_err("withheld");
    assert_eq!(r.client_text, "the request was not validated by Intune");
    method.failed(&ctx, &r).await;
    assert_eq!(fake.calls("successNotification").len(), before);
    assert!(fake.calls("failureNotification").is_empty());
    // Validation is consumed by one issuance: a second issued() for it is refused too.
    accepted(method.verify(&ctx).await);
    method
        .issued(&ctx, &cert.der)
        .await
        .expect("validated once");
    assert!(method.issued(&ctx, &cert.der).await.is_err());
}

/// The log of the whole test process. A scoped subscriber (`set_default`) raced with the
/// call-site interest cache when other tests of this binary logged at the same time (CI
/// once saw the TX0040 lines missing); the process-wide subscriber has no such window,
/// and every test's log is then checked for secrets, not only this one's.
fn process_log() -> Arc<Mutex<Vec<u8>>> {
    use std::io::Write;
    use std::sync::OnceLock;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buf").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static LOG: OnceLock<Buf> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        tracing::callsite::rebuild_interest_cache();
        buf
    })
    .0
    .clone()
}

#[tokio::test]
async fn secrets_tokens_and_challenges_never_reach_the_log() {
    let log_buf = process_log();

    let (fake, base) = start_fake(3600).await;
    let pki = Pki::new();
    let method = intune(&base, 1500, 0);
    let ctx = device(&pki, 40);
    accepted(method.verify(&ctx).await);
    let cert = pki.issue("dev40", &ctx.csr.der, "77");
    method.issued(&ctx, &cert.der).await.expect("notified");
    fake.queue("validateRequest", &[Mode::Code("ChallengeExpired")]);
    let ctx = device(&pki, 41);
    let r = rejected(method.verify(&ctx).await);
    method.failed(&ctx, &r).await;

    let log = String::from_utf8(log_buf.lock().expect("buf").clone()).expect("utf-8");
    assert!(log.contains("TX0040ABCDEF"), "the log is captured: {log}");
    assert!(log.contains("ChallengeExpired"));
    assert!(!log.contains(CLIENT_SECRET));
    assert!(!log.contains("tok-"), "a token was logged: {log}");
    assert!(
        !log.contains(&intune_challenge()[..40]),
        "the challenge was logged"
    );
    assert!(
        !log.contains(&b64(&ctx.csr.der)[..60]),
        "the CSR body was logged"
    );
}
