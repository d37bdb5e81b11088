//! The in-memory twin of the Redis limit store: the same sliding window, per instance.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Claim, Decision, Held, LimitStore, Scope, DEFAULT_RESERVATION_TTL, WINDOW_SECS};
use crate::state::StateError;

#[derive(Default)]
struct Window {
    requests: BTreeMap<u64, u64>,
    tokens: BTreeMap<u64, u64>,
}

/// One budget reservation not yet settled: its member name, micro-USD and expiry (unix s).
struct Reservation {
    member: String,
    micro_usd: u64,
    expires: u64,
}

/// A key's spend: settled costs plus the reservations still held, as in Redis.
#[derive(Default)]
struct Spend {
    /// Micro-USD, as `cai:spend:{k_…}`.
    total: u64,
    /// As `cai:held:{k_…}`.
    held: Vec<Reservation>,
}

impl Spend {
    /// Takes reservations past their expiry off the total (the rule of `window.lua`).
    fn expire(&mut self, now: u64) {
        let total = &mut self.total;
        self.held.retain(|r| {
            let live = r.expires > now;
            if !live {
                *total = total.saturating_sub(r.micro_usd);
            }
            live
        });
    }
}

/// Windows and spend in process memory.
pub struct LocalLimits {
    windows: Mutex<HashMap<(String, String), Window>>,
    spend: Mutex<HashMap<String, Spend>>,
    /// How long a budget reservation is held before it is taken back unsettled.
    hold_secs: u64,
}

impl Default for LocalLimits {
    fn default() -> Self {
        Self::with_hold(DEFAULT_RESERVATION_TTL)
    }
}

/// Drops buckets older than the window; returns the live sum.
fn live(buckets: &mut BTreeMap<u64, u64>, now: u64) -> u64 {
    let oldest = now.saturating_sub(WINDOW_SECS - 1);
    buckets.retain(|second, _| *second >= oldest);
    buckets.values().sum()
}

fn wait_for(buckets: &BTreeMap<u64, u64>, used: u64, need: u64, limit: u64, now: u64) -> u64 {
    let mut over = (used + need).saturating_sub(limit) as i64;
    for (second, n) in buckets {
        over -= *n as i64;
        if over <= 0 {
            return (second + WINDOW_SECS).saturating_sub(now).max(1);
        }
    }
    WINDOW_SECS
}

fn reset(buckets: &BTreeMap<u64, u64>, now: u64) -> u64 {
    buckets
        .keys()
        .next_back()
        .map_or(0, |s| (s + WINDOW_SECS).saturating_sub(now).max(1))
}

/// What a request of worst-case cost `cost` holds of `budget` beside `spent` (settled costs
/// and unsettled reservations) until it is settled; `None` when it does not fit. The rule of
/// `window.lua`: a request that could never fit (`cost > budget`) takes all that is left, so
/// it runs alone instead of being refused forever.
fn hold(budget: u64, spent: u64, cost: u64) -> Option<u64> {
    if spent >= budget {
        return None;
    }
    if cost > budget {
        return Some(budget - spent);
    }
    (spent.saturating_add(cost) <= budget).then_some(cost)
}

fn poisoned() -> StateError {
    StateError("local limits lock poisoned".into())
}

impl LocalLimits {
    /// A twin whose budget reservations expire after `ttl` unless settled.
    pub fn with_hold(ttl: std::time::Duration) -> Self {
        Self {
            windows: Mutex::default(),
            spend: Mutex::default(),
            hold_secs: ttl.as_secs().max(1),
        }
    }

    /// Takes the spend the shared store reported for a key as this twin's own, so that
    /// should the shared store stop answering, budget checks here start from the key's
    /// spend across every instance, not from what this instance alone has seen. The twin's
    /// own reservations are dropped with its old total: the shared total does not hold them.
    pub fn remember_spend(&self, key_id: &str, micro_usd: u64) {
        if let Ok(mut spend) = self.spend.lock() {
            spend.insert(
                key_id.to_string(),
                Spend {
                    total: micro_usd,
                    held: Vec::new(),
                },
            );
        }
    }
}

#[async_trait]
impl LimitStore for LocalLimits {
    async fn acquire(&self, claim: &Claim, now: u64) -> Result<Decision, StateError> {
        // both locks for the whole decision: the budget check and the reservation are one
        // step, as in the script (spend before windows, the only order both are taken in)
        let mut spend = self.spend.lock().map_err(|_| poisoned())?;
        let spent = match claim.budget_micro_usd {
            Some(_) => spend.get_mut(&claim.key_id).map_or(0, |s| {
                s.expire(now);
                s.total
            }),
            None => 0,
        };
        let held = match claim.budget_micro_usd {
            Some(budget) => hold(budget, spent, claim.reserve_micro_usd),
            None => Some(0),
        };
        let Some(held) = held else {
            return Ok(Decision {
                denied_by: Some(Scope::Budget),
                requests_used: 0,
                tokens_used: 0,
                retry_after_secs: 0,
                requests_reset_secs: 0,
                tokens_reset_secs: 0,
                bucket: now,
                reserved_micro_usd: 0,
                spend_micro_usd: spent,
                reserved_in_shared: false,
            });
        };
        let mut windows = self.windows.lock().map_err(|_| poisoned())?;
        let w = windows
            .entry((claim.key_id.clone(), claim.model.clone()))
            .or_default();
        let reqs = live(&mut w.requests, now);
        let toks = live(&mut w.tokens, now);
        let denied = |scope, retry| Decision {
            denied_by: Some(scope),
            requests_used: reqs,
            tokens_used: toks,
            retry_after_secs: retry,
            requests_reset_secs: reset(&w.requests, now),
            tokens_reset_secs: reset(&w.tokens, now),
            bucket: now,
            reserved_micro_usd: 0,
            spend_micro_usd: spent,
            reserved_in_shared: false,
        };
        if let Some(rpm) = claim.rpm {
            if reqs + 1 > rpm {
                return Ok(denied(
                    Scope::Requests,
                    wait_for(&w.requests, reqs, 1, rpm, now),
                ));
            }
        }
        if let Some(tpm) = claim.tpm {
            if toks > 0 && toks + claim.reserve > tpm {
                return Ok(denied(
                    Scope::Tokens,
                    wait_for(&w.tokens, toks, claim.reserve, tpm, now),
                ));
            }
        }
        *w.requests.entry(now).or_default() += 1;
        if claim.reserve > 0 {
            *w.tokens.entry(now).or_default() += claim.reserve;
        }
        if held > 0 {
            let key = spend.entry(claim.key_id.clone()).or_default();
            key.total += held;
            key.held.push(Reservation {
                member: format!("{}:{held}", claim.reservation_id),
                micro_usd: held,
                expires: now.saturating_add(self.hold_secs),
            });
        }
        Ok(Decision {
            denied_by: None,
            requests_used: reqs + 1,
            tokens_used: toks + claim.reserve,
            retry_after_secs: 0,
            requests_reset_secs: WINDOW_SECS,
            tokens_reset_secs: WINDOW_SECS,
            bucket: now,
            reserved_micro_usd: held,
            spend_micro_usd: spent + held,
            reserved_in_shared: false,
        })
    }

    async fn settle(
        &self,
        key_id: &str,
        model: &str,
        bucket: u64,
        delta: i64,
    ) -> Result<(), StateError> {
        let mut windows = self.windows.lock().map_err(|_| poisoned())?;
        if let Some(n) = windows
            .get_mut(&(key_id.to_string(), model.to_string()))
            .and_then(|w| w.tokens.get_mut(&bucket))
        {
            *n = (*n as i64 + delta).max(0) as u64;
        }
        Ok(())
    }

    async fn settle_spend(
        &self,
        key_id: &str,
        held: Held<'_>,
        cost_micro_usd: u64,
    ) -> Result<(), StateError> {
        let mut spend = self.spend.lock().map_err(|_| poisoned())?;
        let key = spend.entry(key_id.to_string()).or_default();
        let taken_back = match held {
            Held::Nowhere => 0,
            Held::Mirrored { micro_usd } => micro_usd,
            Held::Here { member, micro_usd } => {
                match key.held.iter().position(|r| r.member == member) {
                    Some(i) => {
                        key.held.swap_remove(i);
                        micro_usd
                    }
                    // expired: already taken off the total
                    None => 0,
                }
            }
        };
        key.total = key
            .total
            .saturating_add(cost_micro_usd)
            .saturating_sub(taken_back);
        Ok(())
    }
}

#[cfg(test)]
impl LocalLimits {
    /// A key's spend as this twin knows it.
    pub fn spend_of(&self, key_id: &str) -> u64 {
        self.spend
            .lock()
            .map(|s| s.get(key_id).map_or(0, |s| s.total))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_store_meets_the_contract() {
        super::super::tests::store_contract(&LocalLimits::default()).await;
    }
}
