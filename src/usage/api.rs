//! `GET /v1/usage` (a key reads its own history) and `GET /admin/usage?key=` (operators read
//! any key's): records in a time range, newest first, with totals per model.

use serde_json::json;

use super::pricing::usd;
use super::sink::UsageStore;
use super::totals::Sums;
use crate::error::GatewayError;

/// Most records one answer lists.
const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

/// A parsed `from`/`to`/`limit` query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageQuery {
    /// Unix milliseconds, inclusive.
    pub from_ms: u64,
    /// Unix milliseconds, exclusive.
    pub to_ms: u64,
    pub limit: usize,
}

impl UsageQuery {
    /// Parses `from` and `to` (Unix seconds, as OpenAI's usage API takes them) and `limit`.
    pub fn parse(query: Option<&str>) -> Result<Self, GatewayError> {
        let mut q = Self {
            from_ms: 0,
            to_ms: u64::MAX,
            limit: DEFAULT_LIMIT,
        };
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = |param: &str| {
                value.parse::<u64>().map_err(|_| {
                    GatewayError::invalid(
                        param,
                        format!("`{param}` must be a non-negative integer"),
                    )
                })
            };
            match name {
                "from" => q.from_ms = number("from")?.saturating_mul(1000),
                "to" => q.to_ms = number("to")?.saturating_mul(1000),
                "limit" => {
                    q.limit = usize::try_from(number("limit")?)
                        .unwrap_or(MAX_LIMIT)
                        .clamp(1, MAX_LIMIT)
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

/// The JSON of summed counts, with the cost in USD beside the exact micro-USD.
fn sums_json(s: &Sums) -> serde_json::Value {
    json!({
        "requests": s.requests,
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "cached_tokens": s.cached_tokens,
        "cost_micro_usd": s.cost_micro_usd,
        "cost_usd": usd(s.cost_micro_usd),
    })
}

/// The JSON answer for `key_id`'s usage: the newest `limit` records of the range, read as
/// one page (the store applies the range and the limit), and totals from the store's
/// per-day sums. So an answer costs the same whatever the history holds; the totals cover
/// the whole UTC days the range touches (exactly the range when it is whole days, as
/// without `from`/`to`), and every request of those days, also those whose records the
/// per-key cap has dropped.
pub async fn usage_json(
    store: &dyn UsageStore,
    key_id: &str,
    q: UsageQuery,
) -> Result<serde_json::Value, String> {
    let (page, totals) = tokio::join!(
        store.query(key_id, q.from_ms, q.to_ms, q.limit),
        store.totals(key_id, q.from_ms, q.to_ms),
    );
    let (page, totals) = (page?, totals?);
    let by_model: serde_json::Map<String, serde_json::Value> = totals
        .by_model
        .iter()
        .map(|(model, sums)| (model.clone(), sums_json(sums)))
        .collect();
    Ok(json!({
        "object": "list",
        "key_id": key_id,
        "data": page.records,
        "has_more": page.has_more,
        "totals": sums_json(&totals.total),
        "by_model": by_model,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::sink::MemoryStore;

    #[test]
    fn parses_seconds_and_clamps_limit() {
        let q = UsageQuery::parse(Some("from=10&to=20&limit=5000")).unwrap();
        assert_eq!((q.from_ms, q.to_ms, q.limit), (10_000, 20_000, MAX_LIMIT));
        assert_eq!(UsageQuery::parse(None).unwrap().limit, DEFAULT_LIMIT);
        let e = UsageQuery::parse(Some("from=yesterday")).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("from"));
    }

    #[tokio::test]
    async fn totals_add_up_per_model() {
        let store = MemoryStore::new(100);
        let mut a = crate::usage::sink::tests::record("k_1", 1000);
        a.cost_micro_usd = 1_500_000;
        let mut b = crate::usage::sink::tests::record("k_1", 2000);
        b.model = "claude-3-5-sonnet".into();
        b.cost_micro_usd = 1;
        store.append(&[a, b]).await.unwrap();
        let v = usage_json(&store, "k_1", UsageQuery::parse(Some("limit=1")).unwrap())
            .await
            .unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 1);
        assert_eq!(v["has_more"], true);
        assert_eq!(v["totals"]["requests"], 2);
        assert_eq!(v["totals"]["cost_micro_usd"], 1_500_001);
        assert_eq!(v["by_model"]["gpt-4o"]["cost_usd"], 1.5);
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod page_tests;
