//! The embedded backend: [`RedbStore`] on redb 4.6 (docs/architecture.md, decision 5).
//!
//! # Tables and key encoding
//!
//! Integers are redb's native little-endian fixed-width types (`u64`, `i64`, `u8`), compared
//! numerically; `&str` and `&[u8]` compare byte-wise; tuples compare element by element.
//! Serials are the DER INTEGER contents octets, 1 to 20 of them.
//!
//! | table          | key                                   | value                                          |
//! |----------------|---------------------------------------|------------------------------------------------|
//! | `meta`         | `&str` name                           | `u64`; `"schema_version"` → 2                  |
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
//! | `blocked_keys` | `&[u8]` SHA-256 of a SubjectPublicKeyInfo | JSON of [`BlockedKey`]                    |
//! | `spki_index`   | `(&[u8] SPKI SHA-256, &[u8] serial)`  | `()`                                           |
//! | `invalidity`   | `(&str issuer, &[u8] len ‖ serial)`   | `i64` invalidityDate (RFC 5280 §5.3.2)         |
//! | `probe`        | `&str` `"headroom"`                   | 1 MiB written and removed by a write probe     |
//! | `profile_expiry` | `(&str profile, i64 not_after, &[u8] serial)` | `()`                               |
//! | `issuer_expiry`  | `(&str issuer, i64 not_after, &[u8] serial)`  | `()`                               |
//! | `revoked_expiry` | `(i64 not_after, &[u8] serial)` of the revoked | `()`                              |
//! | `names`          | `(i64 not_after, &[u8] serial)`       | `&str` subject and SANs, lowercased, one per line |
//! | `acme_accounts` | `&str` account id                    | JSON of [`crate::acme::AcmeAccount`]           |
//! | `acme_account_keys` | `&str` RFC 7638 thumbprint       | `&str` account id                              |
//! | `acme_orders`  | `&str` order id                       | JSON of [`crate::acme::AcmeOrder`]             |
//! | `acme_account_orders` | `(&str account, i64 created, &str order)` | `()`                          |
//! | `acme_authzs`  | `&str` authorization id               | JSON of [`crate::acme::AcmeAuthz`]             |
//! | `acme_eab`     | `&str` EAB key id                     | JSON of [`crate::acme::EabKey`]                |
//! | `api_tokens`   | `&str` token id                      | JSON of [`crate::tokens::ApiToken`] (secret as SHA-256) |
//! | `service_state` | (`&str` namespace, `&str` key)       | bytes: the notifier's cursors, sent reminders, delivery log |
//!
//! In `revoked` the serial element is prefixed with one byte holding its length, so that a
//! range scan over one issuer yields minimally encoded positive serials in numeric order; the
//! whole revocation list of an issuer is one range scan; `invalidity` has the same keys
//! for the entries that carry an invalidity date. `spki_index` finds every certificate of
//! a public key with one range scan (revoking by key). `expiry` makes listing by expiry a
//! range scan too. The list indexes (schema 2) let `list` walk only what a filter can
//! match, in the same (`not_after`, serial) order, so pages and cursors do not depend on
//! the index walked: `revoked_expiry` for `--status revoked`, `profile_expiry` and
//! `issuer_expiry` for one profile or issuer, `names` for `--text` (matched without
//! decoding records). A database whose `schema_version` is newer than this code's is refused with
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
//!
//! # Where things are
//!
//! - `schema`: the table definitions, key and value encodings, schema version and the
//!   audit chain's tip;
//! - `writer`: the group-commit writer thread (batches, commits, reopening after an I/O
//!   error) and the operations it is sent;
//! - `write`: one function per write operation, applied inside the writer's batch;
//! - `read`: the reads, each in its own read transaction;
//! - this module: [`RedbStore`] itself, opening, and the [`Store`] implementation that
//!   sends writes to the writer and runs reads.

mod acme;
mod read;
mod schema;
mod write;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use redb::{Database, DatabaseError, ReadableDatabase};

use crate::{
    AuditEntry, AuditEvent, AuditVerification, BlockedKey, CertCursor, CertFilter, CertPage,
    CertRecord, Error, IssuanceBinding, OneTimeChallenge, PendingRequest, PendingState, Result,
    Revocation, RevokedEntry, Store, StoreStats, StoredCrl, UnixTime,
};
use schema::*;
use writer::*;

// What the writer's tests (beside this module) name through `super::*`.
#[cfg(test)]
use {crate::CertStatus, std::sync::mpsc::Receiver};

/// Settings of a [`RedbStore`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Most write operations applied in one commit (group commit). 0 counts as 1.
    /// Default 64.
    pub max_batch: usize,
    /// Use redb's quick repair: every commit also saves the allocator state, so the first
    /// open after a crash is instant instead of walking the whole file (about 0.6 s per GB),
    /// at roughly 40% fewer commits per second (docs/architecture.md, decision 5). Default off.
    pub quick_repair: bool,
    /// Memory redb may keep for cached pages, in bytes: the bound on what the store adds
    /// to the server's resident memory however many records it holds (redb's own default
    /// is 1 GiB). Default [`DEFAULT_CACHE_BYTES`].
    pub cache_bytes: usize,
}

/// [`StoreOptions::cache_bytes`] by default: 256 MiB. With a million certificates a
/// server stays near this bound (about 150 MB with 128 MiB in `privca bench store`, where
/// redb's own 1 GiB default let it grow past 1 GB); a full scan such as `list --text`
/// is faster the more of the store fits.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_batch: 64,
            quick_repair: false,
            cache_bytes: DEFAULT_CACHE_BYTES,
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
    /// [`StoreOptions::cache_bytes`], for a reopen.
    cache_bytes: usize,
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

fn open_file(path: &Path, cache_bytes: usize) -> Result<Database> {
    Database::builder()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
                Error::Locked(path.display().to_string())
            }
            other => classify(&format!("opening {}", path.display()), other.into()),
        })
}

impl RedbStore {
    /// Opens the database file at `path`, creating it if it does not exist.
    ///
    /// Fails with [`Error::Locked`] if another process (or another handle in this process)
    /// has it open, and with [`Error::UnsupportedSchema`] if it was written by a newer privca.
    ///
    /// A new database file is created with mode 0600 (it holds the audit log and the
    /// record of every certificate; only the server's user reads it).
    pub fn open(path: &Path, options: StoreOptions) -> Result<RedbStore> {
        create_private(path)?;
        let db = open_file(path, options.cache_bytes)?;
        Self::start(db, Some(path.to_path_buf()), options)
    }

    /// A store in memory, lost when dropped (for tests).
    pub fn in_memory() -> Result<RedbStore> {
        let db = Database::builder()
            .set_cache_size(DEFAULT_CACHE_BYTES)
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
            cache_bytes: options.cache_bytes,
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

    /// [`Self::submit`] for an operation that answers [`Reply::Done`].
    fn submit_done(&self, op: Op) -> Result<()> {
        match self.submit(op)? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// [`Self::submit`] for an operation that answers a number (an audit seq, a CRL
    /// number or a pending id).
    fn submit_number(&self, op: Op) -> Result<u64> {
        match self.submit(op)? {
            Reply::Number(n) => Ok(n),
            other => Err(unexpected(other)),
        }
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

impl Store for RedbStore {
    fn reserve_serial(&self, serial: &[u8], issuer: &str) -> Result<()> {
        check_serial(serial)?;
        self.submit_done(Op::ReserveSerial {
            serial: serial.to_vec(),
            issuer: issuer.to_string(),
            at: now(),
        })
    }

    fn import_certificates(&self, records: &[CertRecord], audit: &AuditEvent) -> Result<u64> {
        self.submit_number(Op::ImportCertificates {
            records: records.to_vec(),
            audit: audit.clone(),
        })
    }

    fn record_issuance_bound(
        &self,
        record: &CertRecord,
        audit: &AuditEvent,
        binding: &IssuanceBinding,
    ) -> Result<u64> {
        check_serial(&record.serial)?;
        self.submit_number(Op::RecordIssuance {
            record: Box::new(record.clone()),
            audit: audit.clone(),
            binding: Box::new(binding.clone()),
        })
    }

    fn get_cert(&self, serial: &[u8]) -> Result<Option<CertRecord>> {
        read::get_cert(&self.read()?, serial)
    }

    fn list_certs(&self, filter: &CertFilter) -> Result<Vec<CertRecord>> {
        read::list_certs(&self.read()?, filter)
    }

    fn list_cert_page(
        &self,
        filter: &CertFilter,
        after: Option<&CertCursor>,
        page_size: usize,
    ) -> Result<CertPage> {
        read::list_cert_page(&self.read()?, filter, after, page_size)
    }

    fn revoke_with(
        &self,
        serial: &[u8],
        revocation: Revocation,
        block_key: Option<&[u8]>,
        audit: &AuditEvent,
    ) -> Result<CertRecord> {
        check_serial(serial)?;
        if let Some(hash) = block_key {
            check_spki_hash(hash)?;
        }
        match self.submit(Op::Revoke {
            serial: serial.to_vec(),
            revocation,
            block_key: block_key.map(<[u8]>::to_vec),
            audit: audit.clone(),
        })? {
            Reply::Record(record) => Ok(*record),
            other => Err(unexpected(other)),
        }
    }

    fn release_hold(&self, serial: &[u8], audit: &AuditEvent) -> Result<CertRecord> {
        check_serial(serial)?;
        match self.submit(Op::ReleaseHold {
            serial: serial.to_vec(),
            audit: audit.clone(),
        })? {
            Reply::Record(record) => Ok(*record),
            other => Err(unexpected(other)),
        }
    }

    fn blocked_key(&self, spki_sha256: &[u8]) -> Result<Option<BlockedKey>> {
        read::blocked_key(&self.read()?, spki_sha256)
    }

    fn certs_by_spki(&self, spki_sha256: &[u8]) -> Result<Vec<CertRecord>> {
        read::certs_by_spki(&self.read()?, spki_sha256)
    }

    fn index_missing_keys(&self, hash_of: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> Result<usize> {
        /// Records read and indexed per commit.
        const BATCH: usize = 1000;
        if read::key_index_complete(&self.read()?)? {
            return Ok(0);
        }
        let mut indexed = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let batch = read::certs_without_key_hash(&self.read()?, after.as_deref(), BATCH)?;
            let complete = batch.len() < BATCH;
            after = batch.last().map(|(serial, _)| serial.clone());
            let entries: Vec<(Vec<u8>, Vec<u8>)> = batch
                .into_iter()
                .filter_map(|(serial, der)| hash_of(&der).map(|hash| (serial, hash)))
                .collect();
            indexed += entries.len();
            match self.submit(Op::IndexKeys { entries, complete })? {
                Reply::Done => {}
                other => return Err(unexpected(other)),
            }
            if complete {
                return Ok(indexed);
            }
        }
    }

    fn for_each_revoked(
        &self,
        issuer: &str,
        each: &mut dyn FnMut(RevokedEntry) -> Result<()>,
    ) -> Result<()> {
        read::for_each_revoked(&self.read()?, issuer, each)
    }

    fn next_crl_number(&self, issuer: &str) -> Result<u64> {
        self.submit_number(Op::NextCrlNumber {
            issuer: issuer.to_string(),
        })
    }

    fn put_crl(&self, issuer: &str, crl: &StoredCrl, audit: &AuditEvent) -> Result<()> {
        self.submit_done(Op::PutCrl {
            issuer: issuer.to_string(),
            crl: crl.clone(),
            audit: audit.clone(),
        })
    }

    fn latest_crl(&self, issuer: &str) -> Result<Option<StoredCrl>> {
        read::latest_crl(&self.read()?, issuer)
    }

    fn append_audit(&self, event: &AuditEvent) -> Result<u64> {
        self.submit_number(Op::AppendAudit {
            event: event.clone(),
        })
    }

    fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        read::audit_entries(&self.read()?, from, limit)
    }

    fn verify_audit(&self) -> Result<AuditVerification> {
        read::verify_audit(&self.read()?)
    }

    fn put_pending(&self, request: &PendingRequest, audit: &AuditEvent) -> Result<u64> {
        self.submit_number(Op::PutPending {
            request: Box::new(request.clone()),
            audit: audit.clone(),
        })
    }

    fn get_pending(&self, id: u64) -> Result<Option<PendingRequest>> {
        read::get_pending(&self.read()?, id)
    }

    fn find_pending(&self, lookup_key: &str) -> Result<Option<PendingRequest>> {
        read::find_pending(&self.read()?, lookup_key)
    }

    fn list_pending(&self, state: Option<PendingState>) -> Result<Vec<PendingRequest>> {
        read::list_pending(&self.read()?, state)
    }

    fn update_pending(&self, request: &PendingRequest, audit: &AuditEvent) -> Result<()> {
        self.submit_done(Op::UpdatePending {
            request: Box::new(request.clone()),
            audit: audit.clone(),
        })
    }

    fn put_challenge(&self, challenge: &OneTimeChallenge, audit: &AuditEvent) -> Result<()> {
        self.submit_done(Op::PutChallenge {
            challenge: Box::new(challenge.clone()),
            audit: audit.clone(),
        })
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
        read::get_challenge(&self.read()?, hash)
    }

    fn release_challenge(&self, hash: &[u8], endpoint: &str, audit: &AuditEvent) -> Result<()> {
        self.submit_done(Op::ReleaseChallenge {
            hash: hash.to_vec(),
            endpoint: endpoint.to_string(),
            audit: audit.clone(),
        })
    }

    fn put_transaction(&self, keys: &[String], serial: &[u8]) -> Result<()> {
        self.submit_done(Op::PutTransaction {
            keys: keys.to_vec(),
            serial: serial.to_vec(),
        })
    }

    fn find_transaction(&self, key: &str) -> Result<Option<Vec<u8>>> {
        read::find_transaction(&self.read()?, key)
    }

    fn check_writable(&self) -> Result<()> {
        self.submit_done(Op::Probe)
    }

    fn stats(&self) -> Result<StoreStats> {
        read::stats(&self.read()?)
    }

    fn count_expiring(&self, edges: &[i64]) -> Result<Vec<u64>> {
        read::count_expiring(&self.read()?, edges)
    }

    fn put_api_token(&self, token: &crate::tokens::ApiToken, audit: &AuditEvent) -> Result<()> {
        self.submit_done(Op::PutToken {
            token: Box::new(token.clone()),
            create: true,
            audit: audit.clone(),
        })
    }

    fn update_api_token(&self, token: &crate::tokens::ApiToken, audit: &AuditEvent) -> Result<()> {
        self.submit_done(Op::PutToken {
            token: Box::new(token.clone()),
            create: false,
            audit: audit.clone(),
        })
    }

    fn touch_api_token(&self, id: &str, at: i64) -> Result<()> {
        self.submit_done(Op::TouchToken {
            id: id.to_string(),
            at,
        })
    }

    fn state_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>> {
        read::state_get(&self.read()?, namespace, key)
    }

    fn state_put(&self, namespace: &str, key: &str, value: &[u8]) -> Result<()> {
        self.submit_done(Op::PutState {
            namespace: namespace.to_string(),
            key: key.to_string(),
            value: value.to_vec(),
        })
    }

    fn state_list(
        &self,
        namespace: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        read::state_list(&self.read()?, namespace, after, limit)
    }

    fn api_token(&self, id: &str) -> Result<Option<crate::tokens::ApiToken>> {
        read::api_token(&self.read()?, id)
    }

    fn list_api_tokens(&self) -> Result<Vec<crate::tokens::ApiToken>> {
        read::list_api_tokens(&self.read()?)
    }

    fn acme(&self) -> Option<&dyn crate::acme::AcmeStore> {
        Some(self)
    }
}

#[cfg(test)]
mod tests;
