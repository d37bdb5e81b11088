//! The Redis limit store: each check is one Lua script call (one round trip), atomic across
//! every gateway instance. Keys share the client key's hash tag, so a Redis Cluster keeps
//! them on one slot: `cai:rl:{k_…}:{model}:req|tok`, `cai:spend:{k_…}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use redis::Script;

use super::{Claim, Decision, LimitStore, Scope, WINDOW_SECS};
use crate::state::{Redis, StateError};

static WINDOW: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("window.lua")));
const SETTLE_SOURCE: &str = include_str!("settle.lua");

/// How often queued token settlements are written (one pipeline per interval).
const SETTLE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Token settlements waiting to be written: (tokens hash, bucket) → delta.
type PendingSettlements = HashMap<(String, u64), i64>;

/// Limits kept in Redis.
pub struct RedisLimits {
    redis: Arc<Redis>,
    /// Settlements are batched: under load one pipeline every [`SETTLE_INTERVAL`] replaces a
    /// round trip per request (they only correct rate-limit counters, so a short delay is
    /// harmless; spend, which is money, is written at once).
    pending: Arc<Pending>,
    flusher: OnceLock<()>,
}

/// The queue, and a lock held for a whole flush so that a flush returns only once every
/// settlement queued before it is written (even one a concurrent flush took).
#[derive(Default)]
struct Pending {
    queue: Mutex<PendingSettlements>,
    flushing: tokio::sync::Mutex<()>,
}

impl RedisLimits {
    pub fn new(redis: Arc<Redis>) -> Self {
        Self {
            redis,
            pending: Arc::new(Pending::default()),
            flusher: OnceLock::new(),
        }
    }

    /// Writes every queued settlement in one pipeline.
    pub async fn flush(&self) -> Result<(), StateError> {
        flush(&self.redis, &self.pending).await
    }
}

async fn flush(redis: &Redis, pending: &Pending) -> Result<(), StateError> {
    let _one_at_a_time = pending.flushing.lock().await;
    let batch: Vec<_> = match pending.queue.lock() {
        Ok(mut p) => p.drain().collect(),
        Err(_) => return Err(StateError("settlement queue lock poisoned".into())),
    };
    if batch.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for ((tokens_key, bucket), delta) in &batch {
        // EVAL, not EVALSHA: a pipeline cannot recover from NOSCRIPT mid-way.
        pipe.cmd("EVAL")
            .arg(SETTLE_SOURCE)
            .arg(1)
            .arg(tokens_key)
            .arg(bucket)
            .arg(delta)
            .ignore();
    }
    redis
        .run("settle", move |mut c| {
            Box::pin(async move { pipe.query_async::<()>(&mut c).await })
        })
        .await
}

fn window_keys(key_id: &str, model: &str) -> (String, String) {
    (
        format!("cai:rl:{{{key_id}}}:{model}:req"),
        format!("cai:rl:{{{key_id}}}:{model}:tok"),
    )
}

pub fn spend_key(key_id: &str) -> String {
    format!("cai:spend:{{{key_id}}}")
}

#[async_trait]
impl LimitStore for RedisLimits {
    async fn acquire(&self, claim: &Claim, now: u64) -> Result<Decision, StateError> {
        let (req, tok) = window_keys(&claim.key_id, &claim.model);
        let spend = spend_key(&claim.key_id);
        let args = [
            now,
            WINDOW_SECS,
            claim.rpm.unwrap_or(0),
            claim.tpm.unwrap_or(0),
            claim.reserve,
            claim.budget_micro_usd.unwrap_or(0),
        ];
        let (allowed, denied_by, reqs, toks, retry, req_reset, tok_reset): (
            u8,
            String,
            u64,
            u64,
            u64,
            u64,
            u64,
        ) = self
            .redis
            .run("limits", move |mut c| {
                Box::pin(async move {
                    let mut call = WINDOW.prepare_invoke();
                    call.key(req).key(tok).key(spend);
                    for a in args {
                        call.arg(a);
                    }
                    call.invoke_async(&mut c).await
                })
            })
            .await?;
        Ok(Decision {
            denied_by: match (allowed, denied_by.as_str()) {
                (1, _) => None,
                (_, "budget") => Some(Scope::Budget),
                (_, "tokens") => Some(Scope::Tokens),
                _ => Some(Scope::Requests),
            },
            requests_used: reqs,
            tokens_used: toks,
            retry_after_secs: retry,
            requests_reset_secs: req_reset,
            tokens_reset_secs: tok_reset,
            bucket: now,
        })
    }

    async fn settle(
        &self,
        key_id: &str,
        model: &str,
        bucket: u64,
        delta: i64,
    ) -> Result<(), StateError> {
        let (_, tok) = window_keys(key_id, model);
        if let Ok(mut p) = self.pending.queue.lock() {
            *p.entry((tok, bucket)).or_default() += delta;
        }
        self.flusher.get_or_init(|| {
            let (redis, pending) = (self.redis.clone(), self.pending.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(SETTLE_INTERVAL).await;
                    if let Err(e) = flush(&redis, &pending).await {
                        log::warn!("token settlement: {e}");
                    }
                }
            });
        });
        Ok(())
    }

    async fn flush(&self) -> Result<(), StateError> {
        RedisLimits::flush(self).await
    }

    async fn add_spend(&self, key_id: &str, micro_usd: u64) -> Result<(), StateError> {
        let key = spend_key(key_id);
        let _: i64 = self
            .redis
            .run("spend", move |mut c| {
                Box::pin(async move {
                    redis::cmd("INCRBY")
                        .arg(key)
                        .arg(micro_usd)
                        .query_async(&mut c)
                        .await
                })
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn redis_store_meets_the_same_contract_as_the_local_one() {
        let server = crate::state::tests::redis_server();
        let redis = Redis::new(&server.1, Duration::from_secs(2)).unwrap();
        let store = RedisLimits::new(std::sync::Arc::new(redis));
        super::super::tests::store_contract(&store).await;
    }
}
