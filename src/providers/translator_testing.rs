//! Helpers the response translators' tests share: feeding a translator in pieces, checking
//! that every split of the input gives the same output, and reading its SSE output back.

use serde_json::Value;

use super::ResponseTranslator;
use crate::error::GatewayError;
use crate::sse::SseParser;

/// Feeds `pieces` then finishes; returns everything written and the result of the first
/// failing call (or of `finish`).
pub(crate) fn run(
    translator: &mut dyn ResponseTranslator,
    pieces: &[&[u8]],
) -> (Vec<u8>, Result<(), GatewayError>) {
    let mut out = Vec::new();
    for piece in pieces {
        if let Err(e) = translator.push(piece, &mut out) {
            return (out, Err(e));
        }
    }
    let result = translator.finish(&mut out);
    (out, result)
}

/// Runs a fresh translator over `input` whole, cut in two at every byte offset, and byte by
/// byte; asserts every run writes the same bytes with the same outcome, and returns them.
pub(crate) fn same_at_every_split(
    make: impl Fn() -> Box<dyn ResponseTranslator>,
    input: &[u8],
) -> (Vec<u8>, Result<(), GatewayError>) {
    let (whole, result) = run(make().as_mut(), &[input]);
    for cut in 0..=input.len() {
        let (out, r) = run(make().as_mut(), &[&input[..cut], &input[cut..]]);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&whole),
            "cut at {cut}"
        );
        assert_eq!(r.is_ok(), result.is_ok(), "cut at {cut}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let (out, r) = run(make().as_mut(), &bytes);
    assert_eq!(out, whole, "byte by byte");
    assert_eq!(r.is_ok(), result.is_ok(), "byte by byte");
    (whole, result)
}

/// Client output as (event name, data) pairs; `[DONE]` (not JSON) is kept as a string.
pub(crate) fn events(out: &[u8]) -> Vec<(Option<String>, Value)> {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    parser.push(out, &mut events);
    parser.finish(&mut events);
    events
        .into_iter()
        .map(|e| {
            let data = serde_json::from_str(&e.data).unwrap_or(Value::String(e.data));
            (e.event, data)
        })
        .collect()
}

/// Runs a typed chain (an upstream side handing its chat values straight to a client side)
/// over `input` at every split, and asserts it writes what the byte chain writes: the same
/// upstream side's OpenAI bytes, read by the same client side. So the composition neither adds
/// nor loses anything. Returns the output.
pub(crate) fn typed_chain_matches_bytes(
    typed: impl Fn() -> Box<dyn ResponseTranslator>,
    upstream_to_bytes: Box<dyn ResponseTranslator>,
    client_from_bytes: Box<dyn ResponseTranslator>,
    input: &[u8],
) -> Vec<u8> {
    let (out, result) = same_at_every_split(typed, input);
    let (mut upstream, mut client) = (upstream_to_bytes, client_from_bytes);
    let (chat, upstream_result) = run(upstream.as_mut(), &[input]);
    let (via_bytes, client_result) = run(client.as_mut(), &[&chat]);
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&via_bytes)
    );
    assert_eq!(
        result.is_ok(),
        upstream_result.is_ok() && client_result.is_ok()
    );
    out
}
