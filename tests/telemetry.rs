//! OpenTelemetry traces: a receiver in the test takes the gateway's OTLP/HTTP exports
//! (protobuf `ExportTraceServiceRequest` on `POST /v1/traces`), and the spans are checked
//! against what the client and the provider saw: one SERVER span per request, one CLIENT
//! span per upstream attempt, GenAI attributes, the trace id in the provider's
//! `traceparent`, a client's trace continued, sampling, and no made-up `traceparent` with
//! tracing off.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{json, Value};

/// SpanKind values of the OTLP protobuf.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;

/// A minimal OTLP/HTTP collector: every exported span, the service names, and every body
/// as received (to look for secrets in).
#[derive(Clone, Default)]
struct Receiver {
    port: u16,
    spans: Arc<Mutex<Vec<Span>>>,
    services: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<u8>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let receiver = Receiver {
            port: listener.local_addr().unwrap().port(),
            ..Default::default()
        };
        let r = receiver.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let r = r.clone();
                std::thread::spawn(move || r.serve(conn));
            }
        });
        receiver
    }

    /// Serves one keep-alive connection: each request is `POST /v1/traces` with a
    /// Content-Length body.
    fn serve(&self, conn: TcpStream) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut conn = conn;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            assert!(line.starts_with("POST /v1/traces "), "unexpected {line:?}");
            let mut length = 0;
            let mut protobuf = false;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end().to_ascii_lowercase();
                if h.is_empty() {
                    break;
                }
                if let Some(v) = h.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if h == "content-type: application/x-protobuf" {
                    protobuf = true;
                }
            }
            assert!(protobuf, "OTLP/HTTP exports are protobuf");
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
            self.bodies.lock().unwrap().extend_from_slice(&body);
            for rs in request.resource_spans {
                for kv in rs.resource.iter().flat_map(|r| r.attributes.iter()) {
                    if kv.key == "service.name" {
                        if let Some(Any::StringValue(v)) =
                            kv.value.as_ref().and_then(|v| v.value.as_ref())
                        {
                            self.services.lock().unwrap().push(v.clone());
                        }
                    }
                }
                for ss in rs.scope_spans {
                    self.spans.lock().unwrap().extend(ss.spans);
                }
            }
            conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
            )
            .unwrap();
        }
    }

    /// The spans of trace `trace_id` once `n` have arrived.
    fn trace(&self, trace_id: &str, n: usize) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| hex::encode(&s.trace_id) == trace_id)
                .cloned()
                .collect();
            if spans.len() >= n {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "trace {trace_id}: {} of {n} spans arrived",
                spans.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The one SERVER span whose `cheapai.request_id` is the answer's `x-request-id`.
    fn request_span(&self, answer: &Answer) -> Span {
        let id = answer.header("x-request-id").expect("x-request-id");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| attr(s, "cheapai.request_id") == json!(id))
                .cloned()
                .collect();
            if !found.is_empty() {
                assert_eq!(found.len(), 1, "one span per request");
                return found.into_iter().next().unwrap();
            }
            assert!(Instant::now() < deadline, "no span for request {id}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn value(v: Option<&Any>) -> Option<Value> {
    Some(match v? {
        Any::StringValue(s) => json!(s),
        Any::IntValue(i) => json!(i),
        Any::DoubleValue(d) => json!(d),
        Any::BoolValue(b) => json!(b),
        other => json!(format!("{other:?}")),
    })
}

/// A span attribute as JSON (null when absent).
fn attr(span: &Span, key: &str) -> Value {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| value(kv.value.as_ref().and_then(|v| v.value.as_ref())))
        .unwrap_or(Value::Null)
}

fn start_traced(receiver: &Receiver, extra: &str) -> Gateway {
    Gateway::start_with(&format!(
        r#"
[telemetry]
otlp_endpoint = "http://127.0.0.1:{}"
service_name = "gw-under-test"
export_delay_ms = 50
{extra}"#,
        receiver.port
    ))
}

/// `traceparent` as the provider received it (the emulator records request headers).
fn traceparent_sent(record: &Value) -> Option<String> {
    record["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "traceparent")
        .map(|h| h[1].as_str().unwrap().to_string())
}

#[test]
fn one_span_per_request_with_gen_ai_attributes_and_the_provider_sees_the_trace() {
    let receiver = Receiver::start();
    let gw = start_traced(&receiver, "");
    for stream in [false, true] {
        let answer = gw.post("/v1/chat/completions", &chat("gpt-4o", stream));
        assert_eq!(answer.status, 200, "{}", answer.text());
        let root = receiver.request_span(&answer);
        let trace_id = hex::encode(&root.trace_id);
        let spans = receiver.trace(&trace_id, 2);
        assert_eq!(spans.len(), 2, "the request and its one attempt");
        let attempt = spans
            .iter()
            .find(|s| s.kind == CLIENT)
            .expect("attempt span");

        assert_eq!(root.kind, SERVER);
        assert!(root.parent_span_id.is_empty(), "a new trace: no parent");
        assert_eq!(root.name, "chat gpt-4o");
        assert_eq!(attempt.parent_span_id, root.span_id);
        let record = gw.usage_record_of(&answer);
        for (key, want) in [
            ("gen_ai.system", json!("openai")),
            ("gen_ai.operation.name", json!("chat")),
            ("gen_ai.request.model", json!("gpt-4o")),
            ("gen_ai.response.model", json!("gpt-4o")),
            ("gen_ai.usage.input_tokens", record["prompt_tokens"].clone()),
            (
                "gen_ai.usage.output_tokens",
                record["completion_tokens"].clone(),
            ),
            ("http.response.status_code", json!(200)),
            ("cheapai.key_id", record["key_id"].clone()),
            ("cheapai.provider", json!("emu")),
            ("cheapai.attempts", json!(1)),
            ("cheapai.stream", json!(stream)),
        ] {
            assert_eq!(attr(&root, key), want, "request span {key}");
        }
        assert!(record["prompt_tokens"].as_u64().unwrap() > 0);
        let ttft = attr(&root, "gen_ai.server.time_to_first_token");
        assert!(ttft.as_f64().is_some_and(|t| t > 0.0 && t < 5.0), "{ttft}");
        assert!(attr(&root, "error.type").is_null());
        for (key, want) in [
            ("gen_ai.system", json!("openai")),
            ("gen_ai.request.model", json!("gpt-4o")),
            (
                "gen_ai.usage.output_tokens",
                record["completion_tokens"].clone(),
            ),
            ("http.response.status_code", json!(200)),
            ("cheapai.attempt", json!(1)),
        ] {
            assert_eq!(attr(attempt, key), want, "attempt span {key}");
        }
        assert_eq!(attempt.name, "chat gpt-4o");

        // the provider got the attempt's span as its parent
        let upstream = gw.upstream_exchange(&answer);
        let sent = traceparent_sent(&upstream).expect("traceparent sent upstream");
        assert_eq!(
            sent,
            format!("00-{trace_id}-{}-01", hex::encode(&attempt.span_id))
        );
    }
    let services = receiver.services.lock().unwrap().clone();
    assert!(!services.is_empty() && services.iter().all(|s| s == "gw-under-test"));
    let bodies = receiver.bodies.lock().unwrap().clone();
    for secret in [KEY, PROVIDER_KEY] {
        assert!(
            !bodies.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} exported"
        );
    }
}

#[test]
fn a_client_traceparent_is_continued_and_refused_requests_are_traced_too() {
    let receiver = Receiver::start();
    let gw = start_traced(&receiver, "");
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{client_trace}-{client_span}-01");
    let answer = gw.post_with(
        "/v1/chat/completions",
        &[("traceparent", &traceparent)],
        &chat("gpt-4o-mini", false),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let root = receiver.request_span(&answer);
    assert_eq!(hex::encode(&root.trace_id), client_trace);
    assert_eq!(hex::encode(&root.parent_span_id), client_span);
    let sent = traceparent_sent(&gw.upstream_exchange(&answer)).unwrap();
    assert!(sent.starts_with(&format!("00-{client_trace}-")), "{sent}");
    assert!(
        !sent.contains(client_span),
        "the provider's parent is the attempt"
    );

    // an unknown model: no attempt, but the request's span with its error
    let answer = gw.post("/v1/chat/completions", &chat("no-such-model", false));
    assert_eq!(answer.status, 404);
    let root = receiver.request_span(&answer);
    assert_eq!(attr(&root, "http.response.status_code"), json!(404));
    assert_eq!(attr(&root, "error.type"), json!("model_not_found"));
    assert_eq!(attr(&root, "gen_ai.request.model"), json!("no-such-model"));
    assert_eq!(attr(&root, "cheapai.attempts"), json!(0));
    let spans = receiver.trace(&hex::encode(&root.trace_id), 1);
    assert_eq!(spans.len(), 1, "no attempt span");
}

#[test]
fn a_failed_first_attempt_is_a_child_span_of_its_own() {
    let receiver = Receiver::start();
    // `flaky` is served by the first emulator (failing every request) and falls back to
    // `steady` on the second
    let gw = start_traced(
        &receiver,
        r#"
[providers.b]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{EMU2}/v1"

[models."flaky"]
provider = "emu"
fallbacks = ["steady"]

[models."steady"]
provider = "b"
"#,
    );
    gw.emulator.set_faults(&[("x-emulator-status", "500")]);
    let answer = gw.post("/v1/chat/completions", &chat("flaky", true));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let root = receiver.request_span(&answer);
    assert_eq!(attr(&root, "cheapai.attempts"), json!(2));
    assert_eq!(attr(&root, "cheapai.provider"), json!("b"));
    assert_eq!(attr(&root, "gen_ai.request.model"), json!("flaky"));
    let mut attempts: Vec<Span> = receiver
        .trace(&hex::encode(&root.trace_id), 3)
        .into_iter()
        .filter(|s| s.kind == CLIENT)
        .collect();
    attempts.sort_by_key(|s| attr(s, "cheapai.attempt").as_i64());
    assert_eq!(attempts.len(), 2);
    let (first, second) = (&attempts[0], &attempts[1]);
    assert!(first.parent_span_id == root.span_id && second.parent_span_id == root.span_id);
    assert_eq!(attr(first, "cheapai.provider"), json!("emu"));
    assert_eq!(attr(first, "http.response.status_code"), json!(500));
    assert_eq!(attr(first, "error.type"), json!("status_500"));
    assert_eq!(
        first.status.as_ref().map(|s| s.code),
        Some(2),
        "status error"
    );
    assert_eq!(attr(second, "cheapai.provider"), json!("b"));
    assert_eq!(attr(second, "http.response.status_code"), json!(200));
    assert!(attr(second, "error.type").is_null());
    assert!(attr(second, "gen_ai.usage.output_tokens").as_i64().unwrap() > 0);

    // each provider saw its own attempt's span id, both in the request's trace
    let trace_id = hex::encode(&root.trace_id);
    let failed = gw.emulator.last_record().unwrap();
    assert_eq!(
        traceparent_sent(&failed).unwrap(),
        format!("00-{trace_id}-{}-01", hex::encode(&first.span_id))
    );
    let seq: u64 = answer.header("x-emulator-seq").unwrap().parse().unwrap();
    let served = gw.emulator2.record(seq).unwrap();
    assert_eq!(
        traceparent_sent(&served).unwrap(),
        format!("00-{trace_id}-{}-01", hex::encode(&second.span_id))
    );
}

/// With tracing off nothing of it runs (`tests/logs.rs` checks that the real binary has no
/// exporter thread then); here: the provider gets no `traceparent` the gateway made up.
#[test]
fn with_tracing_off_no_traceparent_is_made_up_and_a_clients_passes_through() {
    let gw = Gateway::start();
    let answer = gw.post("/v1/chat/completions", &chat("gpt-4o", false));
    assert_eq!(answer.status, 200);
    assert_eq!(traceparent_sent(&gw.upstream_exchange(&answer)), None);
    // a client's own traceparent passes through untouched, as any other header
    let theirs = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let answer = gw.post_with(
        "/v1/chat/completions",
        &[("traceparent", theirs)],
        &chat("gpt-4o", true),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(
        traceparent_sent(&gw.upstream_exchange(&answer)).as_deref(),
        Some(theirs)
    );
}

#[test]
fn the_real_binary_sends_what_is_queued_when_it_stops() {
    let receiver = Receiver::start();
    let [gw, admin, emu] = free_ports();
    let dir = std::env::temp_dir().join(format!("cheapai-telemetry-{gw}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.toml");
    // a batch delay far beyond the test: only the flush at shutdown can send the span
    let extra = format!(
        "[emulator]\nlisten = \"127.0.0.1:{emu}\"\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:{}\"\nexport_delay_ms = 600000\n",
        receiver.port
    );
    std::fs::write(&config, config_text(gw, admin, emu, &extra)).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cheapai-gateway"))
        .args(["run", "--config"])
        .arg(&config)
        .env("TEST_PROVIDER_KEY", PROVIDER_KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(gw);
    wait_for_port(emu);
    let response = ureq::post(&format!("http://127.0.0.1:{gw}/v1/chat/completions"))
        .set("authorization", &format!("Bearer {KEY}"))
        .send_string(&chat("gpt-4o", false))
        .unwrap();
    let answer = Answer {
        status: response.status(),
        headers: [(
            "x-request-id".to_string(),
            response.header("x-request-id").unwrap().to_string(),
        )]
        .into(),
        body: Vec::new(),
    };
    assert!(
        receiver.spans.lock().unwrap().is_empty(),
        "batched, not sent"
    );
    signal(child.id(), "TERM");
    let root = receiver.request_span(&answer);
    assert_eq!(attr(&root, "http.response.status_code"), json!(200));
    receiver.trace(&hex::encode(&root.trace_id), 2);
    let _ = child.wait();
}

#[test]
fn sample_ratio_zero_records_no_trace_the_gateway_starts_but_keeps_a_clients() {
    let receiver = Receiver::start();
    let gw = start_traced(&receiver, "sample_ratio = 0.0\n");
    let answer = gw.post("/v1/chat/completions", &chat("gpt-4o", false));
    assert_eq!(answer.status, 200);
    // the provider still gets a traceparent, marked not sampled
    let sent = traceparent_sent(&gw.upstream_exchange(&answer)).unwrap();
    assert!(sent.ends_with("-00"), "{sent}");
    // a client's sampled trace is recorded whatever the ratio
    let theirs = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = gw.post_with(
        "/v1/chat/completions",
        &[("traceparent", theirs)],
        &chat("gpt-4o", false),
    );
    let root = receiver.request_span(&traced);
    assert_eq!(
        hex::encode(&root.trace_id),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let id = answer.header("x-request-id").unwrap();
    assert!(
        !receiver
            .spans
            .lock()
            .unwrap()
            .iter()
            .any(|s| attr(s, "cheapai.request_id") == json!(id)),
        "the unsampled request was exported"
    );
}
