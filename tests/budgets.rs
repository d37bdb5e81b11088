//! Budgets reserve each request's worst-case cost before it starts and settle to the real
//! cost after, so concurrent requests of one key cannot together overshoot its budget by
//! more than one request's cost (a real gateway, a real redis-server).

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use cheapai_gateway::catalog::Price;
use cheapai_gateway::limits;
use common::*;
use serde_json::Value;

const CLIENT_KEY: &str = "cai-budget-reserve";
/// Output tokens each test request may produce (`max_tokens`).
const MAX_TOKENS: u64 = 16;
/// What one answer of the emulator costs: 5 prompt + 5 completion tokens of gpt-4o.
const ANSWER_COST: u64 = 63;

fn body() -> String {
    serde_json::json!({
        "model": "gpt-4o",
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": "Say hello"}],
    })
    .to_string()
}

/// The reservation the gateway makes for [`body`]: bytes/4 prompt tokens and `MAX_TOKENS`
/// output tokens at the test config's gpt-4o price.
fn worst_case() -> u64 {
    let price = Price {
        input: 2_500_000,
        output: 10_000_000,
        ..Price::default()
    };
    limits::worst_case_micro_usd(body().len() as u64 / 4, MAX_TOKENS, &price)
}

fn gateway(redis: &RedisServer, budget_micro_usd: u64) -> Gateway {
    Gateway::start_with(&format!(
        "[state]\nredis_url = \"{}\"\ntimeout_ms = 500\n\
         [[keys]]\nname = \"budget\"\nsha256 = \"{}\"\nbudget_usd = {}\n",
        redis.url(),
        sha256_hex(CLIENT_KEY.as_bytes()),
        budget_micro_usd as f64 / 1e6
    ))
}

fn post(gw: &Gateway, headers: &[(&str, &str)]) -> Answer {
    let auth = format!("Bearer {CLIENT_KEY}");
    let mut all = vec![("authorization", auth.as_str())];
    all.extend_from_slice(headers);
    gw.request("POST", "/v1/chat/completions", &all, body().as_bytes())
}

/// The key's usage records, once `n` are there.
fn usage(gw: &Gateway, n: usize) -> Value {
    let auth = format!("Bearer {CLIENT_KEY}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let usage = gw
            .request(
                "GET",
                "/v1/usage?limit=1000",
                &[("authorization", &auth)],
                b"",
            )
            .json();
        let got = usage["data"].as_array().map_or(0, Vec::len);
        if got >= n {
            return usage;
        }
        assert!(Instant::now() < deadline, "{got} of {n} records: {usage}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The key's spend counter in Redis, once it reads `want` (settlement runs after the
/// answer is sent).
fn wait_for_spend(redis: &RedisServer, want: u64) {
    let key_id = cheapai_gateway::auth::key_id(&sha256_hex(CLIENT_KEY.as_bytes()));
    let key = limits::redis::spend_key(&key_id);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let spend = redis.cli(&["GET", &key]);
        if spend.trim().parse::<u64>().unwrap_or(0) == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "spend counter {spend:?}, not {want}: a reservation was not settled"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn concurrent_requests_cannot_overshoot_the_budget_by_more_than_one_request() {
    let redis = RedisServer::start();
    let worst = worst_case();
    let budget = 3 * worst + worst / 2;
    assert!(
        budget + worst < 20 * ANSWER_COST,
        "the budget must be small enough that 20 unreserved answers would overshoot it"
    );
    let gw = Arc::new(gateway(&redis, budget));
    let start = Arc::new(Barrier::new(20));
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let (gw, start) = (gw.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                // slow answers: every request is checked while the others are in flight
                post(&gw, &[("x-emulator-delay-ms", "300")])
            })
        })
        .collect();
    let answers: Vec<Answer> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let ok = answers.iter().filter(|a| a.status == 200).count();
    for refused in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(refused.status, 429, "{}", refused.text());
        assert_eq!(refused.json()["error"]["code"], "insufficient_quota");
    }
    assert!(
        (3..20).contains(&ok),
        "three worst cases fit, twenty do not: {ok} answered"
    );

    // the budget's refusals leave no record: nothing was billed
    let usage = usage(&gw, ok);
    assert_eq!(usage["data"].as_array().map(Vec::len), Some(ok), "{usage}");
    let spent = usage["totals"]["cost_micro_usd"].as_u64().unwrap_or(0);
    assert_eq!(spent, ok as u64 * ANSWER_COST, "{usage}");
    assert!(
        spent <= budget + worst,
        "spent {spent} of a budget of {budget} (one request's worst case: {worst})"
    );
    eprintln!("{ok} of 20 answered; spent {spent} of {budget} (worst case {worst})");
    // every reservation was replaced by its real cost
    wait_for_spend(&redis, spent);
}

#[test]
fn a_request_that_fails_upstream_hands_its_reservation_back() {
    let redis = RedisServer::start();
    let worst = worst_case();
    // one worst case fits, two do not
    let gw = gateway(&redis, worst + 10);
    let failed = post(&gw, &[("x-emulator-status", "400")]);
    assert_eq!(failed.status, 400, "{}", failed.text());
    wait_for_spend(&redis, 0);
    let answered = post(&gw, &[]);
    assert_eq!(
        answered.status, 200,
        "the failed request's reservation came back"
    );
    wait_for_spend(&redis, ANSWER_COST);
    let refused = post(&gw, &[]);
    assert_eq!(
        refused.status, 429,
        "63 spent + a worst case exceed the budget"
    );
    assert_eq!(refused.json()["error"]["code"], "insufficient_quota");
    assert_eq!(refused.header("x-should-retry"), Some("false"));
}

/// Output tokens of each answer in the uncapped test: the emulator writes one token per chunk.
const LONG_ANSWER_TOKENS: u64 = 10_000;

/// Without `max_tokens` a request can write as much as the model allows, and the reservation
/// must cover that (the catalog's `max_output_tokens`, else the documented default), or
/// concurrent long answers overshoot the budget many times over.
#[test]
fn concurrent_requests_without_max_tokens_cannot_overshoot_by_more_than_one_request() {
    let redis = RedisServer::start();
    let body = chat("gpt-4o", false);
    let price = Price {
        input: 2_500_000,
        output: 10_000_000,
        ..Price::default()
    };
    let worst = limits::worst_case_micro_usd(body.len() as u64 / 4, 16_384, &price);
    let answer_cost = limits::worst_case_micro_usd(5, LONG_ANSWER_TOKENS, &price);
    let budget = 3 * worst + worst / 2;
    assert!(
        budget + worst < 20 * answer_cost,
        "20 answers must overshoot it"
    );
    let gw = Arc::new(gateway(&redis, budget));
    let start = Arc::new(Barrier::new(20));
    let chunks = LONG_ANSWER_TOKENS.to_string();
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let (gw, start, body, chunks) =
                (gw.clone(), start.clone(), body.clone(), chunks.clone());
            thread::spawn(move || {
                start.wait();
                let auth = format!("Bearer {CLIENT_KEY}");
                gw.request(
                    "POST",
                    "/v1/chat/completions",
                    &[
                        ("authorization", auth.as_str()),
                        ("x-emulator-delay-ms", "300"),
                        ("x-emulator-chunks", chunks.as_str()),
                    ],
                    body.as_bytes(),
                )
            })
        })
        .collect();
    let answers: Vec<Answer> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let ok = answers.iter().filter(|a| a.status == 200).count();
    for a in answers.iter().filter(|a| a.status == 200) {
        assert_eq!(
            a.json()["usage"]["completion_tokens"].as_u64(),
            Some(LONG_ANSWER_TOKENS)
        );
    }
    let usage = usage(&gw, ok);
    let spent = usage["totals"]["cost_micro_usd"].as_u64().unwrap_or(0);
    assert!(
        spent <= budget + worst,
        "{ok} answered: spent {spent} of a budget of {budget} (one request's worst case: {worst})"
    );
    assert!(ok >= 3, "three worst cases fit the budget: {ok} answered");
    wait_for_spend(&redis, spent);
}

/// A reservation nobody settles (here its instance is killed mid-request) comes off the
/// key's spend by itself once `reservation_ttl_seconds` have passed; before, the spend only
/// grew and the key drifted towards a false "budget spent".
#[test]
fn a_reservation_left_by_a_killed_instance_expires() {
    let redis = RedisServer::start();
    let extra = format!(
        "[state]\nredis_url = \"{}\"\ntimeout_ms = 500\nreservation_ttl_seconds = 2\n\
         [[keys]]\nname = \"budget\"\nsha256 = \"{}\"\nbudget_usd = 0.2\n",
        redis.url(),
        sha256_hex(CLIENT_KEY.as_bytes())
    );
    let body = chat("gpt-4o", false);
    let first = common::binary::Binary::start("expiry-a", &extra);
    let url = format!("{}/v1/chat/completions", first.url);
    let slow = {
        let body = body.clone();
        thread::spawn(move || {
            // cut when the instance dies: its outcome is not the point
            let _ = ureq::post(&url)
                .set("authorization", &format!("Bearer {CLIENT_KEY}"))
                .set("x-emulator-delay-ms", "20000")
                .send_string(&body);
        })
    };
    let key_id = cheapai_gateway::auth::key_id(&sha256_hex(CLIENT_KEY.as_bytes()));
    let spend_key = limits::redis::spend_key(&key_id);
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis
        .cli(&["GET", &spend_key])
        .trim()
        .parse::<u64>()
        .unwrap_or(0)
        == 0
    {
        assert!(Instant::now() < deadline, "the slow request never reserved");
        thread::sleep(Duration::from_millis(20));
    }
    let reserved_at = Instant::now();
    drop(first); // SIGKILL: the reservation is never settled
    slow.join().expect("client thread");

    let second = common::binary::Binary::start("expiry-b", &extra);
    let (status, _) = second.post(CLIENT_KEY, &[], &body);
    assert_eq!(
        status, 429,
        "the dead instance's reservation still holds the budget"
    );
    let started = Instant::now();
    loop {
        let (status, _) = second.post(CLIENT_KEY, &[], &body);
        if status == 200 {
            // it expires 1 to 2 s after it was made (whole seconds), not before
            assert!(reserved_at.elapsed() >= Duration::from_millis(900));
            break;
        }
        assert_eq!(status, 429);
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "the reservation never expired"
        );
        thread::sleep(Duration::from_millis(200));
    }
}
