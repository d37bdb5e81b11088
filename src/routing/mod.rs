//! Failover: which deployment an attempt goes to ([`balance`]), which deployments are let
//! through at all ([`breaker`], kept per deployment in [`health`]), which failures are worth another attempt and how long to
//! wait first ([`retry`]), and the order of attempts for one client request ([`plan`]).
//!
//! Plain code, no sockets: the proxy's exchange loop asks the plan for the next attempt,
//! sends it, and reports the outcome back.

pub mod balance;
pub mod breaker;
pub mod health;
pub mod plan;
pub mod retry;

use std::sync::LazyLock;
use std::time::Instant;

pub use breaker::{Admission, Breaker, BreakerConfig, CircuitState};
pub use health::{DeploymentKey, Health};
pub use plan::{Next, Pick, Plan};
pub use retry::{Failure, Resend};

static CLOCK_START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds on the gateway's monotonic clock (the breakers' time base).
pub fn now_ms() -> u64 {
    CLOCK_START.elapsed().as_millis() as u64
}
