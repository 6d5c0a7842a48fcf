//! Limits on failed HTTP Basic password checks (issue 9 item 5): PBKDF2 at 600,000
//! iterations costs a few hundred milliseconds of CPU, so unlimited wrong guesses are
//! both an online guessing attack and a way to starve legitimate clients.
//!
//! Two kinds of key share one bounded table: a client address (IPv4 address, IPv6 /64,
//! since one host easily holds a whole /64) and an account (endpoint label and user
//! name, hashed with a per-process random key; unknown user names are tracked exactly
//! like known ones, so a limit never tells which accounts exist). Each key counts its
//! failures in a window; when the count reaches the limit the key is limited until
//! `window` after that failure. A limited key is refused before any hashing.
//!
//! A limited account would lock out its legitimate clients too, so each account entry
//! remembers the few addresses that logged in to it successfully; those may still try
//! while the account is limited (their own address limit still applies).
//! RFC 6585 §4 (429 Too Many Requests with Retry-After) is the answer the HTTP mapping
//! gives.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::PasswordLimits;

/// Addresses remembered per account as having logged in to it.
const GOOD_ADDRESSES: usize = 8;
/// How long such an address is remembered.
const GOOD_MEMORY: Duration = Duration::from_secs(7 * 86_400);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Address(u128),
    Account(u64),
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    window_start: Instant,
    limited_until: Option<Instant>,
    last_used: Instant,
    /// Accounts only: addresses that logged in successfully, and when.
    good: Vec<(u128, Instant)>,
}

impl Entry {
    fn new(now: Instant) -> Entry {
        Entry {
            failures: 0,
            window_start: now,
            limited_until: None,
            last_used: now,
            good: Vec::new(),
        }
    }

    fn limited(&self, now: Instant) -> Option<Duration> {
        self.limited_until
            .filter(|u| *u > now)
            .map(|u| u.saturating_duration_since(now))
    }

    /// Nothing left worth keeping: no failures in the window, no limit, no good address.
    fn stale(&self, now: Instant, window: Duration) -> bool {
        self.limited(now).is_none()
            && now.saturating_duration_since(self.window_start) >= window
            && self
                .good
                .iter()
                .all(|(_, t)| now.saturating_duration_since(*t) >= GOOD_MEMORY)
    }
}

/// A refusal because a key is limited: retry after this many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// Seconds until the limit ends (at least 1).
    pub retry_after: u64,
    /// Which limit: `"address"` or `"account"`.
    pub kind: &'static str,
}

/// The table of failed password checks. Cheap to consult; every operation is one mutex
/// acquisition and at most one scan of the table when it is full.
#[derive(Debug)]
pub struct PasswordLimiter {
    cfg: PasswordLimits,
    hasher: std::collections::hash_map::RandomState,
    table: Mutex<HashMap<Key, Entry>>,
}

/// The address key: an IPv4 address (also when mapped into IPv6), or an IPv6 /64.
fn address_key(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) | (1u128 << 127),
        IpAddr::V6(v6) => u128::from(v6) & !((1u128 << 64) - 1),
    }
}

impl PasswordLimiter {
    /// A limiter with these settings.
    pub fn new(cfg: PasswordLimits) -> PasswordLimiter {
        PasswordLimiter {
            cfg,
            hasher: std::collections::hash_map::RandomState::new(),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &PasswordLimits {
        &self.cfg
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.cfg.window_seconds)
    }

    fn account_key(&self, label: &str, user: &str) -> Key {
        Key::Account(self.hasher.hash_one((label, user)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding the lock leaves counters, not invariants: keep going.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of tracked keys (for tests and health figures).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// May this address try a password for this account now? Consults only; a refusal
    /// costs no hashing.
    pub fn check(&self, label: &str, user: &str, ip: IpAddr, now: Instant) -> Result<(), Limited> {
        let addr = address_key(ip);
        let table = self.lock();
        let refuse = |d: Duration, kind| Limited {
            retry_after: (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1),
            kind,
        };
        if let Some(d) = table.get(&Key::Address(addr)).and_then(|e| e.limited(now)) {
            return Err(refuse(d, "address"));
        }
        if let Some(e) = table.get(&self.account_key(label, user))
            && let Some(d) = e.limited(now)
            && !e
                .good
                .iter()
                .any(|(a, t)| *a == addr && now.saturating_duration_since(*t) < GOOD_MEMORY)
        {
            return Err(refuse(d, "account"));
        }
        Ok(())
    }

    /// Counts a wrong password (or unknown user) from this address for this account.
    /// Returns the limits this failure set off (for a log line; they are logged once).
    pub fn failed(&self, label: &str, user: &str, ip: IpAddr, now: Instant) -> Vec<&'static str> {
        let window = self.window();
        let mut table = self.lock();
        let mut tripped = Vec::new();
        for (key, limit, kind) in [
            (
                Key::Address(address_key(ip)),
                self.cfg.address_failures,
                "address",
            ),
            (
                self.account_key(label, user),
                self.cfg.account_failures,
                "account",
            ),
        ] {
            let e = self.entry(&mut table, key, now);
            if now.saturating_duration_since(e.window_start) >= window {
                e.failures = 0;
                e.window_start = now;
            }
            e.failures = e.failures.saturating_add(1);
            e.last_used = now;
            if e.failures >= limit {
                if e.limited(now).is_none() {
                    tripped.push(kind);
                }
                e.limited_until = Some(now + window);
            }
        }
        tripped
    }

    /// Records a successful login: the address is remembered as a client of the account.
    /// Counters are not reset (an attacker who also holds a password must not be able to
    /// clear the count of their guesses on another).
    pub fn succeeded(&self, label: &str, user: &str, ip: IpAddr, now: Instant) {
        let addr = address_key(ip);
        let mut table = self.lock();
        let key = self.account_key(label, user);
        let e = self.entry(&mut table, key, now);
        e.last_used = now;
        e.good
            .retain(|(a, t)| *a != addr && now.saturating_duration_since(*t) < GOOD_MEMORY);
        if e.good.len() >= GOOD_ADDRESSES {
            e.good.remove(0);
        }
        e.good.push((addr, now));
    }

    /// The entry for `key`, made room for when the table is full: expired entries are
    /// dropped first, then the least recently used one that is not limited (so that an
    /// attacker who fills the table with fresh addresses does not lift its own limits),
    /// and only when every entry is limited the least recently used of all.
    fn entry<'a>(
        &self,
        table: &'a mut HashMap<Key, Entry>,
        key: Key,
        now: Instant,
    ) -> &'a mut Entry {
        if !table.contains_key(&key) && table.len() >= self.cfg.max_entries {
            let window = self.window();
            table.retain(|_, e| !e.stale(now, window));
            if table.len() >= self.cfg.max_entries
                && let Some(oldest) = table
                    .iter()
                    .min_by_key(|(_, e)| (e.limited(now).is_some(), e.last_used))
                    .map(|(k, _)| *k)
            {
                table.remove(&oldest);
            }
        }
        table.entry(key).or_insert_with(|| Entry::new(now))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limits(address: u32, account: u32, max_entries: usize) -> PasswordLimits {
        PasswordLimits {
            address_failures: address,
            account_failures: account,
            window_seconds: 60,
            max_entries,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_limited_after_its_failures_and_others_are_not() {
        let l = PasswordLimiter::new(limits(3, 100, 1000));
        let t = Instant::now();
        let a = ip("192.0.2.1");
        for i in 0..3 {
            assert!(l.check("ep", "alice", a, t).is_ok(), "attempt {i}");
            l.failed("ep", "alice", a, t);
        }
        let e = l.check("ep", "alice", a, t).unwrap_err();
        assert_eq!((e.kind, e.retry_after), ("address", 60));
        // Any account from that address is refused; another address is not.
        assert!(l.check("ep", "bob", a, t).is_err());
        assert!(l.check("ep", "alice", ip("192.0.2.2"), t).is_ok());
        // The same /64 is the same address; another /64 is not.
        let v6 = ip("2001:db8:1:2::1");
        for _ in 0..3 {
            l.failed("ep", "alice", v6, t);
        }
        assert!(l.check("ep", "x", ip("2001:db8:1:2:ffff::9"), t).is_err());
        assert!(l.check("ep", "x", ip("2001:db8:1:3::1"), t).is_ok());
        // The limit ends a window after the failure that set it off.
        let later = t + Duration::from_secs(30);
        assert_eq!(
            l.check("ep", "alice", a, later).unwrap_err().retry_after,
            30
        );
        assert!(
            l.check("ep", "alice", a, t + Duration::from_secs(61))
                .is_ok()
        );
    }

    #[test]
    fn an_account_is_limited_except_for_its_known_clients() {
        let l = PasswordLimiter::new(limits(100, 5, 1000));
        let t = Instant::now();
        let known = ip("198.51.100.7");
        l.succeeded("ep", "alice", known, t);
        // A distributed guess: one failure from each of five addresses.
        for i in 0..5u8 {
            l.failed("ep", "alice", IpAddr::from([203, 0, 113, i]), t);
        }
        let e = l.check("ep", "alice", ip("203.0.113.200"), t).unwrap_err();
        assert_eq!(e.kind, "account");
        // The account's known client still gets its password checked.
        assert!(l.check("ep", "alice", known, t).is_ok());
        // Other accounts, and the same user name on another endpoint, are not limited.
        assert!(l.check("ep", "bob", ip("203.0.113.200"), t).is_ok());
        assert!(l.check("other", "alice", ip("203.0.113.200"), t).is_ok());
        // An unknown user name is limited exactly like a known one.
        for i in 0..5u8 {
            l.failed("ep", "nobody", IpAddr::from([203, 0, 113, 100 + i]), t);
        }
        assert_eq!(
            l.check("ep", "nobody", ip("203.0.113.201"), t)
                .unwrap_err()
                .kind,
            "account"
        );
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let l = PasswordLimiter::new(limits(3, 100, 1000));
        let t = Instant::now();
        let a = ip("192.0.2.1");
        l.failed("ep", "u", a, t);
        l.failed("ep", "u", a, t);
        l.failed("ep", "u", a, t + Duration::from_secs(61));
        assert!(l.check("ep", "u", a, t + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_active_limits() {
        let l = PasswordLimiter::new(limits(3, 3, 64));
        let t = Instant::now();
        let attacker = ip("192.0.2.66");
        for _ in 0..3 {
            l.failed("ep", "alice", attacker, t);
        }
        // 10,000 other addresses with random user names, one failure each, later.
        for i in 0..10_000u32 {
            let a = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            let now = t + Duration::from_millis(u64::from(i));
            l.failed("ep", &format!("user{i}"), a, now);
            assert!(l.len() <= 64, "{} entries", l.len());
        }
        assert!(l.len() <= 64);
        // The flood did not evict the attacker's limits.
        let now = t + Duration::from_secs(11);
        assert_eq!(
            l.check("ep", "bob", attacker, now).unwrap_err().kind,
            "address"
        );
        assert_eq!(
            l.check("ep", "alice", ip("192.0.2.77"), now)
                .unwrap_err()
                .kind,
            "account"
        );
    }
}
