//! docs/translation.md D2 and D3: OpenAI-format answers → Anthropic, whole and streamed.

use serde_json::{json, Value};

use super::{from_chat, stop_reason};
use crate::error::ErrorKind;
use crate::providers::translator_testing::{events, run, same_at_every_split};
use crate::providers::ResponseTranslator;

fn message(completion: &Value) -> Value {
    let mut t = from_chat(false, "claude-alias");
    let (out, result) = run(t.as_mut(), &[completion.to_string().as_bytes()]);
    result.unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn completion(reply: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": reply, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160,
                  "prompt_tokens_details": {"cached_tokens": 64}},
    })
}

// ---- D2 ----

#[test]
fn a_completion_with_text_and_tool_calls_becomes_a_message() {
    let out = message(&completion(
        json!({"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "", "type": "function", "function": {"name": "broken", "arguments": "{oops"}}]}),
        "tool_calls",
    ));
    let synthesized = out["content"][2]["id"].as_str().unwrap().to_string();
    assert!(synthesized.starts_with("toolu_"), "{synthesized}");
    assert_eq!(
        out,
        json!({
            "id": "msg_chatcmpl-abc123", "type": "message", "role": "assistant", "model": "claude-alias",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": synthesized, "name": "broken", "input": {}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 56, "output_tokens": 40, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 64},
        })
    );
}

#[test]
fn every_finish_reason_maps_to_its_stop_reason() {
    let table = [
        (Some("stop"), "end_turn"),
        (Some("length"), "max_tokens"),
        (Some("tool_calls"), "tool_use"),
        (Some("function_call"), "tool_use"),
        (Some("content_filter"), "refusal"),
        (Some("weird"), "end_turn"),
        (None, "end_turn"),
    ];
    for (finish, stop) in table {
        assert_eq!(stop_reason(finish, false), stop, "{finish:?}");
    }
    // Tool calls with a plain `stop` (some compat hosts) must still make the client run them.
    assert_eq!(stop_reason(Some("stop"), true), "tool_use");
    let out = message(&completion(json!({"content": "x"}), "length"));
    assert_eq!(out["stop_reason"], "max_tokens");
}

#[test]
fn upstream_ids_are_kept_with_anthropic_prefixes_and_safe_characters() {
    let mut c = completion(
        json!({"content": null, "tool_calls": [
            {"id": "fc.1:a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}),
        "tool_calls",
    );
    c["id"] = json!("gen-17/x");
    let out = message(&c);
    assert_eq!(out["id"], "msg_gen-17_x");
    assert_eq!(out["content"][0]["id"], "fc_1_a");
}

#[test]
fn empty_content_reasoning_and_refusals() {
    let out = message(&completion(
        json!({"role": "assistant", "content": ""}),
        "stop",
    ));
    assert_eq!(out["content"], json!([]));
    let out = message(&completion(
        json!({"reasoning_content": "think", "content": "42"}),
        "stop",
    ));
    assert_eq!(
        out["content"],
        json!([{"type": "thinking", "thinking": "think", "signature": ""}, {"type": "text", "text": "42"}])
    );
    let out = message(&completion(
        json!({"content": null, "refusal": "I can't."}),
        "content_filter",
    ));
    assert_eq!(
        out["content"],
        json!([{"type": "text", "text": "I can't."}])
    );
    assert_eq!(out["stop_reason"], "refusal");
}

#[test]
fn missing_usage_reads_as_zero_and_errors_fail_the_answer() {
    let out = message(&json!({"id": "x", "choices": []}));
    assert_eq!(out["usage"]["input_tokens"], 0);
    let mut t = from_chat(false, "m");
    let (_, r) = run(
        t.as_mut(),
        &[br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#],
    );
    let e = r.unwrap_err();
    assert_eq!((e.status(), e.message.as_str()), (429, "slow down"));
    let (_, r) = run(from_chat(false, "m").as_mut(), &[b"<html>"]);
    assert_eq!(r.unwrap_err().kind, ErrorKind::UpstreamProtocol);
}

// ---- D3 ----

/// A recorded-shape OpenAI stream: role chunk, text (multi-byte), two tool calls sent as
/// `index`ed fragments, the finish chunk, the include_usage chunk and `[DONE]`.
const OPENAI_STREAM: &str = r#"data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"content":"Checking "},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"content":"both — ☀️."},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Paris\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"get_time","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"tz\":\"CET\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}

data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8","choices":[],"usage":{"prompt_tokens":120,"completion_tokens":40,"total_tokens":160,"prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

data: [DONE]

"#;

fn stream() -> Box<dyn ResponseTranslator> {
    from_chat(true, "claude-alias")
}

fn ev(name: &str, data: Value) -> (Option<String>, Value) {
    (Some(name.to_string()), data)
}

fn block_start(index: usize, block: Value) -> (Option<String>, Value) {
    ev(
        "content_block_start",
        json!({"type": "content_block_start", "index": index, "content_block": block}),
    )
}

fn block_delta(index: usize, delta: Value) -> (Option<String>, Value) {
    ev(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

fn block_stop(index: usize) -> (Option<String>, Value) {
    ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    )
}

fn json_delta(partial: &str) -> Value {
    json!({"type": "input_json_delta", "partial_json": partial})
}

#[test]
fn the_stream_translates_identically_at_every_chunk_border() {
    let (out, result) = same_at_every_split(stream, OPENAI_STREAM.as_bytes());
    result.unwrap();
    let expected = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "type": "message", "role": "assistant",
            "content": [], "model": "claude-alias", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        ),
        block_start(0, json!({"type": "text", "text": ""})),
        block_delta(0, json!({"type": "text_delta", "text": "Checking "})),
        block_delta(0, json!({"type": "text_delta", "text": "both — ☀️."})),
        block_stop(0),
        block_start(
            1,
            json!({"type": "tool_use", "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "name": "get_weather", "input": {}}),
        ),
        block_delta(1, json_delta("{\"ci")),
        block_delta(1, json_delta("ty\":\"Paris\"}")),
        block_stop(1),
        block_start(
            2,
            json!({"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}),
        ),
        block_delta(2, json_delta("{\"tz\":\"CET\"}")),
        block_stop(2),
        ev(
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"input_tokens": 56, "output_tokens": 40, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 64}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ];
    assert_eq!(events(&out), expected);
}

/// Chunks with only the fields the translator reads.
fn chunks(deltas: &[Value]) -> String {
    deltas
        .iter()
        .map(|d| format!("data: {{\"id\":\"c\",\"choices\":[{d}]}}\n\n"))
        .collect()
}

#[test]
fn interleaved_tool_calls_and_late_text_come_out_as_contiguous_blocks() {
    let input = chunks(&[
        json!({"delta": {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{\"x\""}}]}}),
        json!({"delta": {"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{\"y\""}}]}}),
        json!({"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}),
        json!({"delta": {"content": "done", "tool_calls": [{"index": 1, "function": {"arguments": ":2}"}}]}}),
        json!({"delta": {}, "finish_reason": "tool_calls"}),
    ]) + "data: [DONE]\n\n";
    let (out, result) = same_at_every_split(stream, input.as_bytes());
    result.unwrap();
    let got: Vec<_> = events(&out).into_iter().skip(1).collect();
    assert_eq!(
        got[..10],
        [
            block_start(
                0,
                json!({"type": "tool_use", "id": "a", "name": "f", "input": {}})
            ),
            block_delta(0, json_delta("{\"x\"")),
            block_delta(0, json_delta(":1}")),
            block_stop(0),
            block_start(
                1,
                json!({"type": "tool_use", "id": "b", "name": "g", "input": {}})
            ),
            block_delta(1, json_delta("{\"y\":2}")),
            block_stop(1),
            block_start(2, json!({"type": "text", "text": ""})),
            block_delta(2, json!({"type": "text_delta", "text": "done"})),
            block_stop(2),
        ]
    );
    assert_eq!(got[10].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        got[10].1["usage"]["output_tokens"], 0,
        "no usage chunk came"
    );
}

#[test]
fn whole_calls_without_index_and_reasoning_become_blocks() {
    let input = chunks(&[
        json!({"delta": {"reasoning_content": "let me think"}}),
        json!({"delta": {"content": "ok"}}),
        json!({"delta": {"tool_calls": [{"id": "x1", "function": {"name": "f", "arguments": "{}"}}]}}),
        json!({"delta": {"tool_calls": [{"id": "x2", "function": {"name": "g", "arguments": "{\"a\":1}"}}]}}),
        json!({"delta": {}, "finish_reason": "stop"}),
    ]);
    // No [DONE]: the finish reason came, so the stream is completed anyway.
    let (out, result) = same_at_every_split(stream, input.as_bytes());
    result.unwrap();
    let got = events(&out);
    let names: Vec<&str> = got
        .iter()
        .map(|(n, _)| n.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "content_block_start")
            .count(),
        4
    );
    assert_eq!(
        got[1],
        block_start(
            0,
            json!({"type": "thinking", "thinking": "", "signature": ""})
        )
    );
    assert_eq!(
        got[2],
        block_delta(
            0,
            json!({"type": "thinking_delta", "thinking": "let me think"})
        )
    );
    assert_eq!(got[8], block_delta(2, json_delta("{}")));
    assert_eq!(got[11], block_delta(3, json_delta("{\"a\":1}")));
    assert_eq!(got[got.len() - 2].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(names.last(), Some(&"message_stop"));
}

#[test]
fn an_error_chunk_mid_stream_becomes_an_anthropic_error_event() {
    let input = chunks(&[json!({"delta": {"content": "par"}})])
        + "data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n"
        + "data: [DONE]\n\n";
    let (out, result) = same_at_every_split(stream, input.as_bytes());
    result.unwrap();
    let got = events(&out);
    assert_eq!(
        got.last().unwrap(),
        &ev(
            "error",
            json!({"type": "error", "error": {"type": "api_error", "message": "The server had an error"}})
        )
    );
    assert!(!got
        .iter()
        .any(|(n, _)| n.as_deref() == Some("message_stop")));
}

#[test]
fn a_cut_stream_closes_its_block_and_fails_without_a_stop_reason() {
    let input = chunks(&[
        json!({"delta": {"content": "Hel"}}),
        json!({"delta": {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{\"x"}}]}}),
    ]);
    let (out, result) = same_at_every_split(stream, input.as_bytes());
    assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
    let got = events(&out);
    assert_eq!(got.last().unwrap(), &block_stop(1));
    assert!(!got
        .iter()
        .any(|(n, _)| n.as_deref() == Some("message_delta")));
    let (out, result) = run(from_chat(true, "m").as_mut(), &[b""]);
    assert!(out.is_empty());
    assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
}
