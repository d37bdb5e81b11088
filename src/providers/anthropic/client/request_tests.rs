//! docs/translation.md D1: Anthropic client request → OpenAI-format upstream, one test per row.

use serde_json::{json, Value};

use super::{is_reasoning_model, to_chat};
use crate::error::GatewayError;

fn convert_for(body: &Value, model: &str) -> Value {
    serde_json::to_value(to_chat(body.to_string().as_bytes(), model).unwrap()).unwrap()
}

fn convert(body: &Value) -> Value {
    convert_for(body, "gpt-4o")
}

fn reject(body: &Value) -> GatewayError {
    to_chat(body.to_string().as_bytes(), "gpt-4o").unwrap_err()
}

fn assert_param(e: &GatewayError, param: &str) {
    assert_eq!((e.status(), e.param.as_deref()), (400, Some(param)), "{e}");
}

/// A one-message Messages request with `extra` fields on top.
fn messages_request(extra: Value) -> Value {
    let mut body = json!({"model": "claude-alias", "max_tokens": 1024,
                          "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn turns(list: Value) -> Value {
    convert(&json!({"model": "m", "max_tokens": 10, "messages": list}))["messages"].clone()
}

#[test]
fn a_plain_request_converts() {
    assert_eq!(
        convert(&messages_request(json!({}))),
        json!({"model": "gpt-4o", "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]})
    );
}

#[test]
fn system_string_or_blocks_becomes_the_first_message_without_cache_control() {
    let out = convert(&messages_request(json!({"system": "Be brief."})));
    assert_eq!(
        out["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    let out = convert(&messages_request(json!({"system": [
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be careful."}]})));
    assert_eq!(
        out["messages"][0],
        json!({"role": "system", "content": "You are Claude Code.\n\nBe careful."})
    );
    assert_param(
        &reject(&messages_request(json!({"system": [{"type": "image"}]}))),
        "system[0]",
    );
}

#[test]
fn max_tokens_goes_to_max_completion_tokens_for_reasoning_models() {
    assert_eq!(convert(&messages_request(json!({})))["max_tokens"], 1024);
    let out = convert_for(&messages_request(json!({})), "o3-mini");
    assert_eq!(out["max_completion_tokens"], 1024);
    assert!(out.get("max_tokens").is_none());
    assert_param(
        &reject(&messages_request(json!({"max_tokens": -1}))),
        "max_tokens",
    );
}

#[test]
fn temperature_and_top_p_are_copied_and_top_k_dropped() {
    let body = messages_request(json!({"temperature": 0.2, "top_p": 0.9, "top_k": 40}));
    let out = convert(&body);
    assert_eq!(
        (out["temperature"].clone(), out["top_p"].clone()),
        (json!(0.2), json!(0.9))
    );
    assert!(out.get("top_k").is_none());
    // Reasoning models reject sampling changes.
    let out = convert_for(&body, "gpt-5");
    assert!(out.get("temperature").is_none() && out.get("top_p").is_none());
}

#[test]
fn stop_sequences_become_stop_capped_at_four() {
    let out = convert(&messages_request(
        json!({"stop_sequences": ["a", "b", "c", "d", "e"]}),
    ));
    assert_eq!(out["stop"], json!(["a", "b", "c", "d"]));
    assert_param(
        &reject(&messages_request(json!({"stop_sequences": "a"}))),
        "stop_sequences",
    );
}

#[test]
fn stream_asks_for_usage() {
    let out = convert(&messages_request(json!({"stream": true})));
    assert_eq!(
        (out["stream"].clone(), out["stream_options"].clone()),
        (json!(true), json!({"include_usage": true}))
    );
    assert!(convert(&messages_request(json!({"stream": false})))
        .get("stream")
        .is_none());
}

#[test]
fn metadata_user_id_becomes_user() {
    assert_eq!(
        convert(&messages_request(json!({"metadata": {"user_id": "u-1"}})))["user"],
        "u-1"
    );
}

#[test]
fn custom_tools_become_functions_and_server_tools_are_dropped() {
    let out = convert(&messages_request(json!({"tools": [
        {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {}},
         "cache_control": {"type": "ephemeral"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        {"type": "bash_20250124", "name": "bash"},
    ]})));
    assert_eq!(
        out["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                                 "parameters": {"type": "object", "properties": {}}}}])
    );
    let only_server = messages_request(
        json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}],
                                              "tool_choice": {"type": "auto"}}),
    );
    let out = convert(&only_server);
    assert!(out.get("tools").is_none() && out.get("tool_choice").is_none());
}

#[test]
fn tool_choice_and_disable_parallel_tool_use_map() {
    let cases = [
        (json!({"type": "auto"}), json!("auto")),
        (json!({"type": "any"}), json!("required")),
        (json!({"type": "none"}), json!("none")),
        (
            json!({"type": "tool", "name": "f"}),
            json!({"type": "function", "function": {"name": "f"}}),
        ),
    ];
    let tools = json!([{"name": "f", "input_schema": {"type": "object"}}]);
    for (anthropic, openai) in cases {
        let out = convert(&messages_request(
            json!({"tools": tools, "tool_choice": anthropic}),
        ));
        assert_eq!(out["tool_choice"], openai);
        assert!(out.get("parallel_tool_calls").is_none());
    }
    let out = convert(&messages_request(json!({"tools": tools,
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}})));
    assert_eq!(out["parallel_tool_calls"], false);
    let bad = messages_request(json!({"tools": tools, "tool_choice": {"type": "some"}}));
    assert_param(&reject(&bad), "tool_choice.type");
}

#[test]
fn thinking_becomes_reasoning_effort_only_for_reasoning_models() {
    for (budget, effort) in [
        (1024, "low"),
        (2048, "low"),
        (4096, "medium"),
        (8192, "medium"),
        (31999, "high"),
    ] {
        let body =
            messages_request(json!({"thinking": {"type": "enabled", "budget_tokens": budget}}));
        assert_eq!(
            convert_for(&body, "o4-mini")["reasoning_effort"],
            effort,
            "{budget}"
        );
        assert!(convert(&body).get("reasoning_effort").is_none());
        // a Gemini model that thinks takes it too, keeping max_tokens and sampling
        let gemini = convert_for(&body, "gemini-2.5-pro");
        assert_eq!(gemini["reasoning_effort"], effort, "{budget}");
        assert!(gemini.get("max_completion_tokens").is_none());
        assert!(convert_for(&body, "gemini-2.0-flash")
            .get("reasoning_effort")
            .is_none());
    }
    let adaptive = messages_request(json!({"thinking": {"type": "adaptive"}}));
    assert!(convert_for(&adaptive, "gpt-5")
        .get("reasoning_effort")
        .is_none());
}

#[test]
fn reasoning_models_are_told_apart_by_name() {
    for m in [
        "o1",
        "o3-mini",
        "o4-mini-2025-04-16",
        "gpt-5",
        "gpt-5-mini",
        "openai/gpt-5.1",
    ] {
        assert!(is_reasoning_model(m), "{m}");
    }
    for m in [
        "gpt-4o",
        "gpt-5-chat-latest",
        "omni-moderation",
        "llama-3.1-70b",
        "o1x",
    ] {
        assert!(!is_reasoning_model(m), "{m}");
    }
}

#[test]
fn user_text_blocks_become_a_string_and_media_become_parts() {
    let out = turns(json!([{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>x</system-reminder>"},
        {"type": "text", "text": "fix the bug", "cache_control": {"type": "ephemeral"}}]}]));
    assert_eq!(
        out[0],
        json!({"role": "user", "content": "<system-reminder>x</system-reminder>\nfix the bug"})
    );
    let out = turns(json!([{"role": "user", "content": [
        {"type": "text", "text": "see"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
        {"type": "document", "title": "spec.pdf",
         "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain doc"}}]}]));
    assert_eq!(
        out[0]["content"],
        json!([
            {"type": "text", "text": "see"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            {"type": "file", "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBER"}},
            {"type": "text", "text": "plain doc"},
        ])
    );
    let file = json!([{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]);
    assert_param(
        &reject(&json!({"messages": file})),
        "messages[0].content[0]",
    );
}

#[test]
fn tool_results_become_tool_messages_before_the_rest_of_the_turn() {
    let out = turns(json!([
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Listing."},
            {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {"path": "."}},
            {"type": "tool_use", "id": "toolu_2", "name": "shot", "input": {}}]},
        {"role": "user", "content": [
            {"type": "text", "text": "and hurry"},
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.rs\nb.rs"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true, "content": [
                {"type": "text", "text": "partial"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVB"}}]}]},
    ]));
    assert_eq!(
        out,
        json!([
            {"role": "user", "content": "list files"},
            {"role": "assistant", "content": "Listing.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "ls", "arguments": "{\"path\":\".\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "shot", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "a.rs\nb.rs"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: partial"},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVB"}},
                {"type": "text", "text": "and hurry"}]},
        ])
    );
}

#[test]
fn assistant_thinking_is_dropped_and_tool_only_turns_have_null_content() {
    let out = turns(json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "plan", "signature": "sig"},
            {"type": "redacted_thinking", "data": "xx"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "only", "signature": "s"}]},
    ]));
    assert_eq!(
        out[1],
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})
    );
    assert_eq!(
        out.as_array().unwrap().len(),
        2,
        "a thinking-only turn disappears"
    );
}

#[test]
fn malformed_requests_are_400s() {
    assert_param(&reject(&json!({"model": "m"})), "messages");
    assert_param(
        &reject(&json!({"messages": [{"role": "tool", "content": "x"}]})),
        "messages[0].role",
    );
    assert_param(
        &reject(&json!({"messages": [{"role": "user", "content": 5}]})),
        "messages[0].content",
    );
    let bad_block = json!({"messages": [{"role": "user", "content": [{"type": "video"}]}]});
    assert_param(&reject(&bad_block), "messages[0].content[0]");
    assert_eq!(to_chat(b"nope", "m").unwrap_err().status(), 400);
}

/// Claude Code 2.x puts system messages between the turns (seen on the wire: a user turn,
/// then `{"role":"system","content":"Available agent types…"}`); they stay in place.
#[test]
fn mid_conversation_system_messages_are_kept_in_place() {
    let out = turns(json!([
        {"role": "user", "content": [{"type": "text", "text": "say hi"}]},
        {"role": "system", "content": "Available agent types"},
        {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]));
    assert_eq!(
        out,
        json!([
            {"role": "user", "content": "say hi"},
            {"role": "system", "content": "Available agent types"},
            {"role": "system", "content": "a\n\nb"},
        ])
    );
}
