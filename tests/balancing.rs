//! Balancing across deployments, circuit breakers and fallback models, on real sockets.

// test helpers fail loudly
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::faulty::{FaultyServer, Misbehave};
use common::*;

/// Two deployments of `duo`: `a` on the first emulator (or `a_base`), `b` on the second.
fn two_deployments(a_base: &str, weights: (u32, u32), breaker: &str, model_extra: &str) -> Gateway {
    Gateway::start_with(&format!(
        r#"
[providers.a]
kind = "openai_compatible"
base_url = "{a_base}"
connect_timeout_ms = 300
first_byte_timeout_ms = 600
{breaker}

[providers.b]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{{EMU2}}/v1"

[models."duo"]
deployments = [{{ provider = "a", weight = {wa} }}, {{ provider = "b", weight = {wb} }}]
price = {{ input = 1.0, output = 2.0 }}
{model_extra}
"#,
        wa = weights.0,
        wb = weights.1,
    ))
}

fn emu_a() -> String {
    "http://127.0.0.1:{EMU}/v1".to_string()
}

fn admin_get(gw: &Gateway, path: &str) -> Answer {
    Answer::from(
        ureq::get(&format!("{}{path}", gw.admin_url))
            .timeout(Duration::from_secs(10))
            .call(),
    )
}

fn circuit_state(gw: &Gateway, provider: &str) -> Option<String> {
    let text = admin_get(gw, "/metrics").text();
    let prefix = format!("cheapai_circuit_state{{provider=\"{provider}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

#[test]
fn weights_1_to_3_split_the_traffic_25_75() {
    let gw = two_deployments(&emu_a(), (1, 3), "", "");
    for _ in 0..400 {
        let a = gw.post("/v1/chat/completions", &chat("duo", false));
        assert_eq!(a.status, 200, "{}", a.text());
    }
    let (a, b) = (
        gw.emulator.requests_received(),
        gw.emulator2.requests_received(),
    );
    assert_eq!(a + b, 400);
    // 25 % ± 10 % of 400
    assert!((60..=140).contains(&a), "a served {a}, b {b}");
}

#[test]
fn a_dead_deployment_opens_its_circuit_and_then_costs_no_connection() {
    let dead = FaultyServer::start(Misbehave::CloseBeforeHeader);
    let gw = two_deployments(
        &format!("http://127.0.0.1:{}/v1", dead.port),
        (1, 1),
        "breaker = { failures = 3, open_ms = 60000 }",
        "",
    );
    let mut ok = 0;
    for _ in 0..40 {
        let a = gw.post("/v1/chat/completions", &chat("duo", false));
        ok += usize::from(a.status == 200);
    }
    assert_eq!(
        ok, 40,
        "every request answered while one of two deployments is down"
    );
    assert_eq!(
        dead.requests(),
        3,
        "three failures opened the circuit; then none reached it"
    );
    let connections = dead.connections();
    for _ in 0..20 {
        assert_eq!(
            gw.post("/v1/chat/completions", &chat("duo", false)).status,
            200
        );
    }
    assert_eq!(
        dead.connections(),
        connections,
        "no connect attempt while open"
    );
    assert_eq!(circuit_state(&gw, "a").as_deref(), Some("1"));
    assert_eq!(circuit_state(&gw, "b").as_deref(), Some("0"));
    let ready = admin_get(&gw, "/ready");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["open_circuits"], serde_json::json!(["a"]));
    let records = gw.usage_records(60);
    assert_eq!(records.len(), 60, "one record per client request");
}

#[test]
fn the_circuit_probes_after_open_ms_and_closes_on_success() {
    let gw = two_deployments(
        &emu_a(),
        (1, 1),
        "breaker = { failures = 2, open_ms = 400 }",
        "",
    );
    gw.emulator.set_faults(&[("x-emulator-status", "503")]);
    while gw.emulator.requests_received() < 2 {
        assert_eq!(
            gw.post("/v1/chat/completions", &chat("duo", false)).status,
            200
        );
    }
    assert_eq!(circuit_state(&gw, "a").as_deref(), Some("1"));
    // open: a gets nothing
    for _ in 0..10 {
        assert_eq!(
            gw.post("/v1/chat/completions", &chat("duo", false)).status,
            200
        );
    }
    assert_eq!(gw.emulator.requests_received(), 2);
    std::thread::sleep(Duration::from_millis(450));
    assert_eq!(circuit_state(&gw, "a").as_deref(), Some("2"), "half-open");
    // the probe fails: open again, one request more reached a
    while gw.emulator.requests_received() < 3 {
        assert_eq!(
            gw.post("/v1/chat/completions", &chat("duo", false)).status,
            200
        );
    }
    assert_eq!(circuit_state(&gw, "a").as_deref(), Some("1"));
    gw.emulator.set_faults(&[]);
    std::thread::sleep(Duration::from_millis(450));
    while gw.emulator.requests_received() < 4 {
        assert_eq!(
            gw.post("/v1/chat/completions", &chat("duo", false)).status,
            200
        );
    }
    assert_eq!(
        circuit_state(&gw, "a").as_deref(),
        Some("0"),
        "the probe closed it"
    );
    let before = gw.emulator.requests_received();
    for _ in 0..40 {
        assert_eq!(
            gw.post("/v1/chat/completions", &chat("duo", false)).status,
            200
        );
    }
    assert!(
        gw.emulator.requests_received() > before + 5,
        "a serves again"
    );
}

#[test]
fn with_every_deployment_open_the_answer_is_503_at_once() {
    let gw = Gateway::start_with(
        r#"
[providers.a]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{EMU}/v1"
breaker = { failures = 1, open_ms = 30000 }

[models."one"]
provider = "a"
"#,
    );
    gw.emulator.set_faults(&[("x-emulator-status", "500")]);
    assert_eq!(
        gw.post("/v1/chat/completions", &chat("one", false)).status,
        500
    );
    let started = Instant::now();
    let a = gw.post("/v1/chat/completions", &chat("one", false));
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(a.status, 503, "{}", a.text());
    assert_eq!(a.json()["error"]["code"], "upstream_unavailable");
    let retry: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((29..=30).contains(&retry), "{retry}");
    let messages = gw.post(
        "/v1/messages",
        r#"{"model":"one","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(messages.status, 503);
    assert_eq!(messages.json()["error"]["type"], "overloaded_error");
    assert_eq!(gw.emulator.requests_received(), 1);
}

#[test]
fn fallback_models_serve_with_their_own_price_and_only_for_keys_allowed_them() {
    let only_primary = "cai-test-only-primary-0003";
    let gw = Gateway::start_with(&format!(
        r#"
[providers.a]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{{EMU}}/v1"

[providers.b]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{{EMU2}}/v1"

[models."primary"]
provider = "a"
price = {{ input = 1.0, output = 1.0 }}
fallbacks = ["second"]

[models."second"]
provider = "b"
price = {{ input = 10.0, output = 20.0 }}

[[keys]]
name = "only-primary"
sha256 = "{hash}"
models = ["primary"]
"#,
        hash = sha256_hex(only_primary.as_bytes()),
    ));
    gw.emulator.set_faults(&[("x-emulator-status", "503")]);
    let a = gw.post("/v1/chat/completions", &chat("primary", false));
    assert_eq!(a.status, 200, "{}", a.text());
    let records = gw.usage_records(1);
    let r = &records[0];
    assert_eq!(r["model"], "second");
    assert_eq!(r["provider"], "b");
    assert_eq!(r["attempts"], 2);
    // "Say hello": 5 prompt tokens, 5 completion tokens at the fallback's price
    assert_eq!(r["cost_micro_usd"], 5 * 10 + 5 * 20);
    let auth = format!("Bearer {only_primary}");
    let refused = gw.request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        chat("primary", false).as_bytes(),
    );
    assert_eq!(refused.status, 503, "the fallback is skipped for this key");
    assert_eq!(gw.emulator2.requests_received(), 1);
}
