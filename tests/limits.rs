//! Limits, budgets and run-time keys shared by two gateway instances through one real
//! redis-server, and what happens when Redis goes away.

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const ADMIN: &str = ADMIN_TOKEN;

/// Two instances on one Redis, each with its own emulator; `extra` is added to both.
fn pair(redis: &RedisServer, extra: &str) -> (Gateway, Gateway) {
    let state = format!(
        "[state]\nredis_url = \"{}\"\ntimeout_ms = 200\nkey_cache_ttl_ms = 300\n{extra}",
        redis.url()
    );
    (Gateway::start_with(&state), Gateway::start_with(&state))
}

fn limited_key_config(rpm: &str) -> String {
    format!(
        "[[keys]]\nname = \"rpm\"\nsha256 = \"{}\"\nlimits = {{ {rpm} }}\n",
        sha256_hex(b"cai-limited-rpm")
    )
}

fn post_as(gw: &Gateway, key: &str, body: &str) -> Answer {
    let auth = format!("Bearer {key}");
    gw.request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        body.as_bytes(),
    )
}

#[test]
fn two_instances_share_one_exact_request_limit() {
    let redis = RedisServer::start();
    let (a, b) = pair(&redis, &limited_key_config("rpm = 50"));
    let gateways = Arc::new([a, b]);
    let started = Instant::now();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let gws = gateways.clone();
            thread::spawn(move || {
                (0..25)
                    .map(|i| post_as(&gws[(t + i) % 2], "cai-limited-rpm", &chat("gpt-4o", false)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<Answer> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "must run inside one window"
    );
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(ok, 50, "exactly the limit succeeds across both instances");
    for a in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(a.status, 429);
        assert_eq!(a.json()["error"]["code"], "rate_limit_exceeded");
        assert_eq!(a.header("x-ratelimit-limit-requests"), Some("50"));
        assert_eq!(a.header("x-ratelimit-remaining-requests"), Some("0"));
        let retry: u64 = a
            .header("retry-after")
            .and_then(|r| r.parse().ok())
            .expect("retry-after");
        assert!((1..=60).contains(&retry), "{retry}");
        assert!(a
            .header("x-ratelimit-reset-requests")
            .is_some_and(|r| r.ends_with('s')));
    }
    let ok = answers.iter().find(|a| a.status == 200).expect("a success");
    assert_eq!(
        ok.header("x-ratelimit-limit-requests"),
        Some("50"),
        "successes carry the headers too"
    );
    assert!(ok.header("x-ratelimit-remaining-requests").is_some());
}

#[test]
fn token_reservation_is_settled_to_the_real_count() {
    let redis = RedisServer::start();
    let (a, _b) = pair(&redis, &limited_key_config("tpm = 100000"));
    let body =
        r#"{"model":"gpt-4o","max_tokens":500,"messages":[{"role":"user","content":"Say hello"}]}"#;
    let answer = post_as(&a, "cai-limited-rpm", body);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-ratelimit-limit-tokens"), Some("100000"));
    // reserved: body/4 + 500 (visible in the first answer's remaining tokens)
    let remaining: u64 = answer
        .header("x-ratelimit-remaining-tokens")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(remaining <= 100_000 - 500, "{remaining}");
    let key = window_key("cai-limited-rpm");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let total = redis.cli(&["HGET", &key, "t"]);
        if total.trim() == "10" {
            break; // 5 prompt + 5 completion tokens, as the emulator reported
        }
        assert!(
            Instant::now() < deadline,
            "token counter is {total:?}, not 10"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // the total is the sum of the per-second buckets
    let fields = redis.cli(&["HGETALL", &key]);
    let lines: Vec<&str> = fields.lines().map(str::trim).collect();
    let bucket_sum: u64 = lines
        .chunks(2)
        .filter(|pair| pair[0].starts_with("t:"))
        .filter_map(|pair| pair[1].parse::<u64>().ok())
        .sum();
    assert_eq!(bucket_sum, 10, "{fields}");
}

#[test]
fn a_spent_budget_refuses_with_insufficient_quota_on_every_instance() {
    let redis = RedisServer::start();
    let key = format!(
        "[[keys]]\nname = \"budget\"\nsha256 = \"{}\"\nbudget_usd = 0.0001\n",
        sha256_hex(b"cai-budget")
    );
    let (a, b) = pair(&redis, &key);
    // each answer costs 63 micro-USD (5 + 5 tokens of gpt-4o); the budget is 100
    assert_eq!(
        post_as(&a, "cai-budget", &chat("gpt-4o", false)).status,
        200
    );
    thread::sleep(Duration::from_millis(200));
    assert_eq!(
        post_as(&b, "cai-budget", &chat("gpt-4o", false)).status,
        200
    );
    thread::sleep(Duration::from_millis(200));
    for gw in [&a, &b] {
        let refused = post_as(gw, "cai-budget", &chat("gpt-4o", false));
        assert_eq!(refused.status, 429, "{}", refused.text());
        assert_eq!(refused.json()["error"]["code"], "insufficient_quota");
        assert_eq!(refused.json()["error"]["type"], "insufficient_quota");
        assert_eq!(refused.header("x-should-retry"), Some("false"));
    }
}

/// The Redis hash of a client key's gpt-4o window.
fn window_key(client_key: &str) -> String {
    cheapai_gateway::limits::redis::window_key(
        &cheapai_gateway::auth::key_id(&sha256_hex(client_key.as_bytes())),
        "gpt-4o",
    )
}

fn admin(gw: &Gateway, method: &str, path: &str, token: &str, body: Option<Value>) -> Answer {
    let url = format!("{}{path}", gw.admin_url);
    let req = ureq::request(method, &url).set("authorization", &format!("Bearer {token}"));
    Answer::from(match body {
        Some(b) => req.send_string(&b.to_string()),
        None => req.call(),
    })
}

#[test]
fn keys_created_on_one_instance_work_on_the_other_until_disabled() {
    let redis = RedisServer::start();
    let (a, b) = pair(&redis, "");

    let denied = admin(
        &a,
        "POST",
        "/admin/keys",
        "wrong",
        Some(json!({"name": "x"})),
    );
    assert_eq!(denied.status, 401);
    let created = admin(
        &a,
        "POST",
        "/admin/keys",
        ADMIN,
        Some(json!({"name": "customer-7", "models": ["gpt-4o"], "limits": {"rpm": 100}})),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json();
    let secret = created["key"]
        .as_str()
        .expect("secret returned once")
        .to_string();
    let id = created["id"].as_str().expect("id").to_string();
    assert!(secret.starts_with("cai-"));
    // Redis holds the hash, never the secret
    assert!(!redis.cli(&["--scan"]).contains(&secret));
    assert!(!redis
        .cli(&["GET", &format!("cai:keyid:{id}")])
        .trim()
        .is_empty());

    assert_eq!(
        post_as(&b, &secret, &chat("gpt-4o", false)).status,
        200,
        "created on A, used on B"
    );
    assert_eq!(
        post_as(&b, &secret, &chat("claude-3-5-sonnet", false)).status,
        403
    );
    let listed = admin(&b, "GET", "/admin/keys", ADMIN, None).json();
    assert!(listed["data"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|k| k["id"] == id.as_str() && k.get("key").is_none()));

    assert_eq!(
        admin(
            &b,
            "POST",
            &format!("/admin/keys/{id}/disable"),
            ADMIN,
            Some(json!({}))
        )
        .status,
        200
    );
    thread::sleep(Duration::from_millis(400)); // key_cache_ttl_ms = 300
    for gw in [&a, &b] {
        assert_eq!(post_as(gw, &secret, &chat("gpt-4o", false)).status, 401);
    }
    assert_eq!(
        admin(&a, "DELETE", &format!("/admin/keys/{id}"), ADMIN, None).status,
        200
    );
    assert_eq!(
        admin(&a, "DELETE", &format!("/admin/keys/{id}"), ADMIN, None).status,
        404
    );
}

#[test]
fn redis_outage_falls_back_to_local_limits_then_shared_limits_resume() {
    let mut redis = RedisServer::start();
    let (a, _b) = pair(&redis, &limited_key_config("rpm = 1000"));
    assert_eq!(
        post_as(&a, "cai-limited-rpm", &chat("gpt-4o", false)).status,
        200
    );
    redis.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let answer = post_as(&a, "cai-limited-rpm", &chat("gpt-4o", false));
        assert_eq!(answer.status, 200, "allow: per-instance limits take over");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let key = window_key("cai-limited-rpm");
    loop {
        assert_eq!(
            post_as(&a, "cai-limited-rpm", &chat("gpt-4o", false)).status,
            200
        );
        if !redis.cli(&["HGET", &key, "r"]).trim().is_empty() {
            break; // the shared window counts again
        }
        assert!(Instant::now() < deadline, "Redis never picked up again");
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn redis_outage_with_deny_policy_answers_503() {
    let mut redis = RedisServer::start();
    let extra = limited_key_config("rpm = 1000");
    let gw = Gateway::start_with(&format!(
        "[state]\nredis_url = \"{}\"\ntimeout_ms = 200\non_redis_error = \"deny\"\n{extra}",
        redis.url()
    ));
    assert_eq!(
        post_as(&gw, "cai-limited-rpm", &chat("gpt-4o", false)).status,
        200
    );
    redis.kill();
    let started = Instant::now();
    let answer = post_as(&gw, "cai-limited-rpm", &chat("gpt-4o", false));
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(answer.json()["error"]["code"], "state_unavailable");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn usage_is_shared_through_one_postgres_ledger_and_redis_holds_none() {
    let redis = RedisServer::start();
    let ledger = common::postgres::TestPostgres::start_new();
    let url = ledger.url();
    let start = || {
        let gw = free_port();
        Gateway::start_with_env(
            &format!(
                "[state]\nredis_url = \"{}\"\n[usage]\nspool_dir = \"{}\"\n\
                 postgres_url_env = \"TEST_LEDGER_URL\"\n",
                redis.url(),
                ledger_dir(gw).join("spool").display()
            ),
            &[("TEST_LEDGER_URL", &url)],
        )
    };
    let (a, b) = (start(), start());
    let answer = a.post("/v1/chat/completions", &chat("gpt-4o", false));
    assert_eq!(answer.status, 200);
    let id = answer
        .header("x-request-id")
        .unwrap_or_default()
        .to_string();
    let usage = usage_listing_with(&b, &id);
    assert_eq!(usage["totals"]["cost_micro_usd"], 63, "{usage}");
    let key_id = cheapai_gateway::auth::key_id(&sha256_hex(KEY.as_bytes()));
    assert_eq!(
        redis.cli(&["--scan", "--pattern", "cai:usage:*"]).trim(),
        "",
        "Redis keeps limits, budgets and keys only"
    );
    let admin = Answer::from(
        ureq::get(&format!("{}/admin/usage?key={key_id}", a.admin_url))
            .set("authorization", &format!("Bearer {ADMIN}"))
            .call(),
    );
    assert_eq!(admin.json()["totals"]["requests"], 1);
}
