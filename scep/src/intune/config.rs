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
