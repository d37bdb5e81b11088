//! The tokenizers the gateway counts with when a provider reports no usage (a cut stream, a
//! client that left) are built as the real binary starts, for the encodings its catalog
//! uses, so that no request pays for a build: not its ~0.2 s, and not its ~30 MB of
//! transient memory on top of the traffic the gateway carries then.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;

use common::binary::Binary;
use common::*;

/// A stream its client leaves after the answer's head: the gateway estimates its usage with
/// the model's tokenizer. Returns the request id.
fn cut_stream(bin: &Binary, model: &str) -> String {
    let port: u16 = bin.url.rsplit(':').next().unwrap().parse().unwrap();
    let body = chat(model, true);
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\nx-emulator-chunks: 20\r\n\
         x-emulator-chunk-delay-ms: 200\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut conn = raw_connect(port, request.as_bytes());
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(conn.read(&mut byte).unwrap(), 1, "answer head cut short");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    head.lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no request id in {head}"))
        .to_string()
}

#[test]
fn the_catalogs_tokenizers_are_built_at_start_and_never_by_a_request() {
    // gpt-4o counts with o200k; gpt-4 and the base catalog's text-embedding-3-small with
    // cl100k
    let bin = Binary::start(
        "tokenizers",
        "[log]\nformat = \"json\"\n[models.\"gpt-4\"]\nprovider = \"emu\"\n",
    );
    bin.line_with("tokenizer o200k_base built");
    bin.line_with("tokenizer cl100k_base built");
    let peak_before = bin.memory_kb("VmHWM");

    for model in ["gpt-4o", "gpt-4"] {
        let id = cut_stream(&bin, model);
        let access = bin.access(&id);
        assert_eq!(access["model"], model);
        assert_eq!(access["tokens_estimated"], true, "{access}");
        assert!(access["input_tokens"].as_u64().unwrap() > 0, "{access}");
    }

    let builds = bin
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("tokenizer ") && l.contains(" built in "))
        .count();
    assert_eq!(builds, 2, "one build per encoding, at start");
    // a build costs tens of MB at its peak; two small requests, almost nothing
    let grown = bin.memory_kb("VmHWM").saturating_sub(peak_before);
    assert!(grown < 8 * 1024, "peak memory grew by {grown} KiB");
}
