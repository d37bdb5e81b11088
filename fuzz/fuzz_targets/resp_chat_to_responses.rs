//! OpenAI chat answer → Responses answer (`responses::client::response::from_chat`): a JSON completion
//! or an SSE chunk stream, cut at arbitrary borders, with the `Echo` of a plain request or of
//! one with namespaced tools (so calls to `ns__name` are split back into namespace + name).
//!
//! Flags: bit 0 = stream, bit 1 = the namespaced-tools echo.
//! Invariants: no panic; a stream's output is whole events of JSON after every call; a whole
//! answer that converts is one JSON document.
#![no_main]

use std::sync::OnceLock;

use cheapai_gateway::providers::responses::client::{request, response, Echo};
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
        request::to_chat(REQUEST, "m")
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
    let mut t = response::from_chat(stream, "gpt-5-codex", echo);
    run_translator(
        "responses::client::response::from_chat",
        t.as_mut(),
        &input.chunks,
        stream,
    );
});
