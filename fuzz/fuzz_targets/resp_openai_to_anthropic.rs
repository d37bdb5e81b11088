//! OpenAI chat answer → Anthropic answer (`anthropic::client::response::from_chat`): a JSON
//! completion or an SSE chunk stream, cut at arbitrary borders; the output then goes through
//! the usage meter as the proxy sends it (Anthropic dialect).
//!
//! Flags: bit 0 = stream.
//! Invariants: no panic; a stream's output is whole events of JSON after every call; a whole
//! answer that converts is one JSON document; the meter passes the bytes unchanged.
#![no_main]

use cheapai_gateway::dialect::Dialect;
use cheapai_gateway::providers::anthropic::client::response::from_chat;
use cheapai_gateway_fuzz::{meter, run_translator, Chunked};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(input) = Chunked::parse(data) else {
        return;
    };
    let stream = input.flag(0);
    let mut t = from_chat(stream, "claude-alias");
    let run = run_translator(
        "anthropic::client::response::from_chat",
        t.as_mut(),
        &input.chunks,
        stream,
    );
    meter(Dialect::Anthropic, stream, false, &run.pieces);
});
