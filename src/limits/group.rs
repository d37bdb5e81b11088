//! Group commit of limit checks: requests of one (key, model) that arrive while that window's
//! script call is in flight wait, and the next call decides all of them at once.
//!
//! `window.lua` decides a batch in order, exactly as one call per request would (each
//! request sees the ones before it, their budget reservations included), so limits stay
//! exact across instances; what changes is the cost. Under load a key's requests are
//! concurrent, and one round trip, one script run and one reply now serve many of them
//! instead of one each, which is what lets limits in Redis cost little next to the request
//! itself. A request alone is sent at once, as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use redis::Script;
use tokio::sync::oneshot;

use super::keys::{held_key, settle_in_redis, spend_key};
use super::{Claim, Decision, Scope, WINDOW_SECS};
use crate::state::{Redis, StateError};

static WINDOW: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("window.lua")));

/// Most requests decided by one script call.
const MAX_BATCH: usize = 256;

/// What a batch has in common: requests are batched only with others that share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Terms {
    now: u64,
    rpm: u64,
    tpm: u64,
    budget: Option<u64>,
    /// When a budget reservation made now expires.
    hold_until: u64,
}

struct Waiter {
    terms: Terms,
    reserve: u64,
    reserve_micro_usd: u64,
    reservation_id: String,
    reply: oneshot::Sender<Result<Decision, StateError>>,
}

/// One window's requests waiting for the next call.
#[derive(Default)]
struct Queue {
    waiting: Vec<Waiter>,
    /// A task is sending this window's batches; new requests only join the queue.
    draining: bool,
}

/// The queues of every window with requests waiting or in flight (entries go when empty).
#[derive(Clone, Default)]
pub struct Checks {
    queues: Arc<Mutex<HashMap<String, Queue>>>,
}

fn lock(queues: &Mutex<HashMap<String, Queue>>) -> MutexGuard<'_, HashMap<String, Queue>> {
    // a panic while holding the lock cannot leave a queue half-updated: each update is
    // one push or one drain
    queues
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Checks {
    /// Decides `claim` in the window hash `window`, batched with the window's other waiting
    /// requests. Waits at most the Redis deadline.
    pub async fn check(
        &self,
        redis: &Arc<Redis>,
        window: String,
        claim: &Claim,
        now: u64,
        hold_until: u64,
    ) -> Result<Decision, StateError> {
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter {
            terms: Terms {
                now,
                rpm: claim.rpm.unwrap_or(0),
                tpm: claim.tpm.unwrap_or(0),
                budget: claim.budget_micro_usd,
                hold_until,
            },
            reserve: claim.reserve,
            reserve_micro_usd: claim.reserve_micro_usd,
            reservation_id: claim.reservation_id.clone(),
            reply,
        };
        let start = {
            let mut queues = lock(&self.queues);
            let queue = queues.entry(window.clone()).or_default();
            queue.waiting.push(waiter);
            !std::mem::replace(&mut queue.draining, true)
        };
        if start {
            let key_id = claim.key_id.clone();
            tokio::spawn(drain(redis.clone(), self.clone(), window, key_id));
        }
        let deadline = redis.timeout();
        let mut answer = answer;
        match tokio::time::timeout(deadline, &mut answer).await {
            Ok(Ok(decision)) => decision,
            Ok(Err(_)) => Err(StateError("limit check: the batch was dropped".into())),
            Err(_) => {
                // Closing first settles the race with the drain task: either the decision
                // is already here (and counts), or the task's send fails and it hands the
                // budget reservation back ([`deliver`]). Never a reservation in Redis for a
                // request the local twin decided, which nobody would settle there.
                answer.close();
                match answer.try_recv() {
                    Ok(decision) => decision,
                    Err(_) => Err(StateError(format!(
                        "limit check: no answer within {} ms",
                        deadline.as_millis()
                    ))),
                }
            }
        }
    }

    /// The next batch of `window`: the longest run of waiting requests with the same terms;
    /// `None` (and the queue removed) when nothing waits. Requests that stopped waiting (past
    /// their deadline, already decided by the local fallback) are dropped, not counted: this
    /// also bounds the queue while Redis is slow.
    fn next_batch(&self, window: &str) -> Option<Vec<Waiter>> {
        let mut queues = lock(&self.queues);
        let queue = queues.get_mut(window)?;
        queue.waiting.retain(|w| !w.reply.is_closed());
        let Some(first) = queue.waiting.first().map(|w| w.terms) else {
            queues.remove(window);
            return None;
        };
        let n = queue
            .waiting
            .iter()
            .take(MAX_BATCH)
            .take_while(|w| w.terms == first)
            .count();
        Some(queue.waiting.drain(..n).collect())
    }
}

/// Sends `window`'s batches one after the other until its queue is empty.
async fn drain(redis: Arc<Redis>, checks: Checks, window: String, key_id: String) {
    let mut unfinished = Unfinished {
        checks: checks.clone(),
        window: window.clone(),
        armed: true,
    };
    while let Some(batch) = checks.next_batch(&window) {
        match decide(&redis, &window, &key_id, &batch).await {
            Ok(decisions) => {
                for (member, micro_usd) in deliver(batch, decisions) {
                    hand_back(&redis, &key_id, &member, micro_usd).await;
                }
            }
            Err(e) => {
                for waiter in batch {
                    let _ = waiter.reply.send(Err(e.clone()));
                }
            }
        }
    }
    unfinished.armed = false;
}

/// Sends each waiter its decision; returns the budget reservations (member, micro-USD) of
/// the waiters that had gone (past their deadline, decided by the local twin instead),
/// which no settlement will ever hand back.
fn deliver(batch: Vec<Waiter>, decisions: Vec<Decision>) -> Vec<(String, u64)> {
    let mut unclaimed = Vec::new();
    for (waiter, decision) in batch.into_iter().zip(decisions) {
        let reserved = decision.reserved_micro_usd;
        if waiter.reply.send(Ok(decision)).is_err() && reserved > 0 {
            unclaimed.push((format!("{}:{reserved}", waiter.reservation_id), reserved));
        }
    }
    unclaimed
}

/// Takes a reservation nobody will settle off the key's spend. A failure leaves it
/// counted until it expires; it is logged.
async fn hand_back(redis: &Redis, key_id: &str, member: &str, micro_usd: u64) {
    if let Err(e) = settle_in_redis(redis, key_id, member, micro_usd, 0).await {
        log::warn!("handing back {micro_usd} micro-USD reserved for a request that left: {e}");
    }
}

/// Should a drain task end early (cancelled with its runtime, or a panic), its window must
/// not stay marked as draining forever: the next request starts a new task.
struct Unfinished {
    checks: Checks,
    window: String,
    armed: bool,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if self.armed {
            if let Some(queue) = lock(&self.checks.queues).get_mut(&self.window) {
                queue.draining = false;
            }
        }
    }
}

/// One script call for a batch (all with the same terms); one decision per request.
async fn decide(
    redis: &Redis,
    window: &str,
    key_id: &str,
    batch: &[Waiter],
) -> Result<Vec<Decision>, StateError> {
    let Some(terms) = batch.first().map(|w| w.terms) else {
        return Ok(Vec::new());
    };
    let mut call = WINDOW.prepare_invoke();
    call.key(window)
        .key(spend_key(key_id))
        .key(held_key(key_id));
    call.arg(terms.now)
        .arg(WINDOW_SECS)
        .arg(terms.rpm)
        .arg(terms.tpm)
        // the script's "no budget" is -1 (0 is a budget nothing fits in)
        .arg(
            terms
                .budget
                .map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX)),
        )
        .arg(terms.hold_until);
    for w in batch {
        call.arg(w.reserve)
            .arg(w.reserve_micro_usd)
            .arg(&w.reservation_id);
    }
    type Row = (u8, String, u64, u64, u64, u64, u64, u64, u64);
    let rows: Vec<Row> = redis
        .run("limits", move |mut c| {
            Box::pin(async move { call.invoke_async(&mut c).await })
        })
        .await?;
    if rows.len() != batch.len() {
        return Err(StateError(format!(
            "limits: {} decisions for {} requests",
            rows.len(),
            batch.len()
        )));
    }
    Ok(rows
        .into_iter()
        .map(
            |(allowed, denied_by, reqs, toks, retry, req_reset, tok_reset, reserved, spend)| {
                Decision {
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
                    bucket: terms.now,
                    reserved_micro_usd: reserved,
                    spend_micro_usd: spend,
                    reserved_in_shared: false,
                }
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(now: u64, reserve: u64) -> (Waiter, oneshot::Receiver<Result<Decision, StateError>>) {
        let (reply, answer) = oneshot::channel();
        let terms = Terms {
            now,
            rpm: 10,
            tpm: 0,
            budget: None,
            hold_until: now + 600,
        };
        (
            Waiter {
                terms,
                reserve,
                reserve_micro_usd: 0,
                reservation_id: format!("r{reserve}"),
                reply,
            },
            answer,
        )
    }

    #[test]
    fn batches_skip_abandoned_requests_and_split_where_the_terms_change() {
        let checks = Checks::default();
        let mut answers = Vec::new();
        {
            let mut queues = lock(&checks.queues);
            let queue = queues.entry("w".into()).or_default();
            for (now, reserve, keep) in [(1, 1, true), (1, 2, false), (1, 3, true), (2, 4, true)] {
                let (w, answer) = waiter(now, reserve);
                queue.waiting.push(w);
                if keep {
                    answers.push(answer);
                }
            }
        }
        let reserves = |batch: Vec<Waiter>| batch.iter().map(|w| w.reserve).collect::<Vec<_>>();
        assert_eq!(checks.next_batch("w").map(reserves), Some(vec![1, 3]));
        assert_eq!(checks.next_batch("w").map(reserves), Some(vec![4]));
        assert!(checks.next_batch("w").is_none());
        assert!(lock(&checks.queues).is_empty(), "an empty queue is removed");
    }

    /// A request that stopped waiting got its budget decided by the local twin: what the
    /// script reserved for it is reported for handing back, and only that.
    #[test]
    fn reservations_of_requests_that_left_are_handed_back() {
        let decision = |reserved| Decision {
            denied_by: None,
            requests_used: 1,
            tokens_used: 0,
            retry_after_secs: 0,
            requests_reset_secs: 60,
            tokens_reset_secs: 60,
            bucket: 1,
            reserved_micro_usd: reserved,
            spend_micro_usd: reserved,
            reserved_in_shared: false,
        };
        let (stayed, mut answer) = waiter(1, 0);
        let (left, gone) = waiter(1, 0);
        drop(gone);
        let unclaimed = deliver(vec![stayed, left], vec![decision(300), decision(200)]);
        assert_eq!(unclaimed, vec![("r0:200".to_string(), 200)]);
        assert_eq!(answer.try_recv().unwrap().unwrap().reserved_micro_usd, 300);
    }

    #[test]
    fn a_drain_that_ends_early_lets_the_next_request_start_another() {
        let checks = Checks::default();
        lock(&checks.queues).entry("w".into()).or_default().draining = true;
        drop(Unfinished {
            checks: checks.clone(),
            window: "w".into(),
            armed: true,
        });
        assert!(!lock(&checks.queues)["w"].draining);
    }
}
