//! SCEP end to end with real clients: micromdm `scepclient` (static challenge, one-time
//! challenge, renewal) and certmonger (GET PKIOperation, AES and triple DES) against
//! `privca serve`, every issued certificate checked with `openssl verify`; then our own
//! Rust client over HTTP as a second check (POST and GET, AES-128 and 3DES, HTTP/1.0
//! without Host). Runs when `PRIVCA_INTEROP=1` (scripts/test.sh installs the tools).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use privca_tests::output_text as text;
use privca_tests::{TestCa, fails, interop_enabled, ok, openssl, run, scepclient};

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");

const ENDPOINTS: &str = r#"
[scep.endpoints.devices]
profile = "device"
default = true
allow_des = true            # micromdm scepclient 2.1.0 only encrypts with DES-CBC
challenge = { method = "static", accounts = [{ name = "mdm", secret = { file = "scep.secret" } }] }

[scep.endpoints.otp]
profile = "device"
allow_des = true
challenge = { method = "one-time" }

[scep.endpoints.held]
profile = "device"
allow_des = true
require_approval = true
challenge = { method = "static", accounts = [{ name = "mdm", secret = { file = "scep.secret" } }] }

[scep.endpoints.legacy]
profile = "device"
advertise_aes = false       # capability-driven clients fall back to triple DES
challenge = { method = "static", accounts = [{ name = "mdm", secret = { file = "scep.secret" } }] }
"#;

fn verify(ca: &TestCa, cert: &Path) {
    let out = ca.openssl_verify(cert);
    assert!(out.contains(": OK"), "{out}");
}

fn serial_of(cert: &Path) -> String {
    ok(openssl()
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(cert))
}

struct Certmonger {
    bus: Child,
    daemon: Child,
    env: Vec<(String, String)>,
}

impl Certmonger {
    fn start(dir: &Path) -> Certmonger {
        for d in ["requests", "cas", "local", "tmp"] {
            std::fs::create_dir_all(dir.join(d)).expect("dir");
        }
        let addr = format!("unix:path={}", dir.join("bus").display());
        let bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--address", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.join("bus").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let p = |s: &str| dir.join(s).display().to_string();
        let env = vec![
            ("DBUS_SESSION_BUS_ADDRESS".to_string(), addr),
            ("CERTMONGER_REQUESTS_DIR".into(), p("requests")),
            ("CERTMONGER_CAS_DIR".into(), p("cas")),
            ("CERTMONGER_LOCAL_CA_DIR".into(), p("local")),
            ("CERTMONGER_TMPDIR".into(), p("tmp")),
            ("CERTMONGER_SYSTEM_LOCK_FILE".into(), p("lock")),
        ];
        let log = std::fs::File::create(dir.join("certmonger.log")).expect("log");
        let daemon = Command::new("certmonger")
            .args(["-s", "-n", "-d", "2"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("certmonger");
        let cm = Certmonger { bus, daemon, env };
        // Wait until it answers on the bus.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if run(&mut cm.getcert(&["list-cas", "-s"])).status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "certmonger did not come up");
            std::thread::sleep(Duration::from_millis(200));
        }
        cm
    }

    fn getcert(&self, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.arg("90").arg("getcert").args(args);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Requests a certificate and waits until certmonger has it or gives up.
    fn obtain(&self, ca_name: &str, url: &str, dir: &Path, id: &str) -> (PathBuf, String) {
        ok(&mut self.getcert(&["add-scep-ca", "-s", "-c", ca_name, "-u", url]));
        let key = dir.join(format!("{id}.key"));
        let crt = dir.join(format!("{id}.crt"));
        ok(&mut self.getcert(&[
            "request",
            "-s",
            "-c",
            ca_name,
            "-k",
            key.to_str().expect("utf-8"),
            "-f",
            crt.to_str().expect("utf-8"),
            "-N",
            &format!("CN={id}"),
            "-L",
            "s3cret",
            "-I",
            id,
            "-w",
        ]));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = ok(&mut self.getcert(&["list", "-s", "-i", id]));
            if status.contains("status: MONITORING") || Instant::now() > deadline {
                return (crt, status);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Certmonger {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn raw_http(port: u16, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn scep_with_real_clients() {
    if !interop_enabled("scep_with_real_clients") {
        return;
    }
    // An RSA hierarchy: scepclient encrypts to every certificate GetCACert returns and
    // panics on an ECDSA one (see README of tests/vectors/scep).
    let mut ca = TestCa::init(
        Path::new(BIN),
        &["--root-key", "rsa-2048", "--issuing-key", "rsa-2048"],
    );
    privca_tests::write_secret(&ca.data.join("scep.secret"), "s3cret\n");
    let mut cfg = std::fs::read_to_string(ca.config()).expect("config");
    cfg.push_str(ENDPOINTS);
    std::fs::write(ca.config(), cfg).expect("config");
    ca.start();
    let devices = ca.url("/scep/devices");

    // 1. scepclient, static challenge (PKCSReq over POST, DES + SHA-1 as it always does).
    let c1 = ca.path("c1");
    let o = scepclient(&c1, &devices, "client1", Some("s3cret"));
    assert!(
        o.status.success() && text(&o).contains("SUCCESS"),
        "{}",
        text(&o)
    );
    verify(&ca, &c1.join("cert.pem"));
    let first = serial_of(&c1.join("cert.pem"));

    // 2. Renewal: with cert.pem present scepclient sends a RenewalReq signed by it.
    let o = scepclient(&c1, &devices, "client1", None);
    assert!(
        o.status.success() && text(&o).contains("SUCCESS"),
        "{}",
        text(&o)
    );
    verify(&ca, &c1.join("cert.pem"));
    assert_ne!(
        serial_of(&c1.join("cert.pem")),
        first,
        "renewal issued a new certificate"
    );

    // 3. A wrong challenge is refused (CertRep FAILURE badRequest).
    let o = scepclient(&ca.path("c2"), &devices, "client2", Some("wrong"));
    assert!(
        !o.status.success() && text(&o).contains("badRequest"),
        "{}",
        text(&o)
    );
    assert!(!ca.path("c2/cert.pem").exists());

    // 4. One-time challenge from the CLI (through the running server's admin API); the
    //    first enrollment succeeds, a second one with the same challenge is refused.
    let otp = ok(ca
        .cmd()
        .args(["scep", "challenge", "--endpoint", "otp", "--ttl", "1h"]));
    let otp = otp.trim().to_string();
    assert_eq!(otp.len(), 32, "{otp}");
    let otp_url = ca.url("/scep/otp");
    let o = scepclient(&ca.path("c3"), &otp_url, "client3", Some(&otp));
    assert!(
        o.status.success() && text(&o).contains("SUCCESS"),
        "{}",
        text(&o)
    );
    verify(&ca, &ca.path("c3/cert.pem"));
    let o = scepclient(&ca.path("c4"), &otp_url, "client4", Some(&otp));
    assert!(
        !o.status.success() && text(&o).contains("badRequest"),
        "{}",
        text(&o)
    );
    // A challenge for an endpoint with another method is refused by the CLI.
    let e = fails(
        ca.cmd()
            .args(["scep", "challenge", "--endpoint", "devices"]),
    );
    assert!(e.contains("one-time"), "{e}");

    // 5. Approval: scepclient gets PENDING and retries every 30 s; the administrator
    //    approves with `privca requests approve`; the retry gets the certificate.
    let held_dir = ca.path("held");
    std::fs::create_dir_all(&held_dir).expect("dir");
    ok(openssl()
        .args(["genrsa", "-traditional", "-out"])
        .arg(held_dir.join("key.pem"))
        .arg("2048"));
    let waiting = Command::new("timeout")
        .current_dir(&held_dir)
        .args(["120", "scepclient", "-server-url", &ca.url("/scep/held")])
        .args([
            "-private-key",
            "key.pem",
            "-certificate",
            "cert.pem",
            "-cn",
            "held1",
            "-challenge",
            "s3cret",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scepclient");
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        let list = ok(ca.cmd().args(["requests", "list", "--json"]));
        let v: serde_json::Value = serde_json::from_str(&list).expect("JSON");
        if let Some(r) = v
            .as_array()
            .and_then(|a| a.iter().find(|r| r["endpoint"] == "scep:held"))
        {
            assert_eq!(r["state"], "pending");
            break r["id"].as_u64().expect("id");
        }
        assert!(Instant::now() < deadline, "the request was never held");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(!held_dir.join("cert.pem").exists());
    ok(ca.cmd().args(["requests", "approve", &id.to_string()]));
    let out = waiting.wait_with_output().expect("scepclient");
    let t = text(&out);
    assert!(
        out.status.success() && t.contains("PENDING") && t.contains("SUCCESS"),
        "{t}"
    );
    verify(&ca, &held_dir.join("cert.pem"));

    // 6. certmonger: GET PKIOperation; AES where advertised, triple DES where not.
    let cm_dir = ca.path("certmonger");
    let cm = Certmonger::start(&cm_dir);
    for (name, url, id, cipher) in [
        ("privca-aes", devices.clone(), "cm1", "cipher=Aes256"),
        ("privca-3des", ca.url("/scep/legacy"), "cm2", "cipher=Des3"),
    ] {
        let (crt, status) = cm.obtain(name, &url, &cm_dir, id);
        assert!(
            status.contains("status: MONITORING") && crt.exists(),
            "certmonger did not get {id}: {status}\n{}",
            std::fs::read_to_string(cm_dir.join("certmonger.log")).unwrap_or_default()
        );
        verify(&ca, &crt);
        let log = strip_ansi(&ca.server_log());
        assert!(
            log.lines()
                .any(|l| l.contains("method=GET") && l.contains(cipher)),
            "no GET request with {cipher} in the server log"
        );
    }
    drop(cm);

    // 7. Our own client over HTTP: POST and GET (raw + and /), AES-128 and 3DES.
    let ra_pem = std::fs::read(ca.data.join("ca/issuing-ra.crt")).expect("RA cert");
    let ra = ca_core::authority::cert_der_from_bytes(&ra_pem).expect("RA DER");
    let http = reqwest::blocking::Client::new();
    for (i, cipher) in [
        scep::codec::ContentCipher::Aes128,
        scep::codec::ContentCipher::Des3,
    ]
    .into_iter()
    .enumerate()
    {
        let key: Arc<dyn hsm::PrivateKey> = Arc::new(
            hsm::soft::SoftKey::generate_ephemeral("c", hsm::KeyAlgorithm::Rsa2048).expect("key"),
        );
        let cn = format!("CN=rust{i}");
        let cert = scep::client::self_signed(key.as_ref(), &cn).expect("self-signed");
        let id = scep::client::Identity {
            key: key.as_ref(),
            cert_der: &cert,
        };
        let csr = scep::client::csr(key.as_ref(), &cn, Some("s3cret")).expect("csr");
        let req = scep::client::build_request(
            scep::codec::MessageType::PkcsReq,
            &format!("rust-{i}"),
            &csr,
            id,
            &ra,
            cipher,
        )
        .expect("request");
        let body = if i == 0 {
            http.post(format!("{devices}?operation=PKIOperation"))
                .body(req.der.clone())
                .send()
        } else {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&req.der);
            // Raw + and / as macOS sends them, padding escaped.
            http.get(format!(
                "{}/pkiclient.exe?operation=PKIOperation&message={}",
                devices,
                b64.replace('=', "%3D")
            ))
            .send()
        }
        .expect("send")
        .bytes()
        .expect("body");
        let reply = scep::client::read_reply(&body, id).expect("reply");
        assert_eq!(reply.status, scep::codec::PkiStatus::Success, "{cipher:?}");
        let p = ca.file(&format!("rust{i}.der"), &reply.certs[0]);
        let pem = ok(openssl().args(["x509", "-inform", "DER", "-in"]).arg(&p));
        verify(&ca, &ca.file(&format!("rust{i}.pem"), pem.as_bytes()));
    }

    // 8. HTTP/1.0 without Host on the default path, garbage, unknown operation.
    let r = raw_http(
        ca.port,
        "GET /cgi-bin/pkiclient.exe?operation=GetCACaps HTTP/1.0\r\n\r\n",
    );
    assert!(
        r.starts_with("HTTP/1.0 200") && r.contains("SCEPStandard"),
        "{r}"
    );
    let r = http
        .post(format!("{devices}?operation=PKIOperation"))
        .body(vec![0x30, 0x80, 0x01])
        .send()
        .expect("send");
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .get(format!("{devices}?operation=Nonsense"))
        .send()
        .expect("send");
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .get(ca.url("/scep/devices?operation=GetCACert"))
        .send()
        .expect("send");
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap_or(""),
        "application/x-x509-ca-ra-cert"
    );
    ca.stop();
}

/// The default hierarchy of `privca init` (ECDSA root and issuing CA, RSA RA):
/// scepclient needs `ca_cert_chain = false` (it encrypts to every certificate of
/// GetCACert and panics on an ECDSA one); certmonger takes the full CA+RA answer.
#[test]
fn scep_with_the_default_ecdsa_hierarchy() {
    if !interop_enabled("scep_with_the_default_ecdsa_hierarchy") {
        return;
    }
    let mut ca = TestCa::init(Path::new(BIN), &[]);
    privca_tests::write_secret(&ca.data.join("scep.secret"), "s3cret\n");
    let mut cfg = std::fs::read_to_string(ca.config()).expect("config");
    cfg.push_str(
        r#"
[scep.endpoints.ra-only]
profile = "device"
allow_des = true
ca_cert_chain = false
challenge = { method = "static", accounts = [{ name = "mdm", secret = { file = "scep.secret" } }] }

[scep.endpoints.full]
profile = "device"
challenge = { method = "static", accounts = [{ name = "mdm", secret = { file = "scep.secret" } }] }
"#,
    );
    std::fs::write(ca.config(), cfg).expect("config");
    ca.start();
    let dir = ca.path("e1");
    let o = scepclient(
        &dir,
        &ca.url("/scep/ra-only"),
        "ecdsa-ca-client",
        Some("s3cret"),
    );
    assert!(
        o.status.success() && text(&o).contains("SUCCESS"),
        "{}",
        text(&o)
    );
    verify(&ca, &dir.join("cert.pem"));

    let cm_dir = ca.path("certmonger");
    let cm = Certmonger::start(&cm_dir);
    let (crt, status) = cm.obtain("privca-ecdsa", &ca.url("/scep/full"), &cm_dir, "cm3");
    assert!(
        status.contains("status: MONITORING") && crt.exists(),
        "certmonger: {status}\n{}",
        std::fs::read_to_string(cm_dir.join("certmonger.log")).unwrap_or_default()
    );
    verify(&ca, &crt);
    drop(cm);
    ca.stop();
}
