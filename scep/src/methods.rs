//! The built-in challenge methods: none (renewal-only endpoints), static passwords and
//! one-time challenges (RFC 8894 §2.2, as NDES issues them). Webhook and Intune live in
//! their own modules.

use std::sync::Arc;

use ca_core::Authority;
use hsm::Secret;

use crate::challenge::{
    Acceptance, BoxFuture, ChallengeMethod, EnrollKind, EnrollmentContext, FailInfo, Rejection,
    Verdict,
};
use crate::config::StaticAccount;
use crate::{Error, Result};

fn no_password() -> Rejection {
    Rejection {
        fail_info: FailInfo::BadRequest,
        client_text: "a challenge password is required".into(),
        detail: "the CSR carries no challengePassword".into(),
    }
}

fn wrong_password(detail: &str) -> Rejection {
    Rejection {
        fail_info: FailInfo::BadRequest,
        client_text: "wrong challenge password".into(),
        detail: detail.into(),
    }
}

/// `none`: no initial enrollment at all; renewals are authenticated by the service
/// through the signer certificate and never reach a method with a blank challenge.
#[derive(Debug)]
pub struct NoChallenge;

impl ChallengeMethod for NoChallenge {
    fn name(&self) -> &'static str {
        "none"
    }

    fn verify<'a>(&'a self, _ctx: &'a EnrollmentContext) -> BoxFuture<'a, Verdict> {
        Box::pin(async {
            Verdict::Reject(Rejection::bad_request(
                "this endpoint only accepts renewals",
            ))
        })
    }
}

// Equality of two secrets in time independent of where they differ: the one comparison
// of secrets, `hsm::ct_eq` (SHA-256 of both, compared with aws-lc-rs's constant-time
// comparison).
use hsm::ct_eq;

/// `static`: named accounts with shared passwords, each able to pick its own profile.
pub struct StaticChallenge {
    endpoint: String,
    accounts: Vec<(String, Secret, Option<String>)>,
}

impl std::fmt::Debug for StaticChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticChallenge")
            .field("endpoint", &self.endpoint)
            .field(
                "accounts",
                &self.accounts.iter().map(|a| &a.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl StaticChallenge {
    /// Loads every account's secret (relative file paths must already be resolved).
    pub fn load(endpoint: &str, accounts: &[StaticAccount]) -> Result<StaticChallenge> {
        let mut out = Vec::new();
        for a in accounts {
            let secret = a.secret.load().map_err(|e| {
                Error::Config(format!("SCEP endpoint {endpoint}, account {}: {e}", a.name))
            })?;
            out.push((a.name.clone(), secret, a.profile.clone()));
        }
        Ok(StaticChallenge {
            endpoint: endpoint.to_string(),
            accounts: out,
        })
    }

    /// From already loaded secrets (tests).
    pub fn new(endpoint: &str, accounts: Vec<(String, Secret, Option<String>)>) -> Self {
        StaticChallenge {
            endpoint: endpoint.to_string(),
            accounts,
        }
    }
}

impl ChallengeMethod for StaticChallenge {
    fn name(&self) -> &'static str {
        "static"
    }

    fn verify<'a>(&'a self, ctx: &'a EnrollmentContext) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let Some(given) = ctx.csr.challenge_password.as_deref() else {
                return Verdict::Reject(no_password());
            };
            // Every account is compared, so the time does not tell which one matched.
            let mut found = None;
            for (name, secret, profile) in &self.accounts {
                if ct_eq(given.as_bytes(), secret.expose()) && found.is_none() {
                    found = Some((name, profile));
                }
            }
            match found {
                Some((name, profile)) => Verdict::Accept(Acceptance {
                    profile: profile.clone(),
                    requester: format!("scep:{}:{name}", self.endpoint),
                    spend: None,
                }),
                None => Verdict::Reject(wrong_password("no static account has this password")),
            }
        })
    }
}

/// `one-time`: challenges created by an administrator, each spent by the first
/// successful enrollment.
///
/// `verify` only checks the challenge (known for this endpoint, unused, not expired); it
/// is spent in the same store commit that records the certificate (and the transaction
/// that finds it again), through [`Acceptance::spend`]. That commit checks it again, so of
/// concurrent enrollments with one challenge exactly one is recorded, and a crash can
/// neither burn a challenge without a certificate nor issue without spending it. A request
/// held for approval spends it when it is held.
///
/// Renewals (RFC 8894 §3.3.1.2: a RenewalReq, or a PKCSReq signed by a valid certificate
/// this CA issued, with the same subject — the service checks all that first): a client
/// such as certmonger stores the challenge and sends it again with every renewal. A
/// renewal that carries an **already spent** challenge is accepted without spending
/// anything if that challenge was spent by the issuance of a certificate with the same
/// subject from the same CA (the enrollment the renewed certificate descends from),
/// whether or not it has expired since. Any other challenge on a renewal is checked like
/// an initial enrollment's: a fresh one is spent, a wrong one or one spent for another
/// subject is refused.
#[derive(Debug)]
pub struct OneTimeChallenge {
    auth: Arc<Authority>,
}

impl OneTimeChallenge {
    /// A method backed by the authority's challenge records.
    pub fn new(auth: Arc<Authority>) -> Self {
        OneTimeChallenge { auth }
    }
}

/// Whether `given`, a spent challenge of `endpoint`, was spent by the issuance of a
/// certificate with the subject and issuer of the certificate being renewed (`renewal_of`,
/// hex serial).
fn spent_by_same_subject(
    auth: &Authority,
    endpoint: &str,
    given: &str,
    renewal_of: &str,
) -> ca_core::Result<bool> {
    let Some(spent_for) = auth.challenge_spent_for(endpoint, given)? else {
        return Ok(false);
    };
    let Ok(old) = hex::decode(renewal_of) else {
        return Ok(false);
    };
    let (old, first) = (
        auth.get(&ca_core::asn1::minimal_positive(&old))?,
        match auth.get(&spent_for) {
            Ok(r) => r,
            Err(e) if e.kind() == ca_core::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        },
    );
    Ok(old.subject == first.subject && old.issuer == first.issuer)
}

/// Checks a one-time challenge; `Ok(None)` for a renewal re-sending the challenge of its
/// own enrollment. The service calls methods from the request's one blocking thread
/// (`service::Endpoint::pki_operation`), so the store is read here directly.
fn check_one_time(
    auth: &Authority,
    endpoint: &str,
    given: &str,
    renewal_of: Option<String>,
) -> ca_core::Result<Option<ca_core::enrollment::ChallengeSpend>> {
    let checked = auth.check_challenge(endpoint, given);
    match (&checked, renewal_of) {
        (Err(e), Some(old)) if e.kind() == ca_core::ErrorKind::Unauthorized => {
            // A renewal re-sending the challenge of its own enrollment.
            if spent_by_same_subject(auth, endpoint, given, &old)? {
                return Ok(None);
            }
            checked.map(Some)
        }
        _ => checked.map(Some),
    }
}

impl ChallengeMethod for OneTimeChallenge {
    fn name(&self) -> &'static str {
        "one-time"
    }

    fn verify<'a>(&'a self, ctx: &'a EnrollmentContext) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let Some(given) = ctx.csr.challenge_password.clone() else {
                return Verdict::Reject(no_password());
            };
            let auth = self.auth.clone();
            let endpoint = ctx.endpoint.clone();
            let actor = format!("scep:{endpoint}:one-time");
            let renewal_of = match ctx.kind {
                EnrollKind::Renewal => ctx.renewal_of.clone(),
                EnrollKind::Initial => None,
            };
            // The service calls methods from the request's one blocking thread
            // (service::Endpoint::pki_operation), so the store is read here directly.
            let r = check_one_time(&auth, &endpoint, &given, renewal_of);
            match r {
                Ok(spend) => {
                    let requester = match &spend {
                        Some(_) => actor,
                        None => format!(
                            "{actor}:renewal-of:{}",
                            ctx.renewal_of.clone().unwrap_or_default()
                        ),
                    };
                    Verdict::Accept(Acceptance {
                        profile: None,
                        requester,
                        spend,
                    })
                }
                Err(e) if e.kind() == ca_core::ErrorKind::Unauthorized => {
                    let text = e.client_message();
                    let text = text.trim_start_matches("unauthorized: ").to_string();
                    Verdict::Reject(Rejection {
                        fail_info: FailInfo::BadRequest,
                        client_text: text.clone(),
                        detail: text,
                    })
                }
                Err(e) => {
                    tracing::error!(error = %e, "one-time challenge check failed");
                    Verdict::Reject(Rejection {
                        fail_info: FailInfo::BadRequest,
                        client_text: "the challenge could not be checked".into(),
                        detail: format!("one-time challenge: {e}"),
                    })
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn constant_time_compare_is_equality() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret1"));
        assert!(!ct_eq(b"", b"x"));
    }
}
