//! The emulator and the gateway's translation agree: a Responses request answered natively by
//! the emulator and the chat request the gateway translates it into, answered by the same
//! emulator, get the same token counts and the same tool call. So a test that compares a
//! translated answer with a native one compares the translation, not two emulator rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};

/// What the emulator answers to `body` on `path`, as JSON.
fn ask(gw: &Gateway, path: &str, body: &Value) -> Value {
    let answer = ureq::post(&format!("{}{path}", gw.emu_url)).send_string(&body.to_string());
    let text = match answer {
        Ok(r) => r.into_string().unwrap(),
        Err(e) => panic!("{path}: {e}"),
    };
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_responses_request_and_its_chat_translation_get_the_same_numbers() {
    let gw = Gateway::start();
    let fixture: Value =
        serde_json::from_slice(include_bytes!("fixtures/codex/first-request.json")).unwrap();
    // Codex's own tools: functions, a namespace of functions and a hosted tool
    let tools = fixture["tools"].clone();
    let simple = json!({"model": "gpt-test", "instructions": "be brief", "tools": tools, "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "use metric"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "hi there you"},
                                     {"type": "input_image", "image_url": "x"}]}]});
    let history = json!({"model": "m", "instructions": "sys", "tools": fixture["tools"], "input": [
        {"role": "user", "content": "weather please"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "On it."}]},
        {"type": "function_call", "call_id": "a", "name": "wait_agent", "namespace": "multi_agent_v1", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "a", "output": "sunny and warm"},
    ]});
    for request in [fixture, simple, history] {
        let mut whole = request.clone();
        whole["stream"] = false.into();
        let native = ask(&gw, "/v1/responses", &whole);
        let (chat, _) = cheapai_gateway::providers::responses::client::request::to_chat(
            request.to_string().as_bytes(),
            "m",
        )
        .unwrap();
        let mut chat: Value = serde_json::to_value(&chat).unwrap();
        chat["stream"] = false.into();
        chat.as_object_mut().unwrap().remove("stream_options");
        let translated = ask(&gw, "/v1/chat/completions", &chat);
        assert_eq!(
            native["usage"]["input_tokens"], translated["usage"]["prompt_tokens"],
            "{}",
            request["input"]
        );
        assert_eq!(
            native["usage"]["output_tokens"],
            translated["usage"]["completion_tokens"]
        );
        let call = &native["output"][0];
        let chat_call = &translated["choices"][0]["message"]["tool_calls"][0]["function"];
        if call["type"] == "function_call" {
            let flat = match call["namespace"].as_str() {
                Some(ns) => cheapai_gateway::providers::responses::client::flat_name(
                    ns,
                    call["name"].as_str().unwrap(),
                ),
                None => call["name"].as_str().unwrap().to_string(),
            };
            assert_eq!(chat_call["name"], flat.as_str());
            assert_eq!(chat_call["arguments"], call["arguments"]);
        } else {
            assert!(chat_call.is_null());
        }
    }
}
