//! Prompt caching across formats: an OpenAI-format client on a Claude model gets Anthropic's
//! cache breakpoints placed for it (`prompt_cache = "auto"`, the default), sees the cached
//! tokens in its own usage shape, and is billed at the cache rates; `"off"` sends the request
//! as written. The emulator keeps Anthropic's prompt cache by its documented rules, so the
//! saving measured here is the one a bill would show.

#![allow(clippy::panic)] // test helpers fail loudly

mod common;

use common::*;
use serde_json::{json, Value};

const MODELS: &str = r#"
[providers.emu-anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:{EMU}"
api_key_env = "TEST_PROVIDER_KEY"

[models."claude-auto"]
provider = "emu-anthropic"
upstream_model = "claude-sonnet-4-5"
price = { input = 3.0, output = 15.0, cached_input = 0.3 }

[models."claude-off"]
provider = "emu-anthropic"
upstream_model = "claude-sonnet-4-5"
price = { input = 3.0, output = 15.0, cached_input = 0.3 }
prompt_cache = "off"
"#;

/// Micro-USD per token at the prices above (USD per 1M tokens): input, cache read, 5-minute
/// cache write (1.25 × input, the default), output.
const INPUT: u64 = 3;
const READ: f64 = 0.3;
const WRITE: f64 = 3.75;
const OUTPUT: u64 = 15;

/// Turn `turn` (from 1) of a Codex-shaped tool loop on `model`: Codex's own first request
/// (its instructions, tools, `store: false`, streamed), then one shell call and its output per
/// earlier turn, as Codex sends them back.
fn codex_turn(model: &str, turn: usize) -> String {
    let mut request: Value =
        serde_json::from_slice(include_bytes!("fixtures/codex/first-request.json"))
            .unwrap_or_else(|e| panic!("fixture: {e}"));
    request["model"] = json!(model);
    let input = request["input"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("fixture without input"));
    for call in 1..turn {
        let id = format!("call_{call}");
        input.push(
            json!({"type": "function_call", "call_id": id, "name": "exec_command",
            "arguments": format!("{{\"cmd\":\"cargo build -p crate{call}\"}}")}),
        );
        let output = format!("step {call}: ") + &"compiling warning unused ".repeat(40);
        input.push(json!({"type": "function_call_output", "call_id": id, "output": output}));
    }
    request.to_string()
}

/// Where the provider's request carries `cache_control`: "system[i]", "tools[i]" or
/// "messages[m][b]".
fn breakpoints(anthropic: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut scan = |place: String, blocks: &Value| {
        for (i, block) in blocks.as_array().into_iter().flatten().enumerate() {
            if block.get("cache_control").is_some() {
                found.push(format!("{place}[{i}]"));
            }
        }
    };
    scan("tools".into(), &anthropic["tools"]);
    scan("system".into(), &anthropic["system"]);
    for (m, message) in anthropic["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        scan(format!("messages[{m}]"), &message["content"]);
    }
    found
}

/// One turn's figures: the client's usage, the record, and the provider's request.
struct Turn {
    /// `usage` of the client's `response.completed` event.
    usage: Value,
    record: Value,
    upstream: Value,
}

fn run_turn(gw: &Gateway, model: &str, turn: usize) -> Turn {
    let answer = gw.post("/v1/responses", &codex_turn(model, turn));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let completed = answer
        .sse_data()
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|e| e["type"] == "response.completed")
        .unwrap_or_else(|| panic!("no response.completed: {}", answer.text()));
    let exchange = gw.upstream_request(&answer);
    let upstream: Value = serde_json::from_str(exchange["body"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the provider's request is not recorded whole: {e}"));
    Turn {
        usage: completed["response"]["usage"].clone(),
        record: gw.usage_record_of(&answer),
        upstream,
    }
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// What the record's tokens cost at the prices above, rounded half up once.
fn cost(record: &Value) -> u64 {
    let (prompt, cached, written) = (
        n(&record["prompt_tokens"]),
        n(&record["cached_tokens"]),
        n(&record["cache_write_tokens"]),
    );
    let micro = (prompt - cached - written) as f64 * INPUT as f64
        + cached as f64 * READ
        + written as f64 * WRITE
        + n(&record["completion_tokens"]) as f64 * OUTPUT as f64;
    micro.round() as u64
}

/// The input side of a record's cost (everything but the completion).
fn input_cost(record: &Value) -> u64 {
    n(&record["cost_micro_usd"]) - n(&record["completion_tokens"]) * OUTPUT
}

const TURNS: usize = 10;

#[test]
fn a_codex_tool_loop_on_claude_is_cached_and_billed_at_the_cache_rates() {
    let gw = Gateway::start_with(MODELS);
    let auto: Vec<Turn> = (1..=TURNS)
        .map(|t| run_turn(&gw, "claude-auto", t))
        .collect();
    let off: Vec<Turn> = (1..=TURNS)
        .map(|t| run_turn(&gw, "claude-off", t))
        .collect();

    for (i, turn) in auto.iter().enumerate() {
        let marks = breakpoints(&turn.upstream);
        let last = turn.upstream["messages"].as_array().map_or(0, Vec::len) - 1;
        // the system prompt, the newest turn, and from the second turn the user turn before it
        assert_eq!(
            marks.first().map(String::as_str),
            Some("system[0]"),
            "{marks:?}"
        );
        assert!(
            marks
                .iter()
                .any(|m| m.starts_with(&format!("messages[{last}]"))),
            "{marks:?}"
        );
        assert_eq!(
            marks.len(),
            if i == 0 { 2 } else { 3 },
            "turn {}: {marks:?}",
            i + 1
        );

        let (record, usage) = (&turn.record, &turn.usage);
        // the client's own usage shape says what was read from the cache
        assert_eq!(
            usage["input_tokens_details"]["cached_tokens"],
            record["cached_tokens"]
        );
        assert_eq!(usage["input_tokens"], record["prompt_tokens"]);
        if i == 0 {
            assert_eq!(n(&record["cached_tokens"]), 0);
        } else {
            // the whole previous prompt is read; only what this turn added is written
            let before = n(&auto[i - 1].record["prompt_tokens"]);
            assert_eq!(n(&record["cached_tokens"]), before, "turn {}", i + 1);
        }
        assert_eq!(
            n(&record["cache_write_tokens"]),
            n(&record["prompt_tokens"]) - n(&record["cached_tokens"]),
            "turn {}: everything not read is written (the newest block is marked)",
            i + 1
        );
        assert_eq!(n(&record["cost_micro_usd"]), cost(record), "turn {}", i + 1);
    }
    for (i, turn) in off.iter().enumerate() {
        assert!(breakpoints(&turn.upstream).is_empty(), "turn {}", i + 1);
        assert_eq!(n(&turn.record["cached_tokens"]), 0);
        assert_eq!(n(&turn.record["cache_write_tokens"]), 0);
        assert_eq!(n(&turn.usage["input_tokens_details"]["cached_tokens"]), 0);
        assert_eq!(n(&turn.record["cost_micro_usd"]), cost(&turn.record));
        // the same conversation either way
        assert_eq!(
            turn.record["prompt_tokens"],
            auto[i].record["prompt_tokens"]
        );
    }

    let with: u64 = auto.iter().map(|t| input_cost(&t.record)).sum();
    let without: u64 = off.iter().map(|t| input_cost(&t.record)).sum();
    let prompt: u64 = off.iter().map(|t| n(&t.record["prompt_tokens"])).sum();
    println!(
        "{TURNS}-turn Codex loop on claude-sonnet-4-5 ({prompt} prompt tokens): input cost \
         {with} µUSD with prompt_cache = \"auto\", {without} µUSD with \"off\" ({:.1} %)",
        100.0 * with as f64 / without as f64
    );
    assert!(
        with * 3 < without,
        "caching saved too little: {with} vs {without}"
    );
}

#[test]
fn chat_clients_see_cached_tokens_in_their_usage_and_marked_requests_are_kept() {
    let gw = Gateway::start_with(MODELS);
    let system = format!("run {} ", gw.emu_port) + &"be precise ".repeat(600);
    let body = |question: &str| {
        json!({"model": "claude-auto", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "system", "content": system},
                            {"role": "user", "content": question}]})
        .to_string()
    };
    let usage = |answer: &Answer| {
        answer
            .sse_data()
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|c| c["usage"].is_object())
            .map(|c| c["usage"].clone())
            .unwrap_or_else(|| panic!("no usage chunk: {}", answer.text()))
    };
    let first = gw.post("/v1/chat/completions", &body("what is a crate"));
    let second = gw.post("/v1/chat/completions", &body("what is a module"));
    assert_eq!(usage(&first)["prompt_tokens_details"]["cached_tokens"], 0);
    // the system prompt (3 + 1,202 words) was written by the first request, read by the second
    assert_eq!(
        usage(&second)["prompt_tokens_details"]["cached_tokens"],
        1205
    );
    assert_eq!(gw.usage_record_of(&second)["cached_tokens"], 1205);

    // a client that marks its own breakpoint (an extension some OpenAI-format clients send)
    // keeps exactly that one
    let marked = json!({"model": "claude-auto", "messages": [
        {"role": "system", "content": [{"type": "text", "text": system,
                                         "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
        {"role": "user", "content": "hi"}]});
    let answer = gw.post("/v1/chat/completions", &marked.to_string());
    assert_eq!(answer.status, 200, "{}", answer.text());
    let upstream: Value = serde_json::from_str(
        gw.upstream_request(&answer)["body"]
            .as_str()
            .unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(breakpoints(&upstream), ["system[0]"]);
    assert_eq!(
        upstream["system"][0]["cache_control"],
        json!({"type": "ephemeral", "ttl": "1h"})
    );
}
