//! Durable records for privca.
//!
//! The store keeps what the CA must never lose: issued certificates and their status,
//! serial reservations, CRL numbers, pending enrollment requests and a hash-chained audit
//! log. It holds no policy; `ca-core` decides, the store records.
//!
//! Two backends: [`RedbStore`], one embedded file (docs/architecture.md, decision 5), and
//! with the feature `postgres` `PgStore`, several nodes on one PostgreSQL database
//! (docs/scale-out.md). Both pass the same contract suite ([`testsuite`]).
//!
//! Durability contract: when a method that writes returns `Ok`, the write has been
//! committed with an fsync and survives a crash or power cut. Writes are atomic: a record
//! and the audit entry that describes it are committed together or not at all.

use serde::{Deserialize, Serialize};

pub mod acme;
mod checks;
mod error;
#[cfg(feature = "postgres")]
mod pg;
mod redb_store;

pub use error::Error;
#[cfg(feature = "postgres")]
pub use pg::{MIGRATIONS, Migration, PgOptions, PgStore, PgTls, latest_version};
pub use redb_store::{DEFAULT_CACHE_BYTES, RedbStore, StoreOptions, WriterStats};

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Test support (feature `testsuite`).
#[cfg(feature = "testsuite")]
pub mod testsuite;
pub mod tokens;

/// Seconds since the Unix epoch (UTC).
pub type UnixTime = i64;

/// Status of an issued certificate. Expiry is not a stored status: it follows from
/// `not_after` and the current time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertStatus {
    /// Issued and not revoked.
    Valid,
    /// Revoked.
    Revoked,
}

/// RFC 5280 §5.3.1 CRLReason code of certificateHold: the one revocation that may be
/// undone ([`Store::release_hold`]) or made permanent with another reason
/// ([`Store::revoke_with`]).
pub const REASON_CERTIFICATE_HOLD: u8 = 6;

/// RFC 5280 §5.3.1 CRLReason code of keyCompromise.
pub const REASON_KEY_COMPROMISE: u8 = 1;

/// Revocation facts of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When it was revoked.
    pub time: UnixTime,
    /// RFC 5280 §5.3.1 CRLReason code (0 = unspecified, 1 = keyCompromise, …).
    pub reason: u8,
    /// RFC 5280 §5.3.2 invalidityDate: when the key is known or suspected to have been
    /// compromised, or the certificate otherwise became invalid; `None` when not given
    /// (and in records written before this field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalidity_date: Option<UnixTime>,
}

impl Revocation {
    /// A revocation at `time` for `reason` without an invalidity date.
    pub fn new(time: UnixTime, reason: u8) -> Revocation {
        Revocation {
            time,
            reason,
            invalidity_date: None,
        }
    }

    /// Whether this is a certificateHold (RFC 5280 §5.3.1), which may be released.
    pub fn is_hold(&self) -> bool {
        self.reason == REASON_CERTIFICATE_HOLD
    }
}

/// A public key on the blocklist: it was revoked for keyCompromise, and no certificate
/// for it is issued again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedKey {
    /// SHA-256 of the SubjectPublicKeyInfo DER (32 octets).
    pub spki_sha256: Vec<u8>,
    /// The certificate whose keyCompromise revocation blocked it (the first one).
    pub serial: Vec<u8>,
    /// Its issuer.
    pub issuer: String,
    /// When it was blocked.
    pub time: UnixTime,
}

/// Length of an SPKI hash (SHA-256) as the blocklist and the key index take it.
pub const SPKI_HASH_LEN: usize = 32;

/// An issued certificate and what the CA knows about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// Serial number: the DER INTEGER contents (big-endian, positive, at most 20 octets).
    pub serial: Vec<u8>,
    /// Identifier of the issuing CA (its name in the configuration).
    pub issuer: String,
    /// Subject distinguished name, RFC 4514 string form.
    pub subject: String,
    /// Subject alternative names in display form (`DNS:a.example`, `IP:10.0.0.1`, …).
    pub sans: Vec<String>,
    /// Profile the certificate was issued under.
    pub profile: String,
    /// Who asked for it (for example `cli:root`, `admin-api`, `scep:endpoint/account`).
    pub requester: String,
    /// notBefore.
    pub not_before: UnixTime,
    /// notAfter.
    pub not_after: UnixTime,
    /// When the record was written.
    pub issued_at: UnixTime,
    /// Current status.
    pub status: CertStatus,
    /// Set when `status` is `Revoked`.
    pub revocation: Option<Revocation>,
    /// SHA-256 of the certificate's SubjectPublicKeyInfo DER: the key of the index
    /// [`Store::certs_by_spki`] reads. Empty in records written before the index existed,
    /// until [`Store::index_missing_keys`] fills it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spki_sha256: Vec<u8>,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

/// A revoked certificate as a CRL lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial number (DER INTEGER contents).
    pub serial: Vec<u8>,
    /// Revocation facts.
    pub revocation: Revocation,
}

/// Which certificates [`Store::list_certs`] returns. Empty fields match everything.
#[derive(Clone, Debug, Default)]
pub struct CertFilter {
    /// Only this status.
    pub status: Option<CertStatus>,
    /// Only certificates whose `not_after` is at or before this time.
    pub expires_before: Option<UnixTime>,
    /// Only certificates whose `not_after` is after this time (not yet expired).
    pub expires_after: Option<UnixTime>,
    /// Only this profile.
    pub profile: Option<String>,
    /// Only this issuer.
    pub issuer: Option<String>,
    /// Only certificates whose subject or SANs contain this text (case-insensitive).
    pub text: Option<String>,
    /// At most this many results (ordered by `not_after`, soonest first).
    pub limit: Option<usize>,
}

/// Where a page of [`Store::list_cert_page`] ends: the position of its last record in
/// the expiry index (`not_after`, then serial). The next page starts after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertCursor {
    /// notAfter of the last record.
    pub not_after: UnixTime,
    /// Serial of the last record.
    pub serial: Vec<u8>,
}

/// One page of certificate records, without their DER (`der` is empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertPage {
    /// The records, soonest expiry first; at most the page size.
    pub records: Vec<CertRecord>,
    /// Where the next page starts; `None` when the index was scanned to its end.
    pub next: Option<CertCursor>,
}

/// State of a pending enrollment request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PendingState {
    /// Waiting for an administrator.
    Pending,
    /// Approved; the certificate with `serial` was issued.
    Issued,
    /// Rejected by an administrator.
    Rejected,
}

/// An enrollment request kept until it is approved or rejected (SCEP polling, EST 202).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    /// Store-assigned identifier (set by [`Store::put_pending`]).
    pub id: u64,
    /// Protocol key used to find the request again (for SCEP: transaction ID plus signer
    /// key hash; for EST: a hash of the CSR).
    pub lookup_key: String,
    /// The endpoint it came through.
    pub endpoint: String,
    /// Profile it asks for.
    pub profile: String,
    /// Requester identity.
    pub requester: String,
    /// The CSR, DER.
    pub csr_der: Vec<u8>,
    /// When it arrived.
    pub created_at: UnixTime,
    /// Current state.
    pub state: PendingState,
    /// Serial of the issued certificate once `state` is `Issued`.
    pub serial: Option<Vec<u8>>,
    /// Free-form reason given on rejection.
    pub note: Option<String>,
}

/// A one-time enrollment challenge (SCEP, as NDES issues them): only a hash is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTimeChallenge {
    /// SHA-256 of the challenge text.
    pub hash: Vec<u8>,
    /// The endpoint it is valid for.
    pub endpoint: String,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: UnixTime,
    /// After this time it is refused.
    pub expires_at: UnixTime,
    /// When it was used; `None` while unused.
    pub used_at: Option<UnixTime>,
    /// Serial of the certificate whose issuance spent it (set when it is spent together
    /// with a certificate, [`Store::record_issuance_bound`]); `None` otherwise and in
    /// records written before this field existed.
    #[serde(default)]
    pub used_for: Option<Vec<u8>>,
}

/// A one-time challenge to spend in the same commit as a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeUse {
    /// SHA-256 of the challenge text.
    pub hash: Vec<u8>,
    /// The endpoint it must belong to.
    pub endpoint: String,
    /// When it is spent (must not be after its `expires_at`).
    pub now: UnixTime,
    /// The audit event of its use.
    pub audit: AuditEvent,
}

/// What a protocol transaction records in the same commit as its certificate
/// ([`Store::record_issuance_bound`]), so that a crash can never separate them (SCEP,
/// RFC 8894 §3.3.1: a repeated request returns the same certificate).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IssuanceBinding {
    /// A key that identifies exactly this request (a retransmission has the same one). If it
    /// already maps to a certificate that is not revoked, the commit is refused with
    /// [`Error::Conflict`] and nothing is written: the earlier certificate is the answer.
    pub replay_key: Option<String>,
    /// Further transaction keys that map to the new certificate (earlier entries replaced).
    pub transaction_keys: Vec<String>,
    /// A one-time challenge spent by this issuance: refused as
    /// [`Store::consume_challenge`] refuses (nothing written) when it is unknown for its
    /// endpoint, used or expired.
    pub challenge: Option<ChallengeUse>,
}

/// One event for the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When it happened.
    pub time: UnixTime,
    /// What happened (`issue`, `issue-refused`, `revoke`, `crl`, `init`, …).
    pub action: String,
    /// Who did it.
    pub actor: String,
    /// What it concerns (a serial in hex, a CA name, a profile…).
    pub subject: String,
    /// Outcome and detail; never secrets.
    pub detail: String,
}

/// An audit event as stored: numbered and chained to its predecessor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 1.
    pub seq: u64,
    /// The event.
    pub event: AuditEvent,
    /// SHA-256 of the previous entry (all zero for the first), hex.
    pub prev_hash: String,
    /// SHA-256 over `seq`, `prev_hash` and the event (see [`AuditEntry::compute_hash`]), hex.
    pub hash: String,
}

impl AuditEntry {
    /// The chain hash of an entry: SHA-256 over the big-endian `seq`, the previous hash
    /// (hex) and the canonical JSON of the event.
    pub fn compute_hash(seq: u64, prev_hash: &str, event: &AuditEvent) -> Result<String> {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(event).map_err(|e| Error::Corrupt(e.to_string()))?;
        let mut h = Sha256::new();
        h.update(seq.to_be_bytes());
        h.update(prev_hash.as_bytes());
        h.update(&json);
        Ok(hex::encode(h.finalize()))
    }
}

/// Result of walking the whole audit chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerification {
    /// Entries checked.
    pub entries: u64,
    /// The first entry whose hash or link is wrong, if any.
    pub first_bad: Option<u64>,
}

/// The latest CRL published for an issuer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCrl {
    /// Its cRLNumber.
    pub number: u64,
    /// thisUpdate.
    pub this_update: UnixTime,
    /// nextUpdate.
    pub next_update: UnixTime,
    /// The CRL, DER.
    pub der: Vec<u8>,
}

/// Counts for `/healthz` and `privca status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Certificates recorded.
    pub certificates: u64,
    /// Of which revoked.
    pub revoked: u64,
    /// Audit entries.
    pub audit_entries: u64,
}

/// The durable record store.
///
/// All methods are blocking. Implementations are safe to share between threads and batch
/// concurrent writers into shared commits (group commit) where they can.
pub trait Store: Send + Sync {
    /// Reserves `serial` durably before anything is signed with it (docs/architecture.md, decision 3).
    /// Fails with [`Error::Conflict`] if the serial was ever reserved or used.
    fn reserve_serial(&self, serial: &[u8], issuer: &str) -> Result<()>;

    /// Records an issued certificate and its audit event in one atomic, durable commit.
    /// The serial must have been reserved and not yet recorded ([`Error::Conflict`]
    /// otherwise). Returns the audit sequence number.
    fn record_issuance(&self, record: &CertRecord, audit: &AuditEvent) -> Result<u64> {
        self.record_issuance_bound(record, audit, &IssuanceBinding::default())
    }

    /// [`Store::record_issuance`] together with what `binding` names — the transaction
    /// keys that find the certificate again and the one-time challenge it spends — all in
    /// the same commit: either everything is durable or nothing is. Returns the audit
    /// sequence number of the issuance entry.
    fn record_issuance_bound(
        &self,
        record: &CertRecord,
        audit: &AuditEvent,
        binding: &IssuanceBinding,
    ) -> Result<u64>;

    /// Records certificates issued elsewhere (a CA moved to privca, or benchmark
    /// fixtures) in one atomic, durable commit with one audit entry: their serials are
    /// marked used, revoked ones enter the revocation index. [`Error::Conflict`] if any
    /// serial was used before; then nothing is written. Returns the audit sequence number.
    fn import_certificates(&self, records: &[CertRecord], audit: &AuditEvent) -> Result<u64>;

    /// Fetches a certificate by serial.
    fn get_cert(&self, serial: &[u8]) -> Result<Option<CertRecord>>;

    /// Lists certificates matching `filter`, soonest expiry first.
    fn list_certs(&self, filter: &CertFilter) -> Result<Vec<CertRecord>>;

    /// One page of the certificates matching `filter` (its `limit` is ignored): at most
    /// `page_size` records after `after` (from the start when `None`), soonest expiry
    /// first, without their DER, so memory is bounded by the page size. `next` is set
    /// when the scan stopped because the page was full.
    fn list_cert_page(
        &self,
        filter: &CertFilter,
        after: Option<&CertCursor>,
        page_size: usize,
    ) -> Result<CertPage>;

    /// Marks a certificate revoked and appends `audit`, atomically and durably.
    /// [`Error::NotFound`] for an unknown serial, [`Error::Conflict`] if already revoked.
    /// (A certificate on hold may be revoked for good: see [`Store::revoke_with`].)
    fn revoke(
        &self,
        serial: &[u8],
        revocation: Revocation,
        audit: &AuditEvent,
    ) -> Result<CertRecord> {
        self.revoke_with(serial, revocation, None, audit)
    }

    /// [`Store::revoke`], and when `block_key` is set (the SHA-256 of the certificate's
    /// SubjectPublicKeyInfo, [`SPKI_HASH_LEN`] octets) that key goes on the blocklist in
    /// the same commit ([`Store::blocked_key`]; a key already there keeps its first entry).
    ///
    /// A certificate on hold ([`REASON_CERTIFICATE_HOLD`], RFC 5280 §5.3.1) may be revoked
    /// again with another reason: the new revocation replaces the hold. Revoking it with
    /// hold again, or revoking a certificate revoked for any other reason, is
    /// [`Error::Conflict`]; an unknown serial is [`Error::NotFound`]; a hash of the wrong
    /// length is [`Error::Invalid`]. Then nothing is written.
    fn revoke_with(
        &self,
        serial: &[u8],
        revocation: Revocation,
        block_key: Option<&[u8]>,
        audit: &AuditEvent,
    ) -> Result<CertRecord>;

    /// Releases a certificate from hold (RFC 5280 §5.3.1 certificateHold): it is valid
    /// again and leaves its issuer's revocation list, with `audit`, atomically and durably.
    /// [`Error::NotFound`] for an unknown serial, [`Error::Conflict`] if it is not on hold.
    fn release_hold(&self, serial: &[u8], audit: &AuditEvent) -> Result<CertRecord>;

    /// The blocklist entry of a public key (SHA-256 of its SubjectPublicKeyInfo DER).
    fn blocked_key(&self, spki_sha256: &[u8]) -> Result<Option<BlockedKey>>;

    /// Every certificate whose [`CertRecord::spki_sha256`] is `spki_sha256`, in serial
    /// order, read through the key index (no scan of all certificates).
    fn certs_by_spki(&self, spki_sha256: &[u8]) -> Result<Vec<CertRecord>>;

    /// Puts into the key index every certificate recorded before the index existed (whose
    /// [`CertRecord::spki_sha256`] is empty), with the hash `hash_of` computes from its DER
    /// (`None` leaves a record out). Runs once per database: afterwards the database is
    /// marked complete and the call returns at once. Returns how many records were indexed.
    /// [`Store::certs_by_spki`] callers run it first, so that a revocation by key finds
    /// certificates of every age.
    fn index_missing_keys(&self, hash_of: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> Result<usize>;

    /// Calls `each` for every revoked certificate of `issuer` (for CRLs), in serial order.
    fn for_each_revoked(
        &self,
        issuer: &str,
        each: &mut dyn FnMut(RevokedEntry) -> Result<()>,
    ) -> Result<()>;

    /// Durably allocates the next CRL number of `issuer`; numbers start at 1 and strictly
    /// increase (RFC 5280 §5.2.3), across restarts.
    fn next_crl_number(&self, issuer: &str) -> Result<u64>;

    /// Stores the latest CRL of `issuer` (replacing the previous one) with its audit event.
    fn put_crl(&self, issuer: &str, crl: &StoredCrl, audit: &AuditEvent) -> Result<()>;

    /// The latest stored CRL of `issuer`.
    fn latest_crl(&self, issuer: &str) -> Result<Option<StoredCrl>>;

    /// Takes or renews the lease to sign `issuer`'s CRL for `holder` until `now + ttl`:
    /// the fencing token to store the CRL with ([`Store::put_crl_fenced`]), or `None`
    /// while another holder's lease runs. The token grows whenever the holder changes.
    /// A backend that one process holds exclusively (redb) always grants it.
    fn crl_lease(
        &self,
        issuer: &str,
        holder: &str,
        now: UnixTime,
        ttl: i64,
    ) -> Result<Option<u64>> {
        let _ = (issuer, holder, now, ttl);
        Ok(Some(0))
    }

    /// Ends `holder`'s lease of `issuer` with token `fence` (after its CRL is stored), so
    /// that another node may sign at once; a lease another holder took meanwhile is left
    /// alone.
    fn crl_lease_release(&self, issuer: &str, holder: &str, fence: u64) -> Result<()> {
        let _ = (issuer, holder, fence);
        Ok(())
    }

    /// [`Store::put_crl`], refused with [`Error::Conflict`] unless `fence` is the current
    /// lease's token (a signer whose lease ran out while it signed).
    fn put_crl_fenced(
        &self,
        issuer: &str,
        crl: &StoredCrl,
        fence: u64,
        audit: &AuditEvent,
    ) -> Result<()> {
        let _ = fence;
        self.put_crl(issuer, crl, audit)
    }

    /// Appends one audit event on its own (refusals, administrative actions).
    fn append_audit(&self, event: &AuditEvent) -> Result<u64>;

    /// Audit entries with `seq >= from`, at most `limit`.
    fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>>;

    /// Walks the whole audit chain and checks every hash and link.
    fn verify_audit(&self) -> Result<AuditVerification>;

    /// Stores a new pending request; assigns and returns its id.
    fn put_pending(&self, request: &PendingRequest, audit: &AuditEvent) -> Result<u64>;

    /// Fetches a pending request by id.
    fn get_pending(&self, id: u64) -> Result<Option<PendingRequest>>;

    /// Finds a pending request by its protocol lookup key.
    fn find_pending(&self, lookup_key: &str) -> Result<Option<PendingRequest>>;

    /// Lists pending requests, optionally only those in `state`.
    fn list_pending(&self, state: Option<PendingState>) -> Result<Vec<PendingRequest>>;

    /// Replaces a pending request (state changes), with its audit event.
    fn update_pending(&self, request: &PendingRequest, audit: &AuditEvent) -> Result<()>;

    /// Stores a new one-time challenge with its audit event. [`Error::Conflict`] if
    /// the hash exists.
    fn put_challenge(&self, challenge: &OneTimeChallenge, audit: &AuditEvent) -> Result<()>;

    /// Atomically marks the challenge with `hash` used at `now`, with its audit event,
    /// and returns it as it was before. [`Error::NotFound`] if there is none for
    /// `endpoint`, [`Error::Conflict`] if it was used, [`Error::Invalid`] if it expired;
    /// then nothing is written. Of concurrent callers exactly one succeeds.
    fn consume_challenge(
        &self,
        hash: &[u8],
        endpoint: &str,
        now: UnixTime,
        audit: &AuditEvent,
    ) -> Result<OneTimeChallenge>;

    /// The one-time challenge with `hash`, if any (read only).
    fn get_challenge(&self, hash: &[u8]) -> Result<Option<OneTimeChallenge>>;

    /// Makes a consumed challenge usable again (its enrollment failed after consuming it),
    /// with its audit event. [`Error::NotFound`] if there is none for `endpoint`,
    /// [`Error::Conflict`] if it is not marked used.
    fn release_challenge(&self, hash: &[u8], endpoint: &str, audit: &AuditEvent) -> Result<()>;

    /// Records which certificate a protocol transaction produced (SCEP: endpoint,
    /// transaction ID and signer key hash), so that a replay returns the same certificate.
    /// Every key of `keys` maps to `serial`, in one commit; earlier entries are replaced.
    fn put_transaction(&self, keys: &[String], serial: &[u8]) -> Result<()>;

    /// The serial recorded for a protocol transaction.
    fn find_transaction(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Counts for health and status output.
    fn stats(&self) -> Result<StoreStats>;

    /// How many unrevoked certificates expire in each window that consecutive `edges`
    /// bound: entry `i` counts notAfter in `edges[i]..edges[i + 1]` (half-open), so `n`
    /// edges give `n - 1` counts. Counted over the expiry indexes without reading records
    /// (the console's expiry chart at a million certificates).
    fn count_expiring(&self, edges: &[UnixTime]) -> Result<Vec<u64>>;

    /// Stores a new API token with its audit entry; [`Error::Conflict`] when its id exists.
    fn put_api_token(&self, token: &tokens::ApiToken, audit: &AuditEvent) -> Result<()>;

    /// Replaces a stored API token (a revocation) with its audit entry;
    /// [`Error::NotFound`] when there is none with its id.
    fn update_api_token(&self, token: &tokens::ApiToken, audit: &AuditEvent) -> Result<()>;

    /// Sets a stored token's last use to `at` and changes nothing else (so that it never
    /// undoes a revocation that committed meanwhile); not audited.
    fn touch_api_token(&self, id: &str, at: UnixTime) -> Result<()>;

    /// The API token with this id.
    fn api_token(&self, id: &str) -> Result<Option<tokens::ApiToken>>;

    /// Every API token, by id.
    fn list_api_tokens(&self) -> Result<Vec<tokens::ApiToken>>;

    /// A small piece of a service's own state (`namespace`, `key`): the notifier's
    /// delivery cursors, sent reminders and delivery log. Not audited.
    fn state_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>>;

    /// Sets (replaces) a piece of service state.
    fn state_put(&self, namespace: &str, key: &str, value: &[u8]) -> Result<()>;

    /// The pieces of a namespace with keys after `after` (all, with `None`), in key order,
    /// at most `limit`.
    fn state_list(
        &self,
        namespace: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>>;

    /// Whether writes work. [`Error::Unavailable`] while the last write failed for lack of
    /// storage (disk full, I/O error) and a fresh attempt still fails; the attempt reopens
    /// the database, so a store whose disk has space again recovers here. Writes nothing
    /// while writes work.
    fn check_writable(&self) -> Result<()> {
        Ok(())
    }

    /// The ACME records of this store ([`acme::AcmeStore`]); `None` for a backend that
    /// does not hold them (yet).
    fn acme(&self) -> Option<&dyn acme::AcmeStore> {
        None
    }
}
