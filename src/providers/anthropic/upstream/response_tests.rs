//! docs/translation.md B1 and B2: Anthropic answers → OpenAI, whole and streamed.

use serde_json::{json, Value};

use super::{finish_reason, to_chat, JsonToChat, StreamToChat};
use crate::error::ErrorKind;
use crate::providers::anthropic::upstream::JSON_OUTPUT_TOOL;
use crate::providers::chat::OpenAiWriter;
use crate::providers::responses::client::response::{from_chat, ToResponses};
use crate::providers::responses::client::Echo;
use crate::providers::translator_testing::{
    events, run, same_at_every_split, typed_chain_matches_bytes,
};
use crate::providers::ResponseTranslator;

const CREATED: u64 = 1_730_000_000;

fn complete(message: &Value) -> Value {
    let mut t = JsonToChat::new("claude-alias", CREATED);
    let (out, result) = run(&mut t, &[message.to_string().as_bytes()]);
    result.unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn message(content: Value, stop_reason: &str) -> Value {
    json!({
        "id": "msg_01X", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": content, "stop_reason": stop_reason, "stop_sequence": null,
        "usage": {"input_tokens": 472, "output_tokens": 89,
                  "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000},
    })
}

// ---- B1 ----

#[test]
fn a_message_with_text_and_tool_use_becomes_a_chat_completion() {
    let out = complete(&message(
        json!([{"type": "text", "text": "Let me "}, {"type": "text", "text": "check."},
               {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}]),
        "tool_use",
    ));
    assert_eq!(
        out,
        json!({
            "id": "chatcmpl-msg_01X", "object": "chat.completion", "created": CREATED, "model": "claude-alias",
            "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me check.", "refusal": null,
                "tool_calls": [{"id": "toolu_01A", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 2572, "completion_tokens": 89, "total_tokens": 2661,
                      "prompt_tokens_details": {"cached_tokens": 2000}, "cache_creation_input_tokens": 100},
        })
    );
}

#[test]
fn content_is_null_with_only_tool_calls_and_empty_without_anything() {
    let only_tools = message(
        json!([{"type": "tool_use", "id": "t", "name": "f", "input": {}}]),
        "tool_use",
    );
    assert_eq!(
        complete(&only_tools)["choices"][0]["message"]["content"],
        Value::Null
    );
    let empty = complete(&message(json!([]), "end_turn"));
    assert_eq!(empty["choices"][0]["message"]["content"], "");
    assert!(empty["choices"][0]["message"].get("tool_calls").is_none());
}

#[test]
fn every_stop_reason_maps_to_its_finish_reason() {
    let table = [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        ("something_new", "stop"),
    ];
    for (stop, finish) in table {
        assert_eq!(finish_reason(Some(stop)), finish, "{stop}");
        let tool = json!([{"type": "tool_use", "id": "t", "name": "f", "input": {}}]);
        assert_eq!(
            complete(&message(tool, stop))["choices"][0]["finish_reason"],
            finish,
            "{stop}"
        );
    }
}

#[test]
fn thinking_becomes_reasoning_content_and_the_signed_blocks_come_whole() {
    let out = complete(&message(
        json!([{"type": "thinking", "thinking": "hmm", "signature": "sig"},
               {"type": "redacted_thinking", "data": "xx"},
               {"type": "text", "text": "42"}]),
        "end_turn",
    ));
    let reply = &out["choices"][0]["message"];
    assert_eq!(
        (reply["content"].clone(), reply["reasoning_content"].clone()),
        (json!("42"), json!("hmm"))
    );
    assert_eq!(
        reply["thinking_blocks"],
        json!([{"type": "thinking", "thinking": "hmm", "signature": "sig"},
               {"type": "redacted_thinking", "data": "xx"}])
    );
}

/// A tool-calling turn with thinking on, as Anthropic streams it.
const THINKING_STREAM: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_T\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"UkVE\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Use the \"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"tool.\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"c2lnLTE=\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_7\",\"name\":\"f\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

fn signed_blocks() -> Value {
    json!([{"type": "redacted_thinking", "data": "UkVE"},
           {"type": "thinking", "thinking": "Use the tool.", "signature": "c2lnLTE="}])
}

#[test]
fn a_stream_gives_each_signed_block_whole_and_hands_the_turn_over() {
    let (out, result) = same_at_every_split(stream(true), THINKING_STREAM.as_bytes());
    result.unwrap();
    let blocks: Vec<Value> = events(&out)
        .iter()
        .filter_map(|(_, c)| c["choices"][0]["delta"].get("thinking_blocks").cloned())
        .flat_map(|b| b.as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(Value::Array(blocks), signed_blocks());
    let reasoning: String = events(&out)
        .iter()
        .filter_map(|(_, c)| {
            c["choices"][0]["delta"]["reasoning_content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(reasoning, "Use the tool.");

    // what the gateway keeps for a client that drops it: once, after the stop reason
    let mut t = StreamToChat::new("m", true, CREATED);
    let mut sink = Vec::new();
    let cut = THINKING_STREAM.find("event: message_delta").unwrap();
    t.push(&THINKING_STREAM.as_bytes()[..cut], &mut sink)
        .unwrap();
    assert_eq!(t.take_reasoning(), None, "not before the turn is complete");
    t.push(&THINKING_STREAM.as_bytes()[cut..], &mut sink)
        .unwrap();
    let kept = t.take_reasoning().unwrap();
    assert_eq!(kept.first_call, "toolu_7");
    assert_eq!(
        serde_json::from_str::<Value>(&kept.blocks).unwrap(),
        signed_blocks()
    );
    assert_eq!(t.take_reasoning(), None, "once");
}

#[test]
fn a_whole_answer_hands_its_turn_over_too() {
    let answer = message(
        json!([{"type": "thinking", "thinking": "Use the tool.", "signature": "c2lnLTE="},
               {"type": "tool_use", "id": "toolu_8", "name": "f", "input": {}}]),
        "tool_use",
    );
    let mut t = JsonToChat::new("m", CREATED);
    run(&mut t, &[answer.to_string().as_bytes()]).1.unwrap();
    let kept = t.take_reasoning().unwrap();
    assert_eq!(kept.first_call, "toolu_8");
    // a turn without tool calls has nothing to continue
    let mut t = JsonToChat::new("m", CREATED);
    let text = message(
        json!([{"type": "thinking", "thinking": "t", "signature": "s"}]),
        "end_turn",
    );
    run(&mut t, &[text.to_string().as_bytes()]).1.unwrap();
    assert_eq!(t.take_reasoning(), None);
}

#[test]
fn a_responses_client_gets_the_signed_blocks_sealed_in_its_reasoning_item() {
    use crate::providers::responses::client::reasoning::open;
    // streamed
    let (out, result) = same_at_every_split(
        || Box::new(StreamToChat::with_sink("m", true, CREATED, to_responses())),
        THINKING_STREAM.as_bytes(),
    );
    result.unwrap();
    let completed = events(&out)
        .into_iter()
        .find(|(name, _)| name.as_deref() == Some("response.completed"))
        .unwrap()
        .1;
    let item = &completed["response"]["output"][0];
    assert_eq!(item["type"], "reasoning");
    assert_eq!(item["content"][0]["text"], "Use the tool.");
    let sealed = item["encrypted_content"].as_str().unwrap();
    assert_eq!(Value::Array(open(sealed).unwrap()), signed_blocks());
    let done = events(&out)
        .into_iter()
        .find(|(name, d)| {
            name.as_deref() == Some("response.output_item.done") && d["item"]["type"] == "reasoning"
        })
        .unwrap()
        .1;
    assert_eq!(done["item"]["encrypted_content"], sealed);
    // whole
    let answer = message(
        json!([{"type": "redacted_thinking", "data": "UkVE"},
               {"type": "thinking", "thinking": "Use the tool.", "signature": "c2lnLTE="},
               {"type": "tool_use", "id": "toolu_8", "name": "f", "input": {}}]),
        "tool_use",
    );
    let mut t = JsonToChat::with_sink("m", CREATED, to_responses());
    let (out, result) = run(&mut t, &[answer.to_string().as_bytes()]);
    result.unwrap();
    let response: Value = serde_json::from_slice(&out).unwrap();
    let sealed = response["output"][0]["encrypted_content"].as_str().unwrap();
    assert_eq!(Value::Array(open(sealed).unwrap()), signed_blocks());
    // and the cache writes in the Responses usage, as in chat's
    assert_eq!(response["usage"]["cache_creation_input_tokens"], 100);
}

#[test]
fn the_json_output_tool_becomes_the_content() {
    let out = complete(&message(
        json!([{"type": "tool_use", "id": "t", "name": JSON_OUTPUT_TOOL, "input": {"a": 1}}]),
        "tool_use",
    ));
    assert_eq!(out["choices"][0]["message"]["content"], "{\"a\":1}");
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert!(out["choices"][0]["message"].get("tool_calls").is_none());
}

#[test]
fn usage_without_cache_fields_still_maps() {
    let mut m = message(json!([{"type": "text", "text": "x"}]), "end_turn");
    m["usage"] = json!({"input_tokens": 10, "output_tokens": 3});
    let usage = &complete(&m)["usage"];
    assert_eq!(usage["prompt_tokens"], 10);
    assert_eq!(usage["total_tokens"], 13);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
}

#[test]
fn created_is_now() {
    let mut t = to_chat(false, "m", OpenAiWriter);
    let (out, result) = run(
        t.as_mut(),
        &[message(json!([]), "end_turn").to_string().as_bytes()],
    );
    result.unwrap();
    let created = serde_json::from_slice::<Value>(&out).unwrap()["created"]
        .as_u64()
        .unwrap();
    let now = crate::clock::unix_secs();
    assert!(now.abs_diff(created) < 60, "{created} vs {now}");
}

#[test]
fn an_error_body_or_garbage_fails_the_whole_answer() {
    let mut t = to_chat(false, "m", OpenAiWriter);
    let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let (_, result) = run(t.as_mut(), &[body]);
    let e = result.unwrap_err();
    assert_eq!((e.status(), e.message.as_str()), (503, "Overloaded"));
    let (_, result) = run(to_chat(false, "m", OpenAiWriter).as_mut(), &[b"{\"id\":"]);
    assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
}

// ---- B2 ----

/// A recorded-shape Anthropic stream: text (with multi-byte characters, so splits fall inside
/// them), a ping, a tool_use with input_json_delta fragments (the first one empty), then
/// message_delta with the stop reason and cumulative usage.
const ANTHROPIC_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check "}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Paris — ☀️?"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Par"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

fn chunk(delta: Value, finish: Value) -> (Option<String>, Value) {
    let data = json!({
        "id": "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL", "object": "chat.completion.chunk",
        "created": CREATED, "model": "claude-alias",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    });
    (None, data)
}

fn stream(include_usage: bool) -> impl Fn() -> Box<dyn ResponseTranslator> {
    move || Box::new(StreamToChat::new("claude-alias", include_usage, CREATED))
}

fn expected_stream() -> Vec<(Option<String>, Value)> {
    vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Let me check "}), Value::Null),
        chunk(json!({"content": "Paris — ☀️?"}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                                   "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": \"Par"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "is\"}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
    ]
}

#[test]
fn the_stream_translates_identically_at_every_chunk_border() {
    let (out, result) = same_at_every_split(stream(true), ANTHROPIC_STREAM.as_bytes());
    result.unwrap();
    let mut expected = expected_stream();
    expected.push((
        None,
        json!({"id": "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL", "object": "chat.completion.chunk",
               "created": CREATED, "model": "claude-alias", "choices": [],
               "usage": {"prompt_tokens": 2572, "completion_tokens": 89, "total_tokens": 2661,
                         "prompt_tokens_details": {"cached_tokens": 2000}, "cache_creation_input_tokens": 100}}),
    ));
    expected.push((None, json!("[DONE]")));
    assert_eq!(events(&out), expected);
    assert!(out.ends_with(b"data: [DONE]\n\n"));
}

#[test]
fn the_usage_chunk_is_only_sent_when_asked_for() {
    let (out, result) = same_at_every_split(stream(false), ANTHROPIC_STREAM.as_bytes());
    result.unwrap();
    let mut expected = expected_stream();
    expected.push((None, json!("[DONE]")));
    assert_eq!(events(&out), expected);
}

#[test]
fn tool_calls_are_numbered_in_order_not_by_block_index() {
    let input = r#"event: message_start
data: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":1,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"plan"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"a","name":"f","input":{}}}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"b","name":"g","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}

"#;
    let mut t = StreamToChat::new("m", false, CREATED);
    let (out, result) = run(&mut t, &[input.as_bytes()]);
    assert_eq!(
        result.unwrap_err().kind,
        ErrorKind::UpstreamProtocol,
        "cut before the stop reason"
    );
    let deltas: Vec<Value> = events(&out)
        .into_iter()
        .map(|(_, v)| v["choices"][0]["delta"].clone())
        .collect();
    assert_eq!(deltas[1], json!({"reasoning_content": "plan"}));
    assert_eq!(deltas[2]["tool_calls"][0]["index"], 0);
    assert_eq!(deltas[3]["tool_calls"][0]["index"], 1);
    assert_eq!(
        deltas[4],
        json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]})
    );
    assert_eq!(deltas.len(), 5, "no finish reason or [DONE] is invented");
}

#[test]
fn the_json_output_tool_streams_as_content() {
    let input = format!(
        "{}{}{}{}",
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"",
        JSON_OUTPUT_TOOL,
        "\",\"input\":{}}}\n\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":1}\"}}\n\n\
         data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":5}}\n\n",
    );
    let mut t = StreamToChat::new("m", false, CREATED);
    // message_stop never came, but the stop reason did: the stream is completed.
    let (out, result) = run(&mut t, &[input.as_bytes()]);
    result.unwrap();
    let got = events(&out);
    assert_eq!(
        got[1].1["choices"][0]["delta"],
        json!({"content": "{\"a\":1}"})
    );
    assert_eq!(got[2].1["choices"][0]["finish_reason"], "stop");
    assert_eq!(got[3].1, json!("[DONE]"));
}

#[test]
fn an_error_event_mid_stream_becomes_an_openai_error_event_and_ends_it() {
    let input = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\n\
                 event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n\
                 event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let (out, result) = same_at_every_split(stream(true), input.as_bytes());
    result.unwrap();
    let got = events(&out);
    assert_eq!(got.len(), 2, "nothing after the error");
    assert_eq!(
        got[1].1,
        json!({"error": {"message": "Overloaded", "type": "server_error", "param": null, "code": "server_is_overloaded"}})
    );
}

#[test]
fn an_empty_or_garbled_stream_fails() {
    let (out, result) = run(to_chat(true, "m", OpenAiWriter).as_mut(), &[b""]);
    assert!(out.is_empty());
    assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
    let (_, result) = run(
        to_chat(true, "m", OpenAiWriter).as_mut(),
        &[b"data: {oops\n\n"],
    );
    assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
}

// ---- typed chains: Anthropic → chat values → a Responses client ----

fn to_responses() -> ToResponses {
    ToResponses::new("client", Echo::default())
}

#[test]
fn a_stream_reaches_a_responses_client_as_the_byte_chain_took_it() {
    let mid_stream_error = ANTHROPIC_STREAM.replace(
        "event: message_delta",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\nevent: message_delta",
    );
    let cut = &ANTHROPIC_STREAM[..ANTHROPIC_STREAM.find("event: message_delta").unwrap()];
    for input in [ANTHROPIC_STREAM, &mid_stream_error, cut] {
        let out = typed_chain_matches_bytes(
            || Box::new(StreamToChat::with_sink("m", true, CREATED, to_responses())),
            Box::new(StreamToChat::new("m", true, CREATED)),
            from_chat(true, "client", Echo::default()),
            input.as_bytes(),
        );
        assert!(!events(&out).is_empty(), "{input}");
    }
}

#[test]
fn a_whole_answer_reaches_a_responses_client_as_the_byte_chain_took_it() {
    let answer = message(
        json!([{"type": "thinking", "thinking": "hmm", "signature": "sig"},
               {"type": "text", "text": "Checking."},
               {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}]),
        "tool_use",
    )
    .to_string();
    let out = typed_chain_matches_bytes(
        || Box::new(JsonToChat::with_sink("m", CREATED, to_responses())),
        Box::new(JsonToChat::new("m", CREATED)),
        from_chat(false, "client", Echo::default()),
        answer.as_bytes(),
    );
    let response: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(response["output"][2]["call_id"], "toolu_01A");
    assert_eq!(response["usage"]["input_tokens"], 2572);
}
