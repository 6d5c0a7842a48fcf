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
        },
        // not found: never recorded; must write no audit entry
        Op::Revoke {
            serial: vec![3],
            revocation: Revocation { time: 9, reason: 1 },
            audit: event("revoke", "03"),
        },
        // ok: audit seq 3 (no gap from the refused ones)
        Op::AppendAudit {
            event: event("note", "x"),
        },
        // ok
        Op::Revoke {
            serial: vec![1],
            revocation: Revocation { time: 9, reason: 1 },
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
        },
    ];
    let (jobs, answers): (Vec<_>, Vec<_>) = ops.into_iter().map(job).unzip();
    writer.process(jobs);
    for answer in answers {
        // An I/O failure is a retryable storage error.
        assert!(matches!(answer.recv().unwrap(), Err(Error::Unavailable(_))));
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
            .revoke(s, Revocation { time: 1, reason: 0 }, &event("revoke", "x"))
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
