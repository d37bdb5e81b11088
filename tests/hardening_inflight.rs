//! `max_inflight` on a key: the N+1th concurrent request gets 429 at once, in the client's
//! dialect, and the slot is given back when a request ends.

// test helpers fail loudly
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;

const TWO_AT_A_TIME: &str = "cai-test-two-at-a-time-0005";

#[test]
fn the_third_concurrent_request_of_a_two_slot_key_is_refused_at_once() {
    let gw = Gateway::start_with(&format!(
        "[[keys]]\nname = \"two\"\nsha256 = \"{}\"\nmax_inflight = 2\n",
        sha256_hex(TWO_AT_A_TIME.as_bytes())
    ));
    let auth = format!("Bearer {TWO_AT_A_TIME}");
    let slow = |url: String, auth: String| {
        std::thread::spawn(move || {
            Answer::from(
                ureq::post(&format!("{url}/v1/chat/completions"))
                    .set("authorization", &auth)
                    .set("x-emulator-delay-ms", "1000")
                    .send_string(&chat("gpt-4o", false)),
            )
            .status
        })
    };
    let first = slow(gw.url.clone(), auth.clone());
    let second = slow(gw.url.clone(), auth.clone());
    // both are with the provider now
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.emulator.requests_received() < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let third = gw.request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        chat("gpt-4o", false).as_bytes(),
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused at once"
    );
    assert_eq!(third.status, 429, "{}", third.text());
    assert_eq!(third.json()["error"]["code"], "rate_limit_exceeded");
    let messages = gw.request(
        "POST",
        "/v1/messages",
        &[("authorization", &auth)],
        br#"{"model":"gpt-4o","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(messages.status, 429);
    assert_eq!(messages.json()["error"]["type"], "rate_limit_error");
    // other keys are not affected
    assert_eq!(
        gw.post("/v1/chat/completions", &chat("gpt-4o", false))
            .status,
        200
    );
    assert_eq!(first.join().unwrap(), 200);
    assert_eq!(second.join().unwrap(), 200);
    // the slots were given back
    let again = gw.request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        chat("gpt-4o", false).as_bytes(),
    );
    assert_eq!(again.status, 200);
}
