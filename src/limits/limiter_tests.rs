//! The limiter as the request path uses it: settlement replaces a budget reservation with
//! the real cost, and when Redis goes away the local twin carries on from the spend Redis
//! last reported, not from nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::local::LocalLimits;
use super::redis::{spend_key, RedisLimits};
use super::tests::{claim, fresh};
use super::*;
use crate::state::Redis;

fn budget_claim(key_id: &str, reserve_micro_usd: u64) -> Claim {
    fresh(&Claim {
        key_id: key_id.into(),
        budget_micro_usd: Some(1000),
        reserve_micro_usd,
        ..claim(None, None, 0)
    })
}

async fn redis_spend(redis: &Redis, key_id: &str) -> i64 {
    let read = ::redis::Cmd::get(spend_key(key_id));
    let value: Option<i64> = redis.command("read", read).await.unwrap();
    value.unwrap_or(0)
}

fn shared_limiter(redis: &Arc<Redis>) -> Limiter {
    let store = Arc::new(RedisLimits::new(redis.clone()));
    Limiter::new(Some(store), OnRedisError::Allow)
}

#[tokio::test]
async fn settlement_replaces_the_reservation_with_the_real_cost() {
    let server = crate::state::tests::redis_server();
    let redis = Arc::new(Redis::new(&server.1, Duration::from_secs(2)).unwrap());
    let limiter = shared_limiter(&redis);
    let mut held = Vec::new();
    for _ in 0..3 {
        let c = budget_claim("k_settle", 300);
        let d = limiter.acquire(&c).await.unwrap().unwrap();
        held.push((c, d));
    }
    let refused = limiter
        .acquire(&budget_claim("k_settle", 300))
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::QuotaExceeded);
    assert_eq!(redis_spend(&redis, "k_settle").await, 900);

    // one answered at a real cost of 100: 200 of its 300 come back
    limiter.settle(&held[0].0, &held[0].1, 10, 100).await;
    assert_eq!(redis_spend(&redis, "k_settle").await, 700);
    let c = budget_claim("k_settle", 300);
    let fourth = limiter.acquire(&c).await.unwrap().unwrap();
    assert_eq!(fourth.spend_micro_usd, 1000);
    // one failed before any upstream cost, one was handed over to a fallback model (which
    // `claim_limits` settles at 0 tokens and 0 cost): both give all 300 back
    limiter.settle(&held[1].0, &held[1].1, 0, 0).await;
    limiter.settle(&held[2].0, &held[2].1, 0, 0).await;
    assert_eq!(redis_spend(&redis, "k_settle").await, 400);
    limiter.settle(&c, &fourth, 10, 300).await;
    assert_eq!(
        redis_spend(&redis, "k_settle").await,
        400,
        "it cost its worst case"
    );
}

#[tokio::test]
async fn during_an_outage_the_local_twin_continues_from_the_last_known_spend() {
    let server = crate::state::tests::redis_server();
    let redis = Arc::new(Redis::new(&server.1, Duration::from_millis(300)).unwrap());
    let limiter = shared_limiter(&redis);
    // another instance has spent 500 of the key's 1000
    let seed = ::redis::Cmd::incr(spend_key("k_outage"), 500);
    let _: i64 = redis.command("seed", seed).await.unwrap();
    let c = budget_claim("k_outage", 300);
    let first = limiter.acquire(&c).await.unwrap().unwrap();
    assert!(first.reserved_in_shared);
    assert_eq!(first.spend_micro_usd, 800);

    drop(server); // Redis goes away
    let d = limiter
        .acquire(&budget_claim("k_outage", 200))
        .await
        .unwrap()
        .unwrap();
    assert!(!d.reserved_in_shared, "the local twin decided");
    assert_eq!(d.spend_micro_usd, 1000, "800 known from Redis + 200");
    let refused = limiter
        .acquire(&budget_claim("k_outage", 1))
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::QuotaExceeded);
    // the first request settles during the outage at 100: its 200 come back locally
    limiter.settle(&c, &first, 10, 100).await;
    let d = limiter
        .acquire(&budget_claim("k_outage", 200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.spend_micro_usd, 1000);
    assert!(limiter.acquire(&budget_claim("k_outage", 1)).await.is_err());
}

/// A shared store that can be switched off (the in-memory store stands in for Redis).
#[derive(Default)]
struct Switchable {
    inner: LocalLimits,
    down: AtomicBool,
}

impl Switchable {
    fn check(&self) -> Result<(), StateError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(StateError("switched off".into())),
            false => Ok(()),
        }
    }
}

#[async_trait]
impl LimitStore for Switchable {
    async fn acquire(&self, claim: &Claim, now: u64) -> Result<Decision, StateError> {
        self.check()?;
        self.inner.acquire(claim, now).await
    }
    async fn settle(&self, k: &str, m: &str, bucket: u64, delta: i64) -> Result<(), StateError> {
        self.check()?;
        self.inner.settle(k, m, bucket, delta).await
    }
    async fn settle_spend(
        &self,
        key_id: &str,
        held: Held<'_>,
        cost: u64,
    ) -> Result<(), StateError> {
        self.check()?;
        self.inner.settle_spend(key_id, held, cost).await
    }
}

/// A request the local twin admitted during an outage reserved nothing in the shared store,
/// so once that answers again it is given the real cost (not cost − reservation); one the
/// shared store admitted settles there by the difference. Both end at the real costs' sum.
#[tokio::test]
async fn each_reservation_settles_where_it_was_made() {
    let shared = Arc::new(Switchable::default());
    let limiter = Limiter::new(Some(shared.clone()), OnRedisError::Allow);
    let c1 = budget_claim("k_where", 300);
    let by_shared = limiter.acquire(&c1).await.unwrap().unwrap();
    assert!(by_shared.reserved_in_shared);
    shared.down.store(true, Ordering::SeqCst);
    let c2 = budget_claim("k_where", 300);
    let by_local = limiter.acquire(&c2).await.unwrap().unwrap();
    assert!(!by_local.reserved_in_shared);
    assert_eq!(by_local.spend_micro_usd, 600);
    shared.down.store(false, Ordering::SeqCst);
    limiter.settle(&c2, &by_local, 10, 100).await;
    limiter.settle(&c1, &by_shared, 10, 50).await;
    assert_eq!(shared.inner.spend_of("k_where"), 150);
    assert_eq!(limiter.local.spend_of("k_where"), 150);
}
