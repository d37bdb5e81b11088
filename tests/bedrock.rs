//! AWS Bedrock providers (`kind = "bedrock"`) against the emulator's Bedrock routes, which
//! verify SigV4 as AWS does: what goes up the wire (InvokeModel path, signature headers, the
//! Bedrock body, no client key), every client format through it (JSON and streams in AWS's
//! event-stream framing), tools, usage and price, the betas Bedrock offers in the body, a 429
//! failing over, and a wrong secret kept from clients and logs. Where the credentials come
//! from is `bedrock_credentials.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cheapai_emulator::{BEDROCK_ACCESS_KEY_ID, BEDROCK_SECRET_ACCESS_KEY};
use common::binary::Binary;
use common::*;
use serde_json::{json, Value};

const MODEL_PATH: &str = "/model/anthropic.claude-sonnet-4-5-v1%3A0";
/// A secret the emulator does not hold for the access key: it must reach no client or log.
const WRONG_SECRET: &str = "bedrock-wrong-secret-7c2e91";

const BEDROCK: &str = r#"
[providers.bedrock-a]
kind = "bedrock"
region = "us-east-1"
base_url = "http://127.0.0.1:{EMU}"
connect_timeout_ms = 500
first_byte_timeout_ms = 1500
idle_timeout_ms = 800

[providers.bedrock-b]
kind = "bedrock"
region = "us-west-2"
base_url = "http://127.0.0.1:{EMU2}"

[models."claude-bedrock"]
provider = "bedrock-a"
upstream_model = "anthropic.claude-sonnet-4-5-v1:0"
price = { input = 3.0, output = 15.0, cached_input = 0.3 }

[models."claude-two-regions"]
deployments = [
  { provider = "bedrock-a", upstream_model = "anthropic.claude-sonnet-4-5-v1:0", weight = 100 },
  { provider = "bedrock-b", upstream_model = "anthropic.claude-sonnet-4-5-v1:0", weight = 1 },
]
"#;

fn start() -> Gateway {
    Gateway::start_with_env(
        BEDROCK,
        &[
            ("AWS_ACCESS_KEY_ID", BEDROCK_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", BEDROCK_SECRET_ACCESS_KEY),
        ],
    )
}

/// What the emulator received for `answer`: the InvokeModel path, a SigV4 signature by the
/// test key for `region` (which the emulator verified, or it would have refused), no
/// client key, and Bedrock's body (no `model`, no `stream`, Bedrock's `anthropic_version`).
fn assert_sent_to_bedrock(record: &Value, stream: bool, region: &str) -> Value {
    let operation = if stream {
        "invoke-with-response-stream"
    } else {
        "invoke"
    };
    assert_eq!(
        record["path"],
        format!("{MODEL_PATH}/{operation}"),
        "{record}"
    );
    let auth = sent_header(record, "authorization").unwrap();
    assert!(
        auth.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={BEDROCK_ACCESS_KEY_ID}/"
        )),
        "{auth}"
    );
    assert!(
        auth.contains(&format!("/{region}/bedrock/aws4_request")),
        "{auth}"
    );
    assert!(auth.contains("SignedHeaders=host;x-amz-date"), "{auth}");
    assert!(sent_header(record, "x-amz-date").is_some());
    assert_eq!(sent_header(record, "x-api-key"), None);
    assert!(
        !record.to_string().contains(KEY),
        "client key sent: {record}"
    );
    assert!(!record.to_string().contains(BEDROCK_SECRET_ACCESS_KEY));
    let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
    assert!(
        body.get("model").is_none() && body.get("stream").is_none(),
        "{body}"
    );
    body
}

const HELLO: &str = "Hello world1 world2 world3 world4";
const ANTHROPIC: [(&str, &str); 1] = [("anthropic-version", "2023-06-01")];

#[test]
fn chat_json_and_stream_are_signed_invocations_with_usage_and_price() {
    let gw = start();
    for stream in [false, true] {
        let a = gw.post("/v1/chat/completions", &chat("claude-bedrock", stream));
        assert_eq!(a.status, 200, "{}", a.text());
        if stream {
            let data = a.sse_data();
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
            let text: String = data
                .iter()
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter_map(|c| {
                    c["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(String::from)
                })
                .collect();
            assert_eq!(text, HELLO);
        } else {
            let v = a.json();
            assert_eq!(v["choices"][0]["message"]["content"], HELLO);
            assert_eq!(v["model"], "claude-bedrock");
        }
        let record = gw.upstream_request(&a);
        let body = assert_sent_to_bedrock(&record, stream, "us-east-1");
        assert!(
            body["messages"][0].to_string().contains("Say hello"),
            "{body}"
        );
        assert!(body["max_tokens"].as_u64().unwrap() > 0);
        // AWS's request id stays with the operator
        assert_eq!(a.header("x-amzn-requestid"), None);
        let usage = gw.usage_record_of(&a);
        assert_eq!(usage["provider"], "bedrock-a");
        // "Say hello": 3 + 2 words; five text chunks
        assert_eq!(
            (&usage["prompt_tokens"], &usage["completion_tokens"]),
            (&json!(5), &json!(5)),
            "{usage}"
        );
        assert_eq!(usage["estimated"], false);
        // $3 and $15 per million: 5 × 3 + 5 × 15 micro-USD
        assert_eq!(usage["cost_micro_usd"], 90, "{usage}");
    }
}

#[test]
fn anthropic_and_responses_clients_json_and_stream() {
    let gw = start();
    for stream in [false, true] {
        let a = gw.post_with(
            "/v1/messages",
            &ANTHROPIC,
            &messages("claude-bedrock", stream),
        );
        assert_eq!(a.status, 200, "{}", a.text());
        if stream {
            assert_eq!(a.header("content-type"), Some("text/event-stream"));
            let text = a.text();
            assert!(text.starts_with("event: message_start\n"), "{text}");
            assert!(text.contains(r#""model":"claude-bedrock""#), "{text}");
            assert!(text.contains("event: message_stop"), "{text}");
            assert!(text.contains("world4"), "{text}");
        } else {
            let v = a.json();
            assert_eq!(v["content"][0]["text"], HELLO);
            assert_eq!(v["stop_reason"], "end_turn");
            // Claude's answer as Bedrock gave it, naming the model the client asked for
            // (Claude Code keeps thinking blocks only from answers that do)
            assert_eq!(v["model"], "claude-bedrock");
        }
        assert_sent_to_bedrock(&gw.upstream_request(&a), stream, "us-east-1");
        let usage = gw.usage_record_of(&a);
        assert_eq!(usage["completion_tokens"], 5, "{usage}");
        assert_eq!(usage["prompt_tokens"], 5, "{usage}");

        let body = json!({"model": "claude-bedrock", "input": "Say hello", "stream": stream});
        let a = gw.post("/v1/responses", &body.to_string());
        assert_responses_completed(&a, stream, HELLO);
        assert_sent_to_bedrock(&gw.upstream_request(&a), stream, "us-east-1");
        assert_eq!(gw.usage_record_of(&a)["completion_tokens"], 5);
    }
    // Bedrock serves no embeddings for Claude
    let a = gw.post(
        "/v1/embeddings",
        &json!({"model": "claude-bedrock", "input": "x"}).to_string(),
    );
    assert_eq!(a.status, 400, "{}", a.text());
}

/// Claude Code sends Anthropic-only betas with every request; Bedrock takes the betas it
/// offers in the body (`anthropic_beta`, under its own names) and refuses the request for any
/// other, so those reach it in the body and the rest nowhere.
#[test]
fn the_betas_bedrock_offers_go_in_the_body_and_the_others_nowhere() {
    let gw = start();
    let betas = "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,\
        advanced-tool-use-2025-11-20, context-1m-2025-08-07";
    for stream in [false, true] {
        let a = gw.post_with(
            "/v1/messages",
            &[
                ("anthropic-version", "2023-06-01"),
                ("anthropic-beta", betas),
            ],
            &messages("claude-bedrock", stream),
        );
        assert_eq!(a.status, 200, "{}", a.text());
        let record = gw.upstream_request(&a);
        let body = assert_sent_to_bedrock(&record, stream, "us-east-1");
        assert_eq!(
            body["anthropic_beta"],
            json!([
                "interleaved-thinking-2025-05-14",
                "tool-search-tool-2025-10-19",
                "context-1m-2025-08-07"
            ]),
            "{body}"
        );
        assert_eq!(sent_header(&record, "anthropic-beta"), None);
    }
    // a request with no beta Bedrock offers names none
    let a = gw.post_with(
        "/v1/messages",
        &[
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "claude-code-20250219"),
        ],
        &messages("claude-bedrock", false),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let body = assert_sent_to_bedrock(&gw.upstream_request(&a), false, "us-east-1");
    assert!(body.get("anthropic_beta").is_none(), "{body}");
}

#[test]
fn tools_reach_claude_on_bedrock_and_come_back() {
    let gw = start();
    for stream in [false, true] {
        let a = gw.post(
            "/v1/chat/completions",
            &weather_chat("claude-bedrock", stream),
        );
        assert_eq!(a.status, 200, "{}", a.text());
        if stream {
            assert!(a.text().contains("get_weather"), "{}", a.text());
            assert!(
                a.text().contains(r#""finish_reason":"tool_calls""#),
                "{}",
                a.text()
            );
        } else {
            let call = &a.json()["choices"][0]["message"]["tool_calls"][0];
            assert_eq!(call["function"]["name"], "get_weather");
            assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
        }
        let sent = assert_sent_to_bedrock(&gw.upstream_request(&a), stream, "us-east-1");
        assert_eq!(sent["tools"][0]["name"], "get_weather");
    }
    let body = weather_messages("claude-bedrock");
    let a = gw.post_with("/v1/messages", &ANTHROPIC, &body);
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    assert_eq!(v["content"][0]["input"], json!({"city": "Paris"}));
}

#[test]
fn a_429_fails_over_to_the_other_region_with_one_record() {
    let gw = start();
    gw.emulator.set_faults(&[("x-emulator-status", "429")]);
    let mut answers = Vec::new();
    for stream in [false, true, false, true] {
        let a = gw.post("/v1/chat/completions", &chat("claude-two-regions", stream));
        assert_eq!(a.status, 200, "{}", a.text());
        let record = Gateway::upstream_request_on(&gw.emulator2, &a);
        assert_sent_to_bedrock(&record, stream, "us-west-2");
        answers.push(a);
    }
    assert!(gw.emulator.requests_received() >= 1, "never tried the 429");
    assert_eq!(gw.emulator2.requests_received(), 4);
    let mut attempts = 0;
    for a in &answers {
        let id = a.header("x-request-id").unwrap();
        let records = gw.usage_records(answers.len());
        let mine: Vec<_> = records.iter().filter(|r| r["request_id"] == id).collect();
        assert_eq!(mine.len(), 1, "{records:?}");
        assert_eq!(mine[0]["provider"], "bedrock-b");
        attempts += mine[0]["attempts"].as_u64().unwrap();
    }
    assert!(
        attempts > 4,
        "no request went to the throttled region first"
    );

    // with no other region, each client gets the 429 in its own dialect
    gw.emulator2.set_faults(&[("x-emulator-status", "429")]);
    let a = gw.post("/v1/chat/completions", &chat("claude-two-regions", false));
    assert_eq!(a.status, 429, "{}", a.text());
    assert!(a.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Too many requests"));
    let a = gw.post_with(
        "/v1/messages",
        &ANTHROPIC,
        &messages("claude-two-regions", true),
    );
    assert_eq!(a.status, 429, "{}", a.text());
    assert_eq!(a.json()["type"], "error");
    assert_eq!(a.json()["error"]["type"], "rate_limit_error");
}

#[test]
fn a_failure_mid_stream_ends_the_stream_in_the_clients_dialect() {
    let gw = start();
    let error_after = [("x-emulator-stream-error-after", "3")];
    let a = gw.post_with(
        "/v1/chat/completions",
        &error_after,
        &chat("claude-bedrock", true),
    );
    assert_eq!(a.status, 200);
    let text = a.text();
    assert!(
        text.contains("unexpected error during processing"),
        "{text}"
    );
    assert!(!text.contains("[DONE]"), "{text}");
    let mut headers = error_after.to_vec();
    headers.extend(ANTHROPIC);
    let a = gw.post_with("/v1/messages", &headers, &messages("claude-bedrock", true));
    let text = a.text();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("event: message_stop"), "{text}");
    // a stream cut between frames ends with an error event too, never as if it were whole
    let mut headers = vec![("x-emulator-drop-after", "3")];
    headers.extend(ANTHROPIC);
    let a = gw.post_with("/v1/messages", &headers, &messages("claude-bedrock", true));
    let text = a.text();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("event: message_stop"), "{text}");
}

#[test]
fn a_wrong_secret_is_the_gateways_502_without_the_secret() {
    let gw = Gateway::start_with_env(
        BEDROCK,
        &[
            ("AWS_ACCESS_KEY_ID", BEDROCK_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", WRONG_SECRET),
        ],
    );
    for stream in [false, true] {
        let a = gw.post("/v1/chat/completions", &chat("claude-bedrock", stream));
        assert_eq!(a.status, 502, "{}", a.text());
        assert_eq!(a.json()["error"]["code"], "provider_auth_failed");
        assert!(!a.text().contains(WRONG_SECRET) && !a.text().contains("signature"));
        let a = gw.post_with(
            "/v1/messages",
            &ANTHROPIC,
            &messages("claude-bedrock", stream),
        );
        assert_eq!(a.status, 502, "{}", a.text());
        assert_eq!(a.json()["error"]["type"], "api_error");
        assert!(!a.text().contains(WRONG_SECRET));
        // a signed request went out and was refused (the emulator checks the signature)
        let record = gw.emulator.last_record().unwrap();
        assert_sent_to_bedrock(&record, stream, "us-east-1");
        let usage = gw.usage_record_of(&a);
        assert_eq!(usage["status"], 502, "{usage}");
        assert!(!usage.to_string().contains(WRONG_SECRET));
    }
}

#[test]
fn a_wrong_secret_never_reaches_the_log() {
    let extra = r#"
[providers.bedrock-local]
kind = "bedrock"
region = "eu-central-1"
base_url = "http://127.0.0.1:{EMU}"

[models."claude-local"]
provider = "bedrock-local"
upstream_model = "anthropic.claude-sonnet-4-5-v1:0"
"#;
    let bin = Binary::start_with_env(
        "bedrock-wrong-secret",
        extra,
        &[
            ("AWS_ACCESS_KEY_ID", BEDROCK_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", WRONG_SECRET),
            ("AWS_SESSION_TOKEN", "session-token-never-logged"),
        ],
    );
    let (status, _) = bin.post(KEY, &[], &chat("claude-local", false));
    assert_eq!(status, 502);
    // the refusal is logged for the operator, without the secret
    let line = bin.line_with("bedrock-local");
    assert!(line.contains("403"), "{line}");
    let lines = bin.lines.lock().unwrap();
    assert!(
        lines
            .iter()
            .all(|l| !l.contains(WRONG_SECRET) && !l.contains("session-token-never-logged")),
        "{lines:?}"
    );
}
