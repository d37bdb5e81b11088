//! The access log of the real binary, read from its stderr: with `[log] format = "json"`
//! every line is a JSON object and each request has one access line with its facts, and no
//! line holds a key, the provider's credential or a body; with the default text format
//! the line is today's `key=value` one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::binary::Binary;
use common::*;
use serde_json::Value;

#[test]
fn json_lines_carry_each_requests_facts_and_no_secret() {
    let bin = Binary::start("json", "[log]\nformat = \"json\"\n");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let ua = "logs-test/1.0";
    let (status, ok_id) = bin.post(
        KEY,
        &[("user-agent", ua), ("traceparent", traceparent)],
        &chat("gpt-4o", false),
    );
    assert_eq!(status, 200);
    let (status, stream_id) = bin.post(KEY, &[], &chat("gpt-4o", true));
    assert_eq!(status, 200);
    let wrong_key = "cai-not-a-real-key-5150";
    let (status, refused_id) = bin.post(wrong_key, &[], &chat("gpt-4o", false));
    assert_eq!(status, 401);
    let (status, failed_id) =
        bin.post(KEY, &[("x-emulator-status", "503")], &chat("gpt-4o", false));
    assert_eq!(status, 503);

    let line: Value = bin.access(&ok_id);
    assert_eq!(line["type"], "access");
    assert_eq!(line["request_id"], ok_id.as_str());
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(line["status"], 200);
    assert_eq!(line["method"], "POST");
    assert_eq!(line["endpoint"], "chat_completions");
    assert_eq!(line["model"], "gpt-4o");
    assert_eq!(line["route"], "gpt-4o");
    assert_eq!(line["provider"], "emu");
    assert_eq!(line["attempts"], 1);
    assert_eq!(line["stream"], false);
    assert_eq!(line["input_tokens"], 5, "the emulator's counts");
    assert_eq!(line["output_tokens"], 5);
    assert_eq!(line["cached_tokens"], 0);
    // 5 × $2.5 + 5 × $10 per million tokens, billed in whole micro-dollars
    assert!(
        (line["cost_usd"].as_f64().unwrap() - 0.0000625).abs() <= 1e-6,
        "{line}"
    );
    assert_eq!(line["user_agent"], ua);
    assert!(line["client_addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(line["key_id"].as_str().is_some_and(|k| !k.is_empty()));
    let (total, ttfb) = (
        line["duration_ms"].as_f64().unwrap(),
        line["ttfb_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < ttfb && ttfb <= total && total < 5000.0, "{line}");
    assert!(line["error"].is_null());
    assert!(humantime::parse_rfc3339(line["time"].as_str().unwrap()).is_ok());

    let streamed: Value = bin.access(&stream_id);
    assert_eq!(streamed["stream"], true);
    assert!(streamed["output_tokens"].as_u64().unwrap() > 0);
    assert!(
        streamed["trace_id"].is_null(),
        "no traceparent, tracing off"
    );

    let refused: Value = bin.access(&refused_id);
    assert_eq!(refused["status"], 401);
    assert_eq!(refused["error"], "invalid_key");
    assert!(refused["key_id"].is_null());

    let failed: Value = bin.access(&failed_id);
    assert_eq!(failed["status"], 503);
    assert_eq!(failed["error"], "upstream_status");
    assert_eq!(failed["provider"], "emu");

    // every line on stderr is JSON (start-up and warnings too), and none holds a secret
    // or a body
    let lines = bin.lines.lock().unwrap().clone();
    assert!(lines.len() >= 5, "{lines:?}");
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["time"].is_string(), "{l}");
        for secret in [KEY, PROVIDER_KEY, wrong_key, ADMIN_TOKEN, "Say hello"] {
            assert!(!l.contains(secret), "{secret} in {l}");
        }
    }
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("\"type\":\"access\""))
            .count(),
        4,
        "one access line per request"
    );
    // tracing is off: the exporter's thread never started
    assert!(
        !bin.threads().iter().any(|t| t.starts_with("OpenTelemetry")),
        "{:?}",
        bin.threads()
    );
}

#[test]
fn text_is_the_default_and_tracing_runs_its_exporter_thread() {
    // an endpoint where nothing listens: exports fail in the background, requests do not
    let closed = refused_port();
    let bin = Binary::start(
        "text",
        &format!("[telemetry]\notlp_endpoint = \"http://127.0.0.1:{closed}\"\n"),
    );
    let (status, id) = bin.post(KEY, &[], &chat("gpt-4o", false));
    assert_eq!(status, 200);
    let line = bin.line_with(&id);
    assert!(line.contains(" access] "), "{line}");
    for field in [
        "POST chat_completions status=200",
        "model=gpt-4o route=gpt-4o provider=emu attempts=1 stream=false",
        "tokens=5/5 error=-",
    ] {
        assert!(line.contains(field), "{field} not in {line}");
    }
    assert!(!line.contains(KEY) && !line.contains(PROVIDER_KEY));
    assert!(
        bin.threads().iter().any(|t| t.starts_with("OpenTelemetry")),
        "{:?}",
        bin.threads()
    );
}
