//! Wiring of `[scep.endpoints.<name>]`: per-endpoint RA keys, challenge methods, the
//! routes, and the one-time challenge operation shared by `privca scep challenge` and
//! `POST /admin/v1/scep/challenges` (the ops.rs pattern).

use std::sync::Arc;

use ca_core::{Authority, KeyWithCert};
use hsm::KeyStore;
use scep::challenge::ChallengeMethod;
use scep::config::ChallengeConfig;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::config::Config;

/// Builds every configured SCEP endpoint (secrets and RA keys are loaded here).
pub fn endpoints(
    cfg: &Config,
    auth: &Arc<Authority>,
    keys: Option<&dyn KeyStore>,
) -> Result<scep::http::Endpoints, Error> {
    let mut out = scep::http::Endpoints::default();
    for (name, ec) in &cfg.scep.endpoints {
        let ra = match (&ec.ra_certificate, &ec.ra_key, keys) {
            (Some(c), Some(k), Some(keys)) => Some(KeyWithCert {
                cert_der: ca_core::authority::read_cert_file(&cfg.path(c))?,
                key: keys.open(k)?,
            }),
            (Some(_), Some(_), None) => {
                return Err(Error::Config(format!(
                    "SCEP endpoint {name}: the per-endpoint RA needs the key store"
                )));
            }
            _ => None,
        };
        let method: Arc<dyn ChallengeMethod> = match &ec.challenge {
            ChallengeConfig::None => Arc::new(scep::methods::NoChallenge),
            ChallengeConfig::Static { accounts } => {
                let resolved: Vec<_> = accounts
                    .iter()
                    .map(|a| {
                        let mut a = a.clone();
                        a.secret = cfg.secret(&a.secret);
                        a
                    })
                    .collect();
                Arc::new(scep::methods::StaticChallenge::load(name, &resolved).map_err(scep_err)?)
            }
            ChallengeConfig::OneTime { .. } => {
                Arc::new(scep::methods::OneTimeChallenge::new(auth.clone()))
            }
            ChallengeConfig::Webhook(c) => {
                let mut c = c.clone();
                c.bearer_token = c.bearer_token.as_ref().map(|s| cfg.secret(s));
                Arc::new(scep::webhook::Webhook::load(&c).map_err(scep_err)?)
            }
            ChallengeConfig::Intune(c) => {
                let mut c = (**c).clone();
                c.client_secret = cfg.secret(&c.client_secret);
                Arc::new(scep::intune::Intune::load(&c).map_err(scep_err)?)
            }
        };
        let ep = scep::service::Endpoint::new(name, ec.clone(), auth.clone(), ra, method)
            .map_err(scep_err)?;
        out.by_name.insert(name.clone(), Arc::new(ep));
    }
    Ok(out)
}

/// Delay before the first Intune revocation round after the server starts.
const FIRST_REVOCATION_ROUND: std::time::Duration = std::time::Duration::from_secs(2);

/// Starts Intune-driven revocation (docs/intune.md, "Revocation") for every SCEP endpoint
/// with `challenge = { method = "intune", revocation = { … } }`: a round shortly after the
/// start, then one every `interval_seconds`. A failed round is logged and the next one
/// tries again. Must be called inside the server's runtime.
pub fn start_intune_revocation(
    cfg: &Config,
    auth: &Arc<Authority>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Error> {
    let mut tasks = Vec::new();
    for (name, ec) in &cfg.scep.endpoints {
        let ChallengeConfig::Intune(c) = &ec.challenge else {
            continue;
        };
        if c.revocation.is_none() {
            continue;
        }
        let mut c = (**c).clone();
        c.client_secret = cfg.secret(&c.client_secret);
        let intune = scep::intune::Intune::load(&c).map_err(scep_err)?;
        let Some(interval) = intune.revocation_interval() else {
            continue;
        };
        let (name, auth) = (name.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(FIRST_REVOCATION_ROUND).await;
            loop {
                if let Err(e) = intune.revocation_round(auth.clone(), &name).await {
                    tracing::warn!(endpoint = %name, error = %e, "Intune revocation round failed");
                }
                tokio::time::sleep(interval).await;
            }
        }));
    }
    Ok(tasks)
}

fn scep_err(e: scep::Error) -> Error {
    match e {
        scep::Error::Authority(e) => Error::Core(e),
        other => Error::Config(other.to_string()),
    }
}

/// Body of `POST /admin/v1/scep/challenges`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeInput {
    /// The endpoint (its challenge method must be `one-time`).
    pub endpoint: String,
    /// Lifetime: seconds, or with a unit (`90s`, `30m`, `1h`, `7d`); default the
    /// endpoint's `default_ttl_seconds`.
    #[serde(default)]
    pub ttl: Option<String>,
}

/// Answer: the challenge, shown once.
#[derive(Clone, Serialize, Deserialize)]
pub struct ChallengeOutput {
    /// The endpoint.
    pub endpoint: String,
    /// The challenge password. Shown once; only its hash is stored.
    pub challenge: String,
    /// Expiry, RFC 3339.
    pub expires_at: String,
}

/// Parses `90`, `90s`, `30m`, `1h`, `7d`.
pub fn parse_ttl(s: &str) -> Result<i64, ca_core::Error> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86400),
        _ => (s, 1),
    };
    num.trim()
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            ca_core::Error::BadRequest(format!("bad lifetime {s:?} (e.g. 3600, 30m, 1h, 7d)"))
        })
}

/// Creates a one-time challenge for a `one-time` endpoint.
pub fn create_challenge(
    auth: &Authority,
    scep: &scep::config::ScepConfig,
    input: &ChallengeInput,
    actor: &str,
) -> Result<ChallengeOutput, ca_core::Error> {
    let ep = scep.endpoints.get(&input.endpoint).ok_or_else(|| {
        ca_core::Error::NotFound(format!("no SCEP endpoint named {}", input.endpoint))
    })?;
    let ChallengeConfig::OneTime {
        default_ttl_seconds,
    } = ep.challenge
    else {
        return Err(ca_core::Error::BadRequest(format!(
            "SCEP endpoint {} does not use one-time challenges",
            input.endpoint
        )));
    };
    let ttl = match &input.ttl {
        Some(t) => parse_ttl(t)?,
        None => default_ttl_seconds,
    };
    let c = auth.create_challenge(&input.endpoint, ttl, actor)?;
    let expires = time::OffsetDateTime::from_unix_timestamp(c.expires_at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    Ok(ChallengeOutput {
        endpoint: input.endpoint.clone(),
        challenge: c.challenge,
        expires_at: expires,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ttls() {
        assert_eq!(super::parse_ttl("1h").ok(), Some(3600));
        assert_eq!(super::parse_ttl("90").ok(), Some(90));
        assert_eq!(super::parse_ttl("7d").ok(), Some(604800));
        assert!(super::parse_ttl("soon").is_err());
    }
}
