//! Rate limits and budgets: requests and tokens per minute for each (key, model), the key's
//! spend budget, and the `x-ratelimit-*` headers that let SDKs back off.
//!
//! Algorithm: a sliding 60-second window of per-second buckets. Unlike a fixed window it
//! never lets 2× the limit through across a minute boundary, and unlike GCRA it allows
//! exactly `rpm` requests in any 60 s (what operators read "500 RPM" to mean, and what
//! OpenAI's headers describe); it costs at most 60 small hash fields per counter. The
//! check-and-record is one Lua script in Redis ([`redis`]), so any number of gateway
//! instances share one exact limit; [`local`] is the same logic in memory, used without
//! Redis and while Redis is unreachable (`on_redis_error = "allow"`).
//!
//! Budgets are reserved, not just checked: the check adds the request's worst-case cost to
//! the key's spend in the same atomic step, and settlement replaces it with the real cost.
//! Checked only, N concurrent requests would all see the same spend and together overshoot
//! by N requests' cost; reserved, each sees the ones before it, and the overshoot is at most
//! one request's cost.

mod group;
pub mod inflight;
mod keys;
#[cfg(test)]
mod limiter_tests;
pub mod local;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;

use crate::catalog::Price;
use crate::error::{ErrorKind, GatewayError};
use crate::metrics;
use crate::state::StateError;
use crate::usage::{pricing, Usage};

/// Window length in seconds.
pub const WINDOW_SECS: u64 = 60;

/// How long a budget reservation is held when nothing settles it (`[state]
/// reservation_ttl_seconds`): longer than nearly every request (the deadline to a first byte
/// is two minutes, most streams end within minutes), short enough that a reservation lost
/// with its instance comes back within minutes. A request still running when its reservation
/// expires is billed in full all the same; the budget check just stops counting it early.
pub const DEFAULT_RESERVATION_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// The window (in place of a model name) that counts a key's requests refused after
/// authentication: one per key, whatever names the refused requests asked for, so a flood of
/// distinct bad names cannot make a Redis key per name.
pub const REFUSED_WINDOW: &str = "!refused";

/// One request's claim on its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub key_id: String,
    pub model: String,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// Tokens reserved now (prompt estimate + output cap), settled later.
    pub reserve: u64,
    pub budget_micro_usd: Option<u64>,
    /// The request's worst-case cost (prompt estimate and output cap at the model's price),
    /// held against the budget from the check until settlement, so that concurrent requests
    /// each see the others' reservations instead of all seeing the same spend. 0 without a
    /// budget.
    pub reserve_micro_usd: u64,
    /// Names this request's budget reservation (the request id: unique across instances),
    /// so that its settlement, or its expiry, takes exactly it back.
    pub reservation_id: String,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Requests,
    Tokens,
    Budget,
}

impl Scope {
    pub fn label(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
            Self::Budget => "budget",
        }
    }
}

/// What the limiter decided, with what the response headers report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub denied_by: Option<Scope>,
    pub requests_used: u64,
    pub tokens_used: u64,
    pub retry_after_secs: u64,
    pub requests_reset_secs: u64,
    pub tokens_reset_secs: u64,
    /// The second whose bucket holds this request's token reservation.
    pub bucket: u64,
    /// What this check added to the key's spend (micro-USD), handed back at settlement.
    pub reserved_micro_usd: u64,
    /// The key's spend as the check saw it, this request's reservation included.
    pub spend_micro_usd: u64,
    /// The reservation is in the shared store (set by [`Limiter`]); otherwise the local
    /// twin decided and holds it.
    pub reserved_in_shared: bool,
}

impl Decision {
    /// How the store that decided holds this request's reservation (`<id>:<micro-USD>`), for
    /// its settlement; empty when nothing was reserved.
    pub fn reservation(&self, claim: &Claim) -> String {
        match self.reserved_micro_usd {
            0 => String::new(),
            held => format!("{}:{held}", claim.reservation_id),
        }
    }
}

/// What a store holds of a request's budget reservation when it settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held<'a> {
    /// Nothing (the request was admitted elsewhere, or reserved nothing): add the cost.
    Nowhere,
    /// The reservation named `member` (see [`Decision::reservation`]) of `micro_usd`, unless
    /// it has expired meanwhile, in which case it was already taken off the spend.
    Here { member: &'a str, micro_usd: u64 },
    /// The local twin's copy of a reservation the shared store made (the twin mirrors the
    /// shared spend): the difference between cost and reservation.
    Mirrored { micro_usd: u64 },
}

/// A store of windows and spend: Redis, or memory.
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Checks every limit of `claim` and records it when allowed, atomically.
    async fn acquire(&self, claim: &Claim, now_secs: u64) -> Result<Decision, StateError>;
    /// Adds `delta` (real − reserved tokens) to the bucket of an earlier reservation; may be
    /// applied a little later (batched), see [`LimitStore::flush`].
    async fn settle(
        &self,
        key_id: &str,
        model: &str,
        bucket: u64,
        delta: i64,
    ) -> Result<(), StateError>;
    /// Settles a request's budget at once: adds its real cost (micro-USD) to the key's spend
    /// and takes back the reservation `held` if it is still there (settled costs plus live
    /// reservations is what the spend always holds). The local twin stops at 0.
    async fn settle_spend(
        &self,
        key_id: &str,
        held: Held<'_>,
        cost_micro_usd: u64,
    ) -> Result<(), StateError>;
    /// Applies every settlement queued so far.
    async fn flush(&self) -> Result<(), StateError> {
        Ok(())
    }
}

/// What to do when Redis does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRedisError {
    /// Per-instance limits take over (the default): availability first.
    Allow,
    /// 503: strictness first.
    Deny,
}

/// The limiter the request path calls: the shared store, with the local twin behind it.
pub struct Limiter {
    shared: Option<Arc<dyn LimitStore>>,
    local: local::LocalLimits,
    on_error: OnRedisError,
}

impl Limiter {
    pub fn new(shared: Option<Arc<dyn LimitStore>>, on_error: OnRedisError) -> Self {
        Self {
            shared,
            local: local::LocalLimits::default(),
            on_error,
        }
    }

    /// Budget reservations the local twin makes expire after `ttl` unless settled (give the
    /// shared store the same, [`redis::RedisLimits::with_hold`]).
    pub fn with_reservation_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.local = local::LocalLimits::with_hold(ttl);
        self
    }

    /// Acquires `claim` (nothing to do when it has no limit). A refusal is a 429 in the
    /// client's dialect, with the headers attached; a Redis failure under "deny" is a 503.
    pub async fn acquire(&self, claim: &Claim) -> Result<Option<Decision>, GatewayError> {
        if claim.rpm.is_none() && claim.tpm.is_none() && claim.budget_micro_usd.is_none() {
            return Ok(None);
        }
        let now = crate::clock::unix_secs();
        let decision = match &self.shared {
            None => self.local.acquire(claim, now).await,
            Some(shared) => match shared.acquire(claim, now).await {
                Ok(d) => {
                    if claim.budget_micro_usd.is_some() {
                        // what the twin starts from should Redis stop answering
                        self.local.remember_spend(&claim.key_id, d.spend_micro_usd);
                    }
                    Ok(Decision {
                        reserved_in_shared: true,
                        ..d
                    })
                }
                Err(e) => match self.on_error {
                    OnRedisError::Allow => {
                        log::warn!("{e}; limiting per instance until Redis answers");
                        self.local.acquire(claim, now).await
                    }
                    OnRedisError::Deny => {
                        log::warn!("{e}; refusing (on_redis_error = \"deny\")");
                        return Err(GatewayError::new(
                            ErrorKind::StateUnavailable,
                            "rate-limit state is unavailable; try again shortly",
                        ));
                    }
                },
            },
        }
        .map_err(|e| GatewayError::internal("checking rate limits", e))?;
        match decision.denied_by {
            None => Ok(Some(decision)),
            Some(scope) => {
                metrics::RATE_LIMITED
                    .with_label_values(&[scope.label()])
                    .inc();
                Err(refusal(claim, &decision, scope))
            }
        }
    }

    /// Replaces a reservation with the real token count, and the budget reservation with
    /// the real cost (0 for a request that failed before any upstream cost, or that a
    /// fallback model took over: the whole reservation comes back). Failures are counted and
    /// logged; they never reach the client.
    pub async fn settle(
        &self,
        claim: &Claim,
        decision: &Decision,
        tokens: u64,
        cost_micro_usd: u64,
    ) {
        let delta = tokens as i64 - claim.reserve as i64;
        let member = decision.reservation(claim);
        let reserved = decision.reserved_micro_usd;
        for (store, shared) in self.stores() {
            if claim.tpm.is_some() && delta != 0 {
                if let Err(e) = store
                    .settle(&claim.key_id, &claim.model, decision.bucket, delta)
                    .await
                {
                    log::warn!("token settlement: {e}");
                }
            }
            if claim.budget_micro_usd.is_none() {
                continue;
            }
            // The store that admitted the request holds its reservation; the twin mirrors a
            // reservation the shared store made (it was told the spend at the check); the
            // shared store holds nothing of a request the twin admitted during an outage.
            let held = match (shared, decision.reserved_in_shared) {
                _ if reserved == 0 => Held::Nowhere,
                (true, true) | (false, false) => Held::Here {
                    member: &member,
                    micro_usd: reserved,
                },
                (false, true) => Held::Mirrored {
                    micro_usd: reserved,
                },
                (true, false) => Held::Nowhere,
            };
            if let Err(e) = store
                .settle_spend(&claim.key_id, held, cost_micro_usd)
                .await
            {
                log::warn!("spend update: {e}");
            }
        }
    }

    /// Where settlements go: the shared store, and the local twin too so a fallback to it
    /// starts from recent numbers; each with whether it is the shared one.
    fn stores(&self) -> Vec<(&dyn LimitStore, bool)> {
        let mut v: Vec<(&dyn LimitStore, bool)> = vec![(&self.local, false)];
        if let Some(s) = &self.shared {
            v.push((s.as_ref(), true));
        }
        v
    }
}

/// The most a request can cost: `prompt_tokens` (an estimate) and `output_tokens` (the
/// client's cap, or the default reserve) at `price`, with no cache discount. Priced by the
/// same function as the usage record, so a reservation and its settlement agree to the
/// micro-USD when the estimate is right.
pub fn worst_case_micro_usd(prompt_tokens: u64, output_tokens: u64, price: &Price) -> u64 {
    let usage = Usage {
        prompt: prompt_tokens,
        completion: output_tokens,
        cached: 0,
    };
    pricing::cost_micro_usd(&usage, price)
}

fn refusal(claim: &Claim, d: &Decision, scope: Scope) -> GatewayError {
    let (kind, message) = match scope {
        Scope::Budget => (
            ErrorKind::QuotaExceeded,
            "You exceeded your current quota: this key's budget is spent.".to_string(),
        ),
        Scope::Requests => (
            ErrorKind::RateLimited,
            format!(
                "Rate limit reached for {} on requests per min (RPM): Limit {}, Used {}. Please try again in {}s.",
                claim.model,
                claim.rpm.unwrap_or(0),
                d.requests_used,
                d.retry_after_secs
            ),
        ),
        Scope::Tokens => (
            ErrorKind::RateLimited,
            format!(
                "Rate limit reached for {} on tokens per min (TPM): Limit {}, Used {}, Requested {}. Please try again in {}s.",
                claim.model,
                claim.tpm.unwrap_or(0),
                d.tokens_used,
                claim.reserve,
                d.retry_after_secs
            ),
        ),
    };
    let mut e = GatewayError::new(kind, message);
    e.upstream_type = Some(match scope {
        Scope::Budget => "insufficient_quota".into(),
        other => other.label().into(),
    });
    if scope != Scope::Budget {
        e.retry_after = Some(d.retry_after_secs.max(1));
    }
    e.rate_limit_headers = headers(claim, d);
    e
}

/// OpenAI's rate-limit headers for a decision (on successes and refusals alike).
pub fn headers(claim: &Claim, d: &Decision) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    if let Some(rpm) = claim.rpm {
        h.push(("x-ratelimit-limit-requests", rpm.to_string()));
        h.push((
            "x-ratelimit-remaining-requests",
            rpm.saturating_sub(d.requests_used).to_string(),
        ));
        h.push((
            "x-ratelimit-reset-requests",
            format!("{}s", d.requests_reset_secs),
        ));
    }
    if let Some(tpm) = claim.tpm {
        h.push(("x-ratelimit-limit-tokens", tpm.to_string()));
        h.push((
            "x-ratelimit-remaining-tokens",
            tpm.saturating_sub(d.tokens_used).to_string(),
        ));
        h.push((
            "x-ratelimit-reset-tokens",
            format!("{}s", d.tokens_reset_secs),
        ));
    }
    h
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn claim(rpm: Option<u64>, tpm: Option<u64>, reserve: u64) -> Claim {
        Claim {
            key_id: "k_test".into(),
            model: "gpt-4o".into(),
            rpm,
            tpm,
            reserve,
            budget_micro_usd: None,
            reserve_micro_usd: 0,
            reservation_id: "r0".into(),
        }
    }

    /// `claim` as a new request: its own reservation id (ids are unique per request).
    pub fn fresh(claim: &Claim) -> Claim {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Claim {
            reservation_id: format!("r{n}"),
            ..claim.clone()
        }
    }

    /// Settles `d` (a decision on `c`) at `cost`, where it was reserved.
    pub async fn settle_at(store: &dyn LimitStore, c: &Claim, d: &Decision, cost: u64) {
        let member = d.reservation(c);
        let held = match d.reserved_micro_usd {
            0 => Held::Nowhere,
            micro_usd => Held::Here {
                member: &member,
                micro_usd,
            },
        };
        store.settle_spend(&c.key_id, held, cost).await.unwrap();
    }

    /// The behaviour both stores must have; run against each.
    pub async fn store_contract(store: &dyn LimitStore) {
        let t = 1_000_000;
        let c = claim(Some(3), Some(100), 30);
        for used in 1..=3 {
            let d = store.acquire(&c, t).await.unwrap();
            assert_eq!(d.denied_by, None);
            assert_eq!(d.requests_used, used);
        }
        let d = store.acquire(&c, t + 10).await.unwrap();
        assert_eq!(d.denied_by, Some(Scope::Requests));
        assert_eq!(
            d.retry_after_secs, 50,
            "the first bucket leaves the window at t+60"
        );
        let d = store.acquire(&c, t + 60).await.unwrap();
        assert_eq!(
            d.denied_by, None,
            "a sliding window frees slots as buckets age out"
        );

        // tokens: reserve, settle to the real count
        let c = Claim {
            key_id: "k_tok".into(),
            ..claim(None, Some(100), 40)
        };
        let d = store.acquire(&c, t).await.unwrap();
        assert_eq!(d.tokens_used, 40);
        store
            .settle("k_tok", "gpt-4o", d.bucket, 7 - 40)
            .await
            .unwrap();
        store.flush().await.unwrap();
        let d = store
            .acquire(
                &Claim {
                    reserve: 90,
                    ..c.clone()
                },
                t,
            )
            .await
            .unwrap();
        assert_eq!(d.denied_by, None, "7 + 90 fits in 100");
        assert_eq!(d.tokens_used, 97);
        let d = store
            .acquire(
                &Claim {
                    reserve: 10,
                    ..c.clone()
                },
                t + 1,
            )
            .await
            .unwrap();
        assert_eq!(d.denied_by, Some(Scope::Tokens));

        // budget
        let c = Claim {
            key_id: "k_budget".into(),
            budget_micro_usd: Some(1000),
            ..claim(None, None, 0)
        };
        assert_eq!(store.acquire(&c, t).await.unwrap().denied_by, None);
        store
            .settle_spend("k_budget", Held::Nowhere, 999)
            .await
            .unwrap();
        assert_eq!(store.acquire(&c, t).await.unwrap().denied_by, None);
        store
            .settle_spend("k_budget", Held::Nowhere, 1)
            .await
            .unwrap();
        assert_eq!(
            store.acquire(&c, t).await.unwrap().denied_by,
            Some(Scope::Budget)
        );

        budget_reservations(store, t).await;
        reservations_expire(store, t).await;
    }

    /// A reservation nobody settles (its instance died, the check's reply came too late)
    /// comes off the spend by itself once it expires; one settled after it expired adds
    /// only its cost. `hold` is the store's reservation lifetime in seconds.
    pub async fn reservations_expire_after(store: &dyn LimitStore, t: u64, hold: u64) {
        let c = Claim {
            key_id: "k_expire".into(),
            budget_micro_usd: Some(1000),
            reserve_micro_usd: 400,
            ..claim(None, None, 0)
        };
        let lost = store.acquire(&fresh(&c), t).await.unwrap();
        let late = fresh(&c);
        let settled_late = store.acquire(&late, t).await.unwrap();
        assert_eq!(settled_late.spend_micro_usd, 800);
        let d = store.acquire(&fresh(&c), t + hold - 1).await.unwrap();
        assert_eq!(
            (d.denied_by, d.spend_micro_usd),
            (Some(Scope::Budget), 800),
            "both still held just before they expire"
        );
        let d = store.acquire(&fresh(&c), t + hold).await.unwrap();
        assert_eq!(
            (d.denied_by, d.spend_micro_usd),
            (None, 400),
            "both expired, nothing settled: only the new one is held ({lost:?})"
        );
        // the late one settles now at 50: its reservation is already gone, its cost counts
        settle_at(store, &late, &settled_late, 50).await;
        let d = store.acquire(&fresh(&c), t + hold).await.unwrap();
        assert_eq!(d.spend_micro_usd, 400 + 50 + 400);
    }

    async fn reservations_expire(store: &dyn LimitStore, t: u64) {
        reservations_expire_after(store, t, DEFAULT_RESERVATION_TTL.as_secs()).await;
    }

    /// Budgets hold each request's worst case from the check until settlement.
    async fn budget_reservations(store: &dyn LimitStore, t: u64) {
        let c = Claim {
            key_id: "k_reserve".into(),
            budget_micro_usd: Some(1000),
            reserve_micro_usd: 300,
            ..claim(None, None, 0)
        };
        let seen = |d: &Decision| (d.denied_by, d.reserved_micro_usd, d.spend_micro_usd);
        let mut held = Vec::new();
        for spend in [300, 600, 900] {
            let request = fresh(&c);
            let d = store.acquire(&request, t).await.unwrap();
            assert_eq!(seen(&d), (None, 300, spend));
            held.push((request, d));
        }
        let d = store.acquire(&fresh(&c), t).await.unwrap();
        assert_eq!(
            seen(&d),
            (Some(Scope::Budget), 0, 900),
            "900 + 300 > 1000 while the first three are unsettled"
        );
        // one settles at its real cost, 100: 200 of its 300 come back
        settle_at(store, &held[0].0, &held[0].1, 100).await;
        let fourth = fresh(&c);
        let d = store.acquire(&fourth, t).await.unwrap();
        assert_eq!(seen(&d), (None, 300, 1000), "700 + 300 fits exactly");
        assert_eq!(
            seen(&store.acquire(&fresh(&c), t).await.unwrap()).0,
            Some(Scope::Budget)
        );
        // a failed request hands its whole reservation back
        settle_at(store, &fourth, &d, 0).await;
        assert_eq!(seen(&store.acquire(&fresh(&c), t).await.unwrap()).0, None);

        // a request whose worst case exceeds the whole budget could never fit: it passes
        // while anything is left and holds all of it, so it runs alone
        let big = Claim {
            key_id: "k_big".into(),
            reserve_micro_usd: 5000,
            ..c.clone()
        };
        let small = Claim {
            key_id: "k_big".into(),
            reserve_micro_usd: 1,
            ..c.clone()
        };
        let first = fresh(&big);
        let d = store.acquire(&first, t).await.unwrap();
        assert_eq!(seen(&d), (None, 1000, 1000));
        let refused = store.acquire(&fresh(&small), t).await.unwrap();
        assert_eq!(seen(&refused), (Some(Scope::Budget), 0, 1000));
        settle_at(store, &first, &d, 63).await;
        let second = fresh(&big);
        let d = store.acquire(&second, t).await.unwrap();
        assert_eq!(seen(&d), (None, 937, 1000));
        // it cost more than was left: the one overshoot a budget allows
        settle_at(store, &second, &d, 1200).await;
        let d = store.acquire(&fresh(&big), t).await.unwrap();
        assert_eq!(seen(&d), (Some(Scope::Budget), 0, 1263), "spent");

        // a refusal by another limit reserves nothing
        let c = Claim {
            key_id: "k_reserve_rpm".into(),
            budget_micro_usd: Some(1000),
            reserve_micro_usd: 300,
            ..claim(Some(1), None, 0)
        };
        assert_eq!(
            seen(&store.acquire(&fresh(&c), t).await.unwrap()),
            (None, 300, 300)
        );
        let d = store.acquire(&fresh(&c), t).await.unwrap();
        assert_eq!(d.denied_by, Some(Scope::Requests));
        assert_eq!(d.reserved_micro_usd, 0);
        let d = store.acquire(&fresh(&c), t + WINDOW_SECS).await.unwrap();
        assert_eq!(
            seen(&d),
            (None, 300, 600),
            "the refused request held nothing"
        );
    }

    #[test]
    fn headers_follow_openai_names() {
        let c = claim(Some(10), Some(1000), 5);
        let d = Decision {
            denied_by: None,
            requests_used: 4,
            tokens_used: 205,
            retry_after_secs: 0,
            requests_reset_secs: 60,
            tokens_reset_secs: 59,
            bucket: 0,
            reserved_micro_usd: 0,
            spend_micro_usd: 0,
            reserved_in_shared: false,
        };
        let h = headers(&c, &d);
        assert!(h.contains(&("x-ratelimit-remaining-requests", "6".into())));
        assert!(h.contains(&("x-ratelimit-remaining-tokens", "795".into())));
        assert!(h.contains(&("x-ratelimit-reset-tokens", "59s".into())));
    }
}
