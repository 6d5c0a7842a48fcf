//! Anti-replay nonces (RFC 8555 §6.5), issued and redeemed so that any privca node of a
//! deployment can redeem a nonce another node gave out.
//!
//! A nonce is `base64url(time ‖ random ‖ tag)`: the issue time (8 bytes, Unix seconds,
//! big-endian), 16 random bytes, and the first 16 bytes of HMAC-SHA-256 over both under the
//! deployment's nonce key. Any node holding the key checks that a nonce is genuine and
//! fresh without a lookup; that it is used once is the [`NonceLedger`]'s job, which only
//! has to remember a nonce until it would have expired anyway. On one node the ledger is
//! in memory ([`MemoryLedger`]); across nodes it is the shared store.
//!
//! Every refusal is `badNonce` (RFC 8555 §6.7), which clients answer by retrying with the
//! nonce of the error response. [`Nonces::with_rejection`] refuses a share of good nonces
//! on purpose, as the reference test server does, so that tests exercise those retries.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::jws::{b64_decode, b64_encode};
use crate::{Error, Result};

/// How long a nonce stays redeemable (seconds). Clients use a nonce for their next request,
/// but certbot and lego keep the last one across polling waits of a few seconds to minutes.
pub const DEFAULT_LIFETIME: i64 = 15 * 60;

/// The most nonces a [`MemoryLedger`] remembers. At the limit the oldest are forgotten
/// *and refused* (their redemption fails as `badNonce`), so memory stays bounded and no
/// nonce can ever be redeemed twice.
pub const DEFAULT_LEDGER_ENTRIES: usize = 1 << 20;

const TIME_LEN: usize = 8;
const RANDOM_LEN: usize = 16;
const TAG_LEN: usize = 16;
const NONCE_LEN: usize = TIME_LEN + RANDOM_LEN + TAG_LEN;

/// The identity of a redeemed nonce, as a ledger keeps it.
pub type NonceId = [u8; RANDOM_LEN];

/// Remembers which nonces were redeemed, until they expire.
pub trait NonceLedger: Send + Sync {
    /// Records `id` as redeemed until `expires` (Unix seconds). True if it was not
    /// redeemed before and is now; false if it was, or if the ledger cannot vouch for it.
    fn redeem(&self, id: NonceId, expires: i64, now: i64) -> bool;
}

/// Issues and redeems the nonces of one deployment (RFC 8555 §6.5).
pub struct Nonces<L> {
    key: hmac::Key,
    lifetime: i64,
    ledger: L,
    /// Refuse one good nonce in `reject_every` (0: never); tests only.
    reject_every: u32,
    /// Whether the last redemption was refused on purpose.
    refused_last: std::sync::atomic::AtomicBool,
    rng: SystemRandom,
}

impl<L: NonceLedger> Nonces<L> {
    /// Nonces under `key` (the deployment's nonce key, at least 32 bytes, the same on every
    /// node), redeemable for `lifetime` seconds, redeemed once through `ledger`.
    pub fn new(key: &[u8], lifetime: i64, ledger: L) -> Result<Self> {
        if key.len() < 32 {
            return Err(Error::malformed("the nonce key must be at least 32 bytes"));
        }
        Ok(Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            lifetime,
            ledger,
            reject_every: 0,
            refused_last: std::sync::atomic::AtomicBool::new(false),
            rng: SystemRandom::new(),
        })
    }

    /// Refuses, on purpose, about one good nonce in `every` (as pebble's
    /// `PEBBLE_WFE_NONCEREJECT` does) so that tests see clients retry on `badNonce`.
    pub fn with_rejection(mut self, every: u32) -> Self {
        self.reject_every = every;
        self
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_LEN] {
        let full = hmac::sign(&self.key, body);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full.as_ref()[..TAG_LEN]);
        tag
    }

    /// A fresh nonce, for the `Replay-Nonce` header of every response (RFC 8555 §6.5).
    pub fn issue(&self, now: i64) -> Result<String> {
        let mut raw = [0u8; NONCE_LEN];
        raw[..TIME_LEN].copy_from_slice(&now.to_be_bytes());
        self.rng
            .fill(&mut raw[TIME_LEN..TIME_LEN + RANDOM_LEN])
            .map_err(|_| Error::malformed("no randomness for a nonce"))?;
        let tag = self.tag(&raw[..TIME_LEN + RANDOM_LEN]);
        raw[TIME_LEN + RANDOM_LEN..].copy_from_slice(&tag);
        Ok(b64_encode(&raw))
    }

    /// Redeems `nonce` (the protected header's `nonce`), once. Anything but a genuine,
    /// unexpired, unused nonce is `badNonce`; a missing one too (RFC 8555 §6.5.2).
    pub fn redeem(&self, nonce: Option<&str>, now: i64) -> Result<()> {
        let bad = |why: &str| Err(Error::BadNonce(why.to_owned()));
        let Some(nonce) = nonce else {
            return bad("the request has no nonce");
        };
        let Ok(raw) = b64_decode("the nonce", nonce) else {
            return bad("the nonce is not one this server issued");
        };
        if raw.len() != NONCE_LEN {
            return bad("the nonce is not one this server issued");
        }
        let (body, tag) = raw.split_at(TIME_LEN + RANDOM_LEN);
        // The tag is a truncated HMAC, so it is recomputed and compared in constant time.
        let expected = self.tag(body);
        if aws_lc_rs::constant_time::verify_slices_are_equal(&expected, tag).is_err() {
            return bad("the nonce is not one this server issued");
        }
        let mut time = [0u8; TIME_LEN];
        time.copy_from_slice(&body[..TIME_LEN]);
        let issued = i64::from_be_bytes(time);
        let expires = issued.saturating_add(self.lifetime);
        // A minute of clock difference between the nodes of a deployment is tolerated.
        if now >= expires || issued > now.saturating_add(60) {
            return bad("the nonce has expired");
        }
        let mut id = [0u8; RANDOM_LEN];
        id.copy_from_slice(&body[TIME_LEN..]);
        if !self.ledger.redeem(id, expires, now) {
            return bad("the nonce was already used");
        }
        if self.reject_every > 0 {
            let mut draw = [0u8; 4];
            self.rng
                .fill(&mut draw)
                .map_err(|_| Error::BadNonce("no randomness".into()))?;
            // Never twice in a row: a client that retries once (as certbot does) always
            // gets through, so the tests that use this are not flaky.
            let refuse = u32::from_be_bytes(draw) % self.reject_every == 0
                && !self
                    .refused_last
                    .swap(true, std::sync::atomic::Ordering::SeqCst);
            if refuse {
                return bad("the nonce was refused on purpose (test setting)");
            }
            self.refused_last
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }
}

/// A bounded in-memory [`NonceLedger`] for a single node.
pub struct MemoryLedger {
    inner: Mutex<LedgerInner>,
    capacity: usize,
}

#[derive(Default)]
struct LedgerInner {
    /// Redeemed nonce → its expiry.
    redeemed: HashMap<NonceId, i64>,
    /// Redemptions oldest first, for expiry and eviction.
    order: VecDeque<(i64, NonceId)>,
    /// Nonces issued before this time may have been forgotten at the capacity limit,
    /// so they are refused.
    floor: i64,
}

impl MemoryLedger {
    /// A ledger that remembers at most `capacity` redeemed nonces.
    pub fn new(capacity: usize) -> Self {
        MemoryLedger {
            inner: Mutex::new(LedgerInner::default()),
            capacity: capacity.max(1),
        }
    }

    /// The nonces remembered now.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.redeemed.len()).unwrap_or(0)
    }

    /// Whether it remembers none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for MemoryLedger {
    fn default() -> Self {
        MemoryLedger::new(DEFAULT_LEDGER_ENTRIES)
    }
}

impl NonceLedger for MemoryLedger {
    fn redeem(&self, id: NonceId, expires: i64, now: i64) -> bool {
        let Ok(mut g) = self.inner.lock() else {
            return false;
        };
        // Forget what has expired: an expired nonce is refused before the ledger is asked.
        while let Some(&(exp, old)) = g.order.front() {
            if exp > now {
                break;
            }
            g.order.pop_front();
            g.redeemed.remove(&old);
        }
        if expires <= g.floor || g.redeemed.contains_key(&id) {
            return false;
        }
        while g.redeemed.len() >= self.capacity {
            let Some((exp, old)) = g.order.pop_front() else {
                break;
            };
            g.redeemed.remove(&old);
            // Anything expiring no later than a forgotten nonce may have been forgotten
            // too: refuse it from now on.
            g.floor = g.floor.max(exp);
        }
        g.redeemed.insert(id, expires);
        g.order.push_back((expires, id));
        true
    }
}
