//! Anthropic answer → OpenAI answer (`anthropic::upstream::response::to_chat`): a JSON message
//! or an SSE stream, cut at arbitrary borders; the output then goes through the usage meter
//! as the proxy sends it (OpenAI dialect; the gateway always asks for usage and the meter
//! removes the usage chunk for clients that did not ask).
//!
//! Flags: bit 0 = stream, bit 1 = the client asked for usage.
//! Invariants: no panic; a stream's output is whole events of JSON (or `[DONE]`) after every
//! call; a whole answer that converts is one JSON document.
#![no_main]

use cheapai_gateway::dialect::Dialect;
use cheapai_gateway::providers::anthropic::upstream::response::to_chat;
use cheapai_gateway::providers::chat::OpenAiWriter;
use cheapai_gateway_fuzz::{meter, run_translator, Chunked};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(input) = Chunked::parse(data) else {
        return;
    };
    let (stream, client_usage) = (input.flag(0), input.flag(1));
    let mut t = to_chat(stream, "claude-alias", OpenAiWriter);
    let run = run_translator(
        "anthropic::upstream::response::to_chat",
        t.as_mut(),
        &input.chunks,
        stream,
    );
    meter(Dialect::OpenAi, stream, !client_usage, &run.pieces);
});
