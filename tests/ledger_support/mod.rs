//! What the ledger's test suites share: a store under test (an SQLite file in a temp
//! directory, or a throwaway PostgreSQL), records to insert, and the expectations to compare
//! with.
// Each suite uses a different part; test code may panic on failure.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cheapai_gateway::ledger::{
    self, Ingest, Ledger, LedgerOptions, RecordQuery, StoreConfig, Sums, Totals,
};
use cheapai_gateway::secret::Secret;
use cheapai_gateway::usage::UsageRecord;

use crate::common::postgres::TestPostgres;

pub const DAY: u64 = 86_400_000;
pub const HOUR: u64 = 3_600_000;

/// A store under test, and what it lives in.
pub struct Store {
    pub config: StoreConfig,
    pub ledger: Arc<dyn Ledger>,
    pub dir: PathBuf,
    pub server: Option<TestPostgres>,
}

impl Store {
    pub async fn sqlite() -> Self {
        let dir = temp_dir("sqlite");
        // a directory that does not exist yet: the store makes it
        let config = StoreConfig::Sqlite {
            path: dir.join("nested/deeper/ledger.db"),
        };
        let ledger = ledger::open(&config, 400).await.unwrap();
        Store {
            config,
            ledger,
            dir,
            server: None,
        }
    }

    pub async fn postgres() -> Self {
        Self::postgres_with(Ingest::Copy).await
    }

    pub async fn postgres_with(ingest: Ingest) -> Self {
        let server = tokio::task::spawn_blocking(TestPostgres::start_new)
            .await
            .unwrap();
        let config = StoreConfig::Postgres {
            url: Secret::new(server.url()),
        };
        let options = LedgerOptions {
            ingest,
            ..LedgerOptions::new(400)
        };
        let ledger = ledger::open_with(&config, &options).await.unwrap();
        Store {
            config,
            ledger,
            dir: temp_dir("pg"),
            server: Some(server),
        }
    }

    /// Another handle on the same store (a second instance), with its own retention.
    pub async fn another(&self, retention_days: u32) -> Arc<dyn Ledger> {
        ledger::open(&self.config, retention_days).await.unwrap()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn temp_dir(kind: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cheapai-ledger-{kind}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The start of the UTC day `days_ago` days before today.
pub fn day_start(days_ago: u64) -> u64 {
    (now() / DAY - days_ago) * DAY
}

pub fn record(n: u64, key: &str, model: &str, ts: u64) -> UsageRecord {
    UsageRecord {
        request_id: format!("req_{:032x}", u128::from(n) * 0x9e37_79b9 + 1),
        key_id: key.into(),
        model: model.into(),
        provider: "openai".into(),
        attempts: 1,
        endpoint: "chat_completions".into(),
        prompt_tokens: 100 + n,
        completion_tokens: 10 + n % 7,
        cached_tokens: n % 3,
        cache_write_tokens: n % 5,
        cost_micro_usd: 1_000 + n,
        status: 200,
        duration_ms: 50 + n,
        ttft_ms: Some(5),
        stream: n.is_multiple_of(2),
        client_disconnected: false,
        estimated: false,
        reasoning_dropped: false,
        error: n.is_multiple_of(10).then(|| "upstream_timeout".to_string()),
        timestamp_ms: ts,
    }
}

pub fn query(key: Option<&str>, limit: usize) -> RecordQuery {
    RecordQuery {
        key_id: key.map(str::to_string),
        model: None,
        from_ms: 0,
        to_ms: u64::MAX,
        limit,
        after: None,
    }
}

/// Every record of a query, page by page (`limit` each), checking the pages' order.
pub async fn all_pages(ledger: &dyn Ledger, mut q: RecordQuery) -> Vec<UsageRecord> {
    let mut all = Vec::new();
    loop {
        let page = ledger.records(&q).await.unwrap();
        assert!(page.records.len() <= q.limit);
        all.extend(page.records);
        match page.next {
            Some(next) => {
                // a cursor that does not move on would page forever
                assert_ne!(q.after.as_ref(), Some(&next), "the cursor did not advance");
                assert!(all.len() <= 10_000, "pages never end");
                q.after = Some(next);
            }
            None => return all,
        }
    }
}

/// Newest first: by timestamp, descending (ties in any fixed order).
pub fn newest_first(records: &[UsageRecord]) -> bool {
    records
        .windows(2)
        .all(|w| w[0].timestamp_ms >= w[1].timestamp_ms)
}

pub fn ids(records: &[UsageRecord]) -> BTreeSet<String> {
    records.iter().map(|r| r.request_id.clone()).collect()
}

/// The totals the rollups must give for `records` (all of whose hours are in the range).
pub fn expected_totals(records: &[&UsageRecord]) -> Totals {
    let mut t = Totals::default();
    for r in records {
        let one = Sums {
            requests: 1,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cached_tokens: r.cached_tokens,
            cache_write_tokens: r.cache_write_tokens,
            cost_micro_usd: r.cost_micro_usd,
            errors: u64::from(r.error.is_some()),
        };
        t.total.merge(&one);
        t.by_model.entry(r.model.clone()).or_default().merge(&one);
        let day = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_millis(r.timestamp_ms),
        )
        .to_string()[..10]
            .to_string();
        t.by_day.entry(day).or_default().merge(&one);
    }
    t
}
