use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::error::ErrorKind;
use crate::providers::anthropic::client::response::ToAnthropic;
use crate::providers::chat::OpenAiWriter;
use crate::providers::translator_testing::{events, same_at_every_split};

fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let headers = headers
        .iter()
        .map(|(n, v)| Header::new(n.to_string(), HeaderValue::String(v.to_string().into())))
        .collect();
    let message = Message::new_from_parts(headers, Bytes::copy_from_slice(payload));
    let mut out = Vec::new();
    write_message_to(&message, &mut out).unwrap();
    out
}

/// One Converse event as ConverseStream frames it (its JSON padded with `p`, as AWS does).
fn event_frame(kind: &str, mut payload: Value) -> Vec<u8> {
    payload["p"] = "abcdefgh".into();
    frame(
        &[
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// A Nova answer: text (with non-ASCII, so cuts fall inside characters), then a tool call
/// whose input comes in two partial-JSON pieces, the stop and the usage.
fn nova_stream() -> Vec<u8> {
    let mut all = Vec::new();
    for (kind, payload) in [
        ("messageStart", json!({"role": "assistant"})),
        (
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Let me check"}}),
        ),
        (
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": " — één ☀️"}}),
        ),
        ("contentBlockStop", json!({"contentBlockIndex": 0})),
        (
            "contentBlockStart",
            json!({"contentBlockIndex": 1,
            "start": {"toolUse": {"toolUseId": "tooluse_Xy1", "name": "get_weather"}}}),
        ),
        (
            "contentBlockDelta",
            json!({"contentBlockIndex": 1,
            "delta": {"toolUse": {"input": "{\"city\":"}}}),
        ),
        (
            "contentBlockDelta",
            json!({"contentBlockIndex": 1,
            "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
        ),
        ("contentBlockStop", json!({"contentBlockIndex": 1})),
        ("messageStop", json!({"stopReason": "tool_use"})),
        (
            "metadata",
            json!({"usage": {"inputTokens": 40, "outputTokens": 12, "totalTokens": 52},
            "metrics": {"latencyMs": 410}}),
        ),
    ] {
        all.extend(event_frame(kind, payload));
    }
    all
}

fn openai() -> Box<dyn ResponseTranslator> {
    Box::new(StreamTranslator::new("nova", Stamp::fixed(), OpenAiWriter))
}

#[test]
fn events_become_chat_chunks_at_every_split() {
    let (out, result) = same_at_every_split(openai, &nova_stream());
    result.unwrap();
    let chunks: Vec<Value> = events(&out).into_iter().map(|(_, data)| data).collect();
    let deltas: Vec<Value> = chunks
        .iter()
        .filter_map(|c| c.get("choices").and_then(|cs| cs.get(0)))
        .map(|c| c["delta"].clone())
        .collect();
    assert_eq!(
        deltas,
        [
            json!({"role": "assistant", "content": ""}),
            json!({"content": "Let me check"}),
            json!({"content": " — één ☀️"}),
            json!({"tool_calls": [{"index": 0, "id": "tooluse_Xy1", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            json!({}),
        ]
    );
    let finish = &chunks[6]["choices"][0];
    assert_eq!(finish["finish_reason"], "tool_calls");
    assert_eq!(chunks[0]["usage"], Value::Null);
    assert_eq!(chunks[0]["id"], "chatcmpl-test");
    assert_eq!(chunks[0]["model"], "nova");
    assert_eq!(chunks[7]["choices"], json!([]));
    assert_eq!(
        chunks[7]["usage"],
        json!({"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52,
            "prompt_tokens_details": {"cached_tokens": 0}})
    );
    assert_eq!(chunks[8], json!("[DONE]"));
    assert_eq!(chunks.len(), 9);
}

#[test]
fn an_anthropic_client_gets_its_own_events() {
    let make = || -> Box<dyn ResponseTranslator> {
        Box::new(StreamTranslator::new(
            "nova",
            Stamp::fixed(),
            ToAnthropic::new("nova"),
        ))
    };
    let (out, result) = same_at_every_split(make, &nova_stream());
    result.unwrap();
    let events = events(&out);
    let names: Vec<String> = events.iter().filter_map(|(e, _)| e.clone()).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Let me check"), "{text}");
    assert!(text.contains("\"tool_use\""), "{text}");
    assert!(text.contains("tooluse_Xy1"), "{text}");
    assert!(text.contains("\"output_tokens\":12"), "{text}");
}

#[test]
fn signed_reasoning_becomes_a_thinking_block_at_its_end() {
    let mut input = Vec::new();
    for (kind, payload) in [
        ("messageStart", json!({"role": "assistant"})),
        (
            "contentBlockDelta",
            json!({"contentBlockIndex": 0,
            "delta": {"reasoningContent": {"text": "Think"}}}),
        ),
        (
            "contentBlockDelta",
            json!({"contentBlockIndex": 0,
            "delta": {"reasoningContent": {"text": "ing."}}}),
        ),
        (
            "contentBlockDelta",
            json!({"contentBlockIndex": 0,
            "delta": {"reasoningContent": {"signature": "sig=="}}}),
        ),
        ("contentBlockStop", json!({"contentBlockIndex": 0})),
        (
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"text": "Done"}}),
        ),
        ("messageStop", json!({"stopReason": "max_tokens"})),
    ] {
        input.extend(event_frame(kind, payload));
    }
    let (out, result) = same_at_every_split(openai, &input);
    result.unwrap();
    let deltas: Vec<Value> = events(&out)
        .into_iter()
        .filter_map(|(_, c)| c.pointer("/choices/0").cloned())
        .collect();
    assert_eq!(deltas[1]["delta"], json!({"reasoning_content": "Think"}));
    assert_eq!(deltas[2]["delta"], json!({"reasoning_content": "ing."}));
    assert_eq!(
        deltas[3]["delta"],
        json!({"thinking_blocks": [{"type": "thinking", "thinking": "Thinking.", "signature": "sig=="}]})
    );
    assert_eq!(deltas[4]["delta"], json!({"content": "Done"}));
    assert_eq!(deltas[5]["finish_reason"], "length");
}

#[test]
fn an_exception_frame_ends_the_stream_with_its_status() {
    let mut input = event_frame("messageStart", json!({"role": "assistant"}));
    input.extend(event_frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
    ));
    input.extend(frame(
        &[
            (":exception-type", "throttlingException"),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        br#"{"message":"Too many tokens, please wait before trying again."}"#,
    ));
    let (out, result) = same_at_every_split(openai, &input);
    let error = result.unwrap_err();
    assert_eq!(error.status(), 429);
    assert!(
        error.message.contains("Too many tokens"),
        "{}",
        error.message
    );
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Hel") && !text.contains("[DONE]"), "{text}");
}

#[test]
fn a_cut_or_broken_stream_is_a_protocol_error() {
    let whole = nova_stream();
    let (_, result) = same_at_every_split(openai, &whole[..whole.len() - 5]);
    assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
    // whole frames, but no messageStop
    let mut no_stop = event_frame("messageStart", json!({"role": "assistant"}));
    no_stop.extend(event_frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
    ));
    let (_, result) = same_at_every_split(openai, &no_stop);
    assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
    let mut corrupt = nova_stream();
    corrupt[30] ^= 0xff;
    let (_, result) = same_at_every_split(openai, &corrupt);
    assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
    // tool input for a block that never started
    let orphan = event_frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 3, "delta": {"toolUse": {"input": "{}"}}}),
    );
    let (_, result) = same_at_every_split(openai, &orphan);
    assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
}
