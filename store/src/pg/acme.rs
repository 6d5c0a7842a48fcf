//! [`AcmeStore`] on PostgreSQL (migration 4): each record a JSON row, with the columns
//! the atomic operations key on. The guarantees of [`crate::acme`] hold across nodes:
//! - an EAB key is bound under its row's lock in the account's transaction, so of two
//!   newAccount requests with one key on two nodes exactly one succeeds;
//! - the thumbprint column is UNIQUE;
//! - order and authorization updates lock the row and compare the stored status before
//!   writing (compare-and-set).

use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ops::{col, commit_with, exec, row, rows};
use super::{Inner, PgStore, db};
use crate::acme::{AcmeAccount, AcmeAuthz, AcmeOrder, AcmeStore, EabKey, OrderStatus, same_state};
use crate::{AuditEvent, Error, Result};

fn json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Backend(format!("encoding an ACME record: {e}")))
}

fn parse<T: DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

async fn one<T: DeserializeOwned>(
    c: &impl GenericClient,
    what: &str,
    sql: &str,
    key: &str,
) -> Result<Option<T>> {
    match row(c, sql, &[&key]).await? {
        Some(r) => Ok(Some(parse(what, &col::<String>(&r, 0)?)?)),
        None => Ok(None),
    }
}

/// Whether a database error is a unique-key violation (SQLSTATE 23505).
fn is_unique_violation(e: &Error) -> bool {
    matches!(e, Error::Conflict(_))
}

async fn put_eab_key(i: &Inner, key: EabKey, audit: AuditEvent) -> Result<()> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    let n = exec(
        &tx,
        "INSERT INTO acme_eab (kid, record) VALUES ($1, $2) ON CONFLICT (kid) DO NOTHING",
        &[&key.kid, &json(&key)?],
    )
    .await?;
    if n == 0 {
        return Err(Error::Conflict(format!("EAB key {} exists", key.kid)));
    }
    commit_with(tx, &i.node, &[&audit]).await?;
    Ok(())
}

async fn create_account(
    i: &Inner,
    account: AcmeAccount,
    eab_kid: Option<String>,
    audit: AuditEvent,
) -> Result<()> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    if let Some(kid) = &eab_kid {
        let key: Option<EabKey> = one(
            &tx,
            "EAB key",
            "SELECT record FROM acme_eab WHERE kid = $1 FOR UPDATE",
            kid,
        )
        .await?;
        let mut key = match key {
            Some(k) if k.endpoint == account.endpoint => k,
            _ => return Err(Error::NotFound(format!("no EAB key {kid}"))),
        };
        if key.account.is_some() {
            return Err(Error::Conflict(format!(
                "EAB key {kid} is bound to an account already"
            )));
        }
        key.account = Some(account.id.clone());
        key.used_at = Some(account.created_at);
        exec(
            &tx,
            "UPDATE acme_eab SET record = $2 WHERE kid = $1",
            &[kid, &json(&key)?],
        )
        .await?;
    }
    let n = exec(
        &tx,
        "INSERT INTO acme_accounts (id, thumbprint, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        &[&account.id, &account.thumbprint, &json(&account)?],
    )
    .await?;
    if n == 0 {
        return Err(Error::Conflict("an account with this key exists".into()));
    }
    commit_with(tx, &i.node, &[&audit]).await?;
    Ok(())
}

async fn update_account(i: &Inner, account: AcmeAccount, audit: AuditEvent) -> Result<()> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    let old: Option<AcmeAccount> = one(
        &tx,
        "ACME account",
        "SELECT record FROM acme_accounts WHERE id = $1 FOR UPDATE",
        &account.id,
    )
    .await?;
    if old.is_none() {
        return Err(Error::NotFound(format!("no account {}", account.id)));
    }
    let updated = exec(
        &tx,
        "UPDATE acme_accounts SET thumbprint = $2, record = $3 WHERE id = $1",
        &[&account.id, &account.thumbprint, &json(&account)?],
    )
    .await;
    match updated {
        Err(e) if is_unique_violation(&e) => {
            return Err(Error::Conflict("another account has this key".into()));
        }
        other => {
            other?;
        }
    }
    commit_with(tx, &i.node, &[&audit]).await?;
    Ok(())
}

async fn create_order(
    i: &Inner,
    order: AcmeOrder,
    authzs: Vec<AcmeAuthz>,
    audit: AuditEvent,
) -> Result<()> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    let n = exec(
        &tx,
        "INSERT INTO acme_orders (id, account, created_at, record) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO NOTHING",
        &[&order.id, &order.account, &order.created_at, &json(&order)?],
    )
    .await?;
    if n == 0 {
        return Err(Error::Conflict(format!("order {} exists", order.id)));
    }
    for a in &authzs {
        let n = exec(
            &tx,
            "INSERT INTO acme_authzs (id, record) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            &[&a.id, &json(a)?],
        )
        .await?;
        if n == 0 {
            return Err(Error::Conflict(format!("authorization {} exists", a.id)));
        }
    }
    commit_with(tx, &i.node, &[&audit]).await?;
    Ok(())
}

async fn update_order(
    i: &Inner,
    order: AcmeOrder,
    expected: OrderStatus,
    audit: Option<AuditEvent>,
) -> Result<()> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    let old: Option<AcmeOrder> = one(
        &tx,
        "ACME order",
        "SELECT record FROM acme_orders WHERE id = $1 FOR UPDATE",
        &order.id,
    )
    .await?;
    match old {
        None => return Err(Error::NotFound(format!("no order {}", order.id))),
        Some(o) if o.status != expected => {
            return Err(Error::Conflict(format!(
                "order {} is {:?}, not {expected:?}",
                order.id, o.status
            )));
        }
        Some(_) => {}
    }
    exec(
        &tx,
        "UPDATE acme_orders SET record = $2 WHERE id = $1",
        &[&order.id, &json(&order)?],
    )
    .await?;
    let audits: Vec<&AuditEvent> = audit.iter().collect();
    commit_with(tx, &i.node, &audits).await?;
    Ok(())
}

async fn update_authz(
    i: &Inner,
    authz: AcmeAuthz,
    expected: AcmeAuthz,
    audit: Option<AuditEvent>,
) -> Result<()> {
    let mut c = i.client().await?;
    let tx = c.transaction().await.map_err(db)?;
    let old: Option<AcmeAuthz> = one(
        &tx,
        "ACME authorization",
        "SELECT record FROM acme_authzs WHERE id = $1 FOR UPDATE",
        &authz.id,
    )
    .await?;
    match old {
        None => return Err(Error::NotFound(format!("no authorization {}", authz.id))),
        Some(o) if !same_state(&o, &expected) => {
            return Err(Error::Conflict(format!(
                "authorization {} changed",
                authz.id
            )));
        }
        Some(_) => {}
    }
    exec(
        &tx,
        "UPDATE acme_authzs SET record = $2 WHERE id = $1",
        &[&authz.id, &json(&authz)?],
    )
    .await?;
    let audits: Vec<&AuditEvent> = audit.iter().collect();
    commit_with(tx, &i.node, &audits).await?;
    Ok(())
}

async fn read_one<T: DeserializeOwned + Send + 'static>(
    i: &Inner,
    what: &'static str,
    sql: &'static str,
    key: String,
) -> Result<Option<T>> {
    let c = i.client().await?;
    one(&c, what, sql, &key).await
}

async fn read_all<T: DeserializeOwned>(
    i: &Inner,
    what: &str,
    sql: &str,
    key: Option<String>,
) -> Result<Vec<T>> {
    let c = i.client().await?;
    let found = match &key {
        Some(k) => rows(&c, sql, &[k]).await?,
        None => rows(&c, sql, &[]).await?,
    };
    found
        .iter()
        .map(|r| parse(what, &col::<String>(r, 0)?))
        .collect()
}

impl AcmeStore for PgStore {
    fn put_eab_key(&self, key: &EabKey, audit: &AuditEvent) -> Result<()> {
        let (key, audit) = (key.clone(), audit.clone());
        self.run(|i| async move { put_eab_key(&i, key, audit).await })
    }

    fn eab_key(&self, kid: &str) -> Result<Option<EabKey>> {
        let kid = kid.to_string();
        self.run(|i| async move {
            read_one(
                &i,
                "EAB key",
                "SELECT record FROM acme_eab WHERE kid = $1",
                kid,
            )
            .await
        })
    }

    fn list_eab_keys(&self) -> Result<Vec<EabKey>> {
        self.run(|i| async move {
            read_all(
                &i,
                "EAB key",
                "SELECT record FROM acme_eab ORDER BY kid",
                None,
            )
            .await
        })
    }

    fn create_account(
        &self,
        account: &AcmeAccount,
        eab_kid: Option<&str>,
        audit: &AuditEvent,
    ) -> Result<()> {
        let (account, eab_kid, audit) =
            (account.clone(), eab_kid.map(str::to_string), audit.clone());
        self.run(|i| async move { create_account(&i, account, eab_kid, audit).await })
    }

    fn account(&self, id: &str) -> Result<Option<AcmeAccount>> {
        let id = id.to_string();
        self.run(|i| async move {
            read_one(
                &i,
                "ACME account",
                "SELECT record FROM acme_accounts WHERE id = $1",
                id,
            )
            .await
        })
    }

    fn account_by_thumbprint(&self, thumbprint: &str) -> Result<Option<AcmeAccount>> {
        let t = thumbprint.to_string();
        self.run(|i| async move {
            read_one(
                &i,
                "ACME account",
                "SELECT record FROM acme_accounts WHERE thumbprint = $1",
                t,
            )
            .await
        })
    }

    fn update_account(&self, account: &AcmeAccount, audit: &AuditEvent) -> Result<()> {
        let (account, audit) = (account.clone(), audit.clone());
        self.run(|i| async move { update_account(&i, account, audit).await })
    }

    fn create_order(
        &self,
        order: &AcmeOrder,
        authzs: &[AcmeAuthz],
        audit: &AuditEvent,
    ) -> Result<()> {
        let (order, authzs, audit) = (order.clone(), authzs.to_vec(), audit.clone());
        self.run(|i| async move { create_order(&i, order, authzs, audit).await })
    }

    fn order(&self, id: &str) -> Result<Option<AcmeOrder>> {
        let id = id.to_string();
        self.run(|i| async move {
            read_one(
                &i,
                "ACME order",
                "SELECT record FROM acme_orders WHERE id = $1",
                id,
            )
            .await
        })
    }

    fn orders_of(&self, account: &str) -> Result<Vec<AcmeOrder>> {
        let account = account.to_string();
        self.run(|i| async move {
            read_all(
                &i,
                "ACME order",
                "SELECT record FROM acme_orders WHERE account = $1 ORDER BY created_at, id",
                Some(account),
            )
            .await
        })
    }

    fn update_order(
        &self,
        order: &AcmeOrder,
        expected: OrderStatus,
        audit: Option<&AuditEvent>,
    ) -> Result<()> {
        let (order, audit) = (order.clone(), audit.cloned());
        self.run(|i| async move { update_order(&i, order, expected, audit).await })
    }

    fn authz(&self, id: &str) -> Result<Option<AcmeAuthz>> {
        let id = id.to_string();
        self.run(|i| async move {
            read_one(
                &i,
                "ACME authorization",
                "SELECT record FROM acme_authzs WHERE id = $1",
                id,
            )
            .await
        })
    }

    fn update_authz(
        &self,
        authz: &AcmeAuthz,
        expected: &AcmeAuthz,
        audit: Option<&AuditEvent>,
    ) -> Result<()> {
        let (authz, expected, audit) = (authz.clone(), expected.clone(), audit.cloned());
        self.run(|i| async move { update_authz(&i, authz, expected, audit).await })
    }
}
