//! End to end with the CA keys on a PKCS#11 token (SoftHSM2): `privca init --hsm`, keys
//! listed with their token attributes, certificates, CRLs and OCSP responses signed on the
//! token and checked by OpenSSL (`verify -crl_check`, `ocsp`), and `/healthz` following the
//! token going away and coming back; enrollment over SCEP (micromdm `scepclient`, the RA
//! key decrypting on the token, over HTTP and HTTPS) and over EST (curl, the HTTPS key on
//! the token). Runs when `PRIVCA_INTEROP=1` (scripts/test.sh installs softhsm2 and sets
//! it).
//!
//! SoftHSM reads `SOFTHSM2_CONF` when it is initialised and a test cannot safely set its
//! own environment, so each test re-runs itself in a child process with a fresh token
//! directory in its environment (inherited by every `privca` it starts).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use privca_tests::{TestCa, interop_enabled, ok, openssl, run, serial_of};

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");
const TOKEN: &str = "privca-e2e";
const PIN: &str = "4321";

fn module() -> Option<PathBuf> {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Runs `body` in a child process whose environment points SoftHSM at a new token.
fn with_token(test: &str, body: impl FnOnce(&Path, &Path)) {
    if let Ok(dir) = std::env::var("PRIVCA_E2E_HSM_DIR") {
        body(&module().expect("module"), Path::new(&dir));
        return;
    }
    if !interop_enabled(test) {
        return;
    }
    let module = module()
        .expect("SoftHSM2 is not installed but PRIVCA_INTEROP=1 (apt-get install softhsm2)");
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    ok(Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            TOKEN,
            "--pin",
            PIN,
            "--so-pin",
            "8765",
        ])
        .env("SOFTHSM2_CONF", &conf));
    let _ = module;
    let out = run(Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", &conf)
        .env("PRIVCA_E2E_HSM_DIR", dir.path())
        .env("PRIVCA_HSM_PIN", PIN));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "--- {test} (child) ---\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{test} failed in its child process");
    assert!(stdout.contains("1 passed"), "{test}: the child ran no test");
}

fn hsm_args(module: &Path) -> Vec<String> {
    vec![
        "--hsm".into(),
        module.display().to_string(),
        "--hsm-token-label".into(),
        TOKEN.into(),
        "--hsm-pin-env".into(),
        "PRIVCA_HSM_PIN".into(),
    ]
}

#[test]
fn init_hsm_issue_crl_ocsp_with_openssl() {
    with_token("init_hsm_issue_crl_ocsp_with_openssl", |module, _dir| {
        // Root ECDSA P-384, issuing CA RSA-2048, OCSP responder ECDSA P-256, RA RSA-2048:
        // every signing path of the token backend is used below.
        let mut args = hsm_args(module);
        args.extend(
            [
                "--root-key",
                "ecdsa-p384",
                "--issuing-key",
                "rsa-2048",
                "--ocsp-key",
                "ecdsa-p256",
            ]
            .map(String::from),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut ca = TestCa::init(Path::new(BIN), &args);
        assert!(!ca.data.join("keys").exists(), "no key files with --hsm");
        let toml = std::fs::read_to_string(ca.config()).unwrap();
        assert!(
            toml.contains("backend = \"pkcs11\"")
                && toml.contains("pin = { env = \"PRIVCA_HSM_PIN\" }"),
            "{toml}"
        );
        assert!(
            !toml.contains(PIN),
            "the PIN must not be written to the configuration"
        );

        let list = ok(ca.cmd().args(["keys", "list"]));
        eprintln!("{list}");
        for (label, alg) in [
            ("root", "ecdsa-p384"),
            ("issuing", "rsa-2048"),
            ("issuing-ocsp", "ecdsa-p256"),
            ("issuing-ra", "rsa-2048"),
        ] {
            let line = list
                .lines()
                .find(|l| l.split_whitespace().next() == Some(label))
                .unwrap_or_else(|| panic!("{label} not listed:\n{list}"));
            assert!(line.contains(alg), "{line}");
            assert!(
                line.contains("sensitive=true extractable=false generated-on-token"),
                "{line}"
            );
        }
        let json: serde_json::Value =
            serde_json::from_str(&ok(ca.cmd().args(["keys", "list", "--json"]))).unwrap();
        assert_eq!(json.as_array().map(Vec::len), Some(4), "{json}");

        // OpenSC's pkcs11-tool sees the same keys, with the same attributes, and the public
        // key on the token is the one in the issuing CA certificate.
        let tool = |extra: &[&str]| {
            let mut c = Command::new("pkcs11-tool");
            c.arg("--module")
                .arg(module)
                .args(["--token-label", TOKEN, "--login", "--pin", PIN])
                .args(extra);
            ok(&mut c)
        };
        let objects = tool(&["--list-objects", "--type", "privkey"]);
        let issuing_obj = objects
            .split("Private Key Object")
            .find(|o| o.contains("label:      issuing\n"))
            .unwrap_or_else(|| panic!("issuing not on the token:\n{objects}"));
        assert!(issuing_obj.contains("RSA"), "{issuing_obj}");
        for a in [
            "sensitive",
            "always sensitive",
            "never extractable",
            "local",
        ] {
            assert!(issuing_obj.contains(a), "{a}: {issuing_obj}");
        }
        let pub_der = ca.path("issuing-pub.der");
        tool(&[
            "--read-object",
            "--type",
            "pubkey",
            "--label",
            "issuing",
            "--output-file",
            pub_der.to_str().unwrap(),
        ]);
        let from_token = ok(openssl()
            .args(["pkey", "-pubin", "-inform", "DER", "-in"])
            .arg(&pub_der));
        let from_cert = ok(openssl()
            .args(["x509", "-noout", "-pubkey", "-in"])
            .arg(ca.data.join("ca/issuing.crt")));
        assert_eq!(from_token, from_cert);

        let ca_dir = ca.data.join("ca");
        let chain = format!(
            "{}{}",
            std::fs::read_to_string(ca_dir.join("issuing.crt")).unwrap(),
            std::fs::read_to_string(ca_dir.join("root.crt")).unwrap()
        );
        let chain_pem = ca.file("chain.pem", chain.as_bytes());
        ok(openssl()
            .args(["verify", "-CAfile"])
            .arg(ca_dir.join("root.crt"))
            .arg(ca_dir.join("issuing.crt")));

        // Import a software key onto the token (offline command).
        let soft_key = ca.path("soft.key");
        ok(openssl()
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&soft_key));
        let imp = ok(ca
            .cmd()
            .args(["keys", "import", "--label", "imported"])
            .arg("--key")
            .arg(&soft_key));
        assert!(
            imp.contains("imported ecdsa-p256 key \"imported\""),
            "{imp}"
        );
        let list = ok(ca.cmd().args(["keys", "list"]));
        assert!(
            list.lines().any(|l| l.starts_with("imported")
                && l.contains("sensitive=true extractable=false imported")),
            "{list}"
        );

        ca.start();
        let health: serde_json::Value = reqwest::blocking::get(ca.url("/healthz"))
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(health["keys"]["backend"], "pkcs11", "{health}");
        assert_eq!(health["keys"]["status"], "ok", "{health}");

        // Issue two certificates from the CLI (through the admin API), revoke one.
        for name in ["good", "bad"] {
            let out = ok(ca
                .cmd()
                .args([
                    "issue",
                    "--profile",
                    "tls-server",
                    "--generate-key",
                    "--dns",
                    &format!("{name}.example.com"),
                    "--out",
                ])
                .arg(ca.path(name)));
            assert!(out.contains("issued serial"), "{out}");
            let v = ok(openssl()
                .args(["verify", "-CAfile"])
                .arg(&chain_pem)
                .arg(ca.path(&format!("{name}.crt"))));
            assert!(v.contains("OK"), "{v}");
        }
        let good = ca.path("good.crt");
        let bad = ca.path("bad.crt");
        ok(ca
            .cmd()
            .args(["revoke", &serial_of(&bad), "--reason", "keyCompromise"]));

        // The CRL, signed on the token (RSA PKCS#1 v1.5), checked by OpenSSL.
        let crl_der = ca.path("issuing.crl");
        let bytes = reqwest::blocking::get(ca.url("/crl/issuing.crl"))
            .unwrap()
            .bytes()
            .unwrap();
        std::fs::write(&crl_der, &bytes).unwrap();
        let crl_pem = ca.path("issuing-crl.pem");
        ok(openssl()
            .args(["crl", "-inform", "DER", "-in"])
            .arg(&crl_der)
            .arg("-out")
            .arg(&crl_pem));
        ok(openssl()
            .args(["crl", "-noout", "-CAfile"])
            .arg(&chain_pem)
            .arg("-in")
            .arg(&crl_pem));
        let verify = |cert: &Path| {
            run(openssl()
                .args(["verify", "-crl_check", "-CAfile"])
                .arg(&chain_pem)
                .arg("-CRLfile")
                .arg(&crl_pem)
                .arg(cert))
        };
        let v = verify(&good);
        assert!(
            v.status.success(),
            "good with -crl_check: {}",
            String::from_utf8_lossy(&v.stderr)
        );
        let v = verify(&bad);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
        assert!(
            !v.status.success() && text.contains("certificate revoked"),
            "{text}"
        );

        // OCSP, signed on the token by the delegated responder (ECDSA P-256).
        let ocsp = |cert: &Path| {
            let out = run(openssl()
                .arg("ocsp")
                .arg("-issuer")
                .arg(ca_dir.join("issuing.crt"))
                .arg("-cert")
                .arg(cert)
                .args(["-url", &ca.url("/ocsp"), "-CAfile"])
                .arg(&chain_pem));
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && text.contains("Response verify OK"),
                "{text}"
            );
            text
        };
        let t = ocsp(&good);
        assert!(t.contains(": good"), "{t}");
        let t = ocsp(&bad);
        assert!(t.contains(": revoked"), "{t}");
        assert_eq!(ca.stop().code(), Some(0));
    });
}

/// `/healthz` proves the keys usable (a periodic test signature with every online key,
/// the HTTPS listener's included), says 503 naming the key while the token is gone, and 200
/// again once it is back; meanwhile issuance answers a retryable 503 and resumes by itself.
/// Nobody finalises the module: the token directory just goes away and comes back, as a
/// network HSM restart or a re-plugged USB token looks to the library. The server runs in
/// this process (so that the test can look at it between requests).
#[test]
fn healthz_follows_the_token() {
    with_token("healthz_follows_the_token", |module, dir| {
        let tls_port = privca_tests::free_port();
        let tls_listen = format!("127.0.0.1:{tls_port}");
        let mut args = hsm_args(module);
        args.extend(["--tls-listen".to_string(), tls_listen]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ca = TestCa::init(Path::new(BIN), &args);
        let cfg = privca_server::config::Config::load(&ca.config()).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let running = rt
            .block_on(privca_server::serve::start(
                &cfg,
                Some(format!("127.0.0.1:{}", ca.port).parse().unwrap()),
            ))
            .unwrap();
        assert!(running.tls_addr.is_some());
        let url = format!("http://{}/healthz", running.addr);
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let get = || {
            let t = Instant::now();
            let r = client.get(&url).send().unwrap();
            // Liveness bound: /healthz never waits for the key backend.
            assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().unwrap())
        };
        let token = std::fs::read_to_string(ca.data.join("admin-token")).unwrap();
        let issue = |dns: &str| {
            let r = privca_tests::admin_issue_tls_server(&client, running.addr, token.trim(), dns);
            let retry_after = r.headers().get("retry-after").is_some();
            (r.status().as_u16(), retry_after, r.text().unwrap())
        };
        let wait_health = |want: u16| {
            let t = Instant::now();
            loop {
                let (s, h) = get();
                if s == want {
                    return h;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "healthz never answered {want}: {h}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        };
        let h = wait_health(200);
        assert_eq!(h["keys"]["status"], "ok", "{h}");
        let probed: Vec<&str> = h["keys"]["probed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap())
            .collect();
        eprintln!("probed keys: {probed:?}");
        for want in [
            "ca:root",
            "ca:issuing",
            "ocsp:issuing",
            "ra:issuing",
            "https",
        ] {
            assert!(probed.contains(&want), "{want} not probed: {h}");
        }

        // The token goes away (nobody finalises the module).
        let tokens = dir.join("tokens");
        let away = dir.join("tokens.away");
        std::fs::rename(&tokens, &away).unwrap();
        let t = Instant::now();
        let (s, retry_after, body) = issue("during.example.com");
        eprintln!(
            "issuance while the token is gone: {s} {} in {:?}",
            body.trim(),
            t.elapsed()
        );
        assert_eq!(s, 503, "{body}");
        assert!(retry_after);
        let h = wait_health(503);
        eprintln!("token gone: {h}");
        assert_eq!(h["keys"]["status"], "unavailable", "{h}");
        assert!(!h.to_string().contains(PIN));

        // It comes back: healthz turns 200 and issuance works, without a restart.
        std::fs::rename(&away, &tokens).unwrap();
        let t = Instant::now();
        let h = wait_health(200);
        assert_eq!(h["keys"]["status"], "ok");
        eprintln!("token back: healthz 200 after {:?}", t.elapsed());
        let t = Instant::now();
        loop {
            let (s, _, body) = issue("after.example.com");
            if s == 201 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "issuance never resumed: {s} {body}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("issuance resumed {:?} after healthz said ok", t.elapsed());
        let _ = running.shutdown.send(());
        rt.block_on(running.done).unwrap();
    });
}

/// A file holding `b64` of `der`, wrapped at 64 columns (an EST request body).
fn base64_file(path: &Path, der: &[u8]) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let wrapped: String = b64
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
        .collect();
    std::fs::write(path, wrapped).unwrap();
}

/// Every key on the token: the SCEP RA key decrypts the client's envelope through
/// PKCS#11 (micromdm `scepclient`), the HTTPS certificate's key and the issuing CA key
/// sign for an EST enrollment by curl, and OpenSSL verifies what both clients got.
#[test]
fn scep_and_est_with_token_keys() {
    with_token("scep_and_est_with_token_keys", |module, _dir| {
        let tls_port = privca_tests::free_port();
        let listen = format!("127.0.0.1:{tls_port}");
        let mut args = hsm_args(module);
        // scepclient encrypts to every certificate GetCACert returns and fails on ECDSA
        // ones, so this hierarchy is RSA (see tests/vectors/scep/README.md).
        args.extend(
            [
                "--root-key",
                "rsa-2048",
                "--issuing-key",
                "rsa-2048",
                "--tls-listen",
                &listen,
                "--hostname",
                "localhost",
            ]
            .map(String::from),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut ca = TestCa::init(Path::new(BIN), &args);
        assert!(!ca.data.join("keys").exists(), "no key files with --hsm");
        let list = ok(ca.cmd().args(["keys", "list"]));
        assert!(
            list.lines().any(|l| l.starts_with("tls-server")),
            "the HTTPS key is on the token:\n{list}"
        );

        // The EST password hash from the CLI (password on stdin).
        let mut child = ca
            .cmd()
            .args(["est", "hash-password", "--iterations", "10000"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"est-pass\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let hash = String::from_utf8(out.stdout).unwrap();
        privca_tests::write_secret(&ca.data.join("scep.secret"), "s3cret\n");
        let mut cfg = std::fs::read_to_string(ca.config()).unwrap();
        cfg.push_str(&format!(
            r#"
[scep.endpoints.devices]
profile = "device"
default = true
allow_des = true            # micromdm scepclient 2.1.0 only encrypts with DES-CBC
challenge = {{ method = "static", accounts = [{{ name = "mdm", secret = {{ file = "scep.secret" }} }}] }}

[est]
default_endpoint = "basic"

[est.endpoints.basic]
profile = "tls-client"
auth = "basic"
accounts = [{{ username = "alice", password_hash = "{}" }}]
"#,
            hash.trim()
        ));
        std::fs::write(ca.config(), cfg).unwrap();
        ca.start();

        let verify = |pem: &Path| {
            let out = ca.openssl_verify(pem);
            assert!(out.contains(": OK"), "{out}");
        };

        // SCEP: the RA key on the token decrypts the envelope, the issuing key signs.
        let dir = ca.path("scep");
        std::fs::create_dir_all(&dir).unwrap();
        ok(openssl()
            .args(["genrsa", "-traditional", "-out"])
            .arg(dir.join("key.pem"))
            .arg("2048"));
        // One enrollment with scepclient in its own directory (it keeps its files there),
        // with the key made above; answers whether it succeeded and what it printed.
        let enroll = |name: &str, url: &str, cn: &str, challenge: &str| {
            let d = ca.path(name);
            std::fs::create_dir_all(&d).unwrap();
            if d != dir {
                std::fs::copy(dir.join("key.pem"), d.join("key.pem")).unwrap();
            }
            let o = run(Command::new("scepclient")
                .current_dir(&d)
                .env("SSL_CERT_FILE", ca.data.join("ca/root.crt"))
                .args(["-server-url", url, "-private-key", "key.pem"])
                .args([
                    "-certificate",
                    "cert.pem",
                    "-cn",
                    cn,
                    "-challenge",
                    challenge,
                ]));
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            (
                o.status.success() && text.contains("SUCCESS"),
                text,
                d.join("cert.pem"),
            )
        };
        let (enrolled, text, cert) =
            enroll("scep", &ca.url("/scep/devices"), "hsm-device", "s3cret");
        assert!(enrolled, "{text}");
        verify(&cert);
        // A wrong challenge still decrypts on the token and is refused.
        let (enrolled, text, cert) = enroll(
            "scep-bad",
            &ca.url("/scep/devices"),
            "hsm-device-2",
            "wrong",
        );
        assert!(!enrolled && !cert.exists(), "{text}");

        // SCEP is served on the HTTPS listener too (Intune and Android need HTTPS).
        let caps = ok(Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(ca.data.join("ca/root.crt"))
            .args(["--resolve", &format!("localhost:{tls_port}:127.0.0.1")])
            .arg(format!(
                "https://localhost:{tls_port}/scep/devices?operation=GetCACaps"
            )));
        assert!(
            caps.contains("POSTPKIOperation") && caps.contains("SHA-256"),
            "{caps}"
        );
        let https = format!("https://localhost:{tls_port}/scep/devices");
        let (enrolled, text, cert) = enroll("scep-https", &https, "hsm-device-https", "s3cret");
        assert!(enrolled, "{text}");
        verify(&cert);

        // EST over HTTPS (TLS key on the token): curl with Basic auth, OpenSSL's CSR.
        let csr_der = ca.path("est.csr.der");
        ok(openssl()
            .args([
                "req",
                "-new",
                "-subj",
                "/CN=hsm-est-client",
                "-newkey",
                "ec",
            ])
            .args(["-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout"])
            .arg(ca.path("est.key"))
            .args(["-outform", "DER", "-out"])
            .arg(&csr_der));
        let body = ca.path("est.csr.b64");
        base64_file(&body, &std::fs::read(&csr_der).unwrap());
        let p7 = ca.path("est.p7.b64");
        let code = ok(Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(ca.data.join("ca/root.crt"))
            .args(["--resolve", &format!("localhost:{tls_port}:127.0.0.1")])
            .args(["--user", "alice:est-pass", "-o"])
            .arg(&p7)
            .args([
                "-w",
                "%{http_code}",
                "-H",
                "Content-Type: application/pkcs10",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .arg(format!(
                "https://localhost:{tls_port}/.well-known/est/simpleenroll"
            )));
        assert_eq!(
            code.trim(),
            "200",
            "{}",
            std::fs::read_to_string(&p7).unwrap_or_default()
        );
        let p7_der = ca.path("est.p7.der");
        ok(openssl()
            .args(["base64", "-d", "-in"])
            .arg(&p7)
            .arg("-out")
            .arg(&p7_der));
        let pem = ca.path("est.pem");
        ok(openssl()
            .args(["pkcs7", "-inform", "DER", "-print_certs", "-in"])
            .arg(&p7_der)
            .arg("-out")
            .arg(&pem));
        verify(&pem);
        let subject = ok(openssl()
            .args(["x509", "-noout", "-subject", "-in"])
            .arg(&pem));
        assert!(subject.contains("hsm-est-client"), "{subject}");
        assert!(ca.stop().success());
    });
}

/// privca renews its own certificates with the keys on the token (issue 15 item 5): a
/// one-day OCSP responder, RA and HTTPS certificate are replaced by the running server,
/// each with a new key generated on the token (sensitive, not extractable), while
/// `openssl ocsp` and `openssl s_client` keep verifying; a restart uses the new keys.
#[test]
fn own_certificates_renewed_on_the_token() {
    with_token("own_certificates_renewed_on_the_token", |module, _dir| {
        let tls_port = privca_tests::free_port();
        let tls_listen = format!("127.0.0.1:{tls_port}");
        let mut args = hsm_args(module);
        args.extend(
            [
                "--issuing-key",
                "rsa-2048",
                "--tls-listen",
                &tls_listen,
                "--tls-days",
                "1",
            ]
            .map(String::from),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut ca = TestCa::init(Path::new(BIN), &args);
        privca_tests::reissue_for_one_day(&ca, "issuing-ocsp", "ocsp-signing");
        privca_tests::reissue_for_one_day(&ca, "issuing-ra", "ra");
        let cfg = std::fs::read_to_string(ca.config()).unwrap();
        std::fs::write(
            ca.config(),
            cfg.replace("check_interval = \"1h\"", "check_interval = \"5s\""),
        )
        .unwrap();
        ca.write_chain_pem();
        let old_ocsp = serial_of(&ca.data.join("ca/issuing-ocsp.crt"));
        let old_tls = serial_of(&ca.data.join("ca/tls-server.crt"));
        ca.start();
        // A certificate to ask about, issued from the CLI (through the admin API).
        ok(ca
            .cmd()
            .args(["issue", "--profile", "tls-server", "--generate-key"])
            .args(["--dns", "renew.example.com", "--out"])
            .arg(ca.path("leaf")));
        let leaf = ca.path("leaf.crt");
        let t = privca_tests::ocsp_good(&ca, &leaf, true);
        assert!(
            privca_tests::hex_eq(&privca_tests::responder_serial(&t), &old_ocsp),
            "{t}"
        );
        assert!(privca_tests::hex_eq(
            &privca_tests::tls_serial(&ca, tls_port, "a"),
            &old_tls
        ));

        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let h = privca_tests::healthz(&ca);
            if ["ocsp:issuing", "ra:issuing", "https"]
                .iter()
                .all(|n| privca_tests::status_of(&h, n).0 == "ok")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not renewed: {h}\n{}",
                ca.server_log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        let new_ocsp = serial_of(&ca.data.join("ca/issuing-ocsp.crt"));
        let new_tls = serial_of(&ca.data.join("ca/tls-server.crt"));
        assert!(!privca_tests::hex_eq(&new_ocsp, &old_ocsp));
        let t = privca_tests::ocsp_good(&ca, &leaf, true);
        assert!(
            privca_tests::hex_eq(&privca_tests::responder_serial(&t), &new_ocsp),
            "{t}"
        );
        assert!(privca_tests::hex_eq(
            &privca_tests::tls_serial(&ca, tls_port, "b"),
            &new_tls
        ));
        assert!(ca.stop().success());

        // The new keys are on the token, generated there, and named by the files.
        let list = ok(ca.cmd().args(["keys", "list"]));
        for (base, file) in [
            ("issuing-ocsp", "issuing-ocsp"),
            ("issuing-ra", "issuing-ra"),
            ("tls-server", "tls-server"),
        ] {
            let body = std::fs::read_to_string(ca.data.join(format!("ca/{file}.crt"))).unwrap();
            let label = body
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("privca key: "))
                .unwrap_or_else(|| panic!("{body}"));
            assert!(label.starts_with(&format!("{base}.")), "{label}");
            let line = list
                .lines()
                .find(|l| l.split_whitespace().next() == Some(label))
                .unwrap_or_else(|| panic!("{label} not on the token:\n{list}"));
            assert!(
                line.contains("sensitive=true extractable=false generated-on-token"),
                "{line}"
            );
        }
        assert!(!ca.data.join("keys").exists(), "no key files with --hsm");
        ca.start();
        let t = privca_tests::ocsp_good(&ca, &leaf, false);
        assert!(
            privca_tests::hex_eq(&privca_tests::responder_serial(&t), &new_ocsp),
            "{t}"
        );
        assert!(privca_tests::hex_eq(
            &privca_tests::tls_serial(&ca, tls_port, "c"),
            &new_tls
        ));
    });
}
