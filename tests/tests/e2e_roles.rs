//! Roles and scoped API tokens (issue 14 item 3) against `privca serve`, with curl as the
//! admin API's client and `privca token …` as the administrator's: what each role may
//! and may not do, scopes by profile and SCEP endpoint, revoked, expired and malformed
//! tokens, last use, the audit entries naming the token, and a console session opened
//! with a read-only token refused a revoke.

use std::path::Path;
use std::process::Command;

use privca_tests::{TestCa, ok};

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");

const ENDPOINTS: &str = r#"
[scep.endpoints.otp]
profile = "device"
challenge = { method = "one-time" }

[scep.endpoints.otp2]
profile = "device"
challenge = { method = "one-time" }
"#;

/// curl with `Authorization: Bearer <token>` from a header file (never in argv);
/// returns the status and the body.
fn curl(ca: &TestCa, token: &str, method: &str, path: &str, json: Option<&str>) -> (u16, String) {
    let headers = ca.path("auth-header");
    std::fs::write(&headers, format!("Authorization: Bearer {token}\n")).expect("header file");
    let body = ca.path("curl-body");
    let mut c = Command::new("curl");
    c.args(["-sS", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code}", "-X", method, "-H"])
        .arg(format!("@{}", headers.display()));
    if let Some(j) = json {
        c.args(["-H", "Content-Type: application/json", "--data-binary", j]);
    }
    c.arg(ca.url(path));
    let status = ok(&mut c);
    let text = std::fs::read_to_string(&body).unwrap_or_default();
    (status.trim().parse().expect("status"), text)
}

fn make_token(ca: &TestCa, args: &[&str]) -> String {
    let out = ok(ca.cmd().args(["token", "create"]).args(args));
    let token = out.trim().to_string();
    assert!(token.starts_with("pca_"), "{out}");
    token
}

fn id_of(token: &str) -> String {
    token
        .strip_prefix("pca_")
        .and_then(|r| r.split('_').next())
        .expect("id")
        .to_string()
}

#[test]
fn roles_and_scopes_decide_what_each_token_may_do() {
    let mut ca = TestCa::init(Path::new(BIN), &[]);
    let mut cfg = std::fs::read_to_string(ca.config()).expect("config");
    cfg.push_str(ENDPOINTS);
    std::fs::write(ca.config(), cfg).expect("config");
    ca.start();
    let admin = std::fs::read_to_string(ca.data.join("admin-token")).expect("token");
    let admin = admin.trim().to_string();

    // The administrator makes tokens through the running server.
    let operator = make_token(&ca, &["--name", "ops", "--role", "operator"]);
    let auditor = make_token(&ca, &["--name", "audit", "--role", "auditor"]);
    let mdm = make_token(
        &ca,
        &[
            "--name",
            "mdm",
            "--role",
            "challenges",
            "--scep-endpoint",
            "otp",
        ],
    );
    let ci = make_token(
        &ca,
        &[
            "--name",
            "ci",
            "--role",
            "issuer",
            "--profile",
            "tls-server",
        ],
    );
    let short = make_token(
        &ca,
        &["--name", "short", "--role", "operator", "--expires", "1s"],
    );
    // Bad input to token create: clear errors.
    for (args, why) in [
        (vec!["--name", "x", "--role", "root"], "not one of"),
        (
            vec!["--name", "x", "--role", "issuer", "--profile", "nope"],
            "no profile",
        ),
        (
            vec![
                "--name",
                "x",
                "--role",
                "challenges",
                "--scep-endpoint",
                "nope",
            ],
            "no SCEP endpoint",
        ),
        (vec!["--name", "", "--role", "operator"], "1 to 64"),
    ] {
        let e = privca_tests::fails(ca.cmd().args(["token", "create"]).args(&args));
        assert!(e.contains(why), "{args:?}: {e}");
    }

    let issue = |profile: &str| {
        format!(
            r#"{{"profile":"{profile}","generate_key":"ecdsa-p256","sans":["roles.example.com"]}}"#
        )
    };
    // The issuer token issues under its profile only; the certificate names it.
    let (s, body) = curl(
        &ca,
        &ci,
        "POST",
        "/admin/v1/certificates",
        Some(&issue("tls-server")),
    );
    assert_eq!(s, 201, "{body}");
    let serial = serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["serial"]
        .as_str()
        .expect("serial")
        .to_string();
    let (s, body) = curl(
        &ca,
        &ci,
        "POST",
        "/admin/v1/certificates",
        Some(&issue("device")),
    );
    assert_eq!(s, 403, "{body}");
    assert!(
        body.contains("tls-server") && body.contains("device"),
        "{body}"
    );
    let (s, _) = curl(&ca, &ci, "GET", "/admin/v1/certificates", None);
    assert_eq!(s, 403);
    let (s, body) = curl(
        &ca,
        &admin,
        "GET",
        &format!("/admin/v1/certificates/{serial}"),
        None,
    );
    assert_eq!(s, 200);
    assert!(body.contains(&format!("token:ci/{}", id_of(&ci))), "{body}");

    // The auditor reads and verifies the audit log, and may not revoke.
    let (s, _) = curl(&ca, &auditor, "GET", "/admin/v1/certificates", None);
    assert_eq!(s, 200);
    let (s, _) = curl(&ca, &auditor, "GET", "/admin/v1/audit/verify", None);
    assert_eq!(s, 200);
    let revoke = format!("/admin/v1/certificates/{serial}/revoke");
    let (s, body) = curl(
        &ca,
        &auditor,
        "POST",
        &revoke,
        Some(r#"{"reason":"superseded"}"#),
    );
    assert_eq!(s, 403, "{body}");
    assert!(body.contains("auditor"), "{body}");
    let (s, body) = curl(
        &ca,
        &admin,
        "GET",
        &format!("/admin/v1/certificates/{serial}"),
        None,
    );
    assert!(s == 200 && body.contains("\"status\":\"valid\""), "{body}");

    // The MDM's token makes challenges for its endpoint only, and reads nothing.
    let (s, body) = curl(
        &ca,
        &mdm,
        "POST",
        "/admin/v1/scep/challenges",
        Some(r#"{"endpoint":"otp"}"#),
    );
    assert_eq!(s, 200, "{body}");
    let (s, body) = curl(
        &ca,
        &mdm,
        "POST",
        "/admin/v1/scep/challenges",
        Some(r#"{"endpoint":"otp2"}"#),
    );
    assert_eq!(s, 403, "{body}");
    let (s, _) = curl(&ca, &mdm, "GET", "/admin/v1/requests", None);
    assert_eq!(s, 403);

    // The operator revokes, and may not manage tokens.
    let (s, body) = curl(
        &ca,
        &operator,
        "POST",
        &revoke,
        Some(r#"{"reason":"superseded"}"#),
    );
    assert_eq!(s, 200, "{body}");
    let (s, _) = curl(
        &ca,
        &operator,
        "POST",
        "/admin/v1/tokens",
        Some(r#"{"name":"x","role":"administrator"}"#),
    );
    assert_eq!(s, 403);
    let (s, _) = curl(&ca, &operator, "GET", "/admin/v1/tokens", None);
    assert_eq!(s, 403);

    // Unknown, malformed, expired and revoked tokens: 401.
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let (s, _) = curl(&ca, &short, "GET", "/admin/v1/certificates", None);
    assert_eq!(s, 401);
    let forged = format!("{}x", &operator[..operator.len() - 1]);
    for bad in ["pca_000000000000_AAAA", "garbage", forged.as_str()] {
        let (s, _) = curl(&ca, bad, "GET", "/admin/v1/certificates", None);
        assert_eq!(s, 401, "{bad}");
    }
    ok(ca.cmd().args(["token", "revoke", &id_of(&operator)]));
    let (s, _) = curl(&ca, &operator, "GET", "/admin/v1/certificates", None);
    assert_eq!(s, 401);
    let e = privca_tests::fails(ca.cmd().args(["token", "revoke", &id_of(&operator)]));
    assert!(e.contains("already"), "{e}");

    // The list shows state and last use, never a secret.
    let list = ok(ca.cmd().args(["token", "list", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&list).expect("JSON");
    let by_name = |n: &str| {
        v.as_array()
            .and_then(|a| a.iter().find(|t| t["name"] == n))
            .cloned()
            .unwrap_or_else(|| panic!("{n} not listed: {list}"))
    };
    assert_eq!(by_name("ops")["state"], "revoked");
    assert_eq!(by_name("short")["state"], "expired");
    assert_eq!(by_name("audit")["state"], "active");
    assert!(by_name("audit")["last_used_at"].is_string(), "{list}");
    assert!(by_name("mdm")["scep_endpoints"][0] == "otp", "{list}");
    for secret in [&operator, &auditor, &mdm, &ci] {
        let tail = secret.rsplit('_').next().expect("secret");
        assert!(!list.contains(tail), "a secret is listed");
    }

    // A console session opened with the auditor's token may look but not revoke.
    let c = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = c
        .post(ca.url("/ui/login"))
        .form(&[("token", auditor.as_str())])
        .send()
        .expect("login");
    assert_eq!(r.status(), 303);
    let cookie = r.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let (_, issued) = curl(
        &ca,
        &admin,
        "POST",
        "/admin/v1/certificates",
        Some(&issue("tls-server")),
    );
    let other = serde_json::from_str::<serde_json::Value>(&issued).expect("JSON")["serial"]
        .as_str()
        .expect("serial")
        .to_string();
    let page = c
        .get(ca.url(&format!("/ui/certificates/{other}")))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().expect("html");
    assert!(
        html.contains(&format!("console:token:audit/{}", id_of(&auditor))),
        "{html}"
    );
    let at = html.find("name=\"csrf\" value=\"").expect("csrf") + 19;
    let csrf = html[at..].split('"').next().expect("csrf").to_string();
    let r = c
        .post(ca.url(&format!("/ui/certificates/{other}/revoke")))
        .header(reqwest::header::COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("reason", "keyCompromise")])
        .send()
        .expect("revoke");
    assert_eq!(r.status(), 403);
    assert!(r.text().expect("body").contains("auditor"));
    // Revoking the token ends its console session at once.
    ok(ca.cmd().args(["token", "revoke", &id_of(&auditor)]));
    let r = c
        .get(ca.url("/ui"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .expect("page");
    assert_eq!(r.status(), 303);

    // The audit log names each token, and each refusal.
    ca.stop();
    let cfg = privca_server::config::Config::load(&ca.config()).expect("config");
    let auth = cfg.load_authority_deferred().expect("authority");
    let entries = auth.store().audit_entries(1, 100_000).expect("audit");
    let has = |action: &str, actor: &str| {
        entries
            .iter()
            .any(|e| e.event.action == action && e.event.actor.starts_with(actor))
    };
    assert!(has("token-create", "admin-api"), "{entries:#?}");
    assert!(has("revoke", "token:ops/"), "{entries:#?}");
    assert!(has("access-refused", "token:audit/"), "{entries:#?}");
    assert!(has("access-refused", "token:ci/"), "{entries:#?}");
    assert!(
        has("access-refused", "console:token:audit/"),
        "{entries:#?}"
    );
    assert!(has("token-revoke", "admin-api"), "{entries:#?}");
    let audit_text = format!("{entries:?}");
    for secret in [&operator, &auditor, &mdm, &ci] {
        assert!(
            !audit_text.contains(secret.as_str()),
            "a token is in the audit log"
        );
    }
}
