//! CPU-heavy requests do not stall the proxy: tokenizer counts run off its worker threads.

// test helpers fail loudly
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// 8 MiB of text in four messages (each under the size past which counts are estimated from
/// the byte count, so the tokenizer really runs).
fn big_count_body() -> String {
    let text: String = "lorem ipsum dolor sit amet, consectetur adipiscing elit "
        .repeat(37_000)
        .chars()
        .take(2 * 1024 * 1024 - 16)
        .collect();
    serde_json::json!({
        "model": "gpt-4o",
        "max_tokens": 16,
        "messages": [
            {"role": "user", "content": text},
            {"role": "user", "content": text},
            {"role": "user", "content": text},
            {"role": "user", "content": text},
        ],
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
