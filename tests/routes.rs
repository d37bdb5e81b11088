//! Pattern routes and model names: exact names over patterns, the longest pattern, the
//! requested name upstream, per-pattern prices, keys limited by pattern, the records of
//! unknown names, and the root URL clients probe.

// test helpers fail loudly
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

const ROUTES: &str = r#"
[models."claude-*"]
provider = "emu"
price = { input = 10.0, output = 50.0 }

[models."claude-opus-*"]
provider = "emu"
price = { input = 5.0, output = 25.0 }

[models."claude-opus-4-8"]
provider = "emu"
upstream_model = "claude-opus-4-8-20261001"
price = { input = 4.0, output = 20.0 }

[[keys]]
name = "claude-only"
sha256 = "SHA"
models = ["claude-*"]
"#;

const CLAUDE_ONLY: &str = "cai-test-claude-only-0004";

fn start() -> Gateway {
    Gateway::start_with(&ROUTES.replace("SHA", &sha256_hex(CLAUDE_ONLY.as_bytes())))
}

/// The model name the provider received for a request for `requested`, and the record.
fn served(gw: &Gateway, requested: &str) -> (String, serde_json::Value) {
    let a = gw.post("/v1/chat/completions", &chat(requested, false));
    assert_eq!(a.status, 200, "{}", a.text());
    let upstream: serde_json::Value =
        serde_json::from_str(gw.upstream_request(&a)["body"].as_str().unwrap()).unwrap();
    let record = gw.usage_record_of(&a);
    (upstream["model"].as_str().unwrap().to_string(), record)
}

#[test]
fn exact_names_win_then_the_longest_pattern_and_each_prices_its_own() {
    let gw = start();
    // "Say hello": 5 prompt tokens, 5 completion tokens
    for (requested, upstream, micro_usd) in [
        (
            "claude-opus-4-8",
            "claude-opus-4-8-20261001",
            5 * 4 + 5 * 20,
        ),
        ("claude-opus-5-5", "claude-opus-5-5", 5 * 5 + 5 * 25),
        ("claude-haiku-5-5", "claude-haiku-5-5", 5 * 10 + 5 * 50),
    ] {
        let (sent, record) = served(&gw, requested);
        assert_eq!(sent, upstream, "{requested}");
        assert_eq!(
            record["model"], requested,
            "records name the requested model"
        );
        assert_eq!(record["cost_micro_usd"], micro_usd, "{requested}");
        assert_eq!(record["attempts"], 1);
    }
    // metrics label the route, not every name seen
    let metrics = gw.scrape();
    assert!(metrics.contains(r#"model="claude-opus-*""#), "{metrics}");
    assert!(metrics.contains(r#"model="claude-*""#));
    assert!(!metrics.contains(r#"model="claude-haiku-5-5""#));
}

#[test]
fn a_name_matching_no_route_is_404_and_its_record_names_it() {
    let gw = start();
    for bad in [
        "gemini-4-argon",
        "claude",
        "claude-x/../../v1/files",
        "claude-a b",
    ] {
        let a = gw.post("/v1/chat/completions", &chat(bad, false));
        assert_eq!(a.status, 404, "{bad}: {}", a.text());
        assert_eq!(a.json()["error"]["code"], "model_not_found");
    }
    let records = gw.usage_records(4);
    let unknown = records
        .iter()
        .find(|r| r["model"] == "gemini-4-argon")
        .unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(unknown["status"], 404);
    assert_eq!(unknown["error"], "model_not_found");
    assert_eq!(unknown["provider"], "-");
    assert_eq!(unknown["cost_micro_usd"], 0);
    assert_eq!(unknown["attempts"], 0);
    assert_eq!(gw.emulator.requests_received(), 0);
}

#[test]
fn a_key_limited_to_a_pattern_uses_any_name_it_matches_and_nothing_else() {
    let gw = start();
    let auth = format!("Bearer {CLAUDE_ONLY}");
    let send = |model: &str| {
        gw.request(
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            chat(model, false).as_bytes(),
        )
    };
    assert_eq!(send("claude-opus-4-8").status, 200);
    assert_eq!(send("claude-sonnet-9").status, 200);
    let refused = send("gpt-4o");
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], "model_not_allowed");
}

#[test]
fn models_lists_exact_names_only() {
    let gw = start();
    let a = gw.request(
        "GET",
        "/v1/models",
        &[("authorization", &format!("Bearer {KEY}"))],
        b"",
    );
    let ids: Vec<String> = a.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&"claude-opus-4-8".to_string()), "{ids:?}");
    assert!(ids.iter().all(|id| !id.contains('*')), "{ids:?}");
}

#[test]
fn the_root_answers_get_and_head_without_a_key() {
    let gw = start();
    let get = gw.request("GET", "/", &[], b"");
    assert_eq!(get.status, 200);
    assert_eq!(get.json()["status"], "ok");
    assert!(get.header("x-request-id").is_some());
    let head = gw.request("HEAD", "/", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(gw.request("POST", "/", &[], b"{}").status, 405);
}
