//! Tests of the PostgreSQL backend on a throw-away cluster
//! (`store::testsuite::pg_cluster`): the contract suite every backend passes, unchanged,
//! then what is PostgreSQL's own: migrations, and two stores ("nodes") on one database
//! racing for the same records. Skipped when PostgreSQL is not installed, unless
//! `PRIVCA_INTEROP=1` (scripts/test.sh installs it), where that is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use store::testsuite::pg_cluster::{PgCluster, fresh_database};
use store::testsuite::{TestDatabase, challenge, event, issue, pending, record};
use store::{Error, PendingState, PgStore, Store};

/// The contract suite: one test per case, each on a fresh database.
mod contract {
    store::store_suite!(skip_unless super::fresh_database);
}

/// The ACME records contract on PostgreSQL.
mod acme_contract {
    store::acme_store_suite!(skip_unless super::fresh_database);
}

/// Two "nodes": two stores, each with its own pool and runtime, on one database.
fn two_nodes() -> Option<(Arc<dyn Store>, Arc<dyn Store>)> {
    let db = fresh_database()?;
    let mut b = db.options.clone();
    b.node = "node-b".into();
    let a = db.open();
    let b: Arc<dyn Store> = Arc::new(PgStore::open(&b).unwrap());
    Some((a, b))
}

/// Runs `f(node, thread)` on `per_node` threads of each node, all released at once.
fn race<T: Send + 'static>(
    nodes: &[Arc<dyn Store>],
    per_node: usize,
    f: impl Fn(&dyn Store, usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(nodes.len() * per_node));
    let handles: Vec<_> = nodes
        .iter()
        .flat_map(|n| (0..per_node).map(move |t| (Arc::clone(n), t)))
        .enumerate()
        .map(|(k, (node, _))| {
            let (f, barrier) = (Arc::clone(&f), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                f(&*node, k)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn a_challenge_raced_by_two_nodes_is_consumed_exactly_once() {
    let Some((a, b)) = two_nodes() else { return };
    for round in 0..5u8 {
        let hash = vec![0xc0, round];
        a.put_challenge(
            &challenge(&hash, "scep/default", i64::MAX),
            &event("challenge", "x"),
        )
        .unwrap();
        let h = hash.clone();
        let results = race(&[Arc::clone(&a), Arc::clone(&b)], 6, move |s, _| {
            s.consume_challenge(&h, "scep/default", 2000, &event("use", "x"))
        });
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .all(|e| matches!(e, Error::Conflict(_))),
            "the losers see it used: {results:?}"
        );
        assert_eq!(b.get_challenge(&hash).unwrap().unwrap().used_at, Some(2000));
    }
    assert_eq!(a.verify_audit().unwrap().first_bad, None);
}

#[test]
fn a_pending_request_approved_by_two_nodes_at_once_is_approved_once() {
    let Some((a, b)) = two_nodes() else { return };
    for round in 0..5 {
        let key = format!("tx-{round}");
        let id = a
            .put_pending(&pending(&key), &event("pending", &key))
            .unwrap();
        let results = race(&[Arc::clone(&a), Arc::clone(&b)], 4, move |s, k| {
            let mut req = s.get_pending(id).unwrap().unwrap();
            req.state = PendingState::Issued;
            req.serial = Some(vec![0x40, u8::try_from(k).unwrap()]);
            s.update_pending(&req, &event("approve", &id.to_string()))
                .map(|()| k)
        });
        let winners: Vec<usize> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let stored = b.get_pending(id).unwrap().unwrap();
        assert_eq!(stored.state, PendingState::Issued);
        assert_eq!(
            stored.serial,
            Some(vec![0x40, u8::try_from(winners[0]).unwrap()]),
            "the stored decision is the winner's"
        );
    }
    // And the same key cannot be held twice by two nodes racing to put it.
    let results = race(&[Arc::clone(&a), Arc::clone(&b)], 4, |s, _| {
        s.put_pending(&pending("same"), &event("pending", "same"))
    });
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert_eq!(a.verify_audit().unwrap().first_bad, None);
}

#[test]
fn crl_numbers_from_two_nodes_strictly_increase_without_repeats() {
    let Some((a, b)) = two_nodes() else { return };
    let results = race(&[Arc::clone(&a), Arc::clone(&b)], 4, |s, _| {
        let mut got = Vec::new();
        let mut last = 0;
        for _ in 0..25 {
            let n = s.next_crl_number("issuing").unwrap();
            assert!(n > last, "one caller sees its numbers increase");
            last = n;
            got.push(n);
        }
        got
    });
    let mut all: Vec<u64> = results.into_iter().flatten().collect();
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count, "no number was handed out twice");
    assert_eq!(all, (1..=count as u64).collect::<Vec<_>>());
    assert_eq!(b.next_crl_number("issuing").unwrap(), count as u64 + 1);
    assert_eq!(a.next_crl_number("other").unwrap(), 1);
}

#[test]
fn the_audit_chain_stays_one_verifiable_chain_under_concurrent_appends_from_two_nodes() {
    let Some((a, b)) = two_nodes() else { return };
    let seqs = race(&[Arc::clone(&a), Arc::clone(&b)], 4, |s, k| {
        let mut seqs = Vec::new();
        for i in 0..20u8 {
            let serial = [0x10 + u8::try_from(k).unwrap(), i];
            seqs.push(issue(s, &record(&serial, "ca", 2_000_000_000)));
            seqs.push(s.append_audit(&event("note", &format!("{k}/{i}"))).unwrap());
            if i % 4 == 0 {
                s.revoke(&serial, store::Revocation::new(5, 1), &event("revoke", "x"))
                    .unwrap();
            }
        }
        seqs
    });
    let mut all: Vec<u64> = seqs.into_iter().flatten().collect();
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count, "every append got its own seq");
    let v = b.verify_audit().unwrap();
    assert_eq!(v.first_bad, None, "{v:?}");
    let revocations = 8 * 5;
    assert_eq!(v.entries, count as u64 + revocations);
    let entries = a.audit_entries(1, usize::MAX).unwrap();
    assert!(
        entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.seq == i as u64 + 1)
    );
    let stats = a.stats().unwrap();
    assert_eq!((stats.certificates, stats.revoked), (160, revocations));
}

#[test]
fn a_serial_raced_by_two_nodes_is_reserved_and_recorded_once() {
    let Some((a, b)) = two_nodes() else { return };
    let results = race(&[Arc::clone(&a), Arc::clone(&b)], 4, |s, _| {
        s.reserve_serial(&[0x77, 1], "ca")
    });
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, Error::Conflict(_)))
    );
    let r = record(&[0x77, 1], "ca", 2_000_000_000);
    let results = race(&[Arc::clone(&a), Arc::clone(&b)], 4, move |s, _| {
        s.record_issuance(&r, &event("issue", "x"))
    });
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert_eq!(a.stats().unwrap().certificates, 1);
}

#[test]
fn a_replayed_transaction_raced_by_two_nodes_issues_once() {
    let Some((a, b)) = two_nodes() else { return };
    let results = race(&[Arc::clone(&a), Arc::clone(&b)], 3, |s, k| {
        let serial = [0x50, u8::try_from(k).unwrap()];
        let r = record(&serial, "ca", 2_000_000_000);
        s.reserve_serial(&serial, "ca").unwrap();
        s.record_issuance_bound(
            &r,
            &event("issue", "x"),
            &store::testsuite::bound("replay-1", &format!("tx-{k}"), None),
        )
    });
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert_eq!(b.stats().unwrap().certificates, 1);
}

#[test]
fn migrate_is_idempotent_and_open_refuses_an_unknown_or_edited_schema() {
    let Some(cluster) = PgCluster::shared() else {
        return;
    };
    let name = cluster.create_database();
    let options = cluster.options(&name);
    // Not migrated: refused with what to do.
    match PgStore::open(&options) {
        Err(Error::Schema(m)) => assert!(m.contains("privca store migrate"), "{m}"),
        other => panic!("expected a schema error, got {other:?}"),
    }
    let every: Vec<i32> = store::MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(PgStore::migrate(&options).unwrap(), every);
    assert_eq!(PgStore::migrate(&options).unwrap(), Vec::<i32>::new());
    let s = PgStore::open(&options).unwrap();
    s.append_audit(&event("note", "x")).unwrap();
    drop(s);

    // Two nodes migrating a new database at once: one applies, both succeed.
    let name2 = cluster.create_database();
    let o2 = cluster.options(&name2);
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let o = o2.clone();
            std::thread::spawn(move || PgStore::migrate(&o).unwrap())
        })
        .collect();
    let mut applied: Vec<Vec<i32>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    applied.sort();
    assert_eq!(applied, vec![vec![], every.clone()]);

    // A schema from a newer privca, and an edited one, are refused at open.
    let psql = |sql: &str| {
        let s = PgStore::open(&options);
        drop(s);
        let bin = store::testsuite::pg_cluster::find_bin().unwrap();
        let out = std::process::Command::new(bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &cluster.port().to_string(),
                "-U",
                "privca",
                "-d",
            ])
            .arg(&name)
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql("INSERT INTO schema_migrations VALUES (99, 'future', 'x', 0)");
    match PgStore::open(&options) {
        Err(Error::UnsupportedSchema {
            found: 99,
            supported,
        }) if i64::try_from(supported).ok() == Some(i64::from(store::latest_version())) => {}
        other => panic!("expected UnsupportedSchema, got {other:?}"),
    }
    psql(
        "DELETE FROM schema_migrations WHERE version = 99; UPDATE schema_migrations SET checksum = 'edited'",
    );
    match PgStore::open(&options) {
        Err(Error::Schema(m)) => assert!(m.contains("checksum"), "{m}"),
        other => panic!("expected a checksum error, got {other:?}"),
    }
}

#[test]
fn a_stopped_database_is_unavailable_and_the_same_store_recovers_when_it_returns() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let db = cluster.database();
    let s = db.open();
    issue(&*s, &record(&[1], "ca", 2_000_000_000));
    s.check_writable().unwrap();
    cluster.pause();
    let e = s.append_audit(&event("note", "down")).unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    let e = s.check_writable().unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    assert!(matches!(s.get_cert(&[1]), Err(Error::Unavailable(_))));
    cluster.resume();
    // Connections broken by the restart are replaced; allow a few attempts.
    let mut ok = false;
    for _ in 0..20 {
        if s.check_writable().is_ok() && s.append_audit(&event("note", "up")).is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(ok, "the store did not recover");
    assert!(s.get_cert(&[1]).unwrap().is_some());
    assert_eq!(s.verify_audit().unwrap().first_bad, None);
    let seen: HashSet<u64> = s
        .audit_entries(1, 100)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert!(seen.len() >= 2);
}

#[test]
fn concurrent_issuances_share_commits_and_a_refused_one_does_not_affect_the_others() {
    let Some(db) = fresh_database() else { return };
    let store = Arc::new(PgStore::open(&db.options).unwrap());
    const THREADS: u8 = 16;
    const PER_THREAD: u8 = 10;
    let barrier = Arc::new(Barrier::new(usize::from(THREADS)));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let mut seqs = Vec::new();
                for i in 0..PER_THREAD {
                    let r = record(&[0x60, t, i], "ca", 2_000_000_000);
                    store.reserve_serial(&r.serial, "ca").unwrap();
                    seqs.push(store.record_issuance(&r, &event("issue", "x")).unwrap());
                    // Never reserved: refused inside a batch with the others.
                    let stray = record(&[0x61, t, i], "ca", 2_000_000_000);
                    assert!(matches!(
                        store.record_issuance(&stray, &event("issue", "stray")),
                        Err(Error::Conflict(_))
                    ));
                }
                seqs
            })
        })
        .collect();
    let mut seqs: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let total = usize::from(THREADS) * usize::from(PER_THREAD);
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), total);
    let stats = store.stats().unwrap();
    assert_eq!(stats.certificates, total as u64);
    assert_eq!(
        stats.audit_entries, total as u64,
        "refused issuances wrote no audit entry"
    );
    assert_eq!(store.verify_audit().unwrap().first_bad, None);
    let (commits, issuances) = store.group_commit_stats();
    println!("{issuances} issuances in {commits} commits");
    assert_eq!(issuances, 2 * total as u64);
    assert!(commits < issuances, "concurrent issuances shared commits");
}

/// Runs `openssl` with `args` in `dir`; panics with its output when it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`name.crt`, `name.key`) made by OpenSSL in `dir`.
fn openssl_ca(dir: &std::path::Path, name: &str) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            "/CN=database test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// TLS to the database (`[store.postgres] tls`, PostgreSQL's `sslmode=verify-full`)
/// against a cluster that refuses plaintext: the store connects when it trusts the CA
/// that issued the server's certificate for 127.0.0.1, and refuses to when it trusts
/// another CA or is told not to use TLS.
#[test]
fn tls_to_the_database_verifies_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl_ca(d, "ca");
    openssl_ca(d, "other");
    openssl(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let cert = std::fs::read(d.join("server.crt")).unwrap();
    let key = std::fs::read(d.join("server.key")).unwrap();
    let Some(cluster) = PgCluster::start_tls(&cert, &key) else {
        return;
    };
    let dbname = cluster.create_database();
    let mut options = cluster.options(&dbname);

    options.tls = store::PgTls::VerifyFull(d.join("ca.crt"));
    PgStore::migrate(&options).unwrap();
    let s = PgStore::open(&options).unwrap();
    issue(&s, &record(&[7], "ca", 1_000));
    assert_eq!(s.stats().unwrap().certificates, 1);
    drop(s);

    options.tls = store::PgTls::VerifyFull(d.join("other.crt"));
    let Err(e) = PgStore::open(&options) else {
        panic!("a server the CA did not certify")
    };
    assert!(e.to_string().contains("certificate"), "{e}");

    options.tls = store::PgTls::Disable;
    let Err(e) = PgStore::open(&options) else {
        panic!("plaintext is refused by the server")
    };
    assert!(
        e.to_string().contains("no pg_hba.conf entry") || e.to_string().contains("SSL off"),
        "{e}"
    );
}

/// The CRL lease across two nodes (issue 12): one holder at a time; the token grows
/// with each new holder; a CRL signed under a lease that another node has taken over
/// is refused, and the new holder's is stored.
#[test]
fn the_crl_lease_has_one_holder_and_fences_out_a_late_signer() {
    let Some((a, b)) = two_nodes() else {
        return;
    };
    let now = 1_000_000;
    let t1 = a
        .crl_lease("ca", "node-a", now, 60)
        .unwrap()
        .expect("A takes it");
    // B is refused while A's lease runs; A renews with the same token.
    assert_eq!(b.crl_lease("ca", "node-b", now + 10, 60).unwrap(), None);
    assert_eq!(a.crl_lease("ca", "node-a", now + 20, 60).unwrap(), Some(t1));
    // Another CA's lease is its own.
    assert!(b.crl_lease("other", "node-b", now, 60).unwrap().is_some());
    let crl = |number: u64| store::StoredCrl {
        number,
        this_update: now,
        next_update: now + 3600,
        der: vec![0x30, 0x00],
    };
    a.put_crl_fenced("ca", &crl(1), t1, &event("crl", "ca"))
        .unwrap();
    // A's lease runs out (it stalled while signing); B takes over with a new token.
    let t2 = b
        .crl_lease("ca", "node-b", now + 200, 60)
        .unwrap()
        .expect("B takes it");
    assert!(t2 > t1);
    // A's late CRL, signed under the old token, is refused; B's is stored.
    let late = a.put_crl_fenced("ca", &crl(2), t1, &event("crl", "ca"));
    assert!(matches!(late, Err(Error::Conflict(_))), "{late:?}");
    b.put_crl_fenced("ca", &crl(3), t2, &event("crl", "ca"))
        .unwrap();
    assert_eq!(a.latest_crl("ca").unwrap().expect("crl").number, 3);
    // A stale holder's release leaves B's lease alone; B's own release lets A in at once.
    a.crl_lease_release("ca", "node-a", t1).unwrap();
    assert_eq!(a.crl_lease("ca", "node-a", now + 210, 60).unwrap(), None);
    b.crl_lease_release("ca", "node-b", t2).unwrap();
    let t3 = a
        .crl_lease("ca", "node-a", now + 211, 60)
        .unwrap()
        .expect("A again");
    assert!(t3 > t2);
    // Two nodes asking at once: exactly one gets it.
    let (a2, b2) = (a.clone(), b.clone());
    let ha = std::thread::spawn(move || a2.crl_lease("race", "node-a", now, 60).unwrap());
    let hb = std::thread::spawn(move || b2.crl_lease("race", "node-b", now, 60).unwrap());
    let got = [ha.join().unwrap(), hb.join().unwrap()];
    assert_eq!(got.iter().filter(|g| g.is_some()).count(), 1, "{got:?}");
}
