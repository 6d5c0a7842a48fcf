//! The web console (issue 14 item 2) against `privca serve`:
//!
//! - over HTTP with our own requests: login with the admin token and with a one-time
//!   link from `privca console login-link`, the session cookie's attributes, the security
//!   headers, the dashboard's counts, search and detail, a revoke refused without or
//!   with a forged CSRF token and then done with it (the CRL lists it), the audit naming
//!   the console session, logout;
//! - in headless Chromium driven over WebDriver (chromedriver), when `PRIVCA_INTEROP=1`:
//!   log in with a login link, find a certificate, revoke it with the form and see it in
//!   the CRL (`openssl crl`), approve a SCEP request that micromdm `scepclient` waits on
//!   and see scepclient get its certificate; screenshots of the dashboard and a
//!   certificate page are written to `$PRIVCA_SCREENSHOTS` when it is set.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use privca_tests::output_text as text;
use privca_tests::{TestCa, free_port, interop_enabled, ok, openssl};
use reqwest::blocking::{Client, Response};
use reqwest::header;
use std::path::Path;

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");

const HELD_ENDPOINT: &str = r#"
[scep.endpoints.held]
profile = "device"
default = true
allow_des = true            # micromdm scepclient 2.1.0 only encrypts with DES-CBC
require_approval = true
challenge = { method = "static", accounts = [{ name = "mdm", secret = { file = "scep.secret" } }] }
"#;

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `privca_console=…` pair of a response's Set-Cookie, and the whole header.
fn session_cookie(r: &Response) -> (String, String) {
    let set = r
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("Set-Cookie")
        .to_string();
    let pair = set.split(';').next().expect("pair").trim().to_string();
    assert!(pair.starts_with("privca_console="), "{set}");
    (pair, set)
}

/// The number in the dashboard tile `id`.
fn tile(html: &str, id: &str) -> u64 {
    let marker = format!("id=\"{id}\">");
    let at = html.find(&marker).expect("tile") + marker.len();
    html[at..]
        .split('<')
        .next()
        .expect("number")
        .parse()
        .expect("a number")
}

/// The CSRF token a page's forms carry.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..].split('"').next().expect("token").to_string()
}

fn issue(ca: &TestCa, token: &str, dns: &str) -> String {
    let r = privca_tests::admin_issue_tls_server(
        &client(),
        format!("127.0.0.1:{}", ca.port).parse().expect("addr"),
        token,
        dns,
    );
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().expect("JSON");
    v["serial"].as_str().expect("serial").to_string()
}

fn crl_text(ca: &TestCa) -> String {
    let der = client()
        .get(ca.url("/crl/issuing.crl"))
        .send()
        .expect("CRL")
        .bytes()
        .expect("body");
    let f = ca.file("issuing.crl", &der);
    ok(openssl()
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(f))
}

#[test]
fn console_logs_in_searches_and_revokes_only_with_its_csrf_token() {
    let mut ca = TestCa::init(Path::new(BIN), &[]);
    ca.start();
    let token = std::fs::read_to_string(ca.data.join("admin-token")).expect("token");
    let token = token.trim();
    let serial = issue(&ca, token, "console-a.example.com");
    issue(&ca, token, "console-b.example.com");
    let c = client();

    // No session: pages send the browser to the login page, forms are refused.
    let r = c.get(ca.url("/ui")).send().expect("dashboard");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[header::LOCATION], "/ui/login");
    let r = c
        .post(ca.url(&format!("/ui/certificates/{serial}/revoke")))
        .form(&[("csrf", "x"), ("reason", "keyCompromise")])
        .send()
        .expect("revoke");
    assert_eq!(r.status(), 401);

    // The login page, with the security headers.
    let r = c.get(ca.url("/ui/login")).send().expect("login page");
    assert_eq!(r.status(), 200);
    let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");

    // A wrong token is refused; the right one opens a session.
    let r = c
        .post(ca.url("/ui/login"))
        .form(&[("token", "not-the-token")])
        .send()
        .expect("login");
    assert_eq!(r.status(), 401);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
    let r = c
        .post(ca.url("/ui/login"))
        .form(&[("token", token)])
        .send()
        .expect("login");
    assert_eq!(r.status(), 303);
    let (cookie, set) = session_cookie(&r);
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/ui"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    let base = ca.url("");
    let get = |path: &str| {
        c.get(format!("{base}{path}"))
            .header(header::COOKIE, &cookie)
            .send()
            .expect("page")
    };

    // The dashboard counts both certificates; the search finds one by name.
    let dash = get("/ui").text().expect("dashboard");
    let (active, revoked) = (tile(&dash, "active"), tile(&dash, "revoked"));
    assert!(active >= 2, "{dash}");
    assert!(dash.contains("<td>issuing</td>"), "{dash}");
    // privca's own certificates, as /healthz reports them, and the key backend.
    assert!(dash.contains("<td>ocsp:issuing</td>"), "{dash}");
    assert!(dash.contains("soft backend ok"), "{dash}");
    let list = get("/ui/certificates?status=&text=console-a&profile=&issuer=&expiring_days=")
        .text()
        .expect("list");
    assert!(list.contains(&serial), "{list}");
    assert!(!list.contains("console-b.example.com"), "{list}");
    assert!(list.contains("/ui/certificates.csv?"), "{list}");
    // The exports carry every certificate the filter selects, with the same filter.
    let csv = get("/ui/certificates.csv?text=console-")
        .text()
        .expect("csv");
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .expect("header")
            .starts_with("serial,subject,sans,"),
        "{csv}"
    );
    assert_eq!(lines.count(), 2, "{csv}");
    assert!(csv.contains(&serial), "{csv}");
    let json = get("/ui/certificates.json?text=console-a")
        .text()
        .expect("json");
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(rows.len(), 1, "{json}");
    assert_eq!(rows[0]["serial"], serial.as_str());
    let detail = get(&format!("/ui/certificates/{serial}"))
        .text()
        .expect("detail");
    assert!(detail.contains("console-a.example.com"), "{detail}");
    // Decoded from the DER: the key and the extensions by name.
    assert!(detail.contains("secp256r1"), "{detail}");
    assert!(
        detail.contains("id-ce-subjectAltName (2.5.29.17)"),
        "{detail}"
    );
    let csrf = csrf_of(&detail);
    let pem = get(&format!("/ui/certificates/{serial}/pem"))
        .text()
        .expect("pem");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");

    // A revoke without the session's CSRF token, or with another, changes nothing.
    let revoke = |csrf: Option<&str>| {
        let mut form = vec![("reason", "keyCompromise")];
        if let Some(t) = csrf {
            form.push(("csrf", t));
        }
        c.post(format!("{base}/ui/certificates/{serial}/revoke"))
            .header(header::COOKIE, &cookie)
            .form(&form)
            .send()
            .expect("revoke")
    };
    assert_eq!(revoke(None).status(), 403);
    assert_eq!(
        revoke(Some("00112233445566778899aabbccddeeff")).status(),
        403
    );
    assert!(
        get(&format!("/ui/certificates/{serial}"))
            .text()
            .expect("detail")
            .contains("id=\"status\" class=\"status-valid\"")
    );
    // With it, the certificate is revoked and the CRL lists it.
    let r = revoke(Some(&csrf));
    assert_eq!(r.status(), 303, "{:?}", r.text());
    let detail = get(&format!("/ui/certificates/{serial}"))
        .text()
        .expect("detail");
    assert!(detail.contains("status-revoked"), "{detail}");
    assert!(detail.contains("keyCompromise"), "{detail}");
    let dash = get("/ui").text().expect("dashboard");
    assert_eq!(
        (tile(&dash, "active"), tile(&dash, "revoked")),
        (active - 1, revoked + 1)
    );
    let crl = crl_text(&ca);
    assert!(
        crl.to_uppercase().contains(&serial.to_uppercase()),
        "{serial} not in\n{crl}"
    );

    // The audit log names the console session.
    ca.stop();
    {
        let cfg = privca_server::config::Config::load(&ca.config()).expect("config");
        let auth = cfg.load_authority_deferred().expect("authority");
        let entries = auth.store().audit_entries(1, 10_000).expect("audit");
        let by_console = |action: &str| {
            entries
                .iter()
                .any(|e| e.event.action == action && e.event.actor == "console:admin-token")
        };
        assert!(by_console("console-login"), "{entries:#?}");
        assert!(by_console("revoke"), "{entries:#?}");
    }
    ca.start();

    // The key was drawn again at the restart: the old cookie opens nothing.
    assert_eq!(get("/ui").status(), 303);

    // A one-time login link from the CLI works once.
    let link = ok(ca.cmd().args(["console", "login-link"]));
    let path = link
        .lines()
        .find_map(|l| l.strip_prefix(&format!("http://127.0.0.1:{}", ca.port)))
        .expect("an http link")
        .to_string();
    let r = c.get(ca.url(&path)).send().expect("link");
    assert_eq!(r.status(), 303);
    let (cookie2, _) = session_cookie(&r);
    let dash = c
        .get(ca.url("/ui"))
        .header(header::COOKIE, &cookie2)
        .send()
        .expect("dashboard")
        .text()
        .expect("text");
    assert!(dash.contains("console:login-link"), "{dash}");
    assert_eq!(c.get(ca.url(&path)).send().expect("link").status(), 401);

    // Logout needs the CSRF token too, and clears the cookie.
    let csrf = csrf_of(&dash);
    let r = c
        .post(ca.url("/ui/logout"))
        .header(header::COOKIE, &cookie2)
        .form(&[("csrf", "wrong")])
        .send()
        .expect("logout");
    assert_eq!(r.status(), 403);
    let r = c
        .post(ca.url("/ui/logout"))
        .header(header::COOKIE, &cookie2)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .expect("logout");
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()[header::SET_COOKIE]
            .to_str()
            .expect("cookie")
            .contains("Max-Age=0")
    );
}

/// Headless Chromium through chromedriver's W3C WebDriver protocol (JSON over HTTP on
/// loopback): the few commands the tests need.
struct Browser {
    driver: Child,
    http: Client,
    session: String,
    _profile: tempfile::TempDir,
}

/// The key of an element reference in WebDriver answers (W3C WebDriver §12.1).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--ignore-certificate-errors".into(),
            "--window-size=1280,1024".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let v: serde_json::Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .expect("new session")
            .json()
            .expect("JSON");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        Browser {
            driver,
            http,
            session: format!("{base}/session/{session}"),
            _profile: profile,
        }
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if !body.is_null() {
            req = req.json(&body);
        }
        let v: serde_json::Value = req.send().expect("WebDriver").json().expect("JSON");
        if let Some(e) = v["value"]["error"].as_str() {
            panic!("WebDriver {path}: {e}: {}", v["value"]["message"]);
        }
        v["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call(
            reqwest::Method::POST,
            "/url",
            serde_json::json!({ "url": url }),
        );
    }

    fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", serde_json::Value::Null)
            .as_str()
            .expect("source")
            .to_string()
    }

    /// The page source once it contains `needle` (a click's navigation may still be
    /// loading when the click answers); panics with the last source after 10 s.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let src = self.source();
            if src.contains(needle) {
                return src;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared in\n{src}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", serde_json::Value::Null)
            .as_str()
            .expect("url")
            .to_string()
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            reqwest::Method::POST,
            "/element",
            serde_json::json!({ "using": "css selector", "value": css }),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element for {css}: {v}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let el = self.find(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            serde_json::json!({}),
        );
    }

    fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            serde_json::json!({ "text": text }),
        );
    }

    /// A PNG of the page into `$PRIVCA_SCREENSHOTS/<name>.png`, when that is set.
    fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("PRIVCA_SCREENSHOTS") else {
            return;
        };
        let png = self.call(reqwest::Method::GET, "/screenshot", serde_json::Value::Null);
        let png = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            png.as_str().expect("base64"),
        )
        .expect("PNG");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).expect("write PNG");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.session).send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn chromium_revokes_a_certificate_and_approves_a_held_scep_request() {
    if !interop_enabled("chromium_revokes_a_certificate_and_approves_a_held_scep_request") {
        return;
    }
    // An RSA hierarchy: scepclient encrypts to every certificate GetCACert returns.
    let mut ca = TestCa::init(
        Path::new(BIN),
        &["--root-key", "rsa-2048", "--issuing-key", "rsa-2048"],
    );
    privca_tests::write_secret(&ca.data.join("scep.secret"), "s3cret\n");
    let mut cfg = std::fs::read_to_string(ca.config()).expect("config");
    cfg.push_str(HELD_ENDPOINT);
    std::fs::write(ca.config(), cfg).expect("config");
    ca.start();
    let token = std::fs::read_to_string(ca.data.join("admin-token")).expect("token");
    let serial = issue(&ca, token.trim(), "browser.example.com");

    let browser = Browser::start();
    // Log in with a one-time link from the CLI.
    let link = ok(ca.cmd().args(["console", "login-link"]));
    let url = link
        .lines()
        .find(|l| l.starts_with("http://"))
        .expect("an http link")
        .to_string();
    browser.goto(&url);
    let dash = browser.source();
    assert!(
        dash.contains("Dashboard") && dash.contains("console:login-link"),
        "{dash}"
    );
    browser.screenshot("dashboard");

    // Find the certificate with the search form, open it, revoke it with the form.
    browser.goto(&ca.url("/ui/certificates"));
    browser.type_into("input[name=text]", "browser.example");
    browser.click("form.filters button");
    browser.wait_for(&serial);
    browser.click(&format!("a[href='/ui/certificates/{serial}']"));
    browser.screenshot("certificate");
    browser.click("#revoke button");
    browser.wait_for("status-revoked");
    let crl = crl_text(&ca);
    assert!(
        crl.to_uppercase().contains(&serial.to_uppercase()),
        "{serial} not in\n{crl}"
    );

    // A SCEP request held for approval: scepclient waits (PENDING, polling); the
    // approve button in the console issues it and scepclient gets its certificate.
    let held = ca.path("held");
    std::fs::create_dir_all(&held).expect("dir");
    ok(openssl()
        .args(["genrsa", "-traditional", "-out"])
        .arg(held.join("key.pem"))
        .arg("2048"));
    let waiting = Command::new("timeout")
        .current_dir(&held)
        .args(["120", "scepclient", "-server-url", &ca.url("/scep/held")])
        .args(["-private-key", "key.pem", "-certificate", "cert.pem"])
        .args(["-cn", "held-by-browser", "-challenge", "s3cret"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scepclient");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        browser.goto(&ca.url("/ui/requests"));
        if browser.source().contains("held-by-browser") {
            break;
        }
        assert!(Instant::now() < deadline, "the request was never held");
        std::thread::sleep(Duration::from_millis(300));
    }
    browser.click("section.request form.inline button");
    browser.wait_for("id=\"serial\"");
    assert!(
        browser.url().contains("/ui/certificates/"),
        "{}",
        browser.url()
    );
    assert!(browser.source().contains("held-by-browser"));
    let out = waiting.wait_with_output().expect("scepclient");
    let t = text(&out);
    assert!(
        out.status.success() && t.contains("PENDING") && t.contains("SUCCESS"),
        "{t}"
    );
    let verified = ca.openssl_verify(&held.join("cert.pem"));
    assert!(verified.contains(": OK"), "{verified}");

    // A forged form (this page's revoke form with its CSRF token changed) is refused,
    // and the certificate stays valid.
    let page = browser.url();
    let el = browser.find("#revoke input[name=csrf]");
    browser.call(
        reqwest::Method::POST,
        "/execute/sync",
        serde_json::json!({
            "script": "arguments[0].value = 'forged'",
            "args": [{ ELEMENT: el }],
        }),
    );
    browser.click("#revoke button");
    browser.wait_for("CSRF token missing or wrong");
    browser.goto(&page);
    browser.wait_for("status-valid");
}

/// A measurement, not a check (docs/console.md shows its output) (`cargo test --test e2e_console -- --ignored`): fills a
/// store with `PRIVCA_CONSOLE_SCALE` certificate records (default 100,000; bulk import of
/// records without DER, 5 profiles, 1% revoked, lifetimes of 1–398 days), starts the
/// server, prints the median time of each console page over 5 loads, and writes
/// screenshots when `PRIVCA_SCREENSHOTS` is set (and chromedriver is installed).
#[test]
#[ignore]
fn console_pages_at_scale() {
    let n: usize = std::env::var("PRIVCA_CONSOLE_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut ca = TestCa::init(Path::new(BIN), &[]);
    {
        let cfg = privca_server::config::Config::load(&ca.config()).expect("config");
        let auth = cfg.load_authority_deferred().expect("authority");
        let now = auth.now();
        let profiles = ["tls-server", "tls-client", "device", "vpn", "rare"];
        let mut done = 0;
        while done < n {
            let records: Vec<store::CertRecord> = (done..n.min(done + 20_000))
                .map(|i| {
                    let serial = ca_core::asn1::random_serial();
                    let revoked = i % 100 == 0;
                    let not_after =
                        now + 86_400 * (1 + (serial[1] as i64 * 256 + serial[2] as i64) % 398);
                    store::CertRecord {
                        serial,
                        issuer: "issuing".into(),
                        subject: format!("CN=host{i}.scale.example"),
                        sans: vec![format!("DNS:host{i}.scale.example")],
                        profile: profiles[i % profiles.len()].into(),
                        requester: "scale-import".into(),
                        not_before: now - 86_400,
                        not_after,
                        issued_at: now - 86_400,
                        status: if revoked {
                            store::CertStatus::Revoked
                        } else {
                            store::CertStatus::Valid
                        },
                        revocation: revoked.then(|| store::Revocation {
                            time: now - 3_600,
                            reason: 1,
                            invalidity_date: None,
                        }),
                        spki_sha256: Vec::new(),
                        der: Vec::new(),
                    }
                })
                .collect();
            let audit = store::AuditEvent {
                time: now,
                action: "scale-import".into(),
                actor: "test".into(),
                subject: "issuing".into(),
                detail: format!("{} records", records.len()),
            };
            auth.store()
                .import_certificates(&records, &audit)
                .expect("import");
            done += records.len();
        }
    }
    ca.start();
    let token = std::fs::read_to_string(ca.data.join("admin-token")).expect("token");
    let serial = issue(&ca, token.trim(), "www.scale.example");
    let c = client();
    let r = c
        .post(ca.url("/ui/login"))
        .form(&[("token", token.trim())])
        .send()
        .expect("login");
    let (cookie, _) = session_cookie(&r);
    println!("console pages at {n} certificates (median of 5 loads):");
    for path in [
        "/ui".to_string(),
        "/ui/certificates".to_string(),
        "/ui/certificates?status=revoked".to_string(),
        "/ui/certificates?profile=rare".to_string(),
        "/ui/certificates?text=host4242.scale".to_string(),
        "/ui/certificates?expiring_days=30".to_string(),
        format!("/ui/certificates/{serial}"),
    ] {
        let mut times: Vec<Duration> = (0..5)
            .map(|_| {
                let t = Instant::now();
                let r = c
                    .get(ca.url(&path))
                    .header(header::COOKIE, &cookie)
                    .send()
                    .expect("page");
                assert_eq!(r.status(), 200, "{path}");
                r.text().expect("body");
                t.elapsed()
            })
            .collect();
        times.sort();
        println!("  {path}: {:.1} ms", times[2].as_secs_f64() * 1e3);
    }
    if std::env::var_os("PRIVCA_SCREENSHOTS").is_some() && interop_enabled("console_pages_at_scale")
    {
        let browser = Browser::start();
        let link = ok(ca.cmd().args(["console", "login-link"]));
        let url = link
            .lines()
            .find(|l| l.starts_with("http://"))
            .expect("link");
        browser.goto(url);
        browser.wait_for("Dashboard");
        browser.screenshot(&format!("dashboard-{n}"));
        browser.goto(&ca.url("/ui/certificates?status=revoked"));
        browser.screenshot(&format!("certificates-revoked-{n}"));
        browser.goto(&ca.url(&format!("/ui/certificates/{serial}")));
        browser.screenshot(&format!("certificate-{n}"));
    }
}
