//! The `challenge = "intune"` settings of a SCEP endpoint (docs/intune.md).

use hsm::{Secret, SecretSource};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::error::Result;

/// `challenge = "intune"` settings of a SCEP endpoint. Every URL can be changed so that
/// national clouds and test doubles work; the defaults are Microsoft's global cloud.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntuneConfig {
    /// Entra ID tenant: `contoso.onmicrosoft.com` or the tenant GUID.
    pub tenant: String,
    /// Application (client) id of the Entra app registration.
    pub client_id: String,
    /// The app registration's client secret (`{ file = … }` or `{ env = … }`).
    pub client_secret: SecretSource,
    /// Entra ID login endpoint.
    #[serde(default = "default_login_url")]
    pub login_url: String,
    /// Microsoft Graph base URL (service discovery); also the Graph token's resource.
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    /// Intune resource the Intune token is for; the scope is this plus `/.default`.
    #[serde(default = "default_intune_resource_url")]
    pub intune_resource_url: String,
    /// Application id of Intune in Graph.
    #[serde(default = "default_intune_app_id")]
    pub intune_app_id: String,
    /// Skip discovery and use this ScepRequestValidationFEService URL.
    #[serde(default)]
    pub validation_service_url: Option<String>,
    /// `api-version` header of the validation service.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// `callerInfo` and `UserAgent`: who is calling, shown to Intune.
    #[serde(default = "default_caller_info")]
    pub caller_info: String,
    /// Time limit for one HTTP call, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra attempts of validateRequest after a transport error, a 5xx or a 429 (it is
    /// idempotent); each attempt re-discovers the service.
    #[serde(default = "default_validate_retries")]
    pub validate_retries: u32,
    /// Optional `caConfiguration` sent in successNotification.
    #[serde(default)]
    pub ca_configuration: Option<String>,
    /// Optional `certificateAuthority` sent in successNotification.
    #[serde(default)]
    pub certificate_authority: Option<String>,
    /// `[…intune.revocation]`: revoke what Intune asks to revoke (a wiped or retired
    /// device), on a schedule. Off when absent.
    #[serde(default)]
    pub revocation: Option<IntuneRevocationConfig>,
}

/// Intune-driven revocation (docs/intune.md, "Revocation"): every `interval_seconds`,
/// privca downloads up to `max_requests` pending revocation requests from Intune's
/// PkiConnectorFEService, revokes the certificates they name that this endpoint enrolled,
/// and uploads one result per request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntuneRevocationConfig {
    /// Seconds between rounds (30 to 86400).
    #[serde(default = "default_revocation_interval")]
    pub interval_seconds: u64,
    /// Requests per download (1 to 500, Intune's limit).
    #[serde(default = "default_max_requests")]
    pub max_requests: u32,
    /// The CRLReason recorded (RFC 5280 §5.3.1 name); Intune asks when a device is
    /// wiped or retired.
    #[serde(default = "default_revocation_reason")]
    pub reason: String,
    /// Skip discovery and use this PkiConnectorFEService URL.
    #[serde(default)]
    pub service_url: Option<String>,
    /// `api-version` header of the revocation service.
    #[serde(default = "default_revocation_api_version")]
    pub api_version: String,
}

fn default_revocation_interval() -> u64 {
    300
}
fn default_max_requests() -> u32 {
    100
}
fn default_revocation_reason() -> String {
    "cessationOfOperation".into()
}
fn default_revocation_api_version() -> String {
    "5019-05-05".into()
}

impl IntuneRevocationConfig {
    /// Checks the bounds and the reason name.
    pub fn check(&self) -> Result<()> {
        if !(30..=86_400).contains(&self.interval_seconds) {
            return Err(Error::Config(
                "intune revocation interval_seconds must be between 30 and 86400".into(),
            ));
        }
        if !(1..=500).contains(&self.max_requests) {
            return Err(Error::Config(
                "intune revocation max_requests must be between 1 and 500".into(),
            ));
        }
        let reason = ca_core::RevocationReason::parse(&self.reason)
            .map_err(|e| Error::Config(format!("intune revocation reason: {}", e.reason())))?;
        if reason == ca_core::RevocationReason::CertificateHold {
            return Err(Error::Config(
                "intune revocation reason cannot be certificateHold (Intune asks for a permanent revocation)".into(),
            ));
        }
        if self.api_version.is_empty()
            || self.api_version.len() > 64
            || self.api_version.chars().any(|c| c.is_control())
        {
            return Err(Error::Config(
                "intune revocation api_version is invalid".into(),
            ));
        }
        Ok(())
    }
}

fn default_login_url() -> String {
    "https://login.microsoftonline.com".into()
}
fn default_graph_url() -> String {
    "https://graph.microsoft.com".into()
}
fn default_intune_resource_url() -> String {
    "https://api.manage.microsoft.com/".into()
}
fn default_intune_app_id() -> String {
    "0000000a-0000-0000-c000-000000000000".into()
}
fn default_api_version() -> String {
    "2018-02-20".into()
}
fn default_caller_info() -> String {
    concat!("privca/", env!("CARGO_PKG_VERSION")).into()
}
fn default_timeout_ms() -> u64 {
    15_000
}
fn default_validate_retries() -> u32 {
    1
}

impl IntuneConfig {
    /// Loads the client secret.
    pub fn load_client_secret(&self) -> Result<Secret> {
        self.client_secret
            .load()
            .map_err(|e| Error::Config(format!("intune client_secret: {e}")))
    }
}
