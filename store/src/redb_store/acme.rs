//! [`AcmeStore`] on redb: the ACME tables (see the table list of [`super`]), their write
//! operations (applied by the group-commit writer like every other write: checks first,
//! then inserts) and their reads.

use redb::{ReadTransaction, ReadableTable};

use super::RedbStore;
use super::schema::*;
use super::write::append_entry;
use super::writer::*;
use crate::acme::{AcmeAccount, AcmeAuthz, AcmeOrder, AcmeStore, EabKey, OrderStatus, same_state};
use crate::{AuditEvent, Error, Result};

/// An ACME write, owned so it can cross to the writer thread.
pub(super) enum AcmeOp {
    PutEab {
        key: EabKey,
        audit: AuditEvent,
    },
    CreateAccount {
        account: AcmeAccount,
        eab_kid: Option<String>,
        audit: AuditEvent,
    },
    UpdateAccount {
        account: AcmeAccount,
        audit: AuditEvent,
    },
    CreateOrder {
        order: AcmeOrder,
        authzs: Vec<AcmeAuthz>,
        audit: AuditEvent,
    },
    UpdateOrder {
        order: AcmeOrder,
        expected: OrderStatus,
        audit: Option<AuditEvent>,
    },
    UpdateAuthz {
        authz: AcmeAuthz,
        expected: AcmeAuthz,
        audit: Option<AuditEvent>,
    },
}

fn audit_entry(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    audit: Option<AuditEvent>,
) -> Result<(), ApplyError> {
    if let Some(event) = audit {
        let (entry, json) = chain(tip, event)?;
        append_entry(t, tip, entry, &json)?;
    }
    Ok(())
}

/// Applies one ACME operation inside the writer's batch.
pub(super) fn apply(
    t: &mut Tables<'_>,
    tip: &mut AuditTip,
    op: AcmeOp,
) -> Result<Reply, ApplyError> {
    match op {
        AcmeOp::PutEab { key, audit } => {
            if t.acme_eab.get(key.kid.as_str()).fatal()?.is_some() {
                return refused(Error::Conflict(format!("EAB key {} exists", key.kid)));
            }
            let json = encode(&key).refuse()?;
            t.acme_eab
                .insert(key.kid.as_str(), json.as_slice())
                .fatal()?;
            audit_entry(t, tip, Some(audit))?;
        }
        AcmeOp::CreateAccount {
            account,
            eab_kid,
            audit,
        } => {
            if t.acme_accounts.get(account.id.as_str()).fatal()?.is_some()
                || t.acme_account_keys
                    .get(account.thumbprint.as_str())
                    .fatal()?
                    .is_some()
            {
                return refused(Error::Conflict("an account with this key exists".into()));
            }
            let mut bound = None;
            if let Some(kid) = &eab_kid {
                let key: Option<EabKey> = match t.acme_eab.get(kid.as_str()).fatal()? {
                    Some(v) => Some(decode("EAB key", v.value()).refuse()?),
                    None => None,
                };
                let mut key = match key {
                    Some(k) if k.endpoint == account.endpoint => k,
                    _ => return refused(Error::NotFound(format!("no EAB key {kid}"))),
                };
                if key.account.is_some() {
                    return refused(Error::Conflict(format!(
                        "EAB key {kid} is bound to an account already"
                    )));
                }
                key.account = Some(account.id.clone());
                key.used_at = Some(account.created_at);
                bound = Some(encode(&key).refuse()?);
            }
            let json = encode(&account).refuse()?;
            if let (Some(kid), Some(k)) = (&eab_kid, &bound) {
                t.acme_eab.insert(kid.as_str(), k.as_slice()).fatal()?;
            }
            t.acme_accounts
                .insert(account.id.as_str(), json.as_slice())
                .fatal()?;
            t.acme_account_keys
                .insert(account.thumbprint.as_str(), account.id.as_str())
                .fatal()?;
            audit_entry(t, tip, Some(audit))?;
        }
        AcmeOp::UpdateAccount { account, audit } => {
            let old: AcmeAccount = match t.acme_accounts.get(account.id.as_str()).fatal()? {
                Some(v) => decode("ACME account", v.value()).refuse()?,
                None => return refused(Error::NotFound(format!("no account {}", account.id))),
            };
            if old.thumbprint != account.thumbprint
                && t.acme_account_keys
                    .get(account.thumbprint.as_str())
                    .fatal()?
                    .is_some()
            {
                return refused(Error::Conflict("another account has this key".into()));
            }
            let json = encode(&account).refuse()?;
            if old.thumbprint != account.thumbprint {
                t.acme_account_keys
                    .remove(old.thumbprint.as_str())
                    .fatal()?;
                t.acme_account_keys
                    .insert(account.thumbprint.as_str(), account.id.as_str())
                    .fatal()?;
            }
            t.acme_accounts
                .insert(account.id.as_str(), json.as_slice())
                .fatal()?;
            audit_entry(t, tip, Some(audit))?;
        }
        AcmeOp::CreateOrder {
            order,
            authzs,
            audit,
        } => {
            if t.acme_orders.get(order.id.as_str()).fatal()?.is_some() {
                return refused(Error::Conflict(format!("order {} exists", order.id)));
            }
            let mut encoded = Vec::with_capacity(authzs.len());
            for a in &authzs {
                if t.acme_authzs.get(a.id.as_str()).fatal()?.is_some()
                    || encoded.iter().any(|(id, _): &(&str, Vec<u8>)| *id == a.id)
                {
                    return refused(Error::Conflict(format!("authorization {} exists", a.id)));
                }
                encoded.push((a.id.as_str(), encode(a).refuse()?));
            }
            let json = encode(&order).refuse()?;
            for (id, json) in &encoded {
                t.acme_authzs.insert(*id, json.as_slice()).fatal()?;
            }
            t.acme_orders
                .insert(order.id.as_str(), json.as_slice())
                .fatal()?;
            t.acme_account_orders
                .insert(
                    (order.account.as_str(), order.created_at, order.id.as_str()),
                    (),
                )
                .fatal()?;
            audit_entry(t, tip, Some(audit))?;
        }
        AcmeOp::UpdateOrder {
            order,
            expected,
            audit,
        } => {
            let old: AcmeOrder = match t.acme_orders.get(order.id.as_str()).fatal()? {
                Some(v) => decode("ACME order", v.value()).refuse()?,
                None => return refused(Error::NotFound(format!("no order {}", order.id))),
            };
            if old.status != expected {
                return refused(Error::Conflict(format!(
                    "order {} is {:?}, not {expected:?}",
                    order.id, old.status
                )));
            }
            if old.account != order.account || old.created_at != order.created_at {
                return refused(Error::Invalid("an order keeps its account".into()));
            }
            let json = encode(&order).refuse()?;
            t.acme_orders
                .insert(order.id.as_str(), json.as_slice())
                .fatal()?;
            audit_entry(t, tip, audit)?;
        }
        AcmeOp::UpdateAuthz {
            authz,
            expected,
            audit,
        } => {
            let old: AcmeAuthz = match t.acme_authzs.get(authz.id.as_str()).fatal()? {
                Some(v) => decode("ACME authorization", v.value()).refuse()?,
                None => {
                    return refused(Error::NotFound(format!("no authorization {}", authz.id)));
                }
            };
            if !same_state(&old, &expected) || old.account != authz.account {
                return refused(Error::Conflict(format!(
                    "authorization {} changed meanwhile",
                    authz.id
                )));
            }
            let json = encode(&authz).refuse()?;
            t.acme_authzs
                .insert(authz.id.as_str(), json.as_slice())
                .fatal()?;
            audit_entry(t, tip, audit)?;
        }
    }
    Ok(Reply::Done)
}

fn get_json<T: serde::de::DeserializeOwned>(
    txn: &ReadTransaction,
    table: redb::TableDefinition<&str, &[u8]>,
    what: &str,
    key: &str,
) -> Result<Option<T>> {
    let err = "reading ACME records";
    let t = txn.open_table(table).ctx(err)?;
    match t.get(key).ctx(err)? {
        Some(v) => Ok(Some(decode(what, v.value())?)),
        None => Ok(None),
    }
}

impl RedbStore {
    fn acme_op(&self, op: AcmeOp) -> Result<()> {
        self.submit_done(Op::Acme(Box::new(op)))
    }
}

impl AcmeStore for RedbStore {
    fn put_eab_key(&self, key: &EabKey, audit: &AuditEvent) -> Result<()> {
        self.acme_op(AcmeOp::PutEab {
            key: key.clone(),
            audit: audit.clone(),
        })
    }

    fn eab_key(&self, kid: &str) -> Result<Option<EabKey>> {
        get_json(&self.read()?, ACME_EAB, "EAB key", kid)
    }

    fn list_eab_keys(&self) -> Result<Vec<EabKey>> {
        let err = "reading EAB keys";
        let txn = self.read()?;
        let t = txn.open_table(ACME_EAB).ctx(err)?;
        let mut out = Vec::new();
        for row in t.iter().ctx(err)? {
            let (_, v) = row.ctx(err)?;
            out.push(decode("EAB key", v.value())?);
        }
        Ok(out)
    }

    fn create_account(
        &self,
        account: &AcmeAccount,
        eab_kid: Option<&str>,
        audit: &AuditEvent,
    ) -> Result<()> {
        self.acme_op(AcmeOp::CreateAccount {
            account: account.clone(),
            eab_kid: eab_kid.map(str::to_owned),
            audit: audit.clone(),
        })
    }

    fn account(&self, id: &str) -> Result<Option<AcmeAccount>> {
        get_json(&self.read()?, ACME_ACCOUNTS, "ACME account", id)
    }

    fn account_by_thumbprint(&self, thumbprint: &str) -> Result<Option<AcmeAccount>> {
        let err = "reading ACME accounts";
        let txn = self.read()?;
        let id = {
            let t = txn.open_table(ACME_ACCOUNT_KEYS).ctx(err)?;
            match t.get(thumbprint).ctx(err)? {
                Some(v) => v.value().to_owned(),
                None => return Ok(None),
            }
        };
        get_json(&txn, ACME_ACCOUNTS, "ACME account", &id)
    }

    fn update_account(&self, account: &AcmeAccount, audit: &AuditEvent) -> Result<()> {
        self.acme_op(AcmeOp::UpdateAccount {
            account: account.clone(),
            audit: audit.clone(),
        })
    }

    fn create_order(
        &self,
        order: &AcmeOrder,
        authzs: &[AcmeAuthz],
        audit: &AuditEvent,
    ) -> Result<()> {
        self.acme_op(AcmeOp::CreateOrder {
            order: order.clone(),
            authzs: authzs.to_vec(),
            audit: audit.clone(),
        })
    }

    fn order(&self, id: &str) -> Result<Option<AcmeOrder>> {
        get_json(&self.read()?, ACME_ORDERS, "ACME order", id)
    }

    fn orders_of(&self, account: &str) -> Result<Vec<AcmeOrder>> {
        let err = "reading ACME orders";
        let txn = self.read()?;
        let ids: Vec<String> = {
            let t = txn.open_table(ACME_ACCOUNT_ORDERS).ctx(err)?;
            let mut ids = Vec::new();
            for row in t
                .range((account, i64::MIN, "")..=(account, i64::MAX, "\u{10ffff}"))
                .ctx(err)?
            {
                let (k, _) = row.ctx(err)?;
                ids.push(k.value().2.to_owned());
            }
            ids
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(o) = get_json(&txn, ACME_ORDERS, "ACME order", &id)? {
                out.push(o);
            }
        }
        Ok(out)
    }

    fn update_order(
        &self,
        order: &AcmeOrder,
        expected: OrderStatus,
        audit: Option<&AuditEvent>,
    ) -> Result<()> {
        self.acme_op(AcmeOp::UpdateOrder {
            order: order.clone(),
            expected,
            audit: audit.cloned(),
        })
    }

    fn authz(&self, id: &str) -> Result<Option<AcmeAuthz>> {
        get_json(&self.read()?, ACME_AUTHZS, "ACME authorization", id)
    }

    fn update_authz(
        &self,
        authz: &AcmeAuthz,
        expected: &AcmeAuthz,
        audit: Option<&AuditEvent>,
    ) -> Result<()> {
        self.acme_op(AcmeOp::UpdateAuthz {
            authz: authz.clone(),
            expected: expected.clone(),
            audit: audit.cloned(),
        })
    }
}
