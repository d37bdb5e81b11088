//! Azure OpenAI providers (`kind = "azure"`) against the emulator's Azure routes: what goes
//! up the wire (deployment path, `api-version`, `api-key`, no bearer), every client format
//! through it, Azure's content filter and 429s, failover between two deployments, and a
//! wrong key kept from clients and logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cheapai_emulator::AZURE_API_KEY;
use common::binary::Binary;
use common::*;
use serde_json::{json, Value};

const API_VERSION: &str = "2025-04-01-preview";
/// A key the emulator's Azure routes refuse: it must never reach a client or a log line.
const WRONG_KEY: &str = "azure-wrong-key-5d1f0c";

const AZURE: &str = r#"
[providers.azure-a]
kind = "azure"
base_url = "http://127.0.0.1:{EMU}"
api_key_env = "TEST_AZURE_KEY"
api_version = "2025-04-01-preview"
connect_timeout_ms = 500
first_byte_timeout_ms = 1500
idle_timeout_ms = 800

[providers.azure-b]
kind = "azure"
base_url = "http://127.0.0.1:{EMU2}"
api_key_env = "TEST_AZURE_KEY"
api_version = "2025-04-01-preview"

[providers.azure-wrong]
kind = "azure"
base_url = "http://127.0.0.1:{EMU}"
api_key_env = "TEST_AZURE_WRONG_KEY"
api_version = "2025-04-01-preview"

[models."gpt-4o-azure"]
provider = "azure-a"
upstream_model = "gpt-4o-eu"
price = { input = 2.5, output = 10.0 }

[models."emb-azure"]
provider = "azure-a"
upstream_model = "text-embedding-3-small"

[models."gpt-4o-two-regions"]
deployments = [
  { provider = "azure-a", upstream_model = "gpt-4o-eu", weight = 100 },
  { provider = "azure-b", upstream_model = "gpt-4o-se", weight = 1 },
]

[models."gpt-4o-wrong-key"]
provider = "azure-wrong"
upstream_model = "gpt-4o-eu"
"#;

fn start() -> Gateway {
    Gateway::start_with_env(
        AZURE,
        &[
            ("TEST_AZURE_KEY", AZURE_API_KEY),
            ("TEST_AZURE_WRONG_KEY", WRONG_KEY),
        ],
    )
}

/// What the emulator received for `answer`: the path and query, Azure's key, no bearer and
/// no client key, and the body's `model` (the deployment).
fn assert_sent_to_azure(gw: &Gateway, answer: &Answer, path: &str, deployment: &str) -> Value {
    let record = gw.upstream_request(answer);
    assert_eq!(
        record["path"],
        format!("{path}?api-version={API_VERSION}"),
        "{record}"
    );
    assert_eq!(sent_header(&record, "api-key"), Some(AZURE_API_KEY));
    assert_eq!(sent_header(&record, "authorization"), None, "{record}");
    assert!(
        !record.to_string().contains(KEY),
        "client key sent: {record}"
    );
    let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["model"], deployment);
    body
}

const HELLO: &str = "Hello world1 world2 world3 world4";

#[test]
fn chat_json_and_stream_go_to_the_deployment_with_the_api_key() {
    let gw = start();
    let a = gw.post("/v1/chat/completions", &chat("gpt-4o-azure", false));
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["choices"][0]["message"]["content"], HELLO);
    // Azure's own additions pass through as OpenAI-format hosts' answers do
    assert!(v["prompt_filter_results"].is_array(), "{v}");
    // the resource's ids, region and rate limits stay with the operator
    for header in ["apim-request-id", "x-ms-region", "azureml-model-session"] {
        assert_eq!(a.header(header), None, "{header}");
    }
    assert_eq!(a.header("x-ratelimit-remaining-tokens"), None);
    let path = "/openai/deployments/gpt-4o-eu/chat/completions";
    assert_sent_to_azure(&gw, &a, path, "gpt-4o-eu");
    let record = gw.usage_record_of(&a);
    assert_eq!(record["provider"], "azure-a");
    assert_eq!(
        (&record["prompt_tokens"], &record["completion_tokens"]),
        (&json!(5), &json!(5))
    );
    assert!(record["cost_micro_usd"].as_u64().unwrap() > 0, "{record}");

    let a = gw.post("/v1/chat/completions", &chat("gpt-4o-azure", true));
    assert_eq!(a.status, 200, "{}", a.text());
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
    // the usage chunk the gateway asked for is metered and not shown to this client
    assert!(!a.text().contains("\"usage\":{"), "{}", a.text());
    let body = assert_sent_to_azure(&gw, &a, path, "gpt-4o-eu");
    assert_eq!(body["stream_options"]["include_usage"], true);
    let record = gw.usage_record_of(&a);
    assert_eq!(record["completion_tokens"], 5);
    assert_eq!(record["estimated"], false);
}

#[test]
fn embeddings_responses_messages_and_tools() {
    let gw = start();
    let a = gw.post(
        "/v1/embeddings",
        &json!({"model": "emb-azure", "input": ["a b", "c"]}).to_string(),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["data"].as_array().unwrap().len(), 2);
    let path = "/openai/deployments/text-embedding-3-small/embeddings";
    assert_sent_to_azure(&gw, &a, path, "text-embedding-3-small");

    // Responses are translated to chat completions on the deployment
    let chat_path = "/openai/deployments/gpt-4o-eu/chat/completions";
    for stream in [false, true] {
        let body = json!({"model": "gpt-4o-azure", "input": "Say hello", "stream": stream});
        let a = gw.post("/v1/responses", &body.to_string());
        assert_responses_completed(&a, stream, HELLO);
        assert_sent_to_azure(&gw, &a, chat_path, "gpt-4o-eu");
    }

    // an Anthropic client, JSON and stream (the stream opens with Azure's filter chunk)
    let anthropic = [("anthropic-version", "2023-06-01")];
    for stream in [false, true] {
        let body = json!({"model": "gpt-4o-azure", "max_tokens": 64, "stream": stream,
                          "messages": [{"role": "user", "content": "Say hello"}]});
        let a = gw.post_with("/v1/messages", &anthropic, &body.to_string());
        assert_eq!(a.status, 200, "{}", a.text());
        if stream {
            assert!(a.text().contains("event: message_stop"), "{}", a.text());
            assert!(a.text().contains("world4"), "{}", a.text());
        } else {
            assert_eq!(a.json()["content"][0]["text"], HELLO);
            assert_eq!(a.json()["stop_reason"], "end_turn");
        }
        assert_sent_to_azure(&gw, &a, chat_path, "gpt-4o-eu");
    }

    // tools: OpenAI's tool call passes through; an Anthropic client gets tool_use
    let tools = weather_tools();
    let a = gw.post("/v1/chat/completions", &weather_chat("gpt-4o-azure", false));
    assert_eq!(a.status, 200, "{}", a.text());
    let call = &a.json()["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
    let sent = assert_sent_to_azure(&gw, &a, chat_path, "gpt-4o-eu");
    assert_eq!(sent["tools"], tools);
    let body = weather_messages("gpt-4o-azure");
    let a = gw.post_with("/v1/messages", &anthropic, &body);
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    assert_eq!(v["content"][0]["input"], json!({"city": "Paris"}));
}

#[test]
fn the_content_filter_reaches_each_client_in_its_dialect() {
    let gw = start();
    let refused = [("x-emulator-content-filter", "prompt")];
    for stream in [false, true] {
        let a = gw.post_with(
            "/v1/chat/completions",
            &refused,
            &chat("gpt-4o-azure", stream),
        );
        assert_eq!(a.status, 400, "{}", a.text());
        let v = a.json();
        assert_eq!(v["error"]["code"], "content_filter", "{v}");
        assert_eq!(v["error"]["param"], "prompt");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("content management policy"));
        // not retried: the request's own fault
        assert_eq!(gw.usage_record_of(&a)["attempts"], 1);

        let mut headers = refused.to_vec();
        headers.push(("anthropic-version", "2023-06-01"));
        let body = json!({"model": "gpt-4o-azure", "max_tokens": 64, "stream": stream,
                          "messages": [{"role": "user", "content": "Say hello"}]});
        let a = gw.post_with("/v1/messages", &headers, &body.to_string());
        assert_eq!(a.status, 400, "{}", a.text());
        let v = a.json();
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("content management policy"));
    }

    // a filtered completion ends as the filter ended it
    let cut = [("x-emulator-content-filter", "completion")];
    let a = gw.post_with("/v1/chat/completions", &cut, &chat("gpt-4o-azure", false));
    assert_eq!(a.json()["choices"][0]["finish_reason"], "content_filter");
    let a = gw.post_with("/v1/chat/completions", &cut, &chat("gpt-4o-azure", true));
    assert!(a.text().contains(r#""finish_reason":"content_filter""#));
    let mut headers = cut.to_vec();
    headers.push(("anthropic-version", "2023-06-01"));
    let body = json!({"model": "gpt-4o-azure", "max_tokens": 64,
                      "messages": [{"role": "user", "content": "Say hello"}]});
    let a = gw.post_with("/v1/messages", &headers, &body.to_string());
    assert_eq!(a.json()["stop_reason"], "refusal", "{}", a.text());
}

#[test]
fn a_429_fails_over_to_the_other_deployment_with_one_record() {
    let gw = start();
    // the first deployment (weight 100 of 101) is over its quota
    gw.emulator.set_faults(&[("x-emulator-status", "429")]);
    let mut answers = Vec::new();
    for stream in [false, true, false, true] {
        let a = gw.post("/v1/chat/completions", &chat("gpt-4o-two-regions", stream));
        assert_eq!(a.status, 200, "{}", a.text());
        let record = Gateway::upstream_request_on(&gw.emulator2, &a);
        assert_eq!(
            record["path"],
            format!("/openai/deployments/gpt-4o-se/chat/completions?api-version={API_VERSION}")
        );
        answers.push(a);
    }
    assert!(gw.emulator.requests_received() >= 1, "never tried the 429");
    assert_eq!(gw.emulator2.requests_received(), 4);
    for a in &answers {
        let id = a.header("x-request-id").unwrap();
        let records = gw.usage_records(answers.len());
        let mine: Vec<_> = records.iter().filter(|r| r["request_id"] == id).collect();
        assert_eq!(mine.len(), 1, "{records:?}");
        assert_eq!(mine[0]["provider"], "azure-b");
        assert_eq!(mine[0]["status"], 200);
    }
    let attempts: u64 = answers
        .iter()
        .map(|a| gw.usage_record_of(a)["attempts"].as_u64().unwrap())
        .sum();
    assert!(
        attempts > 4,
        "no request went to the failing deployment first"
    );

    // with no other deployment, the client gets Azure's 429 and its Retry-After
    gw.emulator2.set_faults(&[("x-emulator-status", "429")]);
    let a = gw.post("/v1/chat/completions", &chat("gpt-4o-two-regions", false));
    assert_eq!(a.status, 429, "{}", a.text());
    assert_eq!(a.json()["error"]["code"], "429");
    assert!(a.header("retry-after").is_some());
}

#[test]
fn a_wrong_key_is_the_gateways_502_without_the_key() {
    let gw = start();
    for stream in [false, true] {
        let a = gw.post("/v1/chat/completions", &chat("gpt-4o-wrong-key", stream));
        assert_eq!(a.status, 502, "{}", a.text());
        assert_eq!(a.json()["error"]["code"], "provider_auth_failed");
        assert!(!a.text().contains(WRONG_KEY) && !a.text().contains("subscription key"));
        let body = json!({"model": "gpt-4o-wrong-key", "max_tokens": 64, "stream": stream,
                          "messages": [{"role": "user", "content": "Say hello"}]});
        let a = gw.post_with(
            "/v1/messages",
            &[("anthropic-version", "2023-06-01")],
            &body.to_string(),
        );
        assert_eq!(a.status, 502, "{}", a.text());
        assert_eq!(a.json()["error"]["type"], "api_error");
        assert!(!a.text().contains(WRONG_KEY));
    }
}

#[test]
fn a_wrong_key_never_reaches_the_log() {
    let bin = Binary::start_with_env(
        "azure-wrong-key",
        AZURE,
        &[
            ("TEST_AZURE_KEY", AZURE_API_KEY),
            ("TEST_AZURE_WRONG_KEY", WRONG_KEY),
        ],
    );
    let (status, _) = bin.post(KEY, &[], &chat("gpt-4o-wrong-key", false));
    assert_eq!(status, 502);
    // the provider's refusal is logged for the operator, without the key
    let line = bin.line_with("Access denied");
    assert!(line.contains("azure-wrong"), "{line}");
    let lines = bin.lines.lock().unwrap();
    assert!(lines.iter().all(|l| !l.contains(WRONG_KEY)), "{lines:?}");
}
