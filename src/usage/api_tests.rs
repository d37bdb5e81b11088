//! What a usage answer reads from its store: the page it lists, never the whole history.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::*;
use crate::usage::sink::{tests::record, MemoryStore, Page};
use crate::usage::totals::Totals;
use crate::usage::UsageRecord;

const DAY_MS: u64 = 86_400_000;

/// Counts the records a store hands out.
struct Counting {
    inner: Arc<dyn UsageStore>,
    read: AtomicUsize,
}

impl Counting {
    fn new(inner: Arc<dyn UsageStore>) -> Self {
        Self {
            inner,
            read: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl UsageStore for Counting {
    async fn append(&self, batch: &[UsageRecord]) -> Result<(), String> {
        self.inner.append(batch).await
    }

    async fn query(
        &self,
        key_id: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Page, String> {
        let page = self.inner.query(key_id, from_ms, to_ms, limit).await?;
        self.read.fetch_add(page.records.len(), Ordering::SeqCst);
        Ok(page)
    }

    async fn totals(&self, key_id: &str, from_ms: u64, to_ms: u64) -> Result<Totals, String> {
        self.inner.totals(key_id, from_ms, to_ms).await
    }
}

/// `n` records of `k_1`, one a minute from `start_ms`, two models, varied counts.
fn history(start_ms: u64, n: u64) -> Vec<UsageRecord> {
    (0..n)
        .map(|i| {
            let mut r = record("k_1", start_ms + i * 60_000);
            r.request_id = format!("req_{i}");
            r.model = if i % 3 == 0 {
                "claude-3-5-sonnet"
            } else {
                "gpt-4o"
            }
            .into();
            r.prompt_tokens = 10 + i;
            r.completion_tokens = i % 7;
            r.cached_tokens = i % 5;
            r.cost_micro_usd = 100 + i * 3;
            r
        })
        .collect()
}

/// The totals object the answer must carry for `records`.
fn sums(records: &[&UsageRecord]) -> serde_json::Value {
    let cost: u64 = records.iter().map(|r| r.cost_micro_usd).sum();
    json!({
        "requests": records.len(),
        "prompt_tokens": records.iter().map(|r| r.prompt_tokens).sum::<u64>(),
        "completion_tokens": records.iter().map(|r| r.completion_tokens).sum::<u64>(),
        "cached_tokens": records.iter().map(|r| r.cached_tokens).sum::<u64>(),
        "cost_micro_usd": cost,
        "cost_usd": usd(cost),
    })
}

fn check_totals(v: &serde_json::Value, records: &[&UsageRecord]) {
    assert_eq!(v["totals"], sums(records), "{}", v["totals"]);
    for model in ["gpt-4o", "claude-3-5-sonnet"] {
        let mine: Vec<_> = records
            .iter()
            .copied()
            .filter(|r| r.model == model)
            .collect();
        assert_eq!(v["by_model"][model], sums(&mine), "{model}");
    }
}

#[tokio::test]
async fn a_page_of_five_reads_five_records_and_totals_still_cover_the_range() {
    // 3 days of one request a minute (day 20000 is 2024-10-04, UTC midnight)
    let start = 20_000 * DAY_MS;
    let all = history(start, 3 * 1440);
    let store = Counting::new(Arc::new(MemoryStore::new(10_000)));
    store.append(&all).await.unwrap();

    let v = usage_json(&store, "k_1", UsageQuery::parse(Some("limit=5")).unwrap())
        .await
        .unwrap();
    assert_eq!(store.read.load(Ordering::SeqCst), 5, "read only the page");
    let ids: Vec<_> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        ["req_4319", "req_4318", "req_4317", "req_4316", "req_4315"]
    );
    assert_eq!(v["has_more"], true);
    check_totals(&v, &all.iter().collect::<Vec<_>>());

    // the middle day, as whole UTC days in Unix seconds
    store.read.store(0, Ordering::SeqCst);
    let (from, to) = ((start + DAY_MS) / 1000, (start + 2 * DAY_MS) / 1000);
    let q = UsageQuery::parse(Some(&format!("from={from}&to={to}&limit=3"))).unwrap();
    let v = usage_json(&store, "k_1", q).await.unwrap();
    assert_eq!(store.read.load(Ordering::SeqCst), 3);
    assert_eq!(
        v["data"][0]["request_id"], "req_2879",
        "newest of the range"
    );
    assert_eq!(v["data"][2]["request_id"], "req_2877");
    let day: Vec<_> = all[1440..2880].iter().collect();
    check_totals(&v, &day);

    // a range with nothing in it
    let q = UsageQuery::parse(Some("from=4102444800")).unwrap();
    let v = usage_json(&store, "k_1", q).await.unwrap();
    assert_eq!(v["data"], json!([]));
    assert_eq!(v["has_more"], false);
    assert_eq!(v["totals"]["requests"], 0);
}

#[tokio::test]
async fn redis_history_reads_the_page_and_takes_totals_from_the_day_hashes() {
    let server = crate::state::tests::redis_server();
    let redis = crate::state::Redis::new(&server.1, std::time::Duration::from_secs(2)).unwrap();
    let history_store = crate::usage::redis_history::RedisHistory::new(Arc::new(redis), 10_000);
    let store = Counting::new(Arc::new(history_store));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // two days back to now, in several batches as the writer sends them
    let all = history(now_ms - 2 * DAY_MS, 2 * 1440);
    for batch in all.chunks(512) {
        store.append(batch).await.unwrap();
    }
    let v = usage_json(&store, "k_1", UsageQuery::parse(Some("limit=5")).unwrap())
        .await
        .unwrap();
    assert_eq!(store.read.load(Ordering::SeqCst), 5, "read only the page");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(5));
    assert_eq!(v["data"][0]["request_id"], "req_2879");
    assert_eq!(v["has_more"], true);
    check_totals(&v, &all.iter().collect::<Vec<_>>());
}
