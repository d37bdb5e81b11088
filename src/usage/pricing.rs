//! Prices: tokens × the model's tariff, in integer micro-USD.

use super::{CacheWrites, Usage};
use crate::catalog::Price;

/// The cost of `usage` under `price` (micro-USD per 1M tokens), rounded to the nearest
/// micro-USD. Cached prompt tokens are billed at the cached rate, the rest of the prompt at
/// the input rate. Same as [`cost_with_cache_writes`] with no cache writes.
pub fn cost_micro_usd(usage: &Usage, price: &Price) -> u64 {
    cost_with_cache_writes(usage, CacheWrites::default(), price)
}

/// The cost of `usage` of which `writes` are prompt tokens written to Anthropic's prompt
/// cache: those are billed at the cache-write rates (5-minute and 1-hour), cached prompt
/// tokens at the cached rate, the rest of the prompt at the input rate, the completion at
/// the output rate; rounded once, to the nearest micro-USD. `writes` are part of
/// `usage.prompt` (never billed twice); counts that exceed it are capped to it.
pub fn cost_with_cache_writes(usage: &Usage, writes: CacheWrites, price: &Price) -> u64 {
    let cached = usage.cached.min(usage.prompt);
    let rest = usage.prompt - cached;
    let written_1h = writes.h1.min(rest);
    let written_5m = writes.m5.min(rest - written_1h);
    let uncached = rest - written_1h - written_5m;
    let total = u128::from(uncached) * u128::from(price.input)
        + u128::from(cached) * u128::from(price.cached_input)
        + u128::from(written_5m) * u128::from(price.cache_write_5m)
        + u128::from(written_1h) * u128::from(price.cache_write_1h)
        + u128::from(usage.completion) * u128::from(price.output);
    u64::try_from((total + 500_000) / 1_000_000).unwrap_or(u64::MAX)
}

/// Micro-USD as USD, for display and metrics only (never summed).
pub fn usd(micro: u64) -> f64 {
    micro as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt4o() -> Price {
        Price {
            input: 2_500_000,
            output: 10_000_000,
            cached_input: 1_250_000,
            cache_write_5m: 3_125_000,
            cache_write_1h: 5_000_000,
        }
    }

    /// claude-sonnet-4-5's list prices: $3 input, $15 output, $0.30 cache reads, $3.75
    /// 5-minute and $6 1-hour cache writes per 1M tokens.
    fn sonnet() -> Price {
        Price {
            input: 3_000_000,
            output: 15_000_000,
            cached_input: 300_000,
            cache_write_5m: 3_750_000,
            cache_write_1h: 6_000_000,
        }
    }

    #[test]
    fn prices_prompt_cached_and_completion_tokens() {
        // 1000 prompt (400 cached) and 500 completion tokens of gpt-4o:
        // 600 × 2.5 + 400 × 1.25 + 500 × 10 = 1500 + 500 + 5000 = 7000 micro-USD
        let u = Usage {
            prompt: 1000,
            completion: 500,
            cached: 400,
        };
        assert_eq!(cost_micro_usd(&u, &gpt4o()), 7000);
    }

    /// A real Anthropic answer's usage (claude-sonnet-4-5, a prompt cached for 5 minutes
    /// and for an hour), metered and priced at Anthropic's list prices ($3 input, $15
    /// output, $0.30 cache reads, $3.75 5-minute writes, $6 1-hour writes per 1M tokens).
    #[test]
    fn anthropic_cache_writes_are_priced_above_input() {
        let answer = br#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
            "content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,
            "usage":{"input_tokens":100,"cache_creation_input_tokens":3000,"cache_read_input_tokens":2000,
                     "cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":2000},
                     "output_tokens":500,"service_tier":"standard"}}"#;
        let mut meter =
            crate::usage::meter::Meter::new(crate::dialect::Dialect::Anthropic, false, false);
        meter.process(bytes::Bytes::from_static(answer));
        let usage = meter.reported().unwrap();
        let writes = meter.cache_writes();
        // 100 × 3 + 2000 × 0.30 + 1000 × 3.75 + 2000 × 6 + 500 × 15
        // = 300 + 600 + 3750 + 12000 + 7500 = 24150 micro-USD
        assert_eq!(cost_with_cache_writes(&usage, writes, &sonnet()), 24_150);
        // the prompt count is unchanged: 100 + 3000 written + 2000 read
        assert_eq!(usage.prompt, 5_100);
    }

    #[test]
    fn cache_writes_by_lifetime_with_the_numbers_written_out() {
        let usage = Usage {
            prompt: 10_000, // 1000 uncached + 4000 read + 3000 (5 min) + 2000 (1 h) written
            completion: 1_000,
            cached: 4_000,
        };
        let writes = CacheWrites {
            m5: 3_000,
            h1: 2_000,
        };
        // 1000 × 3 + 4000 × 0.30 + 3000 × 3.75 + 2000 × 6 + 1000 × 15
        // = 3000 + 1200 + 11250 + 12000 + 15000 = 42450 micro-USD
        assert_eq!(cost_with_cache_writes(&usage, writes, &sonnet()), 42_450);
        // without writes it is the plain input rate, as for every other provider
        // 6000 × 3 + 4000 × 0.30 + 1000 × 15 = 18000 + 1200 + 15000 = 34200
        assert_eq!(cost_micro_usd(&usage, &sonnet()), 34_200);
        // writes never exceed the uncached prompt: 6000 of them bill as 6000, not 9000
        let too_many = CacheWrites {
            m5: 5_000,
            h1: 4_000,
        };
        // 0 × 3 + 4000 × 0.30 + 2000 × 3.75 + 4000 × 6 + 1000 × 15
        // = 1200 + 7500 + 24000 + 15000 = 47700
        assert_eq!(cost_with_cache_writes(&usage, too_many, &sonnet()), 47_700);
    }

    #[test]
    fn config_cache_write_prices_default_to_anthropics_multipliers() {
        let text = r#"
[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:9464"

[providers.anthropic]
kind = "anthropic"
base_url = "https://api.anthropic.com"

[models."claude-sonnet-4-5"]
provider = "anthropic"
price = { input = 3.00, output = 15.00, cached_input = 0.30 }

[models."claude-haiku-4-5"]
provider = "anthropic"
price = { input = 1.00, output = 5.00, cache_write_5m = 1.30, cache_write_1h = 2.10 }
"#;
        let c = crate::config::Config::parse(text, "t.toml", &|_| None).unwrap();
        // defaults: 1.25 × $3 = $3.75 and 2 × $3 = $6 per 1M tokens
        assert_eq!(c.catalog.get("claude-sonnet-4-5").unwrap().price, sonnet());
        let haiku = c.catalog.get("claude-haiku-4-5").unwrap().price;
        assert_eq!(
            (haiku.cache_write_5m, haiku.cache_write_1h),
            (1_300_000, 2_100_000)
        );
        assert_eq!(
            haiku.cached_input, 1_000_000,
            "cached input still defaults to input"
        );

        let bad = text.replace("cache_write_1h = 2.10", "cache_write_1h = -1");
        let e = crate::config::Config::parse(&bad, "t.toml", &|_| None).unwrap_err();
        assert!(
            e.0.iter().any(|p| p.contains("price.cache_write_1h")),
            "{e}"
        );
    }

    #[test]
    fn rounds_to_nearest_and_sums_exactly() {
        let one = Usage {
            prompt: 1,
            completion: 0,
            cached: 0,
        };
        assert_eq!(cost_micro_usd(&one, &gpt4o()), 3); // 2.5 → 3
        let records: u64 = (0..1000)
            .map(|_| {
                cost_micro_usd(
                    &Usage {
                        prompt: 10,
                        completion: 10,
                        cached: 0,
                    },
                    &gpt4o(),
                )
            })
            .sum();
        assert_eq!(records, 1000 * 125);
        assert_eq!(cost_micro_usd(&Usage::default(), &gpt4o()), 0);
    }
}
