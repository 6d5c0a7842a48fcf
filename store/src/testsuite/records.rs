//! Contract cases: CRL numbers and CRLs, the audit log, pending requests, statistics and
//! certificate lists.

use super::*;

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
        .revoke(&[2], Revocation::new(1, 0), &event("revoke", "02"))
        .unwrap();
    store.append_audit(&event("note", "x")).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(
        (stats.certificates, stats.revoked, stats.audit_entries),
        (5, 1, 7)
    );
}

/// API tokens: made once (a second with the same id conflicts, with nothing changed),
/// found by id, listed by id, replaced (revoked with an audit entry, a last use without
/// one, touching nothing else); an update of a token that does not exist is not found.
pub fn api_tokens_are_made_once_and_updated(db: &dyn TestDatabase) {
    let store = db.open();
    let token = |id: &str| store::tokens::ApiToken {
        id: id.into(),
        name: format!("token {id}"),
        secret_sha256: vec![7; 32],
        role: "operator".into(),
        profiles: vec!["tls-server".into()],
        scep_endpoints: Vec::new(),
        created_at: 100,
        created_by: "test".into(),
        expires_at: Some(1_000),
        last_used_at: None,
        revoked_at: None,
    };
    assert_eq!(store.api_token("b").unwrap(), None);
    store
        .put_api_token(&token("b"), &event("token-create", "b"))
        .unwrap();
    store
        .put_api_token(&token("a"), &event("token-create", "a"))
        .unwrap();
    let mut other = token("b");
    other.role = "administrator".into();
    assert!(matches!(
        store.put_api_token(&other, &event("token-create", "b")),
        Err(store::Error::Conflict(_))
    ));
    assert_eq!(store.api_token("b").unwrap(), Some(token("b")));
    let ids: Vec<String> = store
        .list_api_tokens()
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
    let audit_before = store.stats().unwrap().audit_entries;
    let mut revoked = token("b");
    revoked.revoked_at = Some(300);
    store
        .update_api_token(&revoked, &event("token-revoke", "b"))
        .unwrap();
    assert_eq!(store.stats().unwrap().audit_entries, audit_before + 1);
    // A last use touches that field only (it keeps the revocation), unaudited.
    store.touch_api_token("b", 400).unwrap();
    assert_eq!(store.stats().unwrap().audit_entries, audit_before + 1);
    revoked.last_used_at = Some(400);
    assert_eq!(store.api_token("b").unwrap(), Some(revoked));
    assert!(matches!(
        store.update_api_token(&token("zz"), &event("token-revoke", "zz")),
        Err(store::Error::NotFound(_))
    ));
    assert!(matches!(
        store.touch_api_token("zz", 1),
        Err(store::Error::NotFound(_))
    ));
}

/// Service state: put replaces, get finds, list pages in key order within a namespace
/// and stops at its end.
pub fn service_state_is_kept_per_namespace(db: &dyn TestDatabase) {
    let store = db.open();
    assert_eq!(store.state_get("n", "a").unwrap(), None);
    for (ns, k, v) in [
        ("n", "b", "2"),
        ("n", "a", "1"),
        ("n", "c", "3"),
        ("o", "a", "x"),
    ] {
        store.state_put(ns, k, v.as_bytes()).unwrap();
    }
    store.state_put("n", "b", b"22").unwrap();
    assert_eq!(store.state_get("n", "b").unwrap(), Some(b"22".to_vec()));
    let keys = |after: Option<&str>, limit| -> Vec<String> {
        store
            .state_list("n", after, limit)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    assert_eq!(keys(None, 10), ["a", "b", "c"]);
    assert_eq!(keys(None, 2), ["a", "b"]);
    assert_eq!(keys(Some("b"), 10), ["c"]);
    assert!(keys(Some("c"), 10).is_empty());
    assert!(store.state_list("p", None, 10).unwrap().is_empty());
}

/// Counting unrevoked certificates per expiry window: half-open windows, revoked and
/// held certificates left out, a released hold counted again, empty and reversed windows 0.
pub fn count_expiring_per_window(db: &dyn TestDatabase) {
    let store = db.open();
    assert_eq!(store.count_expiring(&[0, 10_000]).unwrap(), vec![0]);
    // notAfter 1000, 1999, 2000, 2500, 3000 (serials 1..=5), and 9000 (serial 6).
    for (s, not_after) in [
        (1u8, 1_000),
        (2, 1_999),
        (3, 2_000),
        (4, 2_500),
        (5, 3_000),
        (6, 9_000),
    ] {
        issue(&*store, &record(&[s], "ca", not_after));
    }
    store
        .revoke(&[4], Revocation::new(1, 0), &event("revoke", "04"))
        .unwrap();
    store
        .revoke(&[2], Revocation::new(1, 6), &event("hold", "02"))
        .unwrap();
    let edges = [1_000, 2_000, 3_000, 4_000];
    assert_eq!(store.count_expiring(&edges).unwrap(), vec![1, 1, 1]);
    store.release_hold(&[2], &event("release", "02")).unwrap();
    assert_eq!(store.count_expiring(&edges).unwrap(), vec![2, 1, 1]);
    assert_eq!(store.count_expiring(&[0, 100_000]).unwrap(), vec![5]);
    assert_eq!(store.count_expiring(&[3_000, 1_000]).unwrap(), vec![0]);
    assert!(store.count_expiring(&[5]).unwrap().is_empty());
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
        .revoke(&[5], Revocation::new(1, 0), &event("revoke", "05"))
        .unwrap();
    store
        .revoke(&[2], Revocation::new(1, 0), &event("revoke", "02"))
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

/// Every combination of the list filters (status, profile, issuer, text, expiry window),
/// walked in pages of 7 with cursors, returns exactly the records a filter over each
/// record read by serial returns, soonest expiry first, each once — after revocations, a
/// hold and its release moved records in and out of the revoked ones. A backend may answer
/// each filter from whichever index it likes; this case is what they must agree on.
pub fn list_pages_agree_with_a_scan_for_every_filter(db: &dyn TestDatabase) {
    let store = db.open();
    let profiles = ["server", "device", "rare"];
    let mut serials = Vec::new();
    for i in 0u8..120 {
        let serial = [0x20, i];
        let mut r = record(
            &serial,
            if i % 4 == 0 { "sub" } else { "ca" },
            10_000 + i64::from(i % 9) * 100,
        );
        r.profile = profiles[usize::from(i % 7).min(2)].into();
        if i % 11 == 0 {
            r.sans.push("DNS:Shared-Name.example".into());
        }
        issue(&*store, &r);
        serials.push(serial.to_vec());
    }
    for i in (0u8..120).filter(|i| i % 6 == 1) {
        store
            .revoke(&[0x20, i], Revocation::new(5, 1), &event("revoke", "x"))
            .unwrap();
    }
    // On hold and released again: valid, in no revoked list.
    store
        .revoke(
            &[0x20, 2],
            Revocation::new(5, crate::REASON_CERTIFICATE_HOLD),
            &event("hold", "02"),
        )
        .unwrap();
    store
        .release_hold(&[0x20, 2], &event("release", "02"))
        .unwrap();
    // On hold: revoked.
    store
        .revoke(
            &[0x20, 3],
            Revocation::new(5, crate::REASON_CERTIFICATE_HOLD),
            &event("hold", "03"),
        )
        .unwrap();
    let truth: Vec<CertRecord> = serials
        .iter()
        .map(|s| store.get_cert(s).unwrap().unwrap())
        .collect();

    let statuses = [None, Some(CertStatus::Valid), Some(CertStatus::Revoked)];
    let profiles = [None, Some("server"), Some("rare"), Some("none")];
    let issuers = [None, Some("sub")];
    // The last spans the end of a subject and the start of a SAN: no single name holds it.
    let texts = [
        None,
        Some("shared-name"),
        Some("HOST-2014"),
        Some("example\ndns:host"),
    ];
    let windows = [
        (None, None),
        (Some(10_150), Some(10_500)),
        (Some(10_800), None),
    ];
    for status in statuses {
        for profile in profiles {
            for issuer in issuers {
                for text in texts {
                    for (after, before) in windows {
                        let filter = CertFilter {
                            status,
                            expires_before: before,
                            expires_after: after,
                            profile: profile.map(String::from),
                            issuer: issuer.map(String::from),
                            text: text.map(String::from),
                            limit: None,
                        };
                        let mut want: Vec<Vec<u8>> = truth
                            .iter()
                            .filter(|r| {
                                status.is_none_or(|s| s == r.status)
                                    && profile.is_none_or(|p| p == r.profile)
                                    && issuer.is_none_or(|i| i == r.issuer)
                                    && after.is_none_or(|t| r.not_after > t)
                                    && before.is_none_or(|t| r.not_after <= t)
                                    && text.is_none_or(|t| {
                                        let t = t.to_lowercase();
                                        r.subject.to_lowercase().contains(&t)
                                            || r.sans.iter().any(|s| s.to_lowercase().contains(&t))
                                    })
                            })
                            .map(|r| r.serial.clone())
                            .collect();
                        let mut got = Vec::new();
                        let mut cursor = None;
                        loop {
                            let page = store.list_cert_page(&filter, cursor.as_ref(), 7).unwrap();
                            assert!(page.records.len() <= 7);
                            got.extend(page.records);
                            match page.next {
                                Some(next) => cursor = Some(next),
                                None => break,
                            }
                        }
                        assert!(
                            got.windows(2).all(|w| w[0].not_after <= w[1].not_after),
                            "{filter:?}: not soonest expiry first"
                        );
                        let mut got: Vec<Vec<u8>> = got.into_iter().map(|r| r.serial).collect();
                        let listed = got.len();
                        got.sort();
                        got.dedup();
                        assert_eq!(got.len(), listed, "{filter:?}: a record listed twice");
                        want.sort();
                        assert_eq!(got, want, "{filter:?}");
                    }
                }
            }
        }
    }
}
