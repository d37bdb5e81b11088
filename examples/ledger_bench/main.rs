//! The usage ledger's PostgreSQL bench: seeds N records (default 10 million) over 1,000 keys,
//! one key with 100k of them, spread over the last 30 days, through the real insert path in
//! shipper-sized batches, then reports ingest records/s (COPY and multi-row INSERT), bytes
//! per record on disk, and p50/p99 of the hot key's first page, a deep page, and its month's
//! totals: from the store, and over HTTP from the real gateway binary started on the seeded
//! database (`usage_http`), with the hot key's client key.
//!
//! `cargo build --release --bin cheapai-gateway --example ledger_bench &&
//! target/release/examples/ledger_bench` (a throwaway server of its own, durable settings;
//! `GATEWAY_BIN=…` for another gateway build), `LEDGER_BENCH_URL=postgres://… ` (an existing
//! database, which it fills; the COPY / INSERT comparison then is skipped, as it needs a
//! fresh database per method), `N=…`, `SMALL=1` (200k records: a smoke run in well under a
//! minute), `WRITERS=…` (concurrent inserters, default 2).

#[path = "../../tests/common/postgres.rs"]
mod postgres;
mod seed;
mod usage_http;

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cheapai_gateway::ledger::{
    self, Ingest, Ledger, LedgerOptions, RecordQuery, StoreConfig, TotalsQuery,
};
use cheapai_gateway::secret::Secret;
use seed::{ingest, Seed, BATCH, KEYS};

const DAY_MS: u64 = 86_400_000;
/// Timed repetitions of each read.
const READS: usize = 300;
/// The targets: `/v1/usage` p99 over HTTP, and bytes per record on disk.
const HTTP_P99_TARGET_MS: f64 = 50.0;
const BYTES_TARGET: f64 = 200.0;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Any free loopback port (used by the throwaway server).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// p50 and p99 of `READS` runs of `f`, in milliseconds.
async fn latency<F, Fut>(mut f: F) -> BenchResult<(f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = BenchResult<()>>,
{
    let mut times = Vec::with_capacity(READS);
    for _ in 0..READS {
        let t = Instant::now();
        f().await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(percentiles(times))
}

/// "met", or by how much `value` is over its upper bound `target`.
fn verdict(value: f64, target: f64) -> String {
    if value <= target {
        "met".to_string()
    } else {
        format!(
            "MISSED by {:.1} ({:.0} %)",
            value - target,
            (value - target) / target * 100.0
        )
    }
}

/// p50 and p99 of `times` (NaN when empty).
fn percentiles(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| {
        times
            .get(((times.len().max(1) - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (at(0.50), at(0.99))
}

async fn open(url: &str, ingest: Ingest) -> BenchResult<Arc<dyn Ledger>> {
    let options = LedgerOptions {
        call_timeout: Duration::from_secs(60),
        ingest,
        ..LedgerOptions::new(400)
    };
    let config = StoreConfig::Postgres {
        url: Secret::new(url.to_string()),
    };
    Ok(ledger::open_with(&config, &options).await?)
}

/// Runs SQL on the database directly (sizes, VACUUM), outside the ledger.
async fn sql(url: &str) -> BenchResult<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BenchResult<()> {
    let small = std::env::var("SMALL").is_ok_and(|v| v == "1");
    let n = env_u64("N").unwrap_or(if small { 200_000 } else { 10_000_000 });
    let writers = env_u64("WRITERS").unwrap_or(2).max(1);
    let hot = 100_000.min(n / 10);
    let end_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let seed = Seed {
        n,
        hot,
        end_ms,
        span_ms: 30 * DAY_MS,
        hot_key: usage_http::hot_key_id().into(),
    };
    let hot_key = seed.hot_key.to_string();
    let compare = env_u64("COMPARE").unwrap_or(n.min(500_000));

    // an existing database, or a throwaway server with durable settings (fsync on)
    let server = match std::env::var("LEDGER_BENCH_URL") {
        Ok(_) => None,
        Err(_) => Some(
            tokio::task::spawn_blocking(|| {
                postgres::TestPostgres::start_new_with(&["fsync=on", "full_page_writes=on"])
            })
            .await?,
        ),
    };
    let url = match (&server, std::env::var("LEDGER_BENCH_URL")) {
        (_, Ok(url)) => url,
        (Some(s), Err(_)) => s.url(),
        (None, Err(e)) => return Err(e.into()),
    };

    // COPY against multi-row INSERT, each into a database of its own (a throwaway server only)
    let mut ingest_rates = Vec::new();
    if let Some(s) = &server {
        for (db, how) in [("cmp_values", Ingest::Values), ("cmp_copy", Ingest::Copy)] {
            let db_url = s.create_database(db);
            let ledger = open(&db_url, how).await?;
            let rate = ingest(ledger, &seed, compare, writers).await?;
            ingest_rates.push((format!("{how:?}, {compare} records"), rate));
        }
    }

    let ledger = open(&url, Ingest::Copy).await?;
    let rate = ingest(ledger.clone(), &seed, n, writers).await?;
    ingest_rates.push((format!("Copy, {n} records (the seed)"), rate));

    let client = sql(&url).await?;
    client.batch_execute("VACUUM ANALYZE").await?;
    let sizes = client
        .query_one(
            "SELECT \
               (SELECT count(*) FROM ledger_records)::int8, \
               (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits \
                 WHERE inhparent = 'ledger_records'::regclass)::int8, \
               (SELECT coalesce(sum(pg_relation_size(inhrelid)), 0) FROM pg_inherits \
                 WHERE inhparent = 'ledger_records'::regclass)::int8, \
               (SELECT sum(pg_total_relation_size(t::regclass)) FROM unnest(array['ledger_keys', \
                 'ledger_models', 'ledger_providers', 'ledger_endpoints', 'ledger_errors']) t)::int8, \
               (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits \
                 WHERE inhparent = 'ledger_rollups'::regclass)::int8, \
               (SELECT count(*) FROM pg_inherits WHERE inhparent = 'ledger_records'::regclass)::int8",
            &[],
        )
        .await?;
    let (rows, records_total, records_heap, dictionaries, rollups, partitions): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = (
        sizes.try_get(0)?,
        sizes.try_get(1)?,
        sizes.try_get(2)?,
        sizes.try_get(3)?,
        sizes.try_get(4)?,
        sizes.try_get(5)?,
    );
    let per = |bytes: i64| bytes as f64 / rows.max(1) as f64;

    // a deep page of the hot key: the cursor after 90% of its records
    let page_query = |after: Option<String>| RecordQuery {
        key_id: Some(hot_key.clone()),
        model: None,
        from_ms: 0,
        to_ms: u64::MAX,
        limit: 100,
        after,
    };
    let mut deep = None;
    let mut walked = 0u64;
    while walked < hot * 9 / 10 {
        let page = ledger
            .records(&RecordQuery {
                limit: 1000,
                ..page_query(deep.clone())
            })
            .await?;
        walked += page.records.len() as u64;
        match page.next {
            Some(next) => deep = Some(next),
            None => break,
        }
    }
    let first = latency(|| {
        let ledger = ledger.clone();
        async move {
            ledger.records(&page_query(None)).await?;
            Ok(())
        }
    })
    .await?;
    let deep_page = latency(|| {
        let (ledger, q) = (ledger.clone(), page_query(deep.clone()));
        async move {
            ledger.records(&q).await?;
            Ok(())
        }
    })
    .await?;
    let everyone = latency(|| {
        let ledger = ledger.clone();
        async move {
            ledger
                .records(&RecordQuery {
                    key_id: None,
                    ..page_query(None)
                })
                .await?;
            Ok(())
        }
    })
    .await?;
    let month = TotalsQuery {
        key_id: Some(hot_key.clone()),
        from_ms: end_ms - 30 * DAY_MS,
        to_ms: end_ms + 1,
    };
    let totals = ledger.totals(&month).await?;
    if totals.total.requests != hot {
        return Err(format!(
            "hot key totals: {} requests, not {hot}",
            totals.total.requests
        )
        .into());
    }
    let totals_latency = latency(|| {
        let (ledger, q) = (ledger.clone(), month.clone());
        async move {
            ledger.totals(&q).await?;
            Ok(())
        }
    })
    .await?;

    // the same reads over HTTP, through a gateway on this database (before the REINDEX below,
    // so that they read the indexes as ingestion left them)
    let http = {
        let (url, from_s, to_s) = (
            url.clone(),
            (end_ms - 30 * DAY_MS) / 1000,
            end_ms / 1000 + 1,
        );
        tokio::task::spawn_blocking(move || {
            let gateway = usage_http::Gateway::start(&url)?;
            usage_http::time_reads(&gateway, hot, from_s, to_s)
        })
        .await?
    }?;

    // what rebuilding finished days' indexes would save: inserts append to each key's end of
    // the (key, ts, rid) index, so its leaf pages split half full; a rebuild packs them
    client.batch_execute("REINDEX TABLE ledger_records").await?;
    let reindexed: i64 = client
        .query_one(
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::int8 FROM pg_inherits \
             WHERE inhparent = 'ledger_records'::regclass",
            &[],
        )
        .await?
        .try_get(0)?;

    println!("ledger bench: {n} records, {KEYS} keys, {hot_key} with {hot}, 30 days, {partitions} daily partitions, {writers} writers, batches of {BATCH}");
    println!();
    println!("| ingest | records/s |");
    println!("|---|---:|");
    for (what, rate) in &ingest_rates {
        println!("| {what} | {rate:.0} |");
    }
    println!();
    println!("| on disk (after VACUUM ANALYZE) | bytes | bytes/record |");
    println!("|---|---:|---:|");
    println!(
        "| record partitions, heap only | {records_heap} | {:.1} |",
        per(records_heap)
    );
    println!(
        "| record partitions + indexes | {records_total} | {:.1} |",
        per(records_total)
    );
    println!(
        "| dictionary tables | {dictionaries} | {:.1} |",
        per(dictionaries)
    );
    println!(
        "| **records + indexes + dictionaries** | {} | **{:.1}** |",
        records_total + dictionaries,
        per(records_total + dictionaries)
    );
    println!(
        "| records + indexes + dictionaries, indexes rebuilt | {} | {:.1} |",
        reindexed + dictionaries,
        per(reindexed + dictionaries)
    );
    println!(
        "| hourly rollups (+ index) | {rollups} | {:.1} |",
        per(rollups)
    );
    println!();
    println!("| read ({READS} runs each) | p50 ms | p99 ms |");
    println!("|---|---:|---:|");
    for (what, (p50, p99)) in [
        (format!("{hot_key} first page (100)"), first),
        (
            format!("{hot_key} deep page (100, after {walked})"),
            deep_page,
        ),
        ("every key, first page (100)".to_string(), everyone),
        (format!("{hot_key} totals, 30 days"), totals_latency),
    ] {
        println!("| {what} | {p50:.2} | {p99:.2} |");
    }
    println!();
    println!("| GET /v1/usage through the gateway, {hot_key}'s client key | p50 ms | p99 ms | p99 target {HTTP_P99_TARGET_MS} ms |");
    println!("|---|---:|---:|---|");
    for (what, (p50, p99)) in [
        (format!("first page, limit=100 ({READS} runs)"), http.first),
        (
            format!(
                "next pages, limit=100&after=next: a walk of {} pages",
                http.walked_pages
            ),
            http.walk,
        ),
        (
            format!(
                "deep page, limit=100&after=<cursor after {} records> ({READS} runs)",
                http.deep_after
            ),
            http.deep,
        ),
        (
            format!("month totals, from=&to= 30 days ({READS} runs)"),
            http.month,
        ),
    ] {
        println!(
            "| {what} | {p50:.2} | {p99:.2} | {} |",
            verdict(p99, HTTP_P99_TARGET_MS)
        );
    }
    println!();
    let bytes = per(records_total + dictionaries);
    println!(
        "bytes per record on disk (records + indexes + dictionaries, as ingested): {bytes:.1}, \
         target <= {BYTES_TARGET}: {}",
        verdict(bytes, BYTES_TARGET)
    );
    drop(ledger);
    drop(server);
    Ok(())
}
