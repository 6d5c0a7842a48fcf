//! The listeners under quirky and hostile clients, with `privca serve` as a process
//! (issue 9): idle sockets and connection caps (item 4), an oversize declared body with
//! `Expect: 100-continue` (12), half-closing clients (13), header names as libest compares
//! them (16), and what the log file looks like (23). Raw sockets on loopback only; every
//! loop is bounded in count and every wait in time. Needs no third-party tool.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use der::{Decode, Encode};
use privca_tests::{TestCa, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");
const PASSWORD: &str = "listener test password";
/// Liveness bound for any single answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

struct Server {
    ca: TestCa,
    tls_port: u16,
}

/// A CA with the HTTPS listener, EST (basic, and basic with approval) and a static SCEP
/// endpoint; `server` holds `[server]` settings that replace the ones `init` wrote.
fn start(server: &[(&str, &str)]) -> Server {
    let tls_port = free_port();
    let listen = format!("127.0.0.1:{tls_port}");
    let mut ca = TestCa::init(
        Path::new(BIN),
        &["--tls-listen", &listen, "--hostname", "localhost"],
    );
    let pw = ca.path("est-password");
    privca_tests::write_secret(&pw, format!("{PASSWORD}\n"));
    let hash = privca_server::cli::hash_password(Some(&pw), 10_000).expect("hash");
    let secret = ca.data.join("scep.secret");
    privca_tests::write_secret(&secret, "s3cret\n");
    let cfg = ca.config();
    let text = std::fs::read_to_string(&cfg).expect("config");
    // Replace the [server] keys given (and drop the ones init wrote for them).
    let (head, rest) = text
        .split_once("\n[store]\n")
        .expect("[store] follows [server]");
    let mut server_part: Vec<String> = head
        .lines()
        .filter(|l| {
            !server
                .iter()
                .any(|(k, _)| l.starts_with(&format!("{k} = ")))
        })
        .map(str::to_string)
        .collect();
    let at = server_part
        .iter()
        .position(|l| l == "[server]")
        .expect("[server]")
        + 1;
    for (k, v) in server.iter().rev() {
        server_part.insert(at, format!("{k} = {v}"));
    }
    let mut text = format!("{}\n\n[store]\n{rest}", server_part.join("\n")).replace(
        "handshake_timeout_seconds = 10",
        "handshake_timeout_seconds = 3",
    );
    text.push_str(&privca_tests::est_basic_endpoints(&hash));
    text.push_str(
        r#"
[scep.endpoints.devices]
profile = "device"
default = true
challenge = { method = "static", accounts = [{ name = "mdm", secret = { file = "scep.secret" } }] }
"#,
    );
    std::fs::write(&cfg, text).expect("write config");
    ca.start();
    Server { ca, tls_port }
}

impl Server {
    fn plain(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ca.port))
    }
    fn tls(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tls_port))
    }
    fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_file_iter(self.ca.data.join("ca/root.crt"))
            .expect("root")
        {
            roots.add(c.expect("root pem")).expect("add root");
        }
        Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
    fn pem_der(&self, rel: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_file(self.ca.data.join(rel))
            .expect("pem")
            .to_vec()
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(ANSWER_WITHIN)).expect("timeout");
    s.set_write_timeout(Some(ANSWER_WITHIN)).expect("timeout");
    s
}

fn tls_connect(srv: &Server) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let conn = rustls::ClientConnection::new(
        srv.tls_config(),
        rustls_pki_types::ServerName::try_from("localhost").expect("name"),
    )
    .expect("tls client");
    let mut s = rustls::StreamOwned::new(conn, connect(srv.tls()));
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("TLS handshake");
    }
    s
}

/// An HTTP/1 response as it came off the wire: header names exactly as sent.
#[derive(Debug)]
struct Raw {
    status_line: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response: the head, then `Content-Length` bytes (or to EOF without one).
fn read_response(r: &mut impl Read) -> Option<Raw> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match r.read(&mut b) {
            Ok(0) => return None,
            Ok(_) => head.push(b[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
        if head.len() > 64 * 1024 {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?.to_string();
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect();
    let mut raw = Raw {
        status_line,
        status,
        headers,
        body: Vec::new(),
    };
    if status == 100 || status == 204 || status == 304 {
        return Some(raw);
    }
    match raw
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(n) => {
            raw.body = vec![0u8; n];
            r.read_exact(&mut raw.body).ok()?;
        }
        None => {
            let _ = r.read_to_end(&mut raw.body);
        }
    }
    Some(raw)
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn exchange_plain(addr: SocketAddr, req: &[u8]) -> Raw {
    let mut s = connect(addr);
    s.write_all(req).expect("send");
    read_response(&mut s).expect("an answer")
}

fn exchange_tls(srv: &Server, req: &[u8]) -> Raw {
    let mut s = tls_connect(srv);
    s.write_all(req).expect("send");
    s.flush().expect("flush");
    read_response(&mut s).expect("an answer")
}

/// Whether the server has closed `s` (EOF or reset already there), without waiting.
fn closed_by_server(s: &TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut b = [0u8; 512];
    let mut reader = s;
    let r = loop {
        match reader.read(&mut b) {
            Ok(0) => break true,
            // Data (a 408 or a GOAWAY) before the close: read on.
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).expect("blocking");
    r
}

/// Waits (bounded) until the server closes `s`.
fn wait_closed(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).expect("timeout");
    let mut b = [0u8; 512];
    let deadline = Instant::now() + within;
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
        if Instant::now() > deadline {
            return false;
        }
    }
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Item 4. More idle sockets than `max_connections`, of every kind that used to stay
/// open for ever (nothing sent, an HTTP/2 preface only, half a request line, a finished
/// TLS handshake and nothing after): the idle timeout closes them, the excess waits
/// (held in the backlog) instead of being served beside them, a fresh client is
/// served once they are gone, and the cap is logged once, not once per connection.
#[test]
fn idle_connections_are_closed_and_the_cap_holds_the_rest() {
    const CAP: usize = 6;
    const EXCESS: usize = 2;
    let srv = start(&[
        ("idle_timeout_seconds", "2"),
        ("header_timeout_seconds", "2"),
        ("request_timeout_seconds", "5"),
        ("max_connections", &CAP.to_string()),
    ]);
    // Plain listener: CAP idle sockets of three kinds, then two more than the cap.
    let mut idle: Vec<TcpStream> = Vec::new();
    for i in 0..CAP {
        let mut s = connect(srv.plain());
        match i % 3 {
            0 => {}
            1 => s.write_all(H2_PREFACE).expect("preface"),
            _ => s.write_all(b"GET /hea").expect("half a request line"),
        }
        idle.push(s);
    }
    let mut excess: Vec<TcpStream> = (0..EXCESS).map(|_| connect(srv.plain())).collect();
    // A fresh client, queued behind all of them.
    let mut fresh = connect(srv.plain());
    fresh
        .write_all(&request("GET", "/healthz", &[], b""))
        .expect("send");
    let answer = read_response(&mut fresh).expect("the fresh client is served");
    assert_eq!(answer.status, 200, "{answer:?}");
    // It was held: connections are accepted in order and at most CAP are open, so it
    // got in only after EXCESS + 1 of the others had been closed by the server.
    let closed = idle
        .iter_mut()
        .chain(excess.iter_mut())
        .filter(|s| closed_by_server(s))
        .count();
    assert!(
        closed > EXCESS,
        "a client beyond the cap was served while only {closed} of {} idle sockets were closed:\n{}",
        CAP + EXCESS,
        srv.ca.server_log()
    );
    // And every idle one is closed in the end (the idle timeout, not the client).
    for s in idle.iter_mut().chain(excess.iter_mut()) {
        assert!(
            wait_closed(s, ANSWER_WITHIN),
            "an idle plain socket stayed open"
        );
    }

    // HTTPS listener: handshakes completed, then silence; one more that never starts.
    let mut tls_idle: Vec<_> = (0..CAP).map(|_| tls_connect(&srv)).collect();
    let mut tls_excess = connect(srv.tls());
    let mut fresh = {
        let conn = rustls::ClientConnection::new(
            srv.tls_config(),
            rustls_pki_types::ServerName::try_from("localhost").expect("name"),
        )
        .expect("tls client");
        rustls::StreamOwned::new(conn, connect(srv.tls()))
    };
    fresh
        .write_all(&request("GET", "/healthz", &[], b""))
        .expect("send");
    let answer = read_response(&mut fresh).expect("the fresh TLS client is served");
    assert_eq!(answer.status, 200, "{answer:?}");
    let closed = tls_idle
        .iter_mut()
        .map(|s| &mut s.sock)
        .chain(std::iter::once(&mut tls_excess))
        .filter(|s| closed_by_server(s))
        .count();
    assert!(
        closed > 1,
        "a TLS client beyond the cap was served while only {closed} of {} idle connections were closed",
        CAP + 1
    );
    for s in tls_idle
        .iter_mut()
        .map(|s| &mut s.sock)
        .chain(std::iter::once(&mut tls_excess))
    {
        assert!(
            wait_closed(s, ANSWER_WITHIN),
            "an idle TLS connection stayed open"
        );
    }

    // Still serving; the cap was logged, rate-limited (once per listener at most).
    assert_eq!(
        exchange_plain(srv.plain(), &request("GET", "/healthz", &[], b"")).status,
        200
    );
    let log = srv.ca.server_log();
    let warnings = log.matches("connection limit reached").count();
    assert!(
        (1..=2).contains(&warnings),
        "{warnings} cap warnings:\n{log}"
    );
}

/// Item 4, per client: with `max_connections_per_client`, one address cannot take the
/// listener; its extra connections are closed at once (logged once), while another
/// address (127.0.0.2 is loopback too) is served.
#[test]
fn one_client_address_cannot_take_every_connection() {
    let srv = start(&[
        ("idle_timeout_seconds", "60"),
        ("header_timeout_seconds", "60"),
        ("max_connections", "16"),
        ("max_connections_per_client", "3"),
    ]);
    // Three keep-alive connections that are served and stay open. (The start-up health
    // check's connection may still count for a moment: a refused one is retried.)
    let keep_alive = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..20 {
        if held.len() == 3 {
            break;
        }
        let mut s = connect(srv.plain());
        let _ = s.write_all(keep_alive);
        if read_response(&mut s).is_some_and(|r| r.status == 200) {
            held.push(s);
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert_eq!(
        held.len(),
        3,
        "three connections from one address are served"
    );
    for _ in 0..3 {
        let mut extra = connect(srv.plain());
        let _ = extra.write_all(keep_alive);
        assert!(
            read_response(&mut extra).is_none(),
            "a fourth connection from one address was served:\n{}",
            srv.ca.server_log()
        );
    }
    // The three are still open and served.
    for s in held.iter_mut() {
        s.write_all(keep_alive).expect("send");
        assert_eq!(read_response(s).map(|r| r.status), Some(200));
    }
    // Another address gets in and is served.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let answer = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind("127.0.0.2:0".parse().expect("addr"))
            .expect("bind 127.0.0.2");
        let mut s = tokio::time::timeout(ANSWER_WITHIN, sock.connect(srv.plain()))
            .await
            .expect("in time")
            .expect("connect");
        s.write_all(&request("GET", "/healthz", &[], b""))
            .await
            .expect("send");
        let mut out = Vec::new();
        tokio::time::timeout(ANSWER_WITHIN, s.read_to_end(&mut out))
            .await
            .expect("in time")
            .expect("read");
        out
    });
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(held);
    let log = srv.ca.server_log();
    assert_eq!(
        log.matches("per-client connection limit reached").count(),
        1,
        "three refusals, one warning:\n{log}"
    );
}

/// Item 12: a declared body over `max_body_bytes` gets 413 at once, before `100
/// Continue` and before any body byte, on the plain listener (OCSP, SCEP) and on the
/// HTTPS one (EST).
#[test]
fn a_declared_oversize_body_is_refused_before_100_continue() {
    let srv = start(&[]);
    let huge = "10000000000";
    let oversize = |path: &str, ct: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {ct}\r\nContent-Length: {huge}\r\nExpect: 100-continue\r\n\r\n"
        )
        .into_bytes()
    };
    for (path, ct) in [
        ("/ocsp", "application/ocsp-request"),
        (
            "/scep/devices?operation=PKIOperation",
            "application/x-pki-message",
        ),
        ("/admin/v1/certificates", "application/json"),
    ] {
        let mut s = connect(srv.plain());
        s.write_all(&oversize(path, ct)).expect("send head");
        let r = read_response(&mut s).expect("an answer without sending the body");
        assert_eq!(r.status, 413, "{path}: {r:?}");
        assert!(
            wait_closed(&mut s, ANSWER_WITHIN),
            "{path}: connection left open"
        );
    }
    let mut s = tls_connect(&srv);
    s.write_all(&oversize(
        "/.well-known/est/simpleenroll",
        "application/pkcs10",
    ))
    .expect("send head");
    s.flush().expect("flush");
    let r = read_response(&mut s).expect("an answer without sending the body");
    assert_eq!(r.status, 413, "EST: {r:?}");
    // The limit itself is unchanged: a body at the limit is read and judged.
    let r = exchange_plain(
        srv.plain(),
        &request(
            "POST",
            "/ocsp",
            &[("Content-Type", "application/ocsp-request")],
            &vec![0u8; 262_144],
        ),
    );
    assert_eq!(r.status, 200, "malformedRequest, not 413: {r:?}");
}

/// Item 13: a client that shuts down its sending side right after its request gets the
/// answer, 20 times of 20, over plain HTTP and over TLS (with and without close_notify).
#[test]
fn half_closing_clients_get_their_answers() {
    let srv = start(&[]);
    // Keep-alive requests, as `nc -N` sends them: the server learns of the end of the
    // conversation only from the half-close.
    let req = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec();
    let mut plain_ok = 0;
    for _ in 0..20 {
        let mut s = connect(srv.plain());
        s.write_all(&req).expect("send");
        let _ = s.shutdown(Shutdown::Write);
        if read_response(&mut s).is_some_and(|r| r.status == 200) {
            plain_ok += 1;
        }
    }
    let mut tls_notify_ok = 0;
    let mut tls_bare_ok = 0;
    for i in 0..20 {
        let mut s = tls_connect(&srv);
        s.write_all(&req).expect("send");
        if i % 2 == 0 {
            s.conn.send_close_notify();
        }
        s.flush().expect("flush");
        while s.conn.wants_write() {
            s.conn.write_tls(&mut s.sock).expect("write");
        }
        let _ = s.sock.shutdown(Shutdown::Write);
        let ok = read_response(&mut s).is_some_and(|r| r.status == 200);
        match (ok, i % 2 == 0) {
            (true, true) => tls_notify_ok += 1,
            (true, false) => tls_bare_ok += 1,
            _ => {}
        }
    }
    assert_eq!(
        (plain_ok, tls_notify_ok, tls_bare_ok),
        (20, 10, 10),
        "answers to half-closed requests: plain, TLS with close_notify, TLS without"
    );
}

/// libest's view of a header name: it finds `Content-Type`, `Content-Length` and
/// `WWW-Authenticate` with `strcmp` (est_client_http.c), and parses at most 16 headers.
/// Every name must also be in title case (hyper's `title_case_headers`), so that no
/// other case-sensitive client meets a lowercase name.
fn assert_libest_reads(what: &str, r: &Raw) {
    assert!(
        r.status_line.starts_with("HTTP/1.1 "),
        "{what}: {}",
        r.status_line
    );
    let title = |n: &str| -> String {
        n.split('-')
            .map(|p| {
                let mut c = p.chars();
                match c.next() {
                    Some(f) => {
                        f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase()
                    }
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join("-")
    };
    for (n, _) in &r.headers {
        let want = if n.eq_ignore_ascii_case("www-authenticate") {
            "WWW-Authenticate".to_string()
        } else {
            title(n)
        };
        assert_eq!(
            n, &want,
            "{what}: header name {n:?} (all headers: {:?})",
            r.headers
        );
    }
    let has = |name: &str| r.headers.iter().any(|(n, _)| n == name);
    assert!(
        has("Content-Length"),
        "{what}: no Content-Length: {:?}",
        r.headers
    );
    if !r.body.is_empty() {
        assert!(
            has("Content-Type"),
            "{what}: no Content-Type: {:?}",
            r.headers
        );
    }
    if r.status == 401 {
        assert!(
            has("WWW-Authenticate"),
            "{what}: 401 without WWW-Authenticate: {:?}",
            r.headers
        );
    }
    if r.status == 202 {
        assert!(
            has("Retry-After"),
            "{what}: 202 without Retry-After: {:?}",
            r.headers
        );
    }
    assert!(
        r.headers.len() <= 16,
        "{what}: libest reads 16 headers: {:?}",
        r.headers
    );
}

/// An OCSP request (RFC 6960 §4.1.1) for `serial` under `issuer_der`, SHA-1 CertID.
fn ocsp_request(issuer_der: &[u8], serial: &[u8]) -> Vec<u8> {
    use sha1::Digest;
    let issuer = x509_cert::Certificate::from_der(issuer_der).expect("issuer");
    let tbs = issuer.tbs_certificate();
    let name_hash = sha1::Sha1::digest(tbs.subject().to_der().expect("der")).to_vec();
    let key_hash =
        sha1::Sha1::digest(tbs.subject_public_key_info().subject_public_key.raw_bytes()).to_vec();
    ca_core::ocsp::OcspRequest {
        tbs_request: ca_core::ocsp::TbsRequest {
            version: 0,
            requestor_name: None,
            request_list: vec![ca_core::ocsp::Request {
                req_cert: ca_core::ocsp::CertId {
                    hash_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
                        oid: ca_core::asn1::oid::SHA1,
                        parameters: Some(der::asn1::Null.into()),
                    },
                    issuer_name_hash: der::asn1::OctetString::new(name_hash).expect("os"),
                    issuer_key_hash: der::asn1::OctetString::new(key_hash).expect("os"),
                    serial_number: ca_core::asn1::serial_number(&ca_core::asn1::minimal_positive(
                        serial,
                    ))
                    .expect("serial"),
                },
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    }
    .to_der()
    .expect("request der")
}

/// A SCEP PKCSReq for `CN=<cn>` with `challenge`, from a fresh RSA requester.
fn scep_request(srv: &Server, cn: &str, challenge: &str) -> Vec<u8> {
    let key = hsm::soft::SoftKey::generate_ephemeral("requester", hsm::KeyAlgorithm::Rsa2048)
        .expect("key");
    let cert = scep::client::self_signed(&key, &format!("CN={cn}")).expect("self-signed");
    let csr = scep::client::csr(&key, &format!("CN={cn}"), Some(challenge)).expect("csr");
    let tid = scep::client::transaction_id_for(&key);
    scep::client::build_request(
        scep::codec::MessageType::PkcsReq,
        &tid,
        &csr,
        scep::client::Identity {
            key: &key,
            cert_der: &cert,
        },
        &srv.pem_der("ca/issuing-ra.crt"),
        scep::codec::ContentCipher::Aes128,
    )
    .expect("request")
    .der
}

/// Item 16: every EST, SCEP, OCSP and publishing answer, and every refusal, read the way
/// libest reads it: exact `Content-Type`, `Content-Length`, `WWW-Authenticate`,
/// `Retry-After`, and every other name (also those axum and hyper add) in title case.
#[test]
fn http1_header_names_are_cased_as_libest_compares_them() {
    use base64::Engine;
    let srv = start(&[]);
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let issuing = srv.pem_der("ca/issuing.crt");
    let ocsp_good = ocsp_request(&issuing, &[0x42; 16]);
    let scep_good = scep_request(&srv, "dev-ok", "s3cret");
    let scep_wrong = scep_request(&srv, "dev-bad", "wrong");
    let token = std::fs::read_to_string(srv.ca.data.join("admin-token")).expect("token");
    let bearer = format!("Bearer {}", token.trim());
    let plain: Vec<(&str, Vec<u8>, u16)> = vec![
        ("healthz", request("GET", "/healthz", &[], b""), 200),
        (
            "CA certificate",
            request("GET", "/ca/issuing.crt", &[], b""),
            200,
        ),
        ("CA chain", request("GET", "/ca/issuing.pem", &[], b""), 200),
        ("CRL", request("GET", "/crl/issuing.crl", &[], b""), 200),
        ("no such CA", request("GET", "/ca/nope.crt", &[], b""), 404),
        (
            "no such route",
            request("GET", "/nothing-here", &[], b""),
            404,
        ),
        (
            "OCSP POST",
            request(
                "POST",
                "/ocsp",
                &[("Content-Type", "application/ocsp-request")],
                &ocsp_good,
            ),
            200,
        ),
        (
            "OCSP GET",
            request("GET", &format!("/ocsp/{}", b64(&ocsp_good)), &[], b""),
            200,
        ),
        (
            "OCSP malformed",
            request(
                "POST",
                "/ocsp",
                &[("Content-Type", "application/ocsp-request")],
                b"junk",
            ),
            200,
        ),
        (
            "OCSP bad base64",
            request("GET", "/ocsp/!!!", &[], b""),
            200,
        ),
        (
            "SCEP GetCACaps",
            request("GET", "/scep/devices?operation=GetCACaps", &[], b""),
            200,
        ),
        (
            "SCEP GetCACert",
            request("GET", "/scep/devices?operation=GetCACert", &[], b""),
            200,
        ),
        (
            "SCEP default endpoint",
            request(
                "GET",
                "/cgi-bin/pkiclient.exe?operation=GetCACaps",
                &[],
                b"",
            ),
            200,
        ),
        (
            "SCEP no such endpoint",
            request("GET", "/scep/nope?operation=GetCACaps", &[], b""),
            404,
        ),
        (
            "SCEP no operation",
            request("GET", "/scep/devices", &[], b""),
            400,
        ),
        (
            "SCEP PKIOperation",
            request(
                "POST",
                "/scep/devices?operation=PKIOperation",
                &[("Content-Type", "application/x-pki-message")],
                &scep_good,
            ),
            200,
        ),
        (
            "SCEP PKIOperation refused (wrong challenge)",
            request(
                "POST",
                "/scep/devices?operation=PKIOperation",
                &[("Content-Type", "application/x-pki-message")],
                &scep_wrong,
            ),
            200,
        ),
        (
            "SCEP PKIOperation malformed",
            request(
                "POST",
                "/scep/devices?operation=PKIOperation",
                &[("Content-Type", "application/x-pki-message")],
                b"junk",
            ),
            400,
        ),
        (
            "admin without token",
            request("GET", "/admin/v1/profiles", &[], b""),
            401,
        ),
        (
            "admin with a wrong token",
            request(
                "GET",
                "/admin/v1/profiles",
                &[("Authorization", "Bearer wrong-wrong-wrong")],
                b"",
            ),
            401,
        ),
        (
            "admin JSON",
            request(
                "GET",
                "/admin/v1/profiles",
                &[("Authorization", &bearer)],
                b"",
            ),
            200,
        ),
        (
            "admin JSON error",
            request(
                "POST",
                "/admin/v1/certificates",
                &[
                    ("Authorization", &bearer),
                    ("Content-Type", "application/json"),
                ],
                b"{",
            ),
            400,
        ),
        (
            "declared oversize",
            b"POST /ocsp HTTP/1.1\r\nHost: localhost\r\nContent-Length: 999999999\r\n\r\n".to_vec(),
            413,
        ),
    ];
    for (what, req, status) in &plain {
        let r = exchange_plain(srv.plain(), req);
        assert_eq!(r.status, *status, "{what}: {r:?}");
        assert_libest_reads(what, &r);
    }

    let csr = privca_server::bench_est::make_csr("est-device", None).expect("csr");
    let csr_b64 = b64(&csr);
    let alice = format!("Basic {}", b64(format!("alice:{PASSWORD}").as_bytes()));
    let wrong = format!("Basic {}", b64(b"alice:not the password"));
    let pkcs10 = ("Content-Type", "application/pkcs10");
    let est: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "EST cacerts",
            request("GET", "/.well-known/est/cacerts", &[], b""),
            200,
        ),
        (
            "EST csrattrs",
            request("GET", "/.well-known/est/csrattrs", &[], b""),
            0,
        ),
        (
            "EST simpleenroll without credentials",
            request(
                "POST",
                "/.well-known/est/simpleenroll",
                &[pkcs10],
                csr_b64.as_bytes(),
            ),
            401,
        ),
        (
            "EST simpleenroll with a wrong password",
            request(
                "POST",
                "/.well-known/est/simpleenroll",
                &[pkcs10, ("Authorization", &wrong)],
                csr_b64.as_bytes(),
            ),
            401,
        ),
        (
            "EST simpleenroll",
            request(
                "POST",
                "/.well-known/est/simpleenroll",
                &[pkcs10, ("Authorization", &alice)],
                csr_b64.as_bytes(),
            ),
            200,
        ),
        (
            "EST simpleenroll held for approval",
            request(
                "POST",
                "/.well-known/est/held/simpleenroll",
                &[pkcs10, ("Authorization", &alice)],
                csr_b64.as_bytes(),
            ),
            202,
        ),
        (
            "EST simpleenroll with a bad CSR",
            request(
                "POST",
                "/.well-known/est/simpleenroll",
                &[pkcs10, ("Authorization", &alice)],
                b"bm90IGEgQ1NS",
            ),
            400,
        ),
        (
            "EST wrong method",
            request("GET", "/.well-known/est/simpleenroll", &[], b""),
            405,
        ),
        (
            "EST no such endpoint",
            request("GET", "/.well-known/est/nope/cacerts", &[], b""),
            404,
        ),
        (
            "EST no such operation",
            request("GET", "/.well-known/est/nope", &[], b""),
            404,
        ),
        (
            "healthz over TLS",
            request("GET", "/healthz", &[], b""),
            200,
        ),
    ];
    for (what, req, status) in &est {
        let r = exchange_tls(&srv, req);
        if *status != 0 {
            assert_eq!(r.status, *status, "{what}: {r:?}");
        }
        assert_libest_reads(what, &r);
    }
}

/// A ClientHello whose SNI is the IP address 127.0.0.1 (RFC 6066 §3 allows only host
/// names; OpenSSL-based clients send it when told to): rustls builds the hello for a
/// same-length host name, which is then replaced on the wire.
fn hello_with_ip_sni(srv: &Server) -> Vec<u8> {
    let mut conn = rustls::ClientConnection::new(
        srv.tls_config(),
        rustls_pki_types::ServerName::try_from("aaaaaaaaa").expect("name"),
    )
    .expect("client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("hello");
    }
    let at = out
        .windows(9)
        .position(|w| w == b"aaaaaaaaa")
        .expect("SNI in the hello");
    out[at..at + 9].copy_from_slice(b"127.0.0.1");
    out
}

/// Item 23: the log of served requests, written to a file, has no colour codes, no Rust
/// debug formatting (`Some(…)`) and no doubled prefixes (`bad request: bad request:`),
/// and an IP-address SNI is not logged once per connection.
#[test]
fn the_log_file_is_plain_text() {
    let srv = start(&[]);
    // Refusals that reach the log: a SCEP request whose content is not a CSR, a
    // malformed SCEP message, a wrong EST password, a wrong admin token.
    let key = hsm::soft::SoftKey::generate_ephemeral("requester", hsm::KeyAlgorithm::Rsa2048)
        .expect("key");
    let cert = scep::client::self_signed(&key, "CN=junk").expect("self-signed");
    let not_a_csr = scep::client::build_request(
        scep::codec::MessageType::PkcsReq,
        &scep::client::transaction_id_for(&key),
        b"this is not a CSR",
        scep::client::Identity {
            key: &key,
            cert_der: &cert,
        },
        &srv.pem_der("ca/issuing-ra.crt"),
        scep::codec::ContentCipher::Aes128,
    )
    .expect("request")
    .der;
    let scep_ct = ("Content-Type", "application/x-pki-message");
    for body in [not_a_csr.as_slice(), b"junk"] {
        exchange_plain(
            srv.plain(),
            &request(
                "POST",
                "/scep/devices?operation=PKIOperation",
                &[scep_ct],
                body,
            ),
        );
    }
    let csr = privca_server::bench_est::make_csr("est-device", None).expect("csr");
    use base64::Engine;
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(b"alice:not the password")
    );
    let r = exchange_tls(
        &srv,
        &request(
            "POST",
            "/.well-known/est/simpleenroll",
            &[
                ("Content-Type", "application/pkcs10"),
                ("Authorization", &wrong),
            ],
            base64::engine::general_purpose::STANDARD
                .encode(&csr)
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 401);
    exchange_plain(
        srv.plain(),
        &request(
            "GET",
            "/admin/v1/profiles",
            &[("Authorization", "Bearer wrong-token-123456")],
            b"",
        ),
    );
    // Five handshakes with an IP address as SNI.
    for _ in 0..5 {
        let mut s = connect(srv.tls());
        s.write_all(&hello_with_ip_sni(&srv)).expect("hello");
        let mut b = [0u8; 4096];
        let _ = s.read(&mut b);
    }
    // A served request after them, so the log has everything before it.
    assert_eq!(
        exchange_plain(srv.plain(), &request("GET", "/healthz", &[], b"")).status,
        200
    );
    let log = srv.ca.server_log();
    assert!(log.contains("refused"), "the refusals are logged:\n{log}");
    assert!(
        !log.contains("\u{1b}["),
        "colour codes in a log file:\n{log}"
    );
    for line in log.lines() {
        assert!(
            !line.contains("Some("),
            "debug formatting in the log: {line}"
        );
        for prefix in ["bad request:", "unauthorized:", "refused:"] {
            assert!(
                line.matches(prefix).count() <= 1,
                "{prefix:?} twice in one message: {line}"
            );
        }
    }
    let sni = log.matches("IP address presented as hostname").count();
    assert!(
        sni <= 1,
        "the IP-address SNI warning was logged {sni} times:\n{log}"
    );
}
