//! The Responses route: JSON, the event stream, the tool-call and token rules, validation.

use http::HeaderMap;
use serde_json::{json, Value};

use super::*;
use crate::faults::Faults;
use crate::recorder::Recorder;
use crate::{route, ReplyBody, Request};

/// One whole SSE event's `event:` name and `data:` text.
fn parse_event(event: &[u8]) -> (Option<String>, String) {
    let text = String::from_utf8_lossy(event);
    let mut name = None;
    let mut data = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.trim_start().to_string());
        }
    }
    (name, data.join("\n"))
}

fn req(extra: Value) -> Value {
    let mut v = json!({"model": "gpt-test", "instructions": "be brief", "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "use metric"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "hi there you"},
                                     {"type": "input_image", "image_url": "x"}]}]});
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        obj.extend(more.clone());
    }
    v
}

fn tools() -> Value {
    json!([{"type": "web_search"},
           {"type": "namespace", "name": "geo", "tools": [
               {"type": "function", "name": "get_weather", "parameters": {"type": "object",
                "properties": {"unit": {"type": "string", "enum": ["c", "f"]},
                               "city": {"type": "string"}}, "required": ["city"]}}]},
           {"type": "function", "name": "other", "parameters": {}}])
}

fn json_body(reply: &Reply) -> Value {
    match &reply.body {
        ReplyBody::Full { bytes, .. } => serde_json::from_slice(bytes).unwrap(),
        ReplyBody::Stream { .. } => panic!("expected a JSON body"),
    }
}

/// The stream's events as (event name, data), and the raw events.
fn stream_events(reply: &Reply) -> (Vec<(String, Value)>, Vec<Bytes>) {
    let (content_type, events, error) = reply.stream_parts();
    assert_eq!(content_type, "text/event-stream");
    let mut events_out: Vec<(String, Value)> = events
        .iter()
        .map(|e| {
            let (name, data) = parse_event(e);
            (
                name.unwrap_or_default(),
                serde_json::from_str(&data).unwrap(),
            )
        })
        .collect();
    // The error event stands in for event n and carries its number.
    let (name, data) = parse_event(&error(3));
    let failure: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(name.as_deref(), Some("error"));
    assert_eq!(
        (
            failure["code"].as_str(),
            failure["sequence_number"].as_u64()
        ),
        (Some("server_error"), Some(3))
    );
    events_out
        .iter_mut()
        .for_each(|(name, data)| assert_eq!(Some(name.as_str()), data["type"].as_str()));
    (events_out, events.to_vec())
}

#[test]
fn json_answer_is_a_completed_response_with_the_chat_numbers() {
    let reply = responses_reply(&req(json!({})), 5, &StoredResponses::default());
    assert_eq!(reply.status, 200);
    let v = json_body(&reply);
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(
        (v["object"].as_str(), v["status"].as_str()),
        (Some("response"), Some("completed"))
    );
    assert_eq!(v["model"], "gpt-test");
    let item = &v["output"][0];
    assert!(item["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(
        (item["type"].as_str(), item["role"].as_str()),
        (Some("message"), Some("assistant"))
    );
    assert_eq!(
        item["content"],
        json!([{"type": "output_text", "text": "Hello world1 world2 world3 world4",
                "annotations": [], "logprobs": []}])
    );
    // system (instructions + developer: 3 + 4 words) + user (3 + 3 words).
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 13, "input_tokens_details": {"cached_tokens": 0},
               "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
               "total_tokens": 18})
    );
    let ReplyBody::Full { bytes, .. } = &reply.body else {
        panic!()
    };
    assert!(
        bytes.starts_with(b"{\"id\":\"resp_"),
        "keys in the real API's order"
    );
}

#[test]
fn input_tokens_follow_the_translated_chat_request() {
    let tokens = |input: Value| {
        let v = json_body(&responses_reply(
            &json!({"model": "m", "input": input}),
            1,
            &StoredResponses::default(),
        ));
        v["usage"]["input_tokens"].as_u64().unwrap()
    };
    assert_eq!(tokens(json!("one two three")), 6);
    // An assistant run (text + two calls, a reasoning item between) is one message; each
    // tool result is one; the user message is one.
    let history = json!([
        {"role": "user", "content": "weather please"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking now."}]},
        {"type": "reasoning", "summary": []},
        {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "b", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "a", "output": "sunny and warm"},
        {"type": "function_call_output", "call_id": "b", "output": [{"type": "input_text", "text": "rain"}]},
    ]);
    assert_eq!(tokens(history), (3 + 2) + (3 + 2) + (3 + 3) + (3 + 1));
}

#[test]
fn a_tool_call_goes_to_the_first_function_with_its_namespace() {
    let v = json_body(&responses_reply(
        &req(json!({"tools": tools()})),
        5,
        &StoredResponses::default(),
    ));
    let call = &v["output"][0];
    assert_eq!(call["type"], "function_call");
    assert!(call["id"].as_str().unwrap().starts_with("fc_"));
    assert!(call["call_id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(
        (call["namespace"].as_str(), call["name"].as_str()),
        (Some("geo"), Some("get_weather"))
    );
    assert_eq!(call["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(call["status"], "completed");
    assert_eq!(v["usage"]["output_tokens"], 5);
    // A forced function wins; a top-level one carries no namespace.
    let r = req(json!({"tools": tools(), "tool_choice": {"type": "function", "name": "other"}}));
    let call = &json_body(&responses_reply(&r, 5, &StoredResponses::default()))["output"][0];
    assert_eq!(call["name"], "other");
    assert!(call.get("namespace").is_none());
    assert_eq!(call["arguments"], "{}");
    // An unknown forced name falls back to the first function, as in chat.
    let r = req(json!({"tools": tools(), "tool_choice": {"type": "function", "name": "nope"}}));
    assert_eq!(
        json_body(&responses_reply(&r, 5, &StoredResponses::default()))["output"][0]["name"],
        "get_weather"
    );
}

#[test]
fn text_after_a_tool_result_or_with_tool_choice_none() {
    let mut r = req(json!({"tools": tools()}));
    r["input"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "function_call_output", "call_id": "a", "output": "done"}));
    let v = json_body(&responses_reply(&r, 2, &StoredResponses::default()));
    assert_eq!(v["output"][0]["content"][0]["text"], "Hello world1");
    // Unless a call is forced.
    r["tool_choice"] = json!("required");
    assert_eq!(
        json_body(&responses_reply(&r, 2, &StoredResponses::default()))["output"][0]["type"],
        "function_call"
    );
    let r = req(json!({"tools": tools(), "tool_choice": "none"}));
    assert_eq!(
        json_body(&responses_reply(&r, 1, &StoredResponses::default()))["output"][0]["type"],
        "message"
    );
    let r = req(json!({"tools": [{"type": "web_search"}]}));
    assert_eq!(
        json_body(&responses_reply(&r, 1, &StoredResponses::default()))["output"][0]["type"],
        "message"
    );
}

#[test]
fn a_text_stream_has_the_typed_event_sequence() {
    let reply = responses_reply(
        &req(json!({"stream": true})),
        3,
        &StoredResponses::default(),
    );
    let (events, raw) = stream_events(&reply);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
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
    assert_eq!(raw.len(), 3 + 8, "one write per event");
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64);
    }
    assert_eq!(events[0].1["response"]["status"], "in_progress");
    assert_eq!(events[0].1["response"]["usage"], Value::Null);
    let item_id = events[2].1["item"]["id"].as_str().unwrap().to_string();
    assert_eq!(events[2].1["item"]["status"], "in_progress");
    assert_eq!(
        events[5].1,
        json!({"type": "response.output_text.delta", "item_id": item_id, "output_index": 0,
               "content_index": 0, "delta": " world1", "logprobs": [], "sequence_number": 5})
    );
    assert_eq!(events[7].1["text"], "Hello world1 world2");
    assert_eq!(events[8].1["part"]["text"], "Hello world1 world2");
    let completed = &events[10].1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"][0], events[9].1["item"]);
    assert_eq!(completed["usage"]["output_tokens"], 3);
    assert!(raw[0].starts_with(b"event: response.created\ndata: {\"type\":\"response.created\""));
}

#[test]
fn a_tool_call_stream_streams_the_argument_fragments() {
    let reply = responses_reply(
        &req(json!({"stream": true, "tools": tools()})),
        4,
        &StoredResponses::default(),
    );
    let (events, _) = stream_events(&reply);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 4 + 6);
    assert_eq!(names[3], "response.function_call_arguments.delta");
    assert_eq!(names[7], "response.function_call_arguments.done");
    let added = &events[2].1["item"];
    assert_eq!(
        (added["arguments"].as_str(), added["namespace"].as_str()),
        (Some(""), Some("geo"))
    );
    let args: String = events[3..7]
        .iter()
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(args, "{\"city\":\"Paris\"}");
    assert_eq!(events[7].1["name"], "get_weather");
    assert_eq!(events[7].1["arguments"], "{\"city\":\"Paris\"}");
    let completed = &events[9].1["response"];
    assert_eq!(completed["output"][0]["call_id"], added["call_id"]);
    assert_eq!(completed["usage"]["output_tokens"], 4);
}

#[test]
fn bad_requests_are_400_with_param() {
    let cases = [
        (json!({"input": "x"}), "model"),
        (json!({"model": "m"}), "input"),
        (json!({"model": "m", "input": 3}), "input"),
        (
            json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (json!([1]), "body"),
    ];
    for (body, param) in cases {
        let reply = responses_reply(&body, 5, &StoredResponses::default());
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(json_body(&reply)["error"]["param"], param);
    }
}

#[test]
fn the_router_serves_responses_under_any_prefix() {
    let headers = HeaderMap::new();
    for path in ["/v1/responses", "/openai/v1/responses", "/responses"] {
        let body = json!({"model": "m", "input": "hi"}).to_string();
        let request = Request {
            method: "POST",
            path,
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let reply = route(
            &request,
            &Faults::default(),
            &Recorder::default(),
            &StoredResponses::default(),
            &crate::anthropic::PromptCache::default(),
            &crate::sts::Aws::default(),
            &crate::vertex::Auth::default(),
        );
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(json_body(&reply)["object"], "response");
        let request = Request {
            method: "GET",
            ..request
        };
        let reply = route(
            &request,
            &Faults::default(),
            &Recorder::default(),
            &StoredResponses::default(),
            &crate::anthropic::PromptCache::default(),
            &crate::sts::Aws::default(),
            &crate::vertex::Auth::default(),
        );
        assert_eq!(reply.status, 405, "{path}");
    }
}
