//! Helpers shared by the fuzz targets: turning one fuzz input into options plus a payload cut
//! into chunks, and the checks the targets make on what the gateway writes.
//!
//! Input layout of the chunked targets (everything but the request translators and `peek`):
//!
//! ```text
//! byte 0      flags, read by each target (stream, include_usage, dialect, …)
//! byte 1      n = number of cuts (taken modulo 16)
//! bytes 2..   n chunk lengths, one byte each (0 allowed: an empty push)
//! rest        the payload; the chunks are its first n pieces, the remainder is the last one
//! ```
//!
//! The seeds in `fuzz/seeds/<target>/` start with the two header bytes `\x00\x00` (or a few
//! cuts), so a seed's payload is readable text after them.

use bytes::Bytes;
use cheapai_gateway::dialect::Dialect;
use cheapai_gateway::providers::ResponseTranslator;
use cheapai_gateway::sse::{SseEvent, SseParser};
use cheapai_gateway::usage::meter::Meter;

/// One fuzz input: the option flags, the whole payload and the same payload cut into chunks.
pub struct Chunked<'a> {
    pub flags: u8,
    pub payload: &'a [u8],
    pub chunks: Vec<&'a [u8]>,
}

impl<'a> Chunked<'a> {
    /// Reads the layout above; `None` for an input shorter than its header.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let (&flags, rest) = data.split_first()?;
        let (&n, rest) = rest.split_first()?;
        let n = usize::from(n % 16);
        if rest.len() < n {
            return None;
        }
        let (lengths, payload) = rest.split_at(n);
        let mut chunks = Vec::with_capacity(n + 1);
        let mut at = 0;
        for &len in lengths {
            let end = (at + usize::from(len)).min(payload.len());
            chunks.push(&payload[at..end]);
            at = end;
        }
        chunks.push(&payload[at..]);
        Some(Self {
            flags,
            payload,
            chunks,
        })
    }

    /// Whether flag bit `bit` is set.
    pub fn flag(&self, bit: u8) -> bool {
        self.flags & (1 << bit) != 0
    }
}

/// Every event in `bytes`, parsed as a client would.
pub fn sse_events(bytes: &[u8]) -> Vec<SseEvent> {
    let mut parser = SseParser::default();
    let mut out = Vec::new();
    parser.push(bytes, &mut out);
    parser.finish(&mut out);
    out
}

/// Panics unless `bytes` is a JSON document.
pub fn assert_json(what: &str, bytes: &[u8]) -> serde_json::Value {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => v,
        Err(e) => panic!(
            "{what}: output is not JSON ({e}): {:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

/// Panics unless `bytes` is whole SSE events (nothing, or ending on a blank line) whose
/// `data` is JSON or OpenAI's `[DONE]`: what a gateway-built stream must look like.
pub fn assert_whole_events(what: &str, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    assert!(
        bytes.ends_with(b"\n\n"),
        "{what}: output does not end on an event border: {:?}",
        String::from_utf8_lossy(bytes)
    );
    for event in sse_events(bytes) {
        if event.data == "[DONE]" {
            continue;
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&event.data) {
            panic!("{what}: event data is not JSON ({e}): {:?}", event.data);
        }
    }
}

/// What feeding a translator returned.
pub struct Run {
    /// What each call (every `push`, then `finish`) appended, in order.
    pub pieces: Vec<Vec<u8>>,
    /// Whether a call failed (the proxy stops feeding at the first error).
    pub failed: bool,
}

impl Run {
    /// Everything written.
    pub fn out(&self) -> Vec<u8> {
        self.pieces.concat()
    }
}

/// Feeds `chunks` to `translator` then finishes it, as the proxy does: it stops at the first
/// error. With `stream`, each call's output must be whole events of JSON (also after an
/// error: what was appended is sent first); without, a successful `finish` must leave one
/// JSON document.
pub fn run_translator(
    what: &str,
    translator: &mut dyn ResponseTranslator,
    chunks: &[&[u8]],
    stream: bool,
) -> Run {
    let mut pieces = Vec::with_capacity(chunks.len() + 1);
    for chunk in chunks {
        let mut out = Vec::new();
        let result = translator.push(chunk, &mut out);
        if stream {
            assert_whole_events(what, &out);
        }
        pieces.push(out);
        if result.is_err() {
            return Run {
                pieces,
                failed: true,
            };
        }
    }
    let mut out = Vec::new();
    let result = translator.finish(&mut out);
    pieces.push(out);
    let run = Run {
        pieces,
        failed: result.is_err(),
    };
    if stream {
        assert_whole_events(what, run.pieces.last().map_or(&[][..], Vec::as_slice));
    } else if !run.failed {
        assert_json(what, &run.out());
    }
    run
}

/// Feeds what a translator wrote to the usage meter, call by call, as the proxy does (the
/// meter reads client-bound bytes after translation). Invariant: without the usage chunk to
/// remove, the meter passes every byte through unchanged.
pub fn meter(dialect: Dialect, stream: bool, strip_usage_chunk: bool, pieces: &[Vec<u8>]) {
    let mut meter = Meter::new(dialect, stream, strip_usage_chunk);
    for piece in pieces {
        let passed = meter.process(Bytes::copy_from_slice(piece));
        if !strip_usage_chunk {
            assert_eq!(&passed[..], &piece[..], "meter changed bytes it must pass");
        }
    }
    let _ = meter.reported();
    let _ = meter.cache_writes();
    let _ = meter.delivered_text();
    let _ = meter.text_overflow_ratio();
}
