//! Chat completion JSON → Responses object.

use serde_json::{json, Value};

use super::from_chat;
use crate::error::ErrorKind;
use crate::providers::responses::client::request::to_chat;
use crate::providers::responses::client::tests::run;
use crate::providers::responses::client::Echo;

fn response(completion: &Value, echo: Echo) -> Value {
    let mut t = from_chat(false, "client-model", echo);
    let (out, result) = run(t.as_mut(), &[completion.to_string().as_bytes()]);
    result.unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn completion(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1700000000, "model": "up",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160,
                  "prompt_tokens_details": {"cached_tokens": 64},
                  "completion_tokens_details": {"reasoning_tokens": 8}},
    })
}

#[test]
fn a_completion_with_reasoning_text_and_calls_becomes_a_response() {
    let out = response(
        &completion(
            json!({"role": "assistant", "reasoning_content": "think", "content": "Checking.",
                   "tool_calls": [{"id": "call_1", "type": "function",
                                   "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}),
            "tool_calls",
        ),
        Echo::default(),
    );
    assert_eq!(
        out,
        json!({
            "id": "resp_chatcmpl-abc", "object": "response", "created_at": 1700000000,
            "status": "completed", "error": null, "incomplete_details": null,
            "instructions": null, "model": "client-model",
            "output": [
                {"id": "rs_chatcmpl-abc", "type": "reasoning", "summary": [],
                 "content": [{"type": "reasoning_text", "text": "think"}]},
                {"id": "msg_chatcmpl-abc", "type": "message", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}]},
                {"id": "fc_call_1", "type": "function_call", "status": "completed",
                 "arguments": "{\"city\":\"Paris\"}", "call_id": "call_1", "name": "get_weather"},
            ],
            "previous_response_id": null, "store": false, "tools": [],
            "usage": {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 64},
                      "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 8},
                      "total_tokens": 160},
            "tool_choice": "auto", "parallel_tool_calls": true, "temperature": null, "top_p": null,
            "max_output_tokens": null, "metadata": {},
            "reasoning": {"effort": null, "summary": null}, "text": {"format": {"type": "text"}},
            "truncation": "disabled", "user": null,
        })
    );
}

#[test]
fn a_stored_response_says_so_with_a_fresh_id_and_the_response_it_continues() {
    let answer = completion(json!({"content": "Hi"}), "stop");
    let echo = || {
        Echo::default()
            .stored()
            .continuing(Some("resp_before".into()))
    };
    let (first, second) = (response(&answer, echo()), response(&answer, echo()));
    assert_eq!(first["store"], true);
    assert_eq!(first["previous_response_id"], "resp_before");
    let id = first["id"].as_str().unwrap();
    assert!(id.starts_with("resp_") && id != "resp_chatcmpl-abc", "{id}");
    assert_ne!(
        first["id"], second["id"],
        "the same upstream answer twice is two responses"
    );
    let first_turn = response(&answer, Echo::default().stored());
    assert_eq!(first_turn["previous_response_id"], Value::Null);
}

#[test]
fn an_unstored_continuation_still_names_the_response_it_continues() {
    let answer = completion(json!({"content": "Hi"}), "stop");
    let out = response(
        &answer,
        Echo::default().continuing(Some("resp_before".into())),
    );
    assert_eq!(out["store"], false);
    assert_eq!(out["previous_response_id"], "resp_before");
    assert_eq!(out["id"], "resp_chatcmpl-abc");
}

#[test]
fn a_cut_answer_is_incomplete_with_its_reason() {
    let out = response(
        &completion(json!({"content": "Hel"}), "length"),
        Echo::default(),
    );
    assert_eq!(out["status"], "incomplete");
    assert_eq!(
        out["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    let out = response(
        &completion(json!({"content": "x"}), "content_filter"),
        Echo::default(),
    );
    assert_eq!(out["incomplete_details"]["reason"], "content_filter");
    for finish in ["stop", "tool_calls", "function_call", "weird"] {
        let out = response(
            &completion(json!({"content": "x"}), finish),
            Echo::default(),
        );
        assert_eq!(out["status"], "completed", "{finish}");
    }
}

#[test]
fn the_request_settings_are_echoed() {
    let request = json!({"model": "m", "input": "x", "temperature": 0.3, "max_output_tokens": 99,
                         "metadata": {"a": "b"}, "tool_choice": "none", "user": "u",
                         "reasoning": {"effort": "low"}, "text": {"verbosity": "low"}});
    let (_, echo) = to_chat(request.to_string().as_bytes(), "up").unwrap();
    let out = response(&completion(json!({"content": "x"}), "stop"), echo);
    assert_eq!(out["temperature"], 0.3);
    assert_eq!(out["max_output_tokens"], 99);
    assert_eq!(out["metadata"], json!({"a": "b"}));
    assert_eq!(out["tool_choice"], "none");
    assert_eq!(out["user"], "u");
    assert_eq!(out["reasoning"], json!({"effort": "low"}));
    assert_eq!(out["text"], json!({"verbosity": "low"}));
    assert_eq!(out["top_p"], Value::Null);
}

#[test]
fn missing_pieces_get_defaults() {
    // No usage, no id, a refusal, a call without id or arguments.
    let out = response(
        &json!({"choices": [{"message": {"content": null, "refusal": "I can't.",
            "tool_calls": [{"type": "function", "function": {"name": "f"}}]}}]}),
        Echo::default(),
    );
    assert!(out["id"].as_str().unwrap().starts_with("resp_"));
    assert!(out["created_at"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(out["usage"], Value::Null);
    assert_eq!(out["output"][0]["content"][0]["text"], "I can't.");
    let call = &out["output"][1];
    assert!(call["call_id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["arguments"], "");
    let out = response(&json!({"id": "x", "choices": []}), Echo::default());
    assert_eq!(out["output"], json!([]));
    // Usage without total or details still gives every Responses field.
    let out = response(
        &json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
        Echo::default(),
    );
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 2,
               "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 5})
    );
}

#[test]
fn an_error_body_or_garbage_fails() {
    let mut t = from_chat(false, "m", Echo::default());
    let body = json!({"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}});
    let (out, result) = run(t.as_mut(), &[body.to_string().as_bytes()]);
    assert!(out.is_empty());
    let e = result.unwrap_err();
    assert_eq!((e.status(), e.message.as_str()), (429, "slow down"));
    let mut t = from_chat(false, "m", Echo::default());
    let (_, result) = run(t.as_mut(), &[b"{\"choices\":[", b""]);
    assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
}

#[test]
fn the_body_may_arrive_in_pieces() {
    let body = completion(json!({"content": "Hello"}), "stop").to_string();
    let (a, b) = body.as_bytes().split_at(17);
    let mut t = from_chat(false, "m", Echo::default());
    let mut out = Vec::new();
    t.push(a, &mut out).unwrap();
    assert!(out.is_empty(), "nothing before the end");
    let (out, result) = run(t.as_mut(), &[b]);
    result.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["output"][0]["content"][0]["text"], "Hello");
}

#[test]
fn huge_usage_counts_saturate_instead_of_overflowing() {
    // fuzz crash: "attempt to add with overflow" on the total
    let completion = json!({
        "choices": [],
        "usage": {"prompt_tokens": u64::MAX, "completion_tokens": 1},
    });
    let r = response(&completion, Echo::default());
    assert_eq!(r["usage"]["total_tokens"], u64::MAX);
}
