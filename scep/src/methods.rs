//! The built-in challenge methods: none (renewal-only endpoints), static passwords and
//! one-time challenges (RFC 8894 §2.2, as NDES issues them). Webhook and Intune live in
//! their own modules.

use std::sync::Arc;

use ca_core::Authority;
use hsm::Secret;
use sha2::Digest;

use crate::challenge::{
    Acceptance, BoxFuture, ChallengeMethod, EnrollmentContext, FailInfo, Rejection, Verdict,
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

/// Equality of two secrets in time independent of where they differ: both are hashed,
/// then the digests are compared without an early exit.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let ha = sha2::Sha256::digest(a);
    let hb = sha2::Sha256::digest(b);
    ha.iter()
        .zip(hb.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

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
                }),
                None => Verdict::Reject(wrong_password("no static account has this password")),
            }
        })
    }
}

/// (endpoint, transactionID, CSR public key) of one enrollment.
type EnrollmentId = (String, String, Vec<u8>);

/// `one-time`: challenges created by an administrator, each spent by the first
/// successful enrollment. `verify` consumes the challenge atomically and durably (so two
/// concurrent enrollments can never both pass); if the enrollment then fails, `failed`
/// releases it again.
#[derive(Debug)]
pub struct OneTimeChallenge {
    auth: Arc<Authority>,
    /// Enrollments (endpoint, transactionID, CSR key) that consumed a challenge and have
    /// not finished yet, with when. Entries of enrollments that never report back (held
    /// for approval: the held request spends the challenge) are pruned after an hour.
    consumed: std::sync::Mutex<std::collections::HashMap<EnrollmentId, std::time::Instant>>,
}

impl OneTimeChallenge {
    /// A method backed by the authority's challenge records.
    pub fn new(auth: Arc<Authority>) -> Self {
        OneTimeChallenge {
            auth,
            consumed: std::sync::Mutex::new(Default::default()),
        }
    }

    fn id(ctx: &EnrollmentContext) -> EnrollmentId {
        (
            ctx.endpoint.clone(),
            ctx.transaction_id.clone(),
            ctx.csr.spki_der.clone(),
        )
    }

    fn take(&self, ctx: &EnrollmentContext) -> bool {
        match self.consumed.lock() {
            Ok(mut set) => set.remove(&Self::id(ctx)).is_some(),
            Err(_) => false,
        }
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
            let a2 = actor.clone();
            let r =
                tokio::task::spawn_blocking(move || auth.consume_challenge(&endpoint, &given, &a2))
                    .await;
            match r {
                Ok(Ok(())) => {
                    if let Ok(mut set) = self.consumed.lock() {
                        let now = std::time::Instant::now();
                        set.retain(|_, t| now.duration_since(*t).as_secs() < 3600);
                        set.insert(Self::id(ctx), now);
                    }
                    Verdict::Accept(Acceptance {
                        profile: None,
                        requester: actor,
                    })
                }
                Ok(Err(e)) if e.kind() == ca_core::ErrorKind::Unauthorized => {
                    let text = e.client_message();
                    let text = text.trim_start_matches("unauthorized: ").to_string();
                    Verdict::Reject(Rejection {
                        fail_info: FailInfo::BadRequest,
                        client_text: text.clone(),
                        detail: text,
                    })
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "one-time challenge check failed");
                    Verdict::Reject(Rejection {
                        fail_info: FailInfo::BadRequest,
                        client_text: "the challenge could not be checked".into(),
                        detail: format!("one-time challenge: {e}"),
                    })
                }
                Err(e) => Verdict::Reject(Rejection {
                    fail_info: FailInfo::BadRequest,
                    client_text: "the challenge could not be checked".into(),
                    detail: format!("one-time challenge task: {e}"),
                }),
            }
        })
    }

    fn issued<'a>(
        &'a self,
        ctx: &'a EnrollmentContext,
        _cert_der: &'a [u8],
    ) -> BoxFuture<'a, Result<(), Rejection>> {
        // Spent for good.
        self.take(ctx);
        Box::pin(async { Ok(()) })
    }

    fn failed<'a>(&'a self, ctx: &'a EnrollmentContext, _why: &'a Rejection) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // Only a challenge this enrollment consumed is released; a refusal by verify
            // itself (wrong, used, expired) consumed nothing.
            if !self.take(ctx) {
                return;
            }
            let Some(given) = ctx.csr.challenge_password.clone() else {
                return;
            };
            let auth = self.auth.clone();
            let endpoint = ctx.endpoint.clone();
            let actor = format!("scep:{endpoint}:one-time");
            match tokio::task::spawn_blocking(move || {
                auth.release_challenge(&endpoint, &given, &actor)
            })
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "could not release a one-time challenge"),
                Err(e) => tracing::warn!(error = %e, "could not release a one-time challenge"),
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
