//! Wiring of `[acme]`: the challenge validators, http-01, dns-01 and tls-alpn-01
//! (outbound sockets are this crate's, docs/architecture.md) and the External Account Binding key operations shared by
//! `privca acme eab create|list` and `/admin/v1/acme/eab` (the scep_wiring pattern).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use acme::service::{Dns01Check, Http01Check, MAX_HTTP01_BODY, TlsAlpn01Check, Validator};
use base64::Engine;
use ca_core::Authority;
use ca_core::acme_records::{AuditEvent, EabKey};
use serde::{Deserialize, Serialize};

/// The challenge validator. http-01 goes over plain HTTP (RFC 8555 §8.3) with reqwest: no proxy, no
/// redirects (a redirect is refused, so a validation never leaves the configured port),
/// the endpoint's timeout, a body cap.
pub struct HttpValidator;

impl Validator for HttpValidator {
    fn http01(&self, check: &Http01Check) -> Result<(), String> {
        let host = match check.host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => check.host.clone(),
        };
        let url = format!(
            "http://{host}:{}/.well-known/acme-challenge/{}",
            check.port, check.token
        );
        let mut builder = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(check.timeout)
            .user_agent(concat!("privca-acme-validator/", env!("CARGO_PKG_VERSION")));
        if let Some(ip) = check.address {
            builder = builder.resolve(&check.host, SocketAddr::new(ip, check.port));
        }
        let client = builder
            .build()
            .map_err(|e| format!("connection: cannot build the HTTP client: {e}"))?;
        let resp = client
            .get(&url)
            .send()
            .map_err(|e| format!("connection: fetching {url}: {e}"))?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(format!(
                "{url} answered a redirect ({status}); redirects are not followed"
            ));
        }
        if status != reqwest::StatusCode::OK {
            return Err(format!("{url} answered {status}, not 200"));
        }
        let mut body = Vec::new();
        resp.take(MAX_HTTP01_BODY as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| format!("connection: reading {url}: {e}"))?;
        if body.len() > MAX_HTTP01_BODY {
            return Err(format!("{url} answered more than {MAX_HTTP01_BODY} bytes"));
        }
        let text = String::from_utf8_lossy(&body);
        if text.trim_end() == check.key_authorization {
            Ok(())
        } else {
            Err(format!(
                "{url} did not answer the key authorization (got {} bytes)",
                body.len()
            ))
        }
    }

    /// dns-01 (RFC 8555 §8.4): one TXT question over UDP to the endpoint's
    /// `dns_resolver` (or the first nameserver of /etc/resolv.conf), again over TCP when
    /// the answer is truncated (RFC 7766); the endpoint's timeout bounds it all.
    fn dns01(&self, check: &Dns01Check) -> Result<(), String> {
        let server = match check.resolver {
            Some(s) => s,
            None => system_resolver()?,
        };
        let deadline = Instant::now() + check.timeout;
        let id: u16 = rand::random();
        let query = acme::dns::txt_query(id, &check.name).map_err(|e| format!("dns: {e}"))?;
        let mut answer = dns_udp(server, id, &check.name, &query, deadline)?;
        if answer.truncated {
            answer = dns_tcp(server, id, &check.name, &query, deadline)?;
        }
        let expected = check.expected.as_bytes();
        if answer.records.iter().any(|r| r.as_slice() == expected) {
            Ok(())
        } else if answer.records.is_empty() {
            Err(format!(
                "dns: {} has no TXT record (asked {server})",
                check.name
            ))
        } else {
            Err(format!(
                "none of the {} TXT records of {} is the key authorization's digest",
                answer.records.len(),
                check.name
            ))
        }
    }

    /// tls-alpn-01 (RFC 8737 §3): TLS 1.2 or 1.3 to the identifier's port with ALPN
    /// `acme-tls/1` and the identifier as SNI. The peer's certificate is self-signed, so
    /// no chain is built; the handshake signature is still verified (the peer holds the
    /// certificate's key), and the certificate must then pass
    /// [`acme::tls_alpn::check_certificate`].
    fn tls_alpn01(&self, check: &TlsAlpn01Check) -> Result<(), String> {
        let deadline = Instant::now() + check.timeout;
        let addr = match check.address {
            Some(ip) => SocketAddr::new(ip, check.port),
            None => (check.sni.as_str(), check.port)
                .to_socket_addrs()
                .map_err(|e| format!("connection: resolving {}: {e}", check.sni))?
                .next()
                .ok_or_else(|| format!("connection: {} has no address", check.sni))?,
        };
        let provider = Arc::new(crate::tls::provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("connection: TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        cfg.alpn_protocols = vec![acme::tls_alpn::ACME_TLS_ALPN.to_vec()];
        let name = rustls_pki_types::ServerName::try_from(check.sni.clone())
            .map_err(|e| format!("{:?} is not a TLS server name: {e}", check.sni))?;
        let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name)
            .map_err(|e| format!("connection: TLS: {e}"))?;
        let mut tcp = TcpStream::connect_timeout(&addr, remaining(deadline)?)
            .map_err(|e| format!("connection: connecting to {addr}: {e}"))?;
        while conn.is_handshaking() {
            let left = remaining(deadline)?;
            tcp.set_read_timeout(Some(left))
                .and_then(|()| tcp.set_write_timeout(Some(left)))
                .map_err(|e| format!("connection: {e}"))?;
            conn.complete_io(&mut tcp)
                .map_err(|e| format!("connection: TLS handshake with {addr}: {e}"))?;
        }
        if conn.alpn_protocol() != Some(acme::tls_alpn::ACME_TLS_ALPN) {
            return Err(format!(
                "{addr} did not negotiate ALPN \"acme-tls/1\" (RFC 8737 §3)"
            ));
        }
        let cert = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| format!("{addr} presented no certificate"))?
            .as_ref()
            .to_vec();
        conn.send_close_notify();
        let _ = conn.complete_io(&mut tcp);
        acme::tls_alpn::check_certificate(&cert, &check.identifier, &check.digest)
    }
}

fn remaining(deadline: Instant) -> Result<std::time::Duration, String> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "connection: the validation timed out".to_string())
}

/// The system's DNS server: the first `nameserver` line of /etc/resolv.conf, port 53.
fn system_resolver() -> Result<SocketAddr, String> {
    let text = std::fs::read_to_string("/etc/resolv.conf")
        .map_err(|e| format!("dns: no dns_resolver configured and /etc/resolv.conf: {e}"))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|v| v.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
        .ok_or_else(|| {
            "dns: no dns_resolver configured and no nameserver in /etc/resolv.conf".into()
        })
}

/// One DNS exchange over UDP, the query sent again every second until an answer with
/// the query's id comes or the deadline passes.
fn dns_udp(
    server: SocketAddr,
    id: u16,
    name: &str,
    query: &[u8],
    deadline: Instant,
) -> Result<acme::dns::TxtAnswer, String> {
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local)
        .and_then(|s| s.connect(server).map(|()| s))
        .map_err(|e| format!("dns: UDP socket to {server}: {e}"))?;
    let mut buf = vec![0u8; usize::from(acme::dns::EDNS_UDP_SIZE) + 512];
    loop {
        sock.send(query)
            .map_err(|e| format!("dns: sending to {server}: {e}"))?;
        let resend = Instant::now() + std::time::Duration::from_secs(1);
        loop {
            let left =
                remaining(deadline).map_err(|_| format!("dns: {server} did not answer in time"))?;
            let wait = left.min(resend.saturating_duration_since(Instant::now()));
            if wait.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(wait))
                .map_err(|e| format!("dns: {e}"))?;
            match sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = &buf[..n];
                    // Another id: a late answer to an earlier send, or not ours.
                    if msg.len() >= 2 && u16::from_be_bytes([msg[0], msg[1]]) != id {
                        continue;
                    }
                    return acme::dns::parse_txt_answer(id, name, msg)
                        .map_err(|e| format!("dns: {server}: {e}"));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(format!("dns: receiving from {server}: {e}")),
            }
        }
    }
}

/// One DNS exchange over TCP (RFC 1035 §4.2.2: each message after its two-octet length).
fn dns_tcp(
    server: SocketAddr,
    id: u16,
    name: &str,
    query: &[u8],
    deadline: Instant,
) -> Result<acme::dns::TxtAnswer, String> {
    let io = |e: std::io::Error| format!("dns: TCP to {server}: {e}");
    let mut tcp = TcpStream::connect_timeout(&server, remaining(deadline)?).map_err(io)?;
    let left = remaining(deadline)?;
    tcp.set_read_timeout(Some(left)).map_err(io)?;
    tcp.set_write_timeout(Some(left)).map_err(io)?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    tcp.write_all(&framed).map_err(io)?;
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).map_err(io)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    tcp.read_exact(&mut msg).map_err(io)?;
    let answer =
        acme::dns::parse_txt_answer(id, name, &msg).map_err(|e| format!("dns: {server}: {e}"))?;
    if answer.truncated {
        return Err(format!("dns: {server} truncated its TCP answer"));
    }
    Ok(answer)
}

/// The subjectPublicKeyInfo of a certificate, DER. The handshake signature of a
/// tls-alpn-01 peer is checked against it directly: webpki refuses to parse a
/// certificate with a critical extension it does not know, and acmeIdentifier is one.
fn spki_of(
    cert: &rustls_pki_types::CertificateDer<'_>,
) -> Result<rustls_pki_types::SubjectPublicKeyInfoDer<'static>, rustls::Error> {
    use der::{Decode, Encode};
    let c = x509_cert::Certificate::from_der(cert.as_ref())
        .map_err(|e| rustls::Error::General(format!("the certificate does not parse: {e}")))?;
    let spki = c
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| rustls::Error::General(format!("the certificate's key: {e}")))?;
    Ok(spki.into())
}

/// Accepts the peer's certificate without a chain, for one tls-alpn-01 handshake only
/// (RFC 8737 §3: the certificate is self-signed, and is checked afterwards by
/// [`acme::tls_alpn::check_certificate`]); handshake signatures are verified against the
/// certificate's key with the provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let spki = spki_of(cert)?;
        let key = webpki::RawPublicKeyEntity::try_from(&spki)
            .map_err(|e| rustls::Error::General(format!("the certificate's key: {e}")))?;
        let algs = &self.0.signature_verification_algorithms;
        let candidates = algs
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, a)| *a)
            .ok_or(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ))?;
        for alg in candidates {
            if key.verify_signature(*alg, message, dss.signature()).is_ok() {
                return Ok(rustls::client::danger::HandshakeSignatureValid::assertion());
            }
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadSignature,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &spki_of(cert)?,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `POST /admin/v1/acme/eab`: a new EAB key for an endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EabCreateInput {
    /// The ACME endpoint (`[acme.endpoints.<name>]`).
    pub endpoint: String,
}

/// A new EAB key, shown once: the key id and the HMAC key, base64url without padding
/// (the form certbot's `--eab-hmac-key` and lego's `--hmac` take).
#[derive(Clone, Serialize, Deserialize)]
pub struct EabCreateOutput {
    /// The endpoint.
    pub endpoint: String,
    /// The key id (`--eab-kid`).
    pub kid: String,
    /// The HMAC key, base64url without padding (`--eab-hmac-key`).
    pub hmac_key: String,
}

impl std::fmt::Debug for EabCreateOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EabCreateOutput")
            .field("endpoint", &self.endpoint)
            .field("kid", &self.kid)
            .field("hmac_key", &"<redacted>")
            .finish()
    }
}

/// `GET /admin/v1/acme/eab`: an EAB key without its HMAC key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EabView {
    /// The key id.
    pub kid: String,
    /// The endpoint.
    pub endpoint: String,
    /// Who created it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// The account bound with it, if any.
    pub account: Option<String>,
    /// When it was bound (RFC 3339).
    pub used_at: Option<String>,
}

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Creates an EAB key (RFC 8555 §7.3.4): a random key id and a 256-bit HMAC key, stored
/// as given (it must stay recoverable to verify MACs) and audited without it.
pub fn create_eab(
    auth: &Authority,
    acme: &acme::AcmeConfig,
    input: &EabCreateInput,
    actor: &str,
) -> Result<EabCreateOutput, ca_core::Error> {
    if !acme.endpoints.contains_key(&input.endpoint) {
        return Err(ca_core::Error::NotFound(format!(
            "no ACME endpoint named {}",
            input.endpoint
        )));
    }
    let kid_bytes: [u8; 12] = rand::random();
    let hmac: [u8; 32] = rand::random();
    let kid = B64URL.encode(kid_bytes);
    let key = EabKey {
        kid: kid.clone(),
        hmac_key: hmac.to_vec(),
        endpoint: input.endpoint.clone(),
        created_by: actor.to_string(),
        created_at: auth.now(),
        account: None,
        used_at: None,
    };
    let audit = AuditEvent {
        time: auth.now(),
        action: "acme-eab-create".into(),
        actor: actor.into(),
        subject: kid.clone(),
        detail: format!("endpoint {}", input.endpoint),
    };
    auth.acme_records()?
        .put_eab_key(&key, &audit)
        .map_err(ca_core::Error::Store)?;
    Ok(EabCreateOutput {
        endpoint: input.endpoint.clone(),
        kid,
        hmac_key: B64URL.encode(hmac),
    })
}

/// Every EAB key, without HMAC keys.
pub fn list_eab(auth: &Authority) -> Result<Vec<EabView>, ca_core::Error> {
    let keys = auth
        .acme_records()?
        .list_eab_keys()
        .map_err(ca_core::Error::Store)?;
    Ok(keys
        .into_iter()
        .map(|k| EabView {
            kid: k.kid,
            endpoint: k.endpoint,
            created_by: k.created_by,
            created_at: crate::admin::rfc3339(k.created_at),
            account: k.account,
            used_at: k.used_at.map(crate::admin::rfc3339),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Duration;

    use super::*;

    /// A one-request HTTP server on loopback answering `response`; returns its port.
    fn serve_once(response: Vec<u8>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&response);
            }
        });
        port
    }

    fn check(port: u16, timeout: Duration) -> Http01Check {
        Http01Check {
            host: "www.acme.test".into(),
            address: Some("127.0.0.1".parse().expect("ip")),
            port,
            token: "tok".into(),
            key_authorization: "tok.thumb".into(),
            timeout,
        }
    }

    fn answer(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    /// A DNS server on loopback answering every UDP query with `udp(query)` and every
    /// TCP query with `tcp(query)`; returns its address.
    fn dns_server(udp: fn(&[u8]) -> Vec<u8>, tcp: fn(&[u8]) -> Vec<u8>) -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let addr = sock.local_addr().expect("addr");
        let l = TcpListener::bind(addr).expect("bind tcp on the same port");
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(&udp(&buf[..n]), from);
            }
        });
        std::thread::spawn(move || {
            while let Ok((mut s, _)) = l.accept() {
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if s.read_exact(&mut q).is_err() {
                    continue;
                }
                let a = tcp(&q);
                let mut framed = (a.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&a);
                let _ = s.write_all(&framed);
            }
        });
        addr
    }

    /// The answer to `query` (its id and question echoed) with `flags` and one TXT
    /// record per value.
    fn txt_answer(query: &[u8], flags: u16, values: &[&str]) -> Vec<u8> {
        // The question ends 4 bytes after the name's root label, before the OPT record.
        let mut end = 12;
        while query[end] != 0 {
            end += 1 + usize::from(query[end]);
        }
        end += 5;
        let mut m = query[..end].to_vec();
        m[2..4].copy_from_slice(&flags.to_be_bytes());
        m[6..8].copy_from_slice(&(values.len() as u16).to_be_bytes());
        m[10..12].copy_from_slice(&[0, 0]);
        for v in values {
            m.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60]);
            m.extend_from_slice(&((v.len() + 1) as u16).to_be_bytes());
            m.push(v.len() as u8);
            m.extend_from_slice(v.as_bytes());
        }
        m
    }

    fn dns_check(server: SocketAddr) -> Dns01Check {
        Dns01Check {
            name: "_acme-challenge.x.acme.test".into(),
            expected: "digest".into(),
            resolver: Some(server),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn dns01_finds_the_digest_among_txt_records_and_retries_truncated_answers_over_tcp() {
        let server = dns_server(
            |q| txt_answer(q, 0x8180, &["other", "digest"]),
            |q| txt_answer(q, 0x8180, &[]),
        );
        assert_eq!(HttpValidator.dns01(&dns_check(server)), Ok(()));
        let server = dns_server(
            |q| txt_answer(q, 0x8180, &["other"]),
            |q| txt_answer(q, 0x8180, &[]),
        );
        let e = HttpValidator.dns01(&dns_check(server)).expect_err("wrong");
        assert!(e.contains("none of the 1 TXT records"), "{e}");
        // Truncated over UDP: the TCP answer counts.
        let server = dns_server(
            |q| txt_answer(q, 0x8380, &[]),
            |q| txt_answer(q, 0x8180, &["digest"]),
        );
        assert_eq!(HttpValidator.dns01(&dns_check(server)), Ok(()));
        // NXDOMAIN and REFUSED are dns problems.
        let server = dns_server(
            |q| txt_answer(q, 0x8183, &[]),
            |q| txt_answer(q, 0x8183, &[]),
        );
        let e = HttpValidator.dns01(&dns_check(server)).expect_err("nx");
        assert!(e.starts_with("dns:") && e.contains("no TXT record"), "{e}");
        let server = dns_server(
            |q| txt_answer(q, 0x8185, &[]),
            |q| txt_answer(q, 0x8185, &[]),
        );
        let e = HttpValidator
            .dns01(&dns_check(server))
            .expect_err("refused");
        assert!(e.contains("REFUSED"), "{e}");
        // A server that never answers: the timeout ends the lookup.
        let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut c = dns_check(silent.local_addr().expect("addr"));
        c.timeout = Duration::from_millis(1500);
        let started = std::time::Instant::now();
        let e = HttpValidator.dns01(&c).expect_err("silence");
        assert!(started.elapsed() < Duration::from_secs(4), "{e}");
        assert!(e.contains("did not answer in time"), "{e}");
    }

    #[test]
    fn the_key_authorization_passes_with_trailing_whitespace() {
        let port = serve_once(answer("200 OK", "", b"tok.thumb\r\n"));
        assert_eq!(
            HttpValidator.http01(&check(port, Duration::from_secs(5))),
            Ok(())
        );
    }

    #[test]
    fn wrong_bodies_redirects_errors_big_bodies_and_silence_fail() {
        let t = Duration::from_secs(5);
        let port = serve_once(answer("200 OK", "", b"tok.other"));
        let e = HttpValidator
            .http01(&check(port, t))
            .expect_err("wrong body");
        assert!(e.contains("did not answer the key authorization"), "{e}");
        // A redirect, even to the same host, is not followed.
        let port = serve_once(answer(
            "302 Found",
            "Location: http://127.0.0.1:1/.well-known/acme-challenge/tok\r\n",
            b"",
        ));
        let e = HttpValidator.http01(&check(port, t)).expect_err("redirect");
        assert!(e.contains("redirect"), "{e}");
        let port = serve_once(answer("404 Not Found", "", b"tok.thumb"));
        assert!(HttpValidator.http01(&check(port, t)).is_err());
        let port = serve_once(answer("200 OK", "", &vec![b'a'; MAX_HTTP01_BODY + 10]));
        let e = HttpValidator.http01(&check(port, t)).expect_err("big");
        assert!(e.contains("more than"), "{e}");
        // A listener that never answers: the timeout ends the validation.
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let started = std::time::Instant::now();
        let e = HttpValidator
            .http01(&check(port, Duration::from_millis(500)))
            .expect_err("timeout");
        assert!(started.elapsed() < Duration::from_secs(5), "{e}");
        drop(l);
        // Nothing listening: a connection problem.
        let e = HttpValidator.http01(&check(port, t)).expect_err("refused");
        assert!(e.starts_with("connection"), "{e}");
    }
}
