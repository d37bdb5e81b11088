//! Anthropic Messages API as the emulator speaks it:
//! routing, validation, token rules, errors and headers here; the answers (JSON and the
//! named-event SSE stream) in [`messages`].
//!
//! # Routes and checks
//! `POST …/v1/messages` and `POST …/v1/messages/count_tokens`; the query string is
//! ignored (Claude Code sends `?beta=true`). In order: `x-emulator-status` (see mod.rs),
//! method (else 405), an `anthropic-version` header (else 400 `anthropic-version: header
//! is required`), a JSON body, then the body rules, all 400 `invalid_request_error` in the
//! real API's wording: a JSON object; `model` string; `max_tokens` integer ≥ 1 (Messages
//! only; `max_tokens: Field required`); `messages` a non-empty array; every role `user`,
//! `assistant` or `system` (Claude Code 2.x sends system turns between messages); every content a string or
//! an array, non-empty except for a final assistant message (prefill); no empty text
//! block; `temperature` a number in 0..=1; then the extended-thinking rules of [`thinking`]
//! (signatures of `thinking` / `redacted_thinking` blocks verify; with thinking on, a
//! tool-result turn follows an assistant message that starts with a thinking block; with
//! it off, no thinking in a final assistant message). `x-api-key` / `Authorization` are recorded but
//! not checked (the offline config has no secrets): test auth errors with
//! `x-emulator-status: 401`.
//!
//! # Token rules (tests compute expected values from these)
//! * Prompt tokens P = (3 + words(`system`) when `system` is a non-empty string or array)
//!   plus Σ over `messages` of (3 + words(`content`)). words() counts whitespace-separated
//!   words of a string; of a block array, the `text` of every block plus the content
//!   (string or text blocks) of `tool_result` blocks; images, documents, `tool_use` and
//!   thinking blocks count 0; `tools` are not counted. An OpenAI request translated 1:1
//!   (system message → `system`) gets the same count as on the OpenAI route.
//! * Cache: Anthropic's prompt cache, per emulator instance, with its documented rules
//!   (breakpoints, 20-block lookback, minimum length, 5-minute and 1-hour lifetimes; see
//!   [`cache`]). `input_tokens` + `cache_read_input_tokens` + `cache_creation_input_tokens`
//!   = P always.
//! * `count_tokens` → `{"input_tokens": P}` (no cache split; `max_tokens` not required).
//! * Output tokens: N (text), or K = clamp(N, 1, chars(input JSON)) for a tool call; with
//!   `thinking` enabled, plus W = words of the thinking text for the `thinking` block and W
//!   again for a `redacted_thinking` block (`x-emulator-redacted-thinking`; see
//!   [`thinking`]). Without thinking nothing changes.
//!
//! # Errors and headers
//! `{"type":"error","error":{"type","message"},"request_id":"req_…"}`; the id equals the
//! `request-id` header. `x-emulator-status` picks the type from Anthropic's status table
//! ([`error_type`]): 400 and other 4xx `invalid_request_error`, 401
//! `authentication_error`, 402 `billing_error`, 403 `permission_error`, 404
//! `not_found_error` (message `model: <model>`), 413 `request_too_large`, 429
//! `rate_limit_error` (with `retry-after: 1` and `anthropic-ratelimit-requests-remaining:
//! 0`), 500 and other 5xx `api_error`, 504 `timeout_error`, 529 `overloaded_error`
//! ("Overloaded"). Every answer carries `request-id`, `anthropic-organization-id` and
//! `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` (reset: RFC 3339).

mod cache;
mod messages;
mod thinking;
mod validate;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::faults::Faults;
use super::{Reply, Request};

pub use cache::PromptCache;
pub use messages::messages_reply;
use validate::validate;

/// Model named in error messages when the request has none.
const DEFAULT_MODEL: &str = "claude-sonnet-4-5-20250929";
/// `anthropic-organization-id` of every answer.
const ORGANIZATION_ID: &str = "6f1c2a4e-0000-4000-8000-00000000e1a7";

// ---------------------------------------------------------------- wire types

/// `{"type":"error","error":{...},"request_id":...}`; the stream's error event has no id.
#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct TokenCount {
    input_tokens: u64,
}

/// Formats one SSE event: `event: <name>\ndata: <json>\n\n`.
fn sse<T: Serialize>(name: &str, body: &T) -> Bytes {
    let mut out = format!("event: {name}\ndata: ").into_bytes();
    // Serializing these plain structs cannot fail; an empty object keeps the event valid.
    if serde_json::to_writer(&mut out, body).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// `{prefix}` + 22 random hex chars (`msg_01…`, `toolu_01…`, `req_011…`).
fn random_id(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", hex.get(..22).unwrap_or(&hex))
}

// ---------------------------------------------------------------- routing

/// True for the paths this module answers.
pub fn serves(path: &str) -> bool {
    path.ends_with("/v1/messages") || path.ends_with("/v1/messages/count_tokens")
}

/// Answers a request on one of [`serves`]'s paths (faults are handled by the caller; the
/// answer reads `chunks` and `redacted_thinking`), reading and writing `cache` as
/// Anthropic's prompt cache does.
pub fn route(req: &Request, faults: &Faults, cache: &PromptCache) -> Reply {
    if req.method != "POST" {
        let msg = format!("Method {} not allowed for {}", req.method, req.path);
        return error_reply(405, "invalid_request_error", &msg);
    }
    if !req.headers.contains_key("anthropic-version") {
        return invalid("anthropic-version: header is required");
    }
    let Ok(body) = serde_json::from_slice::<Value>(req.body) else {
        return invalid("There was an error parsing the body of your request: invalid JSON");
    };
    let count = req.path.ends_with("/count_tokens");
    if let Err(reply) = validate(&body, count) {
        return reply;
    }
    if count {
        let input_tokens = prompt_tokens(&body);
        Reply::json(200, &TokenCount { input_tokens })
    } else {
        match cache.account(&body, std::time::Instant::now()) {
            Ok(used) => messages_reply(&body, faults.chunks, used, faults.redacted_thinking),
            Err(message) => invalid(&message),
        }
    }
}

// ---------------------------------------------------------------- tokens

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Words of a `content` / `system` value (see the module doc).
fn content_words(content: Option<&Value>) -> u64 {
    match content {
        Some(Value::String(s)) => words(s),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .map(|b| match b.get("type").and_then(Value::as_str) {
                Some("tool_result") => content_words(b.get("content")),
                _ => b.get("text").and_then(Value::as_str).map_or(0, words),
            })
            .sum(),
        _ => 0,
    }
}

/// Prompt tokens P of a Messages / count_tokens request (see the module doc).
pub fn prompt_tokens(req: &Value) -> u64 {
    let system = match req.get("system") {
        Some(Value::String(s)) if !s.is_empty() => 3 + words(s),
        Some(v @ Value::Array(a)) if !a.is_empty() => 3 + content_words(Some(v)),
        _ => 0,
    };
    let messages = req.get("messages").and_then(Value::as_array);
    let turns: u64 = messages
        .into_iter()
        .flatten()
        .map(|m| 3 + content_words(m.get("content")))
        .sum();
    system + turns
}

// ---------------------------------------------------------------- errors and headers

/// The `error.type` Anthropic documents for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// An Anthropic error answer; its `request_id` is also the `request-id` header.
pub fn error_reply(status: u16, kind: &str, message: &str) -> Reply {
    let id = random_id("req_011");
    let error = ErrorDetail { kind, message };
    let body = ErrorBody {
        kind: "error",
        error,
        request_id: Some(&id),
    };
    let mut reply = Reply::json(status, &body);
    reply.headers.push(("request-id", id.clone()));
    if status == 429 {
        reply.headers.push(("retry-after", "1".to_string()));
        reply
            .headers
            .push(("anthropic-ratelimit-requests-remaining", "0".to_string()));
    }
    reply
}

/// 400 `invalid_request_error` with this message.
fn invalid(message: &str) -> Reply {
    error_reply(400, "invalid_request_error", message)
}

/// The error asked for with `x-emulator-status` (table in the module doc); `raw_body`
/// (`x-emulator-error-body`) replaces the body verbatim.
pub fn fault_reply(status: u16, model: Option<&str>, raw_body: Option<&str>) -> Reply {
    let not_found = format!("model: {}", model.unwrap_or(DEFAULT_MODEL));
    let kind = error_type(status);
    let message = match kind {
        "authentication_error" => "invalid x-api-key",
        "billing_error" => {
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & \
             Billing to upgrade or purchase credits."
        }
        "permission_error" => {
            "Your API key does not have permission to use the specified resource."
        }
        "not_found_error" => not_found.as_str(),
        "request_too_large" => "Request exceeds the maximum allowed number of bytes.",
        "rate_limit_error" => {
            "This request would exceed the rate limit for your organization \
             (6f1c2a4e-0000-4000-8000-00000000e1a7) of 50 requests per minute. For details, \
             refer to: https://docs.claude.com/en/api/rate-limits. You can see the response \
             headers for current usage. Please reduce the prompt length or the maximum tokens \
             requested, or try again later."
        }
        "timeout_error" => "Request timed out",
        "overloaded_error" => "Overloaded",
        "api_error" => "Internal server error",
        _ if status == 400 => "Emulated bad request.",
        _ => "Emulated client error.",
    };
    let mut reply = error_reply(status, kind, message);
    if let Some(raw) = raw_body {
        reply.set_raw_body(raw);
    }
    reply
}

/// The event the API sends when it fails after the 200 header; `message_stop` never follows.
pub fn stream_error_event() -> Bytes {
    let error = ErrorDetail {
        kind: "overloaded_error",
        message: "Overloaded",
    };
    let body = ErrorBody {
        kind: "error",
        error,
        request_id: None,
    };
    sse("error", &body)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (civil-from-days, proleptic Gregorian).
fn rfc3339(unix: u64) -> String {
    let (days, rem) = (unix / 86_400, unix % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

/// What api.anthropic.com sends on every answer (request id, organization, rate limits).
pub fn provider_headers() -> Vec<(&'static str, String)> {
    let reset = rfc3339(crate::unix_now() + 1);
    vec![
        ("request-id", random_id("req_011")),
        ("anthropic-organization-id", ORGANIZATION_ID.to_string()),
        ("anthropic-ratelimit-requests-limit", "4000".to_string()),
        ("anthropic-ratelimit-requests-remaining", "3999".to_string()),
        ("anthropic-ratelimit-requests-reset", reset.clone()),
        ("anthropic-ratelimit-tokens-limit", "2000000".to_string()),
        (
            "anthropic-ratelimit-tokens-remaining",
            "2000000".to_string(),
        ),
        ("anthropic-ratelimit-tokens-reset", reset),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ReplyBody;
    use http::HeaderMap;
    use serde_json::json;

    pub(super) fn body(reply: &Reply) -> Value {
        match &reply.body {
            ReplyBody::Full { bytes, .. } => serde_json::from_slice(bytes).unwrap(),
            ReplyBody::Stream { .. } => panic!("expected a JSON body"),
        }
    }

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        let found = reply.headers.iter().find(|(k, _)| *k == name);
        found.map(|(_, v)| v.as_str())
    }

    fn call(path: &str, version: bool, body: &Value) -> Reply {
        let mut headers = HeaderMap::new();
        if version {
            headers.insert("anthropic-version", "2023-06-01".parse().unwrap());
        }
        let bytes = body.to_string();
        let req = Request {
            method: "POST",
            path,
            query: "",
            headers: &headers,
            body: bytes.as_bytes(),
        };
        route(&req, &Faults::default(), &PromptCache::default())
    }

    #[test]
    fn token_rules() {
        let req = json!({"system": "be brief", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi there you"},
                                         {"type": "image", "source": {}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                               "input": {"a": "b c"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                          "content": [{"type": "text", "text": "21 C"}]},
                                         {"type": "tool_result", "tool_use_id": "u",
                                          "content": "sunny"}]}]});
        // system 3+2, user 3+3, assistant 3+0, user 3+(2+1)
        assert_eq!(prompt_tokens(&req), 20);
        let blocks = json!({"system": [{"type": "text", "text": "a b",
            "cache_control": {"type": "ephemeral"}}], "messages": []});
        assert_eq!(prompt_tokens(&blocks), 5);
        assert_eq!(prompt_tokens(&json!({"system": "", "messages": []})), 0);
    }

    #[test]
    fn count_tokens_answer() {
        let req = json!({"model": "c", "system": "x y",
            "messages": [{"role": "user", "content": "one two three"}]});
        let reply = call("/v1/messages/count_tokens", true, &req);
        assert_eq!(reply.status, 200);
        assert_eq!(body(&reply), json!({"input_tokens": 11}));
    }

    #[test]
    fn validation_errors_use_the_real_wording() {
        let ok = json!({"model": "c", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(call("/v1/messages", true, &ok).status, 200);
        let missing_version = call("/v1/messages", false, &ok);
        assert_eq!(missing_version.status, 400);
        assert_eq!(
            body(&missing_version)["error"]["message"],
            "anthropic-version: header is required"
        );
        let with = |patch: Value| {
            let mut v = ok.clone();
            for (k, val) in patch.as_object().unwrap() {
                if val.is_null() {
                    v.as_object_mut().unwrap().remove(k);
                } else {
                    v[k] = val.clone();
                }
            }
            v
        };
        let cases = [
            (
                with(json!({"max_tokens": null})),
                "max_tokens: Field required",
            ),
            (
                with(json!({"max_tokens": 0})),
                "max_tokens: Input should be greater",
            ),
            (with(json!({"model": null})), "model: Field required"),
            (with(json!({"messages": null})), "messages: Field required"),
            (
                with(json!({"messages": []})),
                "messages: at least one message",
            ),
            (
                with(json!({"messages": [{"role": "tool", "content": "x"}]})),
                "messages.0.role: Input should be 'user' or 'assistant'",
            ),
            (
                with(json!({"messages": [{"role": "user", "content": ""}]})),
                "messages.0: all messages must have non-empty content",
            ),
            (
                with(
                    json!({"messages": [{"role": "user", "content": [{"type": "text",
                    "text": ""}]}]}),
                ),
                "messages: text content blocks must be non-empty",
            ),
            (
                with(json!({"temperature": 1.5})),
                "temperature: Input should be less",
            ),
            (
                with(json!({"temperature": -1})),
                "temperature: Input should be greater",
            ),
        ];
        for (req, want) in cases {
            let reply = call("/v1/messages", true, &req);
            assert_eq!(reply.status, 400, "{req}");
            let v = body(&reply);
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], "invalid_request_error");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.starts_with(want), "{msg} vs {want}");
            assert_eq!(v["request_id"].as_str(), header(&reply, "request-id"));
        }
        // a final assistant message may be empty (prefill); count_tokens needs no max_tokens
        let prefill = with(json!({"messages": [{"role": "user", "content": "a"},
            {"role": "assistant", "content": ""}]}));
        assert_eq!(call("/v1/messages", true, &prefill).status, 200);
        let count = with(json!({"max_tokens": null}));
        assert_eq!(call("/v1/messages/count_tokens", true, &count).status, 200);
    }

    #[test]
    fn fault_errors_follow_the_status_table() {
        let table = [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (402, "billing_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (503, "api_error"),
            (504, "timeout_error"),
            (529, "overloaded_error"),
        ];
        for (status, kind) in table {
            let reply = fault_reply(status, Some("claude-x"), None);
            assert_eq!(reply.status, status);
            let v = body(&reply);
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], kind, "{status}");
            assert!(!v["error"]["message"].as_str().unwrap().is_empty());
            let id = v["request_id"].as_str().unwrap();
            assert!(id.starts_with("req_011"));
            assert_eq!(header(&reply, "request-id"), Some(id));
            let retry = (status == 429).then_some("1");
            assert_eq!(header(&reply, "retry-after"), retry);
        }
        let v = body(&fault_reply(404, Some("claude-x"), None));
        assert_eq!(v["error"]["message"], "model: claude-x");
        assert_eq!(
            body(&fault_reply(529, None, None))["error"]["message"],
            "Overloaded"
        );
    }

    #[test]
    fn stream_error_event_is_a_named_event() {
        let ev = stream_error_event();
        assert_eq!(
            std::str::from_utf8(&ev).unwrap(),
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\
             \"message\":\"Overloaded\"}}\n\n"
        );
    }

    #[test]
    fn headers_and_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(1_735_689_599), "2024-12-31T23:59:59Z");
        let headers = provider_headers();
        let get = |n: &str| headers.iter().find(|(k, _)| *k == n).unwrap().1.clone();
        assert!(get("request-id").starts_with("req_011"));
        assert_eq!(get("anthropic-ratelimit-requests-limit"), "4000");
        assert!(get("anthropic-ratelimit-requests-reset").ends_with('Z'));
    }
}
