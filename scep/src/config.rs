//! `[scep.endpoints.<name>]`: the configuration section owned by this crate
//! (docs/architecture.md, decision 9). Secrets are references ([`hsm::SecretSource`]), never inline.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hsm::SecretSource;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// `[scep]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScepConfig {
    /// The endpoints, by name; each is served at `/scep/<name>`.
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointConfig>,
}

/// The GetCACert content type when an RA is in use (RFC 8894 §4.2.1.2).
pub const CA_RA_CERT: &str = "application/x-x509-ca-ra-cert";

/// One SCEP endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// The profile certificates are issued under (its issuer must be `ca`).
    pub profile: String,
    /// Further profiles an authenticated account may pick (static accounts).
    #[serde(default)]
    pub allowed_profiles: Vec<String>,
    /// The issuing CA (default: the profile's issuer).
    #[serde(default)]
    pub ca: Option<String>,
    /// A per-endpoint RA certificate (PEM/DER file). Default: the CA's `ra_certificate`,
    /// or the CA itself when it has an RSA key and no RA.
    #[serde(default)]
    pub ra_certificate: Option<PathBuf>,
    /// The key label of the per-endpoint RA.
    #[serde(default)]
    pub ra_key: Option<String>,
    /// The CA whose certificates GetNextCACert announces (CA rollover, RFC 8894 §3.5.3).
    #[serde(default)]
    pub next_ca: Option<String>,
    /// How enrollments are authenticated.
    pub challenge: ChallengeConfig,
    /// Hold initial enrollments for an administrator (PENDING, then CertPoll).
    #[serde(default)]
    pub require_approval: bool,
    /// Accept renewals signed by a valid certificate this CA issued (default true).
    #[serde(default = "yes")]
    pub renewal: bool,
    /// Accept single-DES envelopes (default false; old Cisco and micromdm clients).
    #[serde(default)]
    pub allow_des: bool,
    /// Accept MD5 message digests (default false).
    #[serde(default)]
    pub allow_md5: bool,
    /// Content type of the CA+RA GetCACert answer (Entrust devices want
    /// `application/x-x509-ra-ca-certs`).
    #[serde(default = "default_ca_ra_type")]
    pub ca_ra_content_type: String,
    /// Advertise `AES` (and `SCEPStandard`, which implies it) in GetCACaps (default true).
    /// AES requests are accepted either way; turning it off makes capability-driven
    /// clients (certmonger, sscep) fall back to triple DES for devices that need it.
    #[serde(default = "yes")]
    pub advertise_aes: bool,
    /// GetCACert sends the CA chain after the RA (default true). Set false for clients
    /// that encrypt to every certificate they get and fail on non-RSA CA keys (micromdm
    /// `scepclient` panics on an ECDSA CA certificate).
    #[serde(default = "yes")]
    pub ca_cert_chain: bool,
    /// Also serve this endpoint at `/cgi-bin/pkiclient.exe` and `/scep` (one endpoint at most).
    #[serde(default)]
    pub default: bool,
}

fn yes() -> bool {
    true
}

fn default_ca_ra_type() -> String {
    CA_RA_CERT.to_string()
}

/// How an endpoint authenticates enrollments. `webhook` and `intune` are added beside
/// these by their own modules.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ChallengeConfig {
    /// No initial enrollment; renewals only (authenticated by the signer certificate).
    None,
    /// Static shared passwords, one per named account.
    Static {
        /// The accounts.
        accounts: Vec<StaticAccount>,
    },
    /// One-time challenges issued by an administrator (`privca scep challenge`).
    OneTime {
        /// Default lifetime of a new challenge, in seconds (default 3600).
        #[serde(default = "default_ttl")]
        default_ttl_seconds: i64,
    },
    /// An external HTTP service decides ([`crate::webhook`]).
    Webhook(crate::webhook::WebhookConfig),
    /// Microsoft Intune validates the challenge ([`crate::intune`]).
    Intune(Box<crate::intune::IntuneConfig>),
}

fn default_ttl() -> i64 {
    3600
}

/// A static challenge account.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticAccount {
    /// Its name (audit log: `scep:<endpoint>:<name>`).
    pub name: String,
    /// Where the password is.
    pub secret: SecretSource,
    /// The profile enrollments of this account get (default: the endpoint's).
    #[serde(default)]
    pub profile: Option<String>,
}

impl EndpointConfig {
    /// Every profile the endpoint may issue under.
    pub fn profiles(&self) -> Vec<&str> {
        let mut v = vec![self.profile.as_str()];
        v.extend(self.allowed_profiles.iter().map(String::as_str));
        if let ChallengeConfig::Static { accounts } = &self.challenge {
            v.extend(accounts.iter().filter_map(|a| a.profile.as_deref()));
        }
        v
    }

    /// The enrollment policy of the endpoint `name` (ca-core applies it): its profiles,
    /// renewals, approval of initial enrollments (a renewal is authenticated by the
    /// certificate it renews and not held, RFC 8894 §3.3.1.2).
    pub fn policy(&self, name: &str) -> ca_core::EnrollmentPolicy {
        let mut p = ca_core::EnrollmentPolicy::new(
            ca_core::enroll::Channel::Scep(name.to_string()),
            &self.profile,
        );
        p.admitted_profiles = self.profiles()[1..].iter().map(|s| s.to_string()).collect();
        p.renewals = self.renewal;
        p.require_approval = self.require_approval;
        p.hold_renewals = false;
        p
    }

    /// Checks what serde cannot.
    pub fn validate(&self, name: &str) -> Result<()> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::Config(format!(
                "SCEP endpoint name {name:?} may only contain letters, digits, - and _"
            )));
        }
        if self.ra_certificate.is_some() != self.ra_key.is_some() {
            return Err(Error::Config(format!(
                "SCEP endpoint {name}: ra_certificate and ra_key go together"
            )));
        }
        match &self.challenge {
            ChallengeConfig::Static { accounts } if accounts.is_empty() => {
                return Err(Error::Config(format!(
                    "SCEP endpoint {name}: static challenge needs at least one account"
                )));
            }
            ChallengeConfig::Static { accounts } => {
                let mut seen = std::collections::BTreeSet::new();
                for a in accounts {
                    if !seen.insert(a.name.as_str()) {
                        return Err(Error::Config(format!(
                            "SCEP endpoint {name}: account {} is defined twice",
                            a.name
                        )));
                    }
                }
            }
            ChallengeConfig::OneTime {
                default_ttl_seconds,
            } if !(1..=ca_core::enrollment::MAX_CHALLENGE_TTL).contains(default_ttl_seconds) => {
                return Err(Error::Config(format!(
                    "SCEP endpoint {name}: default_ttl_seconds is out of range"
                )));
            }
            _ => {}
        }
        if self.ca_ra_content_type.is_empty() || !self.ca_ra_content_type.is_ascii() {
            return Err(Error::Config(format!(
                "SCEP endpoint {name}: bad ca_ra_content_type"
            )));
        }
        Ok(())
    }
}

impl ScepConfig {
    /// Validates every endpoint and that at most one is the default.
    pub fn validate(&self) -> Result<()> {
        for (name, e) in &self.endpoints {
            e.validate(name)?;
        }
        if self.endpoints.values().filter(|e| e.default).count() > 1 {
            return Err(Error::Config(
                "at most one SCEP endpoint may be the default".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_unknown_fields() {
        let ok = r#"
[endpoints.devices]
profile = "device"
default = true
[endpoints.devices.challenge]
method = "static"
accounts = [ { name = "mdm", secret = { env = "X" } } ]
[endpoints.otp]
profile = "device"
challenge = { method = "one-time" }
[endpoints.renew]
profile = "device"
challenge = { method = "none" }
"#;
        let c: ScepConfig = toml::from_str(ok).expect("parses");
        c.validate().expect("valid");
        assert!(matches!(
            c.endpoints["otp"].challenge,
            ChallengeConfig::OneTime {
                default_ttl_seconds: 3600
            }
        ));
        let bad = ok.replace("default = true", "default = true\nbogus = 1");
        assert!(toml::from_str::<ScepConfig>(&bad).is_err());
        let inline = ok.replace("secret = { env = \"X\" }", "secret = \"hunter2\"");
        assert!(toml::from_str::<ScepConfig>(&inline).is_err());
        let bad_method = ok.replace("\"none\"", "\"nonsense\"");
        assert!(toml::from_str::<ScepConfig>(&bad_method).is_err());
    }
}
