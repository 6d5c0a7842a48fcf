//! `[est]` and `[est.endpoints.<label>]`: which EST endpoints exist, the profile each
//! issues under, and how each authenticates its clients (RFC 7030 §3.2.3, §3.3).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[est]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstConfig {
    /// The endpoint that also answers the unlabelled path `/.well-known/est/<op>`
    /// (RFC 7030 §3.2.2). Default: an endpoint named `default`, if there is one.
    #[serde(default)]
    pub default_endpoint: Option<String>,
    /// `[est.endpoints.<label>]`: served at `/.well-known/est/<label>/<op>`.
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointConfig>,
    /// `[est.password_limits]`: how many wrong HTTP Basic passwords are tolerated.
    #[serde(default)]
    pub password_limits: PasswordLimits,
    /// `[est.password_cache]`: how successful HTTP Basic password checks are remembered.
    #[serde(default)]
    pub password_cache: PasswordCacheConfig,
}

/// `[est.password_cache]`: successful HTTP Basic password checks remembered so that a
/// client does not pay a full PBKDF2 on every request ([`crate::password_cache`]).
/// Failed checks are never remembered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordCacheConfig {
    /// Most (endpoint, user name) pairs remembered at once (0 turns the cache off);
    /// when full, expired entries go first, then the least recently used one.
    #[serde(default = "default_cache_entries")]
    pub max_entries: usize,
    /// Seconds a successful check is remembered; after that the next request runs the
    /// full PBKDF2 again.
    #[serde(default = "default_cache_ttl")]
    pub ttl_seconds: u64,
}

impl Default for PasswordCacheConfig {
    fn default() -> Self {
        PasswordCacheConfig {
            max_entries: default_cache_entries(),
            ttl_seconds: default_cache_ttl(),
        }
    }
}

fn default_cache_entries() -> usize {
    1_000
}
fn default_cache_ttl() -> u64 {
    300
}

/// `[est.password_limits]`: limits on failed HTTP Basic password checks, per client
/// address and per account, over all endpoints. Once a client address or an account is
/// limited, its password checks are refused with 429 and `Retry-After` without running
/// PBKDF2, until `window_seconds` after the failure that reached the limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordLimits {
    /// Wrong passwords from one client address (an IPv4 address, an IPv6 /64) within
    /// the window before that address is limited.
    #[serde(default = "default_address_failures")]
    pub address_failures: u32,
    /// Wrong passwords for one account of one endpoint (from any address) within the
    /// window before the account is limited. Addresses that logged in to the account
    /// successfully before keep their access to it, so that an attacker cannot lock out
    /// its known clients.
    #[serde(default = "default_account_failures")]
    pub account_failures: u32,
    /// The window, seconds: failures older than this are forgotten, and a limit lasts
    /// this long after the failure that reached it.
    #[serde(default = "default_window")]
    pub window_seconds: u64,
    /// Most addresses and accounts tracked at once; when full, expired entries go first,
    /// then the least recently used one.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
}

impl Default for PasswordLimits {
    fn default() -> Self {
        PasswordLimits {
            address_failures: default_address_failures(),
            account_failures: default_account_failures(),
            window_seconds: default_window(),
            max_entries: default_max_entries(),
        }
    }
}

fn default_address_failures() -> u32 {
    10
}
fn default_account_failures() -> u32 {
    30
}
fn default_window() -> u64 {
    300
}
fn default_max_entries() -> usize {
    10_000
}

/// How an endpoint authenticates enrollments (RFC 7030 §3.2.3, §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// A TLS client certificate that chains to one of the endpoint's trust anchors.
    ClientCert,
    /// HTTP Basic with one of the endpoint's accounts.
    Basic,
    /// Both a client certificate and HTTP Basic.
    Both,
    /// Either of the two.
    Either,
}

/// Channel binding (RFC 7030 §3.5 with the RFC 9266 tls-exporter value instead of
/// tls-unique, which rustls cannot provide; see docs/est.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelBinding {
    /// challengePassword is not looked at.
    Off,
    /// When a CSR carries a challengePassword it must be the connection's tls-exporter
    /// value (base64); a CSR without one is accepted.
    #[default]
    Optional,
    /// Every CSR must carry the connection's tls-exporter value.
    Required,
}

/// One HTTP Basic account. Only a password hash is ever configured
/// (`privca est hash-password` makes one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// User name.
    pub username: String,
    /// PHC string `$pbkdf2-sha256$i=<iterations>$<salt>$<hash>` (base64 without padding).
    pub password_hash: String,
}

/// `[est.endpoints.<label>]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Profile certificates are issued under; its issuer is the CA `cacerts` returns.
    pub profile: String,
    /// How enrollments authenticate.
    pub auth: AuthMode,
    /// Accounts for HTTP Basic.
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// Accept client certificates issued by privca's own CAs (valid, not revoked). Default
    /// true; re-enrollment always needs one.
    #[serde(default = "default_true")]
    pub trust_privca: bool,
    /// Further trust anchors for client certificates (PEM files with one or more CA
    /// certificates), for example a manufacturer CA whose IDevIDs enroll the first time.
    #[serde(default)]
    pub client_ca_files: Vec<PathBuf>,
    /// Hold enrollments for an administrator (`privca requests approve`): the client gets
    /// 202 with Retry-After and gets its certificate when it retries with the same CSR.
    #[serde(default)]
    pub require_approval: bool,
    /// Retry-After seconds for held enrollments.
    #[serde(default = "default_retry")]
    pub retry_after_seconds: u32,
    /// Offer `serverkeygen` (RFC 7030 §4.4).
    #[serde(default = "default_true")]
    pub server_keygen: bool,
    /// Channel binding policy.
    #[serde(default)]
    pub channel_binding: ChannelBinding,
    /// Registration authorities (RFC 7030 §2.2, §3.7): accept as an RA a client
    /// certificate with the id-kp-cmcRA extended key usage (RFC 6402 §2.10) that passes
    /// this endpoint's client-certificate checks (`trust_privca`, `client_ca_files`). An
    /// RA may enroll and re-enroll on behalf of others: its CSRs' subjects need not match
    /// its own certificate. Default false.
    #[serde(default)]
    pub ra_eku: bool,
    /// Registration authorities by certificate: PEM files whose certificates are
    /// accepted as RAs when presented (byte-equal) as TLS client certificate, within
    /// their validity and, when privca issued them, not revoked.
    #[serde(default)]
    pub ra_certificates: Vec<PathBuf>,
}

impl EndpointConfig {
    /// Whether registration authorities are configured for this endpoint.
    pub fn has_ra(&self) -> bool {
        self.ra_eku || !self.ra_certificates.is_empty()
    }
}

fn default_true() -> bool {
    true
}
fn default_retry() -> u32 {
    60
}

/// Whether `label` may name an endpoint: it becomes a URL path segment (RFC 7030 §3.2.2).
pub fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 64
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !crate::operation::OPERATIONS.contains(&label)
}

impl EndpointConfig {
    /// The enrollment policy of the endpoint with this label (ca-core applies it): its
    /// profile, approval (every request is held, re-enrollments too), renewals
    /// (simplereenroll, RFC 7030 §4.2.2).
    pub fn policy(&self, label: &str) -> ca_core::EnrollmentPolicy {
        let mut p = ca_core::EnrollmentPolicy::new(
            ca_core::enroll::Channel::Est(label.to_string()),
            &self.profile,
        );
        p.renewals = true;
        p.require_approval = self.require_approval;
        p.hold_renewals = true;
        p
    }
}

impl EstConfig {
    /// Checks labels, accounts and auth modes (profiles are checked when the service is
    /// built against the authority).
    pub fn validate(&self) -> crate::Result<()> {
        let err = |m: String| crate::Error::Config(m);
        for (label, ep) in &self.endpoints {
            if !valid_label(label) {
                return Err(err(format!(
                    "endpoint label {label:?}: letters, digits, '-', '_', '.' only, not an operation name"
                )));
            }
            let needs_basic =
                matches!(ep.auth, AuthMode::Basic | AuthMode::Both | AuthMode::Either);
            if needs_basic && ep.accounts.is_empty() && ep.auth != AuthMode::Either {
                return Err(err(format!(
                    "endpoint {label}: auth {:?} needs at least one account",
                    ep.auth
                )));
            }
            let needs_cert = matches!(
                ep.auth,
                AuthMode::ClientCert | AuthMode::Both | AuthMode::Either
            );
            if needs_cert && !ep.trust_privca && ep.client_ca_files.is_empty() {
                return Err(err(format!(
                    "endpoint {label}: client-certificate auth needs trust_privca or client_ca_files"
                )));
            }
            for a in &ep.accounts {
                if a.username.is_empty() || a.username.contains(':') {
                    return Err(err(format!(
                        "endpoint {label}: user name {:?} must be non-empty without ':'",
                        a.username
                    )));
                }
                crate::password::PasswordHash::parse(&a.password_hash)
                    .map_err(|e| err(format!("endpoint {label}: account {}: {e}", a.username)))?;
            }
        }
        if let Some(d) = &self.default_endpoint
            && !self.endpoints.contains_key(d)
        {
            return Err(err(format!("default_endpoint {d:?} is not an endpoint")));
        }
        let l = &self.password_limits;
        if l.address_failures == 0 || l.account_failures == 0 {
            return Err(err(
                "password_limits: address_failures and account_failures must be at least 1".into(),
            ));
        }
        if !(1..=86_400).contains(&l.window_seconds) {
            return Err(err(
                "password_limits: window_seconds must be between 1 and 86400".into(),
            ));
        }
        if !(16..=1_000_000).contains(&l.max_entries) {
            return Err(err(
                "password_limits: max_entries must be between 16 and 1000000".into(),
            ));
        }
        let c = &self.password_cache;
        if c.max_entries > 1_000_000 {
            return Err(err(
                "password_cache: max_entries must be between 0 (off) and 1000000".into(),
            ));
        }
        if !(1..=86_400).contains(&c.ttl_seconds) {
            return Err(err(
                "password_cache: ttl_seconds must be between 1 and 86400".into(),
            ));
        }
        Ok(())
    }

    /// The label serving the unlabelled path.
    pub fn default_label(&self) -> Option<&str> {
        match &self.default_endpoint {
            Some(d) => Some(d.as_str()),
            None => self.endpoints.contains_key("default").then_some("default"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_cache_settings_are_checked() {
        let with = |max_entries, ttl_seconds| EstConfig {
            password_cache: PasswordCacheConfig {
                max_entries,
                ttl_seconds,
            },
            ..EstConfig::default()
        };
        assert!(with(1_000, 300).validate().is_ok());
        assert!(with(0, 300).validate().is_ok(), "0 turns the cache off");
        assert!(with(1_000_001, 300).validate().is_err());
        assert!(with(1_000, 0).validate().is_err());
        assert!(with(1_000, 86_401).validate().is_err());
    }
}
