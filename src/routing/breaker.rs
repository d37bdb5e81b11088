//! A circuit breaker per provider: after `failures` consecutive retryable failures the
//! provider gets no requests for `open_ms`; then one request probes it, and its outcome
//! closes the circuit or opens it again.
//!
//! Plain atomics, no lock: every request reads the state of each deployment it considers.
//! Times are milliseconds on the gateway's monotonic clock ([`super::now_ms`]), passed in so
//! the tests drive a fake clock.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// When to open a circuit and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive retryable failures that open the circuit.
    pub failures: u32,
    /// How long an open circuit refuses requests before it lets one probe through.
    pub open: Duration,
}

impl Default for BreakerConfig {
    /// Five failures in a row is a provider in trouble, not a blip; 30 s is short next to a
    /// provider incident and long next to the retries it saves.
    fn default() -> Self {
        Self {
            failures: 5,
            open: Duration::from_secs(30),
        }
    }
}

/// What a circuit lets through now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Every request.
    Closed,
    /// None, until the open period ends.
    Open,
    /// The open period ended: one probe request, then a verdict.
    HalfOpen,
}

impl CircuitState {
    /// The `cheapai_circuit_state` gauge value.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

/// How a request was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The circuit is closed.
    Normal,
    /// The one probe of a half-open circuit: its outcome decides the circuit.
    Probe,
}

/// One provider's circuit.
#[derive(Debug, Default)]
pub struct Breaker {
    config: BreakerConfig,
    consecutive_failures: AtomicU32,
    /// 0 = closed; else the time the open period ends.
    open_until_ms: AtomicU64,
    probing: AtomicBool,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    pub fn state(&self, now_ms: u64) -> CircuitState {
        match self.open_until_ms.load(Ordering::Acquire) {
            0 => CircuitState::Closed,
            until if now_ms < until => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    /// Whether a request could be let through now (without taking the probe).
    pub fn admits(&self, now_ms: u64) -> bool {
        match self.state(now_ms) {
            CircuitState::Closed => true,
            CircuitState::Open => false,
            CircuitState::HalfOpen => !self.probing.load(Ordering::Acquire),
        }
    }

    /// Lets a request through, taking the probe of a half-open circuit; `None` when the
    /// circuit is open or its probe is already out.
    pub fn admit(&self, now_ms: u64) -> Option<Admission> {
        match self.state(now_ms) {
            CircuitState::Closed => Some(Admission::Normal),
            CircuitState::Open => None,
            CircuitState::HalfOpen => self
                .probing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
                .then_some(Admission::Probe),
        }
    }

    /// The provider answered (any answer that is not a provider failure): the circuit closes.
    pub fn record_success(&self, admission: Admission) {
        self.consecutive_failures.store(0, Ordering::Release);
        if admission == Admission::Probe || self.open_until_ms.load(Ordering::Acquire) != 0 {
            self.open_until_ms.store(0, Ordering::Release);
        }
        if admission == Admission::Probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    /// A retryable failure. A failed probe opens the circuit again at once; otherwise the
    /// circuit opens when the failures in a row reach the threshold. True when this failure
    /// opened it.
    pub fn record_failure(&self, admission: Admission, now_ms: u64) -> bool {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        let opens = admission == Admission::Probe
            || (failures >= self.config.failures.max(1)
                && self.state(now_ms) == CircuitState::Closed);
        if opens {
            let until = now_ms
                .saturating_add(self.config.open.as_millis() as u64)
                .max(1);
            self.open_until_ms.store(until, Ordering::Release);
        }
        if admission == Admission::Probe {
            self.probing.store(false, Ordering::Release);
        }
        opens
    }

    /// The request ended with no verdict on the provider (the client left, the deadline
    /// passed while waiting elsewhere): a probe it held is handed back for the next request.
    pub fn release(&self, admission: Admission) {
        if admission == Admission::Probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    /// How long until an open circuit lets a probe through (zero when it is not open).
    pub fn reopens_in(&self, now_ms: u64) -> Duration {
        let until = self.open_until_ms.load(Ordering::Acquire);
        Duration::from_millis(until.saturating_sub(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failures: 3,
            open: Duration::from_millis(1000),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker();
        assert!(!b.record_failure(Admission::Normal, 0));
        assert!(!b.record_failure(Admission::Normal, 0));
        b.record_success(Admission::Normal);
        assert!(!b.record_failure(Admission::Normal, 0));
        assert!(!b.record_failure(Admission::Normal, 0));
        assert_eq!(b.state(10), CircuitState::Closed);
        assert!(b.record_failure(Admission::Normal, 10));
        assert_eq!(b.state(10), CircuitState::Open);
        assert_eq!(b.admit(500), None);
        assert_eq!(b.reopens_in(500), Duration::from_millis(510));
    }

    #[test]
    fn one_probe_after_the_open_period_and_its_outcome_decides() {
        let b = breaker();
        for _ in 0..3 {
            b.record_failure(Admission::Normal, 0);
        }
        assert_eq!(b.admit(999), None);
        assert_eq!(b.state(1000), CircuitState::HalfOpen);
        assert_eq!(b.admit(1000), Some(Admission::Probe));
        assert_eq!(b.admit(1000), None, "only one probe at a time");
        assert!(!b.admits(1000));
        // the probe fails: open again for a full period from now
        assert!(b.record_failure(Admission::Probe, 1200));
        assert_eq!(b.state(2199), CircuitState::Open);
        assert_eq!(b.admit(2200), Some(Admission::Probe));
        b.record_success(Admission::Probe);
        assert_eq!(b.state(2200), CircuitState::Closed);
        assert_eq!(b.admit(2200), Some(Admission::Normal));
        // the count starts again from zero
        assert!(!b.record_failure(Admission::Normal, 2300));
        assert_eq!(b.state(2300), CircuitState::Closed);
    }

    #[test]
    fn a_probe_with_no_verdict_is_handed_back() {
        let b = breaker();
        for _ in 0..3 {
            b.record_failure(Admission::Normal, 0);
        }
        assert_eq!(b.admit(1000), Some(Admission::Probe));
        b.release(Admission::Probe);
        assert_eq!(b.admit(1000), Some(Admission::Probe));
    }

    #[test]
    fn late_failures_of_requests_admitted_before_it_opened_do_not_extend_it() {
        let b = breaker();
        for _ in 0..3 {
            b.record_failure(Admission::Normal, 0);
        }
        assert!(!b.record_failure(Admission::Normal, 900));
        assert_eq!(b.state(1000), CircuitState::HalfOpen);
    }
}
