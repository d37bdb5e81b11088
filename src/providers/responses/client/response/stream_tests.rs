//! Chat SSE → Responses event stream.

use serde_json::{json, Value};

use crate::error::ErrorKind;
use crate::providers::responses::client::request::to_chat;
use crate::providers::responses::client::response::from_chat;
use crate::providers::responses::client::tests::{events, run, same_at_every_split};
use crate::providers::responses::client::Echo;
use crate::providers::ResponseTranslator;

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
                   "model": "up", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {c}\n\n")
}

fn usage_chunk() -> String {
    let c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
                   "model": "up", "choices": [],
                   "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16,
                             "prompt_tokens_details": {"cached_tokens": 2}}});
    format!("data: {c}\n\n")
}

fn text_stream() -> String {
    let mut s = chunk(json!({"role": "assistant", "content": ""}), None);
    for piece in ["Hello", " world1", " world2"] {
        s += &chunk(json!({"content": piece}), None);
    }
    s += &chunk(json!({}), Some("stop"));
    s += &usage_chunk();
    s + "data: [DONE]\n\n"
}

fn tool_stream() -> String {
    let mut s = chunk(
        json!({"role": "assistant", "content": null, "tool_calls": [
        {"index": 0, "id": "call_a", "type": "function",
         "function": {"name": "get_weather", "arguments": ""}}]}),
        None,
    );
    for piece in ["{\"ci", "ty\":\"Pa", "ris\"}"] {
        s += &chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            None,
        );
    }
    s += &chunk(
        json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
        "function": {"name": "get_time", "arguments": "{}"}}]}),
        None,
    );
    s += &chunk(json!({}), Some("tool_calls"));
    s += &usage_chunk();
    s + "data: [DONE]\n\n"
}

fn make() -> Box<dyn ResponseTranslator> {
    from_chat(true, "client-model", Echo::default())
}

fn types(events: &[(Option<String>, Value)]) -> Vec<String> {
    events
        .iter()
        .map(|(_, v)| v["type"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Every event is named by its `type` and numbered from 0 without gaps.
fn assert_well_formed(events: &[(Option<String>, Value)]) {
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(name.as_deref(), data["type"].as_str(), "event {i}");
        assert_eq!(data["sequence_number"], i as u64, "event {i}");
    }
}

#[test]
fn a_text_stream_becomes_the_message_event_sequence() {
    let (out, result) = same_at_every_split(make, text_stream().as_bytes());
    result.unwrap();
    let events = events(&out);
    assert_well_formed(&events);
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let created = &events[0].1["response"];
    assert_eq!(created["id"], "resp_chatcmpl-1");
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["model"], "client-model");
    assert_eq!(created["usage"], Value::Null);
    assert_eq!(
        events[2].1["item"],
        json!({"id": "msg_chatcmpl-1", "type": "message", "status": "in_progress",
               "role": "assistant", "content": []})
    );
    assert_eq!(
        events[4].1,
        json!({"type": "response.output_text.delta", "item_id": "msg_chatcmpl-1",
               "output_index": 0, "content_index": 0, "delta": "Hello", "logprobs": [],
               "sequence_number": 4})
    );
    assert_eq!(events[7].1["text"], "Hello world1 world2");
    assert_eq!(events[8].1["part"]["text"], "Hello world1 world2");
    let done = &events[9].1["item"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["content"][0]["text"], "Hello world1 world2");
    let completed = &events[10].1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"], json!([done]));
    assert_eq!(
        completed["usage"],
        json!({"input_tokens": 11, "input_tokens_details": {"cached_tokens": 2},
               "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
               "total_tokens": 16})
    );
}

#[test]
fn tool_calls_stream_as_function_call_items() {
    let (out, result) = same_at_every_split(make, tool_stream().as_bytes());
    result.unwrap();
    let events = events(&out);
    assert_well_formed(&events);
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(
        events[2].1["item"],
        json!({"id": "fc_call_a", "type": "function_call", "status": "in_progress",
               "arguments": "", "call_id": "call_a", "name": "get_weather"})
    );
    assert_eq!(events[3].1["delta"], "{\"ci");
    assert_eq!(
        events[6].1,
        json!({"type": "response.function_call_arguments.done", "item_id": "fc_call_a",
               "output_index": 0, "name": "get_weather", "arguments": "{\"city\":\"Paris\"}",
               "sequence_number": 6})
    );
    assert_eq!(events[8].1["output_index"], 1);
    assert_eq!(events[11].1["item"]["call_id"], "call_b");
    let output = &events[12].1["response"]["output"];
    assert_eq!(output[0]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(output[1]["name"], "get_time");
    assert_eq!(output.as_array().unwrap().len(), 2);
}

#[test]
fn reasoning_then_text_makes_two_items() {
    let mut s = chunk(json!({"reasoning_content": "Let me"}), None);
    s += &chunk(json!({"reasoning_content": " think."}), None);
    s += &chunk(json!({"content": "Hi"}), None);
    s += &chunk(json!({}), Some("stop"));
    s += "data: [DONE]\n\n";
    let (out, result) = same_at_every_split(make, s.as_bytes());
    result.unwrap();
    let events = events(&out);
    assert_well_formed(&events);
    assert_eq!(events[2].1["item"]["type"], "reasoning");
    assert_eq!(
        events[3].1["part"],
        json!({"type": "reasoning_text", "text": ""})
    );
    assert_eq!(events[4].1["type"], "response.reasoning_text.delta");
    assert_eq!(events[6].1["type"], "response.reasoning_text.done");
    assert_eq!(events[6].1["text"], "Let me think.");
    let output = &events.last().unwrap().1["response"]["output"];
    assert_eq!(output[0]["content"][0]["text"], "Let me think.");
    assert_eq!(output[0]["id"], "rs_chatcmpl-1");
    assert_eq!(output[1]["content"][0]["text"], "Hi");
    assert_eq!(output[1]["id"], "msg_chatcmpl-1_1");
    // No usage chunk: the completed response says so.
    assert_eq!(events.last().unwrap().1["response"]["usage"], Value::Null);
}

#[test]
fn interleaved_calls_and_late_text_are_written_whole_at_the_finish() {
    let mut s = chunk(
        json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{\"x\""}}]}),
        None,
    );
    s += &chunk(
        json!({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{"}}]}),
        None,
    );
    s += &chunk(json!({"content": "late"}), None);
    s += &chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
        None,
    );
    s += &chunk(
        json!({"tool_calls": [{"index": 1, "function": {"arguments": "}"}}]}),
        None,
    );
    s += &chunk(json!({}), Some("tool_calls"));
    s += "data: [DONE]\n\n";
    let (out, result) = same_at_every_split(make, s.as_bytes());
    result.unwrap();
    let events = events(&out);
    assert_well_formed(&events);
    let output = &events.last().unwrap().1["response"]["output"];
    assert_eq!(output[0]["arguments"], "{\"x\":1}");
    assert_eq!(output[1]["arguments"], "{}");
    assert_eq!(output[2]["content"][0]["text"], "late");
}

#[test]
fn a_mid_stream_error_becomes_response_failed_and_ends_the_stream() {
    let mut s = chunk(json!({"content": "Hel"}), None);
    s += "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"code\":null}}\n\n";
    s += &chunk(json!({"content": "ignored"}), None);
    let (out, result) = same_at_every_split(make, s.as_bytes());
    result.unwrap();
    let events = events(&out);
    assert_well_formed(&events);
    let (name, failed) = events.last().unwrap();
    assert_eq!(name.as_deref(), Some("response.failed"));
    assert_eq!(failed["response"]["status"], "failed");
    assert_eq!(
        failed["response"]["error"],
        json!({"code": "server_error", "message": "overloaded"})
    );
    assert!(!String::from_utf8_lossy(&out).contains("ignored"));
}

#[test]
fn the_token_limit_ends_with_response_incomplete() {
    let mut s = chunk(json!({"content": "Hel"}), None);
    s += &chunk(json!({}), Some("length"));
    s += "data: [DONE]\n\n";
    let (out, result) = run(make().as_mut(), &[s.as_bytes()]);
    result.unwrap();
    let (name, last) = events(&out).pop().unwrap();
    assert_eq!(name.as_deref(), Some("response.incomplete"));
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
}

#[test]
fn a_stream_without_done_but_with_its_finish_reason_completes() {
    let s = chunk(json!({"content": "Hi"}), None) + &chunk(json!({}), Some("stop"));
    let (out, result) = same_at_every_split(make, s.as_bytes());
    result.unwrap();
    assert_eq!(events(&out).last().unwrap().1["type"], "response.completed");
}

#[test]
fn a_cut_stream_fails_without_inventing_an_ending() {
    let s = chunk(
        json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{\"x"}}]}),
        None,
    );
    let (out, result) = same_at_every_split(make, s.as_bytes());
    assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
    let types = types(&events(&out));
    assert!(
        !types.iter().any(|t| t == "response.output_item.done"),
        "{types:?}"
    );
    let (out, result) = run(make().as_mut(), &[b"data: [DONE]\n\n"]);
    assert!(out.is_empty());
    assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
    let (_, result) = run(make().as_mut(), &[b"data: {oops\n\n"]);
    assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
    let (out, result) = run(make().as_mut(), &[b""]);
    assert!(out.is_empty() && result.is_err());
}

#[test]
fn a_call_continued_after_its_item_closed_is_a_protocol_error() {
    let mut s = chunk(
        json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}]}),
        None,
    );
    s += &chunk(json!({"content": "x"}), Some("tool_calls"));
    s += &chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "more"}}]}),
        None,
    );
    let mut t = from_chat(true, "m", Echo::default());
    let (_, result) = run(t.as_mut(), &[s.as_bytes()]);
    assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
}

#[test]
fn the_codex_fixture_answer_streams_a_namespaced_call() {
    let (_, echo) = to_chat(
        crate::providers::responses::client::tests::CODEX_FIRST_REQUEST,
        "up",
    )
    .unwrap();
    let s = chunk(
        json!({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
        "function": {"name": "multi_agent_v1__wait_agent", "arguments": "{}"}}]}),
        Some("tool_calls"),
    ) + "data: [DONE]\n\n";
    let (out, result) =
        same_at_every_split(|| from_chat(true, "gpt-4o", echo.clone()), s.as_bytes());
    result.unwrap();
    let events = events(&out);
    assert_well_formed(&events);
    let item = &events.last().unwrap().1["response"]["output"][0];
    assert_eq!(
        (item["namespace"].as_str(), item["name"].as_str()),
        (Some("multi_agent_v1"), Some("wait_agent"))
    );
    assert_eq!(events[0].1["response"]["tool_choice"], "auto");
}
