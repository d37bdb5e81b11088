//! The Redis limit store: checks are Lua script calls (one round trip, atomic across every
//! gateway instance), shared by a window's concurrent requests ([`super::group`]). Keys share
//! the client key's hash tag, so a Redis Cluster keeps them on one slot:
//! `cai:rl:{k_…}:{model}` (one hash per window, layout in `window.lua`), `cai:spend:{k_…}`
//! and the reservations not yet settled, `cai:held:{k_…}`.
//! Batched settlements go out as one pipeline per slot ([`Redis::per_slot`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;

use super::group::Checks;
use super::keys::settle_in_redis;
pub use super::keys::{held_key, spend_key, window_key};
use super::{Claim, Decision, Held, LimitStore};
use crate::state::{Redis, StateError};

const SETTLE_SOURCE: &str = include_str!("settle.lua");

/// How often queued token settlements are written (one pipeline per interval).
const SETTLE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Token settlements waiting to be written: (window hash, bucket) → delta.
type PendingSettlements = HashMap<(String, u64), i64>;

/// Limits kept in Redis.
pub struct RedisLimits {
    redis: Arc<Redis>,
    checks: Checks,
    /// Settlements are batched: under load one pipeline every [`SETTLE_INTERVAL`] replaces a
    /// round trip per request (they only correct rate-limit counters, so a short delay is
    /// harmless; spend, which is money, is written at once).
    pending: Arc<Pending>,
    flusher: OnceLock<()>,
    /// How long a budget reservation is held before the window script takes it back.
    hold_secs: u64,
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
            checks: Checks::default(),
            pending: Arc::new(Pending::default()),
            flusher: OnceLock::new(),
            hold_secs: super::DEFAULT_RESERVATION_TTL.as_secs(),
        }
    }

    /// Budget reservations expire after `ttl` unless settled.
    pub fn with_hold(mut self, ttl: std::time::Duration) -> Self {
        self.hold_secs = ttl.as_secs().max(1);
        self
    }
}

/// Writes every queued settlement in one pipeline.
async fn flush(redis: &Redis, pending: &Pending) -> Result<(), StateError> {
    let _one_at_a_time = pending.flushing.lock().await;
    let batch: Vec<_> = match pending.queue.lock() {
        Ok(mut p) => p.drain().collect(),
        Err(_) => return Err(StateError("settlement queue lock poisoned".into())),
    };
    if batch.is_empty() {
        return Ok(());
    }
    // EVAL, not EVALSHA: a pipeline cannot recover from NOSCRIPT mid-way. One pipeline on
    // a single Redis; one per key's slot on a cluster.
    let commands = batch
        .into_iter()
        .map(|((window, bucket), delta)| {
            let mut eval = redis::cmd("EVAL");
            eval.arg(SETTLE_SOURCE)
                .arg(1)
                .arg(&window)
                .arg(bucket)
                .arg(delta);
            (window, eval)
        })
        .collect();
    redis.per_slot("settle", commands).await
}

#[async_trait]
impl LimitStore for RedisLimits {
    async fn acquire(&self, claim: &Claim, now: u64) -> Result<Decision, StateError> {
        let window = window_key(&claim.key_id, &claim.model);
        let hold_until = now.saturating_add(self.hold_secs);
        self.checks
            .check(&self.redis, window, claim, now, hold_until)
            .await
    }

    async fn settle(
        &self,
        key_id: &str,
        model: &str,
        bucket: u64,
        delta: i64,
    ) -> Result<(), StateError> {
        if let Ok(mut p) = self.pending.queue.lock() {
            *p.entry((window_key(key_id, model), bucket)).or_default() += delta;
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
        flush(&self.redis, &self.pending).await
    }

    async fn settle_spend(
        &self,
        key_id: &str,
        held: Held<'_>,
        cost_micro_usd: u64,
    ) -> Result<(), StateError> {
        let (member, reserved) = match held {
            Held::Here { member, micro_usd } => (member, micro_usd),
            Held::Nowhere => ("", 0),
            // the twin mirrors Redis, never the reverse; settle as if nothing was held
            Held::Mirrored { .. } => ("", 0),
        };
        settle_in_redis(&self.redis, key_id, member, reserved, cost_micro_usd).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Scope, WINDOW_SECS};
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn redis_store_meets_the_same_contract_as_the_local_one() {
        // (reservation expiry included: the contract drives the clock past the lifetime)
        let server = crate::state::tests::redis_server();
        let redis = Redis::new(&server.1, Duration::from_secs(2)).unwrap();
        let store = RedisLimits::new(std::sync::Arc::new(redis));
        super::super::tests::store_contract(&store).await;
    }

    /// Concurrent requests of one window share script calls, and each is still decided as
    /// if it came alone: of 200 at once with rpm = 50, exactly 50 pass, and they saw
    /// `requests_used` 1, 2, …, 50 in turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_are_batched_and_stay_exact() {
        let server = crate::state::tests::redis_server();
        let redis = Arc::new(Redis::new(&server.1, Duration::from_secs(2)).unwrap());
        let store = Arc::new(RedisLimits::new(redis.clone()));
        let claim = super::super::tests::claim(Some(50), Some(1_000_000), 10);
        let now = 1_000_000;
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (store, claim) = (store.clone(), claim.clone());
                tokio::spawn(async move { store.acquire(&claim, now).await })
            })
            .collect();
        let mut used = Vec::new();
        let mut refused = 0;
        for t in tasks {
            let d = t.await.unwrap().unwrap();
            match d.denied_by {
                None => used.push(d.requests_used),
                Some(Scope::Requests) => {
                    assert_eq!(d.requests_used, 50);
                    assert_eq!(d.retry_after_secs, 60);
                    refused += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        used.sort_unstable();
        assert_eq!(used, (1..=50).collect::<Vec<u64>>());
        assert_eq!(refused, 150);
        let mut info = redis::cmd("INFO");
        info.arg("commandstats");
        let stats: String = redis.command("info", info).await.unwrap();
        let calls: u64 = stats
            .lines()
            .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum();
        assert!(
            (1..200).contains(&calls),
            "{calls} script calls for 200 checks"
        );
    }

    /// Concurrent requests of one key, decided in batches, each see the reservations of the
    /// ones before them: of 20 at once holding 300 of a 1000 budget, exactly 3 pass.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_budget_reservations_cannot_overshoot() {
        let server = crate::state::tests::redis_server();
        let redis = Arc::new(Redis::new(&server.1, Duration::from_secs(2)).unwrap());
        let store = Arc::new(RedisLimits::new(redis.clone()));
        let claim = Claim {
            key_id: "k_concurrent".into(),
            budget_micro_usd: Some(1000),
            reserve_micro_usd: 300,
            ..super::super::tests::claim(Some(1000), None, 0)
        };
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (store, claim) = (store.clone(), super::super::tests::fresh(&claim));
                tokio::spawn(async move { store.acquire(&claim, 1_000_000).await })
            })
            .collect();
        let mut seen = Vec::new();
        for t in tasks {
            let d = t.await.unwrap().unwrap();
            match d.denied_by {
                None => seen.push(d.spend_micro_usd),
                Some(Scope::Budget) => assert_eq!(d.spend_micro_usd, 900),
                other => panic!("{other:?}"),
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![300, 600, 900]);
        let spend: i64 = redis
            .command("read", redis::Cmd::get(spend_key("k_concurrent")))
            .await
            .unwrap();
        assert_eq!(spend, 900);
    }

    /// A real redis-server with the limit script on it, and the in-memory twin, for tests
    /// that require the two to decide alike (keep the server alive as long as they run).
    fn script_and_twin() -> (
        crate::state::tests::TestRedis,
        Arc<Redis>,
        RedisLimits,
        super::super::local::LocalLimits,
    ) {
        let server = crate::state::tests::redis_server();
        let redis = Arc::new(Redis::new(&server.1, Duration::from_secs(2)).unwrap());
        let shared = RedisLimits::new(redis.clone());
        (server, redis, shared, Default::default())
    }

    /// Budget reservations through the same kind of random history: worst cases of every
    /// size (some larger than the whole budget), settlements above and below them, some
    /// never settled; the script and the twin must agree on every decision and on the
    /// spend they end with.
    #[tokio::test]
    async fn budget_reservations_match_the_local_twin_over_a_random_history() {
        let (_server, redis, shared, local) = script_and_twin();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut now, mut refused) = (1_000_000, 0);
        for step in 0..2000 {
            now += next(6);
            let claim = super::super::tests::fresh(&Claim {
                key_id: "k_random_budget".into(),
                budget_micro_usd: Some(3_000_000),
                reserve_micro_usd: match next(50) {
                    0 => 4_000_000,
                    _ => next(5000),
                },
                ..super::super::tests::claim(Some(40), None, 0)
            });
            let a = shared.acquire(&claim, now).await.unwrap();
            let b = local.acquire(&claim, now).await.unwrap();
            assert_eq!(a, b, "step {step} at {now}");
            refused += usize::from(a.denied_by == Some(Scope::Budget));
            // most are settled at a cost around their reservation, some never (they expire)
            if a.denied_by.is_none() && next(4) != 0 {
                let cost = next(2 * a.reserved_micro_usd + 1);
                super::super::tests::settle_at(&shared, &claim, &a, cost).await;
                super::super::tests::settle_at(&local, &claim, &b, cost).await;
            }
        }
        assert!(refused > 0, "the budget never ran out");
        let read = redis::Cmd::get(spend_key("k_random_budget"));
        let spend: u64 = redis.command("read", read).await.unwrap();
        assert_eq!(spend, local.spend_of("k_random_budget"));
    }

    /// A budget of 0 lets nothing be spent, in the script as in the twin (0 once meant "no
    /// budget" to the script, while the twin refused: a key's budget depended on whether
    /// Redis answered).
    #[tokio::test]
    async fn a_zero_budget_refuses_in_the_script_as_in_the_twin() {
        let (_server, _redis, shared, local) = script_and_twin();
        for reserve in [0, 7] {
            let claim = Claim {
                key_id: "k_zero_budget".into(),
                budget_micro_usd: Some(0),
                reserve_micro_usd: reserve,
                ..super::super::tests::claim(Some(40), None, 0)
            };
            let a = shared.acquire(&claim, 1_000).await.unwrap();
            let b = local.acquire(&claim, 1_000).await.unwrap();
            assert_eq!(
                a.denied_by,
                Some(Scope::Budget),
                "script, reserve {reserve}"
            );
            assert_eq!(a, b, "reserve {reserve}");
        }
        // no budget at all is no limit, in both
        let claim = Claim {
            key_id: "k_no_budget".into(),
            budget_micro_usd: None,
            reserve_micro_usd: 7,
            ..super::super::tests::claim(Some(40), None, 0)
        };
        let a = shared.acquire(&claim, 1_000).await.unwrap();
        assert_eq!(a.denied_by, None);
        assert_eq!(a, local.acquire(&claim, 1_000).await.unwrap());
    }

    /// The O(1) script keeps running totals; this drives it and the in-memory twin (which
    /// sums its buckets every time) through the same random history — seconds that pass
    /// one by one, gaps, whole windows skipped, settlements — and requires the same
    /// decision every time, then checks the stored totals against the stored buckets.
    #[tokio::test]
    async fn running_totals_match_the_local_twin_over_a_random_history() {
        let (_server, redis, shared, local) = script_and_twin();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut now = 1_000_000;
        for step in 0..3000 {
            now += match next(100) {
                0 => 61 + next(60),
                1..=9 => 5 + next(30),
                10..=49 => 1,
                _ => 0,
            };
            let claim = Claim {
                key_id: "k_random".into(),
                ..super::super::tests::claim(Some(40), Some(2_000), next(120))
            };
            let a = shared.acquire(&claim, now).await.unwrap();
            let b = local.acquire(&claim, now).await.unwrap();
            assert_eq!(a, b, "step {step} at {now}");
            if a.denied_by.is_none() && next(2) == 0 {
                let delta = next(200) as i64 - 100;
                shared
                    .settle("k_random", "gpt-4o", a.bucket, delta)
                    .await
                    .unwrap();
                shared.flush().await.unwrap();
                local
                    .settle("k_random", "gpt-4o", a.bucket, delta)
                    .await
                    .unwrap();
            }
        }
        let read = redis::Cmd::hgetall(window_key("k_random", "gpt-4o"));
        let fields: HashMap<String, i64> = redis.command("read", read).await.unwrap();
        let sum = |prefix: &str| -> i64 {
            fields
                .iter()
                .filter(|(f, _)| f.starts_with(prefix))
                .map(|(_, n)| n)
                .sum()
        };
        assert_eq!(fields["r"], sum("r:"));
        assert_eq!(fields["t"], sum("t:"));
        assert!(
            fields.len() <= 2 * WINDOW_SECS as usize + 3,
            "stale buckets remain"
        );
    }
}
