//! OpenAI chat request → Anthropic Messages request (`anthropic::upstream::request::from_chat`)
//! on arbitrary bytes, parsed as the gateway parses an OpenAI client's body.
//!
//! Invariants: no panic; when it accepts the body, the output is a JSON object whose `model`
//! is the upstream model, with prompt-cache breakpoints placed (`PromptCache::Auto`) and never
//! more than Anthropic's four.
#![no_main]

use cheapai_gateway::providers::anthropic::upstream::cache::PromptCache;
use cheapai_gateway::providers::anthropic::upstream::request::from_chat;
use cheapai_gateway::providers::chat::ChatRequest;
use cheapai_gateway_fuzz::assert_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let model = "claude-sonnet-4-5";
    let Ok(chat) = ChatRequest::parse(data) else {
        return;
    };
    if let Ok(out) = from_chat(&chat, model, PromptCache::Auto) {
        let v = assert_json("anthropic::upstream::request::from_chat", &out);
        assert!(v.is_object(), "from_chat: not an object");
        assert_eq!(v["model"], model, "from_chat: model");
        let marked = |blocks: &serde_json::Value| {
            let blocks = blocks.as_array().map(Vec::as_slice).unwrap_or_default();
            blocks.iter().filter(|b| b.get("cache_control").is_some()).count()
        };
        let in_messages: usize = v["messages"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|m| marked(&m["content"]))
            .sum();
        let placed = marked(&v["tools"]) + marked(&v["system"]) + in_messages;
        // the gateway adds at most 3; a client's own marks go through as sent
        let client_marked = data.windows(13).any(|w| w == b"cache_control");
        assert!(client_marked || placed <= 3, "{placed} breakpoints placed");
    }
});
