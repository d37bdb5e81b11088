//! The per-token and per-provider metrics: `cheapai_time_per_output_token_seconds` of paced
//! streams, `cheapai_upstream_inflight` while a stream is under way and after, and Pingora's
//! pool figure. (Its own test binary: metrics are process-wide.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

/// Scrapes until `inflight{provider="emu"}` is `want` (5 s at most).
fn wait_inflight(gw: &Gateway, want: f64) {
    let sample =
        |text: &str| metric_sample(text, &["cheapai_upstream_inflight{", "provider=\"emu\""]);
    let text = gw.scrape_until(Duration::from_secs(5), |text| sample(text) == Some(want));
    assert_eq!(sample(&text), Some(want), "inflight");
}

#[test]
fn time_per_output_token_and_upstream_inflight() {
    let gw = Gateway::start();
    let text = gw.scrape();
    assert_eq!(
        metric_sample(&text, &["cheapai_upstream_inflight{", "provider=\"emu\""]),
        Some(0.0),
        "every provider is listed from the start"
    );
    assert_eq!(
        metric_sample(&text, &["cheapai_upstream_pool_unexpected_data_total"]),
        Some(0.0)
    );
    assert!(text.contains("# TYPE cheapai_upstream_pool_unexpected_data_total counter"));

    // a stream of 10 tokens, one every 30 ms: about 30 ms per token after the first
    let paced = [
        ("x-emulator-chunks", "10"),
        ("x-emulator-chunk-delay-ms", "30"),
    ];
    let url = gw.url.clone();
    let stream = std::thread::spawn(move || {
        ureq::post(&format!("{url}/v1/chat/completions"))
            .set("authorization", &format!("Bearer {KEY}"))
            .set(paced[0].0, paced[0].1)
            .set(paced[1].0, paced[1].1)
            .send_string(&chat("gpt-4o", true))
            .unwrap()
            .into_string()
            .unwrap()
    });
    wait_inflight(&gw, 1.0);
    assert!(stream.join().unwrap().contains("[DONE]"));
    wait_inflight(&gw, 0.0);

    let a = gw.post_with("/v1/chat/completions", &paced, &chat("gpt-4o", true));
    assert_eq!(a.status, 200);
    // neither a whole answer nor a one-token stream has a time per token
    assert_eq!(
        gw.post("/v1/chat/completions", &chat("gpt-4o", false))
            .status,
        200
    );
    let one = [("x-emulator-chunks", "1")];
    assert_eq!(
        gw.post_with("/v1/chat/completions", &one, &chat("gpt-4o-mini", true))
            .status,
        200
    );
    assert_eq!(gw.usage_records(4).len(), 4);

    let text = gw.scrape();
    let labels = ["model=\"gpt-4o\"", "provider=\"emu\""];
    let of = |name: &str| {
        let mut parts = vec![name];
        parts.extend(labels);
        metric_sample(&text, &parts).unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    assert_eq!(of("cheapai_time_per_output_token_seconds_count{"), 2.0);
    let mean = of("cheapai_time_per_output_token_seconds_sum{") / 2.0;
    assert!((0.02..0.2).contains(&mean), "mean time per token {mean}");
    assert_eq!(
        metric_sample(
            &text,
            &[
                "cheapai_time_per_output_token_seconds_count{",
                "model=\"gpt-4o-mini\""
            ]
        ),
        None,
        "a one-token stream has no time per token"
    );
}

#[test]
fn retries_count_only_failures_that_were_followed_by_another_attempt() {
    let gw = Gateway::start_with(
        r#"
[models."gpt-once"]
provider = "emu"

[models."gpt-twice"]
provider = "emu"
retries = 1
"#,
    );
    let failing = [("x-emulator-status", "503")];
    let retries = |gw: &Gateway| {
        let text = gw.scrape();
        metric_sample(
            &text,
            &["cheapai_upstream_retries_total{", "provider=\"emu\""],
        )
        .unwrap_or(0.0)
    };
    // one deployment, no retries configured: one attempt, and nothing retried
    let once = gw.post_with("/v1/chat/completions", &failing, &chat("gpt-once", false));
    assert_eq!(once.status, 503, "{}", once.text());
    assert_eq!(retries(&gw), 0.0, "a last failure is not a retry");
    // one retry allowed: the first failure was retried, the second was the last
    let twice = gw.post_with("/v1/chat/completions", &failing, &chat("gpt-twice", false));
    assert_eq!(twice.status, 503, "{}", twice.text());
    assert_eq!(retries(&gw), 1.0);
    let text = gw.scrape();
    let failed_attempts: f64 = text
        .lines()
        .filter(|l| l.starts_with("cheapai_upstream_attempts_total{"))
        .filter(|l| l.contains("provider=\"emu\"") && !l.contains("outcome=\"ok\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(failed_attempts, 3.0, "{text}");
}
