//! Totals read from the hourly rollups: the hours a range touches, and the sums per model and
//! per UTC day that both stores fill from rows of (day, model, sums).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// The summed counts of some requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_micro_usd: u64,
    /// Requests that ended with an error label.
    pub errors: u64,
}

impl Sums {
    /// The sums of a rollup query's columns, in the stores' order: requests, errors,
    /// prompt, completion, cached, cache-write tokens, micro-USD (negative reads as 0).
    pub fn from_columns(c: [i64; 7]) -> Self {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Sums {
            requests: n(c[0]),
            errors: n(c[1]),
            prompt_tokens: n(c[2]),
            completion_tokens: n(c[3]),
            cached_tokens: n(c[4]),
            cache_write_tokens: n(c[5]),
            cost_micro_usd: n(c[6]),
        }
    }

    pub fn merge(&mut self, other: &Sums) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.requests, other.requests);
        add(&mut self.prompt_tokens, other.prompt_tokens);
        add(&mut self.completion_tokens, other.completion_tokens);
        add(&mut self.cached_tokens, other.cached_tokens);
        add(&mut self.cache_write_tokens, other.cache_write_tokens);
        add(&mut self.cost_micro_usd, other.cost_micro_usd);
        add(&mut self.errors, other.errors);
    }
}

/// Totals over some hours: the whole, per model, per UTC day (`YYYY-MM-DD`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub total: Sums,
    pub by_model: BTreeMap<String, Sums>,
    pub by_day: BTreeMap<String, Sums>,
}

impl Totals {
    /// Adds one rollup group: `day` is days since 1970-01-01 (UTC).
    pub fn add(&mut self, day: i64, model: &str, sums: &Sums) {
        self.total.merge(sums);
        self.by_model
            .entry(model.to_string())
            .or_default()
            .merge(sums);
        self.by_day.entry(day_name(day)).or_default().merge(sums);
    }
}

/// The hour number (hours since 1970-01-01 UTC) of a Unix-millisecond time.
pub fn hour_of(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(HOUR_MS)
}

/// The first and last hour (inclusive) that `[from_ms, to_ms)` touches; `None` when empty.
/// Times past what the stores hold (`i64::MAX`) are clamped to it.
pub fn hours_touched(from_ms: u64, to_ms: u64) -> Option<(i64, i64)> {
    let clamp = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
    let (from, to) = (clamp(from_ms), clamp(to_ms));
    (to > from).then(|| (hour_of(from), hour_of(to - 1)))
}

/// `YYYY-MM-DD` of a day number (UTC).
pub fn day_name(day: i64) -> String {
    let secs = u64::try_from(day.saturating_mul(86_400)).unwrap_or(0);
    let t = UNIX_EPOCH + Duration::from_secs(secs);
    let mut text = humantime::format_rfc3339_seconds(t).to_string();
    text.truncate(10);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_touched_are_inclusive_and_clamped() {
        let h = HOUR_MS as u64;
        assert_eq!(hours_touched(0, 1), Some((0, 0)));
        assert_eq!(hours_touched(0, h), Some((0, 0)));
        assert_eq!(hours_touched(h - 1, h + 1), Some((0, 1)));
        assert_eq!(hours_touched(7, 7), None);
        assert_eq!(
            hours_touched(0, u64::MAX),
            Some((0, (i64::MAX - 1) / HOUR_MS))
        );
    }

    #[test]
    fn days_are_named_in_utc() {
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(20_059), "2024-12-02");
    }

    #[test]
    fn groups_add_up_whole_per_model_and_per_day() {
        let one = Sums {
            requests: 1,
            cost_micro_usd: 5,
            errors: 1,
            ..Sums::default()
        };
        let mut t = Totals::default();
        t.add(0, "a", &one);
        t.add(0, "b", &one);
        t.add(1, "a", &one);
        assert_eq!(t.total.requests, 3);
        assert_eq!(t.total.errors, 3);
        assert_eq!(t.by_model["a"].cost_micro_usd, 10);
        assert_eq!(t.by_day["1970-01-01"].requests, 2);
        assert_eq!(t.by_day["1970-01-02"].requests, 1);
    }
}
