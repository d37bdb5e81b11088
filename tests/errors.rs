//! Every error a client can get, in OpenAI's format, with the right status and a request id.

mod common;

use common::*;
use serde_json::json;

fn assert_openai_error(a: &Answer, status: u16, code: Option<&str>, param: Option<&str>) {
    assert_eq!(a.status, status, "{}", a.text());
    assert!(
        a.header("x-request-id")
            .is_some_and(|id| id.starts_with("req_")),
        "{a:?}"
    );
    assert_eq!(a.header("content-type"), Some("application/json"));
    let v = a.json();
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    if let Some(code) = code {
        assert_eq!(e["code"], code, "{v}");
    }
    if let Some(param) = param {
        assert_eq!(e["param"], param, "{v}");
    }
}

#[test]
fn missing_or_unknown_key_is_401_invalid_api_key() {
    let gw = Gateway::start();
    let body = chat("gpt-4o", false);
    let none = gw.request("POST", "/v1/chat/completions", &[], body.as_bytes());
    assert_openai_error(&none, 401, Some("invalid_api_key"), None);
    let wrong = gw.request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer cai-not-a-key")],
        body.as_bytes(),
    );
    assert_openai_error(&wrong, 401, Some("invalid_api_key"), None);
    let wrong_x = gw.request(
        "POST",
        "/v1/chat/completions",
        &[("x-api-key", "cai-nope")],
        body.as_bytes(),
    );
    assert_openai_error(&wrong_x, 401, Some("invalid_api_key"), None);
    let models = gw.request("GET", "/v1/models", &[], b"");
    assert_openai_error(&models, 401, Some("invalid_api_key"), None);
}

#[test]
fn x_api_key_is_accepted_like_bearer() {
    let gw = Gateway::start();
    let a = gw.request(
        "POST",
        "/v1/chat/completions",
        &[("x-api-key", KEY)],
        chat("gpt-4o", false).as_bytes(),
    );
    assert_eq!(a.status, 200, "{}", a.text());
}

#[test]
fn model_not_allowed_for_key_is_403() {
    let gw = Gateway::start();
    let auth = format!("Bearer {LIMITED_KEY}");
    let a = gw.request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        chat("claude-3-5-sonnet", false).as_bytes(),
    );
    assert_openai_error(&a, 403, Some("model_not_allowed"), None);
    let ok = gw.request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        chat("gpt-4o", false).as_bytes(),
    );
    assert_eq!(ok.status, 200);
}

#[test]
fn body_over_the_limit_is_413_whether_declared_or_chunked() {
    let gw = Gateway::start();
    let big = format!(
        r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(10 * 1024 * 1024 + 1)
    );
    let declared = gw.post("/v1/chat/completions", &big);
    assert_openai_error(&declared, 413, Some("request_too_large"), None);

    let chunked = ureq::post(&format!("{}/v1/chat/completions", gw.url))
        .set("authorization", &format!("Bearer {KEY}"))
        .send(std::io::Cursor::new(big.into_bytes()));
    let chunked = Answer::from(chunked);
    assert_openai_error(&chunked, 413, Some("request_too_large"), None);
}

#[test]
fn malformed_bodies_are_400_naming_the_param() {
    let gw = Gateway::start();
    let cases = [
        ("{not json", "body"),
        (r#"{"messages":[{"role":"user","content":"x"}]}"#, "model"),
        (r#"{"model":"gpt-4o"}"#, "messages"),
        (r#"{"model":"gpt-4o","messages":"hello"}"#, "messages"),
        (
            r#"{"model":"gpt-4o","messages":[],"stream":"yes"}"#,
            "stream",
        ),
    ];
    for (body, param) in cases {
        let a = gw.post("/v1/chat/completions", body);
        assert_openai_error(&a, 400, None, Some(param));
        assert_eq!(a.json()["error"]["type"], "invalid_request_error");
    }
    let a = gw.post(
        "/v1/embeddings",
        r#"{"model":"text-embedding-3","input":42}"#,
    );
    assert_openai_error(&a, 400, None, Some("input"));
}

#[test]
fn unknown_model_is_404_model_not_found() {
    let gw = Gateway::start();
    let a = gw.post("/v1/chat/completions", &chat("gpt-9", false));
    assert_openai_error(&a, 404, Some("model_not_found"), Some("model"));
    let auth = format!("Bearer {KEY}");
    let a = gw.request("GET", "/v1/models/gpt-9", &[("authorization", &auth)], b"");
    assert_openai_error(&a, 404, Some("model_not_found"), None);
}

#[test]
fn wrong_method_is_405_and_unknown_path_404() {
    let gw = Gateway::start();
    let auth = format!("Bearer {KEY}");
    let a = gw.request(
        "GET",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        b"",
    );
    assert_openai_error(&a, 405, Some("method_not_allowed"), None);
    let a = gw.request("POST", "/v1/models", &[("authorization", &auth)], b"{}");
    assert_openai_error(&a, 405, Some("method_not_allowed"), None);
    let a = gw.request("POST", "/v2/whatever", &[("authorization", &auth)], b"{}");
    assert_openai_error(&a, 404, Some("unknown_url"), None);
}

#[test]
fn unreachable_provider_is_502() {
    let closed = refused_port();
    let gw = Gateway::start_with(&format!(
        r#"
[providers.dead]
kind = "openai"
base_url = "http://127.0.0.1:{closed}/v1"
[models."dead-model"]
provider = "dead"
"#
    ));
    let a = gw.post("/v1/chat/completions", &chat("dead-model", false));
    assert_openai_error(&a, 502, Some("upstream_unreachable"), None);
    assert!(!a.text().contains(PROVIDER_KEY));
}

#[test]
fn connect_timeout_is_504() {
    let (port, _guard) = blackhole();
    let gw = Gateway::start_with(&format!(
        r#"
[providers.slow]
kind = "openai"
base_url = "http://127.0.0.1:{port}/v1"
connect_timeout_ms = 300
[models."slow-model"]
provider = "slow"
"#
    ));
    let started = std::time::Instant::now();
    let a = gw.post("/v1/chat/completions", &chat("slow-model", false));
    assert_openai_error(&a, 504, Some("upstream_timeout"), None);
    assert!(a.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("300 ms"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn first_byte_timeout_is_504() {
    let gw = Gateway::start();
    // first_byte_timeout_ms = 1500 in the test config
    let a = gw.post_with(
        "/v1/chat/completions",
        &[("x-emulator-delay-ms", "4000")],
        &chat("gpt-4o", false),
    );
    assert_openai_error(&a, 504, Some("upstream_timeout"), None);
    let a = gw.post_with(
        "/v1/chat/completions",
        &[("x-emulator-delay-ms", "4000")],
        &chat("gpt-4o", true),
    );
    assert_openai_error(&a, 504, Some("upstream_timeout"), None);
}

/// A stream that stalls longer than idle_timeout_ms ends with an SSE error event the SDK
/// raises on; no JSON body is glued to the stream, and the chunked body ends properly.
#[test]
fn idle_timeout_mid_stream_ends_with_an_error_event() {
    let gw = Gateway::start();
    let a = gw.post_with(
        "/v1/chat/completions",
        &[
            ("x-emulator-chunk-delay-ms", "2500"),
            ("x-emulator-chunks", "3"),
        ],
        &chat("gpt-4o", true),
    );
    assert_eq!(a.status, 200);
    let events = a.sse_data();
    let last = events.last().expect("events");
    let err: serde_json::Value = serde_json::from_str(last).expect("last event is JSON");
    assert_eq!(err["error"]["code"], "upstream_timeout", "{last}");
    assert!(!events.iter().any(|e| e == "[DONE]"));
    assert!(
        a.text().ends_with("\n\n"),
        "stream must end on an event boundary"
    );
}

#[test]
fn provider_dropping_the_stream_ends_it_with_an_error_event() {
    let gw = Gateway::start();
    let a = gw.post_with(
        "/v1/chat/completions",
        &[("x-emulator-drop-after", "3"), ("x-emulator-fragment", "1")],
        &chat("gpt-4o", true),
    );
    assert_eq!(a.status, 200);
    let events = a.sse_data();
    assert_eq!(events.len(), 4, "3 whole events + the error: {events:?}");
    for e in &events {
        serde_json::from_str::<serde_json::Value>(e).unwrap_or_else(|_| panic!("broken event {e}"));
    }
    let err: serde_json::Value = serde_json::from_str(&events[3]).unwrap_or_default();
    assert_eq!(err["error"]["type"], "server_error");
}

#[test]
fn upstream_error_status_is_forwarded_in_openai_format() {
    let gw = Gateway::start();
    let a = gw.post_with(
        "/v1/chat/completions",
        &[("x-emulator-status", "429")],
        &chat("gpt-4o", false),
    );
    assert_openai_error(&a, 429, Some("rate_limit_exceeded"), None);
    assert!(a.header("retry-after").is_some(), "{a:?}");

    let a = gw.post_with(
        "/v1/chat/completions",
        &[
            ("x-emulator-status", "503"),
            ("x-emulator-error-body", "<html>upstream down</html>"),
        ],
        &chat("gpt-4o", false),
    );
    assert_openai_error(&a, 503, None, None);
    let message = a.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("<html>upstream down</html>"), "{message}");

    let a = gw.post_with(
        "/v1/chat/completions",
        &[("x-emulator-status", "400")],
        &chat("gpt-4o", true),
    );
    assert_openai_error(&a, 400, None, None);
}

#[test]
fn provider_closing_before_answering_is_502() {
    let gw = Gateway::start();
    let a = gw.post_with(
        "/v1/chat/completions",
        &[("x-emulator-drop-after", "0")],
        &chat("gpt-4o", false),
    );
    assert_openai_error(&a, 502, None, None);
}

#[test]
fn upstream_failures_fall_back_to_the_next_route() {
    let closed = refused_port();
    let gw = Gateway::start_with(&format!(
        r#"
[providers.dead]
kind = "openai"
base_url = "http://127.0.0.1:{closed}/v1"
[models."primary"]
provider = "dead"
fallbacks = ["gpt-4o-mini"]
"#
    ));
    let a = gw.post("/v1/chat/completions", &chat("primary", false));
    assert_eq!(a.status, 200, "{}", a.text());
    let upstream = gw.upstream_request(&a);
    let sent: serde_json::Value =
        serde_json::from_str(upstream["body"].as_str().unwrap_or_default()).unwrap_or(json!(null));
    assert_eq!(sent["model"], "gpt-4o-mini");
}
