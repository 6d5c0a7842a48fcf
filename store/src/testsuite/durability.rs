//! Contract cases: what survives a reopen, one-time challenges under concurrency, issuance
//! bindings committed with their certificate or not at all, and paging.

use super::*;

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
    s.revoke(&[1], store::Revocation::new(3, 5), &event("revoke", "01"))
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
