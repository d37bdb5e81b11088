//! `GET /v1/usage` (a key reads its own records) and `GET /admin/usage` (operators read any
//! key's, or every key's): one page of records from the ledger, newest first, with a cursor
//! to the next, and totals per model and per UTC day from the ledger's hourly rollups, so an
//! answer costs the same whatever the history holds.

use serde_json::json;

use super::pricing::usd;
use crate::error::{ErrorKind, GatewayError};
use crate::ledger::{Ledger, LedgerError, RecordQuery, Sums, TotalsQuery, MAX_PAGE};

const DEFAULT_LIMIT: usize = 100;
/// Longest `after` cursor taken (the ledger's own are far shorter).
const MAX_CURSOR: usize = 512;

/// A parsed usage query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// Unix milliseconds, inclusive.
    pub from_ms: u64,
    /// Unix milliseconds, exclusive.
    pub to_ms: u64,
    pub limit: usize,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// Only this model's records (totals stay per model for every model).
    pub model: Option<String>,
    /// `/admin/usage`'s `key`; `None` there is every key.
    pub key: Option<String>,
}

impl UsageQuery {
    /// Parses `from` and `to` (Unix seconds, as OpenAI's usage API takes them), `limit`
    /// (1..=1000, clamped), `after`, `model` and `key`. Values are URL-decoded; client text is
    /// bounded.
    pub fn parse(query: Option<&str>) -> Result<Self, GatewayError> {
        let mut q = Self {
            from_ms: 0,
            to_ms: u64::MAX,
            limit: DEFAULT_LIMIT,
            after: None,
            model: None,
            key: None,
        };
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let number = |param: &str| {
                value.parse::<u64>().map_err(|_| {
                    GatewayError::invalid(
                        param,
                        format!("`{param}` must be a non-negative integer"),
                    )
                })
            };
            match name.as_ref() {
                "from" => q.from_ms = number("from")?.saturating_mul(1000),
                "to" => q.to_ms = number("to")?.saturating_mul(1000),
                "limit" => {
                    q.limit = usize::try_from(number("limit")?)
                        .unwrap_or(MAX_PAGE)
                        .clamp(1, MAX_PAGE)
                }
                "after" if value.len() > MAX_CURSOR => {
                    return Err(GatewayError::invalid(
                        "after",
                        "`after` is not a usage cursor",
                    ))
                }
                "after" => q.after = Some(value.into_owned()).filter(|v| !v.is_empty()),
                "model" => {
                    q.model = Some(crate::text::bounded_name(&value)).filter(|v| !v.is_empty())
                }
                "key" => q.key = Some(crate::text::bounded_name(&value)).filter(|v| !v.is_empty()),
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
        "cache_write_tokens": s.cache_write_tokens,
        "errors": s.errors,
        "cost_micro_usd": s.cost_micro_usd,
        "cost_usd": usd(s.cost_micro_usd),
    })
}

/// The answer for `key_id`'s usage (`None`: every key's): one page of records and the totals
/// over the whole hours the range touches (exactly the range when it is whole hours, as
/// without `from`/`to`).
pub async fn usage_json(
    ledger: &dyn Ledger,
    key_id: Option<&str>,
    q: &UsageQuery,
) -> Result<serde_json::Value, GatewayError> {
    let page = RecordQuery {
        key_id: key_id.map(str::to_string),
        model: q.model.clone(),
        from_ms: q.from_ms,
        to_ms: q.to_ms,
        limit: q.limit,
        after: q.after.clone(),
    };
    let totals = TotalsQuery {
        key_id: key_id.map(str::to_string),
        from_ms: q.from_ms,
        to_ms: q.to_ms,
    };
    let (page, totals) = tokio::join!(ledger.records(&page), ledger.totals(&totals));
    let (page, totals) = (page.map_err(read_error)?, totals.map_err(read_error)?);
    let by = |m: &std::collections::BTreeMap<String, Sums>| -> serde_json::Map<String, serde_json::Value> {
        m.iter().map(|(k, s)| (k.clone(), sums_json(s))).collect()
    };
    Ok(json!({
        "object": "list",
        "key_id": key_id,
        "data": page.records,
        "has_more": page.next.is_some(),
        "next": page.next,
        "totals": sums_json(&totals.total),
        "by_model": by(&totals.by_model),
        "by_day": by(&totals.by_day),
    }))
}

/// A ledger failure as the client's error: a cursor it did not get from us is its 400; a
/// store that cannot be reached is a 503 to retry; anything else is the gateway's 500.
fn read_error(e: LedgerError) -> GatewayError {
    match e {
        LedgerError::BadCursor(_) => GatewayError::invalid(
            "after",
            "`after` is not a cursor of this usage listing; pass the `next` of the previous page",
        ),
        LedgerError::BadInput(why) => GatewayError::invalid("query", why),
        LedgerError::Unavailable(why) => GatewayError {
            detail: Some(why),
            retry_after: Some(1),
            ..GatewayError::new(
                ErrorKind::StateUnavailable,
                "the usage history is unavailable; try again shortly",
            )
        },
        other => GatewayError::internal("reading the usage history", other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_cursor_and_filters_and_clamps_limit() {
        let q = UsageQuery::parse(Some("from=10&to=20&limit=5000&after=abc&model=gpt-4o")).unwrap();
        assert_eq!((q.from_ms, q.to_ms, q.limit), (10_000, 20_000, MAX_PAGE));
        assert_eq!(q.after.as_deref(), Some("abc"));
        assert_eq!(q.model.as_deref(), Some("gpt-4o"));
        let q = UsageQuery::parse(Some("model=claude%2Dx&key=k_1")).unwrap();
        assert_eq!(q.model.as_deref(), Some("claude-x"));
        assert_eq!(q.key.as_deref(), Some("k_1"));
        assert_eq!(UsageQuery::parse(None).unwrap().limit, DEFAULT_LIMIT);
        let e = UsageQuery::parse(Some("from=yesterday")).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("from"));
        let long = format!("after={}", "a".repeat(MAX_CURSOR + 1));
        assert_eq!(
            UsageQuery::parse(Some(&long)).unwrap_err().param.as_deref(),
            Some("after")
        );
    }
}
