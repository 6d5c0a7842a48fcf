//! State that protocol front ends keep through the authority (they never see the store):
//! one-time enrollment challenges (SCEP, issued by an administrator as NDES does) and the
//! transaction → certificate map that makes a replayed request return the same
//! certificate (RFC 8894 §3.3.1: a repeated PKCSReq must not issue twice).

use sha2::Digest;
use store::{AuditEvent, OneTimeChallenge};

use crate::{Authority, Error, Result};

/// Longest lifetime of a one-time challenge (30 days).
pub const MAX_CHALLENGE_TTL: i64 = 30 * 24 * 3600;

/// A freshly created one-time challenge: the text is shown once and never stored.
#[derive(Clone)]
pub struct NewChallenge {
    /// The challenge text (128 random bits, hex). Never log it.
    pub challenge: String,
    /// When it expires.
    pub expires_at: i64,
}

impl std::fmt::Debug for NewChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewChallenge")
            .field("challenge", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A one-time challenge that was checked and is to be spent by an issuance
/// ([`crate::IssueBinding::challenge`]). Holds only the challenge's hash.
#[derive(Clone, PartialEq, Eq)]
pub struct ChallengeSpend {
    /// The endpoint it belongs to.
    pub endpoint: String,
    /// SHA-256 of the challenge text.
    pub hash: Vec<u8>,
}

impl std::fmt::Debug for ChallengeSpend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChallengeSpend")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The client-facing refusal for a store answer about a one-time challenge.
pub(crate) fn challenge_refusal(e: &store::Error) -> Error {
    match e {
        store::Error::NotFound(_) => Error::Unauthorized("wrong challenge password".into()),
        store::Error::Conflict(_) => {
            Error::Unauthorized("the challenge password was already used".into())
        }
        store::Error::Invalid(_) => {
            Error::Unauthorized("the challenge password has expired".into())
        }
        other => Error::Store(store::Error::Backend(other.to_string())),
    }
}

fn challenge_hash(challenge: &str) -> Vec<u8> {
    sha2::Sha256::digest(challenge.trim().as_bytes()).to_vec()
}

impl Authority {
    /// Creates a one-time challenge for `endpoint`, valid for `ttl_seconds`; only its
    /// SHA-256 is stored (the text has 128 random bits, so a fast hash suffices).
    pub fn create_challenge(
        &self,
        endpoint: &str,
        ttl_seconds: i64,
        actor: &str,
    ) -> Result<NewChallenge> {
        if !(1..=MAX_CHALLENGE_TTL).contains(&ttl_seconds) {
            return Err(Error::BadRequest(format!(
                "challenge lifetime must be between 1 second and {} days",
                MAX_CHALLENGE_TTL / 86400
            )));
        }
        let mut raw = [0u8; 16];
        rand::fill(&mut raw);
        let challenge = hex::encode(raw);
        let now = self.clock.now();
        let record = OneTimeChallenge {
            hash: challenge_hash(&challenge),
            endpoint: endpoint.to_string(),
            created_by: actor.to_string(),
            created_at: now,
            expires_at: now + ttl_seconds,
            used_at: None,
            used_for: None,
        };
        let audit = AuditEvent {
            time: now,
            action: "challenge-create".into(),
            actor: actor.to_string(),
            subject: endpoint.to_string(),
            detail: format!("expires_at={}", record.expires_at),
        };
        self.store.put_challenge(&record, &audit)?;
        Ok(NewChallenge {
            challenge,
            expires_at: record.expires_at,
        })
    }

    /// Consumes a one-time challenge of `endpoint` (atomic and durable: of concurrent
    /// uses exactly one succeeds). Wrong, used and expired challenges are
    /// `Unauthorized`, with a reason fit for the client.
    pub fn consume_challenge(&self, endpoint: &str, challenge: &str, actor: &str) -> Result<()> {
        let now = self.clock.now();
        let audit = AuditEvent {
            time: now,
            action: "challenge-use".into(),
            actor: actor.to_string(),
            subject: endpoint.to_string(),
            detail: String::new(),
        };
        match self
            .store
            .consume_challenge(&challenge_hash(challenge), endpoint, now, &audit)
        {
            Ok(_) => Ok(()),
            Err(e) => Err(challenge_refusal(&e)),
        }
    }

    /// Checks a one-time challenge of `endpoint` without spending it: `Unauthorized`
    /// (wrong, used, expired) as [`Authority::consume_challenge`] says. The returned
    /// [`ChallengeSpend`] goes into [`crate::IssueBinding`], so that the challenge is spent
    /// in the same commit as the certificate; that commit checks again, so of concurrent
    /// enrollments with one challenge exactly one is recorded.
    pub fn check_challenge(&self, endpoint: &str, challenge: &str) -> Result<ChallengeSpend> {
        let hash = challenge_hash(challenge);
        let found = self
            .store
            .get_challenge(&hash)?
            .filter(|c| c.endpoint == endpoint);
        match found {
            None => Err(challenge_refusal(&store::Error::NotFound(String::new()))),
            Some(c) if c.used_at.is_some() => {
                Err(challenge_refusal(&store::Error::Conflict(String::new())))
            }
            Some(c) if self.clock.now() > c.expires_at => {
                Err(challenge_refusal(&store::Error::Invalid(String::new())))
            }
            Some(_) => Ok(ChallengeSpend {
                endpoint: endpoint.to_string(),
                hash,
            }),
        }
    }

    /// For a challenge of `endpoint` that has been spent together with a certificate: the
    /// serial of that certificate. `None` for unknown, unused challenges and for
    /// challenges spent without a certificate (held requests, older records).
    pub fn challenge_spent_for(&self, endpoint: &str, challenge: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .store
            .get_challenge(&challenge_hash(challenge))?
            .filter(|c| c.endpoint == endpoint && c.used_at.is_some())
            .and_then(|c| c.used_for))
    }

    /// Spends a checked challenge on its own commit (a request held for approval spends it
    /// when it is held).
    pub fn consume_spend(&self, spend: &ChallengeSpend, actor: &str) -> Result<()> {
        let now = self.clock.now();
        let audit = AuditEvent {
            time: now,
            action: "challenge-use".into(),
            actor: actor.to_string(),
            subject: spend.endpoint.clone(),
            detail: String::new(),
        };
        match self
            .store
            .consume_challenge(&spend.hash, &spend.endpoint, now, &audit)
        {
            Ok(_) => Ok(()),
            Err(e) => Err(challenge_refusal(&e)),
        }
    }

    /// [`Authority::release_challenge`] for a [`ChallengeSpend`].
    pub fn release_spend(&self, spend: &ChallengeSpend, actor: &str) -> Result<()> {
        let audit = AuditEvent {
            time: self.clock.now(),
            action: "challenge-release".into(),
            actor: actor.to_string(),
            subject: spend.endpoint.clone(),
            detail: "the enrollment failed; the challenge may be used again".into(),
        };
        self.store
            .release_challenge(&spend.hash, &spend.endpoint, &audit)?;
        Ok(())
    }

    /// Makes a challenge consumed by an enrollment that then failed usable again, so
    /// that it is spent only by a successful enrollment.
    pub fn release_challenge(&self, endpoint: &str, challenge: &str, actor: &str) -> Result<()> {
        let audit = AuditEvent {
            time: self.clock.now(),
            action: "challenge-release".into(),
            actor: actor.to_string(),
            subject: endpoint.to_string(),
            detail: "the enrollment failed; the challenge may be used again".into(),
        };
        self.store
            .release_challenge(&challenge_hash(challenge), endpoint, &audit)?;
        Ok(())
    }

    /// Records that the protocol transaction known by each of `keys` produced
    /// certificate `serial` (one durable commit).
    pub fn record_transaction(&self, keys: &[String], serial: &[u8]) -> Result<()> {
        Ok(self.store.put_transaction(keys, serial)?)
    }

    /// The certificate recorded for protocol transaction `key`, if any.
    pub fn find_transaction(&self, key: &str) -> Result<Option<store::CertRecord>> {
        match self.store.find_transaction(key)? {
            Some(serial) => Ok(self.store.get_cert(&serial)?),
            None => Ok(None),
        }
    }
}
