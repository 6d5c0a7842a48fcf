//! Wiring of `[acme]`: the http-01 validator (outbound sockets are this crate's,
//! docs/architecture.md) and the External Account Binding key operations shared by
//! `privca acme eab create|list` and `/admin/v1/acme/eab` (the scep_wiring pattern).

use std::io::Read;
use std::net::SocketAddr;

use acme::service::{Http01Check, MAX_HTTP01_BODY, Validator};
use base64::Engine;
use ca_core::Authority;
use ca_core::acme_records::{AuditEvent, EabKey};
use serde::{Deserialize, Serialize};

/// http-01 validation over plain HTTP (RFC 8555 §8.3) with reqwest: no proxy, no
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
