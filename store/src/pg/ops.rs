//! The operations of [`super::PgStore`], one async function each. A write runs in one
//! transaction: it locks the rows it checks (`FOR UPDATE`), refuses with nothing written
//! (the transaction rolls back when dropped), writes, appends its audit entries under the
//! audit head's row lock last, and commits.

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use super::{Inner, db};
use crate::checks::{check_spendable, now, text_matches};
use crate::{
    AuditEntry, AuditEvent, AuditVerification, BlockedKey, CertCursor, CertFilter, CertRecord,
    CertStatus, Error, IssuanceBinding, OneTimeChallenge, PendingRequest, PendingState, Result,
    Revocation, RevokedEntry, StoreStats, StoredCrl, UnixTime,
};

/// Records read and indexed per transaction by `index_missing_keys`.
pub(super) const KEY_BATCH: usize = 1000;
/// Revocations read per query by `for_each_revoked`.
pub(super) const REVOKED_PAGE: usize = 10_000;
/// Rows read per query when listing certificates or walking the audit log.
const SCAN_CHUNK: usize = 1000;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Column `i` of `row`; a value of the wrong type is [`Error::Corrupt`], not a panic.
pub(super) fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i)
        .map_err(|e| Error::Corrupt(format!("column {i}: {e}")))
}

pub(super) async fn rows(c: &impl GenericClient, sql: &str, p: Params<'_>) -> Result<Vec<Row>> {
    let st = c.prepare_cached(sql).await.map_err(db)?;
    c.query(&st, p).await.map_err(db)
}

pub(super) async fn row(c: &impl GenericClient, sql: &str, p: Params<'_>) -> Result<Option<Row>> {
    let st = c.prepare_cached(sql).await.map_err(db)?;
    c.query_opt(&st, p).await.map_err(db)
}

pub(super) async fn exec(c: &impl GenericClient, sql: &str, p: Params<'_>) -> Result<u64> {
    let st = c.prepare_cached(sql).await.map_err(db)?;
    c.execute(&st, p).await.map_err(db)
}

fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Invalid(format!("{what} {v} is too large")))
}

fn to_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Corrupt(format!("{what} {v} is negative")))
}

// ---------------------------------------------------------------------------------------
// The audit chain.

/// Appends `events` to the one audit chain, in order, inside `tx`: locks the head row
/// (the last lock the transaction takes, so it is held for about one commit), chains,
/// inserts and moves the head. Returns the seq of the last event.
async fn append(tx: &Transaction<'_>, node: &str, events: &[&AuditEvent]) -> Result<u64> {
    let head = row(
        tx,
        "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
        &[],
    )
    .await?
    .ok_or_else(|| Error::Corrupt("the audit head row is missing".into()))?;
    let mut seq = to_u64(col(&head, 0)?, "audit seq")?;
    let mut prev: String = col(&head, 1)?;
    for event in events {
        seq = seq
            .checked_add(1)
            .ok_or_else(|| Error::Conflict("audit sequence numbers are exhausted".into()))?;
        let hash = AuditEntry::compute_hash(seq, &prev, event)?;
        let s = to_i64(seq, "audit seq")?;
        exec(
            tx,
            "INSERT INTO audit (seq, at, action, actor, subject, detail, prev_hash, hash, node) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &s,
                &event.time,
                &event.action,
                &event.actor,
                &event.subject,
                &event.detail,
                &prev,
                &hash,
                &node,
            ],
        )
        .await?;
        prev = hash;
    }
    let s = to_i64(seq, "audit seq")?;
    exec(
        tx,
        "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
        &[&s, &prev],
    )
    .await?;
    Ok(seq)
}

/// Appends `events` and commits.
pub(super) async fn commit_with(
    tx: Transaction<'_>,
    node: &str,
    events: &[&AuditEvent],
) -> Result<u64> {
    let seq = append(&tx, node, events).await?;
    tx.commit().await.map_err(db)?;
    Ok(seq)
}

fn entry_from_row(r: &Row) -> Result<AuditEntry> {
    Ok(AuditEntry {
        seq: to_u64(col(r, 0)?, "audit seq")?,
        event: AuditEvent {
            time: col(r, 1)?,
            action: col(r, 2)?,
            actor: col(r, 3)?,
            subject: col(r, 4)?,
            detail: col(r, 5)?,
        },
        prev_hash: col(r, 6)?,
        hash: col(r, 7)?,
    })
}

const AUDIT_COLS: &str = "seq, at, action, actor, subject, detail, prev_hash, hash";

pub(super) async fn append_audit(i: &Inner, event: AuditEvent) -> Result<u64> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    commit_with(tx, &i.node, &[&event]).await
}

pub(super) async fn audit_entries(i: &Inner, from: u64, limit: usize) -> Result<Vec<AuditEntry>> {
    let c = i.client().await?;
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = format!("SELECT {AUDIT_COLS} FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2");
    rows(&c, &sql, &[&from, &limit])
        .await?
        .iter()
        .map(entry_from_row)
        .collect()
}

pub(super) async fn verify_audit(i: &Inner) -> Result<AuditVerification> {
    let c = i.client().await?;
    let mut walk = crate::checks::ChainWalk::new();
    let mut after = 0i64;
    let limit = SCAN_CHUNK as i64;
    let sql = format!("SELECT {AUDIT_COLS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2");
    loop {
        let page = rows(&c, &sql, &[&after, &limit]).await?;
        for r in &page {
            let seq: i64 = col(r, 0)?;
            walk.push(to_u64(seq, "audit seq")?, entry_from_row(r).ok())?;
            after = seq;
        }
        if page.len() < SCAN_CHUNK {
            return Ok(walk.finish());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Certificates.

const CERT_COLS: &str = "serial, issuer, subject, sans, profile, requester, not_before, \
     not_after, issued_at, revoked_at, reason, invalidity_date, spki_sha256, der";
/// The same columns without the DER (pages).
const CERT_COLS_NO_DER: &str = "serial, issuer, subject, sans, profile, requester, not_before, \
     not_after, issued_at, revoked_at, reason, invalidity_date, spki_sha256, ''::bytea";

fn cert_from_row(r: &Row) -> Result<CertRecord> {
    let revoked_at: Option<i64> = col(r, 9)?;
    let reason: Option<i16> = col(r, 10)?;
    let revocation = match (revoked_at, reason) {
        (Some(time), Some(reason)) => Some(Revocation {
            time,
            reason: u8::try_from(reason)
                .map_err(|_| Error::Corrupt(format!("revocation reason {reason}")))?,
            invalidity_date: col(r, 11)?,
        }),
        (None, None) => None,
        _ => return Err(Error::Corrupt("revocation time without reason".into())),
    };
    Ok(CertRecord {
        serial: col(r, 0)?,
        issuer: col(r, 1)?,
        subject: col(r, 2)?,
        sans: col(r, 3)?,
        profile: col(r, 4)?,
        requester: col(r, 5)?,
        not_before: col(r, 6)?,
        not_after: col(r, 7)?,
        issued_at: col(r, 8)?,
        status: if revocation.is_some() {
            CertStatus::Revoked
        } else {
            CertStatus::Valid
        },
        revocation,
        spki_sha256: col(r, 12)?,
        der: col(r, 13)?,
    })
}

async fn insert_cert(tx: &Transaction<'_>, r: &CertRecord) -> Result<()> {
    let revoked_at = r.revocation.map(|v| v.time);
    let reason = r.revocation.map(|v| i16::from(v.reason));
    let invalidity = r.revocation.and_then(|v| v.invalidity_date);
    exec(
        tx,
        "INSERT INTO certificates (serial, issuer, subject, sans, profile, requester, \
         not_before, not_after, issued_at, revoked_at, reason, invalidity_date, spki_sha256, der) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &r.serial,
            &r.issuer,
            &r.subject,
            &r.sans,
            &r.profile,
            &r.requester,
            &r.not_before,
            &r.not_after,
            &r.issued_at,
            &revoked_at,
            &reason,
            &invalidity,
            &r.spki_sha256,
            &r.der,
        ],
    )
    .await?;
    Ok(())
}

fn used_before(serial: &[u8]) -> Error {
    Error::Conflict(format!("serial {} was used before", hex::encode(serial)))
}

pub(super) async fn reserve_serial(i: &Inner, serial: Vec<u8>, issuer: String) -> Result<()> {
    let c = i.client().await?;
    let n = exec(
        &c,
        "INSERT INTO serials (serial, issuer, reserved_at, node) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (serial) DO NOTHING",
        &[&serial, &issuer, &now(), &i.node],
    )
    .await?;
    if n == 0 {
        return Err(used_before(&serial));
    }
    Ok(())
}

pub(super) async fn import_certificates(
    i: &Inner,
    records: Vec<CertRecord>,
    audit: AuditEvent,
) -> Result<u64> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    for r in &records {
        let n = exec(
            &tx,
            "INSERT INTO serials (serial, issuer, reserved_at, node) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (serial) DO NOTHING",
            &[&r.serial, &r.issuer, &r.issued_at, &i.node],
        )
        .await?;
        if n == 0 {
            return Err(used_before(&r.serial));
        }
        insert_cert(&tx, r).await?;
    }
    commit_with(tx, &i.node, &[&audit]).await
}

/// The challenge `hash` of `endpoint`, locked; [`Error::NotFound`] when there is none
/// (a challenge of another endpoint is not one).
async fn lock_challenge(
    tx: &Transaction<'_>,
    hash: &[u8],
    endpoint: &str,
) -> Result<OneTimeChallenge> {
    let found = row(
        tx,
        "SELECT hash, endpoint, created_by, created_at, expires_at, used_at, used_for \
         FROM challenges WHERE hash = $1 FOR UPDATE",
        &[&hash],
    )
    .await?;
    match found.map(|r| challenge_from_row(&r)).transpose()? {
        Some(c) if c.endpoint == endpoint => Ok(c),
        _ => Err(Error::NotFound("no such challenge".into())),
    }
}

fn challenge_from_row(r: &Row) -> Result<OneTimeChallenge> {
    Ok(OneTimeChallenge {
        hash: col(r, 0)?,
        endpoint: col(r, 1)?,
        created_by: col(r, 2)?,
        created_at: col(r, 3)?,
        expires_at: col(r, 4)?,
        used_at: col(r, 5)?,
        used_for: col(r, 6)?,
    })
}

/// One issuance waiting for the group-commit writer of its node.
pub(super) struct IssueJob {
    pub(super) record: CertRecord,
    pub(super) audit: AuditEvent,
    pub(super) binding: IssuanceBinding,
    pub(super) reply: std::sync::mpsc::SyncSender<Result<u64>>,
}

/// Most issuances one transaction commits.
pub(super) const MAX_BATCH: usize = 32;

/// The node's group-commit writer: takes the first waiting issuance and whatever else is
/// queued behind it (up to [`MAX_BATCH`]), applies each inside a savepoint of one
/// transaction (a refused one is rolled back to its savepoint and does not affect the
/// others) and commits once, so concurrent issuances share one WAL flush. Only after the
/// commit are the callers answered; if the commit fails, every issuance of the batch
/// gets the error.
pub(super) async fn issuance_writer(
    inner: std::sync::Arc<Inner>,
    mut jobs: tokio::sync::mpsc::Receiver<IssueJob>,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = commit_batch(&inner, &batch).await;
        for (job, result) in batch.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }
}

async fn commit_batch(i: &Inner, batch: &[IssueJob]) -> Vec<Result<u64>> {
    let fail_all = |e: &Error| -> Vec<Result<u64>> {
        batch
            .iter()
            .map(|_| Err(Error::Unavailable(e.to_string())))
            .collect()
    };
    let mut c = match i.client().await {
        Ok(c) => c,
        Err(e) => return fail_all(&e),
    };
    let mut tx = match c.transaction().await.map_err(db) {
        Ok(tx) => tx,
        Err(e) => return fail_all(&e),
    };
    // First every issuance's checks and writes, each in its savepoint; then the audit
    // entries of the accepted ones, so that the audit head is still the last lock the
    // transaction takes (a batch that held it while waiting for a row another node has
    // locked could deadlock with that node).
    let mut accepted: Vec<Result<Vec<&AuditEvent>>> = Vec::with_capacity(batch.len());
    for job in batch {
        let outcome = async {
            let sp = tx.savepoint("issue").await.map_err(db)?;
            // Dropped without release on a refusal: rolled back to the savepoint.
            let events = record_issuance_in(&sp, &job.record, &job.audit, &job.binding).await?;
            sp.commit().await.map_err(db)?;
            Ok(events)
        }
        .await;
        accepted.push(outcome);
    }
    let mut results = Vec::with_capacity(batch.len());
    for outcome in accepted {
        results.push(match outcome {
            Ok(events) => match append(&tx, &i.node, &events).await {
                Ok(seq) => Ok(seq),
                Err(e) => return fail_all(&e),
            },
            Err(e) => Err(e),
        });
    }
    if let Err(e) = tx.commit().await.map_err(db) {
        return fail_all(&e);
    }
    use std::sync::atomic::Ordering::Relaxed;
    i.batches.fetch_add(1, Relaxed);
    i.batched.fetch_add(batch.len() as u64, Relaxed);
    results
}

/// The checks and writes of [`crate::Store::record_issuance_bound`] inside `tx`; returns
/// the audit events to append for it, in order (the challenge's use, then the issuance).
async fn record_issuance_in<'a>(
    tx: &Transaction<'_>,
    record: &CertRecord,
    audit: &'a AuditEvent,
    binding: &'a IssuanceBinding,
) -> Result<Vec<&'a AuditEvent>> {
    let serial = record.serial.as_slice();
    // The reservation, locked: two commits of one serial run one after the other.
    let reserved = row(
        tx,
        "SELECT issuer FROM serials WHERE serial = $1 FOR UPDATE",
        &[&serial],
    )
    .await?;
    let Some(reserved) = reserved else {
        return Err(Error::Conflict(format!(
            "serial {} was not reserved",
            hex::encode(serial)
        )));
    };
    let reserved_for: String = col(&reserved, 0)?;
    if reserved_for != record.issuer {
        return Err(Error::Conflict(format!(
            "serial {} was reserved for issuer {reserved_for}, not {}",
            hex::encode(serial),
            record.issuer
        )));
    }
    if row(
        tx,
        "SELECT 1 FROM certificates WHERE serial = $1",
        &[&serial],
    )
    .await?
    .is_some()
    {
        return Err(Error::Conflict(format!(
            "serial {} is already recorded",
            hex::encode(serial)
        )));
    }
    // The transaction must not have produced a (still valid) certificate already. The
    // key's row is locked; a key no node has written yet is taken by the INSERT below,
    // and a second node's INSERT of the same key is a unique violation (a conflict).
    let mut replay_known = false;
    if let Some(key) = &binding.replay_key {
        let earlier = row(
            tx,
            "SELECT t.serial, c.revoked_at IS NULL AND c.serial IS NOT NULL \
             FROM transactions t LEFT JOIN certificates c ON c.serial = t.serial \
             WHERE t.key = $1 FOR UPDATE OF t",
            &[key],
        )
        .await?;
        if let Some(earlier) = earlier {
            replay_known = true;
            let (earlier_serial, valid): (Vec<u8>, bool) = (col(&earlier, 0)?, col(&earlier, 1)?);
            if valid {
                return Err(Error::Conflict(format!(
                    "transaction {key} already produced certificate {}",
                    hex::encode(&earlier_serial)
                )));
            }
        }
    }
    // The challenge it spends, checked as consume_challenge checks it.
    let mut events: Vec<&AuditEvent> = Vec::with_capacity(2);
    if let Some(use_) = &binding.challenge {
        let spent = lock_challenge(tx, &use_.hash, &use_.endpoint).await?;
        check_spendable(&spent, use_.now)?;
        exec(
            tx,
            "UPDATE challenges SET used_at = $2, used_for = $3 WHERE hash = $1",
            &[&use_.hash, &use_.now, &serial],
        )
        .await?;
        events.push(&use_.audit);
    }
    if let Some(key) = &binding.replay_key {
        let sql = if replay_known {
            "UPDATE transactions SET serial = $2 WHERE key = $1"
        } else {
            // No ON CONFLICT: of two nodes committing the same new request, the second
            // waits for the first and then fails here (a conflict), issuing nothing.
            "INSERT INTO transactions (key, serial) VALUES ($1, $2)"
        };
        exec(tx, sql, &[key, &serial]).await?;
    }
    for key in &binding.transaction_keys {
        exec(
            tx,
            "INSERT INTO transactions (key, serial) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET serial = EXCLUDED.serial",
            &[key, &serial],
        )
        .await?;
    }
    insert_cert(tx, record).await?;
    // Audit: the challenge's use first, then the issuance.
    events.push(audit);
    Ok(events)
}

pub(super) async fn get_cert(i: &Inner, serial: Vec<u8>) -> Result<Option<CertRecord>> {
    let c = i.client().await?;
    let sql = format!("SELECT {CERT_COLS} FROM certificates WHERE serial = $1");
    row(&c, &sql, &[&serial])
        .await?
        .map(|r| cert_from_row(&r))
        .transpose()
}

/// Walks certificates in expiry order (not_after, then serial) after `after`, and
/// returns up to `limit` matching `filter` and whether it stopped because `limit` was
/// reached. The text filter is applied here, as the redb backend applies it, so both
/// match the same records.
pub(super) async fn scan_certs(
    i: &Inner,
    filter: &CertFilter,
    after: Option<&CertCursor>,
    limit: usize,
    with_der: bool,
) -> Result<(Vec<CertRecord>, bool)> {
    if limit == 0 {
        return Ok((Vec::new(), false));
    }
    let c = i.client().await?;
    let cols = if with_der {
        CERT_COLS
    } else {
        CERT_COLS_NO_DER
    };
    let sql = format!(
        "SELECT {cols} FROM certificates \
         WHERE ($1::bigint IS NULL OR not_after > $1) \
           AND ($2::bigint IS NULL OR not_after <= $2) \
           AND ($3::text IS NULL OR profile = $3) \
           AND ($4::text IS NULL OR issuer = $4) \
           AND ($5::bool IS NULL OR (revoked_at IS NOT NULL) = $5) \
           AND ($6::bigint IS NULL OR (not_after, serial) > ($6, $7::bytea)) \
         ORDER BY not_after, serial LIMIT $8"
    );
    let needle = filter.text.as_ref().map(|t| t.to_lowercase());
    let revoked = filter.status.map(|s| s == CertStatus::Revoked);
    let mut cursor: Option<(i64, Vec<u8>)> = after.map(|a| (a.not_after, a.serial.clone()));
    let chunk = if needle.is_some() {
        SCAN_CHUNK
    } else {
        limit.min(SCAN_CHUNK)
    };
    let chunk_sql = chunk as i64;
    let mut out = Vec::new();
    loop {
        let (c_after, c_serial) = match &cursor {
            Some((t, s)) => (Some(*t), Some(s.clone())),
            None => (None, None),
        };
        let page = rows(
            &c,
            &sql,
            &[
                &filter.expires_after,
                &filter.expires_before,
                &filter.profile,
                &filter.issuer,
                &revoked,
                &c_after,
                &c_serial,
                &chunk_sql,
            ],
        )
        .await?;
        for r in &page {
            let record = cert_from_row(r)?;
            cursor = Some((record.not_after, record.serial.clone()));
            if needle.as_deref().is_some_and(|n| !text_matches(&record, n)) {
                continue;
            }
            out.push(record);
            if out.len() >= limit {
                return Ok((out, true));
            }
        }
        if page.len() < chunk {
            return Ok((out, false));
        }
    }
}

/// The record of `serial`, locked; [`Error::NotFound`] when there is none.
async fn lock_cert(tx: &Transaction<'_>, serial: &[u8]) -> Result<CertRecord> {
    let sql = format!("SELECT {CERT_COLS} FROM certificates WHERE serial = $1 FOR UPDATE");
    match row(tx, &sql, &[&serial]).await? {
        Some(r) => cert_from_row(&r),
        None => Err(Error::NotFound(format!(
            "no certificate with serial {}",
            hex::encode(serial)
        ))),
    }
}

pub(super) async fn revoke(
    i: &Inner,
    serial: Vec<u8>,
    revocation: Revocation,
    block_key: Option<Vec<u8>>,
    audit: AuditEvent,
) -> Result<CertRecord> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    let mut record = lock_cert(&tx, &serial).await?;
    if record.status == CertStatus::Revoked {
        let on_hold = record.revocation.is_some_and(|r| r.is_hold());
        if !on_hold || revocation.is_hold() {
            return Err(Error::Conflict(format!(
                "certificate {} is already revoked",
                hex::encode(&serial)
            )));
        }
    }
    exec(
        &tx,
        "UPDATE certificates SET revoked_at = $2, reason = $3, invalidity_date = $4 \
         WHERE serial = $1",
        &[
            &serial,
            &revocation.time,
            &i16::from(revocation.reason),
            &revocation.invalidity_date,
        ],
    )
    .await?;
    if let Some(hash) = &block_key {
        // A key already on the blocklist keeps its first entry.
        exec(
            &tx,
            "INSERT INTO blocked_keys (spki_sha256, serial, issuer, blocked_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (spki_sha256) DO NOTHING",
            &[hash, &serial, &record.issuer, &revocation.time],
        )
        .await?;
    }
    commit_with(tx, &i.node, &[&audit]).await?;
    record.status = CertStatus::Revoked;
    record.revocation = Some(revocation);
    Ok(record)
}

pub(super) async fn release_hold(
    i: &Inner,
    serial: Vec<u8>,
    audit: AuditEvent,
) -> Result<CertRecord> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    let mut record = lock_cert(&tx, &serial).await?;
    if !record.revocation.is_some_and(|r| r.is_hold()) {
        return Err(Error::Conflict(format!(
            "certificate {} is not on hold",
            hex::encode(&serial)
        )));
    }
    exec(
        &tx,
        "UPDATE certificates SET revoked_at = NULL, reason = NULL, invalidity_date = NULL \
         WHERE serial = $1",
        &[&serial],
    )
    .await?;
    commit_with(tx, &i.node, &[&audit]).await?;
    record.status = CertStatus::Valid;
    record.revocation = None;
    Ok(record)
}

pub(super) async fn blocked_key(i: &Inner, hash: Vec<u8>) -> Result<Option<BlockedKey>> {
    let c = i.client().await?;
    let found = row(
        &c,
        "SELECT spki_sha256, serial, issuer, blocked_at FROM blocked_keys WHERE spki_sha256 = $1",
        &[&hash],
    )
    .await?;
    found
        .map(|r| {
            Ok(BlockedKey {
                spki_sha256: col(&r, 0)?,
                serial: col(&r, 1)?,
                issuer: col(&r, 2)?,
                time: col(&r, 3)?,
            })
        })
        .transpose()
}

pub(super) async fn certs_by_spki(i: &Inner, hash: Vec<u8>) -> Result<Vec<CertRecord>> {
    let c = i.client().await?;
    let sql =
        format!("SELECT {CERT_COLS} FROM certificates WHERE spki_sha256 = $1 ORDER BY serial");
    rows(&c, &sql, &[&hash])
        .await?
        .iter()
        .map(cert_from_row)
        .collect()
}

pub(super) async fn key_index_complete(i: &Inner) -> Result<bool> {
    let c = i.client().await?;
    let found = row(
        &c,
        "SELECT value FROM meta WHERE name = 'key_index_complete'",
        &[],
    )
    .await?;
    Ok(match found {
        Some(r) => col::<i64>(&r, 0)? == 1,
        None => false,
    })
}

pub(super) async fn certs_without_key_hash(
    i: &Inner,
    after: Option<Vec<u8>>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let c = i.client().await?;
    let limit = limit as i64;
    rows(
        &c,
        "SELECT serial, der FROM certificates WHERE spki_sha256 = ''::bytea \
         AND ($1::bytea IS NULL OR serial > $1) ORDER BY serial LIMIT $2",
        &[&after, &limit],
    )
    .await?
    .iter()
    .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
    .collect()
}

pub(super) async fn index_keys(
    i: &Inner,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    complete: bool,
) -> Result<()> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    for (serial, hash) in &entries {
        // Records that gained a hash meanwhile are left as they are.
        exec(
            &tx,
            "UPDATE certificates SET spki_sha256 = $2 WHERE serial = $1 AND spki_sha256 = ''::bytea",
            &[serial, hash],
        )
        .await?;
    }
    if complete {
        exec(
            &tx,
            "INSERT INTO meta (name, value) VALUES ('key_index_complete', 1) \
             ON CONFLICT (name) DO UPDATE SET value = 1",
            &[],
        )
        .await?;
    }
    tx.commit().await.map_err(db)
}

/// Up to `limit` revocations of `issuer` after serial `after`, in numeric serial order
/// (shorter minimal serials first, then bytewise).
pub(super) async fn revoked_page(
    i: &Inner,
    issuer: String,
    after: Option<Vec<u8>>,
    limit: usize,
) -> Result<Vec<RevokedEntry>> {
    let c = i.client().await?;
    let after_len = after.as_ref().map(|s| s.len() as i32);
    let limit = limit as i64;
    rows(
        &c,
        "SELECT serial, revoked_at, reason, invalidity_date FROM certificates \
         WHERE issuer = $1 AND revoked_at IS NOT NULL \
           AND ($2::integer IS NULL OR (octet_length(serial), serial) > ($2, $3::bytea)) \
         ORDER BY octet_length(serial), serial LIMIT $4",
        &[&issuer, &after_len, &after, &limit],
    )
    .await?
    .iter()
    .map(|r| {
        let reason: i16 = col(r, 2)?;
        Ok(RevokedEntry {
            serial: col(r, 0)?,
            revocation: Revocation {
                time: col(r, 1)?,
                reason: u8::try_from(reason)
                    .map_err(|_| Error::Corrupt(format!("revocation reason {reason}")))?,
                invalidity_date: col(r, 3)?,
            },
        })
    })
    .collect()
}

// ---------------------------------------------------------------------------------------
// CRLs.

pub(super) async fn next_crl_number(i: &Inner, issuer: String) -> Result<u64> {
    let c = i.client().await?;
    // One statement: concurrent callers on any node each get their own, higher number.
    let r = row(
        &c,
        "INSERT INTO crl_numbers (issuer, number) VALUES ($1, 1) \
         ON CONFLICT (issuer) DO UPDATE SET number = crl_numbers.number + 1 RETURNING number",
        &[&issuer],
    )
    .await?
    .ok_or_else(|| Error::Backend("allocating a CRL number returned nothing".into()))?;
    to_u64(col(&r, 0)?, "CRL number")
}

/// [`crate::Store::crl_lease`]: one statement, so two nodes asking at once get one
/// answer each from the row's lock.
pub(super) async fn crl_lease(
    i: &Inner,
    issuer: String,
    holder: String,
    now: UnixTime,
    ttl: i64,
) -> Result<Option<u64>> {
    let c = i.client().await?;
    let expires = now.saturating_add(ttl);
    let r = row(
        &c,
        "INSERT INTO crl_leases (issuer, holder, expires_at, token) VALUES ($1, $2, $3, 1) \
         ON CONFLICT (issuer) DO UPDATE SET \
           token = CASE WHEN crl_leases.holder = EXCLUDED.holder THEN crl_leases.token \
                        ELSE crl_leases.token + 1 END, \
           holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
         WHERE crl_leases.holder = EXCLUDED.holder OR crl_leases.expires_at <= $4 \
         RETURNING token",
        &[&issuer, &holder, &expires, &now],
    )
    .await?;
    r.map(|r| to_u64(col(&r, 0)?, "lease token")).transpose()
}

/// [`crate::Store::crl_lease_release`].
pub(super) async fn crl_lease_release(
    i: &Inner,
    issuer: String,
    holder: String,
    fence: u64,
) -> Result<()> {
    let c = i.client().await?;
    exec(
        &c,
        "UPDATE crl_leases SET expires_at = 0 WHERE issuer = $1 AND holder = $2 AND token = $3",
        &[&issuer, &holder, &to_i64(fence, "lease token")?],
    )
    .await?;
    Ok(())
}

pub(super) async fn put_crl(
    i: &Inner,
    issuer: String,
    crl: StoredCrl,
    fence: Option<u64>,
    audit: AuditEvent,
) -> Result<()> {
    let number = to_i64(crl.number, "CRL number")?;
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    if let Some(fence) = fence {
        // The lease row is locked until the commit, so no new holder can take over
        // between this check and the write.
        let current = row(
            &tx,
            "SELECT token FROM crl_leases WHERE issuer = $1 FOR UPDATE",
            &[&issuer],
        )
        .await?
        .map(|r| col::<i64>(&r, 0))
        .transpose()?;
        if current != Some(to_i64(fence, "lease token")?) {
            return Err(Error::Conflict(format!(
                "the CRL of {issuer} was signed under lease {fence}, which another node has taken over"
            )));
        }
    }
    // Never replaces a newer CRL (two signers that finish out of order).
    let n = exec(
        &tx,
        "INSERT INTO crls (issuer, number, this_update, next_update, der) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (issuer) DO UPDATE SET number = EXCLUDED.number, \
           this_update = EXCLUDED.this_update, next_update = EXCLUDED.next_update, der = EXCLUDED.der \
         WHERE crls.number <= EXCLUDED.number",
        &[&issuer, &number, &crl.this_update, &crl.next_update, &crl.der],
    )
    .await?;
    if n == 0 {
        return Err(Error::Conflict(format!(
            "CRL {} of {issuer} is older than the stored CRL",
            crl.number
        )));
    }
    commit_with(tx, &i.node, &[&audit]).await?;
    Ok(())
}

pub(super) async fn latest_crl(i: &Inner, issuer: String) -> Result<Option<StoredCrl>> {
    let c = i.client().await?;
    row(
        &c,
        "SELECT number, this_update, next_update, der FROM crls WHERE issuer = $1",
        &[&issuer],
    )
    .await?
    .map(|r| {
        Ok(StoredCrl {
            number: to_u64(col(&r, 0)?, "CRL number")?,
            this_update: col(&r, 1)?,
            next_update: col(&r, 2)?,
            der: col(&r, 3)?,
        })
    })
    .transpose()
}

// ---------------------------------------------------------------------------------------
// Pending requests.

fn state_name(s: PendingState) -> &'static str {
    match s {
        PendingState::Pending => "pending",
        PendingState::Issued => "issued",
        PendingState::Rejected => "rejected",
    }
}

const PENDING_COLS: &str =
    "id, lookup_key, endpoint, profile, requester, csr_der, created_at, state, serial, note";

fn pending_from_row(r: &Row) -> Result<PendingRequest> {
    let state: String = col(r, 7)?;
    Ok(PendingRequest {
        id: to_u64(col(r, 0)?, "request id")?,
        lookup_key: col(r, 1)?,
        endpoint: col(r, 2)?,
        profile: col(r, 3)?,
        requester: col(r, 4)?,
        csr_der: col(r, 5)?,
        created_at: col(r, 6)?,
        state: match state.as_str() {
            "pending" => PendingState::Pending,
            "issued" => PendingState::Issued,
            "rejected" => PendingState::Rejected,
            other => return Err(Error::Corrupt(format!("pending state {other:?}"))),
        },
        serial: col(r, 8)?,
        note: col(r, 9)?,
    })
}

pub(super) async fn put_pending(
    i: &Inner,
    request: PendingRequest,
    audit: AuditEvent,
) -> Result<u64> {
    if request.state != PendingState::Pending {
        return Err(Error::Invalid(
            "a new request must be in state pending".into(),
        ));
    }
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    if let Some(r) = row(
        &tx,
        "SELECT id FROM pending WHERE lookup_key = $1 AND state = 'pending' FOR UPDATE",
        &[&request.lookup_key],
    )
    .await?
    {
        let id: i64 = col(&r, 0)?;
        return Err(Error::Conflict(format!(
            "request {id} with this lookup key is still pending"
        )));
    }
    let id_row = row(&tx, "SELECT nextval('pending_ids')", &[])
        .await?
        .ok_or_else(|| Error::Backend("no request id".into()))?;
    let id: i64 = col(&id_row, 0)?;
    // A second node inserting a pending request with the same key at the same moment
    // meets the partial unique index: a conflict.
    exec(
        &tx,
        "INSERT INTO pending (id, lookup_key, endpoint, profile, requester, csr_der, created_at, \
         state, serial, note) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9)",
        &[
            &id,
            &request.lookup_key,
            &request.endpoint,
            &request.profile,
            &request.requester,
            &request.csr_der,
            &request.created_at,
            &request.serial,
            &request.note,
        ],
    )
    .await?;
    commit_with(tx, &i.node, &[&audit]).await?;
    to_u64(id, "request id")
}

pub(super) async fn get_pending(i: &Inner, id: u64) -> Result<Option<PendingRequest>> {
    let Ok(id) = i64::try_from(id) else {
        return Ok(None);
    };
    let c = i.client().await?;
    let sql = format!("SELECT {PENDING_COLS} FROM pending WHERE id = $1");
    row(&c, &sql, &[&id])
        .await?
        .map(|r| pending_from_row(&r))
        .transpose()
}

pub(super) async fn find_pending(i: &Inner, key: String) -> Result<Option<PendingRequest>> {
    let c = i.client().await?;
    // The newest request with this key.
    let sql = format!(
        "SELECT {PENDING_COLS} FROM pending WHERE lookup_key = $1 ORDER BY id DESC LIMIT 1"
    );
    row(&c, &sql, &[&key])
        .await?
        .map(|r| pending_from_row(&r))
        .transpose()
}

pub(super) async fn list_pending(
    i: &Inner,
    state: Option<PendingState>,
) -> Result<Vec<PendingRequest>> {
    let c = i.client().await?;
    let state = state.map(state_name);
    let sql = format!(
        "SELECT {PENDING_COLS} FROM pending WHERE ($1::text IS NULL OR state = $1) ORDER BY id"
    );
    rows(&c, &sql, &[&state])
        .await?
        .iter()
        .map(pending_from_row)
        .collect()
}

pub(super) async fn update_pending(
    i: &Inner,
    request: PendingRequest,
    audit: AuditEvent,
) -> Result<()> {
    let Ok(id) = i64::try_from(request.id) else {
        return Err(Error::NotFound(format!(
            "no pending request {}",
            request.id
        )));
    };
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    // Locked: of two nodes approving at once, the second sees the first's decision.
    let sql = format!("SELECT {PENDING_COLS} FROM pending WHERE id = $1 FOR UPDATE");
    let Some(stored) = row(&tx, &sql, &[&id]).await? else {
        return Err(Error::NotFound(format!(
            "no pending request {}",
            request.id
        )));
    };
    let stored = pending_from_row(&stored)?;
    if stored.lookup_key != request.lookup_key {
        return Err(Error::Invalid(
            "the lookup key of a request cannot change".into(),
        ));
    }
    if stored.state != PendingState::Pending {
        return Err(Error::Conflict(format!(
            "request {} is already {:?}",
            request.id, stored.state
        )));
    }
    if request.state == PendingState::Issued && request.serial.is_none() {
        return Err(Error::Invalid(
            "an issued request must name its serial".into(),
        ));
    }
    exec(
        &tx,
        "UPDATE pending SET endpoint = $2, profile = $3, requester = $4, csr_der = $5, \
         created_at = $6, state = $7, serial = $8, note = $9 WHERE id = $1",
        &[
            &id,
            &request.endpoint,
            &request.profile,
            &request.requester,
            &request.csr_der,
            &request.created_at,
            &state_name(request.state),
            &request.serial,
            &request.note,
        ],
    )
    .await?;
    commit_with(tx, &i.node, &[&audit]).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// API tokens.

fn token_json(token: &crate::tokens::ApiToken) -> Result<String> {
    serde_json::to_string(token).map_err(|e| Error::Backend(format!("encoding a token: {e}")))
}

fn token_of(json: &str) -> Result<crate::tokens::ApiToken> {
    serde_json::from_str(json).map_err(|e| Error::Corrupt(format!("API token: {e}")))
}

/// [`crate::Store::put_api_token`] (`create`) and [`crate::Store::update_api_token`].
pub(super) async fn put_api_token(
    i: &Inner,
    token: crate::tokens::ApiToken,
    create: bool,
    audit: AuditEvent,
) -> Result<()> {
    let json = token_json(&token)?;
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    let sql = if create {
        "INSERT INTO api_tokens (id, record) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING"
    } else {
        "UPDATE api_tokens SET record = $2 WHERE id = $1"
    };
    if exec(&tx, sql, &[&token.id, &json]).await? == 0 {
        return Err(if create {
            Error::Conflict(format!("API token {} exists", token.id))
        } else {
            Error::NotFound(format!("no API token {}", token.id))
        });
    }
    commit_with(tx, &i.node, &[&audit]).await?;
    Ok(())
}

/// [`crate::Store::touch_api_token`]: under the row's lock, so a revocation committed
/// meanwhile is kept.
pub(super) async fn touch_api_token(i: &Inner, id: String, at: UnixTime) -> Result<()> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    let Some(r) = row(
        &tx,
        "SELECT record FROM api_tokens WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await?
    else {
        return Err(Error::NotFound(format!("no API token {id}")));
    };
    let mut token = token_of(&col::<String>(&r, 0)?)?;
    token.last_used_at = Some(at);
    exec(
        &tx,
        "UPDATE api_tokens SET record = $2 WHERE id = $1",
        &[&id, &token_json(&token)?],
    )
    .await?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

pub(super) async fn api_token(i: &Inner, id: String) -> Result<Option<crate::tokens::ApiToken>> {
    let c = i.client().await?;
    match row(&c, "SELECT record FROM api_tokens WHERE id = $1", &[&id]).await? {
        Some(r) => Ok(Some(token_of(&col::<String>(&r, 0)?)?)),
        None => Ok(None),
    }
}

pub(super) async fn list_api_tokens(i: &Inner) -> Result<Vec<crate::tokens::ApiToken>> {
    let c = i.client().await?;
    rows(&c, "SELECT record FROM api_tokens ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| token_of(&col::<String>(r, 0)?))
        .collect()
}

// Service state.

pub(super) async fn state_get(
    i: &Inner,
    namespace: String,
    key: String,
) -> Result<Option<Vec<u8>>> {
    let c = i.client().await?;
    match row(
        &c,
        "SELECT value FROM service_state WHERE namespace = $1 AND key = $2",
        &[&namespace, &key],
    )
    .await?
    {
        Some(r) => Ok(Some(col::<Vec<u8>>(&r, 0)?)),
        None => Ok(None),
    }
}

pub(super) async fn state_put(
    i: &Inner,
    namespace: String,
    key: String,
    value: Vec<u8>,
) -> Result<()> {
    let c = i.client().await?;
    exec(
        &c,
        "INSERT INTO service_state (namespace, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value",
        &[&namespace, &key, &value],
    )
    .await?;
    Ok(())
}

pub(super) async fn state_list(
    i: &Inner,
    namespace: String,
    after: Option<String>,
    limit: usize,
) -> Result<Vec<(String, Vec<u8>)>> {
    let c = i.client().await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    rows(
        &c,
        "SELECT key, value FROM service_state WHERE namespace = $1 \
         AND ($2::text IS NULL OR key COLLATE \"C\" > $2) ORDER BY key COLLATE \"C\" LIMIT $3",
        &[&namespace, &after, &limit],
    )
    .await?
    .iter()
    .map(|r| Ok((col::<String>(r, 0)?, col::<Vec<u8>>(r, 1)?)))
    .collect()
}

// One-time challenges and protocol transactions.

pub(super) async fn put_challenge(
    i: &Inner,
    ch: OneTimeChallenge,
    audit: AuditEvent,
) -> Result<()> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    let n = exec(
        &tx,
        "INSERT INTO challenges (hash, endpoint, created_by, created_at, expires_at, used_at, \
         used_for) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hash) DO NOTHING",
        &[
            &ch.hash,
            &ch.endpoint,
            &ch.created_by,
            &ch.created_at,
            &ch.expires_at,
            &ch.used_at,
            &ch.used_for,
        ],
    )
    .await?;
    if n == 0 {
        return Err(Error::Conflict("this challenge exists".into()));
    }
    commit_with(tx, &i.node, &[&audit]).await?;
    Ok(())
}

pub(super) async fn consume_challenge(
    i: &Inner,
    hash: Vec<u8>,
    endpoint: String,
    now: UnixTime,
    audit: AuditEvent,
) -> Result<OneTimeChallenge> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    // Locked: of concurrent callers on any node, one spends it and the others wait, then
    // see it used.
    let before = lock_challenge(&tx, &hash, &endpoint).await?;
    check_spendable(&before, now)?;
    exec(
        &tx,
        "UPDATE challenges SET used_at = $2 WHERE hash = $1",
        &[&hash, &now],
    )
    .await?;
    commit_with(tx, &i.node, &[&audit]).await?;
    Ok(before)
}

pub(super) async fn get_challenge(i: &Inner, hash: Vec<u8>) -> Result<Option<OneTimeChallenge>> {
    let c = i.client().await?;
    row(
        &c,
        "SELECT hash, endpoint, created_by, created_at, expires_at, used_at, used_for \
         FROM challenges WHERE hash = $1",
        &[&hash],
    )
    .await?
    .map(|r| challenge_from_row(&r))
    .transpose()
}

pub(super) async fn release_challenge(
    i: &Inner,
    hash: Vec<u8>,
    endpoint: String,
    audit: AuditEvent,
) -> Result<()> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    let ch = lock_challenge(&tx, &hash, &endpoint).await?;
    if ch.used_at.is_none() {
        return Err(Error::Conflict("the challenge is not used".into()));
    }
    exec(
        &tx,
        "UPDATE challenges SET used_at = NULL, used_for = NULL WHERE hash = $1",
        &[&hash],
    )
    .await?;
    commit_with(tx, &i.node, &[&audit]).await?;
    Ok(())
}

pub(super) async fn put_transaction(i: &Inner, keys: Vec<String>, serial: Vec<u8>) -> Result<()> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    for key in &keys {
        exec(
            &tx,
            "INSERT INTO transactions (key, serial) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET serial = EXCLUDED.serial",
            &[key, &serial],
        )
        .await?;
    }
    tx.commit().await.map_err(db)
}

pub(super) async fn find_transaction(i: &Inner, key: String) -> Result<Option<Vec<u8>>> {
    let c = i.client().await?;
    row(
        &c,
        "SELECT serial FROM transactions WHERE key = $1",
        &[&key],
    )
    .await?
    .map(|r| col(&r, 0))
    .transpose()
}

// ---------------------------------------------------------------------------------------
// Health.

pub(super) async fn stats(i: &Inner) -> Result<StoreStats> {
    let c = i.client().await?;
    // The audit log is contiguous from 1, so its head's seq is its length.
    let r = row(
        &c,
        "SELECT (SELECT count(*) FROM certificates), \
                (SELECT count(*) FROM certificates WHERE revoked_at IS NOT NULL), \
                (SELECT seq FROM audit_head WHERE id = 1)",
        &[],
    )
    .await?
    .ok_or_else(|| Error::Backend("counting records returned nothing".into()))?;
    Ok(StoreStats {
        certificates: to_u64(col(&r, 0)?, "count")?,
        revoked: to_u64(col(&r, 1)?, "count")?,
        audit_entries: to_u64(col::<Option<i64>>(&r, 2)?.unwrap_or(0), "count")?,
    })
}

/// [`crate::Store::count_expiring`]: one count per window over the notAfter index.
pub(super) async fn count_expiring(i: &Inner, edges: &[i64]) -> Result<Vec<u64>> {
    let c = i.client().await?;
    let mut counts = Vec::with_capacity(edges.len().saturating_sub(1));
    for w in edges.windows(2) {
        let r = row(
            &c,
            "SELECT count(*) FROM certificates \
             WHERE revoked_at IS NULL AND not_after >= $1 AND not_after < $2",
            &[&w[0], &w[1]],
        )
        .await?
        .ok_or_else(|| Error::Backend("counting expiring certificates returned nothing".into()))?;
        counts.push(to_u64(col(&r, 0)?, "count")?);
    }
    Ok(counts)
}

pub(super) async fn check_writable(i: &Inner) -> Result<()> {
    let c = i.client().await?;
    let r = row(&c, "SELECT pg_is_in_recovery()", &[])
        .await?
        .ok_or_else(|| Error::Unavailable("the database did not answer".into()))?;
    if col::<bool>(&r, 0)? {
        return Err(Error::Unavailable(
            "the database is a read-only standby".into(),
        ));
    }
    Ok(())
}
