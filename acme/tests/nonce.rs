//! Nonces (RFC 8555 §6.5): issued by one node and redeemed by another, once; expired,
//! forged, truncated and missing nonces refused as `badNonce`; the ledger bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use acme::Error;
use acme::jws::{b64_decode, b64_encode};
use acme::nonce::{MemoryLedger, NonceId, NonceLedger, Nonces};

const KEY: [u8; 32] = [0x42; 32];
const T0: i64 = 1_800_000_000;

/// One ledger shared by two nodes, as the store will be.
struct Shared(Arc<MemoryLedger>);

impl NonceLedger for Shared {
    fn redeem(&self, id: NonceId, expires: i64, now: i64) -> bool {
        self.0.redeem(id, expires, now)
    }
}

fn bad_nonce(r: acme::Result<()>) -> String {
    match r {
        Err(e @ Error::BadNonce(_)) => {
            assert_eq!(e.problem_type(), "urn:ietf:params:acme:error:badNonce");
            e.to_string()
        }
        other => panic!("expected badNonce, got {other:?}"),
    }
}

#[test]
fn a_nonce_from_one_node_is_redeemed_once_on_another() {
    let ledger = Arc::new(MemoryLedger::default());
    let a = Nonces::new(&KEY, 600, Shared(ledger.clone())).unwrap();
    let b = Nonces::new(&KEY, 600, Shared(ledger.clone())).unwrap();
    let n = a.issue(T0).unwrap();
    b.redeem(Some(&n), T0 + 5).unwrap();
    assert!(bad_nonce(a.redeem(Some(&n), T0 + 6)).contains("already used"));
    assert!(bad_nonce(b.redeem(Some(&n), T0 + 6)).contains("already used"));
    // Nonces are distinct.
    assert_ne!(a.issue(T0).unwrap(), a.issue(T0).unwrap());
}

#[test]
fn forged_expired_and_missing_nonces_are_refused() {
    let n = Nonces::new(&KEY, 600, MemoryLedger::default()).unwrap();
    let good = n.issue(T0).unwrap();
    assert!(bad_nonce(n.redeem(None, T0)).contains("no nonce"));
    assert!(bad_nonce(n.redeem(Some(&good), T0 + 600)).contains("expired"));
    // Issued "in the future" beyond the tolerated clock difference.
    let future = n.issue(T0 + 120).unwrap();
    assert!(bad_nonce(n.redeem(Some(&future), T0)).contains("expired"));
    // Another deployment's key; a flipped bit; a truncated or padded one; not base64url.
    let other = Nonces::new(&[0x43; 32], 600, MemoryLedger::default()).unwrap();
    assert!(bad_nonce(n.redeem(Some(&other.issue(T0).unwrap()), T0)).contains("not one"));
    let mut raw = b64_decode("n", &good).unwrap();
    raw[0] ^= 1; // the issue time: the tag no longer matches, so the age cannot be forged
    assert!(bad_nonce(n.redeem(Some(&b64_encode(&raw)), T0)).contains("not one"));
    assert!(bad_nonce(n.redeem(Some(&good[..good.len() - 2]), T0)).contains("not one"));
    assert!(bad_nonce(n.redeem(Some(&format!("{good}=")), T0)).contains("not one"));
    assert!(bad_nonce(n.redeem(Some("!!"), T0)).contains("not one"));
    // None of the refusals spent the good nonce.
    n.redeem(Some(&good), T0 + 1).unwrap();
    // A key under 32 bytes is refused.
    assert!(Nonces::new(&[1; 31], 600, MemoryLedger::default()).is_err());
}

#[test]
fn the_ledger_is_bounded_and_never_lets_a_forgotten_nonce_through() {
    let ledger = Arc::new(MemoryLedger::new(4));
    let n = Nonces::new(&KEY, 600, Shared(ledger.clone())).unwrap();
    let first: Vec<String> = (0..4).map(|i| n.issue(T0 + i).unwrap()).collect();
    let later = n.issue(T0 + 10).unwrap();
    for (i, x) in first.iter().enumerate() {
        n.redeem(Some(x), T0 + 20 + i as i64).unwrap();
    }
    assert_eq!(ledger.len(), 4);
    // A fifth redemption evicts the oldest; the ledger stays at its bound, and the
    // evicted nonce (and anything expiring no later) is refused from now on.
    let fifth = n.issue(T0 + 5).unwrap();
    n.redeem(Some(&fifth), T0 + 30).unwrap();
    assert_eq!(ledger.len(), 4);
    assert!(bad_nonce(n.redeem(Some(&first[0]), T0 + 31)).contains("already used"));
    // A nonce issued later than the forgotten one is still accepted once.
    n.redeem(Some(&later), T0 + 32).unwrap();
    assert!(bad_nonce(n.redeem(Some(&later), T0 + 33)).contains("already used"));
    // Expired entries are dropped.
    let fresh = n.issue(T0 + 700).unwrap();
    n.redeem(Some(&fresh), T0 + 700).unwrap();
    assert_eq!(ledger.len(), 1);
}

#[test]
fn a_share_of_good_nonces_can_be_refused_for_tests() {
    let n = Nonces::new(&KEY, 600, MemoryLedger::default())
        .unwrap()
        .with_rejection(4);
    let refused = (0..400)
        .filter(|_| n.redeem(Some(&n.issue(T0).unwrap()), T0).is_err())
        .count();
    // About one in four; the bounds are wide enough that this never fails by chance
    // (binomial, n=400, p=0.25: mean 100, sd 8.7).
    assert!((40..=160).contains(&refused), "{refused} of 400 refused");
}

#[test]
fn a_nonce_refused_on_purpose_is_never_followed_by_another() {
    // A client that retries once after badNonce (RFC 8555 §6.5) always gets through.
    let n = Nonces::new(&KEY, 600, MemoryLedger::default())
        .unwrap()
        .with_rejection(2);
    let outcomes: Vec<bool> = (0..400)
        .map(|_| n.redeem(Some(&n.issue(T0).unwrap()), T0).is_err())
        .collect();
    assert!(outcomes.iter().filter(|r| **r).count() > 50);
    assert!(
        !outcomes.windows(2).any(|w| w[0] && w[1]),
        "two refusals in a row"
    );
}
