//! CPU-heavy requests do not stall the proxy: tokenizer counts run off its worker threads.

// test helpers fail loudly
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// One message of 2 MiB (just under the size past which counts are estimated from the byte
/// count, so the tokenizer really runs), a single long word: about 1.5 s of tokenizer CPU.
fn big_count_body() -> String {
    serde_json::json!({
        "model": "gpt-4o",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": one_long_word(2 * 1024 * 1024 - 16)}],
    })
    .to_string()
}

fn inflight(gw: &Gateway) -> u64 {
    let text = gw.scrape();
    text.lines()
        .find_map(|l| l.strip_prefix("cheapai_inflight_requests "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_small_request_is_answered_while_two_large_token_counts_run() {
    // one worker thread: a count run on it would hold every other request back
    let gw = Gateway::start();
    let body = big_count_body();
    let (done, finished) = mpsc::channel();
    for _ in 0..2 {
        let (url, body, done) = (gw.url.clone(), body.clone(), done.clone());
        std::thread::spawn(move || {
            let a = Answer::from(
                ureq::post(&format!("{url}/v1/messages/count_tokens"))
                    .set("authorization", &format!("Bearer {KEY}"))
                    .timeout(Duration::from_secs(60))
                    .send_string(&body),
            );
            done.send((
                "count",
                a.status,
                a.json()["input_tokens"].as_u64(),
                Instant::now(),
            ))
            .unwrap();
        });
    }
    // both counts have arrived (their bodies are read; counting is under way)
    let deadline = Instant::now() + Duration::from_secs(20);
    while inflight(&gw) < 2 {
        assert!(Instant::now() < deadline, "the counts never arrived");
        std::thread::sleep(Duration::from_millis(2));
    }
    let small = gw.post("/v1/chat/completions", &chat("gpt-4o", false));
    let small_done = Instant::now();
    assert_eq!(small.status, 200);
    for _ in 0..2 {
        let (_, status, tokens, at) = finished.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(status, 200);
        assert!(tokens.unwrap() > 1_000_000, "{tokens:?}");
        assert!(small_done < at, "the small request waited for a count");
    }
}

/// Letters with no space or punctuation: the pre-tokenizer keeps the whole run as one piece,
/// whose BPE merge costs far more per byte than prose (about 1.5 s for 2 MiB on this machine).
fn one_long_word(len: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(b'a' + ((x >> 33) % 26) as u8)
        })
        .collect()
}

#[test]
fn gemini_embedding_token_counts_do_not_stall_other_requests() {
    // Gemini's embeddings answer carries no token count, so the gateway counts the inputs; on
    // the one worker thread, a count this large held every other request for seconds.
    let gw = Gateway::start_with(
        r#"
[providers.gem]
kind = "gemini"
base_url = "http://127.0.0.1:{EMU}/v1beta"
api_key_env = "TEST_PROVIDER_KEY"

[models."gemini-embedding-001"]
provider = "gem"
"#,
    );
    let word = one_long_word(2 * 1024 * 1024 - 16);
    let body = serde_json::json!({
        "model": "gemini-embedding-001",
        "input": [word.clone(), word],
    })
    .to_string();
    let (url, started) = (gw.url.clone(), Instant::now());
    let big = std::thread::spawn(move || {
        let a = Answer::from(
            ureq::post(&format!("{url}/v1/embeddings"))
                .set("authorization", &format!("Bearer {KEY}"))
                .set("content-type", "application/json")
                .timeout(Duration::from_secs(120))
                .send_string(&body),
        );
        (a, started.elapsed())
    });
    // small requests, one after another, for as long as the large one runs
    let mut slowest = Duration::ZERO;
    while !big.is_finished() {
        let sent = Instant::now();
        let small = gw.post("/v1/chat/completions", &chat("gpt-4o", false));
        assert_eq!(small.status, 200);
        slowest = slowest.max(sent.elapsed());
    }
    let (answer, took) = big.join().unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let tokens = answer.json()["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(tokens > 2_000_000, "{tokens}");
    // the count really ran long, so a stall would have shown
    assert!(took > Duration::from_secs(1), "{took:?}");
    assert!(
        slowest < Duration::from_millis(750),
        "a small request took {slowest:?} while the count ran ({took:?})"
    );
}
