//! Clients that stall: a body sent at a trickle, a client that stops reading its answer.
//! Neither may hold the gateway (or a provider connection) for longer than the configured
//! deadline, and the usage record says what happened.

// test helpers fail loudly
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

fn start() -> Gateway {
    Gateway::start_with_server(
        "client_body_timeout_ms = 300\nclient_write_timeout_ms = 300\n",
        "",
    )
}

#[test]
fn a_body_that_stops_arriving_gets_408_at_the_deadline() {
    let gw = start();
    let mut s = raw_connect(
        gw.port(),
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
             content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"model\":"
        )
        .as_bytes(),
    );
    let started = Instant::now();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // and the gateway keeps serving
    assert_eq!(
        gw.post("/v1/chat/completions", &chat("gpt-4o", false))
            .status,
        200
    );
}

#[test]
fn a_client_that_stops_reading_is_let_go_and_recorded_as_gone() {
    let gw = start();
    // ~12 MB of embeddings, more than the kernel buffers between the two sockets hold
    let inputs: Vec<String> = (0..400).map(|i| format!("text number {i}")).collect();
    let body = serde_json::json!({
        "model": "text-embedding-3",
        "input": inputs,
        "dimensions": 3072,
    })
    .to_string();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = rt
        .block_on(socket.connect(format!("127.0.0.1:{}", gw.port()).parse().unwrap()))
        .unwrap()
        .into_std()
        .unwrap();
    stream.set_nonblocking(false).unwrap();
    let mut stream = stream;
    write!(
        stream,
        "POST /v1/embeddings HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // never read: the record appears once the gateway gave up on the write
    let records = gw.usage_records(1);
    assert_eq!(records.len(), 1, "the gateway let go of the client");
    assert_eq!(records[0]["client_disconnected"], true, "{}", records[0]);
    assert_eq!(records[0]["status"], 200);
    drop(stream);
    assert_eq!(
        gw.post("/v1/chat/completions", &chat("gpt-4o", false))
            .status,
        200
    );
}
