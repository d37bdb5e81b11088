//! The ledger in PostgreSQL (many instances, ~1 billion records a month).
//!
//! Everything talks to the server from a runtime this store owns ([`runtime`]): callers on
//! any runtime hand work over and await it, within the call deadline. Connections come from
//! a small pool that replaces closed ones, so the store reconnects by itself when PostgreSQL
//! comes back.
//!
//! The schema (`migrations/`) and why it is shaped so: daily partitions ([`partitions`]),
//! dictionary ids ([`dictionary`]), one statement inserting the new records and their
//! rollups ([`ingest`]), keyset paging and totals from rollups ([`read`]).
//!
//! Measured by `examples/ledger_bench/` (10 M records over 1,000 keys and 30 days, one key
//! with 100k, PostgreSQL 15 with fsync on, 2 shared and busy cores; docs/benchmarks.md):
//! ingest ~54k records/s through COPY with 2 writers, ~36k with one (a 1 M run; INSERT: ~21k/s
//! against COPY's ~35k/s on the same 500k); 178 bytes a record for the partitions with their
//! indexes and the dictionaries (159 once the index is rebuilt: appends at each key's end
//! split its leaf pages half full), the hourly rollups on top (105 in that seed, ~2.8 records
//! per key, model and hour); the 100k key's first and deep pages p99 5 and 1.4 ms, its
//! month's totals p99 7 ms, and over HTTP through the gateway every read p99 under 10 ms.

mod connect;
mod dictionary;
mod ingest;
mod migrations;
mod partitions;
mod read;
mod responses;
mod runtime;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;

use self::connect::Lease;
use self::dictionary::Dictionary;
use self::partitions::{day_of, Partitions, DAYS_AHEAD};
use self::runtime::StoreRuntime;
use super::row::Row;
use super::{
    Ingest, Ledger, LedgerError, LedgerOptions, RecordPage, RecordQuery, RetentionReport, Totals,
    TotalsQuery,
};
use crate::secret::Secret;
use crate::usage::UsageRecord;

/// What the store's tasks share.
struct Shared {
    pool: Pool,
    /// How errors name the database (no password).
    name: String,
    dictionary: Dictionary,
    partitions: Partitions,
    retention_days: u32,
    ingest: Ingest,
}

pub struct PgLedger {
    shared: Arc<Shared>,
    timeout: Duration,
    // last: dropping it stops the thread that drives the connections
    runtime: StoreRuntime,
}

impl PgLedger {
    /// Connects, applies pending migrations and makes the partitions of today and the next
    /// days.
    pub async fn open(url: &Secret, options: &LedgerOptions) -> Result<Self, LedgerError> {
        let timeout = options.call_timeout;
        let config = connect::parse(url, timeout)?;
        let name = connect::redacted(&config);
        let runtime = StoreRuntime::start()?;
        let pool = connect::pool(config, options.max_connections)?;
        let ledger = Self {
            shared: Arc::new(Shared {
                pool,
                name,
                dictionary: Dictionary::new(),
                partitions: Partitions::new(),
                retention_days: options.retention_days,
                ingest: options.ingest,
            }),
            timeout,
            runtime,
        };
        ledger
            .call("open", |s| async move {
                let lease = Lease::take(&s.pool, &s.name).await?;
                let applied = migrations::apply(lease, &s.name).await?;
                if !applied.is_empty() {
                    log::info!("{}: applied migrations {}", s.name, applied.join(", "));
                }
                let mut lease = Lease::take(&s.pool, &s.name).await?;
                s.partitions.load(&mut lease, &s.name).await?;
                let today = day_of(now_ms());
                let ahead: BTreeSet<i64> = (today..=today + DAYS_AHEAD).collect();
                s.partitions.ensure(&mut lease, &s.name, &ahead).await?;
                lease.release();
                Ok(())
            })
            .await?;
        Ok(ledger)
    }

    /// Runs `work` on the store's runtime within the call deadline.
    async fn call<T, F>(
        &self,
        what: &str,
        work: impl FnOnce(Arc<Shared>) -> F,
    ) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, LedgerError>> + Send + 'static,
    {
        self.runtime
            .run(what, self.timeout, work(self.shared.clone()))
            .await
    }
}

#[async_trait]
impl Ledger for PgLedger {
    async fn insert(&self, batch: &[UsageRecord]) -> Result<usize, LedgerError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let batch = batch.to_vec();
        self.call("insert", |s| async move { insert(&s, &batch).await })
            .await
    }

    async fn records(&self, q: &RecordQuery) -> Result<RecordPage, LedgerError> {
        let after = super::check_page(q)?;
        let q = q.clone();
        self.call("records", |s| async move {
            let mut lease = Lease::take(&s.pool, &s.name).await?;
            let page = read::records(&mut lease, &s.name, &q, after, now_ms()).await?;
            lease.release();
            Ok(page)
        })
        .await
    }

    async fn totals(&self, q: &TotalsQuery) -> Result<Totals, LedgerError> {
        let q = q.clone();
        self.call("totals", |s| async move {
            let mut lease = Lease::take(&s.pool, &s.name).await?;
            let totals = read::totals(&mut lease, &s.name, &q).await?;
            lease.release();
            Ok(totals)
        })
        .await
    }

    async fn enforce_retention(&self, now: u64) -> Result<RetentionReport, LedgerError> {
        let cutoff = super::retention_cutoff(now, self.shared.retention_days);
        self.call("retention", |s| async move {
            let mut lease = Lease::take(&s.pool, &s.name).await?;
            let dropped = s
                .partitions
                .drop_before(&mut lease, &s.name, day_of(cutoff))
                .await?;
            let today = day_of(super::stored_ms(now));
            let ahead: BTreeSet<i64> = (today..=today + DAYS_AHEAD).collect();
            s.partitions.ensure(&mut lease, &s.name, &ahead).await?;
            lease.release();
            Ok(RetentionReport {
                cutoff_ms: u64::try_from(cutoff).unwrap_or(0),
                partitions_dropped: dropped,
                rows_deleted: 0,
            })
        })
        .await
    }

    async fn ping(&self) -> Result<(), LedgerError> {
        self.call("ping", |s| async move {
            let mut lease = Lease::take(&s.pool, &s.name).await?;
            lease
                .client()?
                .simple_query("SELECT 1")
                .await
                .map_err(|e| connect::error(&s.name, "ping", e))?;
            lease.release();
            Ok(())
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

/// A batch: checked, its strings resolved to ids, its days' partitions made, then inserted.
async fn insert(s: &Shared, batch: &[UsageRecord]) -> Result<usize, LedgerError> {
    let cutoff = super::retention_cutoff_now(s.retention_days);
    let rows: Vec<Row> = batch
        .iter()
        .map(Row::from_record)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|r| r.timestamp_ms >= cutoff)
        .collect();
    if rows.is_empty() {
        return Ok(0);
    }
    let mut lease = Lease::take(&s.pool, &s.name).await?;
    let ids = s.dictionary.resolve(&mut lease, &s.name, &rows).await?;
    let days: BTreeSet<i64> = rows.iter().map(|r| day_of(r.timestamp_ms)).collect();
    s.partitions.ensure(&mut lease, &s.name, &days).await?;
    let inserted = match ingest::insert(&mut lease, &s.name, s.ingest, &rows, &ids).await {
        Err(e) if connect::is_missing_partition(&e) => {
            // a partition this process knew was dropped by another instance's retention:
            // learn what exists, make what is missing, try once more on a fresh connection
            drop(lease);
            lease = Lease::take(&s.pool, &s.name).await?;
            s.partitions.forget()?;
            s.partitions.load(&mut lease, &s.name).await?;
            s.partitions.ensure(&mut lease, &s.name, &days).await?;
            ingest::insert(&mut lease, &s.name, s.ingest, &rows, &ids).await?
        }
        other => other?,
    };
    lease.release();
    Ok(inserted)
}

/// Applies pending migrations (for `cheapai-gateway migrate`); returns their names.
pub async fn migrate(url: &Secret, options: &LedgerOptions) -> Result<Vec<String>, LedgerError> {
    let config = connect::parse(url, options.call_timeout)?;
    let name = connect::redacted(&config);
    let runtime = StoreRuntime::start()?;
    let pool = connect::pool(config, 1)?;
    runtime
        .run("migrate", options.call_timeout, async move {
            let lease = Lease::take(&pool, &name).await?;
            migrations::apply(lease, &name).await
        })
        .await
}

fn now_ms() -> i64 {
    super::stored_ms(crate::clock::unix_ms())
}
