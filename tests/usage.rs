//! Usage records: one per request, with the provider's token counts (or an estimate), the
//! right cost, and a history each key can read but no other key can.

#![allow(clippy::panic)] // test helpers fail loudly

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A gateway whose usage records are read from its ledger, every key's, through the admin API.
struct Logged {
    gw: Gateway,
}

fn start() -> Logged {
    Logged {
        gw: Gateway::start(),
    }
}

impl Logged {
    /// Every key's records in the ledger, waiting until `n` are there.
    fn records(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let listed = ureq::get(&format!("{}/admin/usage?limit=1000", self.gw.admin_url))
                .set("authorization", &format!("Bearer {ADMIN_TOKEN}"))
                .call()
                .ok()
                .and_then(|r| r.into_string().ok())
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .unwrap_or_default();
            let records = listed["data"].as_array().cloned().unwrap_or_default();
            if records.len() >= n || Instant::now() > deadline {
                return records;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn find<'a>(records: &'a [Value], id: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["request_id"] == id)
        .unwrap_or_else(|| panic!("no record for {id}"))
}

/// "Say hello": the emulator counts 3 + 2 prompt tokens and one completion token per chunk.
const PROMPT: u64 = 5;

#[test]
fn every_kind_of_request_ends_as_exactly_one_record() {
    let l = start();
    let gw = &l.gw;
    let json = gw.post("/v1/chat/completions", &chat("gpt-4o", false));
    let stream = gw.post_with(
        "/v1/chat/completions",
        &[("x-emulator-chunks", "7")],
        &chat("gpt-4o", true),
    );
    let with_usage = gw.post(
        "/v1/chat/completions",
        r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello"}]}"#,
    );
    let failed = gw.post_with(
        "/v1/chat/completions",
        &[("x-emulator-status", "500")],
        &chat("gpt-4o", false),
    );
    let embed = gw.post(
        "/v1/embeddings",
        r#"{"model":"text-embedding-3","input":["a b","c"]}"#,
    );
    assert!(stream.text().contains("world6") && !stream.text().contains("\"choices\":[]"));
    assert!(with_usage.text().contains("\"choices\":[]"));

    // a client that leaves mid-stream
    let body = chat("gpt-4o", true);
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
         x-emulator-chunks: 50\r\nx-emulator-chunk-delay-ms: 100\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut client = raw_connect(gw.port(), request.as_bytes());
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("world2") {
        let n = client.read(&mut buf).expect("read");
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    let gone_id = String::from_utf8_lossy(&seen)
        .lines()
        .find_map(|l| {
            l.strip_prefix("x-request-id: ")
                .map(|s| s.trim().to_string())
        })
        .expect("request id");
    drop(client);

    let records = l.records(6);
    assert_eq!(records.len(), 6, "{records:#?}");
    let id = |a: &Answer| a.header("x-request-id").unwrap_or_default().to_string();

    let r = find(&records, &id(&json));
    assert_eq!(
        (r["prompt_tokens"].as_u64(), r["completion_tokens"].as_u64()),
        (Some(PROMPT), Some(5))
    );
    // 5 × $2.50 + 5 × $10 per 1M tokens = 62.5 micro-USD, rounded
    assert_eq!(r["cost_micro_usd"], 63);
    assert_eq!(r["estimated"], false);
    assert_eq!(r["status"], 200);
    assert_eq!(r["model"], "gpt-4o");
    assert_eq!(r["provider"], "emu");
    assert_eq!(r["stream"], false);

    let r = find(&records, &id(&stream));
    assert_eq!(
        (r["prompt_tokens"].as_u64(), r["completion_tokens"].as_u64()),
        (Some(PROMPT), Some(7))
    );
    assert_eq!(r["stream"], true);
    assert_eq!(r["estimated"], false);
    assert!(r["ttft_ms"].is_u64());

    let r = find(&records, &id(&with_usage));
    assert_eq!(r["completion_tokens"], 5);

    let r = find(&records, &id(&failed));
    assert_eq!(r["status"], 500);
    assert_eq!(r["error"], "upstream_status");
    assert_eq!(
        (r["prompt_tokens"].as_u64(), r["cost_micro_usd"].as_u64()),
        (Some(0), Some(0))
    );

    let r = find(&records, &id(&embed));
    assert_eq!(r["endpoint"], "embeddings");
    assert_eq!(r["model"], "text-embedding-3");
    assert_eq!(r["prompt_tokens"], 3);

    let r = find(&records, &gone_id);
    assert_eq!(r["client_disconnected"], true);
    assert_eq!(
        r["estimated"], true,
        "no usage arrived: the tokenizer counted"
    );
    assert!(
        r["completion_tokens"]
            .as_u64()
            .is_some_and(|t| (2..=10).contains(&t)),
        "{r}"
    );
    assert!(r["prompt_tokens"].as_u64().is_some_and(|t| t > 0), "{r}");
}

#[test]
fn a_key_reads_its_own_usage_and_never_another_keys() {
    let l = start();
    let gw = &l.gw;
    for _ in 0..3 {
        assert_eq!(
            gw.post("/v1/chat/completions", &chat("gpt-4o", false))
                .status,
            200
        );
    }
    let limited = format!("Bearer {LIMITED_KEY}");
    let a = gw.request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &limited)],
        chat("gpt-4o", false).as_bytes(),
    );
    assert_eq!(a.status, 200);
    l.records(4);

    let auth = format!("Bearer {KEY}");
    let mine = gw
        .request("GET", "/v1/usage?limit=2", &[("authorization", &auth)], b"")
        .json();
    assert_eq!(mine["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(mine["has_more"], true);
    assert_eq!(mine["totals"]["requests"], 3);
    assert_eq!(mine["totals"]["cost_micro_usd"], 3 * 63);
    assert_eq!(mine["by_model"]["gpt-4o"]["completion_tokens"], 15);
    let theirs = gw
        .request("GET", "/v1/usage", &[("authorization", &limited)], b"")
        .json();
    assert_eq!(theirs["totals"]["requests"], 1);
    assert_ne!(theirs["key_id"], mine["key_id"]);
    let ids = |v: &Value| {
        v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["key_id"].clone())
            .collect::<Vec<_>>()
    };
    assert!(ids(&theirs).iter().all(|k| *k == theirs["key_id"]));

    let future = gw
        .request(
            "GET",
            "/v1/usage?from=4102444800",
            &[("authorization", &auth)],
            b"",
        )
        .json();
    assert_eq!(future["totals"]["requests"], 0);
    let bad = gw.request(
        "GET",
        "/v1/usage?from=soon",
        &[("authorization", &auth)],
        b"",
    );
    assert_eq!(bad.status, 400);
    let none = gw.request("GET", "/v1/usage", &[], b"");
    assert_eq!(none.status, 401);
}

/// A record is readable through `/v1/usage` within a second of its answer in normal operation
/// (spooled, fsynced, shipped and committed in between): the median of twenty, each polled
/// for every 10 ms.
#[test]
fn a_record_is_readable_within_a_second_of_its_answer() {
    let gw = Gateway::start();
    let auth = format!("Bearer {KEY}");
    let mut waits = Vec::new();
    for _ in 0..20 {
        let answer = gw.post("/v1/chat/completions", &chat("gpt-4o", false));
        assert_eq!(answer.status, 200);
        let answered = Instant::now();
        let id = answer
            .header("x-request-id")
            .unwrap_or_default()
            .to_string();
        loop {
            let listed = gw
                .request("GET", "/v1/usage?limit=1", &[("authorization", &auth)], b"")
                .json();
            if listed["data"][0]["request_id"] == id.as_str() {
                break;
            }
            assert!(
                answered.elapsed() < Duration::from_secs(5),
                "{id} never listed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        waits.push(answered.elapsed());
    }
    waits.sort();
    eprintln!(
        "readable after: median {:?}, max {:?}",
        waits[10], waits[19]
    );
    assert!(waits[10] < Duration::from_secs(1), "median {:?}", waits[10]);
}
