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
    ($factory:expr) => {
        $crate::store_suite!(@cases $factory,
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
            list_filters,
            persistence_across_reopen,
            one_time_challenges_are_consumed_once_even_concurrently,
            an_issuance_binding_commits_with_its_certificate_or_not_at_all,
            pages_cover_every_record_once_with_bounded_pages
        );
    };
    (@cases $factory:expr, $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let db = ($factory)();
                $crate::testsuite::$case(&db);
            }
        )*
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
        der: vec![0x30, 0x03, 0x02, 0x01, serial[0]],
    }
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

/// A reserved serial is recorded and read back as written, with its audit entry (seq 1).
pub fn reserve_record_get_roundtrip(db: &dyn TestDatabase) {
    let store = db.open();
    let r = record(&[0x01, 0x02], "ca", 1_800_000_000);
    assert!(store.get_cert(&r.serial).unwrap().is_none());
    let seq = issue(&*store, &r);
    assert_eq!(seq, 1);
    assert_eq!(store.get_cert(&r.serial).unwrap(), Some(r.clone()));
    let entries = store.audit_entries(1, 10).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].event.action, "issue");
}

/// A serial is reserved once, for any issuer, and never again after it was used (RFC 5280
/// §4.1.2.2: unique per CA; docs/architecture.md, serials).
pub fn double_reserve_conflicts(db: &dyn TestDatabase) {
    let store = db.open();
    store.reserve_serial(&[7], "ca").unwrap();
    assert!(matches!(
        store.reserve_serial(&[7], "ca"),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store.reserve_serial(&[7], "other"),
        Err(Error::Conflict(_))
    ));
    // Still refused after the serial was used.
    store
        .record_issuance(&record(&[7], "ca", 1), &event("issue", "07"))
        .unwrap();
    assert!(matches!(
        store.reserve_serial(&[7], "ca"),
        Err(Error::Conflict(_))
    ));
}

/// Recording an unreserved serial is a conflict that writes nothing, not even audit.
pub fn record_without_reservation_conflicts(db: &dyn TestDatabase) {
    let store = db.open();
    let r = record(&[9], "ca", 1);
    assert!(matches!(
        store.record_issuance(&r, &event("issue", "09")),
        Err(Error::Conflict(_))
    ));
    assert!(store.get_cert(&[9]).unwrap().is_none());
    assert_eq!(
        store.stats().unwrap().audit_entries,
        0,
        "refusal leaves no audit entry"
    );
}

/// A serial reserved for one issuer cannot be recorded for another.
pub fn record_for_another_issuer_conflicts(db: &dyn TestDatabase) {
    let store = db.open();
    store.reserve_serial(&[9], "ca-a").unwrap();
    let r = record(&[9], "ca-b", 1);
    assert!(matches!(
        store.record_issuance(&r, &event("issue", "09")),
        Err(Error::Conflict(_))
    ));
}

/// A serial is recorded once; the second record is refused and the first kept.
pub fn double_record_conflicts(db: &dyn TestDatabase) {
    let store = db.open();
    let r = record(&[3], "ca", 1);
    issue(&*store, &r);
    let mut again = r.clone();
    again.subject = "CN=other".into();
    assert!(matches!(
        store.record_issuance(&again, &event("issue", "03")),
        Err(Error::Conflict(_))
    ));
    assert_eq!(store.get_cert(&[3]).unwrap(), Some(r));
    assert_eq!(store.stats().unwrap().audit_entries, 1);
}

/// Serials of 0 or more than 20 octets are invalid (RFC 5280 §4.1.2.2).
pub fn malformed_serials_are_invalid(db: &dyn TestDatabase) {
    let store = db.open();
    assert!(matches!(
        store.reserve_serial(&[], "ca"),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        store.reserve_serial(&[1; 21], "ca"),
        Err(Error::Invalid(_))
    ));
    store.reserve_serial(&[1; 20], "ca").unwrap();
}

/// Revocation updates the record and the per-issuer revocation index, counted in the stats.
pub fn revoke_updates_record_and_index(db: &dyn TestDatabase) {
    let store = db.open();
    let r = record(&[5], "ca", 1_800_000_000);
    issue(&*store, &r);
    let rev = Revocation {
        time: 1_700_000_500,
        reason: 1,
    };
    let revoked = store.revoke(&[5], rev, &event("revoke", "05")).unwrap();
    assert_eq!(revoked.status, CertStatus::Revoked);
    assert_eq!(revoked.revocation, Some(rev));
    assert_eq!(revoked.der, r.der);
    assert_eq!(store.get_cert(&[5]).unwrap(), Some(revoked));

    let mut seen = Vec::new();
    store
        .for_each_revoked("ca", &mut |e| {
            seen.push(e);
            Ok(())
        })
        .unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].serial, vec![5]);
    assert_eq!(seen[0].revocation, rev);
    let stats = store.stats().unwrap();
    assert_eq!(
        (stats.certificates, stats.revoked, stats.audit_entries),
        (1, 1, 2)
    );
}

/// Revoking an unknown (or only reserved) serial is not found and writes nothing.
pub fn revoke_unknown_is_not_found(db: &dyn TestDatabase) {
    let store = db.open();
    let rev = Revocation { time: 1, reason: 0 };
    assert!(matches!(
        store.revoke(&[1], rev, &event("revoke", "01")),
        Err(Error::NotFound(_))
    ));
    // Reserved but never recorded is unknown too.
    store.reserve_serial(&[2], "ca").unwrap();
    assert!(matches!(
        store.revoke(&[2], rev, &event("revoke", "02")),
        Err(Error::NotFound(_))
    ));
    assert_eq!(store.stats().unwrap().audit_entries, 0);
}

/// A certificate is revoked once; the first revocation's facts are kept.
pub fn revoke_twice_conflicts(db: &dyn TestDatabase) {
    let store = db.open();
    issue(&*store, &record(&[4], "ca", 1));
    let first = Revocation {
        time: 10,
        reason: 1,
    };
    store.revoke(&[4], first, &event("revoke", "04")).unwrap();
    let second = Revocation {
        time: 20,
        reason: 4,
    };
    assert!(matches!(
        store.revoke(&[4], second, &event("revoke", "04")),
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store.get_cert(&[4]).unwrap().unwrap().revocation,
        Some(first)
    );
    assert_eq!(store.stats().unwrap().audit_entries, 2);
}

/// The revocation scan is per issuer (names that prefix each other stay apart), in serial order,
/// and stops at the callback's first error.
pub fn for_each_revoked_is_per_issuer_and_propagates_errors(db: &dyn TestDatabase) {
    let store = db.open();
    // Issuer names that prefix each other must not leak into each other's scan.
    for (i, issuer) in ["ca", "ca-sub", "c", "cb"].iter().enumerate() {
        for j in 0..3u8 {
            let serial = [u8::try_from(i).unwrap() * 10 + j + 1];
            issue(&*store, &record(&serial, issuer, 1));
            store
                .revoke(
                    &serial,
                    Revocation { time: 1, reason: 0 },
                    &event("revoke", "x"),
                )
                .unwrap();
        }
    }
    let collect = |issuer: &str| {
        let mut v = Vec::new();
        store
            .for_each_revoked(issuer, &mut |e| {
                v.push(e.serial[0]);
                Ok(())
            })
            .unwrap();
        v
    };
    assert_eq!(collect("ca"), vec![1, 2, 3]);
    assert_eq!(collect("ca-sub"), vec![11, 12, 13]);
    assert_eq!(collect("c"), vec![21, 22, 23]);
    assert_eq!(collect("cb"), vec![31, 32, 33]);
    assert!(collect("nobody").is_empty());

    let mut calls = 0;
    let result = store.for_each_revoked("ca", &mut |_| {
        calls += 1;
        Err(Error::Corrupt("stop".into()))
    });
    assert!(matches!(result, Err(Error::Corrupt(m)) if m == "stop"));
    assert_eq!(calls, 1);
}

/// cRLNumbers start at 1 and increase per issuer (RFC 5280 §5.2.3).
pub fn crl_numbers_start_at_one_and_increase_per_issuer(db: &dyn TestDatabase) {
    let store = db.open();
    assert_eq!(store.next_crl_number("a").unwrap(), 1);
    assert_eq!(store.next_crl_number("a").unwrap(), 2);
    assert_eq!(store.next_crl_number("b").unwrap(), 1);
    assert_eq!(store.next_crl_number("a").unwrap(), 3);
}

/// The latest CRL replaces the previous one, never an older one, whatever its size.
pub fn put_and_latest_crl(db: &dyn TestDatabase) {
    let store = db.open();
    assert!(store.latest_crl("ca").unwrap().is_none());
    store.put_crl("ca", &crl(1), &event("crl", "ca")).unwrap();
    store.put_crl("ca", &crl(2), &event("crl", "ca")).unwrap();
    assert_eq!(store.latest_crl("ca").unwrap(), Some(crl(2)));
    assert!(store.latest_crl("other").unwrap().is_none());
    // An older CRL never replaces a newer one.
    assert!(matches!(
        store.put_crl("ca", &crl(1), &event("crl", "ca")),
        Err(Error::Conflict(_))
    ));
    assert_eq!(store.latest_crl("ca").unwrap(), Some(crl(2)));
    assert_eq!(store.stats().unwrap().audit_entries, 2);
    // A big CRL (1 MiB) is stored as is.
    let mut big = crl(3);
    big.der = vec![0xab; 1 << 20];
    store.put_crl("ca", &big, &event("crl", "ca")).unwrap();
    assert_eq!(store.latest_crl("ca").unwrap(), Some(big));
}

/// Audit entries are numbered from 1, paged by sequence number and hash-chained.
pub fn audit_append_and_paging(db: &dyn TestDatabase) {
    let store = db.open();
    for i in 1..=10u64 {
        assert_eq!(
            store.append_audit(&event("note", &i.to_string())).unwrap(),
            i
        );
    }
    let page = store.audit_entries(4, 3).unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5, 6]);
    assert_eq!(page[0].event.subject, "4");
    assert!(store.audit_entries(11, 5).unwrap().is_empty());
    assert!(store.audit_entries(1, 0).unwrap().is_empty());
    let all = store.audit_entries(0, 100).unwrap();
    assert_eq!(all.len(), 10);
    assert_eq!(all[0].prev_hash, "0".repeat(64));
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    for e in &all {
        assert_eq!(
            e.hash,
            AuditEntry::compute_hash(e.seq, &e.prev_hash, &e.event).unwrap()
        );
    }
    let v = store.verify_audit().unwrap();
    assert_eq!((v.entries, v.first_bad), (10, None));
}

/// Pending requests: ids, lookup keys, one decision each, immutable keys, and a rejected key may
/// come back.
pub fn pending_requests_lifecycle(db: &dyn TestDatabase) {
    let store = db.open();
    let id1 = store
        .put_pending(&pending("tx-1"), &event("pending", "tx-1"))
        .unwrap();
    let id2 = store
        .put_pending(&pending("tx-2"), &event("pending", "tx-2"))
        .unwrap();
    assert_eq!((id1, id2), (1, 2));
    let mut got = store.get_pending(id1).unwrap().unwrap();
    assert_eq!(got.id, id1);
    assert_eq!(got.lookup_key, "tx-1");
    assert_eq!(store.find_pending("tx-2").unwrap().unwrap().id, id2);
    assert!(store.find_pending("tx-3").unwrap().is_none());
    assert!(store.get_pending(99).unwrap().is_none());

    // The same key cannot be pending twice.
    assert!(matches!(
        store.put_pending(&pending("tx-1"), &event("pending", "tx-1")),
        Err(Error::Conflict(_))
    ));

    // Approve 1, reject 2.
    got.state = PendingState::Issued;
    got.serial = Some(vec![1, 2, 3]);
    store.update_pending(&got, &event("approve", "1")).unwrap();
    let mut second = store.get_pending(id2).unwrap().unwrap();
    second.state = PendingState::Rejected;
    second.note = Some("no".into());
    store
        .update_pending(&second, &event("reject", "2"))
        .unwrap();

    assert_eq!(store.list_pending(None).unwrap().len(), 2);
    assert_eq!(
        store.list_pending(Some(PendingState::Issued)).unwrap(),
        vec![got.clone()]
    );
    assert_eq!(
        store.list_pending(Some(PendingState::Rejected)).unwrap(),
        vec![second.clone()]
    );
    assert!(
        store
            .list_pending(Some(PendingState::Pending))
            .unwrap()
            .is_empty()
    );

    // A decided request cannot be decided again (no double approval).
    assert!(matches!(
        store.update_pending(&got, &event("approve", "1")),
        Err(Error::Conflict(_))
    ));
    // Unknown id.
    let mut ghost = got.clone();
    ghost.id = 42;
    assert!(matches!(
        store.update_pending(&ghost, &event("approve", "42")),
        Err(Error::NotFound(_))
    ));
    // Issued without a serial is invalid.
    let id3 = store
        .put_pending(&pending("tx-3"), &event("pending", "tx-3"))
        .unwrap();
    let mut third = store.get_pending(id3).unwrap().unwrap();
    third.state = PendingState::Issued;
    assert!(matches!(
        store.update_pending(&third, &event("approve", "3")),
        Err(Error::Invalid(_))
    ));
    // The key of a request cannot change.
    third.state = PendingState::Pending;
    third.lookup_key = "moved".into();
    assert!(matches!(
        store.update_pending(&third, &event("x", "3")),
        Err(Error::Invalid(_))
    ));

    // After a rejection, the same key may come back as a new request; find_pending finds
    // the newest one.
    let id4 = store
        .put_pending(&pending("tx-2"), &event("pending", "tx-2"))
        .unwrap();
    assert_eq!(id4, 4);
    assert_eq!(store.find_pending("tx-2").unwrap().unwrap().id, id4);
    assert_eq!(store.get_pending(id2).unwrap(), Some(second));
    assert_eq!(store.verify_audit().unwrap().first_bad, None);
}

/// The counts of certificates, revocations and audit entries.
pub fn stats_count(db: &dyn TestDatabase) {
    let store = db.open();
    assert_eq!(store.stats().unwrap(), store::StoreStats::default());
    for s in 1..=5u8 {
        issue(&*store, &record(&[s], "ca", 1));
    }
    store
        .revoke(
            &[2],
            Revocation { time: 1, reason: 0 },
            &event("revoke", "02"),
        )
        .unwrap();
    store.append_audit(&event("note", "x")).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(
        (stats.certificates, stats.revoked, stats.audit_entries),
        (5, 1, 7)
    );
}

/// Listing certificates by status, expiry window, profile, issuer and text, soonest expiry first,
/// with a limit.
pub fn list_filters(db: &dyn TestDatabase) {
    let store = db.open();
    // serial, issuer, profile, not_after, subject, san
    let rows: [(u8, &str, &str, i64, &str, &str); 6] = [
        (1, "ca", "server", 3_000, "CN=Alpha", "DNS:alpha.example"),
        (2, "ca", "client", 1_000, "CN=beta", "DNS:beta.example"),
        (3, "sub", "server", 2_000, "CN=gamma", "DNS:GAMMA.lan"),
        (4, "sub", "device", 5_000, "CN=delta", "IP:10.0.0.4"),
        (5, "ca", "server", 4_000, "CN=eps", "DNS:www.alpha.example"),
        (6, "ca", "server", 2_000, "CN=zeta", "DNS:zeta.example"),
    ];
    for (s, issuer, profile, not_after, subject, san) in rows {
        let mut r = record(&[s], issuer, not_after);
        r.profile = profile.into();
        r.subject = subject.into();
        r.sans = vec![san.into()];
        issue(&*store, &r);
    }
    store
        .revoke(
            &[5],
            Revocation { time: 1, reason: 0 },
            &event("revoke", "05"),
        )
        .unwrap();
    store
        .revoke(
            &[2],
            Revocation { time: 1, reason: 0 },
            &event("revoke", "02"),
        )
        .unwrap();

    let serials = |f: CertFilter| -> Vec<u8> {
        store
            .list_certs(&f)
            .unwrap()
            .iter()
            .map(|r| r.serial[0])
            .collect()
    };
    // Everything, soonest expiry first (3 and 6 share not_after, either order).
    let all = serials(CertFilter::default());
    assert_eq!(all.len(), 6);
    assert_eq!(all[0], 2);
    assert_eq!(
        all[1..3].iter().copied().collect::<HashSet<_>>(),
        HashSet::from([3, 6])
    );
    assert_eq!(&all[3..], &[1, 5, 4]);
    let listed = store.list_certs(&CertFilter::default()).unwrap();
    assert!(listed.windows(2).all(|w| w[0].not_after <= w[1].not_after));
    assert!(listed.iter().all(|r| !r.der.is_empty()), "DER is filled in");

    assert_eq!(
        serials(CertFilter {
            status: Some(CertStatus::Revoked),
            ..Default::default()
        }),
        [2, 5]
    );
    assert_eq!(
        serials(CertFilter {
            status: Some(CertStatus::Valid),
            ..Default::default()
        })
        .len(),
        4
    );
    // expires_before is inclusive, expires_after exclusive.
    let mut before = serials(CertFilter {
        expires_before: Some(2_000),
        ..Default::default()
    });
    before.sort_unstable();
    assert_eq!(before, [2, 3, 6]);
    assert_eq!(
        serials(CertFilter {
            expires_after: Some(3_000),
            ..Default::default()
        }),
        [5, 4]
    );
    assert_eq!(
        serials(CertFilter {
            expires_after: Some(2_000),
            expires_before: Some(4_000),
            ..Default::default()
        }),
        [1, 5]
    );
    assert!(
        serials(CertFilter {
            expires_after: Some(4_000),
            expires_before: Some(4_000),
            ..Default::default()
        })
        .is_empty()
    );
    assert_eq!(
        serials(CertFilter {
            expires_after: Some(i64::MAX),
            ..Default::default()
        }),
        Vec::<u8>::new()
    );
    assert_eq!(
        serials(CertFilter {
            expires_before: Some(i64::MAX),
            ..Default::default()
        })
        .len(),
        6
    );
    assert_eq!(
        serials(CertFilter {
            expires_before: Some(i64::MIN),
            ..Default::default()
        }),
        Vec::<u8>::new()
    );

    assert_eq!(
        serials(CertFilter {
            profile: Some("server".into()),
            ..Default::default()
        })
        .len(),
        4
    );
    assert_eq!(
        serials(CertFilter {
            profile: Some("device".into()),
            ..Default::default()
        }),
        [4]
    );
    let mut sub = serials(CertFilter {
        issuer: Some("sub".into()),
        ..Default::default()
    });
    sub.sort_unstable();
    assert_eq!(sub, [3, 4]);
    // Case-insensitive over subject and SANs.
    assert_eq!(
        serials(CertFilter {
            text: Some("ALPHA".into()),
            ..Default::default()
        }),
        [1, 5]
    );
    assert_eq!(
        serials(CertFilter {
            text: Some("gamma.LAN".into()),
            ..Default::default()
        }),
        [3]
    );
    assert_eq!(
        serials(CertFilter {
            text: Some("10.0.0".into()),
            ..Default::default()
        }),
        [4]
    );
    assert_eq!(
        serials(CertFilter {
            text: Some("nomatch".into()),
            ..Default::default()
        }),
        Vec::<u8>::new()
    );
    // Limit keeps the soonest.
    assert_eq!(
        serials(CertFilter {
            limit: Some(1),
            ..Default::default()
        }),
        [2]
    );
    assert_eq!(
        serials(CertFilter {
            limit: Some(0),
            ..Default::default()
        }),
        Vec::<u8>::new()
    );
    // Combined.
    assert_eq!(
        serials(CertFilter {
            status: Some(CertStatus::Valid),
            issuer: Some("ca".into()),
            profile: Some("server".into()),
            text: Some("example".into()),
            expires_after: Some(1_000),
            limit: Some(5),
            ..Default::default()
        }),
        [6, 1]
    );
}

/// Everything written survives a reopen: records, reservations, CRL numbers, the latest CRL,
/// pending ids and the audit chain.
pub fn persistence_across_reopen(db: &dyn TestDatabase) {
    let r1 = record(&[1], "ca", 2_000);
    {
        let store = db.open();
        issue(&*store, &r1);
        store.reserve_serial(&[2], "ca").unwrap();
        assert_eq!(store.next_crl_number("ca").unwrap(), 1);
        assert_eq!(store.next_crl_number("ca").unwrap(), 2);
        store.put_crl("ca", &crl(2), &event("crl", "ca")).unwrap();
        store
            .put_pending(&pending("tx"), &event("pending", "tx"))
            .unwrap();
        store.append_audit(&event("note", "before")).unwrap();
    }
    let store = db.open();
    assert_eq!(store.get_cert(&[1]).unwrap(), Some(r1));
    // The reservation survived: the serial cannot be reserved again, but can be recorded.
    assert!(matches!(
        store.reserve_serial(&[2], "ca"),
        Err(Error::Conflict(_))
    ));
    store
        .record_issuance(&record(&[2], "ca", 3_000), &event("issue", "02"))
        .unwrap();
    assert_eq!(store.next_crl_number("ca").unwrap(), 3);
    assert_eq!(store.latest_crl("ca").unwrap(), Some(crl(2)));
    assert_eq!(store.find_pending("tx").unwrap().unwrap().id, 1);
    assert_eq!(
        store
            .put_pending(&pending("tx2"), &event("pending", "tx2"))
            .unwrap(),
        2
    );
    // The audit chain continues where it stopped.
    let seq = store.append_audit(&event("note", "after")).unwrap();
    assert_eq!(seq, 7);
    let v = store.verify_audit().unwrap();
    assert_eq!((v.entries, v.first_bad), (7, None));
    let entries = store.audit_entries(4, 2).unwrap();
    assert_eq!(entries[0].event.subject, "before");
    assert_eq!(entries[1].prev_hash, entries[0].hash);
    drop(store);

    let store = db.open();
    assert_eq!(store.stats().unwrap().certificates, 2);
    assert_eq!(store.verify_audit().unwrap().entries, 7);
}

/// One-time challenges are consumed once, even by 16 racing threads, and stay consumed across a
/// reopen; transactions map keys to serials.
pub fn one_time_challenges_are_consumed_once_even_concurrently(db: &dyn TestDatabase) {
    let s: Arc<dyn Store> = db.open();
    s.put_challenge(
        &challenge(b"h1", "ep", 5000),
        &event("challenge-create", "ep"),
    )
    .expect("put");
    assert!(matches!(
        s.put_challenge(
            &challenge(b"h1", "ep", 5000),
            &event("challenge-create", "ep")
        ),
        Err(store::Error::Conflict(_))
    ));
    // Wrong endpoint and unknown hash: not found, nothing written.
    for (h, ep) in [(&b"h1"[..], "other"), (&b"nope"[..], "ep")] {
        assert!(matches!(
            s.consume_challenge(h, ep, 2000, &event("challenge-use", ep)),
            Err(store::Error::NotFound(_))
        ));
    }
    // Expired.
    s.put_challenge(
        &challenge(b"old", "ep", 1500),
        &event("challenge-create", "ep"),
    )
    .expect("put");
    assert!(matches!(
        s.consume_challenge(b"old", "ep", 2000, &event("challenge-use", "ep")),
        Err(store::Error::Invalid(_))
    ));
    // Sixteen threads race for one challenge: exactly one wins.
    let wins: usize = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..16)
            .map(|_| {
                let s = s.clone();
                sc.spawn(move || {
                    s.consume_challenge(b"h1", "ep", 2000, &event("challenge-use", "ep"))
                        .is_ok() as usize
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert_eq!(wins, 1);
    assert!(matches!(
        s.consume_challenge(b"h1", "ep", 2001, &event("challenge-use", "ep")),
        Err(store::Error::Conflict(_))
    ));
    // Durable across a reopen.
    drop(s);
    let s = db.open();
    assert!(matches!(
        s.consume_challenge(b"h1", "ep", 2002, &event("challenge-use", "ep")),
        Err(store::Error::Conflict(_))
    ));
    s.put_transaction(&["scep:ep:t:k".into(), "k2".into()], b"\x01\x02")
        .expect("tx");
    assert_eq!(s.find_transaction("k2").expect("find"), Some(vec![1, 2]));
    assert_eq!(
        s.find_transaction("scep:ep:t:k").expect("find"),
        Some(vec![1, 2])
    );
    assert_eq!(s.find_transaction("other").expect("find"), None);
}

/// Issue item 10: a certificate, its transaction keys and the one-time challenge it spends
/// are one commit; every refusal leaves nothing of the three behind.
pub fn an_issuance_binding_commits_with_its_certificate_or_not_at_all(db: &dyn TestDatabase) {
    let s = db.open();
    s.put_challenge(
        &challenge(b"h1", "ep", 5000),
        &event("challenge-create", "ep"),
    )
    .expect("put");
    s.put_challenge(
        &challenge(b"old", "ep", 1500),
        &event("challenge-create", "ep"),
    )
    .expect("put");
    for serial in [1u8, 2, 3, 4] {
        s.reserve_serial(&[serial], "ca").expect("reserve");
    }
    let nothing_of = |serial: u8, keys: &[&str]| {
        assert!(s.get_cert(&[serial]).expect("get").is_none(), "{serial}");
        for k in keys {
            assert_ne!(
                s.find_transaction(k).expect("find"),
                Some(vec![serial]),
                "{k}"
            );
        }
    };
    let audits = |s: &dyn Store| s.stats().expect("stats").audit_entries;

    // Refused by the challenge (wrong endpoint, unknown, expired): nothing written.
    for (c, want) in [
        ((&b"h1"[..], "other", 2000), "not found"),
        ((&b"nope"[..], "ep", 2000), "not found"),
        ((&b"old"[..], "ep", 2000), "expired"),
    ] {
        let before = audits(&*s);
        let e = s
            .record_issuance_bound(
                &record(&[1], "ca", 9_000),
                &event("issue", "01"),
                &bound("r1", "t1", Some(c)),
            )
            .expect_err(want);
        assert!(
            matches!(e, store::Error::NotFound(_) | store::Error::Invalid(_)),
            "{e}"
        );
        nothing_of(1, &["r1", "t1"]);
        assert_eq!(audits(&*s), before);
    }

    // Accepted: all three, and two audit entries (the challenge's use, then the issue).
    let before = audits(&*s);
    let seq = s
        .record_issuance_bound(
            &record(&[1], "ca", 9_000),
            &event("issue", "01"),
            &bound("r1", "t1", Some((b"h1", "ep", 2000))),
        )
        .expect("record");
    assert!(s.get_cert(&[1]).expect("get").is_some());
    assert_eq!(s.find_transaction("r1").expect("find"), Some(vec![1]));
    assert_eq!(s.find_transaction("t1").expect("find"), Some(vec![1]));
    let c = s.get_challenge(b"h1").expect("get").expect("challenge");
    assert_eq!((c.used_at, c.used_for), (Some(2000), Some(vec![1])));
    assert_eq!(audits(&*s), before + 2);
    let entries = s.audit_entries(seq - 1, 2).expect("audit");
    assert_eq!(
        entries
            .iter()
            .map(|e| e.event.action.as_str())
            .collect::<Vec<_>>(),
        ["challenge-use", "issue"]
    );
    assert_eq!(s.verify_audit().expect("verify").first_bad, None);

    // The same challenge again: refused, nothing of serial 2.
    let before = audits(&*s);
    assert!(matches!(
        s.record_issuance_bound(
            &record(&[2], "ca", 9_000),
            &event("issue", "02"),
            &bound("r2", "t2", Some((b"h1", "ep", 2001))),
        ),
        Err(store::Error::Conflict(_))
    ));
    nothing_of(2, &["r2", "t2"]);
    // The same replay key while its certificate is valid: refused, nothing of serial 2,
    // and t1 still names serial 1.
    assert!(matches!(
        s.record_issuance_bound(
            &record(&[2], "ca", 9_000),
            &event("issue", "02"),
            &bound("r1", "t1", None),
        ),
        Err(store::Error::Conflict(_))
    ));
    nothing_of(2, &["r1", "t1"]);
    assert_eq!(s.find_transaction("t1").expect("find"), Some(vec![1]));
    assert_eq!(audits(&*s), before);

    // Once its certificate is revoked, the transaction may be repeated.
    s.revoke(
        &[1],
        store::Revocation { time: 3, reason: 5 },
        &event("revoke", "01"),
    )
    .expect("revoke");
    s.record_issuance_bound(
        &record(&[3], "ca", 9_000),
        &event("issue", "03"),
        &bound("r1", "t1", None),
    )
    .expect("repeat after revocation");
    assert_eq!(s.find_transaction("r1").expect("find"), Some(vec![3]));
    assert_eq!(s.verify_audit().expect("verify").first_bad, None);
}

/// Paging covers every record once, in the unpaged order, with bounded pages, across filters.
pub fn pages_cover_every_record_once_with_bounded_pages(db: &dyn TestDatabase) {
    let store = db.open();
    // 1,000 records, many sharing a notAfter so that the cursor must order by serial too.
    let records: Vec<CertRecord> = (0u16..1000)
        .map(|i| {
            let serial = [0x10 + (i >> 8) as u8, (i & 0xff) as u8];
            let mut r = record(
                &serial,
                if i % 3 == 0 { "a" } else { "b" },
                2_000_000 + i64::from(i % 7),
            );
            if i % 5 == 0 {
                r.profile = "device".into();
            }
            r
        })
        .collect();
    store
        .import_certificates(&records, &event("import", "1000"))
        .unwrap();

    let walk = |filter: &CertFilter, size: usize| -> Vec<CertRecord> {
        let mut all = Vec::new();
        let mut after = None;
        for _ in 0..10_000 {
            let page = store.list_cert_page(filter, after.as_ref(), size).unwrap();
            assert!(
                page.records.len() <= size,
                "page of {} > {size}",
                page.records.len()
            );
            assert!(
                page.records.iter().all(|r| r.der.is_empty()),
                "pages carry no DER"
            );
            all.extend(page.records);
            match page.next {
                Some(next) => after = Some(next),
                None => return all,
            }
        }
        panic!("paging did not end");
    };
    for size in [1, 7, 100, 1000, 5000] {
        let got = walk(&CertFilter::default(), size);
        let serials: Vec<&Vec<u8>> = got.iter().map(|r| &r.serial).collect();
        let unique: HashSet<&Vec<u8>> = serials.iter().copied().collect();
        assert_eq!(got.len(), 1000, "page size {size}");
        assert_eq!(unique.len(), 1000, "page size {size}: a record came twice");
        // Same order as the unpaged list.
        let unpaged: Vec<Vec<u8>> = store
            .list_certs(&CertFilter::default())
            .unwrap()
            .into_iter()
            .map(|r| r.serial)
            .collect();
        assert_eq!(
            got.iter().map(|r| r.serial.clone()).collect::<Vec<_>>(),
            unpaged,
            "page size {size}"
        );
    }
    // Filters keep working across pages.
    let f = CertFilter {
        profile: Some("device".into()),
        issuer: Some("a".into()),
        expires_after: Some(2_000_001),
        ..CertFilter::default()
    };
    let expected: HashSet<Vec<u8>> = records
        .iter()
        .filter(|r| r.profile == "device" && r.issuer == "a" && r.not_after > 2_000_001)
        .map(|r| r.serial.clone())
        .collect();
    let got = walk(&f, 9);
    assert_eq!(got.len(), expected.len());
    assert_eq!(
        got.into_iter().map(|r| r.serial).collect::<HashSet<_>>(),
        expected
    );
    // The last page of an exact multiple may say "more" and then be empty; never more.
    let page = store
        .list_cert_page(&CertFilter::default(), None, 0)
        .unwrap();
    assert!(page.records.is_empty() && page.next.is_none());
}
