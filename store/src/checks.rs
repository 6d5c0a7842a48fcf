//! Checks and helpers every backend shares: argument checks, the clock, and the walk
//! that verifies the audit chain.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{AuditEntry, AuditVerification, CertRecord, CertStatus, Error, Result, UnixTime};

/// `prev_hash` of the first audit entry.
pub(crate) const ZERO_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";
/// Longest serial accepted (RFC 5280 §4.1.2.2, docs/architecture.md, decision 3).
pub(crate) const MAX_SERIAL_LEN: usize = 20;

/// Now, in seconds since the epoch.
pub(crate) fn now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Refuses a serial that is empty or longer than [`MAX_SERIAL_LEN`] octets.
pub(crate) fn check_serial(serial: &[u8]) -> Result<()> {
    if serial.is_empty() || serial.len() > MAX_SERIAL_LEN {
        return Err(Error::Invalid(format!(
            "a serial has 1 to {MAX_SERIAL_LEN} octets, not {}",
            serial.len()
        )));
    }
    Ok(())
}

/// Refuses an SPKI hash that is not a SHA-256.
pub(crate) fn check_spki_hash(hash: &[u8]) -> Result<()> {
    if hash.len() != crate::SPKI_HASH_LEN {
        return Err(Error::Invalid(format!(
            "an SPKI hash has {} octets, not {}",
            crate::SPKI_HASH_LEN,
            hash.len()
        )));
    }
    Ok(())
}

/// Refuses a record whose status and revocation disagree, or whose SPKI hash is not a
/// SHA-256 (`what`: how to name it).
pub(crate) fn check_status(record: &CertRecord, what: &str) -> Result<()> {
    if !record.spki_sha256.is_empty() {
        check_spki_hash(&record.spki_sha256)?;
    }
    match (record.status, &record.revocation) {
        (CertStatus::Valid, None) | (CertStatus::Revoked, Some(_)) => Ok(()),
        _ => Err(Error::Invalid(format!(
            "status and revocation of {what} disagree"
        ))),
    }
}

/// Walks an audit chain entry by entry, in key order ([`crate::Store::verify_audit`]).
pub(crate) struct ChainWalk {
    entries: u64,
    first_bad: Option<u64>,
    expected_seq: u64,
    expected_prev: String,
}

impl ChainWalk {
    pub(crate) fn new() -> ChainWalk {
        ChainWalk {
            entries: 0,
            first_bad: None,
            expected_seq: 1,
            expected_prev: ZERO_HASH.to_string(),
        }
    }

    /// Checks the entry stored under `seq`; `None` when it could not be decoded.
    pub(crate) fn push(&mut self, seq: u64, entry: Option<AuditEntry>) -> Result<()> {
        self.entries += 1;
        let good = match entry {
            Some(entry) => {
                let computed = AuditEntry::compute_hash(entry.seq, &entry.prev_hash, &entry.event)?;
                let good = entry.seq == seq
                    && seq == self.expected_seq
                    && entry.prev_hash == self.expected_prev
                    && entry.hash == computed;
                self.expected_prev = entry.hash;
                good
            }
            None => {
                self.expected_prev = String::new();
                false
            }
        };
        if !good && self.first_bad.is_none() {
            self.first_bad = Some(seq);
        }
        self.expected_seq = seq.saturating_add(1);
        Ok(())
    }

    pub(crate) fn finish(self) -> AuditVerification {
        AuditVerification {
            entries: self.entries,
            first_bad: self.first_bad,
        }
    }
}

/// Refuses a one-time challenge that was used ([`Error::Conflict`]) or has expired at
/// `now` ([`Error::Invalid`]).
pub(crate) fn check_spendable(c: &crate::OneTimeChallenge, now: UnixTime) -> Result<()> {
    if c.used_at.is_some() {
        return Err(Error::Conflict("the challenge was already used".into()));
    }
    if now > c.expires_at {
        return Err(Error::Invalid("the challenge has expired".into()));
    }
    Ok(())
}

/// Whether a record passes the [`crate::CertFilter::text`] filter: its subject or one of
/// its SANs contains `needle` (already lowercased), case-insensitively.
pub(crate) fn text_matches(record: &CertRecord, needle: &str) -> bool {
    record.subject.to_lowercase().contains(needle)
        || record
            .sans
            .iter()
            .any(|s| s.to_lowercase().contains(needle))
}
