//! The two transports of the admin interface give the same answers: one sequence of
//! admin operations runs through the in-process `LocalAdmin` and through `RemoteAdmin`
//! (the admin API over HTTP) against one in-process server sharing one authority, and
//! every answer — success JSON or error status and message — is compared.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use privca_server::Error;
use privca_server::admin::{
    Admin, IssueInput, ListQuery, LocalAdmin, RejectInput, RemoteAdmin, RequestsQuery,
    RevokeCertInput, RevokeInput, RevokeKeyInput, status_of,
};
use privca_server::scep_wiring::ChallengeInput;
use privca_tests::{InProcessServer, TestCa, admin_state};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");
const TOKEN: &str = "0123456789abcdef-admin";

/// A P-256 public key no certificate of the test has.
const UNUSED_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMJF1g7RzKn7dFAtYwLr0Iw59bdUM
E4JjcDS+OBh7WSW4BvH3e2BuW0RjfBenYewcD2ICU9fFRe9uDee3dsF/qg==
-----END PUBLIC KEY-----
";

const ENDPOINTS: &str = r#"
[scep.endpoints.otp]
profile = "device"
challenge = { method = "one-time" }
"#;

/// Fields whose values differ between two runs of the same operation (serials, keys,
/// times, counters that the first run advanced).
const VARYING: &[&str] = &[
    "serial",
    "certificate_pem",
    "private_key_pem",
    "pem",
    "not_before",
    "not_after",
    "revoked_at",
    "this_update",
    "next_update",
    "number",
    "bytes",
    "entries",
    "challenge",
    "expires_at",
    "next_cursor",
    "id",
    "created_at",
];

/// The answer as JSON with the varying fields blanked and the run's tag replaced, or the
/// error as the status and message a client sees.
fn normalise(v: Value, tag: &str) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    if VARYING.contains(&k.as_str()) && !v.is_null() {
                        (k, Value::String("*".into()))
                    } else {
                        (k, normalise(v, tag))
                    }
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(|v| normalise(v, tag)).collect()),
        Value::String(s) => Value::String(s.replace(tag, "TAG")),
        other => other,
    }
}

fn error_value(e: Error, tag: &str) -> Value {
    let (status, message) = match e {
        Error::Core(e) => (status_of(e.kind()), e.client_message()),
        Error::Api { status, message } => (status, message),
        other => panic!("not an answer of the admin interface: {other}"),
    };
    serde_json::json!({ "status": status, "error": message.replace(tag, "TAG") })
}

macro_rules! outcome {
    ($tag:expr, $r:expr) => {
        match $r {
            Ok(v) => normalise(serde_json::to_value(&v).unwrap(), $tag),
            Err(e) => error_value(e, $tag),
        }
    };
}

/// `v` with `from` replaced by `to` in every string.
fn replace_all(v: &Value, from: &str, to: &str) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), replace_all(v, from, to)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| replace_all(v, from, to)).collect()),
        Value::String(s) => Value::String(s.replace(from, to)),
        other => other.clone(),
    }
}

/// One sequence of admin operations; `tag` makes its names its own. The answers name
/// the run's serial as `SERIAL`.
fn sequence(
    admin: &dyn Admin,
    hold: &dyn Fn(&str) -> u64,
    tag: &str,
) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    out.push(("profiles", outcome!(tag, admin.profiles())));
    let issued = admin.issue(&IssueInput {
        profile: "tls-server".into(),
        generate_key: Some(hsm::KeyAlgorithm::EcdsaP256),
        subject: Some(format!("CN={tag}.example")),
        sans: vec![format!("{tag}.example")],
        ..IssueInput::default()
    });
    let serial = issued
        .as_ref()
        .map(|o| o.serial.clone())
        .unwrap_or_default();
    out.push(("issue", outcome!(tag, issued)));
    out.push((
        "issue refused by the profile",
        outcome!(
            tag,
            admin.issue(&IssueInput {
                profile: "tls-server".into(),
                generate_key: Some(hsm::KeyAlgorithm::EcdsaP256),
                sans: vec![format!("{tag} with spaces")],
                ..IssueInput::default()
            })
        ),
    ));
    out.push((
        "issue of an unknown profile",
        outcome!(
            tag,
            admin.issue(&IssueInput {
                profile: format!("no-such-{tag}"),
                generate_key: Some(hsm::KeyAlgorithm::EcdsaP256),
                ..IssueInput::default()
            })
        ),
    ));
    out.push(("show", outcome!(tag, admin.show(&serial))));
    out.push((
        "show of an unknown serial",
        outcome!(tag, admin.show("7f00ff")),
    ));
    out.push((
        "show of a malformed serial",
        outcome!(tag, admin.show("not hex/?")),
    ));
    let list = |status: Option<&str>, limit: Option<usize>| ListQuery {
        status: status.map(str::to_string),
        text: Some(format!("{tag}.example")),
        limit,
        ..ListQuery::default()
    };
    out.push((
        "list",
        outcome!(tag, admin.list(&list(Some("valid"), None))),
    ));
    out.push((
        "list with a bad status",
        outcome!(tag, admin.list(&list(Some("lost"), None))),
    ));
    out.push((
        "list with a bad limit",
        outcome!(tag, admin.list(&list(None, Some(0)))),
    ));
    out.push((
        "list with a bad cursor",
        outcome!(
            tag,
            admin.list(&ListQuery {
                cursor: Some("!!".into()),
                ..list(None, None)
            })
        ),
    ));
    let revoke = RevokeInput {
        reason: Some("keyCompromise".into()),
        ..RevokeInput::default()
    };
    out.push(("revoke", outcome!(tag, admin.revoke(&serial, &revoke))));
    out.push((
        "revoke again",
        outcome!(tag, admin.revoke(&serial, &revoke)),
    ));
    out.push((
        "revoke with an unknown reason",
        outcome!(
            tag,
            admin.revoke(
                &serial,
                &RevokeInput {
                    reason: Some("boredom".into()),
                    ..RevokeInput::default()
                }
            )
        ),
    ));
    // Revocation as operators need it (docs/lifecycle.md): invalidity dates, holds,
    // revoking by certificate and by key.
    let issue = |cn: &str| {
        admin
            .issue(&IssueInput {
                profile: "tls-server".into(),
                generate_key: Some(hsm::KeyAlgorithm::EcdsaP256),
                // Not matched by the lists above and below (text `{tag}.example`): in
                // one second, several certificates share a notAfter and list in
                // random serial order.
                subject: Some(format!("CN={tag}-{cn}.example")),
                sans: vec![format!("{tag}-{cn}.example")],
                ..IssueInput::default()
            })
            .unwrap()
    };
    let second_cert = issue("second");
    let third = issue("third");
    let with = |reason: &str, date: Option<&str>| RevokeInput {
        reason: Some(reason.into()),
        invalidity_date: date.map(str::to_string),
    };
    out.push((
        "revoke with a future invalidity date",
        outcome!(
            tag,
            admin.revoke(
                &second_cert.serial,
                &with("keyCompromise", Some("2999-01-01T00:00:00Z"))
            )
        ),
    ));
    out.push((
        "revoke with a malformed invalidity date",
        outcome!(
            tag,
            admin.revoke(
                &second_cert.serial,
                &with("keyCompromise", Some("yesterday"))
            )
        ),
    ));
    out.push((
        "hold where the profile does not allow it",
        outcome!(
            tag,
            admin.revoke(&second_cert.serial, &with("certificateHold", None))
        ),
    ));
    out.push((
        "release of a certificate not on hold",
        outcome!(tag, admin.release(&serial)),
    ));
    out.push((
        "release of an unknown serial",
        outcome!(tag, admin.release("7f00ff")),
    ));
    let by_cert = |pem: &str| RevokeCertInput {
        certificate_pem: pem.into(),
        reason: Some("superseded".into()),
        invalidity_date: Some("2020-01-02T03:04:05Z".into()),
    };
    out.push((
        "revoke by certificate",
        outcome!(
            tag,
            admin.revoke_by_certificate(&by_cert(&second_cert.certificate_pem))
        ),
    ));
    out.push((
        "revoke by certificate again",
        outcome!(
            tag,
            admin.revoke_by_certificate(&by_cert(&second_cert.certificate_pem))
        ),
    ));
    out.push((
        "revoke by a file that is no certificate",
        outcome!(
            tag,
            admin.revoke_by_certificate(&by_cert("not a certificate"))
        ),
    ));
    let by_key = |pem: &str| RevokeKeyInput {
        key_pem: pem.into(),
        reason: Some("cessationOfOperation".into()),
        invalidity_date: None,
    };
    out.push((
        "revoke by key",
        outcome!(tag, admin.revoke_by_key(&by_key(&third.certificate_pem))),
    ));
    out.push((
        "revoke by a key that matches nothing",
        outcome!(tag, admin.revoke_by_key(&by_key(UNUSED_KEY))),
    ));
    out.push((
        "list revoked",
        outcome!(tag, admin.list(&list(Some("revoked"), Some(5)))),
    ));
    out.push(("crl of one CA", outcome!(tag, admin.crl(Some("issuing")))));
    out.push(("crl of every CA", outcome!(tag, admin.crl(None))));
    out.push((
        "crl of an unknown CA",
        outcome!(tag, admin.crl(Some("no.such/ca"))),
    ));
    out.push(("audit verify", outcome!(tag, admin.audit_verify())));
    let challenge = |endpoint: &str, ttl: Option<&str>| ChallengeInput {
        endpoint: endpoint.into(),
        ttl: ttl.map(str::to_string),
    };
    out.push((
        "scep challenge",
        outcome!(tag, admin.scep_challenge(&challenge("otp", Some("30m")))),
    ));
    out.push((
        "scep challenge of an unknown endpoint",
        outcome!(tag, admin.scep_challenge(&challenge("nowhere", None))),
    ));
    out.push((
        "scep challenge with a bad ttl",
        outcome!(tag, admin.scep_challenge(&challenge("otp", Some("soon")))),
    ));
    let pending = || RequestsQuery {
        state: Some("pending".into()),
    };
    out.push((
        "requests pending",
        outcome!(tag, admin.requests(&pending())),
    ));
    let (first, second) = (
        hold(&format!("{tag}-held-1")),
        hold(&format!("{tag}-held-2")),
    );
    out.push((
        "requests pending after two arrived",
        outcome!(tag, admin.requests(&pending())),
    ));
    out.push(("approve", outcome!(tag, admin.approve(first))));
    out.push((
        "reject",
        outcome!(
            tag,
            admin.reject(
                second,
                &RejectInput {
                    reason: format!("not for {tag}")
                }
            )
        ),
    ));
    out.push((
        "requests pending when decided",
        outcome!(tag, admin.requests(&pending())),
    ));
    out.push((
        "requests in a bad state",
        outcome!(
            tag,
            admin.requests(&RequestsQuery {
                state: Some("lost".into())
            })
        ),
    ));
    out.push((
        "approve of an unknown request",
        outcome!(tag, admin.approve(987_654)),
    ));
    out.push((
        "reject of an unknown request",
        outcome!(
            tag,
            admin.reject(
                987_654,
                &RejectInput {
                    reason: "no".into()
                }
            )
        ),
    ));
    out.push((
        "reject without a reason",
        outcome!(
            tag,
            admin.reject(987_654, &RejectInput { reason: " ".into() })
        ),
    ));
    out.into_iter()
        .map(|(step, v)| {
            let v = replace_all(&v, &serial, "SERIAL");
            (step, replace_all(&v, &second_cert.serial, "SECOND"))
        })
        .collect()
}

#[test]
fn local_and_remote_admin_answer_alike() {
    let ca = TestCa::init(Path::new(BIN), &[]);
    let mut text = std::fs::read_to_string(ca.config()).unwrap();
    text.push_str(ENDPOINTS);
    std::fs::write(ca.config(), text).unwrap();
    let cfg = privca_server::config::Config::load(&ca.config()).unwrap();
    let auth = Arc::new(cfg.load_authority().unwrap());
    let state = admin_state(auth.clone(), &cfg.scep, TOKEN, None);
    let server = InProcessServer::start(state, Duration::from_secs(60));
    let addr = server.addr;

    // The handlers record their operations as `admin-api`: so does the local transport
    // here, so that requesters compare equal.
    let local = LocalAdmin::new(&auth, &cfg.scep, "admin-api");
    let remote = RemoteAdmin::new(addr, hsm::Secret::new(TOKEN.as_bytes().to_vec())).unwrap();
    // A request held for approval, as an enrollment endpoint holds one.
    let hold = |cn: &str| {
        let request = store::PendingRequest {
            id: 0,
            lookup_key: format!("test:{cn}"),
            endpoint: "otp".into(),
            profile: "tls-client".into(),
            requester: "test".into(),
            csr_der: privca_server::bench_est::make_csr(cn, None).unwrap(),
            created_at: auth.now(),
            state: store::PendingState::Pending,
            serial: None,
            note: None,
        };
        let event = store::AuditEvent {
            time: auth.now(),
            action: "held".into(),
            actor: "test".into(),
            subject: cn.into(),
            detail: String::new(),
        };
        auth.store().put_pending(&request, &event).unwrap()
    };
    let here = sequence(&local, &hold, "local-run");
    let there = sequence(&remote, &hold, "remote-run");
    assert_eq!(here.len(), there.len());
    for ((step, a), (_, b)) in here.iter().zip(&there) {
        assert_eq!(a, b, "{step}: local and remote answers differ");
    }
    // The sequence reached both outcomes: these steps succeed, every other one is refused.
    let succeed = [
        "profiles",
        "issue",
        "show",
        "list",
        "revoke",
        "revoke by certificate",
        "revoke by key",
        "list revoked",
        "crl of one CA",
        "crl of every CA",
        "audit verify",
        "scep challenge",
        "requests pending",
        "requests pending after two arrived",
        "approve",
        "reject",
        "requests pending when decided",
    ];
    for (step, v) in &here {
        let refused = v.get("error").is_some() && v.get("status").is_some_and(|s| s.is_u64());
        assert_eq!(!refused, succeed.contains(step), "{step}: {v}");
    }
    // Both runs went to the same store: each sees its own certificate revoked.
    let both = local
        .list(&ListQuery {
            status: Some("revoked".into()),
            text: Some("-run.example".into()),
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(both.certificates.len(), 2);
    // And each revoked one by certificate and one by key.
    for name in ["-run-second.example", "-run-third.example"] {
        let revoked = local
            .list(&ListQuery {
                status: Some("revoked".into()),
                text: Some(name.into()),
                ..ListQuery::default()
            })
            .unwrap();
        assert_eq!(revoked.certificates.len(), 2, "{name}");
    }

    // A wrong token is the admin API's 401, mapped to the same error type.
    let wrong = RemoteAdmin::new(addr, hsm::Secret::new(b"wrong-token-0123456".to_vec())).unwrap();
    match wrong.profiles() {
        Err(Error::Api { status, .. }) => assert_eq!(status, 401),
        other => panic!("expected 401, got {other:?}"),
    }

    server.stop();
}
