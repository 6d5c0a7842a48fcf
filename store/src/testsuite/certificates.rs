//! Contract cases: serial reservations, certificate records and revocation.

use super::*;

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
        invalidity_date: None,
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
    let rev = Revocation::new(1, 0);
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
        invalidity_date: None,
    };
    store.revoke(&[4], first, &event("revoke", "04")).unwrap();
    let second = Revocation {
        time: 20,
        reason: 4,
        invalidity_date: None,
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
                .revoke(&serial, Revocation::new(1, 0), &event("revoke", "x"))
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
