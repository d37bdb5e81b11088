//! The attempts of one client request: the model's deployments first (a new healthy
//! deployment at once, one already tried only after a backoff), up to `1 + retries`
//! attempts, then each fallback model the same way.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::balance::{self, Candidate};
use super::breaker::Admission;
use super::retry::{self, LONGEST_HONOURED_RETRY_AFTER};
use crate::catalog::Model;

/// Most deployments one model may have (the plan tracks them in a bit set).
pub const MAX_DEPLOYMENTS: usize = 64;

/// The next attempt to make.
#[derive(Debug)]
pub struct Pick {
    pub model: Arc<Model>,
    /// Index into `model.deployments`.
    pub deployment: usize,
    /// Wait this long before sending (a backoff before a deployment already tried).
    pub wait: Duration,
    /// How the deployment's circuit let the attempt through (report it back).
    pub admission: Admission,
}

/// What the plan says next.
#[derive(Debug)]
pub enum Next {
    Attempt(Pick),
    /// Every attempt allowed was made.
    Exhausted,
    /// No attempt was made at all: every deployment of every route has an open circuit. The
    /// first of them lets a probe through after this long.
    AllOpen(Duration),
}

/// The attempt order of one client request.
#[derive(Debug)]
pub struct Plan {
    routes: Vec<Arc<Model>>,
    route: usize,
    /// Attempts made on `routes[route]`.
    tries_on_route: u32,
    /// Deployments of the current route already tried.
    tried: u64,
    /// Deployments of the current route not to try again (asked for a long wait).
    excluded: u64,
    /// A short `Retry-After` to wait out before the next attempt on a tried deployment.
    retry_after: Duration,
    attempts: u32,
}

impl Plan {
    /// `routes`: the model, then the fallback models the client's key may use.
    pub fn new(routes: Vec<Arc<Model>>) -> Self {
        Self {
            routes,
            route: 0,
            tries_on_route: 0,
            tried: 0,
            excluded: 0,
            retry_after: Duration::ZERO,
            attempts: 0,
        }
    }

    /// Keeps the first route to the deployments of `provider` (when it has any): a request
    /// continuing a conversation stored at that provider can only be served there.
    pub fn pin_provider(&mut self, provider: &str) {
        let Some(model) = self.routes.first() else {
            return;
        };
        let elsewhere: u64 = model
            .deployments
            .iter()
            .take(MAX_DEPLOYMENTS)
            .enumerate()
            .filter(|(_, d)| d.provider.name != provider)
            .fold(0, |bits, (i, _)| bits | (1 << i));
        if elsewhere.count_ones() < model.deployments.len().min(MAX_DEPLOYMENTS) as u32 {
            self.excluded = elsewhere;
        }
    }

    /// Attempts handed out so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The next attempt, taking the probe of a half-open circuit when it picks one.
    pub fn next(&mut self, now_ms: u64, rng: &mut impl Rng) -> Next {
        while let Some(model) = self.routes.get(self.route).cloned() {
            if self.tries_on_route > model.retry.retries {
                self.advance();
                continue;
            }
            let open = |i: usize, d: &crate::catalog::Deployment| {
                self.excluded & (1 << i) == 0 && d.health.breaker.admits(now_ms)
            };
            let healthy: Vec<usize> = (0..model.deployments.len().min(MAX_DEPLOYMENTS))
                .filter(|&i| open(i, &model.deployments[i]))
                .collect();
            let untried: Vec<usize> = healthy
                .iter()
                .copied()
                .filter(|&i| self.tried & (1 << i) == 0)
                .collect();
            let (pool, wait) = if !untried.is_empty() {
                (untried, Duration::ZERO)
            } else if !healthy.is_empty() {
                let backoff = retry::backoff(self.tries_on_route, rng);
                (healthy, backoff.max(self.retry_after))
            } else {
                self.advance();
                continue;
            };
            let candidates: Vec<Candidate> = pool
                .iter()
                .map(|&i| Candidate {
                    weight: model.deployments[i].weight,
                    inflight: model.deployments[i].health.inflight(),
                })
                .collect();
            let Some(chosen) = balance::choose(&candidates, rng).map(|c| pool[c]) else {
                self.advance();
                continue;
            };
            // Another request may have taken a half-open circuit's only probe since `admits`.
            let Some(admission) = model.deployments[chosen].health.breaker.admit(now_ms) else {
                self.excluded |= 1 << chosen;
                continue;
            };
            self.tried |= 1 << chosen;
            self.tries_on_route += 1;
            self.attempts += 1;
            self.retry_after = Duration::ZERO;
            return Next::Attempt(Pick {
                model,
                deployment: chosen,
                wait,
                admission,
            });
        }
        if self.attempts > 0 {
            return Next::Exhausted;
        }
        let reopens = self
            .routes
            .iter()
            .flat_map(|m| m.deployments.iter())
            .map(|d| d.health.breaker.reopens_in(now_ms))
            .min()
            .unwrap_or_default();
        Next::AllOpen(reopens)
    }

    /// The attempt on `pick` failed in a way worth retrying; `retry_after` is what the
    /// provider asked for, if anything.
    pub fn failed(&mut self, pick: &Pick, retry_after: Option<Duration>) {
        if let Some(wait) = retry_after {
            if wait > LONGEST_HONOURED_RETRY_AFTER {
                self.excluded |= 1 << pick.deployment;
            } else {
                self.retry_after = self.retry_after.max(wait);
            }
        }
    }

    /// The picked attempt was not made after all (the fallback model's own limits refused
    /// it): that model is skipped and the attempt not counted.
    pub fn abandon(&mut self, pick: &Pick) {
        pick.model.deployments[pick.deployment]
            .health
            .breaker
            .release(pick.admission);
        self.attempts = self.attempts.saturating_sub(1);
        self.advance();
    }

    fn advance(&mut self) {
        self.route += 1;
        self.tries_on_route = 0;
        self.tried = 0;
        self.excluded = 0;
        self.retry_after = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Deployment, Limits, Price, RetryPolicy};
    use crate::providers::{Provider, ProviderKind};
    use crate::routing::{BreakerConfig, Health};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// A provider serving one model, and that deployment's state (shared by every model
    /// built on it in a test, as a reload shares it).
    struct Served {
        provider: Arc<Provider>,
        health: Arc<Health>,
    }

    fn provider(name: &str) -> Served {
        let breaker = BreakerConfig {
            failures: 1,
            open: Duration::from_millis(1000),
        };
        Served {
            provider: Arc::new(Provider::for_tests(name, ProviderKind::OpenAi, breaker)),
            health: Arc::new(Health::new(breaker)),
        }
    }

    fn model(name: &str, providers: &[&Served], retries: u32) -> Arc<Model> {
        Arc::new(Model {
            name: name.into(),
            deployments: providers
                .iter()
                .map(|p| Deployment {
                    provider: Arc::clone(&p.provider),
                    upstream_model: None,
                    weight: 1,
                    metrics: Default::default(),
                    health: Arc::clone(&p.health),
                })
                .collect(),
            price: Price::default(),
            limits: Limits::default(),
            retry: RetryPolicy {
                retries,
                deadline: Duration::from_secs(60),
                retry_non_stream_timeouts: false,
                retry_unreadable_answers: false,
            },
            fallbacks: Vec::new(),
            max_output_tokens: None,
            prompt_cache: Default::default(),
        })
    }

    fn attempt(plan: &mut Plan, now: u64, rng: &mut StdRng) -> Pick {
        match plan.next(now, rng) {
            Next::Attempt(p) => p,
            other => panic!("expected an attempt, got {other:?}"),
        }
    }

    fn who(p: &Pick) -> String {
        format!(
            "{}/{}",
            p.model.name, p.model.deployments[p.deployment].provider.name
        )
    }

    #[test]
    fn another_deployment_at_once_then_the_same_after_a_backoff_then_fallbacks() {
        let mut rng = StdRng::seed_from_u64(3);
        let (a, b, c) = (provider("a"), provider("b"), provider("c"));
        let main = model("m", &[&a, &b], 2);
        let fallback = model("f", &[&c], 0);
        let mut plan = Plan::new(vec![main, fallback]);
        let first = attempt(&mut plan, 0, &mut rng);
        assert_eq!(first.wait, Duration::ZERO);
        plan.failed(&first, None);
        let second = attempt(&mut plan, 0, &mut rng);
        assert_ne!(who(&first), who(&second), "a new deployment first");
        assert_eq!(second.wait, Duration::ZERO);
        plan.failed(&second, None);
        let third = attempt(&mut plan, 0, &mut rng);
        assert!(third.wait >= Duration::from_millis(100), "{:?}", third.wait);
        assert!(third.model.name == "m");
        let fourth = attempt(&mut plan, 0, &mut rng);
        assert_eq!(who(&fourth), "f/c");
        assert_eq!(fourth.wait, Duration::ZERO);
        assert!(matches!(plan.next(0, &mut rng), Next::Exhausted));
        assert_eq!(plan.attempts(), 4);
    }

    #[test]
    fn open_circuits_are_skipped_and_all_open_says_when_to_come_back() {
        let mut rng = StdRng::seed_from_u64(3);
        let (a, b) = (provider("a"), provider("b"));
        a.health.breaker.record_failure(Admission::Normal, 0);
        let mut plan = Plan::new(vec![model("m", &[&a, &b], 5)]);
        for _ in 0..6 {
            let p = attempt(&mut plan, 10, &mut rng);
            assert_eq!(who(&p), "m/b");
        }
        b.health.breaker.record_failure(Admission::Normal, 400);
        let mut plan = Plan::new(vec![model("m", &[&a, &b], 5)]);
        match plan.next(500, &mut rng) {
            Next::AllOpen(wait) => assert_eq!(wait, Duration::from_millis(500)),
            other => panic!("{other:?}"),
        }
        // a's open period is over: one probe goes through, a second request finds none
        let mut plan = Plan::new(vec![model("m", &[&a], 0)]);
        let probe = attempt(&mut plan, 1000, &mut rng);
        assert_eq!(probe.admission, Admission::Probe);
        let mut other = Plan::new(vec![model("m", &[&a], 0)]);
        assert!(matches!(other.next(1000, &mut rng), Next::AllOpen(_)));
    }

    #[test]
    fn retry_after_short_is_waited_long_excludes_the_deployment() {
        let mut rng = StdRng::seed_from_u64(3);
        let a = provider("a");
        let mut plan = Plan::new(vec![model("m", &[&a], 3)]);
        let first = attempt(&mut plan, 0, &mut rng);
        plan.failed(&first, Some(Duration::from_secs(3)));
        let second = attempt(&mut plan, 0, &mut rng);
        assert!(second.wait >= Duration::from_secs(3));
        plan.failed(&second, Some(Duration::from_secs(60)));
        assert!(matches!(plan.next(0, &mut rng), Next::Exhausted));
    }
}
