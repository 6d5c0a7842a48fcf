//! The group-commit writer: one thread that applies queued write operations in batches,
//! one write transaction and one commit (one fsync) per batch, and reopens the database
//! after an I/O error (see the module documentation of [`super`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};

use redb::Database;

use super::schema::*;
use super::write::apply;
use super::{Counters, Shared, open_file};
use crate::{
    AuditEntry, AuditEvent, CertRecord, Error, IssuanceBinding, OneTimeChallenge, PendingRequest,
    Result, Revocation, StoredCrl, UnixTime,
};

/// A write operation, owned so it can cross to the writer thread.
pub(super) enum Op {
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
        block_key: Option<Vec<u8>>,
        audit: AuditEvent,
    },
    ReleaseHold {
        serial: Vec<u8>,
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
    /// Key-index entries (serial, SPKI SHA-256) for records written before the index;
    /// `complete` marks the database as fully indexed in the same commit.
    IndexKeys {
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        complete: bool,
    },
    PutChallenge {
        challenge: Box<OneTimeChallenge>,
        audit: AuditEvent,
    },
    /// A new API token (`create`) or a replacement of a stored one.
    PutToken {
        token: Box<crate::tokens::ApiToken>,
        create: bool,
        audit: AuditEvent,
    },
    /// A piece of service state.
    PutState {
        namespace: String,
        key: String,
        value: Vec<u8>,
    },
    /// A token's last use.
    TouchToken {
        id: String,
        at: UnixTime,
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
    /// An ACME record write (`super::acme`).
    Acme(Box<super::acme::AcmeOp>),
    /// [`Store::check_writable`]: a no-op while writes work; after a storage failure a
    /// small durable write that proves they work again.
    Probe,
}

/// What a committed operation returns.
#[derive(Debug)]
pub(super) enum Reply {
    Done,
    /// An audit seq, a CRL number or a pending id.
    Number(u64),
    Record(Box<CertRecord>),
    Challenge(Box<OneTimeChallenge>),
}

pub(super) fn unexpected(reply: Reply) -> Error {
    Error::Backend(format!("internal: unexpected writer reply {reply:?}"))
}

pub(super) struct Job {
    pub(super) op: Op,
    pub(super) reply: SyncSender<Result<Reply>>,
}

/// Why an operation was not applied.
pub(super) enum ApplyError {
    /// Refused by its checks; nothing of it was written.
    Refused(Error),
    /// The engine failed; the transaction must be aborted. The error is
    /// [`Error::Unavailable`] for I/O failures ([`classify`]).
    Fatal(Error),
}

pub(super) trait FatalExt<T> {
    fn fatal(self) -> Result<T, ApplyError>;
}

impl<T, E: Into<redb::Error>> FatalExt<T> for std::result::Result<T, E> {
    fn fatal(self) -> Result<T, ApplyError> {
        self.map_err(|e| ApplyError::Fatal(classify("writing", e.into())))
    }
}

pub(super) trait RefuseExt<T> {
    fn refuse(self) -> Result<T, ApplyError>;
}

impl<T> RefuseExt<T> for Result<T> {
    fn refuse(self) -> Result<T, ApplyError> {
        self.map_err(ApplyError::Refused)
    }
}

pub(super) fn refused<T>(e: Error) -> Result<T, ApplyError> {
    Err(ApplyError::Refused(e))
}

pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    /// Set after an I/O error: drop the database and open the file again before the next
    /// batch.
    pub(super) reopen: bool,
    pub(super) max_batch: usize,
    pub(super) quick_repair: bool,
    /// `None` after a failed commit: read it again from disk before the next batch.
    pub(super) tip: Option<AuditTip>,
    pub(super) counters: Arc<Counters>,
}

impl Writer {
    pub(super) fn run(mut self, receiver: Receiver<Job>) {
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
    pub(super) fn process(&mut self, jobs: Vec<Job>) {
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
        let db = open_file(&path, self.shared.cache_bytes).map_err(|e| match e {
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
pub(super) fn copy_error(e: &Error) -> Error {
    match e {
        Error::Unavailable(m) => Error::Unavailable(m.clone()),
        Error::Backend(m) => Error::Backend(m.clone()),
        other => Error::Backend(other.to_string()),
    }
}

/// Builds the next audit entry after `tip` and its stored form.
pub(super) fn chain(
    tip: &AuditTip,
    event: AuditEvent,
) -> Result<(AuditEntry, Vec<u8>), ApplyError> {
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

pub(super) fn advance(tip: &mut AuditTip, entry: AuditEntry) {
    tip.seq = entry.seq;
    tip.hash = entry.hash;
}
