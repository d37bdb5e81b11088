//! Anthropic Messages request → OpenAI chat request (`anthropic::client::request::to_chat`) on
//! arbitrary bytes, for a chat model and an OpenAI reasoning model (thinking is mapped only
//! for the latter); an accepted request then goes on to Gemini
//! (`gemini::upstream::request::from_chat`), as for an Anthropic client on a Gemini model.
//!
//! Invariants: no panic; an accepted body gives a chat request whose body is a JSON object
//! whose `model` is the upstream model; the Gemini body built from it, when accepted, is a
//! JSON object.
#![no_main]

use cheapai_gateway::providers::{anthropic, gemini};
use cheapai_gateway_fuzz::assert_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for model in ["gpt-4o", "openai/o3-mini"] {
        let Ok(chat) = anthropic::client::request::to_chat(data, model) else {
            continue;
        };
        let out = match chat.to_bytes() {
            Ok(out) => out,
            Err(e) => panic!("to_chat: the chat request does not serialize: {e}"),
        };
        let v = assert_json("anthropic::client::request::to_chat", &out);
        assert!(v.is_object(), "to_chat: not an object");
        assert_eq!(v["model"], model, "to_chat: model");
        if let Ok((gemini, _stream)) = gemini::upstream::request::from_chat(&chat) {
            let g = assert_json("anthropic → chat → gemini", &gemini);
            assert!(g.is_object(), "gemini from_chat: not an object");
        }
    }
});
