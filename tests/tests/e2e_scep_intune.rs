//! SCEP with the `intune` and `webhook` challenge methods, end to end: micromdm
//! `scepclient` enrolls with `privca serve`, which validates with a fake Entra ID + Graph +
//! Intune service (and a webhook) on 127.0.0.1, started by this test. Checks what Intune
//! receives (validateRequest with the client's CSR and challenge, successNotification
//! with the issued certificate's thumbprint and serial as OpenSSL reports them,
//! failureNotification on a refusal) and that a failed successNotification withholds and
//! revokes the certificate. Runs when `PRIVCA_INTEROP=1`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use privca_tests::output_text as text;
use privca_tests::{TestCa, interop_enabled, ok, openssl, run};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");
const SECRET: &str = "e2e-client-secret";

#[derive(Default)]
struct Fake {
    base: String,
    fail_success: bool,
    /// What downloadRevocationRequests hands out (once; then nothing).
    revocations: Vec<Value>,
    calls: Vec<(String, Value)>,
    tokens: u32,
}

type Shared = Arc<Mutex<Fake>>;

fn challenge_of(b64: &str) -> Option<String> {
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    ca_core::csr::parse(&der).ok()?.challenge_password
}

async fn token(
    State(f): State<Shared>,
    UrlPath(tenant): UrlPath<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut f = f.lock().expect("fake");
    if tenant != "contoso.onmicrosoft.com"
        || form.get("client_secret").map(String::as_str) != Some(SECRET)
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    f.tokens += 1;
    axum::Json(json!({"token_type": "Bearer", "expires_in": 3599,
        "access_token": format!("t{}", f.tokens)}))
    .into_response()
}

async fn endpoints(State(f): State<Shared>) -> Response {
    let base = f.lock().expect("fake").base.clone();
    axum::Json(
        json!({"value": [{"providerName": "ScepRequestValidationFEService",
        "uri": format!("{base}/svc")},
        {"providerName": "PkiConnectorFEService", "uri": format!("{base}/pki")}]}),
    )
    .into_response()
}

async fn action(
    State(f): State<Shared>,
    UrlPath(action): UrlPath<String>,
    body: String,
) -> Response {
    let mut f = f.lock().expect("fake");
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    f.calls.push((action.clone(), v.clone()));
    let code = match action.as_str() {
        "validateRequest" => {
            match challenge_of(v["request"]["certificateRequest"].as_str().unwrap_or("")) {
                Some(c) if c == "intune-good" => "Success",
                _ => "ChallengeExpired",
            }
        }
        "successNotification" if f.fail_success => {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        _ => "Success",
    };
    axum::Json(json!({"code": code, "errorDescription": ""})).into_response()
}

/// Intune's PkiConnectorFEService: hands out the primed revocation requests once, and
/// records the uploaded results.
async fn pki(
    State(f): State<Shared>,
    UrlPath(action): UrlPath<String>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Response {
    let mut f = f.lock().expect("fake");
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let version = headers
        .get("api-version")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    f.calls
        .push((action.clone(), json!({"body": v, "api-version": version})));
    match action.as_str() {
        "downloadRevocationRequests" => {
            let value = std::mem::take(&mut f.revocations);
            axum::Json(json!({ "value": value })).into_response()
        }
        "uploadRevocationResults" => axum::Json(json!({"value": true})).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn hook(State(f): State<Shared>, body: String) -> Response {
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    f.lock()
        .expect("fake")
        .calls
        .push(("hook".into(), v.clone()));
    if v["challenge"] == "hook-yes" {
        axum::Json(json!({"allow": true, "requester": "nac"})).into_response()
    } else {
        axum::Json(json!({"allow": false, "reason": "not on the list"})).into_response()
    }
}

/// Starts the fake on its own runtime thread; returns its state and base URL.
fn start_fake() -> (Shared, String) {
    let shared: Shared = Arc::default();
    let state = shared.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let base = format!("http://{}", listener.local_addr().expect("addr"));
            state.lock().expect("fake").base = base.clone();
            let app = Router::new()
                .route("/login/{tenant}/oauth2/v2.0/token", post(token))
                .route(
                    "/graph/v1.0/servicePrincipals/appId=0000000a-0000-0000-c000-000000000000/endpoints",
                    get(endpoints),
                )
                .route("/svc/ScepActions/{action}", post(action))
                .route("/pki/CertificateAuthorityRequests/{action}", post(pki))
                .route("/hook", post(hook))
                .with_state(state);
            tx.send(base).expect("send");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    let base = rx.recv().expect("fake started");
    (shared, base)
}

fn scepclient(dir: &Path, url: &str, cn: &str, challenge: &str) -> std::process::Output {
    privca_tests::scepclient(dir, url, cn, Some(challenge))
}

fn calls(f: &Shared, action: &str) -> Vec<Value> {
    f.lock()
        .expect("fake")
        .calls
        .iter()
        .filter(|(a, _)| a == action)
        .map(|(_, v)| v.clone())
        .collect()
}

/// A CA (RSA root and issuing CA) with an Intune SCEP endpoint `intune` against the fake
/// at `base`; `challenge_extra` goes into its challenge table, `more` after it.
fn intune_ca(base: &str, challenge_extra: &str, more: &str) -> TestCa {
    let ca = TestCa::init(
        Path::new(BIN),
        &["--root-key", "rsa-2048", "--issuing-key", "rsa-2048"],
    );
    privca_tests::write_secret(&ca.data.join("intune.secret"), format!("{SECRET}\n"));
    let mut cfg = std::fs::read_to_string(ca.config()).expect("config");
    cfg.push_str(&format!(
        r#"
[scep.endpoints.intune]
profile = "device"
allow_des = true            # micromdm scepclient 2.1.0 only encrypts with DES-CBC
[scep.endpoints.intune.challenge]
method = "intune"
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = {{ file = "intune.secret" }}
login_url = "{base}/login"
graph_url = "{base}/graph"
{challenge_extra}
{more}"#
    ));
    std::fs::write(ca.config(), cfg).expect("config");
    ca
}

#[test]
fn scep_with_intune_validation_and_a_webhook() {
    if !interop_enabled("scep_with_intune_validation_and_a_webhook") {
        return;
    }
    let (fake, base) = start_fake();
    let mut ca = intune_ca(
        &base,
        "caller_info = \"privca-e2e\"",
        &format!(
            r#"
[scep.endpoints.hook]
profile = "device"
allow_des = true
challenge = {{ method = "webhook", url = "{base}/hook", timeout_ms = 5000 }}
"#
        ),
    );
    ca.start();
    let intune = ca.url("/scep/intune");

    // 1. Intune accepts: the certificate is issued, then reported to Intune.
    let d1 = ca.path("i1");
    let o = scepclient(&d1, &intune, "laptop-1", "intune-good");
    assert!(
        o.status.success() && text(&o).contains("SUCCESS"),
        "{}",
        text(&o)
    );
    let v = calls(&fake, "validateRequest");
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["request"]["callerInfo"], "privca-e2e");
    let csr_pem = std::fs::read_to_string(d1.join("csr.pem")).expect("scepclient's CSR");
    let (_, csr_der) = der::pem::decode_vec(csr_pem.trim().as_bytes()).expect("pem");
    assert_eq!(
        v[0]["request"]["certificateRequest"],
        base64::engine::general_purpose::STANDARD.encode(&csr_der),
        "Intune got the client's CSR as sent"
    );
    let s = calls(&fake, "successNotification");
    assert_eq!(s.len(), 1);
    let cert = d1.join("cert.pem");
    let fp = ok(openssl()
        .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
        .arg(&cert));
    let fp = fp
        .trim()
        .split_once('=')
        .expect("fingerprint")
        .1
        .replace(':', "");
    assert_eq!(s[0]["notification"]["certificateThumbprint"], fp.as_str());
    let serial = ok(openssl()
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&cert));
    let serial = serial.trim().split_once('=').expect("serial").1.to_string();
    assert_eq!(
        s[0]["notification"]["certificateSerialNumber"],
        serial.as_str()
    );
    assert_eq!(
        s[0]["notification"]["transactionId"],
        v[0]["request"]["transactionId"]
    );

    // 1b. A renewal without challenge (scepclient sends a RenewalReq signed by cert.pem;
    //     it would reuse csr.pem, which holds the challenge, so that goes first): the
    //     Intune method verifies renewals too, so it is refused before anything is
    //     issued, and Intune is never told of a success.
    std::fs::remove_file(d1.join("csr.pem")).expect("remove csr.pem");
    let o = run(Command::new("scepclient").current_dir(&d1).args([
        "-server-url",
        &intune,
        "-private-key",
        "key.pem",
        "-certificate",
        "cert.pem",
        "-cn",
        "laptop-1",
    ]));
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(
        calls(&fake, "successNotification").len(),
        1,
        "Intune was not told"
    );
    let revoked = ok(ca.cmd().args(["list", "--status", "revoked", "--json"]));
    let withheld: Value = serde_json::from_str(&revoked).expect("json");
    assert_eq!(withheld.as_array().map(Vec::len), Some(0), "{revoked}");
    let all: Value = serde_json::from_str(&ok(ca.cmd().args(["list", "--json"]))).expect("json");
    let laptop1 = all
        .as_array()
        .expect("array")
        .iter()
        .filter(|c| c["subject"].as_str().unwrap_or("").contains("laptop-1"))
        .count();
    assert_eq!(laptop1, 1, "nothing issued for the renewal");

    // 2. Intune refuses: FAILURE, and the refusal is reported back to Intune.
    let o = scepclient(&ca.path("i2"), &intune, "laptop-2", "intune-stale");
    assert!(
        !o.status.success() && text(&o).contains("badRequest"),
        "{}",
        text(&o)
    );
    assert!(!ca.path("i2/cert.pem").exists());
    let f = calls(&fake, "failureNotification");
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0]["notification"]["errorDescription"],
        "Intune refused the request: ChallengeExpired"
    );

    // 3. successNotification fails: the certificate is withheld and revoked.
    fake.lock().expect("fake").fail_success = true;
    let o = scepclient(&ca.path("i3"), &intune, "laptop-3", "intune-good");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!ca.path("i3/cert.pem").exists());
    let revoked = ok(ca.cmd().args(["list", "--status", "revoked", "--json"]));
    let list: Value = serde_json::from_str(&revoked).expect("json");
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1, "{revoked}");
    let laptop3 = list
        .iter()
        .find(|c| c["subject"].as_str().unwrap_or("").contains("laptop-3"))
        .expect("laptop-3 revoked");
    assert_eq!(laptop3["reason"], "cessationOfOperation", "{revoked}");
    assert_eq!(
        calls(&fake, "failureNotification").len(),
        1,
        "no failureNotification after a failed successNotification"
    );
    // The two tokens (Graph, Intune) were fetched once for all of this.
    assert_eq!(fake.lock().expect("fake").tokens, 2);

    // 4. The webhook endpoint: allow and deny.
    let hook_url = ca.url("/scep/hook");
    let o = scepclient(&ca.path("h1"), &hook_url, "switch-1", "hook-yes");
    assert!(
        o.status.success() && text(&o).contains("SUCCESS"),
        "{}",
        text(&o)
    );
    let o = scepclient(&ca.path("h2"), &hook_url, "switch-2", "hook-no");
    assert!(
        !o.status.success() && text(&o).contains("badRequest"),
        "{}",
        text(&o)
    );
    let h = calls(&fake, "hook");
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["endpoint"], "hook");
    // scepclient adds its default OU, O and C to the subject.
    assert!(
        h[0]["subject"]
            .as_str()
            .unwrap_or("")
            .starts_with("CN=switch-1,"),
        "{}",
        h[0]
    );
    let all = ok(ca.cmd().args(["list", "--json"]));
    assert!(all.contains("webhook:hook:nac"), "{all}");
    assert!(all.contains("intune:intune"), "{all}");

    let status = ca.stop();
    assert!(status.success(), "server exit: {status}");
    let log = ca.server_log();
    assert!(!log.contains(SECRET), "the client secret reached the log");
    assert!(!log.contains("intune-good"), "a challenge reached the log");
}

/// Intune-driven revocation: after a device enrolled through the Intune endpoint, Intune
/// asks (through the PkiConnectorFEService found by discovery) to revoke its
/// certificate, a certificate the CLI issued, a serial privca never issued and a serial
/// that is not hexadecimal. privca revokes only the first (OCSP says revoked,
/// cessationOfOperation; the CLI's certificate stays good), answers each request with
/// its result code, and audits the refusals.
#[test]
fn intune_revocation_requests_revoke_only_what_the_endpoint_enrolled() {
    if !interop_enabled("intune_revocation_requests_revoke_only_what_the_endpoint_enrolled") {
        return;
    }
    let (fake, base) = start_fake();
    let mut ca = intune_ca(
        &base,
        "revocation = { interval_seconds = 3600, max_requests = 50 }",
        "",
    );
    ca.start();
    let d1 = ca.path("phone");
    let o = scepclient(&d1, &ca.url("/scep/intune"), "phone-1", "intune-good");
    assert!(o.status.success(), "{}", text(&o));
    let cert = d1.join("cert.pem");
    let serial_of = |p: &Path| {
        let s = ok(openssl().args(["x509", "-noout", "-serial", "-in"]).arg(p));
        s.trim().split_once('=').expect("serial").1.to_string()
    };
    let phone = serial_of(&cert);
    let server = ca.path("server");
    ok(ca
        .cmd()
        .args([
            "issue",
            "--profile",
            "tls-server",
            "--generate-key",
            "--dns",
            "srv.example",
            "--out",
        ])
        .arg(&server));
    let server_cert = server.with_extension("crt");
    let cli = serial_of(&server_cert);
    ca.stop();

    // The first round runs two seconds after the start.
    fake.lock().expect("fake").revocations = vec![
        json!({"requestContext": "ctx-phone", "serialNumber": phone, "issuerName": "CN=privca Issuing CA,O=privca"}),
        json!({"requestContext": "ctx-cli", "serialNumber": cli}),
        json!({"requestContext": "ctx-unknown", "serialNumber": "0123456789ABCDEF"}),
        json!({"requestContext": "ctx-garbage", "serialNumber": "not hex"}),
    ];
    ca.start();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let upload = loop {
        if let Some(u) = calls(&fake, "uploadRevocationResults").pop() {
            break u;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no upload: {}",
            ca.server_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let download = calls(&fake, "downloadRevocationRequests");
    assert_eq!(download[0]["body"]["downloadParameters"]["maxRequests"], 50);
    assert_eq!(download[0]["api-version"], "5019-05-05");
    assert_eq!(upload["api-version"], "5019-05-05");
    let results = upload["body"]["results"]
        .as_array()
        .expect("results")
        .clone();
    let by_ctx = |ctx: &str| {
        results
            .iter()
            .find(|r| r["requestContext"] == ctx)
            .unwrap_or_else(|| panic!("no result for {ctx}: {results:?}"))
            .clone()
    };
    assert_eq!(by_ctx("ctx-phone")["succeeded"], true, "{results:?}");
    assert_eq!(by_ctx("ctx-phone")["errorCode"], 0);
    for (ctx, code) in [
        ("ctx-cli", 4003),
        ("ctx-unknown", 4003),
        ("ctx-garbage", 4001),
    ] {
        let r = by_ctx(ctx);
        assert_eq!(r["succeeded"], false, "{r}");
        assert_eq!(r["errorCode"], code, "{r}");
        assert!(!r["errorMessage"].as_str().unwrap_or("").is_empty(), "{r}");
    }

    // OCSP over the wire: the phone's certificate is revoked, the server's is not.
    let chain = ca.write_chain_pem();
    let ocsp = |c: &Path| {
        text(&run(openssl()
            .args(["ocsp", "-issuer"])
            .arg(ca.data.join("ca/issuing.crt"))
            .arg("-CAfile")
            .arg(&chain)
            .arg("-cert")
            .arg(c)
            .args(["-url", &ca.url("/ocsp"), "-resp_text"])))
    };
    let o = ocsp(&cert);
    assert!(
        o.contains("Cert Status: revoked") && o.contains("Revocation Reason: cessationOfOperation"),
        "{o}"
    );
    let o = ocsp(&server_cert);
    assert!(o.contains("Cert Status: good"), "{o}");
    // The revocation and the three refusals are in the audit log, named as Intune's.
    ca.stop();
    let store =
        store::RedbStore::open(&ca.data.join("privca.redb"), store::StoreOptions::default())
            .expect("open the store (no server running)");
    let entries = store::Store::audit_entries(&store, 1, 10_000).expect("audit entries");
    let by_intune: Vec<_> = entries
        .iter()
        .filter(|e| e.event.actor == "intune:intune:revocation")
        .map(|e| (e.event.action.clone(), e.event.subject.clone()))
        .collect();
    assert_eq!(
        by_intune
            .iter()
            .filter(|(a, _)| a == "intune-revoke")
            .count(),
        3,
        "{by_intune:?}"
    );
    assert!(
        by_intune.iter().any(|(a, _)| a != "intune-revoke"),
        "the revocation itself: {by_intune:?}"
    );
}
