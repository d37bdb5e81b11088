//! The bench's records: `n` over 1,000 keys and 30 days, one key (the hot key, a key the
//! gateway knows, so the usage API can be read with it) with `hot` of them, inserted through
//! the ledger's real insert path in shipper-sized batches.

use std::sync::Arc;
use std::time::Instant;

use cheapai_gateway::ledger::{self, Ledger};
use cheapai_gateway::usage::UsageRecord;

use crate::BenchResult;

pub const KEYS: u64 = 1_000;
/// Records per insert: the shipper's batch.
pub const BATCH: usize = 1_000;
const MODELS: [&str; 5] = [
    "gpt-4o",
    "gpt-4o-mini",
    "claude-3-5-sonnet",
    "gemini-1.5-pro",
    "text-embedding-3",
];
const PROVIDERS: [&str; 3] = ["openai", "anthropic", "google"];

/// The seed's shape: `n` records, `hot` of them `hot_key`'s, over `span_ms` ending `end_ms`.
#[derive(Clone)]
pub struct Seed {
    pub n: u64,
    pub hot: u64,
    pub end_ms: u64,
    pub span_ms: u64,
    /// The hot key's id: the id the gateway derives from its client key's sha256.
    pub hot_key: Arc<str>,
}

impl Seed {
    /// Record `i` of the seed, in time order: every (n / hot)-th is the hot key's, the others
    /// cycle over the other keys.
    pub fn record(&self, i: u64) -> UsageRecord {
        let start = self.end_ms - self.span_ms;
        let stride = (self.n / self.hot.max(1)).max(1);
        let key = if i.is_multiple_of(stride) && i / stride < self.hot {
            self.hot_key.to_string()
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
            reasoning_dropped: false,
            error: h.is_multiple_of(100).then(|| "upstream_status".to_string()),
            timestamp_ms: start + i * self.span_ms / self.n,
        }
    }
}

/// Inserts records `[0, count)` of `seed` with `writers` concurrent inserters, each taking
/// every `writers`-th batch; returns records per second.
pub async fn ingest(
    ledger: Arc<dyn Ledger>,
    seed: &Seed,
    count: u64,
    writers: u64,
) -> BenchResult<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (ledger, seed) = (ledger.clone(), seed.clone());
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
