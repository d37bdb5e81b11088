//! Prometheus metrics: the counters match the requests sent, `promtool check metrics`
//! accepts the exposition, and a real Prometheus server scrapes it. (Its own test binary:
//! metrics are process-wide.)

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn counters_match_requests_and_prometheus_scrapes_them() {
    let gw = Gateway::start();
    for _ in 0..3 {
        assert_eq!(
            gw.post("/v1/chat/completions", &chat("gpt-4o", false))
                .status,
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(
            gw.post("/v1/chat/completions", &chat("gpt-4o", true))
                .status,
            200
        );
    }
    let failed = gw.post_with(
        "/v1/chat/completions",
        &[("x-emulator-status", "500")],
        &chat("gpt-4o", false),
    );
    assert_eq!(failed.status, 500);
    assert_eq!(
        gw.post("/v1/chat/completions", &chat("nope", false)).status,
        404
    );

    // The bookkeeping (where the counters move) runs after the answer is sent, so the last
    // request may not be counted yet when its answer arrives: scrape until it is.
    let not_found = ["cheapai_requests_total{", "model=\"-\"", "status=\"404\""];
    let text = gw.scrape_until(Duration::from_secs(2), |text| {
        metric_sample(text, &not_found).is_some()
    });
    let ok = [
        "cheapai_requests_total{",
        "model=\"gpt-4o\"",
        "provider=\"emu\"",
        "status=\"200\"",
    ];
    assert_eq!(metric_sample(&text, &ok), Some(5.0), "{text}");
    let err = [
        "cheapai_requests_total{",
        "model=\"gpt-4o\"",
        "status=\"500\"",
    ];
    assert_eq!(metric_sample(&text, &err), Some(1.0));
    assert_eq!(metric_sample(&text, &not_found), Some(1.0), "{text}");
    // 5 answered requests × 5 prompt and 5 completion tokens (the emulator's counts)
    assert_eq!(
        metric_sample(
            &text,
            &[
                "cheapai_tokens_total{",
                "kind=\"prompt\"",
                "model=\"gpt-4o\""
            ]
        ),
        Some(25.0)
    );
    assert_eq!(
        metric_sample(
            &text,
            &[
                "cheapai_tokens_total{",
                "kind=\"completion\"",
                "model=\"gpt-4o\""
            ]
        ),
        Some(25.0)
    );
    assert_eq!(
        metric_sample(
            &text,
            &[
                "cheapai_upstream_errors_total{",
                "reason=\"upstream_status\""
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_sample(
            &text,
            &[
                "cheapai_request_duration_seconds_count{",
                "model=\"gpt-4o\""
            ]
        ),
        Some(6.0)
    );
    assert_eq!(
        metric_sample(
            &text,
            &[
                "cheapai_time_to_first_token_seconds_count{",
                "model=\"gpt-4o\""
            ]
        ),
        Some(5.0)
    );
    assert_eq!(
        metric_sample(&text, &["cheapai_inflight_requests"]),
        Some(0.0)
    );
    let cost =
        metric_sample(&text, &["cheapai_cost_usd_total{", "model=\"gpt-4o\""]).unwrap_or_default();
    assert!((cost - 5.0 * 63e-6).abs() < 1e-9, "{cost}");
    for bucket in ["le=\"0.005\"", "le=\"81.92\""] {
        assert!(
            text.contains(bucket),
            "LLM latency buckets 5 ms .. 120 s: {bucket}"
        );
    }

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/setup installs it)");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = promtool.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // a real Prometheus server scraping the admin listener sees the counters move
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("cheapai-prom-{port}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let admin = gw.admin_url.trim_start_matches("http://");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: gw\n    static_configs:\n      - targets: ['{admin}']\n"),
    )
    .expect("config");
    let mut prometheus = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus server");
    let query = |q: &str| -> Option<f64> {
        let url = format!("http://127.0.0.1:{port}/api/v1/query?query={q}");
        let v: serde_json::Value =
            serde_json::from_str(&ureq::get(&url).call().ok()?.into_string().ok()?).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = query("sum(cheapai_requests_total)");
        if seen == Some(7.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(seen, Some(7.0), "Prometheus never scraped 7 requests");
    assert_eq!(
        gw.post("/v1/chat/completions", &chat("gpt-4o", false))
            .status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while query("sum(cheapai_requests_total)") != Some(8.0) {
        assert!(
            Instant::now() < deadline,
            "the counter did not move in Prometheus"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
