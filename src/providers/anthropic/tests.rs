//! Error mapping (docs/translation.md E), the OpenAI → Anthropic → OpenAI round trip, the token
//! estimate, and the stream-feeding helpers the translator tests share.

use serde_json::{json, Value};

use super::*;
use crate::dialect::Dialect;

pub(super) use crate::providers::translator_testing::{events, run, same_at_every_split};

// ---- E: Anthropic error → OpenAI client -----------------------------------------------------

fn anthropic_error(kind: &str, message: &str) -> Vec<u8> {
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"})
        .to_string()
        .into_bytes()
}

fn openai_view(e: &GatewayError) -> Value {
    serde_json::from_slice(&e.body(Dialect::OpenAi)).unwrap()
}

#[test]
fn every_error_row_keeps_its_status_and_reads_as_openai() {
    let rows = [
        (
            400,
            "invalid_request_error",
            400,
            "invalid_request_error",
            Value::Null,
        ),
        // 401, 402 and 403 refuse the gateway's own key: src/error_tests.rs
        (
            404,
            "not_found_error",
            404,
            "invalid_request_error",
            json!("not_found"),
        ),
        (
            413,
            "request_too_large",
            413,
            "invalid_request_error",
            json!("request_too_large"),
        ),
        (
            429,
            "rate_limit_error",
            429,
            "rate_limit_error",
            json!("rate_limit_exceeded"),
        ),
        (500, "api_error", 500, "server_error", Value::Null),
        (503, "api_error", 503, "server_error", Value::Null),
        (
            529,
            "overloaded_error",
            503,
            "server_error",
            json!("server_is_overloaded"),
        ),
        (504, "timeout_error", 504, "server_error", json!("timeout")),
    ];
    for (status, kind, want_status, want_type, want_code) in rows {
        let e = upstream_error("claude", status, &anthropic_error(kind, "the message"));
        assert_eq!(e.status(), want_status, "{status}");
        let v = openai_view(&e);
        assert_eq!(v["error"]["message"], "the message", "{status}");
        assert_eq!(v["error"]["type"], want_type, "{status}");
        assert_eq!(v["error"]["code"], want_code, "{status}");
        assert_eq!(v["error"]["param"], Value::Null, "{status}");
    }
}

#[test]
fn a_missing_model_is_model_not_found() {
    let body = anthropic_error("not_found_error", "model: claude-nope");
    let e = upstream_error("claude", 404, &body);
    assert_eq!(openai_view(&e)["error"]["code"], "model_not_found");
}

#[test]
fn a_non_json_error_is_quoted() {
    let e = upstream_error("claude", 502, b"<html>Bad Gateway</html>");
    assert_eq!(e.status(), 502);
    let v = openai_view(&e);
    assert_eq!(
        v["error"]["message"],
        "provider claude answered 502: <html>Bad Gateway</html>"
    );
    assert_eq!(v["error"]["type"], "server_error");
    let e = upstream_error("claude", 500, b"");
    assert_eq!(
        openai_view(&e)["error"]["message"],
        "provider claude answered 500"
    );
}

#[test]
fn openai_errors_inside_answers_get_statuses_by_type() {
    let cases = [
        (json!({"type": "server_error", "message": "boom"}), 500),
        (
            json!({"type": "requests", "code": "rate_limit_exceeded", "message": "x"}),
            429,
        ),
        (json!({"type": "insufficient_quota", "message": "x"}), 429),
        (
            json!({"type": "invalid_request_error", "code": "invalid_api_key"}),
            401,
        ),
        (
            json!({"type": "service_unavailable_error", "message": "x"}),
            503,
        ),
        (
            json!({"type": "invalid_request_error", "message": "x"}),
            400,
        ),
    ];
    for (error, status) in cases {
        assert_eq!(openai_error(&error).status(), status, "{error}");
    }
    assert_eq!(
        openai_error(&json!({})).message,
        "the upstream model failed"
    );
}

// ---- helpers --------------------------------------------------------------------------------

#[test]
fn data_urls_parse_only_when_base64() {
    assert_eq!(
        parse_data_url("data:image/png;base64,AAA"),
        Some(("image/png", "AAA"))
    );
    assert_eq!(
        parse_data_url("data:application/pdf;name=a.pdf;base64,JV"),
        Some(("application/pdf", "JV"))
    );
    assert_eq!(parse_data_url("data:text/plain,hello"), None);
    assert_eq!(parse_data_url("https://x"), None);
}

#[test]
fn tool_ids_keep_only_safe_characters() {
    assert_eq!(sanitize_tool_id("call_AbC-9"), "call_AbC-9");
    assert_eq!(sanitize_tool_id("fc:1.2/é"), "fc_1_2__");
    let id = synthesize_tool_id();
    assert!(id.starts_with("toolu_") && sanitize_tool_id(&id) == id);
}

// ---- round trip: OpenAI → Anthropic → OpenAI ------------------------------------------------

#[test]
fn openai_to_anthropic_to_openai_keeps_messages_and_tools() {
    let original = json!({
        "model": "alias",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
            {"role": "user", "content": [
                {"type": "text", "text": "And this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "max_tokens": 300,
        "temperature": 0.5,
        "stop": ["END"],
        "user": "u1",
    });
    let anthropic = to_anthropic_request(original.to_string().as_bytes(), "claude").unwrap();
    let back: Value =
        serde_json::from_slice(&to_openai_request(&anthropic, "gpt").unwrap()).unwrap();
    assert_eq!(back["model"], "gpt");
    assert_eq!(
        back["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
            {"role": "user", "content": [
                {"type": "text", "text": "And this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
        ])
    );
    assert_eq!(back["tools"], original["tools"]);
    assert_eq!(back["tool_choice"], "required");
    assert_eq!(back["parallel_tool_calls"], false);
    for key in ["max_tokens", "temperature", "stop", "user"] {
        assert_eq!(back[key], original[key], "{key}");
    }
}

// ---- count_tokens ---------------------------------------------------------------------------

#[test]
fn token_estimate_counts_text_tools_and_overheads() {
    let plain = json!({"model": "m", "messages": [{"role": "user", "content": "hello world"}]});
    // "hello world" is 2 o200k tokens; + 4 per message + 3 reply priming.
    assert_eq!(
        count_tokens_estimate(plain.to_string().as_bytes()).unwrap(),
        9
    );

    let rich = json!({
        "model": "m",
        "system": [{"type": "text", "text": "hello world", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hello world"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "long thoughts", "signature": "s"},
                {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "hello world"}]},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    });
    let n = count_tokens_estimate(rich.to_string().as_bytes()).unwrap();
    let text = tokens_of("hello world");
    let expected = 3
        + (4 + text)
        + (4 + text + 1600)
        + (4 + tokens_of("f") + tokens_of(r#"{"a":1}"#))
        + (4 + text)
        + (346 + 8 + tokens_of("f") + tokens_of(r#"{"type":"object"}"#));
    assert_eq!(n, expected);
}

fn tokens_of(text: &str) -> u64 {
    tiktoken::get_encoding("o200k_base").unwrap().count(text) as u64
}

#[test]
fn token_estimate_rejects_bodies_without_messages() {
    let e = count_tokens_estimate(br#"{"model":"m"}"#).unwrap_err();
    assert_eq!((e.status(), e.param.as_deref()), (400, Some("messages")));
    assert_eq!(count_tokens_estimate(b"[]").unwrap_err().status(), 400);
}
