//! Circuit breakers per deployment (provider and upstream model), not per provider: one
//! model's failures leave the provider's other models served, and a config reload keeps the
//! state of deployments that did not change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::binary::Binary;
use common::*;

const EXTRA: &str = r#"
[providers.shared]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{EMU}/v1"
breaker = { failures = 2, open_ms = 60000 }

[models."m-one"]
provider = "shared"
upstream_model = "gpt-4o"

[models."m-two"]
provider = "shared"
upstream_model = "gpt-4o-mini"
"#;

fn ready(bin: &Binary) -> serde_json::Value {
    let body = ureq::get(&format!("{}/ready", bin.admin_url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

#[test]
fn one_models_failures_leave_the_providers_other_models_served_across_a_reload() {
    let bin = Binary::start("deployment-circuits", EXTRA);
    for _ in 0..2 {
        let (status, _) = bin.post(KEY, &[("x-emulator-status", "429")], &chat("m-one", false));
        assert_eq!(status, 429);
    }
    let (status, _) = bin.post(KEY, &[], &chat("m-one", false));
    assert_eq!(status, 503, "m-one's circuit is open");
    let (status, _) = bin.post(KEY, &[], &chat("m-two", false));
    assert_eq!(
        status, 200,
        "the same provider's other model is still served"
    );
    let r = ready(&bin);
    assert_eq!(
        r["open_deployments"],
        serde_json::json!(["shared/gpt-4o"]),
        "{r}"
    );
    assert_eq!(r["open_circuits"], serde_json::json!(["shared"]), "{r}");

    // a reload with the same provider keeps the open circuit (before, every reload closed it)
    let config = std::fs::read_to_string(&bin.config).unwrap();
    std::fs::write(
        &bin.config,
        format!("{config}\n[models.\"m-three\"]\nprovider = \"shared\"\n"),
    )
    .unwrap();
    let pid = bin.child.id();
    signal(pid, "HUP");
    bin.line_with("config reloaded");
    let (status, _) = bin.post(KEY, &[], &chat("m-one", false));
    assert_eq!(status, 503, "the reload kept m-one's circuit open");
    let (status, _) = bin.post(KEY, &[], &chat("m-three", false));
    assert_eq!(status, 200);
    let metrics = ureq::get(&format!("{}/metrics", bin.admin_url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(
        metric_sample(
            &metrics,
            &[
                "cheapai_deployment_circuit_state{",
                "model=\"gpt-4o\"",
                "provider=\"shared\""
            ]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_sample(
            &metrics,
            &["cheapai_deployment_circuit_state{", "model=\"gpt-4o-mini\""]
        ),
        Some(0.0)
    );

    // a reload that changes the provider's breaker starts its deployments afresh
    let config = std::fs::read_to_string(&bin.config).unwrap();
    std::fs::write(
        &bin.config,
        config.replace(
            "failures = 2, open_ms = 60000",
            "failures = 3, open_ms = 60000",
        ),
    )
    .unwrap();
    let reloads = bin
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("config reloaded"))
        .count();
    signal(pid, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while bin
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("config reloaded"))
        .count()
        == reloads
    {
        assert!(Instant::now() < deadline, "no second reload");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, _) = bin.post(KEY, &[], &chat("m-one", false));
    assert_eq!(status, 200, "a changed provider's deployments start closed");
}
