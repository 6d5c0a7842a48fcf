//! Outbound HTTP shared by the challenge methods that call other services (webhook,
//! Intune): URL rules, one client setup, bounded response bodies, request ids.

use std::time::Duration;

use reqwest::Url;

use crate::Error;
use crate::error::Result;

/// Largest response body read from a webhook or a Microsoft service. Real answers are a
/// few hundred bytes (a token response is under 4 KiB, the Graph endpoint list under 16).
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Parses a configured URL. HTTPS is required, except plain HTTP to a loopback address
/// (for local webhooks and tests), because these URLs receive secrets and challenges.
pub fn check_url(field: &str, text: &str) -> Result<Url> {
    let url = Url::parse(text).map_err(|e| Error::Config(format!("{field}: {text:?}: {e}")))?;
    check_parsed(field, &url)?;
    Ok(url)
}

/// The same rule for a URL learnt at run time (Intune service discovery).
pub fn check_parsed(field: &str, url: &Url) -> Result<()> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err(Error::Config(format!(
            "{field}: {url} must be an https:// URL (plain http only to a loopback address)"
        ))),
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

/// An HTTP client with a per-request timeout that never follows redirects (a redirect
/// would carry a bearer token or a challenge to a host nobody configured).
pub fn client(timeout: Duration, user_agent: &str) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
        .map_err(|e| {
            // reqwest's Display says only "builder error"; the cause is in the chain
            // (for example no trusted root certificates on the system).
            let mut text = format!("HTTP client: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            Error::Config(text)
        })
}

/// Reads a response body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> std::result::Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("response body is larger than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the response: {}", describe(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(format!("response body is larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A description of a transport error with its causes (for example "invalid peer
/// certificate: UnknownIssuer"); never includes request bodies or headers.
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_redirect() {
        "redirect refused".to_string()
    } else {
        // reqwest's Display names the kind of failure and the URL, never the body.
        e.to_string()
    };
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}

/// A fresh random GUID (RFC 9562 version 4) for `client-request-id` headers.
pub(crate) fn request_id() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// What notifications say about an issued certificate.
pub(crate) struct IssuedFacts {
    /// Serial as upper-case hex without leading zero octet.
    pub serial_hex: String,
    /// notAfter as `YYYY-MM-DDThh:mm:ss.sssZ` (UTC).
    pub not_after: String,
    /// The issuer's distinguished name (RFC 4514 string).
    pub issuer: String,
    /// SHA-1 of the certificate DER, upper-case hex (the Windows "thumbprint").
    pub thumbprint: String,
}

impl IssuedFacts {
    pub(crate) fn read(cert_der: &[u8]) -> std::result::Result<IssuedFacts, String> {
        use der::Decode;
        let cert = x509_cert::Certificate::from_der(cert_der)
            .map_err(|e| format!("issued certificate does not decode: {e}"))?;
        let tbs = cert.tbs_certificate();
        let secs = ca_core::asn1::unix_of(&tbs.validity().not_after);
        let when = time::OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|e| format!("notAfter out of range: {e}"))?;
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let not_after = when
            .format(&fmt)
            .map_err(|e| format!("formatting notAfter: {e}"))?;
        Ok(IssuedFacts {
            serial_hex: ca_core::asn1::serial_hex(tbs.serial_number().as_bytes()),
            not_after,
            issuer: tbs.issuer().to_string(),
            thumbprint: {
                use sha1::Digest;
                hex::encode_upper(sha1::Sha1::digest(cert_der))
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_unless_loopback() {
        assert!(check_url("u", "https://login.microsoftonline.com").is_ok());
        assert!(check_url("u", "http://127.0.0.1:8080/x").is_ok());
        assert!(check_url("u", "http://[::1]:8080/x").is_ok());
        assert!(check_url("u", "http://localhost/x").is_ok());
        assert!(check_url("u", "http://example.com/x").is_err());
        assert!(check_url("u", "ftp://127.0.0.1/x").is_err());
        assert!(check_url("u", "not a url").is_err());
    }

    #[test]
    fn request_ids_are_v4_guids() {
        let a = request_id();
        let b = request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }
}
