//! Versioned, checksummed schema migrations, embedded in the binary.
//!
//! `schema_migrations` holds one row per applied migration: its version, name and the
//! SHA-256 of its SQL. [`apply`] runs the missing ones in order, all in one transaction
//! under a transaction-scoped advisory lock, so that two nodes started at once do not
//! both migrate (the second waits, then finds nothing to do). [`check`] is what every
//! open runs: it refuses a database with a migration this code does not know (a newer
//! privca migrated it), one whose recorded checksum differs from the embedded SQL (the
//! schema was edited), and one that lacks migrations (run `privca store migrate`).
//! Migrations are forward-only: a new version adds a file and a row in [`MIGRATIONS`],
//! and never edits an earlier one.

use deadpool_postgres::GenericClient;
use sha2::{Digest, Sha256};

use super::db;
use crate::{Error, Result};

/// One embedded migration.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Its version: 1, 2, ... without gaps.
    pub version: i32,
    /// A short name.
    pub name: &'static str,
    /// The SQL it runs.
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of its SQL, hex: what `schema_migrations.checksum` must hold.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

/// Every migration this code knows, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "api_tokens",
        sql: include_str!("migrations/0002_api_tokens.sql"),
    },
    Migration {
        version: 3,
        name: "service_state",
        sql: include_str!("migrations/0003_service_state.sql"),
    },
    Migration {
        version: 4,
        name: "acme",
        sql: include_str!("migrations/0004_acme.sql"),
    },
    Migration {
        version: 5,
        name: "crl_lease",
        sql: include_str!("migrations/0005_crl_lease.sql"),
    },
];

/// The newest schema version this code knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Key of the advisory lock `apply` holds (an arbitrary constant: "privca" in ASCII).
const MIGRATE_LOCK: i64 = 0x7072_6976_6361;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at bigint NOT NULL
)";

/// What the database records as applied: (version, name, checksum), in order; `None`
/// when it has no `schema_migrations` table at all.
async fn applied(client: &impl GenericClient) -> Result<Option<Vec<(i32, String, String)>>> {
    let exists = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(db)?;
    if !exists.get::<_, bool>(0) {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(db)?;
    Ok(Some(
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect(),
    ))
}

/// Compares what was applied with what this code knows; returns the migrations still
/// to apply. Refuses unknown versions and checksum mismatches.
fn pending(applied: &[(i32, String, String)]) -> Result<Vec<Migration>> {
    let latest = latest_version();
    for (version, name, checksum) in applied {
        let Some(known) = MIGRATIONS.iter().find(|m| m.version == *version) else {
            return Err(Error::UnsupportedSchema {
                found: u64::try_from(*version).unwrap_or(0),
                supported: u64::try_from(latest).unwrap_or(0),
            });
        };
        if known.checksum() != *checksum {
            return Err(Error::Schema(format!(
                "migration {version} ({name}) in the database has checksum {checksum}, but this \
                 privca's migration {version} has {}: the schema was changed outside privca or \
                 by a different build; restore it or use the matching privca",
                known.checksum()
            )));
        }
    }
    Ok(MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|(v, ..)| *v == m.version))
        .copied()
        .collect())
}

/// Applies every missing migration; returns the versions applied (empty when the schema
/// was current).
pub(super) async fn apply(client: &mut deadpool_postgres::Object) -> Result<Vec<i32>> {
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await
        .map_err(db)?;
    tx.batch_execute(CREATE_TABLE).await.map_err(db)?;
    let todo = pending(&applied(&tx).await?.unwrap_or_default())?;
    let now = crate::checks::now();
    for m in &todo {
        tx.batch_execute(m.sql).await.map_err(|e| {
            Error::Schema(format!(
                "migration {} ({}) failed: {}",
                m.version,
                m.name,
                db(e)
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) \
             VALUES ($1, $2, $3, $4)",
            &[&m.version, &m.name, &m.checksum(), &now],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(todo.iter().map(|m| m.version).collect())
}

/// Checks at open that the database holds exactly the schema this code knows.
pub(super) async fn check(client: &impl GenericClient) -> Result<()> {
    let Some(applied) = applied(client).await? else {
        return Err(Error::Schema(
            "the database has no privca schema; run `privca store migrate` first".into(),
        ));
    };
    let todo = pending(&applied)?;
    if let Some(first) = todo.first() {
        return Err(Error::Schema(format!(
            "the database schema lacks migration {} ({}) and {} more; run `privca store migrate`",
            first.version,
            first.name,
            todo.len() - 1
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_contiguous_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i32::try_from(i).unwrap_or(-1) + 1);
        }
    }

    #[test]
    fn unknown_and_edited_migrations_are_refused() {
        let m = MIGRATIONS[0];
        let all: Vec<_> = MIGRATIONS
            .iter()
            .map(|m| (m.version, m.name.to_string(), m.checksum()))
            .collect();
        assert!(pending(&all).unwrap().is_empty());
        assert_eq!(pending(&all[..1]).unwrap().len(), MIGRATIONS.len() - 1);
        assert_eq!(pending(&[]).unwrap().len(), MIGRATIONS.len());
        let newer = vec![(latest_version() + 1, "future".to_string(), "00".to_string())];
        assert!(matches!(
            pending(&newer),
            Err(Error::UnsupportedSchema { .. })
        ));
        let edited = vec![(m.version, m.name.to_string(), "ff".repeat(32))];
        assert!(matches!(pending(&edited), Err(Error::Schema(_))));
    }
}
