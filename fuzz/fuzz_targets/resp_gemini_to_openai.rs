//! Gemini answer → OpenAI answer (`gemini::upstream::response::to_chat`): a generateContent JSON or
//! a streamGenerateContent SSE stream, cut at arbitrary borders; optionally handing its chat values
//! to `anthropic::client::response::ToAnthropic` as for an Anthropic client on a Gemini model. The
//! output then goes through the usage meter of the client's dialect.
//!
//! Flags: bit 0 = stream, bit 1 = the client asked for usage, bit 2 = chain to Anthropic.
//! Invariants: no panic; a stream's output is whole events of JSON (or `[DONE]`) after every
//! call; a whole answer that converts is one JSON document.
#![no_main]

use cheapai_gateway::dialect::Dialect;
use cheapai_gateway::providers::anthropic::client::response::ToAnthropic;
use cheapai_gateway::providers::chat::OpenAiWriter;
use cheapai_gateway::providers::gemini;
use cheapai_gateway_fuzz::{meter, run_translator, Chunked};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(input) = Chunked::parse(data) else {
        return;
    };
    let (stream, client_usage, chained) = (input.flag(0), input.flag(1), input.flag(2));
    if chained {
        let to_anthropic = ToAnthropic::new("my-gemini");
        let mut t = gemini::upstream::response::to_chat(stream, "my-gemini", to_anthropic);
        let run = run_translator("gemini → chat → anthropic", t.as_mut(), &input.chunks, stream);
        meter(Dialect::Anthropic, stream, false, &run.pieces);
    } else {
        let mut t = gemini::upstream::response::to_chat(stream, "my-gemini", OpenAiWriter);
        let run = run_translator(
            "gemini::upstream::response::to_chat",
            t.as_mut(),
            &input.chunks,
            stream,
        );
        meter(Dialect::OpenAi, stream, !client_usage, &run.pieces);
    }
});
