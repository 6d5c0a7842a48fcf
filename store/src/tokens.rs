//! API tokens: named credentials of the admin API and the console, each with a role and
//! an optional scope (docs/admin-api.md, "Roles and tokens"). The store keeps only the
//! SHA-256 of a token's secret; the secret is shown once, when the token is made.

use serde::{Deserialize, Serialize};

use crate::UnixTime;

/// One API token as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Its public id (the part of the token before the secret; also what `revoke` names).
    pub id: String,
    /// What the administrator called it; audit entries name it.
    pub name: String,
    /// SHA-256 of the secret. The secret is 32 random bytes, so one unsalted hash is
    /// enough: there is nothing to guess that a slow hash would protect.
    pub secret_sha256: Vec<u8>,
    /// `administrator`, `operator`, `auditor`, `challenges` or `issuer`.
    pub role: String,
    /// Only these profiles (issuance), when not empty.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Only these SCEP endpoints (one-time challenges), when not empty.
    #[serde(default)]
    pub scep_endpoints: Vec<String>,
    /// When it was made, and by whom.
    pub created_at: UnixTime,
    /// Who made it (an audit actor).
    pub created_by: String,
    /// After this it is refused.
    #[serde(default)]
    pub expires_at: Option<UnixTime>,
    /// When it was last used (updated at most once a minute per token).
    #[serde(default)]
    pub last_used_at: Option<UnixTime>,
    /// When it was revoked; a revoked token is refused.
    #[serde(default)]
    pub revoked_at: Option<UnixTime>,
}
