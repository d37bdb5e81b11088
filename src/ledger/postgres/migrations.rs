//! PostgreSQL migrations: versioned SQL files applied in order, each once, recorded in
//! `schema_migrations`, all under a session advisory lock, so that many instances starting
//! at once (or `cheapai-gateway migrate` beside them) apply each migration exactly once:
//! the first takes the lock and applies, the others wait and find nothing left to do.

use super::connect::{error, Lease};
use crate::ledger::LedgerError;

/// Every migration, in order: (name, SQL). Never edit one that shipped; add the next.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_ledger", include_str!("migrations/0001_ledger.sql")),
    (
        "0002_responses",
        include_str!("migrations/0002_responses.sql"),
    ),
];

/// The advisory lock key of migrations ("ledger" in ASCII, then 1).
const MIGRATION_LOCK: i64 = 0x6c65_6467_6572_0001;

/// Applies the migrations the database lacks; returns their names. On error the lease is
/// dropped, which closes its connection and so releases the lock.
pub async fn apply(mut lease: Lease, name: &str) -> Result<Vec<String>, LedgerError> {
    let client = lease.client()?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| error(name, "migration lock", e))?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (\
             version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(|e| error(name, "schema_migrations", e))?;
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        let done = client
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await
            .map_err(|e| error(name, "reading schema_migrations", e))?
            .is_some();
        if done {
            continue;
        }
        let tx = client
            .transaction()
            .await
            .map_err(|e| error(name, "migration", e))?;
        tx.batch_execute(sql)
            .await
            .map_err(|e| error(name, &format!("migration {version}"), e))?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(|e| error(name, "recording a migration", e))?;
        tx.commit()
            .await
            .map_err(|e| error(name, &format!("committing migration {version}"), e))?;
        applied.push(version.to_string());
    }
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| error(name, "migration unlock", e))?;
    lease.release();
    Ok(applied)
}
