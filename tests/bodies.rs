//! Request bodies of every size up to `max_body_bytes` reach the provider intact, however
//! the client frames them. (Pingora alone replays at most 64 KiB of a body read early.)

mod common;

use std::io::Read;

use common::*;

/// A chat body of exactly `size` bytes. Streams ask for usage themselves, so the gateway
/// forwards the body unchanged (it adds `stream_options` otherwise).
fn chat_of_size(size: usize, stream: bool) -> String {
    let options = if stream {
        r#""stream_options":{"include_usage":true},"#
    } else {
        ""
    };
    let head = format!(
        r#"{{"model":"gpt-4o","stream":{stream},{options}"messages":[{{"role":"user","content":""#
    );
    let tail = r#""}]}"#;
    let fill = size - head.len() - tail.len();
    format!("{head}{}{tail}", "x".repeat(fill))
}

#[test]
fn bodies_from_200_bytes_to_10_megabytes_arrive_intact() {
    let gw = Gateway::start();
    for size in [200, 70_000, 1_000_000, 10_000_000] {
        for stream in [false, true] {
            let body = chat_of_size(size, stream);
            assert_eq!(body.len(), size);
            let a = gw.post("/v1/chat/completions", &body);
            assert_eq!(a.status, 200, "size {size} stream {stream}: {}", a.text());
            assert_eq!(
                a.header("x-emulator-body-bytes"),
                Some(size.to_string().as_str())
            );
            assert_eq!(
                a.header("x-emulator-body-sha256"),
                Some(sha256_hex(body.as_bytes()).as_str()),
                "size {size} stream {stream}"
            );
            if stream {
                assert!(a.text().ends_with("data: [DONE]\n\n"));
            } else {
                assert_eq!(a.json()["object"], "chat.completion");
            }
        }
    }
}

#[test]
fn chunked_request_bodies_arrive_intact() {
    let gw = Gateway::start();
    let body = chat_of_size(1_000_000, false);
    let a = Answer::from(
        ureq::post(&format!("{}/v1/chat/completions", gw.url))
            .set("authorization", &format!("Bearer {KEY}"))
            .send(std::io::Cursor::new(body.clone().into_bytes())),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let record = gw.upstream_request(&a);
    assert_eq!(record["body_sha256"], sha256_hex(body.as_bytes()));
    assert_eq!(record["body_bytes"], body.len());
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let gw = Gateway::start();
    let body = chat("gpt-4o", false);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut s = raw_connect(gw.port(), head.as_bytes());
    s.set_read_timeout(Some(std::time::Duration::from_millis(800)))
        .ok();
    let mut buf = [0u8; 256];
    let n = s
        .read(&mut buf)
        .expect("100 Continue arrives without the body being sent");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    std::io::Write::write_all(&mut s, body.as_bytes()).expect("body");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok();
    let mut rest = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&rest).contains("chat.completion") {
        let n = s.read(&mut chunk).expect("answer");
        assert!(n > 0, "closed early");
        rest.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&rest).contains("HTTP/1.1 200"));
}
