//! Helpers for the workspace tests: a CA in a temporary directory, the `privca` binary
//! running as a server on a free loopback port, and runners for third-party tools.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod quickstart;

/// True when the interop gate is on (`PRIVCA_INTEROP=1`, set by `scripts/test.sh`, which
/// installs the tools). With the gate on, a missing tool fails the test; with it off the
/// interop tests print why they skip.
pub fn interop_enabled(test: &str) -> bool {
    if std::env::var("PRIVCA_INTEROP").is_ok_and(|v| v == "1") {
        return true;
    }
    eprintln!(
        "{test}: skipped (set PRIVCA_INTEROP=1, or run scripts/test.sh, to run interop tests)"
    );
    false
}

/// Writes a secret file with mode 0600 (privca refuses secret files that group or others
/// may read, issue 9 item 7).
pub fn write_secret(path: &Path, bytes: impl AsRef<[u8]>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).expect("write secret file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod secret file");
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

/// Runs a command and returns its output; panics with the command line if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

/// Runs a command that must succeed; returns stdout as text.
pub fn ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{shown} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command that must fail; returns stdout+stderr as text.
pub fn fails(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        !out.status.success(),
        "{shown} should have failed but succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A CA made by `privca init` in a temporary directory, optionally served.
pub struct TestCa {
    /// Holds the directory.
    pub dir: tempfile::TempDir,
    /// The data directory (`<dir>/data`).
    pub data: PathBuf,
    /// The port in the configuration.
    pub port: u16,
    /// The server process, when running.
    pub server: Option<Child>,
    /// Path of the `privca` binary.
    pub bin: PathBuf,
}

impl TestCa {
    /// Runs `privca init` with `extra` arguments in a new temporary directory.
    pub fn init(bin: &Path, extra: &[&str]) -> TestCa {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let base = format!("http://{listen}");
        let mut args = vec![
            "init",
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            "--listen",
            &listen,
            "--base-url",
            &base,
        ];
        args.extend_from_slice(extra);
        ok(Command::new(bin).args(&args));
        TestCa {
            dir,
            data,
            port,
            server: None,
            bin: bin.to_path_buf(),
        }
    }

    /// The configuration file.
    pub fn config(&self) -> PathBuf {
        self.data.join("privca.toml")
    }

    /// A `privca` command with `--config` set.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--config")
            .arg(self.config())
            .current_dir(self.dir.path());
        c
    }

    /// The base URL.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Starts `privca serve` and waits until /healthz answers.
    pub fn start(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        let child = self
            .cmd()
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start privca serve");
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::blocking::get(self.url("/healthz"))
                && r.status().is_success()
            {
                return;
            }
            if let Some(c) = self.server.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("server exited early ({status}):\n{}", self.server_log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("server did not come up:\n{}", self.server_log());
    }

    /// The server's log so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.server.take().expect("server running");
        ok(Command::new("kill").args(["-TERM", &child.id().to_string()]));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not stop on SIGTERM:\n{}", self.server_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Writes `bytes` to a file in the temporary directory and returns its path.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).expect("write file");
        p
    }

    /// A path in the temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `openssl verify` of the certificate in `pem` against this CA's root, with the
    /// issuing CA as untrusted intermediate; it must exit 0, its stdout is returned.
    pub fn openssl_verify(&self, pem: &Path) -> String {
        ok(openssl()
            .args(["verify", "-CAfile"])
            .arg(self.data.join("ca/root.crt"))
            .arg("-untrusted")
            .arg(self.data.join("ca/issuing.crt"))
            .arg(pem))
    }

    /// Writes `<data>/ca/chain.pem` (the issuing CA's certificate, then the root's, PEM)
    /// for OpenSSL and curl, and returns its path.
    pub fn write_chain_pem(&self) -> PathBuf {
        let d = self.data.join("ca");
        let chain = format!(
            "{}{}",
            std::fs::read_to_string(d.join("issuing.crt")).expect("issuing"),
            std::fs::read_to_string(d.join("root.crt")).expect("root")
        );
        let path = d.join("chain.pem");
        std::fs::write(&path, chain).expect("chain");
        path
    }

    /// A PBKDF2 hash (10,000 iterations) of `password` from `privca est hash-password`,
    /// the password on stdin (never on a command line).
    pub fn est_password_hash(&self, password: &str) -> String {
        use std::io::Write as _;
        let mut child = self
            .cmd()
            .args(["est", "hash-password", "--iterations", "10000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("hash-password");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("write password");
        let out = child.wait_with_output().expect("hash-password output");
        assert!(out.status.success());
        let hash = String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string();
        assert!(hash.starts_with("$pbkdf2-sha256$i=10000$"), "{hash}");
        hash
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The serial of the certificate in `cert` (PEM), hex, as `openssl x509 -serial` prints it.
pub fn serial_of(cert: &Path) -> String {
    ok(openssl()
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(cert))
    .trim()
    .trim_start_matches("serial=")
    .to_string()
}

/// An `openssl` command.
pub fn openssl() -> Command {
    Command::new("openssl")
}

/// A command's stdout and stderr, as text.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs micromdm's `scepclient` in its own directory `dir` (it keeps csr.pem beside the
/// key) against `url` for `CN=<cn>`, with `challenge` if any; the RSA-2048 key
/// (`key.pem`) is made with OpenSSL unless `dir` has one, the certificate goes to
/// `cert.pem`.
pub fn scepclient(dir: &Path, url: &str, cn: &str, challenge: Option<&str>) -> Output {
    std::fs::create_dir_all(dir).expect("dir");
    if !dir.join("key.pem").exists() {
        ok(openssl()
            .args(["genrsa", "-traditional", "-out"])
            .arg(dir.join("key.pem"))
            .arg("2048"));
    }
    let mut c = Command::new("scepclient");
    c.current_dir(dir).args([
        "-server-url",
        url,
        "-private-key",
        "key.pem",
        "-certificate",
        "cert.pem",
        "-cn",
        cn,
    ]);
    if let Some(ch) = challenge {
        c.args(["-challenge", ch]);
    }
    run(&mut c)
}

/// Runs a pkilint linter over `file` and returns the findings at ERROR or above
/// (parsed from its JSON output; the exit code counts findings, so it is not trusted alone).
pub fn pkilint(linter: &str, args: &[&str], file: &Path) -> Vec<String> {
    let out = run(Command::new(linter)
        .arg("lint")
        .args(args)
        .args(["-s", "ERROR", "-f", "JSON"])
        .arg(file));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{linter} on {} gave no JSON ({e}): {text}\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut found = Vec::new();
    collect_findings(&json, &mut found);
    found
}

fn collect_findings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let (Some(sev), Some(code)) = (m.get("severity"), m.get("code")) {
                let sev = sev.as_str().unwrap_or("");
                if matches!(sev, "ERROR" | "FATAL") {
                    out.push(format!(
                        "{sev} {} {}",
                        code.as_str().unwrap_or(""),
                        m.get("message").and_then(|x| x.as_str()).unwrap_or("")
                    ));
                }
            }
            for x in m.values() {
                collect_findings(x, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_findings(x, out)),
        _ => {}
    }
}

/// The state of an in-process server for admin API tests: `auth`, the admin token
/// `token` (loopback only), `[scep]` from `scep`, `keys` for `/healthz`, no key probe.
pub fn admin_state(
    auth: std::sync::Arc<ca_core::Authority>,
    scep: &scep::config::ScepConfig,
    token: &str,
    keys: Option<std::sync::Arc<dyn hsm::KeyStore>>,
) -> std::sync::Arc<privca_server::http::AppState> {
    std::sync::Arc::new(privca_server::http::AppState {
        auth,
        admin_token_hash: privca_server::http::token_hash(token.as_bytes()),
        admin_loopback_only: true,
        scep: scep.clone(),
        acme: acme::AcmeConfig::default(),
        keys,
        key_probe: None,
        renewer: None,
        console: privca_server::http::console::Console::new(),
    })
}

/// privca's HTTP router served in process (`privca_server::listener::serve`) on a free
/// loopback port, on a runtime of its own. [`InProcessServer::stop`] shuts it down.
pub struct InProcessServer {
    /// The runtime it runs on.
    pub rt: tokio::runtime::Runtime,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

impl InProcessServer {
    /// Serves `state` with the listener limits of the default configuration (1 MiB
    /// bodies, 10 s header and idle timeouts, 64 connections) but `request_timeout`;
    /// the shutdown grace is 5 s.
    pub fn start(
        state: std::sync::Arc<privca_server::http::AppState>,
        request_timeout: Duration,
    ) -> InProcessServer {
        let limits = privca_server::http::Limits {
            max_body_bytes: 1 << 20,
            header_timeout: Duration::from_secs(10),
            request_timeout,
            idle_timeout: Duration::from_secs(10),
            max_connections: 64,
            max_connections_per_client: 0,
        };
        let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = rt.spawn(privca_server::listener::serve(
            listener,
            privca_server::http::router(state, limits),
            limits,
            async move {
                let _ = stop_rx.await;
            },
            Duration::from_secs(5),
        ));
        InProcessServer {
            rt,
            addr,
            stop,
            served,
        }
    }

    /// Asks the server to stop and waits until it has.
    pub fn stop(self) {
        let InProcessServer {
            rt, stop, served, ..
        } = self;
        let _ = stop.send(());
        rt.block_on(served).expect("the server task");
    }
}

/// The `[est]` section the EST tests share, to append to a configuration: default
/// endpoint `basic`; endpoints `basic` and `held` (which holds every request for approval,
/// retry after 7 s), both profile `tls-client`, HTTP basic for `alice` whose password
/// hash is `hash`. Further `[est.endpoints.*]` tables may follow it.
pub fn est_basic_endpoints(hash: &str) -> String {
    format!(
        r#"
[est]
default_endpoint = "basic"

[est.endpoints.basic]
profile = "tls-client"
auth = "basic"
accounts = [{{ username = "alice", password_hash = "{hash}" }}]

[est.endpoints.held]
profile = "tls-client"
auth = "basic"
accounts = [{{ username = "alice", password_hash = "{hash}" }}]
require_approval = true
retry_after_seconds = 7
"#
    )
}

/// POSTs to the admin API at `addr` (plain HTTP) with bearer `token` a request for a
/// `tls-server` certificate for DNS name `dns` with a server-generated ECDSA P-256 key.
pub fn admin_issue_tls_server(
    client: &reqwest::blocking::Client,
    addr: std::net::SocketAddr,
    token: &str,
    dns: &str,
) -> reqwest::blocking::Response {
    client
        .post(format!("http://{addr}/admin/v1/certificates"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "profile": "tls-server",
            "generate_key": "ecdsa-p256",
            "sans": [dns],
        }))
        .send()
        .expect("admin API request")
}

/// Re-issues `<data>/ca/<name>.crt` (an OCSP responder or RA certificate) for its key of
/// the same label under `profile`, valid one day, through the issuance pipeline (offline:
/// no server may run), so that a test starts a server whose own certificate is due for
/// renewal (tests/tests/e2e_own_renewal.rs, e2e_hsm.rs).
pub fn reissue_for_one_day(ca: &TestCa, name: &str, profile: &str) {
    let cfg = privca_server::config::Config::load(&ca.config()).expect("config");
    let (auth, keys) = cfg.load_authority_and_keys().expect("authority");
    let path = ca.data.join(format!("ca/{name}.crt"));
    let old = ca_core::authority::read_cert_file(&path).expect("cert");
    let cert = <x509_cert::Certificate as der::Decode>::from_der(&old).expect("parse");
    let key = keys.open(name).expect("key");
    let req = ca_core::IssueRequest {
        profile: profile.into(),
        subject: cert.tbs_certificate().subject().clone(),
        sans: Vec::new(),
        spki_der: key.public_key_der().to_vec(),
        key_algorithm: key.algorithm(),
        extensions: Vec::new(),
        requester: "test".into(),
        validity_days: Some(1),
        issuer: Some("issuing".into()),
    };
    let der = auth.issue(&req).expect("issue").record.der;
    std::fs::write(&path, privca_server::admin::pem("CERTIFICATE", &der)).expect("write");
}

/// `/healthz` as JSON.
pub fn healthz(ca: &TestCa) -> serde_json::Value {
    reqwest::blocking::get(ca.url("/healthz"))
        .expect("healthz")
        .json()
        .expect("json")
}

/// Status, days left and serial of `name` in the `/healthz` expiry list.
pub fn status_of(h: &serde_json::Value, name: &str) -> (String, i64, String) {
    let e = h["expiry"]
        .as_array()
        .expect("expiry list")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {h}"));
    (
        e["status"].as_str().unwrap_or_default().to_string(),
        e["days_left"].as_i64().unwrap_or(-1),
        e["serial"].as_str().unwrap_or_default().to_string(),
    )
}

/// `openssl ocsp` for `cert` (issued by the issuing CA; `<data>/ca/chain.pem` must exist):
/// the response must verify and say good. Returns its text (`-resp_text`).
pub fn ocsp_good(ca: &TestCa, cert: &Path, no_nonce: bool) -> String {
    let mut cmd = openssl();
    cmd.arg("ocsp");
    if no_nonce {
        cmd.arg("-no_nonce");
    }
    cmd.arg("-issuer")
        .arg(ca.data.join("ca/issuing.crt"))
        .arg("-cert")
        .arg(cert)
        .args(["-url", &ca.url("/ocsp"), "-resp_text", "-CAfile"])
        .arg(ca.data.join("ca/chain.pem"));
    let out = run(&mut cmd);
    let t = output_text(&out);
    assert!(out.status.success(), "openssl ocsp: {t}");
    assert!(t.contains("Response verify OK"), "{t}");
    assert!(t.contains(": good"), "{t}");
    t
}

/// The serial of the responder certificate an `openssl ocsp -resp_text` output holds.
pub fn responder_serial(t: &str) -> String {
    let i = t
        .find("-----BEGIN CERTIFICATE-----")
        .expect("responder cert");
    let j = t.find("-----END CERTIFICATE-----").expect("end") + 25;
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("r.pem");
    std::fs::write(&p, &t[i..j]).expect("write");
    serial_of(&p)
}

/// The serial of the leaf certificate `openssl s_client` gets from `port`, verified
/// against the root.
pub fn tls_serial(ca: &TestCa, port: u16, name: &str) -> String {
    let out = run(openssl()
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-servername",
            "localhost",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(ca.data.join("ca/chain.pem")));
    let t = output_text(&out);
    assert!(out.status.success(), "s_client: {t}");
    assert!(t.contains("Verify return code: 0 (ok)"), "{t}");
    let i = t.find("-----BEGIN CERTIFICATE-----").expect("server cert");
    let j = t.find("-----END CERTIFICATE-----").expect("end") + 25;
    let p = ca.file(&format!("tls-{name}.pem"), &t.as_bytes()[i..j]);
    serial_of(&p)
}

/// Two hex serials are the same number.
pub fn hex_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches('0')
        .eq_ignore_ascii_case(b.trim_start_matches('0'))
}
