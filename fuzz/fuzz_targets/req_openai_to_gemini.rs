//! OpenAI chat request → Gemini generateContent request (`gemini::upstream::request::from_chat`)
//! on arbitrary bytes, parsed as the gateway parses an OpenAI client's body.
//!
//! Invariants: no panic; when it accepts the body, the output is a JSON object, and the
//! stream flag it returns is the body's `stream`.
#![no_main]

use cheapai_gateway::providers::chat::ChatRequest;
use cheapai_gateway::providers::gemini::upstream::request::from_chat;
use cheapai_gateway_fuzz::assert_json;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(chat) = ChatRequest::parse(data) else {
        return;
    };
    if let Ok((out, stream)) = from_chat(&chat) {
        let v = assert_json("gemini::upstream::request::from_chat", &out);
        assert!(v.is_object(), "from_chat: not an object");
        let input: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
        assert_eq!(stream, input["stream"] == true, "from_chat: stream flag");
    }
});
