//! The reads: each runs in the caller's own read transaction, beside the writer.

use std::ops::Bound;

use redb::{AccessGuard, ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::schema::*;
use crate::{
    AuditEntry, AuditVerification, BlockedKey, CertCursor, CertFilter, CertPage, CertRecord,
    CertStatus, Error, OneTimeChallenge, PendingRequest, PendingState, Result, Revocation,
    RevokedEntry, StoreStats, StoredCrl,
};

/// Which index a listing walks: the one that narrows the filter most, all of them ordered
/// by (`not_after`, serial) within their prefix, so that pages and cursors are the same
/// whichever is walked.
enum Driver<'f> {
    /// `revoked_expiry`: the revoked records (`--status revoked`).
    Revoked,
    /// `profile_expiry` over one profile.
    Profile(&'f str),
    /// `issuer_expiry` over one issuer.
    Issuer(&'f str),
    /// `names`, sieving on the text without decoding records (`--text` alone).
    Names(&'f str),
    /// `expiry`: every record.
    All,
}

impl<'f> Driver<'f> {
    fn choose(filter: &'f CertFilter, needle: Option<&'f str>) -> Driver<'f> {
        if filter.status == Some(CertStatus::Revoked) {
            Driver::Revoked
        } else if let Some(p) = &filter.profile {
            Driver::Profile(p)
        } else if let Some(i) = &filter.issuer {
            Driver::Issuer(i)
        } else if let Some(n) = needle {
            Driver::Names(n)
        } else {
            Driver::All
        }
    }
}

/// One position of an index walk: (`not_after`, serial).
type Position = (i64, Vec<u8>);

/// An entry of an index keyed by (`not_after`, serial) without a value, as redb yields it.
type ExpiryItem<'a> = std::result::Result<
    (AccessGuard<'a, (i64, &'a [u8])>, AccessGuard<'a, ()>),
    redb::StorageError,
>;

/// The positions of `driver`'s index between `lower` and `upper` (bounds on (`not_after`,
/// serial)), in order.
fn walk<'t, 'k>(
    txn: &'t ReadTransaction,
    driver: &Driver<'k>,
    lower: Bound<(i64, &'k [u8])>,
    upper: Bound<(i64, &'k [u8])>,
) -> Result<Box<dyn Iterator<Item = Result<Position>> + 't>> {
    let err = "listing certificates";
    fn unit(item: ExpiryItem<'_>) -> Result<Position> {
        let (k, _) = item.ctx("listing certificates")?;
        let (at, serial) = k.value();
        Ok((at, serial.to_vec()))
    }
    Ok(match driver {
        Driver::All => Box::new(
            txn.open_table(EXPIRY)
                .ctx(err)?
                .range::<(i64, &[u8])>((lower, upper))
                .ctx(err)?
                .map(unit),
        ),
        Driver::Revoked => Box::new(
            txn.open_table(REVOKED_EXPIRY)
                .ctx(err)?
                .range::<(i64, &[u8])>((lower, upper))
                .ctx(err)?
                .map(unit),
        ),
        Driver::Names(needle) => {
            let needle = needle.to_string();
            Box::new(
                txn.open_table(NAMES)
                    .ctx(err)?
                    .range::<(i64, &[u8])>((lower, upper))
                    .ctx(err)?
                    .filter_map(move |item| match item.ctx(err) {
                        Err(e) => Some(Err(e)),
                        Ok((k, v)) => v.value().contains(needle.as_str()).then(|| {
                            let (at, serial) = k.value();
                            Ok((at, serial.to_vec()))
                        }),
                    }),
            )
        }
        Driver::Profile(prefix) | Driver::Issuer(prefix) => {
            let table = match driver {
                Driver::Profile(_) => PROFILE_EXPIRY,
                _ => ISSUER_EXPIRY,
            };
            let lo = with_prefix(prefix, lower, (i64::MIN, EMPTY));
            let hi = with_prefix(prefix, upper, (i64::MAX, AFTER_EVERY_SERIAL));
            Box::new(
                txn.open_table(table)
                    .ctx(err)?
                    .range::<(&str, i64, &[u8])>((lo, hi))
                    .ctx(err)?
                    .map(move |item| {
                        let (k, _) = item.ctx(err)?;
                        let (_, at, serial) = k.value();
                        Ok((at, serial.to_vec()))
                    }),
            )
        }
    })
}

/// A bound on (`not_after`, serial) as a bound on (`prefix`, `not_after`, serial); an
/// unbounded end becomes `end` within the prefix.
fn with_prefix<'a>(
    prefix: &'a str,
    bound: Bound<(i64, &'a [u8])>,
    end: (i64, &'a [u8]),
) -> Bound<(&'a str, i64, &'a [u8])> {
    match bound {
        Bound::Included((at, s)) => Bound::Included((prefix, at, s)),
        Bound::Excluded((at, s)) => Bound::Excluded((prefix, at, s)),
        Bound::Unbounded => Bound::Included((prefix, end.0, end.1)),
    }
}

/// Walks the index that narrows `filter` most ([`Driver`]) from the start (or after
/// `after`) and returns up to `limit` records matching `filter`, without DER, and whether
/// it stopped because `limit` was reached.
fn scan_certs(
    txn: &ReadTransaction,
    filter: &CertFilter,
    after: Option<&CertCursor>,
    limit: usize,
) -> Result<(Vec<CertRecord>, bool)> {
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
    let driver = Driver::choose(filter, needle.as_deref());

    let err = "listing certificates";
    let certs = txn.open_table(CERTS).ctx(err)?;
    let mut out = Vec::new();
    for position in walk(txn, &driver, lower, upper)? {
        let (_, serial) = position?;
        let Some(guard) = certs.get(serial.as_slice()).ctx(err)? else {
            return Err(Error::Corrupt(format!(
                "a list index names unknown serial {}",
                hex::encode(&serial)
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
        // The names index is only a sieve (a needle may span two of its lines): each
        // candidate is checked name by name.
        if let Some(needle) = &needle
            && !crate::checks::text_matches(&record, needle)
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

pub(super) fn get_cert(txn: &ReadTransaction, serial: &[u8]) -> Result<Option<CertRecord>> {
    let err = "reading a certificate";
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

pub(super) fn list_certs(txn: &ReadTransaction, filter: &CertFilter) -> Result<Vec<CertRecord>> {
    let limit = filter.limit.unwrap_or(usize::MAX);
    let (mut out, _) = scan_certs(txn, filter, None, limit)?;
    let err = "listing certificates";
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

pub(super) fn list_cert_page(
    txn: &ReadTransaction,
    filter: &CertFilter,
    after: Option<&CertCursor>,
    page_size: usize,
) -> Result<CertPage> {
    let (records, full) = scan_certs(txn, filter, after, page_size)?;
    let next = match (full, records.last()) {
        (true, Some(last)) => Some(CertCursor {
            not_after: last.not_after,
            serial: last.serial.clone(),
        }),
        _ => None,
    };
    Ok(CertPage { records, next })
}

pub(super) fn for_each_revoked(
    txn: &ReadTransaction,
    issuer: &str,
    each: &mut dyn FnMut(RevokedEntry) -> Result<()>,
) -> Result<()> {
    let err = "reading revocations";
    let revoked = txn.open_table(REVOKED).ctx(err)?;
    let invalidity = txn.open_table(INVALIDITY).ctx(err)?;
    for item in revoked.range((issuer, EMPTY)..).ctx(err)? {
        let (key, value) = item.ctx(err)?;
        let (key_issuer, ordered) = key.value();
        if key_issuer != issuer {
            break;
        }
        let invalidity_date = invalidity
            .get((key_issuer, ordered))
            .ctx(err)?
            .map(|g| g.value());
        let serial = ordered.get(1..).unwrap_or_default().to_vec();
        let (time, reason) = value.value();
        each(RevokedEntry {
            serial,
            revocation: Revocation {
                time,
                reason,
                invalidity_date,
            },
        })?;
    }
    Ok(())
}

pub(super) fn blocked_key(txn: &ReadTransaction, hash: &[u8]) -> Result<Option<BlockedKey>> {
    let err = "reading the key blocklist";
    let table = txn.open_table(BLOCKED_KEYS).ctx(err)?;
    match table.get(hash).ctx(err)? {
        Some(g) => Ok(Some(decode("blocked key", g.value())?)),
        None => Ok(None),
    }
}

/// Whether every record is in the key index (see [`super::schema::KEY_INDEX_KEY`]).
pub(super) fn key_index_complete(txn: &ReadTransaction) -> Result<bool> {
    let err = "reading the schema";
    let meta = txn.open_table(META).ctx(err)?;
    Ok(meta
        .get(KEY_INDEX_KEY)
        .ctx(err)?
        .is_some_and(|g| g.value() == 1))
}

/// Up to `limit` records after serial `after` (in key order) that have no key hash, with
/// their DER.
pub(super) fn certs_without_key_hash(
    txn: &ReadTransaction,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    use std::ops::Bound;
    let err = "reading certificates for the key index";
    let certs = txn.open_table(CERTS).ctx(err)?;
    let ders = txn.open_table(CERT_DER).ctx(err)?;
    let range = match after {
        Some(a) => certs.range::<&[u8]>((Bound::Excluded(a), Bound::Unbounded)),
        None => certs.range::<&[u8]>(..),
    }
    .ctx(err)?;
    let mut out = Vec::new();
    for item in range {
        let (serial, meta) = item.ctx(err)?;
        let record: CertRecord = decode("certificate record", meta.value())?;
        if record.spki_sha256.is_empty() {
            let der = ders
                .get(serial.value())
                .ctx(err)?
                .map(|g| g.value().to_vec())
                .unwrap_or_default();
            out.push((serial.value().to_vec(), der));
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

pub(super) fn certs_by_spki(txn: &ReadTransaction, hash: &[u8]) -> Result<Vec<CertRecord>> {
    let err = "reading the key index";
    let index = txn.open_table(SPKI_INDEX).ctx(err)?;
    let mut serials = Vec::new();
    for item in index.range((hash, EMPTY)..).ctx(err)? {
        let (key, _) = item.ctx(err)?;
        let (key_hash, serial) = key.value();
        if key_hash != hash {
            break;
        }
        serials.push(serial.to_vec());
    }
    let mut out = Vec::with_capacity(serials.len());
    for serial in serials {
        match get_cert(txn, &serial)? {
            Some(record) => out.push(record),
            None => {
                return Err(Error::Corrupt(format!(
                    "key index names unknown serial {}",
                    hex::encode(&serial)
                )));
            }
        }
    }
    Ok(out)
}

pub(super) fn latest_crl(txn: &ReadTransaction, issuer: &str) -> Result<Option<StoredCrl>> {
    let err = "reading the latest CRL";
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

pub(super) fn audit_entries(
    txn: &ReadTransaction,
    from: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>> {
    let err = "reading the audit log";
    let audit = txn.open_table(AUDIT).ctx(err)?;
    let mut out = Vec::new();
    for item in audit.range(from..).ctx(err)?.take(limit) {
        let (_, value) = item.ctx(err)?;
        out.push(decode("audit entry", value.value())?);
    }
    Ok(out)
}

pub(super) fn verify_audit(txn: &ReadTransaction) -> Result<AuditVerification> {
    let err = "reading the audit log";
    let audit = txn.open_table(AUDIT).ctx(err)?;
    let mut walk = crate::checks::ChainWalk::new();
    for item in audit.iter().ctx(err)? {
        let (key, value) = item.ctx(err)?;
        walk.push(key.value(), serde_json::from_slice(value.value()).ok())?;
    }
    Ok(walk.finish())
}

pub(super) fn get_pending(txn: &ReadTransaction, id: u64) -> Result<Option<PendingRequest>> {
    let err = "reading a pending request";
    let pending = txn.open_table(PENDING).ctx(err)?;
    match pending.get(id).ctx(err)? {
        Some(guard) => Ok(Some(decode("pending request", guard.value())?)),
        None => Ok(None),
    }
}

pub(super) fn find_pending(
    txn: &ReadTransaction,
    lookup_key: &str,
) -> Result<Option<PendingRequest>> {
    let err = "reading a pending request";
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

pub(super) fn list_pending(
    txn: &ReadTransaction,
    state: Option<PendingState>,
) -> Result<Vec<PendingRequest>> {
    let err = "listing pending requests";
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

pub(super) fn get_challenge(
    txn: &ReadTransaction,
    hash: &[u8],
) -> Result<Option<OneTimeChallenge>> {
    let err = "reading a challenge";
    let table = txn.open_table(CHALLENGES).ctx(err)?;
    match table.get(hash).ctx(err)? {
        Some(g) => Ok(Some(decode("challenge", g.value())?)),
        None => Ok(None),
    }
}

pub(super) fn find_transaction(txn: &ReadTransaction, key: &str) -> Result<Option<Vec<u8>>> {
    let err = "reading a transaction";
    let table = txn.open_table(TRANSACTIONS).ctx(err)?;
    Ok(table.get(key).ctx(err)?.map(|g| g.value().to_vec()))
}

pub(super) fn stats(txn: &ReadTransaction) -> Result<StoreStats> {
    let err = "counting records";
    Ok(StoreStats {
        certificates: txn.open_table(CERTS).ctx(err)?.len().ctx(err)?,
        revoked: txn.open_table(REVOKED).ctx(err)?.len().ctx(err)?,
        audit_entries: txn.open_table(AUDIT).ctx(err)?.len().ctx(err)?,
    })
}

/// [`crate::Store::count_expiring`]: keys of the expiry index in each window, less those
/// of the revoked-expiry index (a revoked or held certificate is in both).
pub(super) fn count_expiring(txn: &ReadTransaction, edges: &[i64]) -> Result<Vec<u64>> {
    let err = "counting expiring certificates";
    let all = txn.open_table(EXPIRY).ctx(err)?;
    let revoked = txn.open_table(REVOKED_EXPIRY).ctx(err)?;
    let mut counts = Vec::with_capacity(edges.len().saturating_sub(1));
    for w in edges.windows(2) {
        let (from, to) = (w[0], w[1]);
        if to <= from {
            counts.push(0);
            continue;
        }
        let mut n: u64 = 0;
        for item in all.range((from, EMPTY)..(to, EMPTY)).ctx(err)? {
            item.ctx(err)?;
            n += 1;
        }
        for item in revoked.range((from, EMPTY)..(to, EMPTY)).ctx(err)? {
            item.ctx(err)?;
            n = n.saturating_sub(1);
        }
        counts.push(n);
    }
    Ok(counts)
}

/// [`crate::Store::api_token`].
pub(super) fn api_token(
    txn: &ReadTransaction,
    id: &str,
) -> Result<Option<crate::tokens::ApiToken>> {
    let err = "reading an API token";
    let t = txn.open_table(API_TOKENS).ctx(err)?;
    match t.get(id).ctx(err)? {
        Some(v) => Ok(Some(decode("API token", v.value())?)),
        None => Ok(None),
    }
}

/// [`crate::Store::list_api_tokens`].
pub(super) fn list_api_tokens(txn: &ReadTransaction) -> Result<Vec<crate::tokens::ApiToken>> {
    let err = "reading API tokens";
    let t = txn.open_table(API_TOKENS).ctx(err)?;
    let mut out = Vec::new();
    for row in t.iter().ctx(err)? {
        let (_, v) = row.ctx(err)?;
        out.push(decode("API token", v.value())?);
    }
    Ok(out)
}

/// [`crate::Store::state_get`].
pub(super) fn state_get(
    txn: &ReadTransaction,
    namespace: &str,
    key: &str,
) -> Result<Option<Vec<u8>>> {
    let err = "reading service state";
    let t = txn.open_table(SERVICE_STATE).ctx(err)?;
    Ok(t.get((namespace, key))
        .ctx(err)?
        .map(|v| v.value().to_vec()))
}

/// [`crate::Store::state_list`].
pub(super) fn state_list(
    txn: &ReadTransaction,
    namespace: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, Vec<u8>)>> {
    let err = "reading service state";
    let t = txn.open_table(SERVICE_STATE).ctx(err)?;
    let start = match after {
        Some(a) => Bound::Excluded((namespace, a)),
        None => Bound::Included((namespace, "")),
    };
    let mut out = Vec::new();
    for item in t
        .range::<(&str, &str)>((start, Bound::Unbounded))
        .ctx(err)?
    {
        let (k, v) = item.ctx(err)?;
        let (ns, key) = k.value();
        if ns != namespace || out.len() >= limit {
            break;
        }
        out.push((key.to_string(), v.value().to_vec()));
    }
    Ok(out)
}
