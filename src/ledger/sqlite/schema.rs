//! SQLite migrations: versioned SQL files applied in order, each once, recorded in
//! `schema_migrations`. An immediate transaction around each takes the file's write lock,
//! so two processes opening the file at once apply each migration once.

use rusqlite::{Connection, TransactionBehavior};

use super::error;
use crate::ledger::LedgerError;

/// Every migration, in order: (name, SQL). Never edit one that shipped; add the next.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_ledger", include_str!("migrations/0001_ledger.sql")),
    (
        "0002_responses",
        include_str!("migrations/0002_responses.sql"),
    ),
];

/// Applies the migrations this file lacks; returns their names.
pub fn migrate(conn: &mut Connection, name: &str) -> Result<Vec<String>, LedgerError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations \
         (version TEXT PRIMARY KEY, applied_at_ms INTEGER NOT NULL)",
    )
    .map_err(|e| error(name, "schema_migrations", e))?;
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| error(name, "migration lock", e))?;
        let done: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [version],
                |row| row.get(0),
            )
            .map_err(|e| error(name, "reading schema_migrations", e))?;
        if done {
            continue;
        }
        tx.execute_batch(sql)
            .map_err(|e| error(name, &format!("migration {version}"), e))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at_ms) \
             VALUES (?1, CAST(unixepoch('subsec') * 1000 AS INTEGER))",
            [version],
        )
        .map_err(|e| error(name, "recording a migration", e))?;
        tx.commit()
            .map_err(|e| error(name, &format!("committing migration {version}"), e))?;
        applied.push(version.to_string());
    }
    Ok(applied)
}
