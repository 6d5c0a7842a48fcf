//! The write operations, one function each, applied by the writer inside its batch's
//! transaction: every check and encoding first, then the inserts, so that a refused
//! operation has written nothing.

use redb::ReadableTable;

use super::schema::*;
use super::writer::*;
use crate::{
    AuditEntry, AuditEvent, BlockedKey, CertRecord, CertStatus, Error, IssuanceBinding,
    OneTimeChallenge, PendingRequest, PendingState, Result, Revocation, StoredCrl, UnixTime,
};

/// Applies one operation: all checks and encoding first, then the inserts.
pub(super) fn apply(t: &mut Tables<'_>, tip: &mut AuditTip, op: Op) -> Result<Reply, ApplyError> {
    match op {
        Op::ImportCertificates { records, audit } => import_certificates(t, tip, records, audit),
        Op::ReserveSerial { serial, issuer, at } => reserve_serial(t, serial, issuer, at),
        Op::RecordIssuance {
            record,
            audit,
            binding,
        } => record_issuance(t, tip, record, audit, binding),
        Op::Revoke {
            serial,
            revocation,
            block_key,
            audit,
        } => revoke(t, tip, serial, revocation, block_key, audit),
        Op::ReleaseHold { serial, audit } => release_hold(t, tip, serial, audit),
        Op::IndexKeys { entries, complete } => index_keys(t, entries, complete),
        Op::NextCrlNumber { issuer } => next_crl_number(t, issuer),
        Op::PutCrl { issuer, crl, audit } => put_crl(t, tip, issuer, crl, audit),
        Op::AppendAudit { event } => append_audit(t, tip, event),
        Op::PutChallenge { challenge, audit } => put_challenge(t, tip, *challenge, audit),
        Op::PutToken {
            token,
            create,
            audit,
        } => put_token(t, tip, *token, create, audit),
        Op::TouchToken { id, at } => touch_token(t, id, at),
        Op::PutState {
            namespace,
            key,
            value,
        } => {
            t.service_state
                .insert((namespace.as_str(), key.as_str()), value.as_slice())
                .fatal()?;
            Ok(Reply::Done)
        }
        Op::ConsumeChallenge {
            hash,
            endpoint,
            now,
            audit,
        } => consume_challenge(t, tip, hash, endpoint, now, audit),
        Op::ReleaseChallenge {
            hash,
            endpoint,
            audit,
        } => release_challenge(t, tip, hash, endpoint, audit),
        // In a batch with other writes, their commit is the proof.
        Op::Probe => Ok(Reply::Done),
        Op::Acme(op) => super::acme::apply(t, tip, *op),
        Op::PutTransaction { keys, serial } => put_transaction(t, keys, serial),
        Op::PutPending { request, audit } => put_pending(t, tip, request, audit),
        Op::UpdatePending { request, audit } => update_pending(t, tip, request, audit),
    }
}

/// [`crate::Store::import_certificates`]: records, all or none, with one audit entry.
fn import_certificates(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    mut records: Vec<CertRecord>,
    audit: AuditEvent,
) -> Result<Reply, ApplyError> {
    // Checks for every record first, so a refusal leaves nothing behind.
    let mut seen = std::collections::HashSet::new();
    let mut metas = Vec::with_capacity(records.len());
    for record in &mut records {
        check_serial(&record.serial).refuse()?;
        check_status(record, "a record")?;
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
        insert_record(t, record, meta, der)?;
    }
    let seq = append_entry(t, tip, entry, &entry_json)?;
    Ok(Reply::Number(seq))
}

/// [`crate::Store::reserve_serial`]: refuses a serial that was ever used (RFC 5280 §4.1.2.2).
fn reserve_serial(
    t: &mut Tables<'_>,
    serial: Vec<u8>,
    issuer: String,
    at: UnixTime,
) -> Result<Reply, ApplyError> {
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

/// [`crate::Store::record_issuance_bound`]: the issued certificate, the replay and transaction keys, the challenge it spends, and their audit entries.
fn record_issuance(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    mut record: Box<CertRecord>,
    audit: AuditEvent,
    binding: Box<IssuanceBinding>,
) -> Result<Reply, ApplyError> {
    let serial = record.serial.clone();
    check_serial(&serial).refuse()?;
    check_status(&record, "the record")?;
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
            let mut spent = find_challenge(t, &c.hash, &c.endpoint)?;
            check_spendable(&spent, c.now)?;
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

    if let (Some((hash, json, _)), Some((seq, entry_json))) = (&challenge, &challenge_entry) {
        t.challenges.insert(*hash, json.as_slice()).fatal()?;
        t.audit.insert(*seq, entry_json.as_slice()).fatal()?;
    }
    for key in binding.replay_key.iter().chain(&binding.transaction_keys) {
        t.transactions
            .insert(key.as_str(), serial.as_slice())
            .fatal()?;
    }
    insert_record(t, &record, &meta, &der)?;
    let seq = append_entry(t, tip, entry, &entry_json)?;
    Ok(Reply::Number(seq))
}

/// The record of `serial` with its DER; [`Error::NotFound`] when there is none.
fn load_record(t: &Tables<'_>, serial: &[u8]) -> Result<CertRecord, ApplyError> {
    let mut record: CertRecord = match t.certs.get(serial).fatal()? {
        None => {
            return refused(Error::NotFound(format!(
                "no certificate with serial {}",
                hex::encode(serial)
            )));
        }
        Some(guard) => decode("certificate record", guard.value()).refuse()?,
    };
    record.der = match t.der.get(serial).fatal()? {
        Some(guard) => guard.value().to_vec(),
        None => {
            return refused(Error::Corrupt(format!(
                "certificate {} has no DER",
                hex::encode(serial)
            )));
        }
    };
    Ok(record)
}

/// [`crate::Store::revoke_with`]: marks a certificate revoked (replacing a hold, RFC 5280
/// §5.3.1), adds it to its issuer's revocation list with its invalidity date, and puts
/// its key on the blocklist when asked.
fn revoke(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    serial: Vec<u8>,
    revocation: Revocation,
    block_key: Option<Vec<u8>>,
    audit: AuditEvent,
) -> Result<Reply, ApplyError> {
    check_serial(&serial).refuse()?;
    if let Some(hash) = &block_key {
        check_spki_hash(hash).refuse()?;
    }
    let mut record = load_record(t, &serial)?;
    if record.status == CertStatus::Revoked {
        let on_hold = record.revocation.is_some_and(|r| r.is_hold());
        if !on_hold || revocation.is_hold() {
            return refused(Error::Conflict(format!(
                "certificate {} is already revoked",
                hex::encode(&serial)
            )));
        }
    }
    record.status = CertStatus::Revoked;
    record.revocation = Some(revocation);
    let der = std::mem::take(&mut record.der);
    let meta = encode(&record).refuse()?;
    let blocked = match &block_key {
        Some(hash) if t.blocked_keys.get(hash.as_slice()).fatal()?.is_none() => {
            let entry = BlockedKey {
                spki_sha256: hash.clone(),
                serial: serial.clone(),
                issuer: record.issuer.clone(),
                time: revocation.time,
            };
            Some((hash.as_slice(), encode(&entry).refuse()?))
        }
        _ => None,
    };
    let (entry, entry_json) = chain(tip, audit)?;

    t.certs.insert(serial.as_slice(), meta.as_slice()).fatal()?;
    set_revoked_index(t, &record).fatal()?;
    let key = order_key(&serial);
    let index_key = (record.issuer.as_str(), key.as_slice());
    t.revoked
        .insert(index_key, (revocation.time, revocation.reason))
        .fatal()?;
    match revocation.invalidity_date {
        Some(date) => {
            t.invalidity.insert(index_key, date).fatal()?;
        }
        None => {
            // A hold made permanent without a date must not keep the hold's.
            t.invalidity.remove(index_key).fatal()?;
        }
    }
    if let Some((hash, json)) = &blocked {
        t.blocked_keys.insert(*hash, json.as_slice()).fatal()?;
    }
    append_entry(t, tip, entry, &entry_json)?;
    record.der = der;
    Ok(Reply::Record(Box::new(record)))
}

/// [`crate::Store::release_hold`]: a certificate on hold is valid again and leaves its
/// issuer's revocation list (RFC 5280 §5.3.1).
fn release_hold(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    serial: Vec<u8>,
    audit: AuditEvent,
) -> Result<Reply, ApplyError> {
    check_serial(&serial).refuse()?;
    let mut record = load_record(t, &serial)?;
    if !record.revocation.is_some_and(|r| r.is_hold()) {
        return refused(Error::Conflict(format!(
            "certificate {} is not on hold",
            hex::encode(&serial)
        )));
    }
    record.status = CertStatus::Valid;
    record.revocation = None;
    let der = std::mem::take(&mut record.der);
    let meta = encode(&record).refuse()?;
    let (entry, entry_json) = chain(tip, audit)?;

    t.certs.insert(serial.as_slice(), meta.as_slice()).fatal()?;
    set_revoked_index(t, &record).fatal()?;
    let key = order_key(&serial);
    let index_key = (record.issuer.as_str(), key.as_slice());
    t.revoked.remove(index_key).fatal()?;
    t.invalidity.remove(index_key).fatal()?;
    append_entry(t, tip, entry, &entry_json)?;
    record.der = der;
    Ok(Reply::Record(Box::new(record)))
}

/// [`crate::Store::index_missing_keys`]: one batch of key-index entries for records that
/// have none; records that gained one meanwhile are left as they are.
fn index_keys(
    t: &mut Tables<'_>,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    complete: bool,
) -> Result<Reply, ApplyError> {
    for (serial, hash) in entries {
        check_spki_hash(&hash).refuse()?;
        let mut record: CertRecord = match t.certs.get(serial.as_slice()).fatal()? {
            Some(guard) => decode("certificate record", guard.value()).refuse()?,
            None => continue,
        };
        if !record.spki_sha256.is_empty() {
            continue;
        }
        record.spki_sha256 = hash;
        record.der = Vec::new();
        let meta = encode(&record).refuse()?;
        t.certs.insert(serial.as_slice(), meta.as_slice()).fatal()?;
        t.spki_index
            .insert((record.spki_sha256.as_slice(), serial.as_slice()), ())
            .fatal()?;
    }
    if complete {
        t.meta.insert(KEY_INDEX_KEY, 1).fatal()?;
    }
    Ok(Reply::Done)
}

/// [`crate::Store::next_crl_number`]: allocates the next cRLNumber (RFC 5280 §5.2.3).
fn next_crl_number(t: &mut Tables<'_>, issuer: String) -> Result<Reply, ApplyError> {
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

/// [`crate::Store::put_crl`]: stores a CRL unless an newer one is stored.
fn put_crl(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    issuer: String,
    crl: StoredCrl,
    audit: AuditEvent,
) -> Result<Reply, ApplyError> {
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
    append_entry(t, tip, entry, &entry_json)?;
    Ok(Reply::Done)
}

/// [`crate::Store::append_audit`]: one entry at the end of the hash chain.
fn append_audit(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    event: AuditEvent,
) -> Result<Reply, ApplyError> {
    let (entry, entry_json) = chain(tip, event)?;
    let seq = append_entry(t, tip, entry, &entry_json)?;
    Ok(Reply::Number(seq))
}

/// [`crate::Store::put_challenge`]: a new one-time challenge.
fn put_challenge(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    challenge: OneTimeChallenge,
    audit: AuditEvent,
) -> Result<Reply, ApplyError> {
    if t.challenges
        .get(challenge.hash.as_slice())
        .fatal()?
        .is_some()
    {
        return refused(Error::Conflict("this challenge exists".into()));
    }
    let json = encode(&challenge).refuse()?;
    let (entry, entry_json) = chain(tip, audit)?;
    t.challenges
        .insert(challenge.hash.as_slice(), json.as_slice())
        .fatal()?;
    append_entry(t, tip, entry, &entry_json)?;
    Ok(Reply::Done)
}

/// [`crate::Store::put_api_token`] (`create`) and [`crate::Store::update_api_token`].
fn put_token(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    token: crate::tokens::ApiToken,
    create: bool,
    audit: AuditEvent,
) -> Result<Reply, ApplyError> {
    let exists = t.api_tokens.get(token.id.as_str()).fatal()?.is_some();
    if create && exists {
        return refused(Error::Conflict(format!("API token {} exists", token.id)));
    }
    if !create && !exists {
        return refused(Error::NotFound(format!("no API token {}", token.id)));
    }
    let json = encode(&token).refuse()?;
    t.api_tokens
        .insert(token.id.as_str(), json.as_slice())
        .fatal()?;
    let (entry, entry_json) = chain(tip, audit)?;
    append_entry(t, tip, entry, &entry_json)?;
    Ok(Reply::Done)
}

/// [`crate::Store::touch_api_token`].
fn touch_token(t: &mut Tables<'_>, id: String, at: UnixTime) -> Result<Reply, ApplyError> {
    let mut token: crate::tokens::ApiToken = match t.api_tokens.get(id.as_str()).fatal()? {
        Some(v) => decode("API token", v.value()).refuse()?,
        None => return refused(Error::NotFound(format!("no API token {id}"))),
    };
    token.last_used_at = Some(at);
    let json = encode(&token).refuse()?;
    t.api_tokens.insert(id.as_str(), json.as_slice()).fatal()?;
    Ok(Reply::Done)
}

/// [`crate::Store::consume_challenge`]: spends a one-time challenge; returns it as it was.
fn consume_challenge(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    hash: Vec<u8>,
    endpoint: String,
    now: UnixTime,
    audit: AuditEvent,
) -> Result<Reply, ApplyError> {
    let before = find_challenge(t, &hash, &endpoint)?;
    check_spendable(&before, now)?;
    let mut after = before.clone();
    after.used_at = Some(now);
    let json = encode(&after).refuse()?;
    let (entry, entry_json) = chain(tip, audit)?;
    t.challenges
        .insert(hash.as_slice(), json.as_slice())
        .fatal()?;
    append_entry(t, tip, entry, &entry_json)?;
    Ok(Reply::Challenge(Box::new(before)))
}

/// [`crate::Store::release_challenge`]: makes a spent challenge usable again.
fn release_challenge(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    hash: Vec<u8>,
    endpoint: String,
    audit: AuditEvent,
) -> Result<Reply, ApplyError> {
    let mut c = find_challenge(t, &hash, &endpoint)?;
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
    append_entry(t, tip, entry, &entry_json)?;
    Ok(Reply::Done)
}

/// [`crate::Store::put_transaction`]: protocol transaction keys naming a serial.
fn put_transaction(
    t: &mut Tables<'_>,
    keys: Vec<String>,
    serial: Vec<u8>,
) -> Result<Reply, ApplyError> {
    for key in &keys {
        t.transactions
            .insert(key.as_str(), serial.as_slice())
            .fatal()?;
    }
    Ok(Reply::Done)
}

/// [`crate::Store::put_pending`]: holds a new request; refuses a second pending one with the same lookup key.
fn put_pending(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    mut request: Box<PendingRequest>,
    audit: AuditEvent,
) -> Result<Reply, ApplyError> {
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
    append_entry(t, tip, entry, &entry_json)?;
    Ok(Reply::Number(id))
}

/// [`crate::Store::update_pending`]: moves a pending request to its final state.
fn update_pending(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    request: Box<PendingRequest>,
    audit: AuditEvent,
) -> Result<Reply, ApplyError> {
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
    append_entry(t, tip, entry, &entry_json)?;
    Ok(Reply::Done)
}

// ---------------------------------------------------------------------------------------
// What several operations share.

/// Writes an audit entry built by [`chain`] and moves the tip to it; returns its seq.
pub(super) fn append_entry(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    entry: AuditEntry,
    json: &[u8],
) -> Result<u64, ApplyError> {
    t.audit.insert(entry.seq, json).fatal()?;
    let seq = entry.seq;
    advance(tip, entry);
    Ok(seq)
}

/// [`crate::checks::check_status`], as a refusal.
fn check_status(record: &CertRecord, what: &str) -> Result<(), ApplyError> {
    crate::checks::check_status(record, what).refuse()
}

/// Inserts a certificate record: its metadata `meta` (the record's JSON without DER),
/// its `der`, its place in the expiry index and the key index and, when revoked, in its
/// issuer's revocation list.
fn insert_record(
    t: &mut Tables<'_>,
    record: &CertRecord,
    meta: &[u8],
    der: &[u8],
) -> Result<(), ApplyError> {
    let serial = record.serial.as_slice();
    t.certs.insert(serial, meta).fatal()?;
    t.der.insert(serial, der).fatal()?;
    t.expiry.insert((record.not_after, serial), ()).fatal()?;
    index_for_lists(t, record).fatal()?;
    if !record.spki_sha256.is_empty() {
        t.spki_index
            .insert((record.spki_sha256.as_slice(), serial), ())
            .fatal()?;
    }
    if let Some(revocation) = record.revocation {
        let key = order_key(serial);
        let index_key = (record.issuer.as_str(), key.as_slice());
        t.revoked
            .insert(index_key, (revocation.time, revocation.reason))
            .fatal()?;
        if let Some(date) = revocation.invalidity_date {
            t.invalidity.insert(index_key, date).fatal()?;
        }
    }
    Ok(())
}

/// The one-time challenge with this hash for `endpoint`; [`Error::NotFound`] when there
/// is none (a challenge of another endpoint is not one).
fn find_challenge(
    t: &Tables<'_>,
    hash: &[u8],
    endpoint: &str,
) -> Result<OneTimeChallenge, ApplyError> {
    let found: Option<OneTimeChallenge> = match t.challenges.get(hash).fatal()? {
        Some(g) => Some(decode("challenge", g.value()).refuse()?),
        None => None,
    };
    match found.filter(|c| c.endpoint == endpoint) {
        Some(c) => Ok(c),
        None => refused(Error::NotFound("no such challenge".into())),
    }
}

/// [`crate::checks::check_spendable`], as a refusal.
fn check_spendable(c: &OneTimeChallenge, now: UnixTime) -> Result<(), ApplyError> {
    crate::checks::check_spendable(c, now).refuse()
}
