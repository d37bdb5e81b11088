//! Google Vertex AI providers (`kind = "vertex"`) against the emulator's Vertex routes and
//! token endpoint: what goes up the wire (the publisher's path, a bearer token minted from
//! the service account, no client key, Claude's `anthropic_version` and no `model`), every
//! client format on a Claude and a Gemini model, tools, a 429 failover to another region,
//! a token refreshed before it expires (one mint for concurrent requests), and a refused or
//! malformed key file kept out of every answer.
//!
//! The service accounts are throwaway RSA keys made with openssl for each test (none is
//! committed); the emulator trusts the first one's public key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use cheapai_gateway::config::Config;
use common::vertex_account::{account, Account};
use common::*;
use serde_json::{json, Value};

const VERTEX: &str = r#"
[providers.vertex-a]
kind = "vertex"
base_url = "http://127.0.0.1:{EMU}"
project = "my-project"
region = "us-east5"
credentials_file_env = "TEST_VERTEX_CREDENTIALS"
connect_timeout_ms = 500
first_byte_timeout_ms = 1500
idle_timeout_ms = 800

[providers.vertex-b]
kind = "vertex"
base_url = "http://127.0.0.1:{EMU2}"
project = "my-project"
region = "europe-west1"
credentials_file_env = "TEST_VERTEX_CREDENTIALS"

[providers.vertex-untrusted]
kind = "vertex"
base_url = "http://127.0.0.1:{EMU}"
project = "my-project"
region = "us-east5"
credentials_file_env = "TEST_VERTEX_UNTRUSTED_CREDENTIALS"

[models."claude-sonnet-4-5-vertex"]
provider = "vertex-a"
upstream_model = "claude-sonnet-4-5@20250929"
price = { input = 3.0, output = 15.0 }

[models."gemini-2.5-flash-vertex"]
provider = "vertex-a"
upstream_model = "gemini-2.5-flash"
price = { input = 0.3, output = 2.5 }

[models."claude-two-regions"]
deployments = [
  { provider = "vertex-a", upstream_model = "claude-sonnet-4-5@20250929", weight = 100 },
  { provider = "vertex-b", upstream_model = "claude-sonnet-4-5@20250929", weight = 1 },
]

[models."claude-untrusted"]
provider = "vertex-untrusted"
upstream_model = "claude-sonnet-4-5@20250929"
"#;

const HELLO: &str = "Hello world1 world2 world3 world4";
const CLAUDE_PATH: &str =
    "/v1/projects/my-project/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929";
const GEMINI_PATH: &str =
    "/v1/projects/my-project/locations/us-east5/publishers/google/models/gemini-2.5-flash";

/// A gateway with the Vertex providers; the emulator trusts account `gateway`, not
/// `untrusted`. Returns the gateway and the trusted account.
fn start() -> (Gateway, Account) {
    let ports = free_ports::<4>();
    let dir = std::env::temp_dir().join(format!(
        "cheapai-vertex-{}-{}",
        std::process::id(),
        ports[0]
    ));
    let token_uri = format!("http://127.0.0.1:{}/token", ports[2]);
    let trusted = account(&dir, "gateway", &token_uri);
    let untrusted = account(&dir, "untrusted", &token_uri);
    let gw = Gateway::start_on(
        ports,
        "",
        VERTEX,
        &[
            (
                "TEST_VERTEX_CREDENTIALS",
                trusted.key_file.to_str().unwrap(),
            ),
            (
                "TEST_VERTEX_UNTRUSTED_CREDENTIALS",
                untrusted.key_file.to_str().unwrap(),
            ),
        ],
    );
    gw.emulator.trust_vertex_key(&trusted.public_pem).unwrap();
    (gw, trusted)
}

/// What the emulator received for `answer`: `path`, an emulator-issued bearer token and no
/// other credential; returns the body sent.
fn assert_sent_to_vertex(gw: &Gateway, answer: &Answer, path: &str) -> Value {
    let record = gw.upstream_request(answer);
    assert_eq!(record["path"], path, "{record}");
    let bearer = sent_header(&record, "authorization").unwrap_or_default();
    assert!(bearer.starts_with("Bearer ya29.emulator."), "{record}");
    for header in [
        "x-api-key",
        "x-goog-api-key",
        "api-key",
        "anthropic-version",
    ] {
        assert_eq!(sent_header(&record, header), None, "{header}: {record}");
    }
    assert!(
        !record.to_string().contains(KEY),
        "client key sent: {record}"
    );
    serde_json::from_str(record["body"].as_str().unwrap()).unwrap()
}

fn claude_sent(gw: &Gateway, answer: &Answer, stream: bool) {
    let method = if stream {
        "streamRawPredict"
    } else {
        "rawPredict"
    };
    let body = assert_sent_to_vertex(gw, answer, &format!("{CLAUDE_PATH}:{method}"));
    assert_eq!(body["anthropic_version"], "vertex-2023-10-16", "{body}");
    assert_eq!(body.get("model"), None, "{body}");
    assert_eq!(body["stream"].as_bool().unwrap_or(false), stream, "{body}");
}

fn gemini_sent(gw: &Gateway, answer: &Answer, stream: bool) {
    let method = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    let body = assert_sent_to_vertex(gw, answer, &format!("{GEMINI_PATH}:{method}"));
    assert!(body["contents"].is_array(), "{body}");
}

fn chat_text(answer: &Answer, stream: bool) -> String {
    if !stream {
        return answer.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    let data = answer.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    data.iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

/// Chat, Anthropic Messages and Responses clients, JSON and stream, on `model`; `sent`
/// checks what each request put on the wire.
fn every_client_format(gw: &Gateway, model: &str, sent: fn(&Gateway, &Answer, bool)) {
    for stream in [false, true] {
        let a = gw.post("/v1/chat/completions", &chat(model, stream));
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(chat_text(&a, stream), HELLO);
        sent(gw, &a, stream);

        let a = gw.post_with(
            "/v1/messages",
            &[("anthropic-version", "2023-06-01")],
            &messages(model, stream),
        );
        assert_eq!(a.status, 200, "{}", a.text());
        if stream {
            assert!(a.text().contains("event: message_stop"), "{}", a.text());
            assert!(a.text().contains("world4"), "{}", a.text());
        } else {
            assert_eq!(a.json()["content"][0]["text"], HELLO, "{}", a.text());
        }
        sent(gw, &a, stream);

        let body = json!({"model": model, "input": "Say hello", "stream": stream});
        let a = gw.post("/v1/responses", &body.to_string());
        assert_responses_completed(&a, stream, HELLO);
        sent(gw, &a, stream);
    }
}

#[test]
fn claude_on_vertex_through_every_client_format_with_usage_and_price() {
    let (gw, _) = start();
    every_client_format(&gw, "claude-sonnet-4-5-vertex", claude_sent);
    let a = gw.post(
        "/v1/chat/completions",
        &chat("claude-sonnet-4-5-vertex", false),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let record = gw.usage_record_of(&a);
    assert_eq!(record["provider"], "vertex-a");
    assert_eq!(
        (&record["prompt_tokens"], &record["completion_tokens"]),
        (&json!(5), &json!(5))
    );
    // 5 × $3/M + 5 × $15/M
    assert_eq!(record["cost_micro_usd"], 90, "{record}");
    // one token served every request so far
    assert_eq!(gw.emulator.vertex_tokens_issued(), 1);
}

/// Claude Code sends Anthropic-only betas with every request; Vertex refuses a request
/// naming a beta it does not offer, so only those it offers reach it, under its names.
#[test]
fn only_the_betas_vertex_offers_reach_it() {
    let (gw, _) = start();
    let betas = "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,\
        fine-grained-tool-streaming-2025-05-14,advanced-tool-use-2025-11-20";
    for stream in [false, true] {
        let a = gw.post_with(
            "/v1/messages",
            &[
                ("anthropic-version", "2023-06-01"),
                ("anthropic-beta", betas),
            ],
            &messages("claude-sonnet-4-5-vertex", stream),
        );
        assert_eq!(a.status, 200, "{}", a.text());
        claude_sent(&gw, &a, stream);
        let record = gw.upstream_request(&a);
        assert_eq!(
            sent_header(&record, "anthropic-beta"),
            Some("interleaved-thinking-2025-05-14,tool-search-tool-2025-10-19"),
            "{record}"
        );
    }
    let a = gw.post_with(
        "/v1/messages",
        &[
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "claude-code-20250219"),
        ],
        &messages("claude-sonnet-4-5-vertex", false),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        sent_header(&gw.upstream_request(&a), "anthropic-beta"),
        None
    );
}

#[test]
fn gemini_on_vertex_through_every_client_format_with_usage() {
    let (gw, _) = start();
    every_client_format(&gw, "gemini-2.5-flash-vertex", gemini_sent);
    let a = gw.post(
        "/v1/chat/completions",
        &chat("gemini-2.5-flash-vertex", true),
    );
    let record = gw.usage_record_of(&a);
    assert_eq!(record["provider"], "vertex-a");
    assert_eq!(record["completion_tokens"], 5, "{record}");
    assert!(record["cost_micro_usd"].as_u64().unwrap() > 0, "{record}");
    // a Gemini chat model on Vertex has no embeddings: said at once, nothing sent
    let before = gw.emulator.requests_received();
    let body = json!({"model": "gemini-2.5-flash-vertex", "input": "x"});
    let a = gw.post("/v1/embeddings", &body.to_string());
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(gw.emulator.requests_received(), before);
}

#[test]
fn tools_on_both_publishers() {
    let (gw, _) = start();
    for model in ["claude-sonnet-4-5-vertex", "gemini-2.5-flash-vertex"] {
        for stream in [false, true] {
            let a = gw.post("/v1/chat/completions", &weather_chat(model, stream));
            assert_eq!(a.status, 200, "{}", a.text());
            if stream {
                assert!(a.text().contains("get_weather"), "{}", a.text());
                let arguments: String = a
                    .sse_data()
                    .iter()
                    .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                    .filter_map(|c| {
                        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                            .as_str()
                            .map(String::from)
                    })
                    .collect();
                assert_eq!(arguments, r#"{"city":"Paris"}"#, "{model}");
            } else {
                let call = &a.json()["choices"][0]["message"]["tool_calls"][0];
                assert_eq!(call["function"]["name"], "get_weather", "{model}");
                assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
            }
        }
        let body = weather_messages(model);
        let a = gw.post_with(
            "/v1/messages",
            &[("anthropic-version", "2023-06-01")],
            &body,
        );
        assert_eq!(a.status, 200, "{}", a.text());
        let v = a.json();
        assert_eq!(v["stop_reason"], "tool_use", "{model}: {v}");
        let call = v["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "tool_use")
            .cloned()
            .unwrap();
        assert_eq!(call["input"], json!({"city": "Paris"}));
    }
}

#[test]
fn a_429_fails_over_to_the_other_region_with_one_record() {
    let (gw, _) = start();
    gw.emulator.set_faults(&[("x-emulator-status", "429")]);
    let mut answers = Vec::new();
    for stream in [false, true, false, true] {
        let a = gw.post("/v1/chat/completions", &chat("claude-two-regions", stream));
        assert_eq!(a.status, 200, "{}", a.text());
        let record = Gateway::upstream_request_on(&gw.emulator2, &a);
        let path = record["path"].as_str().unwrap();
        assert!(
            path.starts_with(
                "/v1/projects/my-project/locations/europe-west1/publishers/anthropic/"
            ),
            "{path}"
        );
        // the token from the same service account serves both regions
        assert!(sent_header(&record, "authorization")
            .unwrap()
            .starts_with("Bearer ya29.emulator."));
        answers.push(a);
    }
    assert_eq!(gw.emulator2.requests_received(), 4);
    let mut attempts = 0;
    for a in &answers {
        let id = a.header("x-request-id").unwrap();
        let records = gw.usage_records(answers.len());
        let mine: Vec<_> = records.iter().filter(|r| r["request_id"] == id).collect();
        assert_eq!(mine.len(), 1, "{records:?}");
        assert_eq!(mine[0]["provider"], "vertex-b");
        attempts += mine[0]["attempts"].as_u64().unwrap();
    }
    assert!(attempts > 4, "no request went to the failing region first");

    // Gemini's RESOURCE_EXHAUSTED with nowhere else to go reaches the client as a 429
    let a = gw.post(
        "/v1/chat/completions",
        &chat("gemini-2.5-flash-vertex", false),
    );
    assert_eq!(a.status, 429, "{}", a.text());
    assert_eq!(
        a.json()["error"]["code"],
        "rate_limit_exceeded",
        "{}",
        a.text()
    );
    assert!(!a.text().contains("ya29"), "{}", a.text());
}

#[test]
fn a_token_is_shared_then_refreshed_before_it_expires() {
    let (gw, _) = start();
    // 4 s tokens: the gateway replaces them after 2 s (half their life when that is
    // shorter than five minutes)
    gw.emulator
        .set_vertex_token_lifetime(Duration::from_secs(4));
    // concurrent first requests wait for one mint
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    gw.post(
                        "/v1/chat/completions",
                        &chat("gemini-2.5-flash-vertex", false),
                    )
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().status, 200);
        }
    });
    assert_eq!(gw.emulator.vertex_tokens_issued(), 1);
    let first = gw.post(
        "/v1/chat/completions",
        &chat("claude-sonnet-4-5-vertex", false),
    );
    assert_eq!(first.status, 200);
    let first_token = sent_header(&gw.upstream_request(&first), "authorization")
        .unwrap()
        .to_string();
    assert_eq!(gw.emulator.vertex_tokens_issued(), 1);

    std::thread::sleep(Duration::from_millis(2200));
    let later = gw.post(
        "/v1/chat/completions",
        &chat("claude-sonnet-4-5-vertex", true),
    );
    assert_eq!(later.status, 200, "{}", later.text());
    assert_eq!(gw.emulator.vertex_tokens_issued(), 2);
    let later_token = sent_header(&gw.upstream_request(&later), "authorization")
        .unwrap()
        .to_string();
    assert_ne!(first_token, later_token);

    // the old token is refused once it has expired: the gateway never sends it again
    std::thread::sleep(Duration::from_millis(2200));
    let refused = ureq::post(&format!("{}{CLAUDE_PATH}:rawPredict", gw.emu_url))
        .set("authorization", &first_token)
        .send_string(r#"{"anthropic_version":"vertex-2023-10-16","max_tokens":9,"messages":[]}"#);
    match refused {
        Err(ureq::Error::Status(status, r)) => {
            assert_eq!(status, 401);
            assert!(r.into_string().unwrap().contains("UNAUTHENTICATED"));
        }
        other => panic!("expired token accepted: {other:?}"),
    }
    let a = gw.post(
        "/v1/chat/completions",
        &chat("claude-sonnet-4-5-vertex", false),
    );
    assert_eq!(a.status, 200, "{}", a.text());
}

#[test]
fn a_key_the_token_endpoint_refuses_is_a_502_without_key_material() {
    let (gw, trusted) = start();
    for stream in [false, true] {
        let a = gw.post("/v1/chat/completions", &chat("claude-untrusted", stream));
        assert_eq!(a.status, 502, "{}", a.text());
        let text = a.text();
        assert!(
            text.contains("could not get a Google access token"),
            "{text}"
        );
        assert!(text.contains("vertex-untrusted"), "{text}");
        for secret in ["PRIVATE KEY", "ya29", "eyJ", "assertion"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let body = json!({"model": "claude-untrusted", "max_tokens": 64, "stream": stream,
                          "messages": [{"role": "user", "content": "Say hello"}]});
        let a = gw.post_with(
            "/v1/messages",
            &[("anthropic-version", "2023-06-01")],
            &body.to_string(),
        );
        assert_eq!(a.status, 502, "{}", a.text());
        assert_eq!(a.json()["type"], "error");
        assert!(!a.text().contains("PRIVATE KEY"));
    }
    // the model was never called without a token
    assert_eq!(gw.emulator.vertex_tokens_issued(), 0);
    let record = gw.emulator.last_record().unwrap();
    assert!(
        record["path"].as_str().unwrap().ends_with("/token"),
        "{record}"
    );
    // and the key file's key never left it
    let line = trusted.private_pem.lines().nth(1).unwrap();
    assert!(!record.to_string().contains(line));
}

#[test]
fn a_malformed_or_missing_key_file_is_a_config_problem_without_its_content() {
    let dir = std::env::temp_dir().join(format!("cheapai-vertex-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCsecretsecret";
    let bad = dir.join("bad.json");
    let file = json!({
        "type": "service_account",
        "private_key": format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
        "client_email": "gw@my-project.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    std::fs::write(&bad, file.to_string()).unwrap();
    let config = r#"
[providers.v]
kind = "vertex"
project = "my-project"
region = "global"

[models."gemini-v"]
provider = "v"
upstream_model = "gemini-2.5-flash"
"#;
    let text = config_text(1, 2, 3, config);
    let bad_path = bad.to_str().unwrap().to_string();
    let e = Config::parse(&text, "test.toml", &|name| match name {
        "GOOGLE_APPLICATION_CREDENTIALS" => Some(bad_path.clone()),
        "TEST_PROVIDER_KEY" => Some(PROVIDER_KEY.into()),
        "TEST_ADMIN_TOKEN" => Some(ADMIN_TOKEN.into()),
        _ => None,
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("providers.v.credentials_file_env"), "{e}");
    assert!(e.contains("not an RSA private key"), "{e}");
    assert!(!e.contains(secret), "{e}");

    let e = Config::parse(&text, "test.toml", &|name| match name {
        "TEST_PROVIDER_KEY" => Some(PROVIDER_KEY.into()),
        "TEST_ADMIN_TOKEN" => Some(ADMIN_TOKEN.into()),
        _ => None,
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("GOOGLE_APPLICATION_CREDENTIALS is not set"),
        "{e}"
    );
}

#[test]
fn a_refused_key_is_logged_for_the_operator_without_key_material() {
    // the in-process emulator (which trusts only account `gateway`) is the token endpoint
    let (gw, _) = start();
    let dir = std::env::temp_dir().join(format!("cheapai-vertex-log-{}", gw.emu_port));
    let untrusted = account(&dir, "stranger", &format!("{}/token", gw.emu_url));
    let config = r#"
[providers.vertex-stranger]
kind = "vertex"
base_url = "http://127.0.0.1:{EMU}"
project = "my-project"
region = "us-east5"
credentials_file_env = "TEST_VERTEX_STRANGER"

[models."claude-stranger"]
provider = "vertex-stranger"
upstream_model = "claude-sonnet-4-5@20250929"
"#;
    let bin = common::binary::Binary::start_with_env(
        "vertex-stranger",
        config,
        &[("TEST_VERTEX_STRANGER", untrusted.key_file.to_str().unwrap())],
    );
    let (status, _) = bin.post(KEY, &[], &chat("claude-stranger", false));
    assert_eq!(status, 502);
    // the operator reads who was refused and why
    let line = bin.line_with("refused the service account");
    assert!(line.contains("vertex-stranger"), "{line}");
    assert!(
        line.contains("stranger@my-project.iam.gserviceaccount.com"),
        "{line}"
    );
    assert!(line.contains("invalid_grant"), "{line}");
    let key_lines: Vec<&str> = untrusted
        .private_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let lines = bin.lines.lock().unwrap();
    for l in lines.iter() {
        assert!(!l.contains("eyJ") && !l.contains("ya29"), "{l}");
        assert!(key_lines.iter().all(|k| !l.contains(k)), "{l}");
    }
}
