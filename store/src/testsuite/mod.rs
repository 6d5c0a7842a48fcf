//! The contract every [`Store`] backend must pass (behind the `testsuite` feature).
//!
//! The cases use only the [`Store`] trait and a [`TestDatabase`]: a fresh, empty database
//! that can be opened more than once, so that a case can check what survives a reopen.
//! They assume nothing of redb (no file paths, no tables), so the PostgreSQL backend of a
//! later issue runs them unchanged: `store::store_suite!(|| MyDatabase::new())` in a test
//! file stamps out one `#[test]` per case. The helpers ([`event`], [`record`], [`issue`],
//! ...) build the records the cases use, for backend-specific tests too.
//!
//! This is a feature of the library rather than a file under `tests/` because a backend
//! that lives in another crate (or behind another feature) must be able to call it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;

// The cases were written against the crate from outside; `store::…` paths keep reading so.
use crate as store;
use crate::{
    AuditEntry, AuditEvent, CertFilter, CertRecord, CertStatus, Error, PendingRequest,
    PendingState, Revocation, Store, StoredCrl,
};

/// A fresh, empty database under test, created for one case.
pub trait TestDatabase {
    /// Opens a handle on the database: the same data every time (a reopen after a
    /// restart). The cases drop every handle they opened before they open another.
    fn open(&self) -> Arc<dyn Store>;
}

/// Stamps out one `#[test]` per case of [`testsuite`](crate::testsuite). `$factory` is
/// called once per case and returns a fresh, empty [`TestDatabase`].
#[macro_export]
macro_rules! store_suite {
    (@names $how:ident $factory:expr) => {
        $crate::store_suite!(@cases $how $factory,
            reserve_record_get_roundtrip,
            double_reserve_conflicts,
            record_without_reservation_conflicts,
            record_for_another_issuer_conflicts,
            double_record_conflicts,
            malformed_serials_are_invalid,
            revoke_updates_record_and_index,
            revoke_unknown_is_not_found,
            revoke_twice_conflicts,
            for_each_revoked_is_per_issuer_and_propagates_errors,
            crl_numbers_start_at_one_and_increase_per_issuer,
            put_and_latest_crl,
            audit_append_and_paging,
            pending_requests_lifecycle,
            stats_count,
            count_expiring_per_window,
            api_tokens_are_made_once_and_updated,
            service_state_is_kept_per_namespace,
            list_filters,
            persistence_across_reopen,
            one_time_challenges_are_consumed_once_even_concurrently,
            an_issuance_binding_commits_with_its_certificate_or_not_at_all,
            pages_cover_every_record_once_with_bounded_pages,
            key_compromise_blocks_the_key_in_the_revocation_commit,
            invalidity_dates_are_stored_and_listed,
            hold_release_and_permanent_revocation,
            the_key_index_finds_every_certificate_of_a_key,
            list_pages_agree_with_a_scan_for_every_filter
        );
    };
    (@cases run $factory:expr, $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let db = ($factory)();
                $crate::testsuite::$case(&db);
            }
        )*
    };
    (@cases skip $factory:expr, $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let Some(db) = ($factory)() else { return };
                $crate::testsuite::$case(&db);
            }
        )*
    };
    // `$factory` returns an `Option` of a database: `None` skips the case (a backend
    // whose server is not installed here).
    (skip_unless $factory:expr) => {
        $crate::store_suite!(@names skip $factory);
    };
    ($factory:expr) => {
        $crate::store_suite!(@names run $factory);
    };
}

/// Stamps out one `#[test]` per case of the ACME records contract
/// ([`crate::acme::AcmeStore`], whose backends answer `Some` from [`Store::acme`]); a
/// separate macro so that a backend without ACME records keeps passing
/// [`store_suite!`](crate::store_suite).
#[macro_export]
macro_rules! acme_store_suite {
    (@names $how:ident $factory:expr) => {
        $crate::store_suite!(@cases $how $factory,
            acme_eab_key_binds_exactly_one_account,
            acme_accounts_are_unique_per_key_and_durable,
            acme_orders_move_on_exactly_once
        );
    };
    // `$factory` returns an `Option`: `None` skips the case.
    (skip_unless $factory:expr) => {
        $crate::acme_store_suite!(@names skip $factory);
    };
    ($factory:expr) => {
        $crate::acme_store_suite!(@names run $factory);
    };
}

/// An audit event `action` on `subject` at a fixed time.
pub fn event(action: &str, subject: &str) -> AuditEvent {
    AuditEvent {
        time: 1_700_000_000,
        action: action.into(),
        actor: "tester".into(),
        subject: subject.into(),
        detail: format!("{action} {subject}"),
    }
}

/// A valid certificate record of `serial` from `issuer` expiring at `not_after`.
pub fn record(serial: &[u8], issuer: &str, not_after: i64) -> CertRecord {
    CertRecord {
        serial: serial.to_vec(),
        issuer: issuer.into(),
        subject: format!("CN=host-{}.example", hex::encode(serial)),
        sans: vec![format!("DNS:host-{}.example", hex::encode(serial))],
        profile: "server".into(),
        requester: "tester".into(),
        not_before: 1_700_000_000,
        not_after,
        issued_at: 1_700_000_000,
        status: CertStatus::Valid,
        revocation: None,
        spki_sha256: key_hash(serial),
        der: vec![0x30, 0x03, 0x02, 0x01, serial[0]],
    }
}

/// A stand-in SPKI hash (32 octets) for the key named `seed`: the [`record`] of a serial
/// has the key `key_hash(serial)`, so every record has a key of its own unless a case
/// gives two the same.
pub fn key_hash(seed: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(seed).to_vec()
}

/// Reserves and records `r`; returns its audit sequence number.
pub fn issue(store: &dyn Store, r: &CertRecord) -> u64 {
    store.reserve_serial(&r.serial, &r.issuer).unwrap();
    store
        .record_issuance(r, &event("issue", &hex::encode(&r.serial)))
        .unwrap()
}

/// A pending SCEP request found by `key`.
pub fn pending(key: &str) -> PendingRequest {
    PendingRequest {
        id: 0,
        lookup_key: key.into(),
        endpoint: "scep/default".into(),
        profile: "device".into(),
        requester: "scep:default".into(),
        csr_der: vec![0x30, 0x00],
        created_at: 1_700_000_000,
        state: PendingState::Pending,
        serial: None,
        note: None,
    }
}

/// A stored CRL numbered `number`.
pub fn crl(number: u64) -> StoredCrl {
    StoredCrl {
        number,
        this_update: 1_700_000_000,
        next_update: 1_700_086_400,
        der: vec![0x30, 0x01, number as u8],
    }
}

/// An unused one-time challenge of `endpoint` expiring at `expires_at`.
pub fn challenge(hash: &[u8], endpoint: &str, expires_at: i64) -> store::OneTimeChallenge {
    store::OneTimeChallenge {
        hash: hash.to_vec(),
        endpoint: endpoint.into(),
        created_by: "admin".into(),
        created_at: 1000,
        expires_at,
        used_at: None,
        used_for: None,
    }
}

/// An issuance binding: replay key, one transaction key, and optionally a challenge (hash,
/// endpoint, time) to spend.
pub fn bound(
    replay: &str,
    tx: &str,
    challenge: Option<(&[u8], &str, i64)>,
) -> store::IssuanceBinding {
    store::IssuanceBinding {
        replay_key: Some(replay.into()),
        transaction_keys: vec![tx.into()],
        challenge: challenge.map(|(hash, endpoint, now)| store::ChallengeUse {
            hash: hash.to_vec(),
            endpoint: endpoint.into(),
            now,
            audit: event("challenge-use", endpoint),
        }),
    }
}

mod acme;
mod certificates;
mod durability;
mod lifecycle;
#[cfg(feature = "postgres")]
pub mod pg_cluster;
mod records;

pub use acme::*;
pub use certificates::*;
pub use durability::*;
pub use lifecycle::*;
pub use records::*;
