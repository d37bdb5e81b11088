//! Streams are forwarded as they arrive, and a client that leaves stops the provider.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn first_event_reaches_the_client_while_the_provider_still_holds_the_rest() {
    let gw = Gateway::start();
    let started = Instant::now();
    let response = ureq::post(&format!("{}/v1/chat/completions", gw.url))
        .set("authorization", &format!("Bearer {KEY}"))
        .set("x-emulator-chunks", "4")
        .set("x-emulator-chunk-delay-ms", "600")
        .send_string(&chat("gpt-4o", true))
        .expect("stream starts");
    let mut lines = BufReader::new(response.into_reader()).lines();
    let first = lines
        .find(|l| l.as_ref().is_ok_and(|l| l.starts_with("data: {")))
        .and_then(Result::ok)
        .expect("a first event");
    let first_at = started.elapsed();
    assert!(first.contains("chat.completion.chunk"), "{first}");
    let rest: Vec<String> = lines
        .map_while(Result::ok)
        .filter(|l| l.starts_with("data: "))
        .collect();
    let total = started.elapsed();
    assert_eq!(rest.last().map(String::as_str), Some("data: [DONE]"));
    // 4 content chunks 600 ms apart: the whole stream takes ≥ 2.4 s; the first event must
    // not wait for it.
    assert!(total >= Duration::from_millis(2400), "{total:?}");
    assert!(
        first_at < total - Duration::from_millis(1500),
        "first {first_at:?} of {total:?}"
    );
}

#[test]
fn include_usage_chunk_passes_through_for_clients_that_ask() {
    let gw = Gateway::start();
    let body = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    let a = gw.post("/v1/chat/completions", body);
    let events = a.sse_data();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let usage: serde_json::Value =
        serde_json::from_str(&events[events.len() - 2]).unwrap_or_default();
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert!(
        usage["usage"]["total_tokens"]
            .as_u64()
            .is_some_and(|t| t > 0),
        "{usage}"
    );
}

#[test]
fn a_client_that_disconnects_stops_the_upstream_stream() {
    let gw = Gateway::start();
    let body = chat("gpt-4o", true);
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\nx-emulator-chunks: 40\r\nx-emulator-chunk-delay-ms: 150\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut client = raw_connect(gw.port(), request.as_bytes());
    let mut buf = [0u8; 4096];
    let n = client.read(&mut buf).expect("first bytes");
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seq: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("x-emulator-seq: "))
        .and_then(|s| s.trim().parse().ok())
        .expect("seq header");
    drop(client);
    // The full stream would take 40 × 150 ms = 6 s; the emulator must see its client (the
    // gateway) go away long before that.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let record = gw.emulator.record(seq).expect("record");
        if record["response_complete"] == false && record["response_finished"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "upstream still streaming: {record}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn keep_alive_connection_serves_stream_after_stream() {
    let gw = Gateway::start();
    let agent = ureq::AgentBuilder::new().max_idle_connections(1).build();
    for _ in 0..3 {
        let r = agent
            .post(&format!("{}/v1/chat/completions", gw.url))
            .set("authorization", &format!("Bearer {KEY}"))
            .send_string(&chat("gpt-4o", true))
            .expect("ok");
        let text = r.into_string().expect("body");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }
}
