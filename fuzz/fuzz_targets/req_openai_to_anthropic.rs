//! OpenAI chat request → Anthropic Messages request (`anthropic::upstream::request::from_chat`)
//! on arbitrary bytes, parsed as the gateway parses an OpenAI client's body.
//!
//! Invariants: no panic; when it accepts the body, the output is a JSON object whose `model`
//! is the upstream model.
#![no_main]

use cheapai_gateway::providers::anthropic::upstream::request::from_chat;
use cheapai_gateway::providers::chat::ChatRequest;
use cheapai_gateway_fuzz::assert_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let model = "claude-sonnet-4-5";
    let Ok(chat) = ChatRequest::parse(data) else {
        return;
    };
    if let Ok(out) = from_chat(&chat, model) {
        let v = assert_json("anthropic::upstream::request::from_chat", &out);
        assert!(v.is_object(), "from_chat: not an object");
        assert_eq!(v["model"], model, "from_chat: model");
    }
});
