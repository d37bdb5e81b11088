use serde_json::{json, Value};

use super::*;
use crate::error::ErrorKind;

fn converse(body: Value) -> Value {
    let chat = ChatRequest::parse(body.to_string().as_bytes()).unwrap();
    serde_json::from_slice(&from_chat(&chat).unwrap()).unwrap()
}

fn refused(body: Value) -> crate::error::GatewayError {
    let chat = ChatRequest::parse(body.to_string().as_bytes()).unwrap();
    from_chat(&chat).unwrap_err()
}

#[test]
fn a_plain_chat_becomes_system_messages_and_inference_config() {
    let out = converse(json!({
        "model": "nova", "stream": true, "user": "u", "seed": 3,
        "max_tokens": 100, "temperature": 0.5, "top_p": 0.9, "stop": "END",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "developer", "content": [{"type": "text", "text": "In French."}]},
        ]
    }));
    assert_eq!(
        out,
        json!({
            "system": [{"text": "Be brief."}, {"text": "In French."}],
            "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
            "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "topP": 0.9,
                                "stopSequences": ["END"]}
        })
    );
    // max_completion_tokens wins over max_tokens
    let out = converse(json!({"max_completion_tokens": 7, "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hi"}]}));
    assert_eq!(out["inferenceConfig"], json!({"maxTokens": 7}));
}

#[test]
fn same_role_turns_merge_and_tool_results_share_one_user_turn() {
    let out = converse(json!({
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "user", "content": [{"type": "text", "text": "Celsius."}, {"type": "text", "text": ""}]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "tooluse_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "tooluse_2", "type": "function",
                 "function": {"name": "get_weather", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "tooluse_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "tooluse_2",
             "content": [{"type": "text", "text": "21C"}]},
            {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": ""},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    }));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"text": "Weather in Paris and Rome?"}, {"text": "Celsius."}]},
            {"role": "assistant", "content": [
                {"text": "Checking."},
                {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather", "input": {}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C"}]}},
                {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "21C"}]}},
                {"text": "Thanks"}]},
        ])
    );
    assert_eq!(
        out["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather of a city",
            "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}]})
    );
    assert!(out.get("system").is_none());
}

#[test]
fn tool_choice_maps_and_none_sends_no_tools() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let with = |choice: Value| {
        converse(json!({"messages": [{"role": "user", "content": "x"}],
            "tools": tools.clone(), "tool_choice": choice}))
    };
    let empty_schema = json!({"json": {"type": "object", "properties": {}}});
    let out = with(json!("auto"));
    assert_eq!(out["toolConfig"]["toolChoice"], json!({"auto": {}}));
    assert_eq!(
        out["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"],
        empty_schema
    );
    assert_eq!(
        with(json!("required"))["toolConfig"]["toolChoice"],
        json!({"any": {}})
    );
    assert_eq!(
        with(json!({"type": "function", "function": {"name": "f"}}))["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "f"}})
    );
    assert!(with(json!("none")).get("toolConfig").is_none());
    let out = converse(json!({"messages": [{"role": "user", "content": "x"}], "tools": []}));
    assert!(out.get("toolConfig").is_none());
    assert_eq!(
        refused(json!({"messages": [{"role": "user", "content": "x"}],
        "tools": tools, "tool_choice": "sometimes"}))
        .param
        .as_deref(),
        Some("tool_choice")
    );
}

#[test]
fn images_go_as_bytes_and_a_remote_url_is_refused() {
    let out = converse(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/AAAA"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}));
    assert_eq!(
        out["messages"][0]["content"],
        json!([{"text": "What is this?"},
            {"image": {"format": "jpeg", "source": {"bytes": "/9j/AAAA"}}},
            {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}])
    );
    let remote = refused(json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}));
    assert_eq!(remote.kind, ErrorKind::InvalidRequest);
    assert_eq!(remote.param.as_deref(), Some("messages"));
    assert!(remote.message.contains("data URL"), "{}", remote.message);
    let not_an_image = refused(json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:application/pdf;base64,JVBE"}}]}]}));
    assert_eq!(not_an_image.param.as_deref(), Some("messages"));
}

#[test]
fn signed_reasoning_in_the_history_goes_back_as_reasoning_content() {
    let out = converse(json!({"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "thinking_blocks": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "xyz"}]},
        {"role": "user", "content": "q2"}]}));
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig"}}},
            {"text": "a"}])
    );
}

#[test]
fn malformed_fields_are_400s_naming_them() {
    let user = json!([{"role": "user", "content": "x"}]);
    for (body, param) in [
        (json!({"messages": user, "n": 2}), "n"),
        (
            json!({"messages": user, "max_tokens": "many"}),
            "max_tokens",
        ),
        (
            json!({"messages": user, "temperature": "hot"}),
            "temperature",
        ),
        (
            json!({"messages": user, "stop": ["a", "b", "c", "d", "e"]}),
            "stop",
        ),
        (json!({"messages": user, "functions": []}), "functions"),
        (json!({"messages": []}), "messages"),
        (
            json!({"messages": [{"role": "narrator", "content": "x"}]}),
            "messages",
        ),
        (
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            "messages",
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [
                {"id": "t", "function": {"name": "f", "arguments": "[1]"}}]}]}),
            "messages",
        ),
    ] {
        let error = refused(body.clone());
        assert_eq!(
            error.param.as_deref(),
            Some(param),
            "{body}: {}",
            error.message
        );
    }
}

#[test]
fn a_tool_history_keeps_a_tool_config_when_no_tool_is_offered() {
    let history = json!([
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "18C"}]);
    // tools sent again with `none`: declared, without a choice
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let out = converse(json!({"messages": history, "tools": tools, "tool_choice": "none"}));
    assert_eq!(
        out["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json":
            {"type": "object", "properties": {"city": {"type": "string"}}}}}}]})
    );
    // no tools sent again: each tool the history calls, with an open schema
    let out = converse(json!({"messages": history}));
    assert_eq!(
        out["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "get_weather",
            "inputSchema": {"json": {"type": "object"}}}}]})
    );
    // a conversation without tool blocks gets none
    let out = converse(json!({"messages": [{"role": "user", "content": "x"}],
        "tools": tools, "tool_choice": "none"}));
    assert!(out.get("toolConfig").is_none());
}
