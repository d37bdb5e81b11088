//! Bedrock's models other than Claude (`kind = "bedrock"`, an `amazon.nova-…` id) through the
//! Converse API, against the emulator's Converse routes, which verify SigV4 and enforce
//! Converse's conversation rules: what goes up the wire (path, signature, the Converse body),
//! every client format (JSON and event streams), a tool loop the emulator's pairing rules
//! accept, a 429 failing over, an exception mid-stream, one priced record per request, and
//! the budget reservation of a request Converse sends without an output cap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cheapai_emulator::{BEDROCK_ACCESS_KEY_ID, BEDROCK_SECRET_ACCESS_KEY};
use common::*;
use serde_json::{json, Value};

const NOVA_PATH: &str = "/model/amazon.nova-pro-v1%3A0";

const BEDROCK: &str = r#"
[providers.bedrock-a]
kind = "bedrock"
region = "us-east-1"
base_url = "http://127.0.0.1:{EMU}"

[providers.bedrock-b]
kind = "bedrock"
region = "us-west-2"
base_url = "http://127.0.0.1:{EMU2}"

[models."nova-pro"]
provider = "bedrock-a"
upstream_model = "amazon.nova-pro-v1:0"
price = { input = 0.8, output = 3.2 }

[models."claude-bedrock"]
provider = "bedrock-a"
upstream_model = "us.anthropic.claude-sonnet-4-5-v1:0"

[models."nova-two-regions"]
deployments = [
  { provider = "bedrock-a", upstream_model = "amazon.nova-pro-v1:0", weight = 100 },
  { provider = "bedrock-b", upstream_model = "amazon.nova-pro-v1:0", weight = 1 },
]
"#;

const HELLO: &str = "Hello world1 world2 world3 world4";
const ANTHROPIC: [(&str, &str); 1] = [("anthropic-version", "2023-06-01")];

fn start() -> Gateway {
    Gateway::start_with_env(
        BEDROCK,
        &[
            ("AWS_ACCESS_KEY_ID", BEDROCK_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", BEDROCK_SECRET_ACCESS_KEY),
        ],
    )
}

/// What the emulator received: the Converse path of the model, a SigV4 signature by the
/// test key for `region` (verified by the emulator, or it would have refused), no client
/// key; returns the Converse body (no `model`, no `stream`: the emulator refuses both).
fn assert_conversed(record: &Value, stream: bool, region: &str) -> Value {
    let operation = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    assert_eq!(
        record["path"],
        format!("{NOVA_PATH}/{operation}"),
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
    assert!(sent_header(record, "x-amz-date").is_some());
    assert!(
        !record.to_string().contains(KEY),
        "client key sent: {record}"
    );
    serde_json::from_str(record["body"].as_str().unwrap()).unwrap()
}

/// The text of an OpenAI chat answer, whole or streamed.
fn chat_text(answer: &Answer, stream: bool) -> String {
    if !stream {
        return answer.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
    }
    answer
        .sse_data()
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

#[test]
fn chat_json_and_stream_are_signed_converse_calls_with_usage_and_price() {
    let gw = start();
    for stream in [false, true] {
        let a = gw.post("/v1/chat/completions", &chat("nova-pro", stream));
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(chat_text(&a, stream), HELLO);
        if stream {
            assert_eq!(a.header("content-type"), Some("text/event-stream"));
            assert_eq!(a.sse_data().last().map(String::as_str), Some("[DONE]"));
        } else {
            let v = a.json();
            assert_eq!(v["model"], "nova-pro");
            assert_eq!(v["choices"][0]["finish_reason"], "stop");
        }
        let body = assert_conversed(&gw.upstream_request(&a), stream, "us-east-1");
        assert_eq!(
            body,
            json!({"messages": [{"role": "user", "content": [{"text": "Say hello"}]}]})
        );
        let usage = gw.usage_record_of(&a);
        assert_eq!(usage["provider"], "bedrock-a");
        // "Say hello": 3 + 2 words; five text chunks
        assert_eq!(
            (&usage["prompt_tokens"], &usage["completion_tokens"]),
            (&json!(5), &json!(5)),
            "{usage}"
        );
        assert_eq!(usage["estimated"], false);
        // $0.80 and $3.20 per million: 5 × 0.8 + 5 × 3.2 micro-USD
        assert_eq!(usage["cost_micro_usd"], 20, "{usage}");
    }
    // Claude on the same provider keeps InvokeModel
    let a = gw.post("/v1/chat/completions", &chat("claude-bedrock", false));
    assert_eq!(a.status, 200, "{}", a.text());
    let path = gw.upstream_request(&a)["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(path.ends_with("/invoke"), "{path}");
}

#[test]
fn anthropic_and_responses_clients_json_and_stream() {
    let gw = start();
    for stream in [false, true] {
        let a = gw.post_with("/v1/messages", &ANTHROPIC, &messages("nova-pro", stream));
        assert_eq!(a.status, 200, "{}", a.text());
        if stream {
            let text = a.text();
            assert!(text.starts_with("event: message_start\n"), "{text}");
            assert!(text.contains("world4"), "{text}");
            assert!(text.contains("event: message_stop"), "{text}");
        } else {
            let v = a.json();
            assert_eq!(v["type"], "message");
            assert_eq!(v["content"][0]["text"], HELLO);
            assert_eq!(v["stop_reason"], "end_turn");
            assert_eq!(v["model"], "nova-pro");
            assert_eq!(v["usage"]["input_tokens"], 5);
        }
        let body = assert_conversed(&gw.upstream_request(&a), stream, "us-east-1");
        assert_eq!(body["inferenceConfig"], json!({"maxTokens": 64}));
        let usage = gw.usage_record_of(&a);
        assert_eq!(
            (&usage["prompt_tokens"], &usage["completion_tokens"]),
            (&json!(5), &json!(5)),
            "{usage}"
        );

        let request = json!({"model": "nova-pro", "input": "Say hello", "stream": stream,
                             "instructions": "Be brief."});
        let a = gw.post("/v1/responses", &request.to_string());
        assert_responses_completed(&a, stream, HELLO);
        let body = assert_conversed(&gw.upstream_request(&a), stream, "us-east-1");
        assert_eq!(body["system"], json!([{"text": "Be brief."}]));
        let usage = gw.usage_record_of(&a);
        // the system prompt counts too: 3 + 2 words
        assert_eq!(usage["prompt_tokens"], 10, "{usage}");
        assert_eq!(usage["completion_tokens"], 5, "{usage}");
    }
}

#[test]
fn a_tool_loop_keeps_converses_pairing_rules() {
    let gw = start();
    for stream in [false, true] {
        let a = gw.post("/v1/chat/completions", &weather_chat("nova-pro", stream));
        assert_eq!(a.status, 200, "{}", a.text());
        let (id, arguments) = if stream {
            let chunks: Vec<Value> = a
                .sse_data()
                .iter()
                .filter_map(|d| serde_json::from_str(d).ok())
                .collect();
            let calls: Vec<&Value> = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
                .collect();
            let arguments: String = calls
                .iter()
                .filter_map(|c| c["function"]["arguments"].as_str())
                .collect();
            let finish = chunks
                .iter()
                .find_map(|c| c["choices"][0]["finish_reason"].as_str());
            assert_eq!(finish, Some("tool_calls"));
            (calls[0]["id"].as_str().unwrap().to_string(), arguments)
        } else {
            let v = a.json();
            assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
            let call = &v["choices"][0]["message"]["tool_calls"][0];
            assert_eq!(call["function"]["name"], "get_weather");
            let arguments = call["function"]["arguments"].as_str().unwrap().to_string();
            (call["id"].as_str().unwrap().to_string(), arguments)
        };
        assert!(id.starts_with("tooluse_"), "{id}");
        assert_eq!(arguments, r#"{"city":"Paris"}"#);
        let sent = assert_conversed(&gw.upstream_request(&a), stream, "us-east-1");
        assert_eq!(
            sent["toolConfig"]["tools"][0]["toolSpec"]["name"],
            "get_weather"
        );

        // the tool's result goes back: the emulator takes it only paired with the call
        let tool_turn = |id: &str| {
            json!({"model": "nova-pro", "tools": weather_tools(), "stream": stream,
                "messages": [
                    {"role": "user", "content": "Weather in Paris?"},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": id,
                        "type": "function", "function": {"name": "get_weather",
                        "arguments": arguments}}]},
                    {"role": "tool", "tool_call_id": id, "content": "18C and sunny"}]})
            .to_string()
        };
        let a = gw.post("/v1/chat/completions", &tool_turn(&id));
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(chat_text(&a, stream), HELLO);
        let sent = assert_conversed(&gw.upstream_request(&a), stream, "us-east-1");
        assert_eq!(
            sent["messages"][2],
            json!({"role": "user", "content": [{"toolResult": {"toolUseId": id,
                "content": [{"text": "18C and sunny"}]}}]})
        );
        // a call answered with another id breaks Converse's rule: Bedrock's 400, relayed
        let a = gw.post("/v1/chat/completions", &tool_turn_mismatch(&id, stream));
        assert_eq!(a.status, 400, "{}", a.text());
        let message = a.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains("does not match"), "{message}");
    }

    // the last turn of a loop forbids tools, or sends none: Converse still needs the tools
    // its history uses declared (the emulator refuses tool blocks without), and answers text
    for tools in [
        json!({"tools": weather_tools(), "tool_choice": "none"}),
        json!({}),
    ] {
        let mut last_turn = json!({"model": "nova-pro", "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "tooluse_1",
                "type": "function", "function": {"name": "get_weather",
                "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "tooluse_1", "content": "18C"}]});
        for (k, v) in tools.as_object().unwrap() {
            last_turn[k] = v.clone();
        }
        let a = gw.post("/v1/chat/completions", &last_turn.to_string());
        assert_eq!(a.status, 200, "{tools}: {}", a.text());
        assert_eq!(chat_text(&a, false), HELLO);
        let sent = assert_conversed(&gw.upstream_request(&a), false, "us-east-1");
        assert_eq!(
            sent["toolConfig"]["tools"][0]["toolSpec"]["name"],
            "get_weather"
        );
        assert!(sent["toolConfig"].get("toolChoice").is_none(), "{sent}");
    }

    // an Anthropic client's loop, through the pivot
    let a = gw.post_with("/v1/messages", &ANTHROPIC, &weather_messages("nova-pro"));
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    let call = &v["content"][0];
    assert_eq!(call["input"], json!({"city": "Paris"}));
    let parameters = &weather_tools()[0]["function"]["parameters"];
    let next = json!({"model": "nova-pro", "max_tokens": 64,
        "tools": [{"name": "get_weather", "input_schema": parameters}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
                "content": "18C"}]}]});
    let a = gw.post_with("/v1/messages", &ANTHROPIC, &next.to_string());
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["content"][0]["text"], HELLO);
}

/// A tool turn whose result answers no call of the turn before.
fn tool_turn_mismatch(id: &str, stream: bool) -> String {
    json!({"model": "nova-pro", "tools": weather_tools(), "stream": stream,
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": id,
                "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "tooluse_other", "content": "18C"}]})
    .to_string()
}

#[test]
fn a_remote_image_is_the_clients_400_before_any_upstream_call() {
    let gw = start();
    let body = json!({"model": "nova-pro", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
    let a = gw.post("/v1/chat/completions", &body.to_string());
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(a.json()["error"]["param"], "messages");
    assert_eq!(gw.emulator.requests_received(), 0);
    // a data URL goes as bytes
    let body = json!({"model": "nova-pro", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]});
    let a = gw.post("/v1/chat/completions", &body.to_string());
    assert_eq!(a.status, 200, "{}", a.text());
    let sent = assert_conversed(&gw.upstream_request(&a), false, "us-east-1");
    assert_eq!(
        sent["messages"][0]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
    );
}

#[test]
fn a_429_fails_over_to_the_other_region_with_one_record() {
    let gw = start();
    gw.emulator.set_faults(&[("x-emulator-status", "429")]);
    let mut answers = Vec::new();
    for stream in [false, true, false, true] {
        let a = gw.post("/v1/chat/completions", &chat("nova-two-regions", stream));
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(chat_text(&a, stream), HELLO);
        let record = Gateway::upstream_request_on(&gw.emulator2, &a);
        assert_conversed(&record, stream, "us-west-2");
        answers.push(a);
    }
    assert!(gw.emulator.requests_received() >= 1, "never tried the 429");
    let records = gw.usage_records(answers.len());
    let mut attempts = 0;
    for a in &answers {
        let id = a.header("x-request-id").unwrap();
        let mine: Vec<_> = records.iter().filter(|r| r["request_id"] == id).collect();
        assert_eq!(mine.len(), 1, "{records:?}");
        assert_eq!(mine[0]["provider"], "bedrock-b");
        assert_eq!(mine[0]["completion_tokens"], 5);
        attempts += mine[0]["attempts"].as_u64().unwrap();
    }
    assert!(
        attempts > 4,
        "no request went to the throttled region first"
    );
    // with no other region, an Anthropic client gets the 429 in its dialect
    gw.emulator2.set_faults(&[("x-emulator-status", "429")]);
    let a = gw.post_with(
        "/v1/messages",
        &ANTHROPIC,
        &messages("nova-two-regions", false),
    );
    assert_eq!(a.status, 429, "{}", a.text());
    assert_eq!(a.json()["error"]["type"], "rate_limit_error");
}

#[test]
fn an_exception_mid_stream_ends_the_stream_in_the_clients_dialect() {
    let gw = start();
    let error_after = [("x-emulator-stream-error-after", "3")];
    let a = gw.post_with(
        "/v1/chat/completions",
        &error_after,
        &chat("nova-pro", true),
    );
    assert_eq!(a.status, 200);
    let text = a.text();
    assert!(text.contains("Hello"), "{text}");
    assert!(
        text.contains("unexpected error during processing"),
        "{text}"
    );
    assert!(!text.contains("[DONE]"), "{text}");
    let usage = gw.usage_record_of(&a);
    assert_eq!(usage["provider"], "bedrock-a", "{usage}");

    let mut headers = error_after.to_vec();
    headers.extend(ANTHROPIC);
    let a = gw.post_with("/v1/messages", &headers, &messages("nova-pro", true));
    let text = a.text();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("event: message_stop"), "{text}");
    // a stream cut between frames ends with an error event too, never as if it were whole
    let mut headers = vec![("x-emulator-drop-after", "3")];
    headers.extend(ANTHROPIC);
    let a = gw.post_with("/v1/messages", &headers, &messages("nova-pro", true));
    let text = a.text();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("event: message_stop"), "{text}");
}

/// Converse sends no output cap when the client sets none (the model's own applies), so a
/// budget reservation holds the catalog's `max_output_tokens` (16,384 by default), not the
/// 4,096 the gateway writes for Claude: an uncapped request whose worst case is over the
/// budget holds all of it while it runs, and the key's next request waits for it to settle.
#[test]
fn an_uncapped_request_reserves_the_models_whole_output() {
    let redis = RedisServer::start();
    let client_key = "cai-converse-budget";
    let extra = format!(
        "{BEDROCK}\n[state]\nredis_url = \"{}\"\ntimeout_ms = 500\n\
         [[keys]]\nname = \"budget\"\nsha256 = \"{}\"\nbudget_usd = 0.03\n",
        redis.url(),
        sha256_hex(client_key.as_bytes())
    );
    let gw = std::sync::Arc::new(Gateway::start_with_env(
        &extra,
        &[
            ("AWS_ACCESS_KEY_ID", BEDROCK_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", BEDROCK_SECRET_ACCESS_KEY),
        ],
    ));
    let auth = format!("Bearer {client_key}");
    let capped = json!({"model": "nova-pro", "max_tokens": 16,
        "messages": [{"role": "user", "content": "Say hello"}]})
    .to_string();
    let post = |headers: &[(&str, &str)], body: &str| {
        let mut all = vec![("authorization", auth.as_str())];
        all.extend_from_slice(headers);
        gw.request("POST", "/v1/chat/completions", &all, body.as_bytes())
    };
    // 16,384 output tokens at $3.20 per million: $0.052, over the $0.03 budget
    let uncapped = {
        let (gw, auth) = (gw.clone(), auth.clone());
        std::thread::spawn(move || {
            gw.request(
                "POST",
                "/v1/chat/completions",
                &[
                    ("authorization", auth.as_str()),
                    ("x-emulator-delay-ms", "2000"),
                ],
                chat("nova-pro", false).as_bytes(),
            )
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    let refused = post(&[], &capped);
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], "insufficient_quota");
    let first = uncapped.join().unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    // settled at its real cost, the budget has room again
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let again = loop {
        let a = post(&[], &capped);
        if a.status == 200 || std::time::Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(again.status, 200, "{}", again.text());
}
