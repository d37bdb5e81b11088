//! The Messages answers: JSON, tool use, the event stream, zero chunks, the cache split.

use super::super::tests::body;
use super::*;
use crate::ReplyBody;
use serde_json::json;

fn req(extra: Value) -> Value {
    let mut v = json!({"model": "claude-test", "max_tokens": 100, "system": "be brief",
        "messages": [{"role": "user", "content": "hi there you"}]});
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    v
}

fn weather_tools() -> Value {
    json!([{"name": "get_weather", "input_schema": {"type": "object",
        "properties": {"unit": {"type": "string", "enum": ["c", "f"]},
                       "city": {"type": "string"}},
        "required": ["city"]}},
           {"name": "other", "input_schema": {"type": "object"}}])
}

/// Parses a stream into (event name, data) pairs, checking the framing.
fn events(reply: &Reply) -> Vec<(String, Value)> {
    let (content_type, events, _) = reply.stream_parts();
    assert_eq!(content_type, "text/event-stream");
    events
        .iter()
        .map(|e| {
            let text = std::str::from_utf8(e).unwrap();
            let body = text.strip_suffix("\n\n").unwrap();
            let (name, data) = body.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name, "type equals the event name");
            (name.to_string(), data)
        })
        .collect()
}

#[test]
fn json_text_answer() {
    let reply = messages_reply(&req(json!({})), 5, CacheUse::default(), false);
    assert_eq!(reply.status, 200);
    let v = body(&reply);
    assert!(v["id"].as_str().unwrap().starts_with("msg_01"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-test");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Hello world1 world2 world3 world4"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["stop_sequence"].is_null() && v.get("stop_sequence").is_some());
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 11, "output_tokens": 5, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "cache_creation": {"ephemeral_5m_input_tokens": 0,
            "ephemeral_1h_input_tokens": 0}, "service_tier": "standard"})
    );
    let ReplyBody::Full { bytes, .. } = &reply.body else {
        panic!()
    };
    assert!(
        bytes.starts_with(b"{\"id\":\"msg_01"),
        "keys in the API's order"
    );
}

#[test]
fn cache_use_splits_the_prompt() {
    // P = (3 + 2) + (3 + 3) = 11, of it 2 read and 3 written (1 for an hour) → input 6
    let cache = CacheUse {
        read: 2,
        written_5m: 2,
        written_1h: 1,
    };
    let v = body(&messages_reply(&req(json!({})), 1, cache, false));
    assert_eq!(v["usage"]["cache_read_input_tokens"], 2);
    assert_eq!(v["usage"]["cache_creation_input_tokens"], 3);
    assert_eq!(
        v["usage"]["cache_creation"],
        json!({"ephemeral_5m_input_tokens": 2, "ephemeral_1h_input_tokens": 1})
    );
    assert_eq!(v["usage"]["input_tokens"], 6);
    let ev = events(&messages_reply(
        &req(json!({"stream": true})),
        1,
        cache,
        false,
    ));
    let usage = &ev[0].1["message"]["usage"];
    assert_eq!(
        *usage,
        json!({"input_tokens": 6, "output_tokens": 1, "cache_creation_input_tokens": 3,
            "cache_read_input_tokens": 2})
    );
}

#[test]
fn json_tool_use() {
    let v = body(&messages_reply(
        &req(json!({"tools": weather_tools()})),
        5,
        CacheUse::default(),
        false,
    ));
    assert_eq!(v["stop_reason"], "tool_use");
    let block = &v["content"][0];
    assert_eq!(v["content"].as_array().unwrap().len(), 1);
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_01"));
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({"city": "Paris"}));
    assert_eq!(v["usage"]["output_tokens"], 5);
    let forced =
        json!({"tools": weather_tools(), "tool_choice": {"type": "tool", "name": "other"}});
    let v = body(&messages_reply(&req(forced), 5, CacheUse::default(), false));
    assert_eq!(v["content"][0]["name"], "other");
    assert_eq!(v["content"][0]["input"], json!({}));
    assert_eq!(v["usage"]["output_tokens"], 2, "K = chars of \"{{}}\"");
    let none = json!({"tools": weather_tools(), "tool_choice": {"type": "none"}});
    let v = body(&messages_reply(&req(none), 1, CacheUse::default(), false));
    assert_eq!(v["content"], json!([{"type": "text", "text": "Hello"}]));
}

#[test]
fn text_stream_event_sequence() {
    let ev = events(&messages_reply(
        &req(json!({"stream": true})),
        3,
        CacheUse::default(),
        false,
    ));
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &ev[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_01"));
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["model"], "claude-test");
    assert!(start["stop_reason"].is_null() && start.get("stop_reason").is_some());
    assert_eq!(start["usage"]["input_tokens"], 11);
    assert_eq!(start["usage"]["output_tokens"], 1);
    assert_eq!(
        ev[1].1,
        json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}})
    );
    let text: String = ev[3..6]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["index"], 0);
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, "Hello world1 world2");
    assert_eq!(ev[6].1, json!({"type": "content_block_stop", "index": 0}));
    assert_eq!(
        ev[7].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn",
            "stop_sequence": null}, "usage": {"output_tokens": 3}})
    );
    assert_eq!(ev[8].1, json!({"type": "message_stop"}));
}

#[test]
fn tool_stream_input_json_deltas_concatenate_to_the_input() {
    let r = req(json!({"stream": true, "tools": weather_tools(),
        "tool_choice": {"type": "any"}}));
    let ev = events(&messages_reply(&r, 4, CacheUse::default(), false));
    assert_eq!(ev.len(), 4 + 7);
    let block = &ev[1].1["content_block"];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_01"));
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({}));
    assert_eq!(ev[2].0, "ping");
    let fragments: Vec<&str> = ev[3..8]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert_eq!(fragments[0], "", "first fragment is empty");
    let input: Value = serde_json::from_str(&fragments.concat()).unwrap();
    assert_eq!(input, json!({"city": "Paris"}));
    assert_eq!(ev[9].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(ev[9].1["usage"]["output_tokens"], 4);
}

#[test]
fn zero_chunks() {
    let v = body(&messages_reply(
        &req(json!({})),
        0,
        CacheUse::default(),
        false,
    ));
    assert_eq!(v["content"], json!([{"type": "text", "text": ""}]));
    let ev = events(&messages_reply(
        &req(json!({"stream": true})),
        0,
        CacheUse::default(),
        false,
    ));
    assert_eq!(ev.len(), 6);
    assert_eq!(ev[4].1["usage"]["output_tokens"], 0);
}
