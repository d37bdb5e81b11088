//! Responses API request → OpenAI chat request (`responses::client::request::to_chat`) on
//! arbitrary bytes; an accepted request then goes on to Anthropic and to Gemini, as for a
//! Responses client (Codex) on a model those providers serve.
//!
//! Invariants: no panic; an accepted body gives a chat request whose body is a JSON object
//! whose `model` is the upstream model; the Anthropic and Gemini bodies built from it, when
//! accepted, are JSON objects.
#![no_main]

use cheapai_gateway::providers::{anthropic, gemini, responses};
use cheapai_gateway_fuzz::assert_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let model = "gpt-5-codex";
    let Ok((chat, _echo)) = responses::client::request::to_chat(data, model) else {
        return;
    };
    let out = match chat.to_bytes() {
        Ok(out) => out,
        Err(e) => panic!("to_chat: the chat request does not serialize: {e}"),
    };
    let v = assert_json("responses::client::request::to_chat", &out);
    assert!(v.is_object(), "to_chat: not an object");
    assert_eq!(v["model"], model, "to_chat: model");
    if let Ok(anthropic) = anthropic::upstream::request::from_chat(
        &chat,
        "claude-sonnet-4-5",
        anthropic::upstream::cache::PromptCache::Auto,
    ) {
        let a = assert_json("responses → chat → anthropic", &anthropic);
        assert!(a.is_object(), "anthropic from_chat: not an object");
    }
    if let Ok((gemini, _stream)) = gemini::upstream::request::from_chat(&chat) {
        let g = assert_json("responses → chat → gemini", &gemini);
        assert!(g.is_object(), "gemini from_chat: not an object");
    }
});
