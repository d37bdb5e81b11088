//! The Redis limit store: each check is one Lua script call (one round trip), atomic across
//! every gateway instance. Keys share the client key's hash tag, so a Redis Cluster keeps
//! them on one slot: `cai:rl:{k_…}:{model}:req|tok`, `cai:spend:{k_…}`.

use async_trait::async_trait;
use redis::Script;

use super::{Claim, Decision, LimitStore, Scope, WINDOW_SECS};
use crate::state::{Redis, StateError};

static WINDOW: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("window.lua")));
static SETTLE: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("settle.lua")));

/// Limits kept in Redis.
pub struct RedisLimits {
    redis: std::sync::Arc<Redis>,
}

impl RedisLimits {
    pub fn new(redis: std::sync::Arc<Redis>) -> Self {
        Self { redis }
    }
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
        let _: i64 = self
            .redis
            .run("settle", move |mut c| {
                Box::pin(async move {
                    SETTLE
                        .key(tok)
                        .arg(bucket)
                        .arg(delta)
                        .invoke_async(&mut c)
                        .await
                })
            })
            .await?;
        Ok(())
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
        super::super::tests::store_contract(&RedisLimits::new(std::sync::Arc::new(redis))).await;
    }
}
