//! Contract cases: the key blocklist, invalidity dates, certificateHold and its release,
//! and the index of certificates by public key (RFC 5280 §5.3.1, §5.3.2).

use super::*;

use crate::{BlockedKey, REASON_CERTIFICATE_HOLD, REASON_KEY_COMPROMISE};

/// The revoked entries of `issuer` as (serial, reason, invalidity date).
fn revoked_of(store: &dyn Store, issuer: &str) -> Vec<(Vec<u8>, u8, Option<i64>)> {
    let mut v = Vec::new();
    store
        .for_each_revoked(issuer, &mut |e| {
            v.push((e.serial, e.revocation.reason, e.revocation.invalidity_date));
            Ok(())
        })
        .unwrap();
    v
}

/// A keyCompromise revocation that names the key puts it on the blocklist in the same
/// commit; a second certificate of the same key keeps the first entry. A refused
/// revocation (unknown serial, malformed hash) blocks nothing and writes nothing.
pub fn key_compromise_blocks_the_key_in_the_revocation_commit(db: &dyn TestDatabase) {
    let store = db.open();
    let key = key_hash(b"shared key");
    let mut a = record(&[1], "ca", 1_800_000_000);
    a.spki_sha256 = key.clone();
    let mut b = record(&[2], "ca", 1_800_000_000);
    b.spki_sha256 = key.clone();
    issue(&*store, &a);
    issue(&*store, &b);
    assert_eq!(store.blocked_key(&key).unwrap(), None);

    // Refused: unknown serial, and a hash that is not a SHA-256. Nothing written.
    let rev = Revocation::new(100, REASON_KEY_COMPROMISE);
    assert!(matches!(
        store.revoke_with(&[9], rev, Some(&key), &event("revoke", "09")),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.revoke_with(&[1], rev, Some(&key[..5]), &event("revoke", "01")),
        Err(Error::Invalid(_))
    ));
    assert_eq!(store.blocked_key(&key).unwrap(), None);
    assert_eq!(
        store.get_cert(&[1]).unwrap().unwrap().status,
        CertStatus::Valid
    );
    assert_eq!(store.stats().unwrap().audit_entries, 2);

    let revoked = store
        .revoke_with(&[1], rev, Some(&key), &event("revoke", "01"))
        .unwrap();
    assert_eq!(revoked.revocation, Some(rev));
    let expected = BlockedKey {
        spki_sha256: key.clone(),
        serial: vec![1],
        issuer: "ca".into(),
        time: 100,
    };
    assert_eq!(store.blocked_key(&key).unwrap(), Some(expected.clone()));
    // The second certificate of the key: the entry keeps the first revocation.
    store
        .revoke_with(
            &[2],
            Revocation::new(200, REASON_KEY_COMPROMISE),
            Some(&key),
            &event("revoke", "02"),
        )
        .unwrap();
    assert_eq!(store.blocked_key(&key).unwrap(), Some(expected.clone()));
    // Another key is not blocked; a revocation without block_key blocks nothing.
    assert_eq!(store.blocked_key(&key_hash(b"other")).unwrap(), None);
    let c = record(&[3], "ca", 1_800_000_000);
    issue(&*store, &c);
    store
        .revoke(&[3], Revocation::new(300, 1), &event("revoke", "03"))
        .unwrap();
    assert_eq!(store.blocked_key(&c.spki_sha256).unwrap(), None);
    assert_eq!(store.stats().unwrap().audit_entries, 6);
    drop(store);
    // Durable.
    let store = db.open();
    assert_eq!(store.blocked_key(&key).unwrap(), Some(expected));
}

/// An invalidity date (RFC 5280 §5.3.2) is kept with the record and listed with the
/// revocation; one without stays `None`; both survive a reopen.
pub fn invalidity_dates_are_stored_and_listed(db: &dyn TestDatabase) {
    {
        let store = db.open();
        issue(&*store, &record(&[1], "ca", 1_800_000_000));
        issue(&*store, &record(&[2], "ca", 1_800_000_000));
        let with = Revocation {
            time: 500,
            reason: REASON_KEY_COMPROMISE,
            invalidity_date: Some(400),
        };
        let r = store.revoke(&[1], with, &event("revoke", "01")).unwrap();
        assert_eq!(r.revocation, Some(with));
        store
            .revoke(&[2], Revocation::new(600, 4), &event("revoke", "02"))
            .unwrap();
    }
    let store = db.open();
    assert_eq!(
        store.get_cert(&[1]).unwrap().unwrap().revocation,
        Some(Revocation {
            time: 500,
            reason: 1,
            invalidity_date: Some(400)
        })
    );
    assert_eq!(
        revoked_of(&*store, "ca"),
        vec![(vec![1], 1, Some(400)), (vec![2], 4, None)]
    );
}

/// certificateHold (RFC 5280 §5.3.1): a held certificate is listed, released back to
/// valid (leaving the list), held again and then revoked for good with another reason,
/// which replaces the hold and its invalidity date. Every refusal writes nothing.
pub fn hold_release_and_permanent_revocation(db: &dyn TestDatabase) {
    let store = db.open();
    let r = record(&[7], "ca", 1_800_000_000);
    issue(&*store, &r);
    let hold = Revocation {
        time: 100,
        reason: REASON_CERTIFICATE_HOLD,
        invalidity_date: Some(90),
    };
    store.revoke(&[7], hold, &event("hold", "07")).unwrap();
    assert_eq!(revoked_of(&*store, "ca"), vec![(vec![7], 6, Some(90))]);
    // Holding a held certificate again is a conflict.
    assert!(matches!(
        store.revoke(&[7], Revocation::new(110, 6), &event("hold", "07")),
        Err(Error::Conflict(_))
    ));

    let released = store.release_hold(&[7], &event("release", "07")).unwrap();
    assert_eq!(released.status, CertStatus::Valid);
    assert_eq!(released.revocation, None);
    assert_eq!(released.der, r.der);
    assert_eq!(store.get_cert(&[7]).unwrap(), Some(r.clone()));
    assert!(revoked_of(&*store, "ca").is_empty());
    assert_eq!(store.stats().unwrap().revoked, 0);
    let audit = store.stats().unwrap().audit_entries;
    assert_eq!(audit, 3);

    // Refusals: releasing a valid certificate, an unknown serial.
    assert!(matches!(
        store.release_hold(&[7], &event("release", "07")),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store.release_hold(&[8], &event("release", "08")),
        Err(Error::NotFound(_))
    ));
    assert_eq!(store.stats().unwrap().audit_entries, audit);

    // Held again, then revoked for good (keyCompromise, blocking the key) without a release.
    store.revoke(&[7], hold, &event("hold", "07")).unwrap();
    let permanent = Revocation::new(200, REASON_KEY_COMPROMISE);
    let revoked = store
        .revoke_with(
            &[7],
            permanent,
            Some(&r.spki_sha256),
            &event("revoke", "07"),
        )
        .unwrap();
    assert_eq!(revoked.revocation, Some(permanent));
    assert_eq!(revoked_of(&*store, "ca"), vec![(vec![7], 1, None)]);
    assert!(store.blocked_key(&r.spki_sha256).unwrap().is_some());
    // Permanent now: neither released nor revoked again.
    assert!(matches!(
        store.release_hold(&[7], &event("release", "07")),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store.revoke(&[7], Revocation::new(300, 4), &event("revoke", "07")),
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store.get_cert(&[7]).unwrap().unwrap().revocation,
        Some(permanent)
    );
    assert_eq!(store.stats().unwrap().audit_entries, audit + 2);
}

/// The key index finds every certificate of a public key (issued or imported), in serial
/// order with their DER, and nothing for an unknown key; a record whose hash is not a
/// SHA-256 is refused and not recorded.
pub fn the_key_index_finds_every_certificate_of_a_key(db: &dyn TestDatabase) {
    let key = key_hash(b"device key");
    {
        let store = db.open();
        let mut a = record(&[0x30], "ca", 1_800_000_000);
        a.spki_sha256 = key.clone();
        let mut b = record(&[0x10], "ca-sub", 1_700_000_100);
        b.spki_sha256 = key.clone();
        let other = record(&[0x20], "ca", 1_800_000_000);
        issue(&*store, &a);
        issue(&*store, &other);
        // Imported certificates are indexed too.
        store
            .import_certificates(std::slice::from_ref(&b), &event("import", "10"))
            .unwrap();
        // A malformed hash: refused, nothing recorded.
        let mut bad = record(&[0x40], "ca", 1_800_000_000);
        bad.spki_sha256 = vec![1, 2, 3];
        store.reserve_serial(&bad.serial, "ca").unwrap();
        assert!(matches!(
            store.record_issuance(&bad, &event("issue", "40")),
            Err(Error::Invalid(_))
        ));
        assert_eq!(store.get_cert(&[0x40]).unwrap(), None);
        assert!(store.certs_by_spki(&[1, 2, 3]).unwrap().is_empty());
    }
    let store = db.open();
    let found = store.certs_by_spki(&key).unwrap();
    let serials: Vec<Vec<u8>> = found.iter().map(|r| r.serial.clone()).collect();
    assert_eq!(serials, vec![vec![0x10], vec![0x30]]);
    assert!(
        found
            .iter()
            .all(|r| !r.der.is_empty() && r.spki_sha256 == key)
    );
    assert!(
        store
            .certs_by_spki(&key_hash(b"nobody"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.certs_by_spki(&key_hash(&[0x20])).unwrap().len(),
        1,
        "the other record has a key of its own"
    );
}
