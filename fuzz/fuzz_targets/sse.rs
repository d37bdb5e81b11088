//! The SSE framer and parser on arbitrary bytes cut at arbitrary borders.
//!
//! Invariants: no panic; the parser yields the same events whole and split; the framer gives
//! back every byte, in order, cut only at event borders: each piece it releases, parsed on its
//! own, yields the events the whole stream yields at that place.
#![no_main]

use bytes::Bytes;
use cheapai_gateway::sse::{EventFramer, SseParser};
use cheapai_gateway_fuzz::{sse_events, Chunked};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(input) = Chunked::parse(data) else {
        return;
    };
    let whole = sse_events(input.payload);

    // The parser, fed the same bytes in pieces.
    let mut parser = SseParser::default();
    let mut split = Vec::new();
    for chunk in &input.chunks {
        parser.push(chunk, &mut split);
    }
    parser.finish(&mut split);
    assert_eq!(split, whole, "parser: split vs whole");

    // The framer: same bytes back, released in whole events.
    let mut framer = EventFramer::default();
    let mut released = Vec::new();
    for chunk in &input.chunks {
        if let Some(piece) = framer.push(Bytes::copy_from_slice(chunk)) {
            assert!(!piece.is_empty(), "framer released an empty piece");
            released.push(piece);
        }
    }
    released.extend(framer.finish());
    let joined: Vec<u8> = released.iter().flat_map(|p| p.iter().copied()).collect();
    assert_eq!(joined, input.payload, "framer lost or reordered bytes");
    let per_piece: Vec<_> = released.iter().flat_map(|p| sse_events(p)).collect();
    assert_eq!(per_piece, whole, "framer cut inside an event");
});
