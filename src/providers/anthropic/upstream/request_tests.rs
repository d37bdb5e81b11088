//! docs/translation.md A1 and A2, one test per row (or per group of alike rows).

use serde_json::{json, Value};

use super::{from_chat, PromptCache, DEFAULT_MAX_TOKENS};
use crate::error::GatewayError;
use crate::providers::anthropic::upstream::JSON_OUTPUT_TOOL;
use crate::providers::chat::ChatRequest;

/// A chat request body as the gateway parses it.
fn parse(body: &Value) -> ChatRequest {
    ChatRequest::parse(body.to_string().as_bytes()).unwrap()
}

fn convert(body: &Value) -> Value {
    let out = from_chat(&parse(body), "claude-up", PromptCache::Off).unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn reject(body: &Value) -> GatewayError {
    from_chat(&parse(body), "claude-up", PromptCache::Off).unwrap_err()
}

/// A one-message chat request with `extra` fields on top.
fn chat(extra: Value) -> Value {
    let mut body = json!({"model": "alias", "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn messages(list: Value) -> Value {
    convert(&json!({"model": "alias", "messages": list}))
}

fn assert_param(e: &GatewayError, param: &str) {
    assert_eq!(e.status(), 400, "{e}");
    assert_eq!(e.param.as_deref(), Some(param), "{e}");
}

// ---- A1 ----

#[test]
fn model_comes_from_the_route_and_a_plain_chat_converts() {
    let out = convert(&chat(json!({})));
    assert_eq!(
        out,
        json!({"model": "claude-up", "max_tokens": DEFAULT_MAX_TOKENS,
               "messages": [{"role": "user", "content": "hi"}]})
    );
}

#[test]
fn max_completion_tokens_wins_over_max_tokens_and_default_fills_in() {
    let out = convert(&chat(
        json!({"max_tokens": 100, "max_completion_tokens": 200}),
    ));
    assert_eq!(out["max_tokens"], 200);
    assert_eq!(
        convert(&chat(json!({"max_tokens": 100})))["max_tokens"],
        100
    );
    assert_eq!(convert(&chat(json!({})))["max_tokens"], 4096);
    assert_param(&reject(&chat(json!({"max_tokens": 0}))), "max_tokens");
    assert_param(
        &reject(&chat(json!({"max_completion_tokens": "x"}))),
        "max_completion_tokens",
    );
}

#[test]
fn temperature_is_clamped_to_one_and_top_p_top_k_are_copied() {
    let out = convert(&chat(
        json!({"temperature": 1.7, "top_p": 0.9, "top_k": 40}),
    ));
    assert_eq!(out["temperature"], 1);
    assert_eq!(out["top_p"], 0.9);
    assert_eq!(out["top_k"], 40);
    assert_eq!(
        convert(&chat(json!({"temperature": 0.3})))["temperature"],
        0.3
    );
    assert_param(&reject(&chat(json!({"temperature": "hot"}))), "temperature");
}

#[test]
fn stop_string_or_array_becomes_stop_sequences() {
    assert_eq!(
        convert(&chat(json!({"stop": "END"})))["stop_sequences"],
        json!(["END"])
    );
    let out = convert(&chat(json!({"stop": ["a", "", "b"]})));
    assert_eq!(out["stop_sequences"], json!(["a", "b"]));
    assert!(convert(&chat(json!({"stop": []})))
        .get("stop_sequences")
        .is_none());
    assert_param(&reject(&chat(json!({"stop": [1]}))), "stop");
}

#[test]
fn stream_is_copied_and_stream_options_stay_gateway_side() {
    let out = convert(&chat(
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    ));
    assert_eq!(out["stream"], true);
    assert!(out.get("stream_options").is_none());
}

#[test]
fn user_becomes_metadata_user_id() {
    let out = convert(&chat(json!({"user": "u-42"})));
    assert_eq!(out["metadata"], json!({"user_id": "u-42"}));
}

#[test]
fn function_tools_become_input_schema_tools() {
    let out = convert(&chat(json!({"tools": [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}},
        {"type": "function", "function": {"name": "now"}},
    ]})));
    assert_eq!(
        out["tools"],
        json!([
            {"name": "get_weather", "description": "Weather",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"name": "now", "input_schema": {"type": "object", "properties": {}}},
        ])
    );
    let custom = chat(json!({"tools": [{"type": "custom", "custom": {"name": "x"}}]}));
    assert_param(&reject(&custom), "tools[0].type");
    let reserved =
        chat(json!({"tools": [{"type": "function", "function": {"name": JSON_OUTPUT_TOOL}}]}));
    assert_param(&reject(&reserved), "tools[0].function.name");
}

fn with_tool(extra: Value) -> Value {
    let mut body = chat(json!({"tools": [{"type": "function", "function": {"name": "f"}}]}));
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[test]
fn tool_choice_maps_auto_required_none_and_named() {
    let cases = [
        (json!("auto"), json!({"type": "auto"})),
        (json!("required"), json!({"type": "any"})),
        (json!("none"), json!({"type": "none"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "tool", "name": "f"}),
        ),
    ];
    for (openai, anthropic) in cases {
        assert_eq!(
            convert(&with_tool(json!({"tool_choice": openai})))["tool_choice"],
            anthropic
        );
    }
    assert_param(
        &reject(&with_tool(json!({"tool_choice": "sometimes"}))),
        "tool_choice",
    );
    // Without tools there is nothing to choose from; Anthropic would reject a tool_choice.
    assert!(convert(&chat(json!({"tool_choice": "auto"})))
        .get("tool_choice")
        .is_none());
}

#[test]
fn parallel_tool_calls_false_disables_parallel_use() {
    let out = convert(&with_tool(json!({"parallel_tool_calls": false})));
    assert_eq!(
        out["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    let out = convert(&with_tool(
        json!({"parallel_tool_calls": false, "tool_choice": "required"}),
    ));
    assert_eq!(
        out["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    let out = convert(&with_tool(
        json!({"parallel_tool_calls": false, "tool_choice": "none"}),
    ));
    assert_eq!(out["tool_choice"], json!({"type": "none"}));
    assert!(convert(&with_tool(json!({"parallel_tool_calls": true})))
        .get("tool_choice")
        .is_none());
}

#[test]
fn response_format_json_schema_forces_the_json_output_tool() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    let out = convert(&with_tool(json!({"tool_choice": "auto",
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}})));
    assert_eq!(out["tools"][1]["name"], JSON_OUTPUT_TOOL);
    assert_eq!(out["tools"][1]["input_schema"], schema);
    assert_eq!(
        out["tool_choice"],
        json!({"type": "tool", "name": JSON_OUTPUT_TOOL, "disable_parallel_tool_use": true})
    );
    // A schema whose root is not an object cannot be a tool input: instruction instead.
    let out = convert(&chat(json!({"response_format": {"type": "json_schema",
        "json_schema": {"name": "r", "schema": {"type": "array"}}}})));
    assert!(out.get("tools").is_none());
    assert!(out["system"][0]["text"]
        .as_str()
        .unwrap()
        .contains(r#"{"type":"array"}"#));
}

#[test]
fn response_format_json_object_adds_a_system_instruction() {
    let out = convert(&chat(json!({"response_format": {"type": "json_object"}})));
    assert!(out["system"][0]["text"]
        .as_str()
        .unwrap()
        .contains("JSON object"));
    assert!(convert(&chat(json!({"response_format": {"type": "text"}})))
        .get("system")
        .is_none());
    let bad = chat(json!({"response_format": {"type": "yaml"}}));
    assert_param(&reject(&bad), "response_format.type");
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget_below_max_tokens() {
    for (effort, budget) in [
        ("minimal", 1024),
        ("low", 1024),
        ("medium", 4096),
        ("high", 16384),
    ] {
        let out = convert(&chat(
            json!({"reasoning_effort": effort, "temperature": 0.2, "top_k": 5}),
        ));
        assert_eq!(
            out["thinking"],
            json!({"type": "enabled", "budget_tokens": budget}),
            "{effort}"
        );
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS + budget);
        // Anthropic rejects sampling changes with thinking.
        assert!(out.get("temperature").is_none() && out.get("top_k").is_none());
    }
    assert!(convert(&chat(json!({"reasoning_effort": "none"})))
        .get("thinking")
        .is_none());
    // The client's cap is the total, as in OpenAI: the budget shrinks to fit under it.
    let out = convert(&chat(
        json!({"reasoning_effort": "high", "max_completion_tokens": 8000}),
    ));
    assert_eq!(
        (
            out["max_tokens"].clone(),
            out["thinking"]["budget_tokens"].clone()
        ),
        (json!(8000), json!(4000))
    );
    let out = convert(&chat(
        json!({"reasoning_effort": "low", "max_tokens": 1500}),
    ));
    assert_eq!(out["thinking"]["budget_tokens"], 1024);
    let out = convert(&chat(
        json!({"reasoning_effort": "low", "max_tokens": 1024}),
    ));
    assert!(out.get("thinking").is_none());
    assert_param(
        &reject(&chat(json!({"reasoning_effort": "max"}))),
        "reasoning_effort",
    );
}

#[test]
fn thinking_is_left_off_for_forced_tools_prefills_and_tool_loop_continuations() {
    let forced = with_tool(json!({"reasoning_effort": "high", "tool_choice": "required"}));
    assert!(convert(&forced).get("thinking").is_none());
    let mut tool_loop = with_tool(json!({"reasoning_effort": "high"}));
    tool_loop["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]);
    assert!(convert(&tool_loop).get("thinking").is_none());
    let prefill = json!({"reasoning_effort": "high", "messages": [
        {"role": "user", "content": "JSON please"}, {"role": "assistant", "content": "{"}]});
    assert!(convert(&prefill).get("thinking").is_none());
}

/// The signed thinking of an answer, as the gateway's chat answer gave it.
fn signed() -> Value {
    json!([{"type": "thinking", "thinking": "Check the weather tool.", "signature": "c2lnLTE="},
           {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"}])
}

#[test]
fn a_tool_loop_that_sends_its_thinking_back_keeps_thinking_on() {
    let mut tool_loop = with_tool(json!({"reasoning_effort": "high"}));
    tool_loop["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Let me look.", "reasoning_content": "Check the weather tool.",
         "thinking_blocks": signed(), "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]);
    let out = convert(&tool_loop);
    assert_eq!(out["thinking"]["type"], "enabled");
    let assistant = out["messages"][1]["content"].as_array().unwrap();
    // the signed blocks first, byte for byte, then the text and the call
    assert_eq!(assistant[..2], signed().as_array().unwrap()[..]);
    assert_eq!(
        assistant[2],
        json!({"type": "text", "text": "Let me look."})
    );
    assert_eq!(assistant[3]["type"], "tool_use");

    // without reasoning asked for, the blocks are not sent (Anthropic refuses them then)
    tool_loop["reasoning_effort"] = json!("none");
    let out = convert(&tool_loop);
    assert!(out.get("thinking").is_none());
    let types: Vec<&str> = out["messages"][1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["type"].as_str())
        .collect();
    assert_eq!(types, ["text", "tool_use"]);
}

#[test]
fn malformed_thinking_blocks_are_a_400_naming_them() {
    let body = json!({"model": "alias", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "x", "thinking_blocks": [{"type": "thinking", "thinking": "t"}]},
        {"role": "user", "content": "more"}]});
    assert_param(&reject(&body), "messages[1].thinking_blocks[0]");
    let body = json!({"model": "alias", "messages": [
        {"role": "assistant", "content": "x", "thinking_blocks": "no"}, {"role": "user", "content": "y"}]});
    assert_param(&reject(&body), "messages[0].thinking_blocks");
}

#[test]
fn n_above_one_and_logprobs_are_rejected() {
    assert_param(&reject(&chat(json!({"n": 2}))), "n");
    assert_eq!(
        convert(&chat(json!({"n": 1})))["max_tokens"],
        DEFAULT_MAX_TOKENS
    );
    assert_param(&reject(&chat(json!({"logprobs": true}))), "logprobs");
    assert_param(&reject(&chat(json!({"top_logprobs": 3}))), "top_logprobs");
    assert!(from_chat(
        &parse(&chat(json!({"logprobs": false}))),
        "m",
        PromptCache::Off
    )
    .is_ok());
    assert_param(&reject(&chat(json!({"functions": []}))), "functions");
}

#[test]
fn params_without_an_equivalent_are_dropped() {
    let out = convert(&chat(json!({
        "presence_penalty": 0.5, "frequency_penalty": 0.5, "logit_bias": {"1": 5}, "seed": 7,
        "service_tier": "auto", "store": true, "metadata": {"k": "v"}, "prediction": {"type": "content"},
        "modalities": ["text"], "audio": {"voice": "x"}, "verbosity": "low",
    })));
    assert_eq!(convert(&chat(json!({}))), out);
}

#[test]
fn malformed_bodies_are_400s() {
    let e = ChatRequest::parse(b"{not json")
        .and_then(|chat| from_chat(&chat, "m", PromptCache::Off))
        .unwrap_err();
    assert_eq!(e.status(), 400);
    assert_param(&reject(&json!({"model": "m"})), "messages");
    assert_param(&reject(&json!({"model": "m", "messages": []})), "messages");
    assert_param(
        &reject(&json!({"model": "m", "messages": [{"content": "x"}]})),
        "messages[0].role",
    );
}

// ---- A2 ----

#[test]
fn system_and_developer_messages_collect_into_system_in_order() {
    let out = messages(json!([
        {"role": "system", "content": "one"},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": [
            {"type": "text", "text": "two", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": ""}]},
    ]));
    assert_eq!(
        out["system"],
        json!([{"type": "text", "text": "one"},
               {"type": "text", "text": "two", "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(out["messages"], json!([{"role": "user", "content": "hi"}]));
}

#[test]
fn user_parts_convert_and_empty_text_is_dropped() {
    let out = messages(json!([{"role": "user", "name": "bob", "content": [
        {"type": "text", "text": "look"},
        {"type": "text", "text": ""},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBER"}},
    ]}]));
    assert_eq!(
        out["messages"][0],
        json!({"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}},
        ]})
    );
}

#[test]
fn unsupported_user_parts_are_400s_naming_the_part() {
    let audio = json!([{"role": "user", "content": [
        {"type": "text", "text": "x"},
        {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]}]);
    assert_param(
        &reject(&json!({"messages": audio})),
        "messages[0].content[1]",
    );
    let ftp = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]);
    assert_param(&reject(&json!({"messages": ftp})), "messages[0].content[0]");
    let file_id =
        json!([{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]);
    assert_param(
        &reject(&json!({"messages": file_id})),
        "messages[0].content[0]",
    );
}

#[test]
fn assistant_text_then_tool_calls_become_tool_use_blocks() {
    let out = messages(json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Let me check.", "refusal": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call.2", "type": "function", "function": {"name": "g", "arguments": ""}}]},
    ]));
    assert_eq!(
        out["messages"][1],
        json!({"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_1", "name": "f", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "g", "input": {}},
        ]})
    );
}

#[test]
fn null_or_empty_assistant_content_is_skipped() {
    let out = messages(json!([
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": null},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        {"role": "user", "content": "b"},
    ]));
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    );
}

#[test]
fn invalid_tool_arguments_are_400s_naming_the_field() {
    for args in ["{oops", "[1,2]"] {
        let list = json!([{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}]}]);
        assert_param(
            &reject(&json!({"messages": list})),
            "messages[0].tool_calls[0].function.arguments",
        );
    }
}

#[test]
fn tool_messages_merge_into_one_user_turn_with_results_first() {
    let out = messages(json!([
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"c\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "w", "arguments": "{\"c\":\"Rome\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
        {"role": "user", "content": "thanks"},
    ]));
    assert_eq!(
        out["messages"][2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
            {"type": "text", "text": "thanks"},
        ]})
    );
    assert_eq!(out["messages"].as_array().unwrap().len(), 3);
}

#[test]
fn ids_are_sanitized_alike_in_tool_use_and_tool_result() {
    let out = messages(json!([
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [
            {"id": "fc:1/a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "fc:1/a", "content": "ok"},
    ]));
    assert_eq!(out["messages"][1]["content"][0]["id"], "fc_1_a");
    assert_eq!(out["messages"][2]["content"][0]["tool_use_id"], "fc_1_a");
}

#[test]
fn consecutive_same_role_messages_merge() {
    let out = messages(json!([
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "c"},
        {"role": "assistant", "content": "d"},
    ]));
    assert_eq!(
        out["messages"][0]["content"],
        json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
    );
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type": "text", "text": "c"}, {"type": "text", "text": "d"}])
    );
}

#[test]
fn a_conversation_starting_with_the_assistant_gets_a_user_turn_first() {
    let out = messages(
        json!([{"role": "system", "content": "s"}, {"role": "assistant", "content": "hello"}]),
    );
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": "."}, {"role": "assistant", "content": "hello"}])
    );
}

#[test]
fn a_trailing_assistant_message_is_kept_as_prefill() {
    let out = messages(
        json!([{"role": "user", "content": "JSON please"}, {"role": "assistant", "content": "{"}]),
    );
    assert_eq!(
        out["messages"][1],
        json!({"role": "assistant", "content": "{"})
    );
}

#[test]
fn unknown_roles_are_400s() {
    assert_param(
        &reject(&json!({"messages": [{"role": "function", "name": "f", "content": "x"}]})),
        "messages[0].role",
    );
    let missing_id = json!({"messages": [{"role": "tool", "content": "x"}]});
    assert_param(&reject(&missing_id), "messages[0].tool_call_id");
}
