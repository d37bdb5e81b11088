//! The usage ledger's PostgreSQL bench: seeds N records (default 10 million) over 1,000 keys,
//! one key with 100k of them, spread over the last 30 days, through the real insert path in
//! shipper-sized batches, then reports ingest records/s (COPY and multi-row INSERT), bytes
//! per record on disk, and p50/p99 of a key's first page, a deep page, and its month's
//! totals.
//!
//! `cargo run --release --example ledger_bench` (a throwaway server of its own, durable
//! settings), `LEDGER_BENCH_URL=postgres://… ` (an existing database, which it fills; the
//! COPY / INSERT comparison then is skipped, as it needs a fresh database per method),
//! `N=…`, `SMALL=1` (200k records: a smoke run in well under a minute), `WRITERS=…`
//! (concurrent inserters, default 2).

#[path = "../tests/common/postgres.rs"]
mod postgres;

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cheapai_gateway::ledger::{
    self, Ingest, Ledger, LedgerOptions, RecordQuery, StoreConfig, TotalsQuery,
};
use cheapai_gateway::secret::Secret;
use cheapai_gateway::usage::UsageRecord;

const DAY_MS: u64 = 86_400_000;
const KEYS: u64 = 1_000;
const HOT_KEY: &str = "k_hot";
const BATCH: usize = 1_000;
const MODELS: [&str; 5] = [
    "gpt-4o",
    "gpt-4o-mini",
    "claude-3-5-sonnet",
    "gemini-1.5-pro",
    "text-embedding-3",
];
const PROVIDERS: [&str; 3] = ["openai", "anthropic", "google"];
/// Timed repetitions of each read.
const READS: usize = 300;

type BenchResult<T> = Result<T, Box<dyn Error>>;

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

/// The seed's shape: `n` records, `hot` of them the hot key's, over `span_ms` ending `end_ms`.
#[derive(Clone, Copy)]
struct Seed {
    n: u64,
    hot: u64,
    end_ms: u64,
    span_ms: u64,
}

impl Seed {
    /// Record `i` of the seed, in time order: every (n / hot)-th is the hot key's, the others
    /// cycle over the other keys.
    fn record(&self, i: u64) -> UsageRecord {
        let start = self.end_ms - self.span_ms;
        let stride = (self.n / self.hot.max(1)).max(1);
        let key = if i.is_multiple_of(stride) && i / stride < self.hot {
            HOT_KEY.to_string()
        } else {
            format!("k_{:04}", i % (KEYS - 1))
        };
        let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        UsageRecord {
            request_id: format!("req_{:032x}", (u128::from(h) << 64) | u128::from(i)),
            key_id: key,
            model: MODELS[(h % 5) as usize].into(),
            provider: PROVIDERS[(h % 3) as usize].into(),
            attempts: 1 + u32::from(h.is_multiple_of(17)),
            endpoint: if h.is_multiple_of(7) {
                "embeddings"
            } else {
                "chat_completions"
            }
            .into(),
            prompt_tokens: 200 + h % 4_000,
            completion_tokens: h % 800,
            cached_tokens: if h.is_multiple_of(4) { h % 1_000 } else { 0 },
            cache_write_tokens: 0,
            cost_micro_usd: 50 + h % 20_000,
            status: if h.is_multiple_of(100) { 502 } else { 200 },
            duration_ms: 100 + h % 5_000,
            ttft_ms: Some(50 + h % 400),
            stream: h.is_multiple_of(2),
            client_disconnected: false,
            estimated: h.is_multiple_of(50),
            error: h.is_multiple_of(100).then(|| "upstream_status".to_string()),
            timestamp_ms: start + i * self.span_ms / self.n,
        }
    }
}

/// Inserts records `[0, count)` of `seed` with `writers` concurrent inserters, each taking
/// every `writers`-th batch; returns records per second.
async fn ingest(ledger: Arc<dyn Ledger>, seed: Seed, count: u64, writers: u64) -> BenchResult<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut inserted = 0u64;
            let mut start = w * BATCH as u64;
            while start < count {
                let end = (start + BATCH as u64).min(count);
                let batch: Vec<UsageRecord> = (start..end).map(|i| seed.record(i)).collect();
                inserted += ledger.insert(&batch).await? as u64;
                start += writers * BATCH as u64;
            }
            Ok::<u64, ledger::LedgerError>(inserted)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    if total != count {
        return Err(format!("inserted {total} of {count}").into());
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
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
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    Ok((at(0.50), at(0.99)))
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
    };
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
            let rate = ingest(ledger, seed, compare, writers).await?;
            ingest_rates.push((format!("{how:?}, {compare} records"), rate));
        }
    }

    let ledger = open(&url, Ingest::Copy).await?;
    let rate = ingest(ledger.clone(), seed, n, writers).await?;
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
        key_id: Some(HOT_KEY.into()),
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
        key_id: Some(HOT_KEY.into()),
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

    println!("ledger bench: {n} records, {KEYS} keys, {HOT_KEY} with {hot}, 30 days, {partitions} daily partitions, {writers} writers, batches of {BATCH}");
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
        (format!("{HOT_KEY} first page (100)"), first),
        (
            format!("{HOT_KEY} deep page (100, after {walked})"),
            deep_page,
        ),
        ("every key, first page (100)".to_string(), everyone),
        (format!("{HOT_KEY} totals, 30 days"), totals_latency),
    ] {
        println!("| {what} | {p50:.2} | {p99:.2} |");
    }
    drop(ledger);
    drop(server);
    Ok(())
}
