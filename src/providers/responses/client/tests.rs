//! The stream-feeding helpers the translator tests share, the naming and error helpers, and
//! whole round trips: the Codex fixture through every translator after this one, and a
//! namespaced tool from request to answer.

use serde_json::{json, Value};

use super::*;
use crate::error::ErrorKind;
use crate::providers::{anthropic, gemini, ResponseTranslator};

// ---- shared helpers -------------------------------------------------------------------------

/// The first request of Codex CLI 0.169 (`codex exec "say hello"`), as captured.
pub(super) const CODEX_FIRST_REQUEST: &[u8] =
    include_bytes!("../../../../tests/fixtures/codex/first-request.json");

pub(super) use crate::providers::translator_testing::{events, run, same_at_every_split};

/// The chat request body of a Responses request, parsed.
pub(super) fn chat(request: &Value) -> Value {
    let (body, _) = request::to_chat(request.to_string().as_bytes(), "up-model").unwrap();
    serde_json::to_value(&body).unwrap()
}

// ---- naming and errors ----------------------------------------------------------------------

#[test]
fn flat_names_join_with_a_double_underscore_unless_the_namespace_ends_in_one() {
    assert_eq!(
        flat_name("multi_agent_v1", "spawn_agent"),
        "multi_agent_v1__spawn_agent"
    );
    assert_eq!(
        flat_name("mcp__github__", "list_prs"),
        "mcp__github__list_prs"
    );
    assert_eq!(flat_name("mcp__cua_repl", "js"), "mcp__cua_repl__js");
    let mut names = ToolNames::default();
    names
        .0
        .insert("ns__f".into(), ("ns".to_string(), "f".to_string()));
    assert_eq!(names.restore("ns__f"), (Some("ns"), "f"));
    // Names nobody flattened are left alone, even when they look namespaced.
    assert_eq!(names.restore("mcp__x__y"), (None, "mcp__x__y"));
}

#[test]
fn derived_ids_keep_the_upstream_id_in_safe_characters() {
    assert_eq!(
        derived_id("resp", Some("chatcmpl-a.b:c")),
        "resp_chatcmpl-a_b_c"
    );
    let random = derived_id("msg", None);
    assert!(random.starts_with("msg_") && random.len() == 36, "{random}");
    assert_ne!(derived_id("msg", Some("")), derived_id("msg", Some("")));
}

#[test]
fn upstream_errors_keep_their_code_and_get_a_status() {
    let cases = [
        (
            json!({"message": "slow", "type": "requests", "code": "rate_limit_exceeded"}),
            "rate_limit_exceeded",
            429,
        ),
        (
            json!({"message": "too long", "type": "invalid_request_error",
                "code": "context_length_exceeded"}),
            "context_length_exceeded",
            400,
        ),
        (
            json!({"message": "busy", "type": "overloaded_error"}),
            "overloaded_error",
            503,
        ),
        (
            json!({"message": "no money", "code": "insufficient_quota"}),
            "insufficient_quota",
            429,
        ),
        (json!({}), "server_error", 500),
    ];
    for (error, code, status) in cases {
        let (object, e) = upstream_error(&error);
        assert_eq!(object["code"], code, "{error}");
        assert!(object["message"].is_string());
        assert_eq!(e.status(), status, "{error}");
        assert_eq!(e.kind, ErrorKind::UpstreamStatus(status));
    }
}

// ---- round trips ----------------------------------------------------------------------------

#[test]
fn the_codex_fixture_translates_for_every_upstream_format() {
    let (body, echo) = request::to_chat(CODEX_FIRST_REQUEST, "deepseek-chat").unwrap();
    let chat: Value = serde_json::to_value(&body).unwrap();
    // Through the chat → Anthropic and chat → Gemini translators as the gateway composes them.
    let anthropic: Value = serde_json::from_slice(
        &anthropic::upstream::request::from_chat(
            &body,
            "claude-x",
            anthropic::upstream::cache::PromptCache::Off,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(anthropic["tools"].as_array().unwrap().len(), 12);
    assert!(anthropic["system"].is_string() || anthropic["system"].is_array());
    let (gemini_body, stream) = gemini::upstream::request::from_chat(&body).unwrap();
    assert!(stream);
    let gemini: Value = serde_json::from_slice(&gemini_body).unwrap();
    let declarations = &gemini["tools"][0]["functionDeclarations"];
    assert_eq!(declarations.as_array().unwrap().len(), 12);
    // The spawn_agent call comes back namespaced, as Codex routes it.
    assert_eq!(
        echo.names.restore("multi_agent_v1__spawn_agent"),
        (Some("multi_agent_v1"), "spawn_agent")
    );
    assert_eq!(chat["messages"].as_array().unwrap().len(), 3);
}

#[test]
fn a_namespaced_tool_round_trips_from_request_to_answer() {
    let request = json!({
        "model": "m", "input": "spawn one", "stream": false,
        "tools": [{"type": "namespace", "name": "collab", "description": "agents",
                   "tools": [{"type": "function", "name": "spawn_agent",
                              "parameters": {"type": "object", "properties": {}}}]},
                  {"type": "function", "name": "shell", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "spawn_agent", "namespace": "collab"},
    });
    let (body, echo) = request::to_chat(request.to_string().as_bytes(), "up").unwrap();
    let chat: Value = serde_json::to_value(&body).unwrap();
    assert_eq!(chat["tools"][0]["function"]["name"], "collab__spawn_agent");
    assert_eq!(
        chat["tool_choice"]["function"]["name"],
        "collab__spawn_agent"
    );
    let completion = json!({
        "id": "c1", "created": 7, "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_a", "type": "function",
             "function": {"name": "collab__spawn_agent", "arguments": "{}"}},
            {"id": "call_b", "type": "function", "function": {"name": "shell", "arguments": "{}"}}]}}],
    });
    let mut translator = response::from_chat(false, "m", echo.clone());
    let (out, result) = run(translator.as_mut(), &[completion.to_string().as_bytes()]);
    result.unwrap();
    let response: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(response["output"][0]["name"], "spawn_agent");
    assert_eq!(response["output"][0]["namespace"], "collab");
    assert_eq!(response["output"][1]["name"], "shell");
    assert!(response["output"][1].get("namespace").is_none());
    // The call, sent back as history, is flattened again to the name the model knows.
    let next = json!({"model": "m", "input": [
        response["output"][0].clone(),
        {"type": "function_call_output", "call_id": "call_a", "output": "ok"}]});
    let (body, _) = request::to_chat(next.to_string().as_bytes(), "up").unwrap();
    let chat: Value = serde_json::to_value(&body).unwrap();
    assert_eq!(
        chat["messages"][0]["tool_calls"][0]["function"]["name"],
        "collab__spawn_agent"
    );
    // And the streamed form restores it the same way.
    let chunk = json!({"id": "c1", "created": 7, "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_a", "type": "function",
         "function": {"name": "collab__spawn_agent", "arguments": "{}"}}]},
        "finish_reason": "tool_calls"}]});
    let sse = format!("data: {chunk}\n\ndata: [DONE]\n\n");
    let mut translator = response::from_chat(true, "m", echo);
    let (out, result) = run(translator.as_mut(), &[sse.as_bytes()]);
    result.unwrap();
    let done = events(&out)
        .into_iter()
        .find(|(name, _)| name.as_deref() == Some("response.output_item.done"))
        .unwrap()
        .1;
    assert_eq!(done["item"]["namespace"], "collab");
    assert_eq!(done["item"]["name"], "spawn_agent");
}

/// The event types and the final response of a stream read by an upstream side whose chat
/// values go straight to the Responses side, as the gateway composes them, fed byte by byte.
fn chained(
    upstream: impl FnOnce(response::ToResponses) -> Box<dyn ResponseTranslator>,
    input: &str,
) -> (Vec<String>, Value) {
    let mut chain = upstream(response::ToResponses::new("client", Echo::default()));
    let bytes: Vec<&[u8]> = input.as_bytes().chunks(1).collect();
    let (out, result) = run(chain.as_mut(), &bytes);
    result.unwrap();
    let events = events(&out);
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64);
    }
    let types = events
        .iter()
        .map(|(_, d)| d["type"].as_str().unwrap_or("").to_string())
        .collect();
    (types, events.last().unwrap().1["response"].clone())
}

#[test]
fn an_anthropic_stream_reaches_a_responses_client() {
    let input = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",",
        "\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":4,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,",
        "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,",
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"Paris — ☀️\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,",
        "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"ns__f\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,",
        "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":1}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":",
        "\"tool_use\"},\"usage\":{\"output_tokens\":7}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let (types, response) = chained(
        |sink| anthropic::upstream::response::to_chat(true, "client", sink),
        input,
    );
    assert_eq!(types.first().map(String::as_str), Some("response.created"));
    assert_eq!(types.last().map(String::as_str), Some("response.completed"));
    assert_eq!(response["output"][0]["content"][0]["text"], "Paris — ☀️");
    assert_eq!(response["output"][1]["call_id"], "toolu_1");
    assert_eq!(response["output"][1]["arguments"], "{\"a\":1}");
    assert_eq!(response["usage"]["input_tokens"], 14);
    assert_eq!(
        response["usage"]["input_tokens_details"]["cached_tokens"],
        4
    );
    assert_eq!(response["usage"]["output_tokens"], 7);
}

#[test]
fn a_gemini_stream_reaches_a_responses_client() {
    let input = concat!(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"thinking\",\"thought\":true}],",
        "\"role\":\"model\"},\"index\":0}],\"responseId\":\"r1\"}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"},",
        "\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":5,",
        "\"candidatesTokenCount\":2,\"totalTokenCount\":7},\"responseId\":\"r1\"}\r\n\r\n",
    );
    let (types, response) = chained(
        |sink| gemini::upstream::response::to_chat(true, "client", sink),
        input,
    );
    assert_eq!(types.last().map(String::as_str), Some("response.completed"));
    let output = response["output"].as_array().unwrap();
    assert_eq!(output.last().unwrap()["content"][0]["text"], "Hi");
    assert_eq!(response["usage"]["input_tokens"], 5);
    assert_eq!(response["usage"]["total_tokens"], 7);
}
