//! The cache of successful HTTP Basic password checks (issue 13 item 3): with the
//! hashes privca ships (PBKDF2-HMAC-SHA256, 600,000 iterations, RFC 8018 §5.2) a full
//! verification costs tens of milliseconds of CPU, so a client that enrolls again and
//! again with a password already verified should not pay it every time.
//!
//! What is kept, per (endpoint label, user name), after a PBKDF2 verification
//! succeeded:
//! * HMAC-SHA256 (RFC 2104) of the password under a key drawn at random when the process
//!   starts and never written anywhere: a presented password hits only when its HMAC
//!   equals the kept one (compared in constant time). The plain password is never kept,
//!   and the HMAC is wiped when the entry goes.
//! * the PHC hash string the password was verified against: when the account's
//!   configured hash is not that string any more (its password was changed) the entry is
//!   dropped and the full check runs.
//! * when the verification happened: an entry older than `ttl_seconds` is dropped, so a
//!   full check runs at least once per TTL for each account in use.
//!
//! Only successes enter the cache; a wrong password (also for an account with an entry)
//! and an unknown user name always cost the full PBKDF2, as without the cache, and go
//! through the failure limits of [`crate::limits`]. Unknown user names are never
//! entered (only verified passwords are), so the cache tells nothing about which
//! accounts exist: the fast answer needs the right password.
//!
//! The table is bounded by `max_entries`; when full, expired entries go first, then the
//! least recently used one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use crate::config::PasswordCacheConfig;

/// Bytes of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

struct Entry {
    /// HMAC-SHA256 of the verified password under the process key (wiped on drop).
    tag: Zeroizing<[u8; TAG_LEN]>,
    /// The PHC string the password was verified against.
    phc: String,
    verified_at: Instant,
    last_used: Instant,
}

/// The HMAC of a presented password, ready to look up or to enter (wiped on drop).
pub struct PasswordTag(Zeroizing<[u8; TAG_LEN]>);

/// The cache (see the [module docs](self)).
pub struct PasswordCache {
    cfg: PasswordCacheConfig,
    key: hmac::Key,
    table: Mutex<HashMap<(String, String), Entry>>,
}

impl std::fmt::Debug for PasswordCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordCache")
            .field("cfg", &self.cfg)
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

impl PasswordCache {
    /// An empty cache with these settings and a fresh random HMAC key.
    pub fn new(cfg: PasswordCacheConfig) -> crate::Result<PasswordCache> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| crate::Error::Config("no randomness for the password cache key".into()))?;
        Ok(PasswordCache {
            cfg,
            key,
            table: Mutex::new(HashMap::new()),
        })
    }

    /// Whether the cache is on (`max_entries` > 0).
    pub fn enabled(&self) -> bool {
        self.cfg.max_entries > 0
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Entry>> {
        // A panic elsewhere while holding the lock leaves a consistent table.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(self.cfg.ttl_seconds)
    }

    /// The HMAC of `password` under the process key.
    pub fn tag(&self, password: &[u8]) -> PasswordTag {
        let t = hmac::sign(&self.key, password);
        let mut out = Zeroizing::new([0u8; TAG_LEN]);
        out.copy_from_slice(t.as_ref());
        PasswordTag(out)
    }

    /// Whether `tag` is the password verified for `user` on endpoint `label` against the
    /// hash string `phc`, within the TTL. An entry made against another hash string, or
    /// expired, is dropped. A mismatching tag leaves the entry (a wrong guess does not
    /// cost the account's clients their cached check).
    pub fn hit(&self, label: &str, user: &str, phc: &str, tag: &PasswordTag, now: Instant) -> bool {
        if !self.enabled() {
            return false;
        }
        let mut table = self.lock();
        let key = (label.to_string(), user.to_string());
        let Some(e) = table.get_mut(&key) else {
            return false;
        };
        if e.phc != phc || now.saturating_duration_since(e.verified_at) >= self.ttl() {
            table.remove(&key);
            return false;
        }
        let ok = aws_lc_rs::constant_time::verify_slices_are_equal(&e.tag[..], &tag.0[..]).is_ok();
        if ok {
            e.last_used = now;
        }
        ok
    }

    /// Enters a password that PBKDF2 just verified for `user` on `label` against `phc`.
    pub fn insert(&self, label: &str, user: &str, phc: &str, tag: &PasswordTag, now: Instant) {
        if !self.enabled() {
            return;
        }
        let mut table = self.lock();
        let key = (label.to_string(), user.to_string());
        if !table.contains_key(&key) && table.len() >= self.cfg.max_entries {
            let ttl = self.ttl();
            table.retain(|_, e| now.saturating_duration_since(e.verified_at) < ttl);
            if table.len() >= self.cfg.max_entries
                && let Some(oldest) = table
                    .iter()
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(k, _)| k.clone())
            {
                table.remove(&oldest);
            }
        }
        table.insert(
            key,
            Entry {
                tag: Zeroizing::new(*tag.0),
                phc: phc.to_string(),
                verified_at: now,
                last_used: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cache(max_entries: usize, ttl_seconds: u64) -> PasswordCache {
        PasswordCache::new(PasswordCacheConfig {
            max_entries,
            ttl_seconds,
        })
        .unwrap()
    }

    #[test]
    fn only_the_verified_password_hits() {
        let c = cache(16, 300);
        let now = Instant::now();
        c.insert("ep", "alice", "$h1", &c.tag(b"right"), now);
        assert!(c.hit("ep", "alice", "$h1", &c.tag(b"right"), now));
        assert!(!c.hit("ep", "alice", "$h1", &c.tag(b"wrong"), now));
        assert!(!c.hit("ep", "alice", "$h1", &c.tag(b"right "), now));
        // The wrong guess did not drop the entry.
        assert!(c.hit("ep", "alice", "$h1", &c.tag(b"right"), now));
        // Another endpoint or user does not share it.
        assert!(!c.hit("ep2", "alice", "$h1", &c.tag(b"right"), now));
        assert!(!c.hit("ep", "bob", "$h1", &c.tag(b"right"), now));
    }

    #[test]
    fn a_changed_hash_misses_and_drops_the_entry() {
        let c = cache(16, 300);
        let now = Instant::now();
        c.insert("ep", "alice", "$h1", &c.tag(b"right"), now);
        assert!(!c.hit("ep", "alice", "$h2", &c.tag(b"right"), now));
        assert!(c.is_empty());
        assert!(!c.hit("ep", "alice", "$h1", &c.tag(b"right"), now));
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let c = cache(16, 60);
        let now = Instant::now();
        c.insert("ep", "alice", "$h", &c.tag(b"pw"), now);
        assert!(c.hit(
            "ep",
            "alice",
            "$h",
            &c.tag(b"pw"),
            now + Duration::from_secs(59)
        ));
        assert!(!c.hit(
            "ep",
            "alice",
            "$h",
            &c.tag(b"pw"),
            now + Duration::from_secs(60)
        ));
        assert!(c.is_empty());
    }

    #[test]
    fn the_table_stays_bounded_and_drops_the_least_recently_used() {
        let c = cache(3, 300);
        let t0 = Instant::now();
        for (i, u) in ["a", "b", "c"].iter().enumerate() {
            c.insert(
                "ep",
                u,
                "$h",
                &c.tag(u.as_bytes()),
                t0 + Duration::from_secs(i as u64),
            );
        }
        // "a" was used last, so "b" is the least recently used.
        assert!(c.hit("ep", "a", "$h", &c.tag(b"a"), t0 + Duration::from_secs(5)));
        c.insert("ep", "d", "$h", &c.tag(b"d"), t0 + Duration::from_secs(6));
        assert_eq!(c.len(), 3);
        let later = t0 + Duration::from_secs(7);
        assert!(!c.hit("ep", "b", "$h", &c.tag(b"b"), later));
        for u in ["a", "c", "d"] {
            assert!(c.hit("ep", u, "$h", &c.tag(u.as_bytes()), later), "{u}");
        }
        // Expired entries go before live ones.
        let c = cache(2, 10);
        c.insert("ep", "old", "$h", &c.tag(b"o"), t0);
        c.insert("ep", "new", "$h", &c.tag(b"n"), t0 + Duration::from_secs(9));
        c.insert("ep", "x", "$h", &c.tag(b"x"), t0 + Duration::from_secs(11));
        assert!(c.hit(
            "ep",
            "new",
            "$h",
            &c.tag(b"n"),
            t0 + Duration::from_secs(12)
        ));
        assert!(c.hit("ep", "x", "$h", &c.tag(b"x"), t0 + Duration::from_secs(12)));
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let c = cache(0, 300);
        let now = Instant::now();
        c.insert("ep", "alice", "$h", &c.tag(b"pw"), now);
        assert!(c.is_empty());
        assert!(!c.hit("ep", "alice", "$h", &c.tag(b"pw"), now));
    }

    #[test]
    fn tags_are_keyed_per_process() {
        let (a, b) = (cache(16, 300), cache(16, 300));
        assert_ne!(*a.tag(b"pw").0, *b.tag(b"pw").0);
        assert_eq!(*a.tag(b"pw").0, *a.tag(b"pw").0);
    }
}
