//! The usage meter on arbitrary answer bytes in both dialects, streamed or whole.
//!
//! The meter's contract is whole SSE events per call (the relay frames passthrough streams),
//! so stream bytes cut at arbitrary borders go through the `EventFramer` first, as in the
//! proxy; flag bit 3 feeds the raw cuts instead (the contract broken), which must still not
//! panic.
//!
//! Flags: bit 0 = stream, bit 1 = Anthropic dialect (else OpenAI), bit 2 = remove the usage
//! chunk, bit 3 = skip the framer.
//! Invariants: no panic; the meter never adds bytes, and passes every byte unchanged unless it
//! has a usage chunk to remove (an OpenAI stream with removal on).
#![no_main]

use bytes::Bytes;
use cheapai_gateway::dialect::Dialect;
use cheapai_gateway::sse::EventFramer;
use cheapai_gateway::usage::meter::Meter;
use cheapai_gateway_fuzz::Chunked;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(input) = Chunked::parse(data) else {
        return;
    };
    let stream = input.flag(0);
    let dialect = if input.flag(1) {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    };
    let strip = input.flag(2);
    let pieces: Vec<Bytes> = if stream && !input.flag(3) {
        let mut framer = EventFramer::default();
        let mut pieces: Vec<Bytes> = input
            .chunks
            .iter()
            .filter_map(|c| framer.push(Bytes::copy_from_slice(c)))
            .collect();
        pieces.extend(framer.finish());
        pieces
    } else {
        input
            .chunks
            .iter()
            .map(|c| Bytes::copy_from_slice(c))
            .collect()
    };
    let mut meter = Meter::new(dialect, stream, strip);
    let mut passed = Vec::new();
    for piece in &pieces {
        let out = meter.process(piece.clone());
        assert!(out.len() <= piece.len(), "meter added bytes");
        passed.extend_from_slice(&out);
    }
    if !strip || !stream || dialect == Dialect::Anthropic {
        assert_eq!(passed, input.payload, "meter changed bytes it must pass");
    }
    let _ = meter.reported();
    let _ = meter.cache_writes();
    let _ = meter.delivered_text();
    let _ = meter.text_overflow_ratio();
});
