//! A provider refusing the gateway's own key (401/403) or account (402, billing): the client
//! gets the gateway's 502 in its own dialect, never the provider's text, and the operator's
//! metrics count it.

mod common;

use common::*;
use serde_json::json;

/// What a provider's error text may carry of the operator's key.
const LEAK: &str = "Incorrect API key provided: sk-prov****9f8e";

const ANTHROPIC: &str = r#"
[providers.emu-anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:{EMU}"
api_key_env = "TEST_PROVIDER_KEY"
connect_timeout_ms = 500
first_byte_timeout_ms = 1500
idle_timeout_ms = 800

[models."claude-test"]
provider = "emu-anthropic"
upstream_model = "claude-3-5-sonnet-20241022"
"#;

fn messages(model: &str, stream: bool) -> String {
    json!({
        "model": model,
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello"}],
    })
    .to_string()
}

/// The gateway's own 502, in OpenAI's or Anthropic's shape, with nothing of the provider's.
fn assert_gateway_502(a: &Answer, anthropic: bool, case: &str) {
    assert_eq!(a.status, 502, "{case}: {}", a.text());
    let text = a.text();
    for leaked in [
        "sk-prov",
        "Incorrect API key",
        "sk-emul",
        "invalid x-api-key",
    ] {
        assert!(!text.contains(leaked), "{case}: {text}");
    }
    assert!(text.contains("operator"), "{case}: {text}");
    let v = a.json();
    if anthropic {
        assert_eq!(v["type"], "error", "{case}: {v}");
        assert_eq!(v["error"]["type"], "api_error", "{case}: {v}");
    } else {
        assert_eq!(v["error"]["code"], "provider_auth_failed", "{case}: {v}");
    }
}

#[test]
fn a_provider_refusing_the_gateways_key_is_a_502_without_the_providers_text() {
    let gw = Gateway::start_with(ANTHROPIC);
    let anthropic_client = [("anthropic-version", "2023-06-01")];
    for status in ["401", "403"] {
        for stream in [false, true] {
            // OpenAI client → OpenAI-format provider, the provider's text raw and as JSON
            for raw in [Some(LEAK), None] {
                let mut headers = vec![("x-emulator-status", status)];
                headers.extend(raw.map(|r| ("x-emulator-error-body", r)));
                let a = gw.post_with("/v1/chat/completions", &headers, &chat("gpt-4o", stream));
                assert_gateway_502(&a, false, &format!("chat {status} {stream} {raw:?}"));
            }
            // Anthropic client → Anthropic provider (native passthrough otherwise)
            let mut headers = vec![
                ("x-emulator-status", status),
                ("x-emulator-error-body", LEAK),
            ];
            headers.extend_from_slice(&anthropic_client);
            let a = gw.post_with("/v1/messages", &headers, &messages("claude-test", stream));
            assert_gateway_502(&a, true, &format!("messages {status} {stream}"));
            let headers = [("x-emulator-status", status), anthropic_client[0]];
            let a = gw.post_with("/v1/messages", &headers, &messages("claude-test", stream));
            assert_gateway_502(&a, true, &format!("messages json {status} {stream}"));
            // Anthropic client → OpenAI-format provider; OpenAI client → Anthropic provider
            let headers = [("x-emulator-status", status), anthropic_client[0]];
            let a = gw.post_with("/v1/messages", &headers, &messages("gpt-4o", stream));
            assert_gateway_502(&a, true, &format!("messages→openai {status} {stream}"));
            let a = gw.post_with(
                "/v1/chat/completions",
                &[("x-emulator-status", status)],
                &chat("claude-test", stream),
            );
            assert_gateway_502(&a, false, &format!("chat→anthropic {status} {stream}"));
        }
    }
    // Anthropic's billing refusal is the operator's too
    let headers = [("x-emulator-status", "402"), anthropic_client[0]];
    let a = gw.post_with("/v1/messages", &headers, &messages("claude-test", false));
    assert_gateway_502(&a, true, "messages 402");

    // other client errors are as before: the provider's own answer
    let a = gw.post_with(
        "/v1/chat/completions",
        &[("x-emulator-status", "404")],
        &chat("gpt-4o", false),
    );
    assert_eq!(a.status, 404, "{}", a.text());
    let headers = [("x-emulator-status", "429"), anthropic_client[0]];
    let a = gw.post_with("/v1/messages", &headers, &messages("claude-test", false));
    assert_eq!(a.status, 429, "{}", a.text());
    assert_eq!(a.json()["error"]["type"], "rate_limit_error");

    let metrics = gw.scrape();
    let count = |provider: &str| {
        let prefix = format!("cheapai_provider_auth_failures_total{{provider=\"{provider}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    // per provider: chat (2 bodies × 2 statuses × 2 modes) + messages→openai (2 × 2)
    assert_eq!(count("emu"), 12, "{metrics}");
    // messages (2 bodies) + chat→anthropic, × 2 statuses × 2 modes, + the 402
    assert_eq!(count("emu-anthropic"), 13, "{metrics}");
}
