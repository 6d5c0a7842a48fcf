//! `[acme]`: the ACME endpoints (RFC 8555), owned by this crate (docs/architecture.md,
//! decision 9: unknown fields are errors).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// `[acme]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The external base URL of the HTTPS listener as clients reach it
    /// (`https://ca.corp.example:8443`), without a trailing slash. Every resource URL and
    /// the JWS `url` check (RFC 8555 §6.4) are computed from it, never from the Host
    /// header. Default: `https://` and the HTTPS listener's bound address.
    #[serde(default)]
    pub external_url: Option<String>,
    /// Refuse about one good nonce in this many with `badNonce` (0, the default: never).
    /// A test setting, so that clients' retries are exercised (RFC 8555 §6.5).
    #[serde(default)]
    pub reject_nonce_every: u32,
    /// `[acme.endpoints.<name>]`, served at `/acme/<name>/directory`.
    #[serde(default)]
    pub endpoints: BTreeMap<String, AcmeEndpointConfig>,
}

/// One ACME endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeEndpointConfig {
    /// The profile orders issue under when they name none.
    pub profile: String,
    /// Further profiles an order may name (`profile` in newOrder,
    /// draft-ietf-acme-profiles); the directory lists them all in `meta.profiles`.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Require an External Account Binding on newAccount (RFC 8555 §7.3.4). Default true:
    /// a private CA hands out ACME access with EAB keys (`privca acme eab create`).
    #[serde(default = "yes")]
    pub eab_required: bool,
    /// The terms-of-service URL (`meta.termsOfService`); when set, newAccount must agree.
    #[serde(default)]
    pub terms_of_service: Option<String>,
    /// Lifetime of orders and authorizations, in seconds (default one day).
    #[serde(default = "default_order_lifetime")]
    pub order_lifetime_seconds: i64,
    /// The port http-01 validation connects to (RFC 8555 §8.3 says 80, the default).
    /// Another port is a test or lab setting (a client's standalone listener on loopback).
    #[serde(default = "default_http01_port")]
    pub http01_port: u16,
    /// The port tls-alpn-01 validation connects to (RFC 8737 §3 says 443, the default).
    /// Another port is a test or lab setting, as `http01_port`.
    #[serde(default = "default_tls_alpn01_port")]
    pub tls_alpn01_port: u16,
    /// The DNS server dns-01 validation asks (RFC 8555 §8.4), `"127.0.0.1:5353"` style.
    /// Default: the first `nameserver` of /etc/resolv.conf, port 53. A server of one's
    /// own (an internal recursive resolver, or in tests and labs the authoritative server
    /// of the zone) is named here.
    #[serde(default)]
    pub dns_resolver: Option<SocketAddr>,
    /// Static name resolution for validation: `{ "host.test" = "127.0.0.1" }`. Names not
    /// listed are resolved by the system. A test or lab setting.
    #[serde(default)]
    pub resolve: BTreeMap<String, IpAddr>,
    /// Time allowed for one validation request, in seconds (default 10).
    #[serde(default = "default_validation_timeout")]
    pub validation_timeout_seconds: u64,
}

fn yes() -> bool {
    true
}

fn default_order_lifetime() -> i64 {
    24 * 3600
}

fn default_http01_port() -> u16 {
    80
}

fn default_tls_alpn01_port() -> u16 {
    443
}

fn default_validation_timeout() -> u64 {
    10
}

/// The most endpoints, and the longest endpoint name (it is a URL path segment).
const MAX_NAME: usize = 64;

impl AcmeConfig {
    /// Checks what serde cannot: endpoint names are URL-safe, the external URL is an
    /// `https://` origin, lifetimes and timeouts are positive.
    pub fn validate(&self) -> Result<()> {
        if let Some(url) = &self.external_url
            && (!url.starts_with("https://") || url.ends_with('/') || url.len() <= 8)
        {
            return Err(Error::malformed(format!(
                "[acme] external_url {url:?} must be https://host[:port] without a trailing slash"
            )));
        }
        for (name, ep) in &self.endpoints {
            if name.is_empty()
                || name.len() > MAX_NAME
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(Error::malformed(format!(
                    "[acme.endpoints.{name}]: the name must be 1 to {MAX_NAME} letters, digits, '-' or '_'"
                )));
            }
            if ep.order_lifetime_seconds <= 0 || ep.validation_timeout_seconds == 0 {
                return Err(Error::malformed(format!(
                    "[acme.endpoints.{name}]: order_lifetime_seconds and validation_timeout_seconds must be positive"
                )));
            }
        }
        Ok(())
    }
}
