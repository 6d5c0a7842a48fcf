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
        && !crate::service::OPERATIONS.contains(&label)
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
