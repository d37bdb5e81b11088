//! Failover: which deployment an attempt goes to ([`balance`]), which providers are let
//! through at all ([`breaker`]), which failures are worth another attempt and how long to
//! wait first ([`retry`]), and the order of attempts for one client request ([`plan`]).
//!
//! Plain code, no sockets: the proxy's exchange loop asks the plan for the next attempt,
//! sends it, and reports the outcome back.

pub mod balance;
pub mod breaker;
pub mod plan;
pub mod retry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

pub use breaker::{Admission, Breaker, BreakerConfig, CircuitState};
pub use plan::{Next, Pick, Plan};
pub use retry::Failure;

static CLOCK_START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds on the gateway's monotonic clock (the breakers' time base).
pub fn now_ms() -> u64 {
    CLOCK_START.elapsed().as_millis() as u64
}

/// A provider's health as the failover loop sees it.
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

    /// Requests to this provider that have started and not ended.
    pub fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn enter(&self) -> InFlight<'_> {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.inflight)
    }
}

/// One request in flight to a provider; dropping it ends the count.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
