//! Per-day usage totals per key (and per model within the day), kept by the history writer
//! beside the records, so that the usage API answers its totals from a few small sums instead
//! of reading every record in the range.

use std::collections::BTreeMap;

use super::UsageRecord;

/// One UTC day in milliseconds.
pub const DAY_MS: u64 = 86_400_000;

/// How many days of totals are kept (Redis expires each day's hash after this long).
pub const KEEP_DAYS: u64 = 400;

/// The summed counts of some requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cost_micro_usd: u64,
}

impl Sums {
    /// The field names, as the Redis day hashes and the usage API spell them.
    pub const FIELDS: [&'static str; 5] = [
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cost_micro_usd",
    ];

    /// The values in [`Self::FIELDS`] order.
    pub fn values(&self) -> [u64; 5] {
        [
            self.requests,
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.cost_micro_usd,
        ]
    }

    /// Counts one request.
    pub fn add_record(&mut self, r: &UsageRecord) {
        self.merge(&Sums {
            requests: 1,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cached_tokens: r.cached_tokens,
            cost_micro_usd: r.cost_micro_usd,
        });
    }

    pub fn merge(&mut self, other: &Sums) {
        self.requests = self.requests.saturating_add(other.requests);
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.cost_micro_usd = self.cost_micro_usd.saturating_add(other.cost_micro_usd);
    }

    /// Sets the field named `field` (one of [`Self::FIELDS`]); false for any other name.
    pub fn set(&mut self, field: &str, n: u64) -> bool {
        let slot = match field {
            "requests" => &mut self.requests,
            "prompt_tokens" => &mut self.prompt_tokens,
            "completion_tokens" => &mut self.completion_tokens,
            "cached_tokens" => &mut self.cached_tokens,
            "cost_micro_usd" => &mut self.cost_micro_usd,
            _ => return false,
        };
        *slot = n;
        true
    }
}

/// The totals of a key over some days: all its requests, and per model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub total: Sums,
    pub by_model: BTreeMap<String, Sums>,
}

impl Totals {
    pub fn add_record(&mut self, r: &UsageRecord) {
        self.total.add_record(r);
        self.by_model
            .entry(r.model.clone())
            .or_default()
            .add_record(r);
    }

    pub fn merge(&mut self, other: &Totals) {
        self.total.merge(&other.total);
        for (model, sums) in &other.by_model {
            self.by_model.entry(model.clone()).or_default().merge(sums);
        }
    }
}

/// The day number (days since 1970-01-01, UTC) of a Unix-millisecond time.
pub fn day_of(timestamp_ms: u64) -> u64 {
    timestamp_ms / DAY_MS
}

/// The first and last day (inclusive) that `[from_ms, to_ms)` touches; `None` when empty.
pub fn days_touched(from_ms: u64, to_ms: u64) -> Option<(u64, u64)> {
    if to_ms <= from_ms {
        return None;
    }
    Some((day_of(from_ms), day_of(to_ms - 1)))
}

/// The Redis hash field of a model's count: `m:{model}:{field}` (model names may hold `:`,
/// field names never do, so the last `:` splits them back).
pub fn model_field(model: &str, field: &str) -> String {
    format!("m:{model}:{field}")
}

/// Adds one field of a Redis day hash (`requests`, or `m:{model}:requests`, …) to `totals`.
/// Unknown fields (written by a later version) are ignored.
pub fn add_field(totals: &mut Totals, field: &str, n: u64) {
    match field.strip_prefix("m:").and_then(|f| f.rsplit_once(':')) {
        Some((model, name)) => {
            let mut one = Sums::default();
            if one.set(name, n) {
                totals
                    .by_model
                    .entry(model.to_string())
                    .or_default()
                    .merge(&one);
            }
        }
        None => {
            let mut one = Sums::default();
            if one.set(field, n) {
                totals.total.merge(&one);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_touched_are_inclusive_utc_days() {
        assert_eq!(days_touched(0, 1), Some((0, 0)));
        assert_eq!(days_touched(0, DAY_MS), Some((0, 0)));
        assert_eq!(days_touched(DAY_MS - 1, DAY_MS + 1), Some((0, 1)));
        assert_eq!(days_touched(5, 5), None);
        assert_eq!(
            days_touched(0, u64::MAX),
            Some((0, (u64::MAX - 1) / DAY_MS))
        );
    }

    #[test]
    fn hash_fields_split_back_into_models() {
        let mut t = Totals::default();
        add_field(&mut t, "requests", 3);
        add_field(&mut t, "m:gpt-4o:requests", 2);
        add_field(&mut t, "m:ollama:llama3:8b:cost_micro_usd", 7);
        add_field(&mut t, "m:x:not_a_field", 9);
        add_field(&mut t, "later_field", 9);
        assert_eq!(t.total.requests, 3);
        assert_eq!(t.by_model["gpt-4o"].requests, 2);
        assert_eq!(t.by_model["ollama:llama3:8b"].cost_micro_usd, 7);
        assert!(!t.by_model.contains_key("x"));
        assert_eq!(model_field("a:b", "requests"), "m:a:b:requests");
    }
}
