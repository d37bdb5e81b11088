//! OpenAI chat answer → Responses answer (`responses::from_chat_response`): a JSON completion
//! or an SSE chunk stream, cut at arbitrary borders, with the `Echo` of a plain request or of
//! one with namespaced tools (so calls to `ns__name` are split back into namespace + name).
//!
//! Flags: bit 0 = stream, bit 1 = the namespaced-tools echo.
//! Invariants: no panic; a stream's output is whole events of JSON after every call; a whole
//! answer that converts is one JSON document.
#![no_main]

use std::sync::OnceLock;

use cheapai_gateway::providers::responses::{from_chat_response, to_chat_request, Echo};
use cheapai_gateway_fuzz::{run_translator, Chunked};
use libfuzzer_sys::fuzz_target;

/// A Codex-style request: a namespaced MCP tool, a plain function, echoed settings.
const REQUEST: &[u8] = br#"{"model":"gpt-5-codex","input":"hi","store":false,"stream":true,
"tools":[{"type":"namespace","name":"mcp__files__","tools":[{"type":"function","name":"read","parameters":{"type":"object","properties":{}}}]},
{"type":"namespace","name":"web","tools":[{"type":"function","name":"search","parameters":{"type":"object","properties":{}}}]},
{"type":"function","name":"shell","parameters":{"type":"object","properties":{}}}],
"tool_choice":"auto","temperature":0.5,"metadata":{"k":"v"}}"#;

fn namespaced() -> Echo {
    static ECHO: OnceLock<Echo> = OnceLock::new();
    ECHO.get_or_init(|| {
        to_chat_request(REQUEST, "m")
            .map(|(_, e)| e)
            .unwrap_or_default()
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Chunked::parse(data) else {
        return;
    };
    let stream = input.flag(0);
    let echo = if input.flag(1) {
        namespaced()
    } else {
        Echo::default()
    };
    let mut t = from_chat_response(stream, "gpt-5-codex", echo);
    run_translator("from_chat_response", t.as_mut(), &input.chunks, stream);
});
