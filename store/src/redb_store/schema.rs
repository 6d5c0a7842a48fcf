//! The schema: table definitions, key and value encodings, the schema version, and the
//! audit chain's tip (see the module documentation of [`super`] for the table layout).

use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::{AuditEntry, CertRecord, CertStatus, Error, Result};

/// The schema version this code writes and understands. Version 2 added the list
/// indexes (`profile_expiry`, `issuer_expiry`, `revoked_expiry`, `names`); a version-1
/// database gets them built when it is first opened ([`migrate_1_to_2`]).
pub(super) const SCHEMA_VERSION: u64 = 2;
pub(super) const SCHEMA_KEY: &str = "schema_version";
/// Set (to 1) once every certificate record is in the key index: at creation for a new
/// database, after [`crate::Store::index_missing_keys`] for one written before the index.
pub(super) const KEY_INDEX_KEY: &str = "key_index_complete";
/// Key of the `probe` table's only entry (see [`Writer::probe`]).
pub(super) const PROBE_KEY: &str = "headroom";
/// What [`Writer::probe`] writes: a store that cannot take this much more is unavailable.
pub(super) const PROBE_BYTES: usize = 1 << 20;
pub(super) use crate::checks::{ZERO_HASH, check_serial, check_spki_hash, now};
pub(super) const EMPTY: &[u8] = &[];

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const CERTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("certs");
pub(super) const CERT_DER: TableDefinition<&[u8], &[u8]> = TableDefinition::new("cert_der");
pub(super) const SERIALS: TableDefinition<&[u8], (&str, i64)> = TableDefinition::new("serials");
pub(super) const EXPIRY: TableDefinition<(i64, &[u8]), ()> = TableDefinition::new("expiry");
pub(super) const REVOKED: TableDefinition<(&str, &[u8]), (i64, u8)> =
    TableDefinition::new("revoked");
pub(super) const CRL_NUMBERS: TableDefinition<&str, u64> = TableDefinition::new("crl_numbers");
pub(super) const CRLS: TableDefinition<&str, (u64, i64, i64, &[u8])> = TableDefinition::new("crls");
pub(super) const PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("pending");
pub(super) const PENDING_KEYS: TableDefinition<&str, u64> = TableDefinition::new("pending_keys");
pub(super) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
pub(super) const CHALLENGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("challenges");
pub(super) const TRANSACTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("transactions");
pub(super) const BLOCKED_KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocked_keys");
pub(super) const SPKI_INDEX: TableDefinition<(&[u8], &[u8]), ()> =
    TableDefinition::new("spki_index");
pub(super) const INVALIDITY: TableDefinition<(&str, &[u8]), i64> =
    TableDefinition::new("invalidity");
pub(super) const PROBE: TableDefinition<&str, &[u8]> = TableDefinition::new("probe");
pub(super) const PROFILE_EXPIRY: TableDefinition<(&str, i64, &[u8]), ()> =
    TableDefinition::new("profile_expiry");
pub(super) const ISSUER_EXPIRY: TableDefinition<(&str, i64, &[u8]), ()> =
    TableDefinition::new("issuer_expiry");
pub(super) const REVOKED_EXPIRY: TableDefinition<(i64, &[u8]), ()> =
    TableDefinition::new("revoked_expiry");
pub(super) const NAMES: TableDefinition<(i64, &[u8]), &str> = TableDefinition::new("names");

/// Greater than every serial (they have at most [`MAX_SERIAL_LEN`] octets): the upper end
/// of a range over one prefix of `profile_expiry` or `issuer_expiry`.
pub(super) const AFTER_EVERY_SERIAL: &[u8] = &[0xff; crate::checks::MAX_SERIAL_LEN + 1];

/// What the `names` index holds for a record: its subject and SANs, lowercased, one per
/// line, which `list --text` searches without decoding the record.
pub(super) fn searchable_names(record: &CertRecord) -> String {
    let mut names = record.subject.to_lowercase();
    for san in &record.sans {
        names.push('\n');
        names.push_str(&san.to_lowercase());
    }
    names
}
pub(super) const ACME_ACCOUNTS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("acme_accounts");
pub(super) const ACME_ACCOUNT_KEYS: TableDefinition<&str, &str> =
    TableDefinition::new("acme_account_keys");
pub(super) const ACME_ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("acme_orders");
pub(super) const ACME_ACCOUNT_ORDERS: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("acme_account_orders");
pub(super) const ACME_AUTHZS: TableDefinition<&str, &[u8]> = TableDefinition::new("acme_authzs");
pub(super) const ACME_EAB: TableDefinition<&str, &[u8]> = TableDefinition::new("acme_eab");
pub(super) const API_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_tokens");
pub(super) const SERVICE_STATE: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("service_state");

/// An engine error as a store error: [`Error::Unavailable`] for I/O failures (a full disk,
/// and redb's "previous I/O error" after one), [`Error::Backend`] for the rest.
pub(super) fn classify(context: &str, e: redb::Error) -> Error {
    if is_io(&e) {
        Error::Unavailable(format!("{context}: {e}"))
    } else {
        Error::Backend(format!("{context}: {e}"))
    }
}

pub(super) fn is_io(e: &redb::Error) -> bool {
    matches!(
        e,
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed
    )
}

/// Maps an engine error to a store error ([`classify`]) with some context.
pub(super) trait Context<T> {
    fn ctx(self, context: &str) -> Result<T>;
}

impl<T, E: Into<redb::Error>> Context<T> for std::result::Result<T, E> {
    fn ctx(self, context: &str) -> Result<T> {
        self.map_err(|e| classify(context, e.into()))
    }
}

/// The serial element of a `revoked` key: length octet, then the serial.
pub(super) fn order_key(serial: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(serial.len() + 1);
    // check_serial keeps the length within a byte.
    key.push(u8::try_from(serial.len()).unwrap_or(u8::MAX));
    key.extend_from_slice(serial);
    key
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

pub(super) fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Backend(format!("encoding a record: {e}")))
}

/// Creates the tables and checks or writes the schema version.
pub(super) fn init_schema(db: &Database) -> Result<()> {
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
            Some(1) => {
                drop(meta);
                Tables::open(&txn).ctx(err)?;
                txn.commit().ctx(err)?;
                return migrate_1_to_2(db);
            }
            Some(v) if v < SCHEMA_VERSION => {
                return Err(Error::Corrupt(format!("schema version {v}")));
            }
            Some(_) => {}
            None => {
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION).ctx(err)?;
                // A new database: every record it will hold is indexed when written.
                meta.insert(KEY_INDEX_KEY, 1).ctx(err)?;
            }
        }
    }
    Tables::open(&txn).ctx(err)?;
    txn.commit().ctx(err)
}

/// Records per transaction while [`migrate_1_to_2`] builds the list indexes.
#[cfg(not(test))]
const MIGRATION_BATCH: usize = 20_000;
#[cfg(test)]
const MIGRATION_BATCH: usize = 64;

/// Builds the list indexes of schema 2 for every record of a version-1 database, in
/// transactions of [`MIGRATION_BATCH`] records, then sets the version. A crash in between
/// leaves version 1 and some index entries; the next open builds them again (inserting an
/// entry that exists is harmless), so the indexes are complete when the version says 2.
fn migrate_1_to_2(db: &Database) -> Result<()> {
    use std::ops::Bound;
    let err = "building the list indexes (schema 1 to 2)";
    let mut after: Option<Vec<u8>> = None;
    loop {
        let txn = db.begin_write().ctx(err)?;
        let mut last = None;
        {
            let mut t = Tables::open(&txn).ctx(err)?;
            let batch: Vec<(Vec<u8>, Vec<u8>)> = {
                let range = match &after {
                    Some(a) => t
                        .certs
                        .range::<&[u8]>((Bound::Excluded(a.as_slice()), Bound::Unbounded)),
                    None => t.certs.range::<&[u8]>(..),
                }
                .ctx(err)?;
                let mut batch = Vec::new();
                for item in range.take(MIGRATION_BATCH) {
                    let (k, v) = item.ctx(err)?;
                    batch.push((k.value().to_vec(), v.value().to_vec()));
                }
                batch
            };
            for (serial, json) in &batch {
                let record: CertRecord = decode("certificate record", json)?;
                index_for_lists(&mut t, &record).ctx(err)?;
                last = Some(serial.clone());
            }
            if last.is_none() {
                t.meta.insert(SCHEMA_KEY, SCHEMA_VERSION).ctx(err)?;
            }
        }
        txn.commit().ctx(err)?;
        match last {
            Some(l) => after = Some(l),
            None => return Ok(()),
        }
    }
}

/// Puts a record in the list indexes: by profile, by issuer, by its names, and among the
/// revoked ones when it is revoked.
pub(super) fn index_for_lists(
    t: &mut Tables<'_>,
    record: &CertRecord,
) -> std::result::Result<(), redb::StorageError> {
    let serial = record.serial.as_slice();
    let at = record.not_after;
    t.profile_expiry
        .insert((record.profile.as_str(), at, serial), ())?;
    t.issuer_expiry
        .insert((record.issuer.as_str(), at, serial), ())?;
    t.names
        .insert((at, serial), searchable_names(record).as_str())?;
    set_revoked_index(t, record)
}

/// Keeps `revoked_expiry` in step with the record's status.
pub(super) fn set_revoked_index(
    t: &mut Tables<'_>,
    record: &CertRecord,
) -> std::result::Result<(), redb::StorageError> {
    let key = (record.not_after, record.serial.as_slice());
    if record.status == CertStatus::Revoked {
        t.revoked_expiry.insert(key, ())?;
    } else {
        t.revoked_expiry.remove(key)?;
    }
    Ok(())
}

/// Where the audit chain ends: the last seq (0 if empty) and its hash.
#[derive(Clone, Debug)]
pub(super) struct AuditTip {
    pub(super) seq: u64,
    pub(super) hash: String,
}

pub(super) fn load_tip(db: &Database) -> Result<AuditTip> {
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

/// Every table, open in one write transaction.
pub(super) struct Tables<'t> {
    pub(super) certs: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) der: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) serials: Table<'t, &'static [u8], (&'static str, i64)>,
    pub(super) expiry: Table<'t, (i64, &'static [u8]), ()>,
    pub(super) revoked: Table<'t, (&'static str, &'static [u8]), (i64, u8)>,
    pub(super) crl_numbers: Table<'t, &'static str, u64>,
    pub(super) crls: Table<'t, &'static str, (u64, i64, i64, &'static [u8])>,
    pub(super) pending: Table<'t, u64, &'static [u8]>,
    pub(super) pending_keys: Table<'t, &'static str, u64>,
    pub(super) audit: Table<'t, u64, &'static [u8]>,
    pub(super) challenges: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) transactions: Table<'t, &'static str, &'static [u8]>,
    pub(super) blocked_keys: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) spki_index: Table<'t, (&'static [u8], &'static [u8]), ()>,
    pub(super) invalidity: Table<'t, (&'static str, &'static [u8]), i64>,
    pub(super) profile_expiry: Table<'t, (&'static str, i64, &'static [u8]), ()>,
    pub(super) issuer_expiry: Table<'t, (&'static str, i64, &'static [u8]), ()>,
    pub(super) revoked_expiry: Table<'t, (i64, &'static [u8]), ()>,
    pub(super) names: Table<'t, (i64, &'static [u8]), &'static str>,
    pub(super) meta: Table<'t, &'static str, u64>,
    pub(super) acme_accounts: Table<'t, &'static str, &'static [u8]>,
    pub(super) acme_account_keys: Table<'t, &'static str, &'static str>,
    pub(super) acme_orders: Table<'t, &'static str, &'static [u8]>,
    pub(super) acme_account_orders: Table<'t, (&'static str, i64, &'static str), ()>,
    pub(super) acme_authzs: Table<'t, &'static str, &'static [u8]>,
    pub(super) acme_eab: Table<'t, &'static str, &'static [u8]>,
    pub(super) api_tokens: Table<'t, &'static str, &'static [u8]>,
    pub(super) service_state: Table<'t, (&'static str, &'static str), &'static [u8]>,
}

impl<'t> Tables<'t> {
    pub(super) fn open(
        txn: &'t WriteTransaction,
    ) -> std::result::Result<Tables<'t>, redb::TableError> {
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
            blocked_keys: txn.open_table(BLOCKED_KEYS)?,
            spki_index: txn.open_table(SPKI_INDEX)?,
            invalidity: txn.open_table(INVALIDITY)?,
            profile_expiry: txn.open_table(PROFILE_EXPIRY)?,
            issuer_expiry: txn.open_table(ISSUER_EXPIRY)?,
            revoked_expiry: txn.open_table(REVOKED_EXPIRY)?,
            names: txn.open_table(NAMES)?,
            meta: txn.open_table(META)?,
            acme_accounts: txn.open_table(ACME_ACCOUNTS)?,
            acme_account_keys: txn.open_table(ACME_ACCOUNT_KEYS)?,
            acme_orders: txn.open_table(ACME_ORDERS)?,
            acme_account_orders: txn.open_table(ACME_ACCOUNT_ORDERS)?,
            acme_authzs: txn.open_table(ACME_AUTHZS)?,
            acme_eab: txn.open_table(ACME_EAB)?,
            api_tokens: txn.open_table(API_TOKENS)?,
            service_state: txn.open_table(SERVICE_STATE)?,
        })
    }
}
