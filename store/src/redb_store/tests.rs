//! Tests of the writer's batch semantics that need its internals.

#![allow(clippy::unwrap_used)]

use super::*;
use std::sync::atomic::AtomicBool;

fn event(action: &str, subject: &str) -> AuditEvent {
    AuditEvent {
        time: 1_700_000_000,
        action: action.into(),
        actor: "test".into(),
        subject: subject.into(),
        detail: String::new(),
    }
}

fn record(serial: &[u8], issuer: &str) -> CertRecord {
    CertRecord {
        serial: serial.to_vec(),
        issuer: issuer.into(),
        subject: "CN=x".into(),
        sans: vec![],
        profile: "server".into(),
        requester: "test".into(),
        not_before: 0,
        not_after: 1_800_000_000,
        issued_at: 1_700_000_000,
        status: CertStatus::Valid,
        revocation: None,
        spki_sha256: Vec::new(),
        der: vec![0x30, 0x00],
    }
}

/// A second writer on the store's database, so a batch can be handed over directly.
fn side_writer(store: &RedbStore) -> Writer {
    Writer {
        shared: Arc::clone(&store.shared),
        reopen: false,
        max_batch: 64,
        quick_repair: false,
        tip: None,
        counters: Arc::new(Counters::default()),
    }
}

fn job(op: Op) -> (Job, Receiver<Result<Reply>>) {
    let (reply, answer) = mpsc::sync_channel(1);
    (Job { op, reply }, answer)
}

#[test]
fn batch_with_conflict_isolated() {
    let store = RedbStore::in_memory().unwrap();
    store.reserve_serial(&[1], "ca").unwrap();
    store.append_audit(&event("init", "ca")).unwrap();

    let mut writer = side_writer(&store);
    let ops = vec![
        // ok
        Op::ReserveSerial {
            serial: vec![2],
            issuer: "ca".into(),
            at: 5,
        },
        // conflict: reserved before this batch
        Op::ReserveSerial {
            serial: vec![1],
            issuer: "ca".into(),
            at: 5,
        },
        // ok: records serial 1
        Op::RecordIssuance {
            record: Box::new(record(&[1], "ca")),
            audit: event("issue", "01"),
            binding: Box::default(),
        },
        // conflict: serial 2 reserved earlier in this batch
        Op::ReserveSerial {
            serial: vec![2],
            issuer: "ca".into(),
            at: 5,
        },
        // conflict: recorded earlier in this batch; must write no audit entry
        Op::RecordIssuance {
            record: Box::new(record(&[1], "ca")),
            audit: event("issue", "dup"),
            binding: Box::default(),
        },
        // not found: never recorded; must write no audit entry
        Op::Revoke {
            serial: vec![3],
            revocation: Revocation::new(9, 1),
            block_key: None,
            audit: event("revoke", "03"),
        },
        // ok: audit seq 3 (no gap from the refused ones)
        Op::AppendAudit {
            event: event("note", "x"),
        },
        // ok
        Op::Revoke {
            serial: vec![1],
            revocation: Revocation::new(9, 1),
            block_key: None,
            audit: event("revoke", "01"),
        },
    ];
    let (jobs, answers): (Vec<_>, Vec<_>) = ops.into_iter().map(job).unzip();
    writer.process(jobs);
    let results: Vec<Result<Reply>> = answers.into_iter().map(|a| a.recv().unwrap()).collect();

    assert!(matches!(results[0], Ok(Reply::Done)));
    assert!(matches!(results[1], Err(Error::Conflict(_))));
    assert!(matches!(results[2], Ok(Reply::Number(2))));
    assert!(matches!(results[3], Err(Error::Conflict(_))));
    assert!(matches!(results[4], Err(Error::Conflict(_))));
    assert!(matches!(results[5], Err(Error::NotFound(_))));
    assert!(matches!(results[6], Ok(Reply::Number(3))));
    match &results[7] {
        Ok(Reply::Record(r)) => assert_eq!(r.status, CertStatus::Revoked),
        other => panic!("unexpected {other:?}"),
    }
    // One commit for the whole batch.
    let stats = writer.counters;
    assert_eq!(stats.commits.load(Ordering::Relaxed), 1);
    assert_eq!(stats.operations.load(Ordering::Relaxed), 8);

    let entries = store.audit_entries(1, 100).unwrap();
    let actions: Vec<_> = entries.iter().map(|e| e.event.action.as_str()).collect();
    assert_eq!(actions, ["init", "issue", "note", "revoke"]);
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(store.verify_audit().unwrap().first_bad, None);
    assert!(store.get_cert(&[3]).unwrap().is_none());
    assert_eq!(store.stats().unwrap().revoked, 1);
}

#[test]
fn all_refused_batch_commits_nothing() {
    let store = RedbStore::in_memory().unwrap();
    store.reserve_serial(&[1], "ca").unwrap();
    let mut writer = side_writer(&store);
    let (j, a) = job(Op::ReserveSerial {
        serial: vec![1],
        issuer: "ca".into(),
        at: 0,
    });
    writer.process(vec![j]);
    assert!(matches!(a.recv().unwrap(), Err(Error::Conflict(_))));
    assert_eq!(writer.counters.commits.load(Ordering::Relaxed), 0);
}

/// An in-memory backend whose fsync fails on demand.
#[derive(Debug)]
struct FlakyBackend {
    inner: redb::backends::InMemoryBackend,
    fail: Arc<AtomicBool>,
}

impl redb::StorageBackend for FlakyBackend {
    fn len(&self) -> std::result::Result<u64, std::io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::result::Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::result::Result<(), std::io::Error> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::result::Result<(), std::io::Error> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::result::Result<(), std::io::Error> {
        self.inner.write(offset, data)
    }
}

#[test]
fn commit_failure_fails_whole_batch_and_reloads_tip() {
    let fail = Arc::new(AtomicBool::new(false));
    let db = Database::builder()
        .create_with_backend(FlakyBackend {
            inner: redb::backends::InMemoryBackend::new(),
            fail: Arc::clone(&fail),
        })
        .unwrap();
    let store = RedbStore::start(db, None, StoreOptions::default()).unwrap();
    store.append_audit(&event("init", "ca")).unwrap();
    store.reserve_serial(&[1], "ca").unwrap();

    // A batch of three through a side writer, so all three meet the failing commit.
    let mut writer = side_writer(&store);
    fail.store(true, Ordering::SeqCst);
    let ops = vec![
        Op::AppendAudit {
            event: event("a", "x"),
        },
        Op::ReserveSerial {
            serial: vec![1],
            issuer: "ca".into(),
            at: 0,
        }, // would conflict
        Op::RecordIssuance {
            record: Box::new(record(&[1], "ca")),
            audit: event("issue", "01"),
            binding: Box::default(),
        },
    ];
    let (jobs, answers): (Vec<_>, Vec<_>) = ops.into_iter().map(job).unzip();
    writer.process(jobs);
    // An I/O failure is a retryable storage error. It may come from the commit or, when
    // redb flushes while the batch grows the file, from an insert; in that case the
    // operation refused before it keeps its own refusal.
    for (i, answer) in answers.into_iter().enumerate() {
        let a = answer.recv().unwrap();
        assert!(
            matches!(a, Err(Error::Unavailable(_)))
                || (i == 1 && matches!(a, Err(Error::Conflict(_)))),
            "{i}: {a:?}"
        );
    }
    assert!(
        writer.tip.is_none(),
        "tip must be reloaded after a failed commit"
    );
    fail.store(false, Ordering::SeqCst);

    // Nothing of the batch is visible, and the chain on disk is intact.
    assert!(store.get_cert(&[1]).unwrap().is_none());
    let v = store.verify_audit().unwrap();
    assert_eq!((v.entries, v.first_bad), (1, None));

    // The store's own writer also fails while fsync fails, then whatever redb allows next
    // must keep the chain consistent.
    fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        store.append_audit(&event("b", "x")),
        Err(Error::Unavailable(_))
    ));
    fail.store(false, Ordering::SeqCst);
    match store.append_audit(&event("c", "x")) {
        Ok(seq) => {
            println!("write after the failed commit succeeded with seq {seq}");
            assert_eq!(seq, 2);
        }
        // redb may refuse further writes after an I/O failure until reopened.
        Err(e) => {
            println!("write after the failed commit refused: {e}");
            assert!(matches!(e, Error::Unavailable(_)), "{e}");
        }
    }
    let v = store.verify_audit().unwrap();
    assert_eq!(v.first_bad, None);
}

#[test]
fn dead_writer_is_closed_not_panic() {
    let mut store = RedbStore::in_memory().unwrap();
    // Replace the channel with one whose receiving end is gone, as if the writer had died.
    let (sender, receiver) = mpsc::channel::<Job>();
    drop(receiver);
    store.sender = Some(sender);
    assert!(matches!(
        store.reserve_serial(&[1], "ca"),
        Err(Error::Closed)
    ));
    assert!(matches!(
        store.append_audit(&event("a", "b")),
        Err(Error::Closed)
    ));

    // A writer that takes the job and drops it without answering.
    let (sender, receiver) = mpsc::channel::<Job>();
    let dropper = std::thread::spawn(move || {
        while let Ok(job) = receiver.recv() {
            drop(job);
        }
    });
    store.sender = Some(sender);
    assert!(matches!(store.next_crl_number("ca"), Err(Error::Closed)));
    store.sender = None;
    dropper.join().unwrap();
    // Reads still work without a writer.
    assert!(store.get_cert(&[1]).unwrap().is_none());
}

#[test]
fn revoked_keys_are_in_numeric_serial_order() {
    let store = RedbStore::in_memory().unwrap();
    let serials: [&[u8]; 4] = [&[0x02, 0x00], &[0x7f], &[0x00, 0x80], &[0x01]];
    for s in serials {
        store.reserve_serial(s, "ca").unwrap();
        store
            .record_issuance(&record(s, "ca"), &event("issue", "x"))
            .unwrap();
        store
            .revoke(s, Revocation::new(1, 0), &event("revoke", "x"))
            .unwrap();
    }
    let mut seen = Vec::new();
    store
        .for_each_revoked("ca", &mut |e| {
            seen.push(e.serial);
            Ok(())
        })
        .unwrap();
    assert_eq!(
        seen,
        vec![vec![0x01], vec![0x7f], vec![0x00, 0x80], vec![0x02, 0x00]]
    );
}

/// A disk that dies after a given number of writes (`write`, `set_len` and `sync_data`
/// each count): from then on nothing more reaches it, as after `kill -9` or a power cut.
/// What was written before stays, and a restart opens a copy of it.
#[derive(Debug, Clone)]
struct DyingDisk {
    bytes: Arc<std::sync::Mutex<Vec<u8>>>,
    /// Writes left before the crash; negative: never crashes.
    left: Arc<std::sync::atomic::AtomicI64>,
}

impl DyingDisk {
    fn new() -> DyingDisk {
        DyingDisk {
            bytes: Arc::default(),
            left: Arc::new(std::sync::atomic::AtomicI64::new(-1)),
        }
    }
    fn crash_after(&self, writes: i64) {
        self.left.store(writes, Ordering::SeqCst);
    }
    /// The disk as a restarted process finds it.
    fn restarted(&self) -> DyingDisk {
        let bytes = self.bytes.lock().unwrap().clone();
        DyingDisk {
            bytes: Arc::new(std::sync::Mutex::new(bytes)),
            left: Arc::new(std::sync::atomic::AtomicI64::new(-1)),
        }
    }
    fn io(&self) -> std::result::Result<(), std::io::Error> {
        let left = self.left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(std::io::Error::other("the process died"));
        }
        if left > 0 {
            self.left.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl redb::StorageBackend for DyingDisk {
    fn len(&self) -> std::result::Result<u64, std::io::Error> {
        Ok(self.bytes.lock().unwrap().len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::result::Result<(), std::io::Error> {
        let bytes = self.bytes.lock().unwrap();
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let end = start + out.len();
        if end > bytes.len() {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        out.copy_from_slice(&bytes[start..end]);
        Ok(())
    }
    fn set_len(&self, len: u64) -> std::result::Result<(), std::io::Error> {
        self.io()?;
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        self.bytes.lock().unwrap().resize(len, 0);
        Ok(())
    }
    fn sync_data(&self) -> std::result::Result<(), std::io::Error> {
        self.io()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::result::Result<(), std::io::Error> {
        self.io()?;
        let mut bytes = self.bytes.lock().unwrap();
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        if bytes.len() < start + data.len() {
            bytes.resize(start + data.len(), 0);
        }
        bytes[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }
}

fn open_disk(disk: &DyingDisk) -> RedbStore {
    let db = Database::builder()
        .create_with_backend(disk.clone())
        .expect("the database opens");
    RedbStore::start(db, None, StoreOptions::default()).expect("the store starts")
}

/// What a restarted store holds of the issuance of serial 9 under the keys and challenge
/// of [`crash_battery`]: (certificate, replay key, transaction key, challenge spent).
type Held = (bool, bool, bool, bool);

/// Runs `op` on a fresh store whose disk dies after 0, 1, 2, … writes, restarts after each
/// crash and reports what it finds, until `op` completes. Also checks the audit chain and
/// that an acknowledged `op` is durable.
fn crash_battery(op: impl Fn(&RedbStore) -> Result<()>) -> Vec<(Held, bool, Vec<String>)> {
    let mut seen = Vec::new();
    for writes in 0..1000 {
        let disk = DyingDisk::new();
        let store = open_disk(&disk);
        let ch = OneTimeChallenge {
            hash: b"h1".to_vec(),
            endpoint: "ep".into(),
            created_by: "admin".into(),
            created_at: 1000,
            expires_at: 5000,
            used_at: None,
            used_for: None,
        };
        store
            .put_challenge(&ch, &event("challenge-create", "ep"))
            .unwrap();
        store.reserve_serial(&[9], "ca").unwrap();
        disk.crash_after(writes);
        let result = op(&store);
        drop(store);

        let store = open_disk(&disk.restarted());
        assert_eq!(
            store.verify_audit().unwrap().first_bad,
            None,
            "crash at write {writes}"
        );
        let nine = Some(vec![9u8]);
        let ch = store.get_challenge(b"h1").unwrap().unwrap();
        let held = (
            store.get_cert(&[9]).unwrap().is_some(),
            store.find_transaction("scep:ep:t:k:replay").unwrap() == nine,
            store.find_transaction("scep:ep:t:k").unwrap() == nine,
            ch.used_at == Some(2000),
        );
        let actions = store
            .audit_entries(1, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.event.action)
            .collect();
        if result.is_ok() {
            assert_eq!(
                held,
                (true, true, true, true),
                "acknowledged but not durable"
            );
            seen.push((held, true, actions));
            return seen;
        }
        seen.push((held, false, actions));
    }
    panic!("the operation never completed");
}

/// Issue item 10, crash test: the process dies at every write of the commit that records
/// a certificate with its transaction keys and the one-time challenge it spends. After
/// each restart either all of it is there (certificate, both keys, challenge spent for
/// it, both audit entries) or none of it (challenge still unused). The same battery run
/// over the three commits the SCEP service made before (spend the challenge, record the
/// certificate, record the transaction) finds the partial states the examination saw.
#[test]
fn a_crash_at_any_write_of_a_bound_issuance_leaves_all_or_nothing() {
    let binding = IssuanceBinding {
        replay_key: Some("scep:ep:t:k:replay".into()),
        transaction_keys: vec!["scep:ep:t:k".into()],
        challenge: Some(crate::ChallengeUse {
            hash: b"h1".to_vec(),
            endpoint: "ep".into(),
            now: 2000,
            audit: event("challenge-use", "ep"),
        }),
    };
    let bound = crash_battery(|s| {
        s.record_issuance_bound(&record(&[9], "ca"), &event("issue", "09"), &binding)
            .map(|_| ())
    });
    for (i, (held, _, actions)) in bound.iter().enumerate() {
        match held {
            (true, true, true, true) => {
                assert_eq!(
                    actions,
                    &["challenge-create", "challenge-use", "issue"],
                    "{i}"
                )
            }
            (false, false, false, false) => assert_eq!(actions, &["challenge-create"], "{i}"),
            other => panic!("crash at write {i} left a partial issuance: {other:?}"),
        }
    }
    let crashes = bound.len() - 1;
    assert!(crashes > 0);

    let separate = crash_battery(|s| {
        s.consume_challenge(b"h1", "ep", 2000, &event("challenge-use", "ep"))?;
        s.record_issuance(&record(&[9], "ca"), &event("issue", "09"))?;
        s.put_transaction(&["scep:ep:t:k:replay".into(), "scep:ep:t:k".into()], &[9])
    });
    let partial: std::collections::BTreeSet<Held> = separate
        .iter()
        .map(|(h, _, _)| *h)
        .filter(|h| *h != (true, true, true, true) && *h != (false, false, false, false))
        .collect();
    println!(
        "bound issuance: {crashes} crash points, none partial; three separate commits: {} \
         crash points, partial states {partial:?}",
        separate.len() - 1
    );
    // A challenge spent without a certificate, and a certificate without its transaction.
    assert!(
        partial.contains(&(false, false, false, true)),
        "{partial:?}"
    );
    assert!(partial.contains(&(true, false, false, true)), "{partial:?}");
}

/// A database written before the key index existed: its records have no key hash and it is
/// not marked complete. `index_missing_keys` indexes them once, in batches, and then the
/// database is marked so that the next call does nothing.
#[test]
fn records_from_before_the_key_index_are_indexed_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    let store = RedbStore::open(&path, StoreOptions::default()).unwrap();
    // 1,500 records without a key hash: more than one batch.
    let records: Vec<CertRecord> = (0u16..1500)
        .map(|i| {
            let mut r = record(&[1, (i >> 8) as u8, i as u8], "ca");
            r.der = vec![0x30, 0x01, (i % 3) as u8];
            r
        })
        .collect();
    store
        .import_certificates(&records, &event("import", "old"))
        .unwrap();
    drop(store);
    // As an older privca left it: no completeness mark.
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().remove(KEY_INDEX_KEY).unwrap();
        txn.commit().unwrap();
    }
    let store = RedbStore::open(&path, StoreOptions::default()).unwrap();
    // The "hash" of a DER here is 32 copies of its last octet: three distinct keys.
    let hash_of = |der: &[u8]| der.last().map(|b| vec![*b; 32]);
    assert!(store.certs_by_spki(&[0; 32]).unwrap().is_empty());
    assert_eq!(store.index_missing_keys(&hash_of).unwrap(), 1500);
    assert_eq!(store.certs_by_spki(&[0; 32]).unwrap().len(), 500);
    assert_eq!(store.certs_by_spki(&[2; 32]).unwrap().len(), 500);
    assert!(
        store
            .certs_by_spki(&[1; 32])
            .unwrap()
            .iter()
            .all(|r| r.spki_sha256 == vec![1; 32] && !r.der.is_empty())
    );
    // Marked complete: nothing more to do, even with another hash function.
    assert_eq!(store.index_missing_keys(&|_| Some(vec![9; 32])).unwrap(), 0);
    assert!(store.certs_by_spki(&[9; 32]).unwrap().is_empty());
    // A new database is complete from the start.
    let fresh = RedbStore::in_memory().unwrap();
    fresh
        .import_certificates(&[record(&[7], "ca")], &event("import", "new"))
        .unwrap();
    assert_eq!(fresh.index_missing_keys(&hash_of).unwrap(), 0);
}

/// A database of schema 1 (no list indexes) gets them built on its first open, in several
/// transactions, and then answers every list filter as a new one does. An interrupted
/// build (version still 1, some entries written) is finished by the next open.
#[test]
fn schema_1_gets_its_list_indexes_on_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.redb");
    let store = RedbStore::open(&path, StoreOptions::default()).unwrap();
    // More records than one migration batch (64 under test).
    let records: Vec<CertRecord> = (0u16..300)
        .map(|i| {
            let mut r = record(
                &[2, (i >> 8) as u8, i as u8],
                if i % 3 == 0 { "a" } else { "b" },
            );
            r.profile = if i % 10 == 0 { "rare" } else { "server" }.into();
            r.subject = format!("CN=node-{i}");
            r.not_after = 1_800_000_000 + i64::from(i % 13);
            if i % 7 == 0 {
                r.status = CertStatus::Revoked;
                r.revocation = Some(Revocation::new(1_700_000_100, 1));
            }
            r
        })
        .collect();
    store
        .import_certificates(&records, &event("import", "v1"))
        .unwrap();
    let filters = [
        CertFilter {
            status: Some(CertStatus::Revoked),
            ..CertFilter::default()
        },
        CertFilter {
            profile: Some("rare".into()),
            ..CertFilter::default()
        },
        CertFilter {
            issuer: Some("a".into()),
            ..CertFilter::default()
        },
        CertFilter {
            text: Some("NODE-29".into()),
            ..CertFilter::default()
        },
    ];
    let before: Vec<Vec<Vec<u8>>> = filters
        .iter()
        .map(|f| {
            store
                .list_certs(f)
                .unwrap()
                .into_iter()
                .map(|r| r.serial)
                .collect()
        })
        .collect();
    assert_eq!(before[0].len(), 43);
    assert_eq!(before[1].len(), 30);
    assert_eq!(before[2].len(), 100);
    assert_eq!(before[3].len(), 11, "node-29 and node-290..299");
    drop(store);

    let downgrade = |keep_some: bool| {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(PROFILE_EXPIRY).unwrap();
        txn.delete_table(ISSUER_EXPIRY).unwrap();
        txn.delete_table(REVOKED_EXPIRY).unwrap();
        // An interrupted build leaves some index entries behind.
        if !keep_some {
            txn.delete_table(NAMES).unwrap();
        }
        txn.open_table(META).unwrap().insert(SCHEMA_KEY, 1).unwrap();
        txn.commit().unwrap();
    };
    for interrupted in [false, true] {
        downgrade(interrupted);
        let store = RedbStore::open(&path, StoreOptions::default()).unwrap();
        for (f, want) in filters.iter().zip(&before) {
            let got: Vec<Vec<u8>> = store
                .list_certs(f)
                .unwrap()
                .into_iter()
                .map(|r| r.serial)
                .collect();
            assert_eq!(&got, want, "{f:?}");
        }
        drop(store);
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let version = txn
            .open_table(META)
            .unwrap()
            .get(SCHEMA_KEY)
            .unwrap()
            .unwrap()
            .value();
        assert_eq!(version, SCHEMA_VERSION);
    }
}
