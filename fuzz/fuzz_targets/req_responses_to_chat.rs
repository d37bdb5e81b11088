//! Responses API request → OpenAI chat request (`responses::to_chat_request`) on arbitrary
//! bytes; an accepted body then goes on to Anthropic and to Gemini, as for a Responses client
//! (Codex) on a model those providers serve.
//!
//! Invariants: no panic; an accepted body gives a JSON object whose `model` is the upstream
//! model; the Anthropic and Gemini bodies built from it, when accepted, are JSON objects.
#![no_main]

use cheapai_gateway::providers::anthropic::to_anthropic_request;
use cheapai_gateway::providers::gemini::to_gemini_request;
use cheapai_gateway::providers::responses::to_chat_request;
use cheapai_gateway_fuzz::assert_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let model = "gpt-5-codex";
    let Ok((chat, _echo)) = to_chat_request(data, model) else {
        return;
    };
    let v = assert_json("to_chat_request", &chat);
    assert!(v.is_object(), "to_chat_request: not an object");
    assert_eq!(v["model"], model, "to_chat_request: model");
    if let Ok(anthropic) = to_anthropic_request(&chat, "claude-sonnet-4-5") {
        let a = assert_json("to_chat_request → to_anthropic_request", &anthropic);
        assert!(a.is_object(), "to_anthropic_request: not an object");
    }
    if let Ok((gemini, _stream)) = to_gemini_request(&chat) {
        let g = assert_json("to_chat_request → to_gemini_request", &gemini);
        assert!(g.is_object(), "to_gemini_request: not an object");
    }
});
