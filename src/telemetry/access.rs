//! The access log: one line per request, either today's text line or a JSON object with
//! the same facts and a few more (trace id, cost, client address, user agent). Neither ever
//! holds a key, a provider credential or a body: keys appear by their id only.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::providers::Provider;
use crate::usage::{pricing, UsageRecord};

/// Longest user agent written (it is the client's own text).
const MAX_USER_AGENT: usize = 256;

/// What one finished request came to: read by the access log and the request's span.
pub struct Summary<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub endpoint: Option<&'a Endpoint>,
    pub key_id: Option<&'a str>,
    /// The `model` the client asked for.
    pub requested_model: Option<&'a str>,
    /// The catalog entry that served (a pattern route, or a fallback), `-` when none.
    pub route: &'a str,
    /// The model name sent to the provider by the last attempt.
    pub upstream_model: &'a str,
    pub provider: Option<&'a Provider>,
    pub status: u16,
    pub stream: bool,
    pub attempts: u32,
    pub usage: Option<&'a UsageRecord>,
    pub duration: Duration,
    pub ttfb: Option<Duration>,
    pub error: Option<&'a GatewayError>,
    pub client_gone: bool,
    /// Reasoning was asked for but the turn went without it (its signed state was lost).
    pub reasoning_dropped: bool,
}

/// What only the JSON line has.
pub struct Client<'a> {
    pub trace_id: Option<String>,
    pub addr: Option<String>,
    pub user_agent: Option<&'a str>,
}

/// One JSON access line, fields in this order (a struct, not a map: no allocation per field).
#[derive(Serialize)]
struct Line<'a> {
    #[serde(serialize_with = "as_text")]
    time: humantime::Rfc3339Timestamp,
    #[serde(rename = "type")]
    kind: &'static str,
    request_id: &'a str,
    trace_id: Option<&'a str>,
    method: &'a str,
    endpoint: &'static str,
    key_id: Option<&'a str>,
    model: Option<&'a str>,
    route: &'a str,
    provider: Option<&'a str>,
    upstream_model: Option<&'a str>,
    status: u16,
    stream: bool,
    attempts: u32,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cached_tokens: Option<u64>,
    tokens_estimated: Option<bool>,
    cost_usd: Option<f64>,
    duration_ms: f64,
    ttfb_ms: Option<f64>,
    client_addr: Option<&'a str>,
    user_agent: Option<&'a str>,
    error: Option<&'static str>,
    client_gone: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    reasoning_dropped: bool,
}

/// The JSON access line (without the newline).
pub fn json_line(s: &Summary<'_>, client: &Client<'_>) -> String {
    let usage = s.usage;
    let ms = |d: Duration| round3(d.as_secs_f64() * 1000.0);
    let line = Line {
        time: humantime::format_rfc3339_millis(SystemTime::now()),
        kind: "access",
        request_id: s.request_id,
        trace_id: client.trace_id.as_deref(),
        method: s.method,
        endpoint: s.endpoint.map_or("-", Endpoint::label),
        key_id: s.key_id,
        model: usage.map(|r| r.model.as_str()).or(s.requested_model),
        route: s.route,
        provider: s.provider.map(|p| p.name.as_str()),
        upstream_model: (!s.upstream_model.is_empty()).then_some(s.upstream_model),
        status: s.status,
        stream: s.stream,
        attempts: s.attempts,
        input_tokens: usage.map(|r| r.prompt_tokens),
        output_tokens: usage.map(|r| r.completion_tokens),
        cached_tokens: usage.map(|r| r.cached_tokens),
        tokens_estimated: usage.map(|r| r.estimated),
        cost_usd: usage.map(|r| pricing::usd(r.cost_micro_usd)),
        duration_ms: ms(s.duration),
        ttfb_ms: s.ttfb.map(ms),
        client_addr: client.addr.as_deref(),
        user_agent: client
            .user_agent
            .map(|ua| crate::text::cut(ua, MAX_USER_AGENT)),
        error: s.error.map(|e| e.kind.label()),
        client_gone: s.client_gone,
        reasoning_dropped: s.reasoning_dropped,
    };
    // serializing plain fields into a String cannot fail
    serde_json::to_string(&line).unwrap_or_default()
}

/// Writes a value by its `Display` (the timestamp) without an intermediate `String`.
fn as_text<S: serde::Serializer>(v: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_refused_request_is_one_json_object_with_nulls_for_what_it_never_had() {
        let s = Summary {
            request_id: "req_1",
            method: "POST",
            endpoint: Some(&Endpoint::ChatCompletions),
            key_id: None,
            requested_model: None,
            route: "-",
            upstream_model: "",
            provider: None,
            status: 401,
            stream: false,
            attempts: 0,
            usage: None,
            duration: Duration::from_micros(1500),
            ttfb: None,
            error: None,
            client_gone: false,
            reasoning_dropped: false,
        };
        let client = Client {
            trace_id: None,
            addr: Some("127.0.0.1:5000".into()),
            user_agent: Some("curl/8"),
        };
        let v: Value = serde_json::from_str(&json_line(&s, &client)).unwrap();
        assert_eq!(v["status"], 401);
        assert_eq!(v["endpoint"], "chat_completions");
        assert_eq!(v["duration_ms"], 1.5);
        assert!(v["key_id"].is_null() && v["input_tokens"].is_null());
        assert_eq!(v["user_agent"], "curl/8");
    }

    #[test]
    fn long_user_agents_are_cut_on_a_character_boundary() {
        let ua = "é".repeat(200);
        let cut = crate::text::cut(&ua, MAX_USER_AGENT);
        assert!(cut.len() <= MAX_USER_AGENT && cut.chars().all(|c| c == 'é'));
    }
}
