//! Error mapping (docs/translation.md E) and the data-URL helper of the upstream side.

use serde_json::{json, Value};

use super::*;
use crate::dialect::Dialect;

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
