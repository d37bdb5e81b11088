//! Responses request → chat request: every mapped, dropped and refused field.

use serde_json::{json, Value};

use super::to_chat;
use crate::providers::responses::client::tests::{chat, CODEX_FIRST_REQUEST};

fn refused(request: Value) -> (String, String) {
    let e = to_chat(request.to_string().as_bytes(), "up").unwrap_err();
    assert_eq!(e.status(), 400, "{request}");
    (e.param.unwrap_or_default(), e.message)
}

fn with(extra: Value) -> Value {
    let mut v = json!({"model": "client-model", "input": "hi"});
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        obj.extend(more.clone());
    }
    v
}

fn weather() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "Weather now",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
           "strict": true})
}

#[test]
fn the_codex_first_request_becomes_a_system_message_two_user_turns_and_twelve_tools() {
    let (body, echo) = to_chat(CODEX_FIRST_REQUEST, "deepseek-chat").unwrap();
    let out: Value = serde_json::to_value(&body).unwrap();
    assert_eq!(out["model"], "deepseek-chat");
    let messages = out["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().unwrap();
    // Both developer messages, in order, joined by a blank line.
    assert!(system.starts_with("You are a coding agent running in the Codex CLI"));
    assert!(system.contains("\n\n<skills_instructions>"));
    assert_eq!(messages[1]["role"], "user");
    assert!(messages[1]["content"]
        .as_str()
        .unwrap()
        .starts_with("<environment_context>"));
    assert_eq!(messages[2], json!({"role": "user", "content": "say hello"}));
    // 7 functions + the 5 of the multi_agent_v1 namespace; web_search dropped.
    let tools = out["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 12);
    assert_eq!(tools[0]["function"]["name"], "exec_command");
    assert_eq!(tools[0]["function"]["strict"], false);
    assert!(tools
        .iter()
        .any(|t| t["function"]["name"] == "multi_agent_v1__spawn_agent"));
    assert!(tools.iter().all(|t| t["type"] == "function"));
    assert_eq!(out["tool_choice"], "auto");
    assert_eq!(out["parallel_tool_calls"], true);
    assert_eq!(out["stream"], true);
    assert_eq!(out["stream_options"], json!({"include_usage": true}));
    // Dropped: store false, include, prompt_cache_key, client_metadata, reasoning.summary.
    for gone in [
        "store",
        "include",
        "prompt_cache_key",
        "client_metadata",
        "reasoning_effort",
        "input",
    ] {
        assert!(out.get(gone).is_none(), "{gone}");
    }
    assert_eq!(echo.names.0.len(), 5);
    assert_eq!(echo.settings["tool_choice"], "auto");
}

#[test]
fn instructions_and_developer_messages_make_one_leading_system_message() {
    let out = chat(
        &json!({"model": "m", "instructions": "Be brief.", "input": [
            {"role": "user", "content": "one"},
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Use metric."}]},
            {"role": "system", "content": "No emoji."},
            {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
        ]}),
    );
    assert_eq!(
        out["messages"],
        json!([
            {"role": "system", "content": "Be brief.\n\nUse metric.\n\nNo emoji."},
            {"role": "user", "content": "one"},
            {"role": "user", "content": "a\nb"},
        ])
    );
    let out = chat(&json!({"model": "m", "instructions": "", "input": "x"}));
    assert_eq!(out["messages"], json!([{"role": "user", "content": "x"}]));
}

#[test]
fn images_and_files_become_chat_parts() {
    let out = chat(
        &json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "what is this"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "high"},
            {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"},
        ]}]}),
    );
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
        ])
    );
}

#[test]
fn calls_join_the_assistant_turn_and_outputs_follow_as_tool_messages() {
    let out = chat(&json!({"model": "m", "tools": [weather()], "input": [
        {"role": "user", "content": "weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xyz"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": "{\"city\":\"Rome\"}",
         "namespace": "geo"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_2", "output": [
            {"type": "input_text", "text": "rain"}, {"type": "input_text", "text": "12C"},
            {"type": "input_image", "image_url": "https://x/map.png"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Done."}]},
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "geo__get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "rain\n12C"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/map.png"}}]},
            {"role": "assistant", "content": "Done."},
        ])
    );
}

#[test]
fn an_assistant_message_between_a_call_and_its_output_stays_in_the_calling_turn() {
    let out = chat(&json!({"model": "m", "tools": [weather()], "input": [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": "{}"},
        {"role": "assistant", "content": "calling"},
        {"type": "function_call_output", "call_id": "c", "output": "ok"},
    ]}));
    let messages = out["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[1]["content"], "calling");
    assert_eq!(messages[1]["tool_calls"][0]["id"], "c");
    assert_eq!(messages[2]["role"], "tool");
}

#[test]
fn custom_tool_calls_in_the_history_travel_as_function_calls() {
    let out = chat(&json!({"model": "m", "input": [
        {"type": "custom_tool_call", "call_id": "c", "name": "apply_patch", "input": "*** Begin"},
        {"type": "custom_tool_call_output", "call_id": "c", "output": "applied"},
    ]}));
    assert_eq!(
        out["messages"][0]["tool_calls"][0]["function"],
        json!({"name": "apply_patch", "arguments": "{\"input\":\"*** Begin\"}"})
    );
    assert_eq!(out["messages"][1]["content"], "applied");
}

#[test]
fn settings_map_to_their_chat_fields() {
    let out = chat(&with(json!({
        "tools": [weather()], "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": false, "temperature": 0.2, "top_p": 0.9,
        "max_output_tokens": 300, "reasoning": {"effort": "high", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "w", "strict": true,
                            "schema": {"type": "object"}}, "verbosity": "low"},
        "user": "u-1", "safety_identifier": "s", "metadata": {"k": "v"}, "store": false,
        "background": false, "truncation": "auto", "service_tier": "flex", "include": [],
        "prompt_cache_key": "p", "max_tool_calls": 3, "top_logprobs": 2, "stream": false,
    })));
    assert_eq!(
        out,
        json!({
            "model": "up-model",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "description": "Weather now", "strict": true,
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": false,
            "temperature": 0.2,
            "top_p": 0.9,
            "max_completion_tokens": 300,
            "response_format": {"type": "json_schema",
                "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}},
            "reasoning_effort": "high",
            "user": "u-1",
        })
    );
    for (choice, expected) in [("auto", "auto"), ("none", "none"), ("required", "required")] {
        let out = chat(&with(json!({"tools": [weather()], "tool_choice": choice})));
        assert_eq!(out["tool_choice"], expected);
    }
    let out = chat(&with(json!({"text": {"format": {"type": "json_object"}}})));
    assert_eq!(out["response_format"], json!({"type": "json_object"}));
    let out = chat(&with(json!({"text": {"format": {"type": "text"}}})));
    assert!(out.get("response_format").is_none());
}

#[test]
fn tool_settings_are_left_out_without_tools() {
    let out = chat(&with(
        json!({"tool_choice": "required", "parallel_tool_calls": true}),
    ));
    assert!(out.get("tool_choice").is_none());
    assert!(out.get("parallel_tool_calls").is_none());
}

#[test]
fn hosted_tools_are_dropped_beside_function_tools_and_refused_alone() {
    let out = chat(&with(json!({"tools": [
        {"type": "web_search"}, weather(), {"type": "file_search", "vector_store_ids": []},
        {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
        {"type": "namespace", "name": "n", "tools": [{"type": "custom", "name": "x"}]}]})));
    assert_eq!(out["tools"].as_array().unwrap().len(), 1);
    let (param, message) = refused(with(json!({"tools": [{"type": "web_search_preview"}]})));
    assert_eq!(param, "tools");
    assert!(message.contains("web_search_preview"), "{message}");
}

#[test]
fn stateful_and_unsupported_fields_are_refused_naming_the_field() {
    let cases = [
        (
            json!({"previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (json!({"store": "yes"}), "store"),
        (json!({"conversation": "conv_1"}), "conversation"),
        (json!({"background": true}), "background"),
        (json!({"prompt": {"id": "pmpt_1"}}), "prompt"),
        (
            json!({"input": [{"type": "item_reference", "id": "msg_1"}]}),
            "input[0]",
        ),
        (
            json!({"input": [{"type": "local_shell_call", "call_id": "c"}]}),
            "input[0].type",
        ),
        (
            json!({"input": [{"role": "user", "content": [
            {"type": "input_image", "file_id": "file-1"}]}]}),
            "input[0].content[0].file_id",
        ),
        (
            json!({"input": [{"role": "assistant", "content": [
            {"type": "input_image", "image_url": "x"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"input": [{"role": "tool", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"input": [{"type": "function_call", "name": "f"}]}),
            "input[0].call_id",
        ),
        (json!({"input": []}), "input"),
        (json!({"input": 3}), "input"),
        (json!({"tools": [{"type": "function"}]}), "tools[0].name"),
        (json!({"tools": [weather(), weather()]}), "tools"),
        (
            json!({"tools": [weather()], "tool_choice": {"type": "web_search_preview"}}),
            "tool_choice",
        ),
        (
            json!({"text": {"format": {"type": "json_schema", "name": "x"}}}),
            "text.format.schema",
        ),
        (
            json!({"text": {"format": {"type": "yaml"}}}),
            "text.format.type",
        ),
        (json!({"max_output_tokens": 0}), "max_output_tokens"),
        (json!({"temperature": "hot"}), "temperature"),
        (json!({"reasoning": {"effort": 3}}), "reasoning.effort"),
        (json!({"stream": "yes"}), "stream"),
        (json!({"instructions": ["x"]}), "instructions"),
    ];
    for (extra, param) in cases {
        assert_eq!(refused(with(extra.clone())).0, param, "{extra}");
    }
    // Explicit nulls are absent, as SDKs send them.
    let out = chat(&with(
        json!({"previous_response_id": null, "store": null, "prompt": null}),
    ));
    assert_eq!(out["messages"][0]["content"], "hi");
    let e = to_chat(b"[1]", "up").unwrap_err();
    assert_eq!(e.status(), 400);
}

#[test]
fn dropped_history_items_do_not_break_the_turn() {
    let out = chat(&json!({"model": "m", "input": [
        {"role": "user", "content": "find it"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hm"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Found."}]},
    ]}));
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": "find it"}, {"role": "assistant", "content": "Found."}])
    );
}

#[test]
fn sealed_reasoning_goes_back_with_its_assistant_turn() {
    let blocks = vec![
        json!({"type": "thinking", "thinking": "Use the tool.", "signature": "c2ln"}),
        json!({"type": "redacted_thinking", "data": "ZGF0YQ=="}),
    ];
    let sealed = crate::providers::responses::client::reasoning::seal(&blocks);
    let out = chat(&json!({"model": "m", "tools": [weather()], "input": [
        {"role": "user", "content": "weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Use the tool."}],
         "encrypted_content": sealed},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]}));
    assert_eq!(out["messages"][1]["thinking_blocks"], json!(blocks));
    assert_eq!(out["messages"][1]["tool_calls"][0]["id"], "call_1");
    // OpenAI's own encrypted reasoning means nothing to another provider: dropped
    let out = chat(&json!({"model": "m", "tools": [weather()], "input": [
        {"role": "user", "content": "weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB-openai"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
    ]}));
    assert!(out["messages"][1].get("thinking_blocks").is_none());
}

#[test]
fn additional_tools_items_join_the_tool_list() {
    let body = json!({
        "model": "m",
        "input": [
            {"type": "additional_tools", "id": "at_1", "role": "developer", "tools": [
                {"type": "function", "name": "extra", "parameters": {"type": "object"}}
            ]},
            {"role": "user", "content": "hi"},
        ],
        "tools": [{"type": "function", "name": "base", "parameters": {"type": "object"}}],
    });
    let (out, _) = to_chat(body.to_string().as_bytes(), "m").unwrap();
    let out: Value = serde_json::to_value(&out).unwrap();
    let names: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["base", "extra"]);
    assert_eq!(out["messages"].as_array().unwrap().len(), 1, "{out}");
}
