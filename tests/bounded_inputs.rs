//! Client-supplied strings are bounded and inert: a model name of megabytes or with a newline
//! leaves at most a bounded trace (record, log line, Redis), and requests refused after
//! authentication count against the key's request rate like any other.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::binary::Binary;
use common::*;

const RATED_KEY: &str = "cai-rated-0003";

fn rated_key_config(rpm: u64) -> String {
    format!(
        "[[keys]]\nname = \"rated\"\nsha256 = \"{}\"\nlimits = {{ rpm = {rpm} }}\n",
        sha256_hex(RATED_KEY.as_bytes())
    )
}

fn post_rated(gw: &Gateway, body: &str) -> Answer {
    gw.request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &format!("Bearer {RATED_KEY}"))],
        body.as_bytes(),
    )
}

/// Bytes Redis holds under every key of one client key's hash tag (`MEMORY USAGE`).
fn redis_bytes_of(redis: &RedisServer, key_id: &str) -> u64 {
    redis
        .cli(&["--scan", "--pattern", &format!("*{{{key_id}}}*")])
        .lines()
        .filter(|k| !k.is_empty())
        .map(|k| {
            redis
                .cli(&["MEMORY", "USAGE", k])
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
        })
        .sum()
}

#[test]
fn a_megabyte_model_name_is_refused_bounded_and_rate_limited() {
    let redis = RedisServer::start();
    let gw = Gateway::start_with(&format!(
        "[state]\nredis_url = \"{}\"\n{}",
        redis.url(),
        rated_key_config(5)
    ));
    let key_id = cheapai_gateway::auth::key_id(&sha256_hex(RATED_KEY.as_bytes()));
    let huge = "m".repeat(2 << 20);
    let body = chat(&huge, false);
    // one good request first, so the key's usual keys exist before the measurement
    assert_eq!(post_rated(&gw, &chat("gpt-4o", false)).status, 200);
    let before = redis_bytes_of(&redis, &key_id);

    let first = post_rated(&gw, &body);
    assert_eq!(first.status, 400, "{}", first.text());
    let message = first.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("longer than 256 bytes"), "{message}");
    assert!(message.len() < 600, "the message quotes the name bounded");
    // 4 more refusals fit the key's rpm of 5 (with the good one in its own window)...
    for _ in 0..3 {
        assert_eq!(post_rated(&gw, &body).status, 400);
    }
    let newline = post_rated(&gw, &chat("gpt-4o\nreq_forged", false));
    assert_eq!(newline.status, 404, "{}", newline.text());
    // ...and the next refusals are rate limited, as any request past the rpm
    for _ in 0..10 {
        let limited = post_rated(&gw, &body);
        assert_eq!(limited.status, 429, "{}", limited.text());
        assert_eq!(limited.json()["error"]["code"], "rate_limit_exceeded");
    }

    // the records of the refused requests hold the name cut to 256 bytes
    let auth = format!("Bearer {RATED_KEY}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let records = loop {
        let usage = gw
            .request(
                "GET",
                "/v1/usage?limit=100",
                &[("authorization", &auth)],
                b"",
            )
            .json();
        let records = usage["data"].as_array().cloned().unwrap_or_default();
        if records.len() >= 6 || std::time::Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(records.len(), 6, "5 refused + 1 served, none for the 429s");
    for r in &records {
        let model = r["model"].as_str().unwrap();
        assert!(model.len() <= 256 + 3, "{} bytes recorded", model.len());
    }
    // ten 2 MB names later, Redis holds a few KB more for the key, not megabytes
    let grown = redis_bytes_of(&redis, &key_id).saturating_sub(before);
    assert!(grown < 8 * 1024, "Redis grew by {grown} bytes for the key");
}

#[test]
fn a_newline_in_the_model_name_cannot_forge_a_log_line() {
    let bin = Binary::start("newline", "");
    let (status, id) = bin.post(KEY, &[], &chat("gpt-4o\nreq_forged POST status=200", false));
    assert_eq!(status, 404);
    let line = bin.line_with(&id);
    assert!(
        line.contains("model=gpt-4o\\nreq_forged\\x20POST\\x20status=200 "),
        "{line}"
    );
    let (status, _) = bin.post(KEY, &[], &chat("gpt-4o", false));
    assert_eq!(status, 200);
    let lines = bin.lines.lock().unwrap().clone();
    assert!(
        !lines.iter().any(|l| l.starts_with("req_forged")),
        "a forged line: {lines:?}"
    );
}
