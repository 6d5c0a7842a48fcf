//! Tests of the public store API on the redb backend: the contract suite every backend
//! passes (`store::testsuite`), then what is redb's own (its file, its tables, its writer,
//! a full disk).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::ReadableTable;

use store::testsuite::{TestDatabase, event, issue, record};
use store::{AuditEntry, AuditEvent, Error, RedbStore, Revocation, Store, StoreOptions};

fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("privca.redb");
    (dir, path)
}

/// A redb file in a temporary directory, as the server opens it.
struct RedbFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl RedbFile {
    fn new() -> RedbFile {
        let (_dir, path) = temp_db();
        RedbFile { _dir, path }
    }
}

impl TestDatabase for RedbFile {
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(RedbStore::open(&self.path, StoreOptions::default()).unwrap())
    }
}

/// The contract suite: one test per case, each on a fresh file.
mod contract {
    store::store_suite!(super::RedbFile::new);
}

/// The ACME records contract, each case on a fresh file.
mod acme_contract {
    store::acme_store_suite!(super::RedbFile::new);
}

/// The audit table as the module documentation describes it.
const AUDIT: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("audit");
const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");

fn tamper(path: &Path, seq: u64, change: impl FnOnce(&mut serde_json::Value)) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(AUDIT).unwrap();
        let mut value: serde_json::Value =
            serde_json::from_slice(table.get(seq).unwrap().unwrap().value()).unwrap();
        change(&mut value);
        let bytes = serde_json::to_vec(&value).unwrap();
        table.insert(seq, bytes.as_slice()).unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn audit_tamper_detected() {
    let (_dir, path) = temp_db();
    {
        let store = RedbStore::open(&path, StoreOptions::default()).unwrap();
        for i in 1..=5 {
            store.append_audit(&event("note", &i.to_string())).unwrap();
        }
        assert_eq!(store.verify_audit().unwrap().first_bad, None);
    }
    tamper(&path, 3, |v| v["event"]["detail"] = "rewritten".into());
    let store = RedbStore::open(&path, StoreOptions::default()).unwrap();
    let v = store.verify_audit().unwrap();
    assert_eq!((v.entries, v.first_bad), (5, Some(3)));
    drop(store);

    // Recomputing the tampered entry's own hash still breaks the link of the next one.
    tamper(&path, 3, |v| {
        let event: AuditEvent = serde_json::from_value(v["event"].clone()).unwrap();
        let prev = v["prev_hash"].as_str().unwrap().to_string();
        v["hash"] = AuditEntry::compute_hash(3, &prev, &event).unwrap().into();
    });
    let store = RedbStore::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.verify_audit().unwrap().first_bad, Some(4));
}

#[test]
fn audit_gap_detected() {
    let (_dir, path) = temp_db();
    {
        let store = RedbStore::open(&path, StoreOptions::default()).unwrap();
        for i in 1..=4 {
            store.append_audit(&event("note", &i.to_string())).unwrap();
        }
    }
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(AUDIT).unwrap().remove(2).unwrap();
        txn.commit().unwrap();
    }
    let store = RedbStore::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.verify_audit().unwrap().first_bad, Some(3));
}

#[test]
fn newer_schema_is_refused() {
    let (_dir, path) = temp_db();
    drop(RedbStore::open(&path, StoreOptions::default()).unwrap());
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", 3)
            .unwrap();
        txn.commit().unwrap();
    }
    match RedbStore::open(&path, StoreOptions::default()) {
        Err(Error::UnsupportedSchema {
            found: 3,
            supported: 2,
        }) => {}
        other => panic!("expected UnsupportedSchema, got {other:?}"),
    }
}

#[test]
fn locked_database_is_reported() {
    let (_dir, path) = temp_db();
    let first = RedbStore::open(&path, StoreOptions::default()).unwrap();
    match RedbStore::open(&path, StoreOptions::default()) {
        Err(Error::Locked(p)) => assert_eq!(p, path.display().to_string()),
        other => panic!("expected Locked, got {other:?}"),
    }
    // Plain redb is refused too while the store holds it.
    assert!(matches!(
        redb::Database::open(&path),
        Err(redb::DatabaseError::DatabaseAlreadyOpen)
    ));
    drop(first);
    // Dropping the store releases the file.
    RedbStore::open(&path, StoreOptions::default()).unwrap();
}

#[test]
fn concurrent_writers_16_threads() {
    let (_dir, path) = temp_db();
    let store = Arc::new(RedbStore::open(&path, StoreOptions::default()).unwrap());
    const THREADS: u8 = 16;
    const PER_THREAD: u8 = 25;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for i in 0..PER_THREAD {
                    let r = record(&[t + 1, i, 0x55], "ca", i64::from(i) * 100);
                    store.reserve_serial(&r.serial, "ca").unwrap();
                    seqs.push(store.record_issuance(&r, &event("issue", "x")).unwrap());
                    if i % 5 == 0 {
                        store
                            .revoke(&r.serial, Revocation::new(1, 0), &event("revoke", "x"))
                            .unwrap();
                    }
                    // Contended refusals must not disturb the others.
                    assert!(matches!(
                        store.reserve_serial(&r.serial, "ca"),
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
    seqs.sort_unstable();
    seqs.dedup();
    let total = u64::from(THREADS) * u64::from(PER_THREAD);
    assert_eq!(seqs.len() as u64, total, "every issuance got its own seq");

    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            assert!(store.get_cert(&[t + 1, i, 0x55]).unwrap().is_some());
        }
    }
    let stats = store.stats().unwrap();
    let revokes = u64::from(THREADS) * u64::from(PER_THREAD).div_ceil(5);
    assert_eq!(stats.certificates, total);
    assert_eq!(stats.revoked, revokes);
    assert_eq!(stats.audit_entries, total + revokes);
    let entries = store.audit_entries(1, usize::MAX).unwrap();
    assert!(
        entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.seq == i as u64 + 1),
        "seqs contiguous"
    );
    let v = store.verify_audit().unwrap();
    assert_eq!((v.entries, v.first_bad), (total + revokes, None));
    let w = store.writer_stats();
    println!(
        "commits {} operations {} largest batch {}",
        w.commits, w.operations, w.largest_batch
    );
    // Every successful write was part of a commit; refusals only when batched with others.
    assert!(w.operations >= total * 2 + revokes);
    assert!(w.operations <= total * 3 + revokes);
}

#[test]
fn writer_stops_on_drop() {
    let (_dir, path) = temp_db();
    let store = RedbStore::open(
        &path,
        StoreOptions {
            max_batch: 1,
            ..Default::default()
        },
    )
    .unwrap();
    store.append_audit(&event("a", "b")).unwrap();
    assert_eq!(store.writer_stats().largest_batch, 1);
    drop(store);
    // The writer released its handle on the database: the file opens again at once.
    let again = RedbStore::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(again.verify_audit().unwrap().entries, 1);
}

/// Throughput of durable issuances (reserve + record) from 16 threads into a file.
/// Run with `cargo test -p store --release -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; prints figures"]
fn throughput_16_threads() {
    const THREADS: u32 = 16;
    const TOTAL: u32 = 20_000;
    let (_dir, path) = temp_db();
    let store = Arc::new(RedbStore::open(&path, StoreOptions::default()).unwrap());
    let start = std::time::Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..TOTAL / THREADS {
                    let n = t * 1_000_000 + i + 1;
                    let mut serial = vec![0x01];
                    serial.extend_from_slice(&n.to_be_bytes());
                    let mut r = record(&serial, "ca", 1_800_000_000 + i64::from(n));
                    r.der = vec![0x5a; 1_200];
                    store.reserve_serial(&r.serial, "ca").unwrap();
                    store
                        .record_issuance(&r, &event("issue", &hex::encode(&serial)))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let elapsed = start.elapsed();
    let w = store.writer_stats();
    println!(
        "{TOTAL} issuances (reserve + record, each durable) from {THREADS} threads in {:.2} s: \
         {:.0} issuances/s, {:.0} write ops/s; {} commits, mean batch {:.1} ops, largest {}",
        elapsed.as_secs_f64(),
        f64::from(TOTAL) / elapsed.as_secs_f64(),
        w.operations as f64 / elapsed.as_secs_f64(),
        w.commits,
        w.operations as f64 / w.commits as f64,
        w.largest_batch
    );
    assert_eq!(store.stats().unwrap().certificates, u64::from(TOTAL));
    assert_eq!(store.verify_audit().unwrap().first_bad, None);
}

/// Issue 9 item 7: a new database file is created with mode 0600, whatever the umask,
/// and it still opens and works (redb initialises the empty file).
#[test]
fn new_database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = temp_db();
    let s = RedbStore::open(&path, StoreOptions::default()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "privca.redb mode {mode:o}");
    issue(&s, &record(&[1, 2, 3], "ca", 2_000_000_000));
    drop(s);
    let s = RedbStore::open(&path, StoreOptions::default()).unwrap();
    assert!(s.get_cert(&[1, 2, 3]).unwrap().is_some());
}

// ---------------------------------------------------------------------------------------
// Paging (issue 9 item 14).

// ---------------------------------------------------------------------------------------
// A full disk (issue 9 item 11): on a small tmpfs, writes fail with a retryable
// `Unavailable` error while the disk is full, and work again without reopening the store
// once space is freed.

/// A tmpfs mounted for a test; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system with `filler` until it is full.
    fn fill(&self, filler: &Path) {
        use std::io::Write;
        let mut f = std::fs::File::create(filler).unwrap();
        let block = vec![0xa5u8; 64 * 1024];
        for _ in 0..100_000 {
            if f.write_all(&block).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn full_disk_fails_retryably_and_recovers_without_restart() {
    let Some(fs) = Tmpfs::mount("4m") else {
        return;
    };
    let path = fs.path().join("privca.redb");
    let filler = fs.path().join("filler");
    let store = RedbStore::open(&path, StoreOptions::default()).unwrap();
    issue(&store, &record(&[1], "a", 2_000_000));
    let before = store.stats().unwrap().audit_entries;
    fs.fill(&filler);

    // Write until the disk refuses (redb may still have free pages in its file).
    let big = |i: usize| AuditEvent {
        detail: "x".repeat(32 * 1024),
        ..event("fill", &i.to_string())
    };
    let mut failure = None;
    for i in 0..2_000 {
        match store.append_audit(&big(i)) {
            Ok(_) => continue,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("writes kept working on a full disk");
    assert!(
        matches!(failure, Error::Unavailable(_)),
        "a full disk is a retryable storage error, not {failure:?}"
    );
    // Still full: every write keeps failing the same way, and the probe says so.
    let again = store.append_audit(&event("again", "x")).unwrap_err();
    assert!(matches!(again, Error::Unavailable(_)), "{again:?}");
    let probe = store.check_writable().unwrap_err();
    assert!(matches!(probe, Error::Unavailable(_)), "{probe:?}");

    // Space again: the same store (no restart) writes again.
    std::fs::remove_file(&filler).unwrap();
    store
        .check_writable()
        .expect("writes work once space is freed");
    let seq = store.append_audit(&event("after", "space")).unwrap();
    assert!(seq > before);
    issue(&store, &record(&[2], "a", 2_000_001));
    assert!(
        store.get_cert(&[1]).unwrap().is_some(),
        "earlier records kept"
    );
    assert!(store.get_cert(&[2]).unwrap().is_some());
    let v = store.verify_audit().unwrap();
    assert_eq!(v.first_bad, None, "{v:?}");
    drop(store);
    // And the file opens cleanly afterwards.
    let store = RedbStore::open(&path, StoreOptions::default()).unwrap();
    assert!(store.get_cert(&[2]).unwrap().is_some());
}
