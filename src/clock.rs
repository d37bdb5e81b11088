//! The wall clock in the units records and wire formats use. One place, so "0 when the clock
//! is before 1970" is decided once rather than in every module that stamps a time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now (0 if the system clock is before 1970): `created` fields, key expiry,
/// limit windows.
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix milliseconds now (0 if the system clock is before 1970): usage records and the
/// ledger's times.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
