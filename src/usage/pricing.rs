//! Prices: tokens × the model's tariff, in integer micro-USD.

use super::Usage;
use crate::catalog::Price;

/// The cost of `usage` under `price` (micro-USD per 1M tokens), rounded to the nearest
/// micro-USD. Cached prompt tokens are billed at the cached rate, the rest of the prompt at
/// the input rate.
pub fn cost_micro_usd(usage: &Usage, price: &Price) -> u64 {
    let cached = usage.cached.min(usage.prompt);
    let uncached = usage.prompt - cached;
    let total = u128::from(uncached) * u128::from(price.input)
        + u128::from(cached) * u128::from(price.cached_input)
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
