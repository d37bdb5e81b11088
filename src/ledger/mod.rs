//! The usage ledger's store: where every usage record ends up, exactly once.
//!
//! Records reach it from the spool's shipper, which delivers at least once (re-sending a
//! batch after a failure or a crash); the store makes that exactly once: a record whose
//! request id is stored already is not stored again, nor added to the totals again.
//!
//! Two stores keep the same contract ([`Ledger`]):
//! - [`sqlite`]: an embedded file for a single instance and the offline default;
//! - [`postgres`]: for many instances and a billion records a month: records in daily
//!   partitions with their strings in dictionary tables (~180 bytes a record, indexes
//!   included), hourly rollups per key and model for totals, retention by dropping whole
//!   partitions.
//!
//! Callers may live on any tokio runtime: SQLite work runs on the caller's blocking pool,
//! PostgreSQL work on a runtime the store owns, and every call has a deadline.

mod cursor;
mod error;
mod import;
pub mod postgres;
mod request_id;
pub mod responses;
mod row;
pub mod sqlite;
mod totals;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use error::LedgerError;
pub use import::{import_jsonl, ImportReport};
pub use responses::{ResponseStore, StoredResponse};
pub use totals::{Sums, Totals};

use crate::secret::Secret;
use crate::usage::UsageRecord;

/// Where the ledger lives.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Sqlite {
        path: PathBuf,
    },
    /// A `postgres://` URL or a `key=value` connection string; a secret, since it may hold
    /// a password.
    Postgres {
        url: Secret,
    },
}

/// How a store behaves beyond where it lives.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// Records older than this many days are dropped by [`Ledger::enforce_retention`] and
    /// not stored again by [`Ledger::insert`].
    pub retention_days: u32,
    /// The deadline of every call (connecting included).
    pub call_timeout: Duration,
    /// PostgreSQL connections at most (reads and writes share them).
    pub max_connections: usize,
    /// How PostgreSQL batches are sent (COPY, measured faster, unless told otherwise).
    pub ingest: Ingest,
}

impl LedgerOptions {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    pub fn new(retention_days: u32) -> Self {
        Self {
            retention_days,
            call_timeout: Self::DEFAULT_TIMEOUT,
            max_connections: 4,
            ingest: Ingest::Copy,
        }
    }
}

/// How a batch reaches PostgreSQL (see `postgres::ingest`; the bench measures both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingest {
    /// `COPY … FROM STDIN BINARY` into a temporary table, then one `INSERT … SELECT`.
    Copy,
    /// One multi-row `INSERT … VALUES`.
    Values,
}

/// A page of records to list, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordQuery {
    /// One key's records, or every key's (`None`, for operators).
    pub key_id: Option<String>,
    pub model: Option<String>,
    /// Unix milliseconds, inclusive.
    pub from_ms: u64,
    /// Unix milliseconds, exclusive.
    pub to_ms: u64,
    /// 1..=[`MAX_PAGE`].
    pub limit: usize,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

/// Most records one page holds.
pub const MAX_PAGE: usize = 1000;

/// One page of records, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordPage {
    pub records: Vec<UsageRecord>,
    /// The cursor of the next page (`None`: this is the last).
    pub next: Option<String>,
}

/// Totals to read: one key's or every key's, over the whole hours `[from_ms, to_ms)` touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalsQuery {
    pub key_id: Option<String>,
    pub from_ms: u64,
    pub to_ms: u64,
}

/// What a retention pass dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Records older than this (Unix ms) are gone.
    pub cutoff_ms: u64,
    /// Whole partitions dropped (PostgreSQL).
    pub partitions_dropped: Vec<String>,
    /// Rows deleted one by one (SQLite; PostgreSQL drops partitions instead).
    pub rows_deleted: u64,
}

/// The usage records, and the responses the gateway stores (see [`responses`]).
#[async_trait]
pub trait Ledger: ResponseStore + Send + Sync {
    /// Inserts the records whose request id is not stored yet, with their rollups,
    /// atomically (a call that failed inserted nothing, so the caller re-sends the whole
    /// batch; one that ran out of its deadline may still have committed, which the re-send
    /// then finds stored). Returns how many were new. A batch sent twice, or by two instances at once, inserts
    /// nothing twice and adds nothing twice to the rollups. Records older than the retention
    /// are not stored (retention would drop them) and do not count as new.
    async fn insert(&self, batch: &[UsageRecord]) -> Result<usize, LedgerError>;
    /// One page of records, newest first (see [`RecordQuery`]).
    async fn records(&self, q: &RecordQuery) -> Result<RecordPage, LedgerError>;
    /// Totals from the rollups (never by scanning records).
    async fn totals(&self, q: &TotalsQuery) -> Result<Totals, LedgerError>;
    /// Drops what is older than the retention.
    async fn enforce_retention(&self, now_ms: u64) -> Result<RetentionReport, LedgerError>;
    /// A cheap round trip, for readiness and for the shipper to know the store is back.
    async fn ping(&self) -> Result<(), LedgerError>;
    /// "sqlite" or "postgres", for logs and metric labels.
    fn kind(&self) -> &'static str;
}

/// Opens the store with default options (see [`open_with`]).
pub async fn open(
    config: &StoreConfig,
    retention_days: u32,
) -> Result<Arc<dyn Ledger>, LedgerError> {
    open_with(config, &LedgerOptions::new(retention_days)).await
}

/// Opens the store: creates the SQLite file (and its directory), or connects to PostgreSQL;
/// applies pending migrations (under an advisory lock on PostgreSQL, so instances starting
/// together apply each once).
pub async fn open_with(
    config: &StoreConfig,
    options: &LedgerOptions,
) -> Result<Arc<dyn Ledger>, LedgerError> {
    Ok(match config {
        StoreConfig::Sqlite { path } => Arc::new(sqlite::SqliteLedger::open(path, options).await?),
        StoreConfig::Postgres { url } => Arc::new(postgres::PgLedger::open(url, options).await?),
    })
}

/// Applies pending migrations and returns the names of those applied (for
/// `cheapai-gateway migrate`).
pub async fn migrate(config: &StoreConfig) -> Result<Vec<String>, LedgerError> {
    let options = LedgerOptions::new(u32::MAX);
    match config {
        StoreConfig::Sqlite { path } => sqlite::migrate(path, &options).await,
        StoreConfig::Postgres { url } => postgres::migrate(url, &options).await,
    }
}

/// Checks a query's limit and cursor the same way for both stores.
fn check_page(q: &RecordQuery) -> Result<Option<cursor::Cursor>, LedgerError> {
    if !(1..=MAX_PAGE).contains(&q.limit) {
        return Err(LedgerError::BadInput(format!(
            "limit {} is not within 1..={MAX_PAGE}",
            q.limit
        )));
    }
    q.after.as_deref().map(cursor::Cursor::decode).transpose()
}

/// Cuts the one-extra row off and makes the next page's cursor from the last row kept.
fn page(mut rows: Vec<row::StoredRow>, limit: usize) -> RecordPage {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = more.then(|| rows.last()).flatten().map(|last| {
        cursor::Cursor {
            timestamp_ms: last.timestamp_ms,
            id: last.id_bytes,
        }
        .encode()
    });
    RecordPage {
        records: rows.into_iter().map(row::StoredRow::into_record).collect(),
        next,
    }
}

/// A time as the stores hold it (`u64::MAX`, "no upper bound", becomes `i64::MAX`).
fn stored_ms(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// A time the stores hold, back as Unix ms (a negative one, which this code never writes,
/// reads as 0).
fn unix_ms_of(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

/// The start (Unix ms) of the oldest UTC day that `retention_days` keeps at `now_ms`:
/// records before it are dropped. Whole days, so that PostgreSQL drops whole daily
/// partitions and SQLite deletes exactly the same records.
fn retention_cutoff(now_ms: u64, retention_days: u32) -> i64 {
    let today = stored_ms(now_ms).div_euclid(totals::DAY_MS);
    today
        .saturating_sub(i64::from(retention_days))
        .saturating_mul(totals::DAY_MS)
}

/// [`retention_cutoff`] at the system clock's now.
fn retention_cutoff_now(retention_days: u32) -> i64 {
    retention_cutoff(crate::clock::unix_ms(), retention_days)
}

/// The dictionary tables: each repeated string of a record is stored once, as a small id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Dict {
    Key,
    Model,
    Provider,
    Endpoint,
    Error,
}

impl Dict {
    fn table(self) -> &'static str {
        match self {
            Dict::Key => "ledger_keys",
            Dict::Model => "ledger_models",
            Dict::Provider => "ledger_providers",
            Dict::Endpoint => "ledger_endpoints",
            Dict::Error => "ledger_errors",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_whole_days() {
        let day = totals::DAY_MS as u64;
        assert_eq!(retention_cutoff(10 * day + 5, 3), 7 * totals::DAY_MS);
        assert_eq!(retention_cutoff(10 * day, 3), 7 * totals::DAY_MS);
        assert_eq!(retention_cutoff(day, 30), -29 * totals::DAY_MS);
        assert_eq!(
            retention_cutoff(day, u32::MAX),
            (1 - i64::from(u32::MAX)) * totals::DAY_MS
        );
    }

    #[test]
    fn times_go_in_and_out_of_the_stores_without_overflowing() {
        for t in [0, 1, 1_760_000_000_000, i64::MAX as u64] {
            assert_eq!(unix_ms_of(stored_ms(t)), t);
        }
        assert_eq!(stored_ms(u64::MAX), i64::MAX);
        assert_eq!(unix_ms_of(-1), 0);
        assert_eq!(unix_ms_of(i64::MIN), 0);
    }
}
