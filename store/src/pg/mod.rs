//! The PostgreSQL backend: [`PgStore`], so that several privca nodes share one database
//! (docs/scale-out.md). Behind the cargo feature `postgres`, so that crates that only
//! name the [`Store`] trait do not build a database client.
//!
//! # Bridging a blocking trait to an async client
//!
//! The [`Store`] trait is blocking. A `PgStore` owns a small tokio runtime (two worker
//! threads) that runs a deadpool pool of tokio-postgres connections. Every method sends
//! its work to that runtime and waits for the answer on a channel, so it may be called
//! from any thread, inside or outside another runtime (it blocks that thread as a redb
//! commit does).
//!
//! # Concurrency across nodes
//!
//! Every guarantee the redb backend gets from its single writer comes here from the
//! database, so it holds across nodes:
//!
//! - a serial is unique by the primary key of `serials` (a reservation that collides is
//!   [`Error::Conflict`]; ca-core draws another serial);
//! - every write that has an audit event commits the record and the audit entry in one
//!   transaction; the audit entries are chained under a row lock on the one-row
//!   `audit_head`, taken last in the transaction, so all nodes append to one chain in
//!   one total order;
//! - a one-time challenge, a pending request and a certificate being revoked are locked
//!   with `SELECT ... FOR UPDATE` before they are checked, so of two nodes that race
//!   exactly one changes them and the other sees the change;
//! - CRL numbers are allocated with one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`,
//!   strictly increasing across nodes; a CRL is stored only if no newer one is.
//!
//! Durability: a write returns after its commit; with PostgreSQL's default
//! `synchronous_commit = on` that is after the WAL flush (open warns otherwise).
//!
//! Group commit: issuances (the writes of which a busy node makes most) go to one writer
//! task per node that commits every issuance queued at the moment in one transaction,
//! each inside a savepoint so that a refused one does not affect the others
//! ([`ops::issuance_writer`]); other writes are one transaction each. Not done yet:
//! per-node CRL signing leases.

mod acme;
mod migrate;
mod ops;
mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use crate::{
    AuditEntry, AuditEvent, AuditVerification, BlockedKey, CertCursor, CertFilter, CertPage,
    CertRecord, Error, IssuanceBinding, OneTimeChallenge, PendingRequest, PendingState, Result,
    Revocation, RevokedEntry, Store, StoreStats, StoredCrl, UnixTime,
};
pub use migrate::{MIGRATIONS, Migration, latest_version};

/// TLS to the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PgTls {
    /// Plain TCP or a Unix socket (a database on the same host or a trusted network).
    Disable,
    /// TLS, the server certificate verified against the CA certificates (PEM) in this
    /// file and the host name (PostgreSQL's `sslmode=verify-full`).
    VerifyFull(PathBuf),
}

/// How to reach the database and how to use it.
#[derive(Clone)]
pub struct PgOptions {
    /// A connection URL (`postgresql://user@host:port/dbname`) or key=value string;
    /// it must not hold a password. The fields below override its parts.
    pub url: Option<String>,
    /// Host name, IP address, or the directory of a Unix socket (starting with `/`).
    pub host: Option<String>,
    /// TCP port (default 5432).
    pub port: Option<u16>,
    /// User name.
    pub user: Option<String>,
    /// Database name.
    pub dbname: Option<String>,
    /// The password (read from a file or environment variable by the caller).
    pub password: Option<Vec<u8>>,
    /// Most connections in the pool.
    pub pool_size: usize,
    /// How long to wait to connect, and for a free connection of the pool.
    pub connect_timeout: Duration,
    /// PostgreSQL `statement_timeout` of the store's connections.
    pub statement_timeout: Duration,
    /// PostgreSQL `lock_timeout`: how long a write waits for a row another node holds.
    pub lock_timeout: Duration,
    /// TLS to the database.
    pub tls: PgTls,
    /// The name of this node, recorded with each audit entry and serial reservation.
    pub node: String,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &self.url.as_ref().map(|_| "<set>"))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("tls", &self.tls)
            .field("node", &self.node)
            .finish()
    }
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            url: None,
            host: None,
            port: None,
            user: None,
            dbname: None,
            password: None,
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
            tls: PgTls::Disable,
            node: String::new(),
        }
    }
}

/// Longest node name accepted.
const MAX_NODE_LEN: usize = 64;

impl PgOptions {
    /// Checks the settings without connecting: a URL that parses and holds no password,
    /// a host, a user and a database name, a pool of 1 to 1,024 connections, timeouts of
    /// at least a millisecond, a readable CA file.
    pub fn validate(&self) -> Result<()> {
        self.pg_config().map(|_| ())?;
        if let PgTls::VerifyFull(ca) = &self.tls {
            tls::RustlsMakeTls::from_ca_file(ca)?;
        }
        Ok(())
    }

    /// The tokio-postgres configuration these options describe.
    fn pg_config(&self) -> Result<tokio_postgres::Config> {
        let bad = |m: String| Error::Invalid(format!("PostgreSQL settings: {m}"));
        let mut cfg = match &self.url {
            Some(url) => url
                .parse::<tokio_postgres::Config>()
                .map_err(|e| bad(format!("the url does not parse: {e}")))?,
            None => tokio_postgres::Config::new(),
        };
        if cfg.get_password().is_some() {
            return Err(bad(
                "the url holds a password; give it as password = { file = ... } or { env = ... }"
                    .into(),
            ));
        }
        if let Some(host) = &self.host {
            if host.is_empty() {
                return Err(bad("host is empty".into()));
            }
            cfg.host(host);
        }
        if let Some(port) = self.port {
            cfg.port(port);
        }
        if let Some(user) = &self.user {
            cfg.user(user);
        }
        if let Some(dbname) = &self.dbname {
            cfg.dbname(dbname);
        }
        if cfg.get_hosts().is_empty() {
            return Err(bad("no host: set url or host".into()));
        }
        if cfg.get_user().is_none_or(str::is_empty) {
            return Err(bad("no user: set url or user".into()));
        }
        if cfg.get_dbname().is_none_or(str::is_empty) {
            return Err(bad("no database name: set url or dbname".into()));
        }
        if !(1..=1024).contains(&self.pool_size) {
            return Err(bad(format!(
                "pool_size must be 1 to 1024, not {}",
                self.pool_size
            )));
        }
        let ms = |d: Duration| d.as_millis();
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("statement_timeout", self.statement_timeout),
            ("lock_timeout", self.lock_timeout),
        ] {
            if ms(d) == 0 || d > Duration::from_secs(24 * 3600) {
                return Err(bad(format!(
                    "{name} must be 1 ms to 24 hours, not {} ms",
                    ms(d)
                )));
            }
        }
        if self.node.len() > MAX_NODE_LEN
            || !self
                .node
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(bad(format!(
                "a node name has at most {MAX_NODE_LEN} letters, digits, '-', '_' or '.'"
            )));
        }
        if let Some(password) = &self.password {
            cfg.password(password);
        }
        cfg.application_name("privca");
        cfg.connect_timeout(self.connect_timeout);
        // A transaction left open (a node that stopped mid-write) must not hold the
        // audit head for long.
        cfg.options(format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            ms(self.statement_timeout),
            ms(self.lock_timeout),
            ms(self.statement_timeout).max(1000)
        ));
        cfg.ssl_mode(match self.tls {
            PgTls::Disable => tokio_postgres::config::SslMode::Disable,
            // The connector verifies the certificate chain and the host name.
            PgTls::VerifyFull(_) => tokio_postgres::config::SslMode::Require,
        });
        Ok(cfg)
    }
}

/// What the runtime's tasks share: the pool and the node name.
struct Inner {
    pool: Pool,
    node: String,
    /// Group-commit transactions committed, and the issuances in them.
    batches: std::sync::atomic::AtomicU64,
    batched: std::sync::atomic::AtomicU64,
}

/// Where issuances go for group commit ([`ops::issuance_writer`]).
type Issuances = tokio::sync::mpsc::Sender<ops::IssueJob>;

impl Inner {
    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| {
            Error::Unavailable(format!(
                "no connection to the database: {}",
                with_causes(&e)
            ))
        })
    }
}

/// An error with its chain of causes, `a: b: c` (the pool's error alone says "error
/// performing TLS handshake" and hides that the certificate was not trusted).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

/// The PostgreSQL-backed [`Store`]. See the module documentation.
pub struct PgStore {
    runtime: Option<tokio::runtime::Runtime>,
    inner: Arc<Inner>,
    issuances: Issuances,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("node", &self.inner.node)
            .field("pool", &self.inner.pool.status())
            .finish()
    }
}

impl PgStore {
    /// Connects and checks that the database holds exactly the schema this code knows
    /// ([`Error::Schema`] or [`Error::UnsupportedSchema`] otherwise: run
    /// `privca store migrate`, or upgrade privca).
    pub fn open(options: &PgOptions) -> Result<PgStore> {
        let store = PgStore::connect(options)?;
        store.run(|inner| async move {
            let client = inner.client().await?;
            migrate::check(&client).await?;
            let row = client
                .query_one("SHOW synchronous_commit", &[])
                .await
                .map_err(db)?;
            let mode: String = ops::col(&row, 0)?;
            if mode == "off" || mode == "local" {
                tracing::warn!(
                    synchronous_commit = %mode,
                    "the database acknowledges commits before they are durable (or replicated); \
                     set synchronous_commit = on"
                );
            }
            Ok(())
        })?;
        Ok(store)
    }

    /// Applies the migrations the database lacks; returns their versions (empty when it
    /// was current). Safe to run from several nodes at once.
    pub fn migrate(options: &PgOptions) -> Result<Vec<i32>> {
        let store = PgStore::connect(options)?;
        store.run(|inner| async move {
            let mut client = inner.client().await?;
            migrate::apply(&mut client).await
        })
    }

    /// Group commit so far: (transactions committed by the issuance writer, issuances
    /// they held, refused ones included).
    pub fn group_commit_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.inner.batches.load(Relaxed),
            self.inner.batched.load(Relaxed),
        )
    }

    /// The pool and its runtime, without touching the database.
    fn connect(options: &PgOptions) -> Result<PgStore> {
        let cfg = options.pg_config()?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &options.tls {
            PgTls::Disable => Manager::from_config(cfg, tokio_postgres::NoTls, manager_config),
            PgTls::VerifyFull(ca) => {
                Manager::from_config(cfg, tls::RustlsMakeTls::from_ca_file(ca)?, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| Error::Backend(format!("building the connection pool: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("privca-pg")
            .enable_all()
            .build()
            .map_err(|e| Error::Backend(format!("starting the database runtime: {e}")))?;
        let inner = Arc::new(Inner {
            pool,
            node: options.node.clone(),
            batches: Default::default(),
            batched: Default::default(),
        });
        let (issuances, jobs) = tokio::sync::mpsc::channel(4 * ops::MAX_BATCH);
        runtime.spawn(ops::issuance_writer(Arc::clone(&inner), jobs));
        Ok(PgStore {
            runtime: Some(runtime),
            inner,
            issuances,
        })
    }

    /// Runs `work` on the store's runtime and waits for its answer.
    fn run<T, F, Fut>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let runtime = self.runtime.as_ref().ok_or(Error::Closed)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let future = work(Arc::clone(&self.inner));
        runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        // A task that panicked dropped its sender.
        rx.recv()
            .unwrap_or_else(|_| Err(Error::Backend("internal: a database task failed".into())))
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.inner.pool.close();
        if let Some(runtime) = self.runtime.take() {
            // Does not block, so a store may be dropped on an async thread too.
            runtime.shutdown_background();
        }
    }
}

/// A tokio-postgres error as a store error: a unique violation is a conflict (the
/// caller's write collided with another node's); lost connections, timeouts, a database
/// shutting down or read-only are [`Error::Unavailable`] (the same request may succeed
/// later); the rest is [`Error::Backend`].
pub(super) fn db(e: tokio_postgres::Error) -> Error {
    use tokio_postgres::error::SqlState;
    let Some(d) = e.as_db_error() else {
        return Error::Unavailable(format!("the database connection: {e}"));
    };
    let code = d.code();
    if *code == SqlState::UNIQUE_VIOLATION {
        return Error::Conflict(format!("the record exists ({})", d.message()));
    }
    let retryable = [
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::QUERY_CANCELED,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::READ_ONLY_SQL_TRANSACTION,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
        SqlState::DISK_FULL,
    ];
    if retryable.contains(code) {
        Error::Unavailable(format!("the database: {}", d.message()))
    } else {
        Error::Backend(format!("PostgreSQL {}: {}", code.code(), d.message()))
    }
}

impl Store for PgStore {
    fn reserve_serial(&self, serial: &[u8], issuer: &str) -> Result<()> {
        crate::checks::check_serial(serial)?;
        let (serial, issuer) = (serial.to_vec(), issuer.to_string());
        self.run(|i| async move { ops::reserve_serial(&i, serial, issuer).await })
    }

    fn record_issuance_bound(
        &self,
        record: &CertRecord,
        audit: &AuditEvent,
        binding: &IssuanceBinding,
    ) -> Result<u64> {
        crate::checks::check_serial(&record.serial)?;
        crate::checks::check_status(record, "the record")?;
        // Through the node's group-commit writer: concurrent issuances share a commit.
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let job = ops::IssueJob {
            record: record.clone(),
            audit: audit.clone(),
            binding: binding.clone(),
            reply,
        };
        // Queued from the store's runtime, not here: the caller may be on an async thread.
        let issuances = self.issuances.clone();
        self.run(|_| async move { issuances.send(job).await.map_err(|_| Error::Closed) })?;
        answer.recv().unwrap_or(Err(Error::Closed))
    }

    fn import_certificates(&self, records: &[CertRecord], audit: &AuditEvent) -> Result<u64> {
        for r in records {
            crate::checks::check_serial(&r.serial)?;
            crate::checks::check_status(r, "a record")?;
        }
        let (records, audit) = (records.to_vec(), audit.clone());
        self.run(|i| async move { ops::import_certificates(&i, records, audit).await })
    }

    fn get_cert(&self, serial: &[u8]) -> Result<Option<CertRecord>> {
        let serial = serial.to_vec();
        self.run(|i| async move { ops::get_cert(&i, serial).await })
    }

    fn list_certs(&self, filter: &CertFilter) -> Result<Vec<CertRecord>> {
        let filter = filter.clone();
        let limit = filter.limit.unwrap_or(usize::MAX);
        self.run(|i| async move { Ok(ops::scan_certs(&i, &filter, None, limit, true).await?.0) })
    }

    fn list_cert_page(
        &self,
        filter: &CertFilter,
        after: Option<&CertCursor>,
        page_size: usize,
    ) -> Result<CertPage> {
        let (filter, after) = (filter.clone(), after.cloned());
        self.run(|i| async move {
            let (records, full) =
                ops::scan_certs(&i, &filter, after.as_ref(), page_size, false).await?;
            let next = match (full, records.last()) {
                (true, Some(last)) => Some(CertCursor {
                    not_after: last.not_after,
                    serial: last.serial.clone(),
                }),
                _ => None,
            };
            Ok(CertPage { records, next })
        })
    }

    fn revoke_with(
        &self,
        serial: &[u8],
        revocation: Revocation,
        block_key: Option<&[u8]>,
        audit: &AuditEvent,
    ) -> Result<CertRecord> {
        crate::checks::check_serial(serial)?;
        if let Some(hash) = block_key {
            crate::checks::check_spki_hash(hash)?;
        }
        let (serial, block_key, audit) = (
            serial.to_vec(),
            block_key.map(<[u8]>::to_vec),
            audit.clone(),
        );
        self.run(|i| async move { ops::revoke(&i, serial, revocation, block_key, audit).await })
    }

    fn release_hold(&self, serial: &[u8], audit: &AuditEvent) -> Result<CertRecord> {
        crate::checks::check_serial(serial)?;
        let (serial, audit) = (serial.to_vec(), audit.clone());
        self.run(|i| async move { ops::release_hold(&i, serial, audit).await })
    }

    fn blocked_key(&self, spki_sha256: &[u8]) -> Result<Option<BlockedKey>> {
        let hash = spki_sha256.to_vec();
        self.run(|i| async move { ops::blocked_key(&i, hash).await })
    }

    fn certs_by_spki(&self, spki_sha256: &[u8]) -> Result<Vec<CertRecord>> {
        if spki_sha256.is_empty() {
            return Ok(Vec::new());
        }
        let hash = spki_sha256.to_vec();
        self.run(|i| async move { ops::certs_by_spki(&i, hash).await })
    }

    fn index_missing_keys(&self, hash_of: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> Result<usize> {
        if self.run(|i| async move { ops::key_index_complete(&i).await })? {
            return Ok(0);
        }
        let mut indexed = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let from = after.clone();
            let batch = self.run(|i| async move {
                ops::certs_without_key_hash(&i, from, ops::KEY_BATCH).await
            })?;
            let complete = batch.len() < ops::KEY_BATCH;
            after = batch.last().map(|(serial, _)| serial.clone());
            let mut entries = Vec::with_capacity(batch.len());
            for (serial, der) in batch {
                if let Some(hash) = hash_of(&der) {
                    crate::checks::check_spki_hash(&hash)?;
                    entries.push((serial, hash));
                }
            }
            indexed += entries.len();
            self.run(|i| async move { ops::index_keys(&i, entries, complete).await })?;
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
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (issuer, from) = (issuer.to_string(), after.clone());
            let page = self.run(|i| async move {
                ops::revoked_page(&i, issuer, from, ops::REVOKED_PAGE).await
            })?;
            let full = page.len() >= ops::REVOKED_PAGE;
            after = page.last().map(|e| e.serial.clone());
            for entry in page {
                each(entry)?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn next_crl_number(&self, issuer: &str) -> Result<u64> {
        let issuer = issuer.to_string();
        self.run(|i| async move { ops::next_crl_number(&i, issuer).await })
    }

    fn put_crl(&self, issuer: &str, crl: &StoredCrl, audit: &AuditEvent) -> Result<()> {
        let (issuer, crl, audit) = (issuer.to_string(), crl.clone(), audit.clone());
        self.run(|i| async move { ops::put_crl(&i, issuer, crl, None, audit).await })
    }

    fn crl_lease(&self, issuer: &str, holder: &str, now: i64, ttl: i64) -> Result<Option<u64>> {
        let (issuer, holder) = (issuer.to_string(), holder.to_string());
        self.run(|i| async move { ops::crl_lease(&i, issuer, holder, now, ttl).await })
    }

    fn crl_lease_release(&self, issuer: &str, holder: &str, fence: u64) -> Result<()> {
        let (issuer, holder) = (issuer.to_string(), holder.to_string());
        self.run(|i| async move { ops::crl_lease_release(&i, issuer, holder, fence).await })
    }

    fn put_crl_fenced(
        &self,
        issuer: &str,
        crl: &StoredCrl,
        fence: u64,
        audit: &AuditEvent,
    ) -> Result<()> {
        let (issuer, crl, audit) = (issuer.to_string(), crl.clone(), audit.clone());
        self.run(|i| async move { ops::put_crl(&i, issuer, crl, Some(fence), audit).await })
    }

    fn latest_crl(&self, issuer: &str) -> Result<Option<StoredCrl>> {
        let issuer = issuer.to_string();
        self.run(|i| async move { ops::latest_crl(&i, issuer).await })
    }

    fn append_audit(&self, event: &AuditEvent) -> Result<u64> {
        let event = event.clone();
        self.run(|i| async move { ops::append_audit(&i, event).await })
    }

    fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        self.run(|i| async move { ops::audit_entries(&i, from, limit).await })
    }

    fn verify_audit(&self) -> Result<AuditVerification> {
        self.run(|i| async move { ops::verify_audit(&i).await })
    }

    fn put_pending(&self, request: &PendingRequest, audit: &AuditEvent) -> Result<u64> {
        let (request, audit) = (request.clone(), audit.clone());
        self.run(|i| async move { ops::put_pending(&i, request, audit).await })
    }

    fn get_pending(&self, id: u64) -> Result<Option<PendingRequest>> {
        self.run(|i| async move { ops::get_pending(&i, id).await })
    }

    fn find_pending(&self, lookup_key: &str) -> Result<Option<PendingRequest>> {
        let key = lookup_key.to_string();
        self.run(|i| async move { ops::find_pending(&i, key).await })
    }

    fn list_pending(&self, state: Option<PendingState>) -> Result<Vec<PendingRequest>> {
        self.run(|i| async move { ops::list_pending(&i, state).await })
    }

    fn update_pending(&self, request: &PendingRequest, audit: &AuditEvent) -> Result<()> {
        let (request, audit) = (request.clone(), audit.clone());
        self.run(|i| async move { ops::update_pending(&i, request, audit).await })
    }

    fn put_challenge(&self, challenge: &OneTimeChallenge, audit: &AuditEvent) -> Result<()> {
        let (challenge, audit) = (challenge.clone(), audit.clone());
        self.run(|i| async move { ops::put_challenge(&i, challenge, audit).await })
    }

    fn consume_challenge(
        &self,
        hash: &[u8],
        endpoint: &str,
        now: UnixTime,
        audit: &AuditEvent,
    ) -> Result<OneTimeChallenge> {
        let (hash, endpoint, audit) = (hash.to_vec(), endpoint.to_string(), audit.clone());
        self.run(|i| async move { ops::consume_challenge(&i, hash, endpoint, now, audit).await })
    }

    fn get_challenge(&self, hash: &[u8]) -> Result<Option<OneTimeChallenge>> {
        let hash = hash.to_vec();
        self.run(|i| async move { ops::get_challenge(&i, hash).await })
    }

    fn release_challenge(&self, hash: &[u8], endpoint: &str, audit: &AuditEvent) -> Result<()> {
        let (hash, endpoint, audit) = (hash.to_vec(), endpoint.to_string(), audit.clone());
        self.run(|i| async move { ops::release_challenge(&i, hash, endpoint, audit).await })
    }

    fn put_transaction(&self, keys: &[String], serial: &[u8]) -> Result<()> {
        let (keys, serial) = (keys.to_vec(), serial.to_vec());
        self.run(|i| async move { ops::put_transaction(&i, keys, serial).await })
    }

    fn find_transaction(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_string();
        self.run(|i| async move { ops::find_transaction(&i, key).await })
    }

    fn stats(&self) -> Result<StoreStats> {
        self.run(|i| async move { ops::stats(&i).await })
    }

    fn put_api_token(&self, token: &crate::tokens::ApiToken, audit: &AuditEvent) -> Result<()> {
        let (token, audit) = (token.clone(), audit.clone());
        self.run(|i| async move { ops::put_api_token(&i, token, true, audit).await })
    }

    fn update_api_token(&self, token: &crate::tokens::ApiToken, audit: &AuditEvent) -> Result<()> {
        let (token, audit) = (token.clone(), audit.clone());
        self.run(|i| async move { ops::put_api_token(&i, token, false, audit).await })
    }

    fn touch_api_token(&self, id: &str, at: i64) -> Result<()> {
        let id = id.to_string();
        self.run(|i| async move { ops::touch_api_token(&i, id, at).await })
    }

    fn state_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let (namespace, key) = (namespace.to_string(), key.to_string());
        self.run(|i| async move { ops::state_get(&i, namespace, key).await })
    }

    fn state_put(&self, namespace: &str, key: &str, value: &[u8]) -> Result<()> {
        let (namespace, key, value) = (namespace.to_string(), key.to_string(), value.to_vec());
        self.run(|i| async move { ops::state_put(&i, namespace, key, value).await })
    }

    fn state_list(
        &self,
        namespace: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let (namespace, after) = (namespace.to_string(), after.map(str::to_string));
        self.run(|i| async move { ops::state_list(&i, namespace, after, limit).await })
    }

    fn api_token(&self, id: &str) -> Result<Option<crate::tokens::ApiToken>> {
        let id = id.to_string();
        self.run(|i| async move { ops::api_token(&i, id).await })
    }

    fn list_api_tokens(&self) -> Result<Vec<crate::tokens::ApiToken>> {
        self.run(|i| async move { ops::list_api_tokens(&i).await })
    }

    fn acme(&self) -> Option<&dyn crate::acme::AcmeStore> {
        Some(self)
    }

    fn count_expiring(&self, edges: &[i64]) -> Result<Vec<u64>> {
        let edges = edges.to_vec();
        self.run(|i| async move { ops::count_expiring(&i, &edges).await })
    }

    /// Writes work when a connection answers and the database is a primary (not a
    /// read-only standby); [`Error::Unavailable`] otherwise. A pool whose database came
    /// back answers again without a restart.
    fn check_writable(&self) -> Result<()> {
        self.run(|i| async move { ops::check_writable(&i).await })
    }
}
