//! The runtime health of each deployment (a provider and the model name it is asked for):
//! its circuit breaker and its requests in flight.
//!
//! Per deployment, not per provider: one model's 429s (its own quota, its own outage) must not
//! shut off the provider's other models. Kept apart from the config that names the
//! deployments and shared across config reloads by identity: a reloaded deployment whose
//! provider did not change finds the state it had, so a SIGHUP neither closes open circuits
//! nor forgets failures counted so far. A deployment whose provider changed (another base
//! URL, kind or breaker setting) starts afresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use super::{Breaker, BreakerConfig};

/// A deployment's health as the failover loop sees it.
#[derive(Debug, Default)]
pub struct Health {
    pub breaker: Breaker,
    inflight: AtomicU64,
}

impl Health {
    pub fn new(breaker: BreakerConfig) -> Self {
        Self {
            breaker: Breaker::new(breaker),
            inflight: AtomicU64::new(0),
        }
    }

    /// Requests to this deployment that have started and not ended.
    pub fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn enter(&self) -> InFlight<'_> {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.inflight)
    }
}

/// One request in flight to a deployment; dropping it ends the count.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What identifies a deployment's state across reloads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeploymentKey {
    /// The provider's config name.
    pub provider: String,
    /// What of the provider's config its state depends on (kind, base URL, breaker).
    pub provider_config: String,
    /// The model name the provider is asked for (a pattern route's pattern).
    pub model: String,
}

/// Every deployment state a live config refers to.
static SHARED: LazyLock<Mutex<HashMap<DeploymentKey, Arc<Health>>>> = LazyLock::new(Mutex::default);

/// The state of the deployment `key`: the one a config loaded before holds, if any still
/// does, else a new one with `breaker`. States no config holds any more are dropped here.
pub fn shared(key: DeploymentKey, breaker: BreakerConfig) -> Arc<Health> {
    let mut map = SHARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    map.retain(|_, health| Arc::strong_count(health) > 1);
    map.entry(key)
        .or_insert_with(|| Arc::new(Health::new(breaker)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Admission;

    fn key(provider: &str, config: &str, model: &str) -> DeploymentKey {
        DeploymentKey {
            provider: provider.into(),
            provider_config: config.into(),
            model: model.into(),
        }
    }

    #[test]
    fn a_reloaded_deployment_keeps_its_state_unless_its_provider_changed() {
        let config = BreakerConfig::default();
        let before = shared(key("p-health", "v1", "m"), config);
        before.breaker.record_failure(Admission::Normal, 0);
        let other_model = shared(key("p-health", "v1", "n"), config);
        assert!(!Arc::ptr_eq(&before, &other_model), "one state per model");
        let reloaded = shared(key("p-health", "v1", "m"), config);
        assert!(
            Arc::ptr_eq(&before, &reloaded),
            "same deployment, same state"
        );
        let changed = shared(key("p-health", "v2", "m"), config);
        assert!(
            !Arc::ptr_eq(&before, &changed),
            "a changed provider starts afresh"
        );
        drop((before, reloaded));
        let again = shared(key("p-health", "v1", "m"), config);
        assert_eq!(
            again.breaker.state(0),
            crate::routing::CircuitState::Closed,
            "a state no config holds is gone"
        );
    }
}
