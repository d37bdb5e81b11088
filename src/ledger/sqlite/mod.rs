//! The ledger in one SQLite file (single instance, the offline default).
//!
//! Two connections: the writer and a reader, each behind a mutex. The file is in WAL mode,
//! so a page read never waits for a batch being written (only for another read).
//! Commits are `synchronous=NORMAL` (the WAL synced at checkpoints, not at every commit),
//! except a batch of records, whose commit syncs the WAL (`write.rs` says why). Work runs on
//! the caller's blocking pool (`spawn_blocking`), so any runtime may call, and waits at most
//! the call deadline.

mod read;
mod responses;
mod schema;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};

use super::{
    Dict, Ledger, LedgerError, LedgerOptions, RecordPage, RecordQuery, RetentionReport, Totals,
    TotalsQuery,
};
use crate::usage::UsageRecord;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 48;

/// The writer connection and the dictionary ids it has seen committed.
struct Writer {
    conn: Connection,
    ids: HashMap<(Dict, String), i64>,
}

pub struct SqliteLedger {
    writer: Arc<Mutex<Writer>>,
    reader: Arc<Mutex<Connection>>,
    /// How errors name the store: the file's path.
    name: Arc<str>,
    retention_days: u32,
    timeout: Duration,
}

impl SqliteLedger {
    /// Opens (creating it and its directory if missing) the file at `path` and applies
    /// pending migrations.
    pub async fn open(path: &Path, options: &LedgerOptions) -> Result<Self, LedgerError> {
        let timeout = options.call_timeout;
        let name: Arc<str> = format!("sqlite {}", path.display()).into();
        let owned = path.to_path_buf();
        let what = name.clone();
        let (writer, reader) = blocking(&name, "open", timeout, move || {
            let mut writer = connect(&owned, &what, timeout)?;
            schema::migrate(&mut writer, &what)?;
            let reader = connect(&owned, &what, timeout)?;
            Ok((writer, reader))
        })
        .await?;
        Ok(Self {
            writer: Arc::new(Mutex::new(Writer {
                conn: writer,
                ids: HashMap::new(),
            })),
            reader: Arc::new(Mutex::new(reader)),
            name,
            retention_days: options.retention_days,
            timeout,
        })
    }

    /// Runs `f` on the writer connection, on the blocking pool, within the deadline.
    async fn with_writer<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Writer, &str) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let (writer, name) = (self.writer.clone(), self.name.clone());
        blocking(&self.name, what, self.timeout, move || {
            let mut w = writer
                .lock()
                .map_err(|_| LedgerError::Store(format!("{name}: writer lock poisoned")))?;
            f(&mut w, &name)
        })
        .await
    }

    /// Runs `f` on the reader connection, on the blocking pool, within the deadline.
    async fn with_reader<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Connection, &str) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let (reader, name) = (self.reader.clone(), self.name.clone());
        blocking(&self.name, what, self.timeout, move || {
            let conn = reader
                .lock()
                .map_err(|_| LedgerError::Store(format!("{name}: reader lock poisoned")))?;
            f(&conn, &name)
        })
        .await
    }
}

#[async_trait]
impl Ledger for SqliteLedger {
    async fn insert(&self, batch: &[UsageRecord]) -> Result<usize, LedgerError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let batch = batch.to_vec();
        let cutoff = super::retention_cutoff_now(self.retention_days);
        self.with_writer("insert", move |w, name| {
            write::insert(w, name, &batch, cutoff)
        })
        .await
    }

    async fn records(&self, q: &RecordQuery) -> Result<RecordPage, LedgerError> {
        let after = super::check_page(q)?;
        let q = q.clone();
        self.with_reader("records", move |conn, name| {
            read::records(conn, name, &q, after)
        })
        .await
    }

    async fn totals(&self, q: &TotalsQuery) -> Result<Totals, LedgerError> {
        let q = q.clone();
        self.with_reader("totals", move |conn, name| read::totals(conn, name, &q))
            .await
    }

    async fn enforce_retention(&self, now_ms: u64) -> Result<RetentionReport, LedgerError> {
        let cutoff = super::retention_cutoff(now_ms, self.retention_days);
        // chunk by chunk, each a call of its own: a long purge never holds the writer for
        // longer than one chunk, nor runs into the call deadline
        let mut report = RetentionReport {
            cutoff_ms: u64::try_from(cutoff).unwrap_or(0),
            ..RetentionReport::default()
        };
        loop {
            let (deleted, done) = self
                .with_writer("retention", move |w, name| {
                    write::delete_chunk(&w.conn, name, cutoff)
                })
                .await?;
            report.rows_deleted += deleted;
            if done {
                return Ok(report);
            }
        }
    }

    async fn ping(&self) -> Result<(), LedgerError> {
        self.with_reader("ping", |conn, name| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(|e| error(name, "ping", e))
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

/// Applies pending migrations to the file at `path` (creating it) and names them.
pub async fn migrate(path: &Path, options: &LedgerOptions) -> Result<Vec<String>, LedgerError> {
    let name: Arc<str> = format!("sqlite {}", path.display()).into();
    let (owned, what, timeout) = (path.to_path_buf(), name.clone(), options.call_timeout);
    blocking(&name, "migrate", timeout, move || {
        let mut conn = connect(&owned, &what, timeout)?;
        schema::migrate(&mut conn, &what)
    })
    .await
}

/// Opens a connection in WAL mode, creating the file and its directory when missing.
fn connect(path: &PathBuf, name: &str, timeout: Duration) -> Result<Connection, LedgerError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| LedgerError::Store(format!("{name}: creating {}: {e}", dir.display())))?;
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| error(name, "open", e))?;
    // another process writing (a second gateway, an import) is waited for, within the deadline
    conn.busy_timeout(timeout)
        .map_err(|e| error(name, "busy_timeout", e))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
        .map_err(|e| error(name, "pragmas", e))?;
    // the writer's batch uses a dozen statements and retention, stored responses and the
    // reads a dozen more: room for all, so the 64-record INSERT is never prepared again
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Runs blocking work on the caller's runtime's blocking pool, waiting at most `timeout`.
async fn blocking<T: Send + 'static>(
    name: &str,
    what: &str,
    timeout: Duration,
    f: impl FnOnce() -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, LedgerError> {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(LedgerError::Store(format!("{name} {what}: {e}"))),
        Err(_) => Err(LedgerError::Unavailable(format!(
            "{name} {what}: no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

/// An SQLite error in words: a locked or busy file is `Unavailable` (retry later).
fn error(name: &str, what: &str, e: rusqlite::Error) -> LedgerError {
    let text = format!("{name} {what}: {e}");
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            LedgerError::Unavailable(text)
        }
        _ => LedgerError::Store(text),
    }
}
