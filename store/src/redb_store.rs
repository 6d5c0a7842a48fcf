//! The embedded backend: [`RedbStore`] on redb 4.6 (DESIGN.md decision 5).
//!
//! # Tables and key encoding
//!
//! Integers are redb's native little-endian fixed-width types (`u64`, `i64`, `u8`), compared
//! numerically; `&str` and `&[u8]` compare byte-wise; tuples compare element by element.
//! Serials are the DER INTEGER contents octets, 1 to 20 of them.
//!
//! | table          | key                                   | value                                          |
//! |----------------|---------------------------------------|------------------------------------------------|
//! | `meta`         | `&str` name                           | `u64`; `"schema_version"` → 1                  |
//! | `certs`        | `&[u8]` serial                        | JSON of [`CertRecord`] with `der` empty        |
//! | `cert_der`     | `&[u8]` serial                        | `&[u8]` the certificate, DER                   |
//! | `serials`      | `&[u8]` serial                        | `(&str issuer, i64 reserved_at)`, never removed |
//! | `expiry`       | `(i64 not_after, &[u8] serial)`       | `()`                                           |
//! | `revoked`      | `(&str issuer, &[u8] len ‖ serial)`   | `(i64 time, u8 reason)`                        |
//! | `crl_numbers`  | `&str` issuer                         | `u64` last allocated cRLNumber                 |
//! | `crls`         | `&str` issuer                         | `(u64 number, i64 this_update, i64 next_update, &[u8] der)` |
//! | `pending`      | `u64` id                              | JSON of [`PendingRequest`]                     |
//! | `pending_keys` | `&str` lookup key                     | `u64` id of the newest request with that key   |
//! | `audit`        | `u64` seq                             | JSON of [`AuditEntry`]                         |
//! | `challenges`   | `&[u8]` SHA-256 of a one-time challenge | JSON of [`OneTimeChallenge`]                 |
//! | `transactions` | `&str` protocol transaction key       | `&[u8]` serial it produced                     |
//! | `probe`        | `&str` `"headroom"`                   | 1 MiB written and removed by a write probe     |
//!
//! In `revoked` the serial element is prefixed with one byte holding its length, so that a
//! range scan over one issuer yields minimally encoded positive serials in numeric order; the
//! whole revocation list of an issuer is one range scan. `expiry` makes listing by expiry a
//! range scan too. A database whose `schema_version` is newer than this code's is refused with
//! [`Error::UnsupportedSchema`].
//!
//! # Group commit
//!
//! Reads run on the calling thread in their own read transaction. Every write is sent as an
//! operation over a channel to one writer thread owned by the store, and the caller blocks on
//! its own reply channel. The writer takes the first queued operation and whatever else is
//! queued behind it, up to [`StoreOptions::max_batch`], applies them in order in one write
//! transaction, commits once (one fsync, redb's default `Durability::Immediate`) and then
//! replies to each. Operations that arrive while a commit is being flushed queue up and form
//! the next batch, so under load many writers share each fsync.
//!
//! Each operation first checks everything (reading from the transaction, so it sees the
//! earlier operations of its batch) and encodes everything, and only then inserts. An
//! operation refused by its checks ([`Error::Conflict`], [`Error::NotFound`],
//! [`Error::Invalid`]) has written nothing and does not affect the others. If the engine fails
//! while applying, the transaction is aborted and every operation not already refused gets the
//! error; if the commit fails, every operation of the batch gets the error.
//!
//! The writer assigns audit sequence numbers and chain hashes. It reads the last audit entry
//! once, then keeps the tip in memory, advancing it only after a successful commit; after a
//! failed commit it reads the tip again from disk.
//!
//! # Running out of storage
//!
//! After an I/O error (a full disk is the common one) redb refuses every later operation of
//! that `Database` ("previous I/O error"). The writer then reports [`Error::Unavailable`] to
//! the callers, drops the database and opens the file again before its next batch (redb
//! repairs it on open), so once there is space again writes succeed without a restart.
//! While the database is being reopened, reads answer [`Error::Unavailable`] too.
//! [`Store::check_writable`] lets a health check see the state and trigger the retry: it
//! reports the failure until a probe that writes and syncs 1 MiB succeeds (small writes
//! can still pass on a full disk, so a successful commit alone does not end the state).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    TableDefinition, WriteTransaction,
};

use crate::{
    AuditEntry, AuditEvent, AuditVerification, CertCursor, CertFilter, CertPage, CertRecord,
    CertStatus, Error, IssuanceBinding, OneTimeChallenge, PendingRequest, PendingState, Result,
    Revocation, RevokedEntry, Store, StoreStats, StoredCrl, UnixTime,
};

/// The schema version this code writes and understands.
const SCHEMA_VERSION: u64 = 1;
const SCHEMA_KEY: &str = "schema_version";
/// Key of the `probe` table's only entry (see [`Writer::probe`]).
const PROBE_KEY: &str = "headroom";
/// What [`Writer::probe`] writes: a store that cannot take this much more is unavailable.
const PROBE_BYTES: usize = 1 << 20;
/// `prev_hash` of the first audit entry.
const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Longest serial accepted (RFC 5280 §4.1.2.2, DESIGN.md decision 3).
const MAX_SERIAL_LEN: usize = 20;
const EMPTY: &[u8] = &[];

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const CERTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("certs");
const CERT_DER: TableDefinition<&[u8], &[u8]> = TableDefinition::new("cert_der");
const SERIALS: TableDefinition<&[u8], (&str, i64)> = TableDefinition::new("serials");
const EXPIRY: TableDefinition<(i64, &[u8]), ()> = TableDefinition::new("expiry");
const REVOKED: TableDefinition<(&str, &[u8]), (i64, u8)> = TableDefinition::new("revoked");
const CRL_NUMBERS: TableDefinition<&str, u64> = TableDefinition::new("crl_numbers");
const CRLS: TableDefinition<&str, (u64, i64, i64, &[u8])> = TableDefinition::new("crls");
const PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("pending");
const PENDING_KEYS: TableDefinition<&str, u64> = TableDefinition::new("pending_keys");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const CHALLENGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("challenges");
const TRANSACTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("transactions");
const PROBE: TableDefinition<&str, &[u8]> = TableDefinition::new("probe");

/// Settings of a [`RedbStore`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Most write operations applied in one commit (group commit). 0 counts as 1.
    /// Default 64.
    pub max_batch: usize,
    /// Use redb's quick repair: every commit also saves the allocator state, so the first
    /// open after a crash is instant instead of walking the whole file (about 0.6 s per GB),
    /// at roughly 40% fewer commits per second (`research/store.md`). Default off.
    pub quick_repair: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_batch: 64,
            quick_repair: false,
        }
    }
}

/// Counters of the writer thread, for benchmarks and status output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Write transactions committed.
    pub commits: u64,
    /// Operations in those committed transactions (including operations that were refused
    /// inside a batch that committed others).
    pub operations: u64,
    /// The largest batch committed.
    pub largest_batch: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    operations: AtomicU64,
    largest_batch: AtomicU64,
}

/// The redb-backed [`Store`]. See the module documentation for its tables and group commit.
///
/// Dropping it stops and joins the writer thread and closes the database.
pub struct RedbStore {
    shared: Arc<Shared>,
    sender: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("writer_stats", &self.writer_stats())
            .finish_non_exhaustive()
    }
}

/// Creates `path` empty with mode 0600 if it does not exist (redb then initialises the
/// empty file as it would one it created itself, but with the umask's mode).
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Backend(format!("creating {}: {e}", path.display()))),
    }
}

/// What the store and its writer thread share: the open database (replaced when it is
/// reopened after an I/O error) and the last write failure.
struct Shared {
    /// `None` while the writer reopens the database.
    db: RwLock<Option<Arc<Database>>>,
    /// The file, to reopen; `None` for an in-memory database.
    path: Option<PathBuf>,
    /// Why the last write failed for lack of storage; cleared by a successful
    /// [`Writer::probe`].
    failure: Mutex<Option<String>>,
}

impl Shared {
    fn db(&self) -> Result<Arc<Database>> {
        self.db
            .read()
            .map_err(|_| Error::Backend("internal: database lock poisoned".into()))?
            .clone()
            .ok_or_else(|| Error::Unavailable("the database is being reopened".into()))
    }

    fn set_failure(&self, failure: Option<String>) {
        if let Ok(mut f) = self.failure.lock() {
            *f = failure;
        }
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }
}

fn open_file(path: &Path) -> Result<Database> {
    Database::builder().create(path).map_err(|e| match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            Error::Locked(path.display().to_string())
        }
        other => classify(&format!("opening {}", path.display()), other.into()),
    })
}

impl RedbStore {
    /// Walks the expiry index from the start (or after `after`) and returns up to `limit`
    /// records matching `filter`, without DER, and whether it stopped because `limit` was
    /// reached.
    fn scan_certs(
        &self,
        filter: &CertFilter,
        after: Option<&CertCursor>,
        limit: usize,
    ) -> Result<(Vec<CertRecord>, bool)> {
        use std::ops::Bound;
        if limit == 0 {
            return Ok((Vec::new(), false));
        }
        // not_after > expires_after  and  not_after <= expires_before
        let lower_time = match filter.expires_after {
            None => None,
            Some(t) => match t.checked_add(1) {
                Some(t) => Some(t),
                None => return Ok((Vec::new(), false)),
            },
        };
        let upper = match filter.expires_before {
            None => Bound::Unbounded,
            Some(t) => match t.checked_add(1) {
                Some(t) => Bound::Excluded((t, EMPTY)),
                None => Bound::Unbounded,
            },
        };
        if let (Some(after), Some(before)) = (filter.expires_after, filter.expires_before)
            && after >= before
        {
            return Ok((Vec::new(), false));
        }
        // Start after the cursor when it lies beyond the filter's lower bound.
        let lower = match (lower_time, after) {
            (Some(t), Some(c)) if c.not_after < t => Bound::Included((t, EMPTY)),
            (_, Some(c)) => Bound::Excluded((c.not_after, c.serial.as_slice())),
            (Some(t), None) => Bound::Included((t, EMPTY)),
            (None, None) => Bound::Unbounded,
        };
        let needle = filter.text.as_ref().map(|t| t.to_lowercase());

        let err = "listing certificates";
        let txn = self.read()?;
        let expiry = txn.open_table(EXPIRY).ctx(err)?;
        let certs = txn.open_table(CERTS).ctx(err)?;
        let mut out = Vec::new();
        for item in expiry.range::<(i64, &[u8])>((lower, upper)).ctx(err)? {
            let (key, _) = item.ctx(err)?;
            let (_, serial) = key.value();
            let Some(guard) = certs.get(serial).ctx(err)? else {
                return Err(Error::Corrupt(format!(
                    "expiry index names unknown serial {}",
                    hex::encode(serial)
                )));
            };
            let record: CertRecord = decode("certificate record", guard.value())?;
            if filter.status.is_some_and(|s| s != record.status)
                || filter
                    .profile
                    .as_ref()
                    .is_some_and(|p| *p != record.profile)
                || filter.issuer.as_ref().is_some_and(|i| *i != record.issuer)
            {
                continue;
            }
            if let Some(needle) = &needle
                && !record.subject.to_lowercase().contains(needle.as_str())
                && !record
                    .sans
                    .iter()
                    .any(|s| s.to_lowercase().contains(needle.as_str()))
            {
                continue;
            }
            out.push(record);
            if out.len() >= limit {
                return Ok((out, true));
            }
        }
        Ok((out, false))
    }

    /// Opens the database file at `path`, creating it if it does not exist.
    ///
    /// Fails with [`Error::Locked`] if another process (or another handle in this process)
    /// has it open, and with [`Error::UnsupportedSchema`] if it was written by a newer privca.
    ///
    /// A new database file is created with mode 0600 (it holds the audit log and the
    /// record of every certificate; only the server's user reads it).
    pub fn open(path: &Path, options: StoreOptions) -> Result<RedbStore> {
        create_private(path)?;
        let db = open_file(path)?;
        Self::start(db, Some(path.to_path_buf()), options)
    }

    /// A store in memory, lost when dropped (for tests).
    pub fn in_memory() -> Result<RedbStore> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .ctx("creating the in-memory database")?;
        Self::start(db, None, StoreOptions::default())
    }

    /// What the writer thread has done so far.
    pub fn writer_stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            operations: self.counters.operations.load(Ordering::Relaxed),
            largest_batch: self.counters.largest_batch.load(Ordering::Relaxed),
        }
    }

    fn start(db: Database, path: Option<PathBuf>, options: StoreOptions) -> Result<RedbStore> {
        init_schema(&db)?;
        let tip = load_tip(&db)?;
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(Arc::new(db))),
            path,
            failure: Mutex::new(None),
        });
        let counters = Arc::new(Counters::default());
        let (sender, receiver) = mpsc::channel();
        let writer = Writer {
            shared: Arc::clone(&shared),
            reopen: false,
            max_batch: options.max_batch.max(1),
            quick_repair: options.quick_repair,
            tip: Some(tip),
            counters: Arc::clone(&counters),
        };
        let handle = std::thread::Builder::new()
            .name("privca-store-writer".into())
            .spawn(move || writer.run(receiver))
            .ctx("starting the writer thread")?;
        Ok(RedbStore {
            shared,
            sender: Some(sender),
            writer: Some(handle),
            counters,
        })
    }

    /// Sends `op` to the writer and waits until it is committed (or refused).
    fn submit(&self, op: Op) -> Result<Reply> {
        let sender = self.sender.as_ref().ok_or(Error::Closed)?;
        let (reply, answer) = mpsc::sync_channel(1);
        sender.send(Job { op, reply }).map_err(|_| Error::Closed)?;
        answer.recv().map_err(|_| Error::Closed)?
    }

    fn read(&self) -> Result<redb::ReadTransaction> {
        self.shared
            .db()?
            .begin_read()
            .ctx("beginning a read transaction")
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer's loop once it has finished what is queued.
        self.sender = None;
        if let Some(handle) = self.writer.take()
            && handle.join().is_err()
        {
            tracing::error!("the store writer thread had panicked");
        }
    }
}

/// An engine error as a store error: [`Error::Unavailable`] for I/O failures (a full disk,
/// and redb's "previous I/O error" after one), [`Error::Backend`] for the rest.
fn classify(context: &str, e: redb::Error) -> Error {
    if is_io(&e) {
        Error::Unavailable(format!("{context}: {e}"))
    } else {
        Error::Backend(format!("{context}: {e}"))
    }
}

fn is_io(e: &redb::Error) -> bool {
    matches!(
        e,
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed
    )
}

/// Maps an engine error to a store error ([`classify`]) with some context.
trait Context<T> {
    fn ctx(self, context: &str) -> Result<T>;
}

impl<T, E: Into<redb::Error>> Context<T> for std::result::Result<T, E> {
    fn ctx(self, context: &str) -> Result<T> {
        self.map_err(|e| classify(context, e.into()))
    }
}

fn now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn check_serial(serial: &[u8]) -> Result<()> {
    if serial.is_empty() || serial.len() > MAX_SERIAL_LEN {
        return Err(Error::Invalid(format!(
            "a serial has 1 to {MAX_SERIAL_LEN} octets, not {}",
            serial.len()
        )));
    }
    Ok(())
}

/// The serial element of a `revoked` key: length octet, then the serial.
fn order_key(serial: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(serial.len() + 1);
    // check_serial keeps the length within a byte.
    key.push(u8::try_from(serial.len()).unwrap_or(u8::MAX));
    key.extend_from_slice(serial);
    key
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Backend(format!("encoding a record: {e}")))
}

/// Creates the tables and checks or writes the schema version.
fn init_schema(db: &Database) -> Result<()> {
    let err = "preparing the database";
    let txn = db.begin_write().ctx(err)?;
    {
        let mut meta = txn.open_table(META).ctx(err)?;
        let found = meta.get(SCHEMA_KEY).ctx(err)?.map(|g| g.value());
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(Error::UnsupportedSchema {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(v) if v < SCHEMA_VERSION => {
                return Err(Error::Corrupt(format!("schema version {v}")));
            }
            Some(_) => {}
            None => {
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION).ctx(err)?;
            }
        }
    }
    Tables::open(&txn).ctx(err)?;
    txn.commit().ctx(err)
}

/// Where the audit chain ends: the last seq (0 if empty) and its hash.
#[derive(Clone, Debug)]
struct AuditTip {
    seq: u64,
    hash: String,
}

fn load_tip(db: &Database) -> Result<AuditTip> {
    let err = "reading the audit log";
    let txn = db.begin_read().ctx(err)?;
    let table = txn.open_table(AUDIT).ctx(err)?;
    match table.last().ctx(err)? {
        None => Ok(AuditTip {
            seq: 0,
            hash: ZERO_HASH.to_string(),
        }),
        Some((key, value)) => {
            let entry: AuditEntry = decode("last audit entry", value.value())?;
            Ok(AuditTip {
                seq: key.value(),
                hash: entry.hash,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------
// The writer thread.

/// A write operation, owned so it can cross to the writer thread.
enum Op {
    ReserveSerial {
        serial: Vec<u8>,
        issuer: String,
        at: UnixTime,
    },
    RecordIssuance {
        record: Box<CertRecord>,
        audit: AuditEvent,
        binding: Box<IssuanceBinding>,
    },
    Revoke {
        serial: Vec<u8>,
        revocation: Revocation,
        audit: AuditEvent,
    },
    NextCrlNumber {
        issuer: String,
    },
    PutCrl {
        issuer: String,
        crl: StoredCrl,
        audit: AuditEvent,
    },
    AppendAudit {
        event: AuditEvent,
    },
    PutPending {
        request: Box<PendingRequest>,
        audit: AuditEvent,
    },
    UpdatePending {
        request: Box<PendingRequest>,
        audit: AuditEvent,
    },
    ImportCertificates {
        records: Vec<CertRecord>,
        audit: AuditEvent,
    },
    PutChallenge {
        challenge: Box<OneTimeChallenge>,
        audit: AuditEvent,
    },
    ConsumeChallenge {
        hash: Vec<u8>,
        endpoint: String,
        now: UnixTime,
        audit: AuditEvent,
    },
    ReleaseChallenge {
        hash: Vec<u8>,
        endpoint: String,
        audit: AuditEvent,
    },
    PutTransaction {
        keys: Vec<String>,
        serial: Vec<u8>,
    },
    /// [`Store::check_writable`]: a no-op while writes work; after a storage failure a
    /// small durable write that proves they work again.
    Probe,
}

/// What a committed operation returns.
#[derive(Debug)]
enum Reply {
    Done,
    /// An audit seq, a CRL number or a pending id.
    Number(u64),
    Record(Box<CertRecord>),
    Challenge(Box<OneTimeChallenge>),
}

fn unexpected(reply: Reply) -> Error {
    Error::Backend(format!("internal: unexpected writer reply {reply:?}"))
}

struct Job {
    op: Op,
    reply: SyncSender<Result<Reply>>,
}

/// Why an operation was not applied.
enum ApplyError {
    /// Refused by its checks; nothing of it was written.
    Refused(Error),
    /// The engine failed; the transaction must be aborted. The error is
    /// [`Error::Unavailable`] for I/O failures ([`classify`]).
    Fatal(Error),
}

trait FatalExt<T> {
    fn fatal(self) -> Result<T, ApplyError>;
}

impl<T, E: Into<redb::Error>> FatalExt<T> for std::result::Result<T, E> {
    fn fatal(self) -> Result<T, ApplyError> {
        self.map_err(|e| ApplyError::Fatal(classify("writing", e.into())))
    }
}

trait RefuseExt<T> {
    fn refuse(self) -> Result<T, ApplyError>;
}

impl<T> RefuseExt<T> for Result<T> {
    fn refuse(self) -> Result<T, ApplyError> {
        self.map_err(ApplyError::Refused)
    }
}

fn refused<T>(e: Error) -> Result<T, ApplyError> {
    Err(ApplyError::Refused(e))
}

/// Every table, open in one write transaction.
struct Tables<'t> {
    certs: Table<'t, &'static [u8], &'static [u8]>,
    der: Table<'t, &'static [u8], &'static [u8]>,
    serials: Table<'t, &'static [u8], (&'static str, i64)>,
    expiry: Table<'t, (i64, &'static [u8]), ()>,
    revoked: Table<'t, (&'static str, &'static [u8]), (i64, u8)>,
    crl_numbers: Table<'t, &'static str, u64>,
    crls: Table<'t, &'static str, (u64, i64, i64, &'static [u8])>,
    pending: Table<'t, u64, &'static [u8]>,
    pending_keys: Table<'t, &'static str, u64>,
    audit: Table<'t, u64, &'static [u8]>,
    challenges: Table<'t, &'static [u8], &'static [u8]>,
    transactions: Table<'t, &'static str, &'static [u8]>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> std::result::Result<Tables<'t>, redb::TableError> {
        Ok(Tables {
            certs: txn.open_table(CERTS)?,
            der: txn.open_table(CERT_DER)?,
            serials: txn.open_table(SERIALS)?,
            expiry: txn.open_table(EXPIRY)?,
            revoked: txn.open_table(REVOKED)?,
            crl_numbers: txn.open_table(CRL_NUMBERS)?,
            crls: txn.open_table(CRLS)?,
            pending: txn.open_table(PENDING)?,
            pending_keys: txn.open_table(PENDING_KEYS)?,
            audit: txn.open_table(AUDIT)?,
            challenges: txn.open_table(CHALLENGES)?,
            transactions: txn.open_table(TRANSACTIONS)?,
        })
    }
}

struct Writer {
    shared: Arc<Shared>,
    /// Set after an I/O error: drop the database and open the file again before the next
    /// batch.
    reopen: bool,
    max_batch: usize,
    quick_repair: bool,
    /// `None` after a failed commit: read it again from disk before the next batch.
    tip: Option<AuditTip>,
    counters: Arc<Counters>,
}

impl Writer {
    fn run(mut self, receiver: Receiver<Job>) {
        while let Ok(first) = receiver.recv() {
            let mut jobs = vec![first];
            while jobs.len() < self.max_batch {
                match receiver.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.process(jobs);
        }
    }

    /// Applies `jobs` in one transaction and answers each.
    fn process(&mut self, jobs: Vec<Job>) {
        let (ops, replies): (Vec<Op>, Vec<SyncSender<Result<Reply>>>) =
            jobs.into_iter().map(|j| (j.op, j.reply)).unzip();
        let results = self.run_batch(ops);
        for (reply, result) in replies.into_iter().zip(results) {
            // A caller that went away does not care.
            let _ = reply.send(result);
        }
    }

    /// After an I/O error: drops the failed database and opens the file again (redb
    /// repairs it). Fails with [`Error::Unavailable`] while that does not work yet.
    fn reopen_database(&mut self) -> Result<()> {
        let Some(path) = self.shared.path.clone() else {
            return Err(Error::Unavailable(
                "the in-memory database failed and cannot be reopened".into(),
            ));
        };
        {
            let mut slot = self
                .shared
                .db
                .write()
                .map_err(|_| Error::Backend("internal: database lock poisoned".into()))?;
            // Readers still holding the old handle keep it alive until they finish; redb
            // releases the file when the last one goes.
            *slot = None;
        }
        let db = open_file(&path).map_err(|e| match e {
            Error::Locked(_) => {
                Error::Unavailable("the failed database is still held by a reader; retrying".into())
            }
            other => other,
        })?;
        let db = Arc::new(db);
        self.tip = Some(load_tip(&db)?);
        *self
            .shared
            .db
            .write()
            .map_err(|_| Error::Backend("internal: database lock poisoned".into()))? = Some(db);
        self.reopen = false;
        tracing::warn!(path = %path.display(), "store database reopened after a storage failure");
        Ok(())
    }

    /// After a storage failure, whether the store can take [`PROBE_BYTES`] more: writes
    /// and syncs that much in one commit and removes it in a second. A file with enough
    /// free pages inside passes on a full disk, rightly: records fit.
    fn probe(db: &Database) -> Result<()> {
        let err = "probing for writable storage";
        let headroom = vec![0xa5u8; PROBE_BYTES];
        let txn = db.begin_write().ctx(err)?;
        {
            let mut t = txn.open_table(PROBE).ctx(err)?;
            t.insert(PROBE_KEY, headroom.as_slice()).ctx(err)?;
        }
        txn.commit().ctx(err)?;
        let txn = db.begin_write().ctx(err)?;
        {
            let mut t = txn.open_table(PROBE).ctx(err)?;
            t.remove(PROBE_KEY).ctx(err)?;
        }
        txn.commit().ctx(err)
    }

    /// Notes the outcome of a batch for [`Store::check_writable`] and the next batch.
    fn note_failure(&mut self, e: &Error) {
        if matches!(e, Error::Unavailable(_)) {
            self.reopen = self.shared.path.is_some();
            self.tip = None;
            self.shared.set_failure(Some(e.to_string()));
        }
    }

    fn run_batch(&mut self, ops: Vec<Op>) -> Vec<Result<Reply>> {
        let count = ops.len();
        let fail_all =
            |e: &Error| -> Vec<Result<Reply>> { (0..count).map(|_| Err(copy_error(e))).collect() };
        // A probe while writes work does not touch the disk.
        let failed = self.shared.failure().is_some();
        if !failed && ops.iter().all(|op| matches!(op, Op::Probe)) {
            return (0..count).map(|_| Ok(Reply::Done)).collect();
        }
        if self.reopen
            && let Err(e) = self.reopen_database()
        {
            tracing::warn!(error = %e, "reopening the store database failed");
            return fail_all(&e);
        }
        let db = match self.shared.db() {
            Ok(db) => db,
            Err(e) => return fail_all(&e),
        };
        if failed && ops.iter().all(|op| matches!(op, Op::Probe)) {
            return match Self::probe(&db) {
                Ok(()) => {
                    tracing::warn!("store writes work again");
                    self.shared.set_failure(None);
                    (0..count).map(|_| Ok(Reply::Done)).collect()
                }
                Err(e) => {
                    self.note_failure(&e);
                    fail_all(&e)
                }
            };
        }
        let tip = match &self.tip {
            Some(tip) => tip.clone(),
            None => match load_tip(&db) {
                Ok(tip) => {
                    self.tip = Some(tip.clone());
                    tip
                }
                Err(e) => {
                    self.note_failure(&e);
                    return fail_all(&e);
                }
            },
        };
        let mut txn = match db.begin_write().ctx("beginning a write transaction") {
            Ok(txn) => txn,
            Err(e) => {
                self.note_failure(&e);
                return fail_all(&e);
            }
        };
        if self.quick_repair {
            txn.set_quick_repair(true);
        }

        let mut next_tip = tip;
        let mut results: Vec<Result<Reply>> = Vec::with_capacity(count);
        let mut fatal = None;
        match Tables::open(&txn).ctx("opening tables") {
            Err(e) => fatal = Some(e),
            Ok(mut tables) => {
                for op in ops {
                    match apply(&mut tables, &mut next_tip, op) {
                        Ok(reply) => results.push(Ok(reply)),
                        Err(ApplyError::Refused(e)) => results.push(Err(e)),
                        Err(ApplyError::Fatal(e)) => {
                            fatal = Some(e);
                            break;
                        }
                    }
                }
            }
        }

        if let Some(e) = fatal {
            tracing::error!(error = %e, "store write failed; batch aborted");
            if let Err(ae) = txn.abort() {
                tracing::warn!(error = %ae, "aborting the write transaction failed");
                self.tip = None;
            }
            self.note_failure(&e);
            let mut out: Vec<Result<Reply>> = results
                .into_iter()
                .map(|r| match r {
                    Ok(_) => Err(copy_error(&e)),
                    Err(e) => Err(e),
                })
                .collect();
            out.resize_with(count, || Err(copy_error(&e)));
            return out;
        }

        if results.iter().all(Result::is_err) {
            // Nothing to make durable.
            if let Err(e) = txn.abort() {
                tracing::warn!(error = %e, "aborting an empty write transaction failed");
                self.tip = None;
            }
            return results;
        }

        match txn.commit().ctx("commit failed") {
            Ok(()) => {
                // A commit after a storage failure does not clear it: small writes can
                // pass on a full disk. Only the headroom probe does.
                self.tip = Some(next_tip);
                let n = u64::try_from(count).unwrap_or(u64::MAX);
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
                self.counters.operations.fetch_add(n, Ordering::Relaxed);
                self.counters.largest_batch.fetch_max(n, Ordering::Relaxed);
                results
            }
            Err(e) => {
                tracing::error!(error = %e, batch = count, "store commit failed");
                self.tip = None;
                self.note_failure(&e);
                fail_all(&e)
            }
        }
    }
}

/// The error of a failed batch, for each of its callers: [`Error::Unavailable`] stays
/// retryable, anything else becomes [`Error::Backend`].
fn copy_error(e: &Error) -> Error {
    match e {
        Error::Unavailable(m) => Error::Unavailable(m.clone()),
        Error::Backend(m) => Error::Backend(m.clone()),
        other => Error::Backend(other.to_string()),
    }
}

/// Builds the next audit entry after `tip` and its stored form.
fn chain(tip: &AuditTip, event: AuditEvent) -> Result<(AuditEntry, Vec<u8>), ApplyError> {
    let seq = match tip.seq.checked_add(1) {
        Some(seq) => seq,
        None => return refused(Error::Conflict("the audit log is full".into())),
    };
    let hash = AuditEntry::compute_hash(seq, &tip.hash, &event).refuse()?;
    let entry = AuditEntry {
        seq,
        event,
        prev_hash: tip.hash.clone(),
        hash,
    };
    let json = encode(&entry).refuse()?;
    Ok((entry, json))
}

fn advance(tip: &mut AuditTip, entry: AuditEntry) {
    tip.seq = entry.seq;
    tip.hash = entry.hash;
}

/// Applies one operation: all checks and encoding first, then the inserts.
fn apply(t: &mut Tables<'_>, tip: &mut AuditTip, op: Op) -> Result<Reply, ApplyError> {
    match op {
        Op::ImportCertificates { mut records, audit } => {
            // Checks for every record first, so a refusal leaves nothing behind.
            let mut seen = std::collections::HashSet::new();
            let mut metas = Vec::with_capacity(records.len());
            for record in &mut records {
                check_serial(&record.serial).refuse()?;
                match (record.status, &record.revocation) {
                    (CertStatus::Valid, None) | (CertStatus::Revoked, Some(_)) => {}
                    _ => {
                        return refused(Error::Invalid(
                            "status and revocation of a record disagree".into(),
                        ));
                    }
                }
                if !seen.insert(record.serial.clone())
                    || t.serials.get(record.serial.as_slice()).fatal()?.is_some()
                {
                    return refused(Error::Conflict(format!(
                        "serial {} was used before",
                        hex::encode(&record.serial)
                    )));
                }
                let der = std::mem::take(&mut record.der);
                metas.push((encode(&*record).refuse()?, der));
            }
            let (entry, entry_json) = chain(tip, audit)?;
            for (record, (meta, der)) in records.iter().zip(&metas) {
                let serial = record.serial.as_slice();
                t.serials
                    .insert(serial, (record.issuer.as_str(), record.issued_at))
                    .fatal()?;
                t.certs.insert(serial, meta.as_slice()).fatal()?;
                t.der.insert(serial, der.as_slice()).fatal()?;
                t.expiry.insert((record.not_after, serial), ()).fatal()?;
                if let Some(revocation) = record.revocation {
                    let key = order_key(serial);
                    t.revoked
                        .insert(
                            (record.issuer.as_str(), key.as_slice()),
                            (revocation.time, revocation.reason),
                        )
                        .fatal()?;
                }
            }
            t.audit.insert(entry.seq, entry_json.as_slice()).fatal()?;
            let seq = entry.seq;
            advance(tip, entry);
            Ok(Reply::Number(seq))
        }

        Op::ReserveSerial { serial, issuer, at } => {
            check_serial(&serial).refuse()?;
            if t.serials.get(serial.as_slice()).fatal()?.is_some() {
                return refused(Error::Conflict(format!(
                    "serial {} was used before",
                    hex::encode(&serial)
                )));
            }
            t.serials
                .insert(serial.as_slice(), (issuer.as_str(), at))
                .fatal()?;
            Ok(Reply::Done)
        }

        Op::RecordIssuance {
            mut record,
            audit,
            binding,
        } => {
            let serial = record.serial.clone();
            check_serial(&serial).refuse()?;
            match (record.status, &record.revocation) {
                (CertStatus::Valid, None) | (CertStatus::Revoked, Some(_)) => {}
                _ => {
                    return refused(Error::Invalid(
                        "status and revocation of the record disagree".into(),
                    ));
                }
            }
            match t.serials.get(serial.as_slice()).fatal()? {
                None => {
                    return refused(Error::Conflict(format!(
                        "serial {} was not reserved",
                        hex::encode(&serial)
                    )));
                }
                Some(guard) => {
                    let (reserved_for, _) = guard.value();
                    if reserved_for != record.issuer {
                        return refused(Error::Conflict(format!(
                            "serial {} was reserved for issuer {reserved_for}, not {}",
                            hex::encode(&serial),
                            record.issuer
                        )));
                    }
                }
            }
            if t.certs.get(serial.as_slice()).fatal()?.is_some() {
                return refused(Error::Conflict(format!(
                    "serial {} is already recorded",
                    hex::encode(&serial)
                )));
            }
            // The transaction must not have produced a (still valid) certificate already.
            if let Some(key) = &binding.replay_key {
                let earlier = t
                    .transactions
                    .get(key.as_str())
                    .fatal()?
                    .map(|g| g.value().to_vec());
                if let Some(earlier) = earlier {
                    let valid = match t.certs.get(earlier.as_slice()).fatal()? {
                        Some(g) => {
                            decode::<CertRecord>("certificate record", g.value())
                                .refuse()?
                                .status
                                == CertStatus::Valid
                        }
                        None => false,
                    };
                    if valid {
                        return refused(Error::Conflict(format!(
                            "transaction {key} already produced certificate {}",
                            hex::encode(&earlier)
                        )));
                    }
                }
            }
            // The challenge it spends, checked as ConsumeChallenge checks it.
            let challenge = match &binding.challenge {
                None => None,
                Some(c) => {
                    let found: Option<OneTimeChallenge> =
                        match t.challenges.get(c.hash.as_slice()).fatal()? {
                            Some(g) => Some(decode("challenge", g.value()).refuse()?),
                            None => None,
                        };
                    let Some(mut spent) = found.filter(|f| f.endpoint == c.endpoint) else {
                        return refused(Error::NotFound("no such challenge".into()));
                    };
                    if spent.used_at.is_some() {
                        return refused(Error::Conflict("the challenge was already used".into()));
                    }
                    if c.now > spent.expires_at {
                        return refused(Error::Invalid("the challenge has expired".into()));
                    }
                    spent.used_at = Some(c.now);
                    spent.used_for = Some(serial.clone());
                    Some((c.hash.as_slice(), encode(&spent).refuse()?, c.audit.clone()))
                }
            };
            let der = std::mem::take(&mut record.der);
            let meta = encode(&record).refuse()?;
            // Audit: the challenge's use first, then the issuance.
            let mut after = tip.clone();
            let challenge_entry = match &challenge {
                Some((_, _, event)) => {
                    let (entry, json) = chain(&after, event.clone())?;
                    after.seq = entry.seq;
                    after.hash = entry.hash.clone();
                    Some((entry.seq, json))
                }
                None => None,
            };
            let (entry, entry_json) = chain(&after, audit)?;

            if let (Some((hash, json, _)), Some((seq, entry_json))) = (&challenge, &challenge_entry)
            {
                t.challenges.insert(*hash, json.as_slice()).fatal()?;
                t.audit.insert(*seq, entry_json.as_slice()).fatal()?;
            }
            for key in binding.replay_key.iter().chain(&binding.transaction_keys) {
                t.transactions
                    .insert(key.as_str(), serial.as_slice())
                    .fatal()?;
            }
            t.certs.insert(serial.as_slice(), meta.as_slice()).fatal()?;
            t.der.insert(serial.as_slice(), der.as_slice()).fatal()?;
            t.expiry
                .insert((record.not_after, serial.as_slice()), ())
                .fatal()?;
            if let Some(revocation) = record.revocation {
                let key = order_key(&serial);
                t.revoked
                    .insert(
                        (record.issuer.as_str(), key.as_slice()),
                        (revocation.time, revocation.reason),
                    )
                    .fatal()?;
            }
            t.audit.insert(entry.seq, entry_json.as_slice()).fatal()?;
            let seq = entry.seq;
            advance(tip, entry);
            Ok(Reply::Number(seq))
        }

        Op::Revoke {
            serial,
            revocation,
            audit,
        } => {
            check_serial(&serial).refuse()?;
            let mut record: CertRecord = match t.certs.get(serial.as_slice()).fatal()? {
                None => {
                    return refused(Error::NotFound(format!(
                        "no certificate with serial {}",
                        hex::encode(&serial)
                    )));
                }
                Some(guard) => decode("certificate record", guard.value()).refuse()?,
            };
            if record.status == CertStatus::Revoked {
                return refused(Error::Conflict(format!(
                    "certificate {} is already revoked",
                    hex::encode(&serial)
                )));
            }
            record.status = CertStatus::Revoked;
            record.revocation = Some(revocation);
            let meta = encode(&record).refuse()?;
            let der = match t.der.get(serial.as_slice()).fatal()? {
                Some(guard) => guard.value().to_vec(),
                None => {
                    return refused(Error::Corrupt(format!(
                        "certificate {} has no DER",
                        hex::encode(&serial)
                    )));
                }
            };
            let (entry, entry_json) = chain(tip, audit)?;

            t.certs.insert(serial.as_slice(), meta.as_slice()).fatal()?;
            let key = order_key(&serial);
            t.revoked
                .insert(
                    (record.issuer.as_str(), key.as_slice()),
                    (revocation.time, revocation.reason),
                )
                .fatal()?;
            t.audit.insert(entry.seq, entry_json.as_slice()).fatal()?;
            advance(tip, entry);
            record.der = der;
            Ok(Reply::Record(Box::new(record)))
        }

        Op::NextCrlNumber { issuer } => {
            let current = t
                .crl_numbers
                .get(issuer.as_str())
                .fatal()?
                .map_or(0, |g| g.value());
            let Some(next) = current.checked_add(1) else {
                return refused(Error::Conflict(format!(
                    "CRL numbers of {issuer} are exhausted"
                )));
            };
            t.crl_numbers.insert(issuer.as_str(), next).fatal()?;
            Ok(Reply::Number(next))
        }

        Op::PutCrl { issuer, crl, audit } => {
            if let Some(guard) = t.crls.get(issuer.as_str()).fatal()? {
                let (stored, ..) = guard.value();
                if crl.number < stored {
                    return refused(Error::Conflict(format!(
                        "CRL {} of {issuer} is older than the stored CRL {stored}",
                        crl.number
                    )));
                }
            }
            let (entry, entry_json) = chain(tip, audit)?;
            t.crls
                .insert(
                    issuer.as_str(),
                    (
                        crl.number,
                        crl.this_update,
                        crl.next_update,
                        crl.der.as_slice(),
                    ),
                )
                .fatal()?;
            t.audit.insert(entry.seq, entry_json.as_slice()).fatal()?;
            advance(tip, entry);
            Ok(Reply::Done)
        }

        Op::AppendAudit { event } => {
            let (entry, entry_json) = chain(tip, event)?;
            t.audit.insert(entry.seq, entry_json.as_slice()).fatal()?;
            let seq = entry.seq;
            advance(tip, entry);
            Ok(Reply::Number(seq))
        }

        Op::PutChallenge { challenge, audit } => {
            if t.challenges
                .get(challenge.hash.as_slice())
                .fatal()?
                .is_some()
            {
                return refused(Error::Conflict("this challenge exists".into()));
            }
            let json = encode(&*challenge).refuse()?;
            let (entry, entry_json) = chain(tip, audit)?;
            t.challenges
                .insert(challenge.hash.as_slice(), json.as_slice())
                .fatal()?;
            t.audit.insert(entry.seq, entry_json.as_slice()).fatal()?;
            advance(tip, entry);
            Ok(Reply::Done)
        }
        Op::ConsumeChallenge {
            hash,
            endpoint,
            now,
            audit,
        } => {
            let found: Option<OneTimeChallenge> = match t.challenges.get(hash.as_slice()).fatal()? {
                Some(g) => Some(decode("challenge", g.value()).refuse()?),
                None => None,
            };
            let Some(before) = found.filter(|c| c.endpoint == endpoint) else {
                return refused(Error::NotFound("no such challenge".into()));
            };
            if before.used_at.is_some() {
                return refused(Error::Conflict("the challenge was already used".into()));
            }
            if now > before.expires_at {
                return refused(Error::Invalid("the challenge has expired".into()));
            }
            let mut after = before.clone();
            after.used_at = Some(now);
            let json = encode(&after).refuse()?;
            let (entry, entry_json) = chain(tip, audit)?;
            t.challenges
                .insert(hash.as_slice(), json.as_slice())
                .fatal()?;
            t.audit.insert(entry.seq, entry_json.as_slice()).fatal()?;
            advance(tip, entry);
            Ok(Reply::Challenge(Box::new(before)))
        }
        Op::ReleaseChallenge {
            hash,
            endpoint,
            audit,
        } => {
            let found: Option<OneTimeChallenge> = match t.challenges.get(hash.as_slice()).fatal()? {
                Some(g) => Some(decode("challenge", g.value()).refuse()?),
                None => None,
            };
            let Some(mut c) = found.filter(|c| c.endpoint == endpoint) else {
                return refused(Error::NotFound("no such challenge".into()));
            };
            if c.used_at.is_none() {
                return refused(Error::Conflict("the challenge is not used".into()));
            }
            c.used_at = None;
            c.used_for = None;
            let json = encode(&c).refuse()?;
            let (entry, entry_json) = chain(tip, audit)?;
            t.challenges
                .insert(hash.as_slice(), json.as_slice())
                .fatal()?;
            t.audit.insert(entry.seq, entry_json.as_slice()).fatal()?;
            advance(tip, entry);
            Ok(Reply::Done)
        }
        // In a batch with other writes, their commit is the proof.
        Op::Probe => Ok(Reply::Done),
        Op::PutTransaction { keys, serial } => {
            for key in &keys {
                t.transactions
                    .insert(key.as_str(), serial.as_slice())
                    .fatal()?;
            }
            Ok(Reply::Done)
        }
        Op::PutPending { mut request, audit } => {
            if request.state != PendingState::Pending {
                return refused(Error::Invalid(
                    "a new request must be in state pending".into(),
                ));
            }
            let existing = t
                .pending_keys
                .get(request.lookup_key.as_str())
                .fatal()?
                .map(|g| g.value());
            if let Some(id) = existing {
                let state = match t.pending.get(id).fatal()? {
                    Some(guard) => {
                        decode::<PendingRequest>("pending request", guard.value())
                            .refuse()?
                            .state
                    }
                    None => {
                        return refused(Error::Corrupt(format!(
                            "lookup key points at missing request {id}"
                        )));
                    }
                };
                if state == PendingState::Pending {
                    return refused(Error::Conflict(format!(
                        "request {id} with this lookup key is still pending"
                    )));
                }
            }
            let last = t.pending.last().fatal()?.map_or(0, |(k, _)| k.value());
            let Some(id) = last.checked_add(1) else {
                return refused(Error::Conflict("pending request ids are exhausted".into()));
            };
            request.id = id;
            let json = encode(&request).refuse()?;
            let (entry, entry_json) = chain(tip, audit)?;

            t.pending.insert(id, json.as_slice()).fatal()?;
            t.pending_keys
                .insert(request.lookup_key.as_str(), id)
                .fatal()?;
            t.audit.insert(entry.seq, entry_json.as_slice()).fatal()?;
            advance(tip, entry);
            Ok(Reply::Number(id))
        }

        Op::UpdatePending { request, audit } => {
            let stored: PendingRequest = match t.pending.get(request.id).fatal()? {
                Some(guard) => decode("pending request", guard.value()).refuse()?,
                None => {
                    return refused(Error::NotFound(format!(
                        "no pending request {}",
                        request.id
                    )));
                }
            };
            if stored.lookup_key != request.lookup_key {
                return refused(Error::Invalid(
                    "the lookup key of a request cannot change".into(),
                ));
            }
            if stored.state != PendingState::Pending {
                return refused(Error::Conflict(format!(
                    "request {} is already {:?}",
                    request.id, stored.state
                )));
            }
            if request.state == PendingState::Issued && request.serial.is_none() {
                return refused(Error::Invalid(
                    "an issued request must name its serial".into(),
                ));
            }
            let json = encode(&request).refuse()?;
            let (entry, entry_json) = chain(tip, audit)?;
            t.pending.insert(request.id, json.as_slice()).fatal()?;
            t.audit.insert(entry.seq, entry_json.as_slice()).fatal()?;
            advance(tip, entry);
            Ok(Reply::Done)
        }
    }
}

// ---------------------------------------------------------------------------------------
// The Store implementation.

impl Store for RedbStore {
    fn reserve_serial(&self, serial: &[u8], issuer: &str) -> Result<()> {
        check_serial(serial)?;
        match self.submit(Op::ReserveSerial {
            serial: serial.to_vec(),
            issuer: issuer.to_string(),
            at: now(),
        })? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn import_certificates(&self, records: &[CertRecord], audit: &AuditEvent) -> Result<u64> {
        match self.submit(Op::ImportCertificates {
            records: records.to_vec(),
            audit: audit.clone(),
        })? {
            Reply::Number(seq) => Ok(seq),
            other => Err(unexpected(other)),
        }
    }

    fn record_issuance_bound(
        &self,
        record: &CertRecord,
        audit: &AuditEvent,
        binding: &IssuanceBinding,
    ) -> Result<u64> {
        check_serial(&record.serial)?;
        match self.submit(Op::RecordIssuance {
            record: Box::new(record.clone()),
            audit: audit.clone(),
            binding: Box::new(binding.clone()),
        })? {
            Reply::Number(seq) => Ok(seq),
            other => Err(unexpected(other)),
        }
    }

    fn get_cert(&self, serial: &[u8]) -> Result<Option<CertRecord>> {
        let err = "reading a certificate";
        let txn = self.read()?;
        let certs = txn.open_table(CERTS).ctx(err)?;
        let ders = txn.open_table(CERT_DER).ctx(err)?;
        let Some(guard) = certs.get(serial).ctx(err)? else {
            return Ok(None);
        };
        let mut record: CertRecord = decode("certificate record", guard.value())?;
        record.der = match ders.get(serial).ctx(err)? {
            Some(der) => der.value().to_vec(),
            None => {
                return Err(Error::Corrupt(format!(
                    "certificate {} has no DER",
                    hex::encode(serial)
                )));
            }
        };
        Ok(Some(record))
    }

    fn list_certs(&self, filter: &CertFilter) -> Result<Vec<CertRecord>> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let (mut out, _) = self.scan_certs(filter, None, limit)?;
        let err = "listing certificates";
        let txn = self.read()?;
        let ders = txn.open_table(CERT_DER).ctx(err)?;
        for record in &mut out {
            record.der = match ders.get(record.serial.as_slice()).ctx(err)? {
                Some(der) => der.value().to_vec(),
                None => {
                    return Err(Error::Corrupt(format!(
                        "certificate {} has no DER",
                        hex::encode(&record.serial)
                    )));
                }
            };
        }
        Ok(out)
    }

    fn list_cert_page(
        &self,
        filter: &CertFilter,
        after: Option<&CertCursor>,
        page_size: usize,
    ) -> Result<CertPage> {
        let (records, full) = self.scan_certs(filter, after, page_size)?;
        let next = match (full, records.last()) {
            (true, Some(last)) => Some(CertCursor {
                not_after: last.not_after,
                serial: last.serial.clone(),
            }),
            _ => None,
        };
        Ok(CertPage { records, next })
    }

    fn revoke(
        &self,
        serial: &[u8],
        revocation: Revocation,
        audit: &AuditEvent,
    ) -> Result<CertRecord> {
        check_serial(serial)?;
        match self.submit(Op::Revoke {
            serial: serial.to_vec(),
            revocation,
            audit: audit.clone(),
        })? {
            Reply::Record(record) => Ok(*record),
            other => Err(unexpected(other)),
        }
    }

    fn for_each_revoked(
        &self,
        issuer: &str,
        each: &mut dyn FnMut(RevokedEntry) -> Result<()>,
    ) -> Result<()> {
        let err = "reading revocations";
        let txn = self.read()?;
        let revoked = txn.open_table(REVOKED).ctx(err)?;
        for item in revoked.range((issuer, EMPTY)..).ctx(err)? {
            let (key, value) = item.ctx(err)?;
            let (key_issuer, ordered) = key.value();
            if key_issuer != issuer {
                break;
            }
            let serial = ordered.get(1..).unwrap_or_default().to_vec();
            let (time, reason) = value.value();
            each(RevokedEntry {
                serial,
                revocation: Revocation { time, reason },
            })?;
        }
        Ok(())
    }

    fn next_crl_number(&self, issuer: &str) -> Result<u64> {
        match self.submit(Op::NextCrlNumber {
            issuer: issuer.to_string(),
        })? {
            Reply::Number(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    fn put_crl(&self, issuer: &str, crl: &StoredCrl, audit: &AuditEvent) -> Result<()> {
        match self.submit(Op::PutCrl {
            issuer: issuer.to_string(),
            crl: crl.clone(),
            audit: audit.clone(),
        })? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn latest_crl(&self, issuer: &str) -> Result<Option<StoredCrl>> {
        let err = "reading the latest CRL";
        let txn = self.read()?;
        let crls = txn.open_table(CRLS).ctx(err)?;
        Ok(crls.get(issuer).ctx(err)?.map(|guard| {
            let (number, this_update, next_update, der) = guard.value();
            StoredCrl {
                number,
                this_update,
                next_update,
                der: der.to_vec(),
            }
        }))
    }

    fn append_audit(&self, event: &AuditEvent) -> Result<u64> {
        match self.submit(Op::AppendAudit {
            event: event.clone(),
        })? {
            Reply::Number(seq) => Ok(seq),
            other => Err(unexpected(other)),
        }
    }

    fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        let err = "reading the audit log";
        let txn = self.read()?;
        let audit = txn.open_table(AUDIT).ctx(err)?;
        let mut out = Vec::new();
        for item in audit.range(from..).ctx(err)?.take(limit) {
            let (_, value) = item.ctx(err)?;
            out.push(decode("audit entry", value.value())?);
        }
        Ok(out)
    }

    fn verify_audit(&self) -> Result<AuditVerification> {
        let err = "reading the audit log";
        let txn = self.read()?;
        let audit = txn.open_table(AUDIT).ctx(err)?;
        let mut entries = 0u64;
        let mut first_bad = None;
        let mut expected_seq = 1u64;
        let mut expected_prev = ZERO_HASH.to_string();
        for item in audit.iter().ctx(err)? {
            let (key, value) = item.ctx(err)?;
            let seq = key.value();
            entries += 1;
            let good = match serde_json::from_slice::<AuditEntry>(value.value()) {
                Ok(entry) => {
                    let computed =
                        AuditEntry::compute_hash(entry.seq, &entry.prev_hash, &entry.event)?;
                    let good = entry.seq == seq
                        && seq == expected_seq
                        && entry.prev_hash == expected_prev
                        && entry.hash == computed;
                    expected_prev = entry.hash;
                    good
                }
                Err(_) => {
                    expected_prev = String::new();
                    false
                }
            };
            if !good && first_bad.is_none() {
                first_bad = Some(seq);
            }
            expected_seq = seq.saturating_add(1);
        }
        Ok(AuditVerification { entries, first_bad })
    }

    fn put_pending(&self, request: &PendingRequest, audit: &AuditEvent) -> Result<u64> {
        match self.submit(Op::PutPending {
            request: Box::new(request.clone()),
            audit: audit.clone(),
        })? {
            Reply::Number(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    fn get_pending(&self, id: u64) -> Result<Option<PendingRequest>> {
        let err = "reading a pending request";
        let txn = self.read()?;
        let pending = txn.open_table(PENDING).ctx(err)?;
        match pending.get(id).ctx(err)? {
            Some(guard) => Ok(Some(decode("pending request", guard.value())?)),
            None => Ok(None),
        }
    }

    fn find_pending(&self, lookup_key: &str) -> Result<Option<PendingRequest>> {
        let err = "reading a pending request";
        let txn = self.read()?;
        let keys = txn.open_table(PENDING_KEYS).ctx(err)?;
        let pending = txn.open_table(PENDING).ctx(err)?;
        let Some(id) = keys.get(lookup_key).ctx(err)?.map(|g| g.value()) else {
            return Ok(None);
        };
        match pending.get(id).ctx(err)? {
            Some(guard) => Ok(Some(decode("pending request", guard.value())?)),
            None => Err(Error::Corrupt(format!(
                "lookup key points at missing request {id}"
            ))),
        }
    }

    fn list_pending(&self, state: Option<PendingState>) -> Result<Vec<PendingRequest>> {
        let err = "listing pending requests";
        let txn = self.read()?;
        let pending = txn.open_table(PENDING).ctx(err)?;
        let mut out = Vec::new();
        for item in pending.iter().ctx(err)? {
            let (_, value) = item.ctx(err)?;
            let request: PendingRequest = decode("pending request", value.value())?;
            if state.is_none_or(|s| s == request.state) {
                out.push(request);
            }
        }
        Ok(out)
    }

    fn update_pending(&self, request: &PendingRequest, audit: &AuditEvent) -> Result<()> {
        match self.submit(Op::UpdatePending {
            request: Box::new(request.clone()),
            audit: audit.clone(),
        })? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn put_challenge(&self, challenge: &OneTimeChallenge, audit: &AuditEvent) -> Result<()> {
        match self.submit(Op::PutChallenge {
            challenge: Box::new(challenge.clone()),
            audit: audit.clone(),
        })? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn consume_challenge(
        &self,
        hash: &[u8],
        endpoint: &str,
        now: UnixTime,
        audit: &AuditEvent,
    ) -> Result<OneTimeChallenge> {
        match self.submit(Op::ConsumeChallenge {
            hash: hash.to_vec(),
            endpoint: endpoint.to_string(),
            now,
            audit: audit.clone(),
        })? {
            Reply::Challenge(c) => Ok(*c),
            other => Err(unexpected(other)),
        }
    }

    fn get_challenge(&self, hash: &[u8]) -> Result<Option<OneTimeChallenge>> {
        let err = "reading a challenge";
        let txn = self.read()?;
        let table = txn.open_table(CHALLENGES).ctx(err)?;
        match table.get(hash).ctx(err)? {
            Some(g) => Ok(Some(decode("challenge", g.value())?)),
            None => Ok(None),
        }
    }

    fn release_challenge(&self, hash: &[u8], endpoint: &str, audit: &AuditEvent) -> Result<()> {
        match self.submit(Op::ReleaseChallenge {
            hash: hash.to_vec(),
            endpoint: endpoint.to_string(),
            audit: audit.clone(),
        })? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn put_transaction(&self, keys: &[String], serial: &[u8]) -> Result<()> {
        match self.submit(Op::PutTransaction {
            keys: keys.to_vec(),
            serial: serial.to_vec(),
        })? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn find_transaction(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let err = "reading a transaction";
        let txn = self.read()?;
        let table = txn.open_table(TRANSACTIONS).ctx(err)?;
        Ok(table.get(key).ctx(err)?.map(|g| g.value().to_vec()))
    }

    fn check_writable(&self) -> Result<()> {
        match self.submit(Op::Probe)? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn stats(&self) -> Result<StoreStats> {
        let err = "counting records";
        let txn = self.read()?;
        Ok(StoreStats {
            certificates: txn.open_table(CERTS).ctx(err)?.len().ctx(err)?,
            revoked: txn.open_table(REVOKED).ctx(err)?.len().ctx(err)?,
            audit_entries: txn.open_table(AUDIT).ctx(err)?.len().ctx(err)?,
        })
    }
}

#[cfg(test)]
mod tests;
