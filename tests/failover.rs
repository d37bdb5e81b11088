//! The fault suite: every way a provider fails, on real sockets (the emulator, a closed port,
//! a server that stalls or resets), for JSON and streaming requests, on OpenAI- and
//! Anthropic-format clients, with and without a healthy second deployment. Each case checks
//! what the client receives, how many requests each provider saw, and the usage records.

// test helpers fail loudly
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::faulty::{FaultyServer, Misbehave};
use common::*;
use serde_json::{json, Value};

/// Client requests per case: enough that both deployments are picked first sometimes.
const ROUNDS: usize = 6;

/// Which client API a case speaks.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Api {
    OpenAi,
    Anthropic,
}

impl Api {
    fn path(self) -> &'static str {
        match self {
            Api::OpenAi => "/v1/chat/completions",
            Api::Anthropic => "/v1/messages",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Api::OpenAi => "openai_compatible",
            Api::Anthropic => "anthropic",
        }
    }

    fn base(self, port: u16) -> String {
        match self {
            Api::OpenAi => format!("http://127.0.0.1:{port}/v1"),
            Api::Anthropic => format!("http://127.0.0.1:{port}"),
        }
    }

    fn body(self, stream: bool) -> String {
        let messages = json!([{"role": "user", "content": "Say hello"}]);
        match self {
            Api::OpenAi => json!({"model": "duo", "stream": stream, "messages": messages}),
            Api::Anthropic => {
                json!({"model": "duo", "stream": stream, "max_tokens": 64, "messages": messages})
            }
        }
        .to_string()
    }

    /// The whole answer text of a successful JSON or SSE answer.
    fn text(self, a: &Answer, stream: bool) -> String {
        if !stream {
            let v = a.json();
            return match self {
                Api::OpenAi => v["choices"][0]["message"]["content"].as_str(),
                Api::Anthropic => v["content"][0]["text"].as_str(),
            }
            .unwrap_or_default()
            .to_string();
        }
        a.sse_data()
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| match self {
                Api::OpenAi => v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from),
                Api::Anthropic => v["delta"]["text"].as_str().map(String::from),
            })
            .collect()
    }

    /// Whether a streamed answer ends with this API's error event.
    fn ends_with_error_event(self, a: &Answer) -> bool {
        let last = a.sse_data().last().cloned().unwrap_or_default();
        let v: Value = serde_json::from_str(&last).unwrap_or_default();
        match self {
            Api::OpenAi => v["error"]["message"].is_string(),
            Api::Anthropic => v["type"] == "error" && v["error"]["type"].is_string(),
        }
    }
}

const EXPECTED: &str = "Hello world1 world2 world3 world4";

/// Where deployment `a` (the failing one) lives.
enum Upstream {
    /// The first emulator, with these fault headers on every request.
    Emulator(&'static [(&'static str, &'static str)]),
    /// A closed port.
    Refused,
    /// A raw server that misbehaves so.
    Faulty(Misbehave),
}

/// A running gateway whose model `duo` has deployment `a` (failing) and, when `backup`,
/// deployment `b` (healthy, the second emulator); short timeouts, a breaker that does not
/// open during a case.
struct Setup {
    gw: Gateway,
    faulty: Option<FaultyServer>,
    api: Api,
}

fn setup(api: Api, upstream: Upstream, backup: bool, model_extra: &str) -> Setup {
    let faulty = match &upstream {
        Upstream::Faulty(mode) => Some(FaultyServer::start(*mode)),
        _ => None,
    };
    let a_port = match &upstream {
        Upstream::Emulator(_) => "{EMU}".to_string(),
        Upstream::Refused => refused_port().to_string(),
        Upstream::Faulty(_) => faulty.as_ref().map(|f| f.port).unwrap_or(0).to_string(),
    };
    let a_base = api.base(0).replace(":0", &format!(":{a_port}"));
    let deployments = if backup {
        r#"[{ provider = "a" }, { provider = "b" }]"#
    } else {
        r#"[{ provider = "a" }]"#
    };
    let extra = format!(
        r#"
[providers.a]
kind = "{kind}"
base_url = "{a_base}"
connect_timeout_ms = 300
first_byte_timeout_ms = 600
idle_timeout_ms = 400
breaker = {{ failures = 1000, open_ms = 1000 }}

[providers.b]
kind = "{kind}"
base_url = "{b_base}"
connect_timeout_ms = 300
first_byte_timeout_ms = 600
idle_timeout_ms = 400

[models."duo"]
deployments = {deployments}
{model_extra}
"#,
        kind = api.kind(),
        b_base = api.base(0).replace(":0", ":{EMU2}"),
    );
    let gw = Gateway::start_with(&extra);
    if let Upstream::Emulator(faults) = upstream {
        gw.emulator.set_faults(faults);
    }
    Setup { gw, faulty, api }
}

impl Setup {
    fn send(&self, stream: bool) -> Answer {
        self.gw.post(self.api.path(), &self.api.body(stream))
    }

    /// Requests deployment `a` received.
    fn a_requests(&self) -> u64 {
        match &self.faulty {
            Some(f) => f.requests(),
            None => self.gw.emulator.requests_received(),
        }
    }

    fn b_requests(&self) -> u64 {
        self.gw.emulator2.requests_received()
    }
}

/// With a healthy second deployment, a retryable failure of `a` never reaches the client:
/// every answer is the model's, `b` served every request, `a` saw exactly the requests whose
/// record says two attempts, and each client request has one usage record.
fn hidden_by_the_backup(api: Api, upstream: fn() -> Upstream, stream: bool) {
    let s = setup(api, upstream(), true, "");
    for _ in 0..ROUNDS {
        let a = s.send(stream);
        assert_eq!(a.status, 200, "{api:?} stream={stream}: {}", a.text());
        assert_eq!(api.text(&a, stream), EXPECTED, "{}", a.text());
    }
    let records = s.gw.usage_records(ROUNDS);
    assert_eq!(records.len(), ROUNDS, "one record per client request");
    let retried = records.iter().filter(|r| r["attempts"] == 2).count() as u64;
    for r in &records {
        assert_eq!(r["provider"], "b", "{r}");
        assert_eq!(r["status"], 200, "{r}");
        assert!(r["attempts"] == 1 || r["attempts"] == 2, "{r}");
    }
    assert_eq!(s.b_requests(), ROUNDS as u64);
    if s.faulty.is_some() || matches!(upstream(), Upstream::Emulator(_)) {
        assert_eq!(
            s.a_requests(),
            retried,
            "a saw exactly the retried requests"
        );
    }
}

/// Without a second deployment (and no retries), the client gets the failure in its own
/// dialect with `status`; `a` saw each request once.
fn reaches_the_client(api: Api, upstream: fn() -> Upstream, stream: bool, status: u16) {
    let s = setup(api, upstream(), false, "");
    let a = s.send(stream);
    assert_eq!(a.status, status, "{api:?} stream={stream}: {}", a.text());
    assert_eq!(a.header("content-type"), Some("application/json"), "{a:?}");
    let v = a.json();
    match api {
        Api::OpenAi => assert!(v["error"]["message"].is_string(), "{v}"),
        Api::Anthropic => assert_eq!(v["type"], "error", "{v}"),
    }
    assert!(a.header("x-request-id").is_some());
    let records = s.gw.usage_records(1);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["status"], status);
    assert_eq!(records[0]["attempts"], 1);
    if s.faulty.is_some() || matches!(upstream(), Upstream::Emulator(_)) {
        assert_eq!(s.a_requests(), 1);
    }
}

fn refused() -> Upstream {
    Upstream::Refused
}
fn reset_before_header() -> Upstream {
    Upstream::Faulty(Misbehave::ResetBeforeHeader)
}
fn closed_before_header() -> Upstream {
    Upstream::Faulty(Misbehave::CloseBeforeHeader)
}
fn reset_mid_body() -> Upstream {
    Upstream::Faulty(Misbehave::ResetMidBody)
}
fn stall_before_first_byte() -> Upstream {
    Upstream::Faulty(Misbehave::Stall)
}
fn status_429() -> Upstream {
    Upstream::Emulator(&[("x-emulator-status", "429")])
}
fn status_429_retry_after_short() -> Upstream {
    Upstream::Emulator(&[
        ("x-emulator-status", "429"),
        ("x-emulator-retry-after", "1"),
    ])
}
fn status_500() -> Upstream {
    Upstream::Emulator(&[("x-emulator-status", "500")])
}
fn status_503() -> Upstream {
    Upstream::Emulator(&[("x-emulator-status", "503")])
}
fn status_529() -> Upstream {
    Upstream::Emulator(&[("x-emulator-status", "529")])
}
fn malformed_json() -> Upstream {
    Upstream::Emulator(&[("x-emulator-malformed", "json")])
}
fn malformed_sse() -> Upstream {
    Upstream::Emulator(&[("x-emulator-malformed", "sse")])
}

/// A named way for deployment `a` to fail.
type Case = (&'static str, fn() -> Upstream);

const RETRYABLE: &[Case] = &[
    ("refused", refused),
    ("reset before the header", reset_before_header),
    ("closed before the header", closed_before_header),
    ("429", status_429),
    ("429 with a short Retry-After", status_429_retry_after_short),
    ("500", status_500),
    ("503", status_503),
    ("529", status_529),
];

#[test]
fn retryable_failures_are_hidden_by_a_healthy_deployment_openai_json() {
    for (name, upstream) in RETRYABLE
        .iter()
        .chain([&("reset mid-body", reset_mid_body as _)])
    {
        eprintln!("case: {name}");
        hidden_by_the_backup(Api::OpenAi, *upstream, false);
    }
}

#[test]
fn retryable_failures_are_hidden_by_a_healthy_deployment_openai_stream() {
    let stream_only: &[Case] = &[
        ("stall before the first byte", stall_before_first_byte),
        ("malformed SSE", malformed_sse),
    ];
    for (name, upstream) in RETRYABLE.iter().chain(stream_only) {
        eprintln!("case: {name}");
        hidden_by_the_backup(Api::OpenAi, *upstream, true);
    }
}

#[test]
fn retryable_failures_are_hidden_by_a_healthy_deployment_anthropic() {
    for (name, upstream) in RETRYABLE {
        for stream in [false, true] {
            eprintln!("case: {name} stream={stream}");
            hidden_by_the_backup(Api::Anthropic, *upstream, stream);
        }
    }
    let transport: &[(Case, bool)] = &[
        (("reset mid-body", reset_mid_body), false),
        (
            ("stall before the first byte", stall_before_first_byte),
            true,
        ),
        (("malformed SSE", malformed_sse), true),
    ];
    for ((name, upstream), stream) in transport {
        eprintln!("case: {name} stream={stream}");
        hidden_by_the_backup(Api::Anthropic, *upstream, *stream);
    }
}

#[test]
fn without_a_second_deployment_the_client_gets_the_failure_in_its_dialect() {
    // name, upstream, OpenAI status, Anthropic status
    type Expected = (&'static str, fn() -> Upstream, u16, u16);
    let cases: &[Expected] = &[
        // name, upstream, OpenAI status, Anthropic status
        ("refused", refused, 502, 502),
        ("reset before the header", reset_before_header, 502, 502),
        ("429", status_429, 429, 429),
        ("500", status_500, 500, 500),
        ("503", status_503, 503, 503),
        ("529", status_529, 529, 529),
        ("malformed JSON answer", malformed_json, 502, 502),
    ];
    for (name, upstream, openai, anthropic) in cases {
        for stream in [false, true] {
            eprintln!("case: {name} stream={stream}");
            reaches_the_client(Api::OpenAi, *upstream, stream, *openai);
            reaches_the_client(Api::Anthropic, *upstream, stream, *anthropic);
        }
    }
}

#[test]
fn a_non_streaming_request_is_not_resent_after_a_first_byte_timeout_unless_allowed() {
    // the provider may still be generating (and billing) the first answer
    let s = setup(Api::OpenAi, stall_before_first_byte(), true, "");
    let mut timed_out = 0;
    for _ in 0..ROUNDS {
        let a = s.send(false);
        match a.status {
            200 => {}
            504 => timed_out += 1,
            other => panic!("unexpected {other}: {}", a.text()),
        }
    }
    assert_eq!(
        timed_out as u64,
        s.a_requests(),
        "each stalled request got 504"
    );
    assert_eq!(
        s.b_requests() + s.a_requests(),
        ROUNDS as u64,
        "nothing was sent twice"
    );
    let allowed = setup(
        Api::OpenAi,
        stall_before_first_byte(),
        true,
        "retry_non_stream_timeouts = true",
    );
    for _ in 0..ROUNDS {
        assert_eq!(allowed.send(false).status, 200);
    }
    assert_eq!(allowed.b_requests(), ROUNDS as u64);
}

/// A whole answer that arrived but cannot be read was billed by the provider: it is not
/// asked for again elsewhere unless the model allows it, and its record says so.
#[test]
fn an_unreadable_whole_answer_is_not_resent_unless_allowed() {
    for api in [Api::OpenAi, Api::Anthropic] {
        let s = setup(api, malformed_json(), true, "");
        let mut unreadable = 0;
        for _ in 0..ROUNDS {
            let a = s.send(false);
            match a.status {
                200 => {}
                502 => {
                    unreadable += 1;
                    if api == Api::OpenAi {
                        assert_eq!(a.json()["error"]["code"], "upstream_unreadable_answer");
                    }
                }
                other => panic!("unexpected {other}: {}", a.text()),
            }
        }
        assert_eq!(unreadable as u64, s.a_requests(), "{api:?}");
        assert_eq!(
            s.a_requests() + s.b_requests(),
            ROUNDS as u64,
            "{api:?}: nothing was sent twice"
        );
        let records = s.gw.usage_records(ROUNDS);
        let marked = records
            .iter()
            .filter(|r| r["error"] == "upstream_unreadable")
            .count();
        assert_eq!(marked, unreadable, "{records:?}");
        assert!(records.iter().all(|r| r["attempts"] == 1), "{records:?}");

        let allowed = setup(
            api,
            malformed_json(),
            true,
            "retry_unreadable_answers = true",
        );
        for _ in 0..ROUNDS {
            assert_eq!(allowed.send(false).status, 200);
        }
        assert_eq!(allowed.b_requests(), ROUNDS as u64);
    }
}

/// Once a byte reached the client nothing is sent again: a stream cut or stalled mid-way
/// ends with the error event in the client's dialect, and no other deployment sees it.
#[test]
fn a_stream_that_fails_after_its_first_byte_ends_with_an_error_event() {
    let faults: &[(&str, &'static [(&'static str, &'static str)])] = &[
        ("cut mid-event", &[("x-emulator-cut-mid-event", "2")]),
        ("stall mid-stream", &[("x-emulator-stall-after", "2")]),
        (
            "error event mid-stream",
            &[("x-emulator-stream-error-after", "2")],
        ),
    ];
    for (name, fault) in faults {
        for api in [Api::OpenAi, Api::Anthropic] {
            eprintln!("case: {name} {api:?}");
            let s = setup(api, Upstream::Emulator(fault), true, "");
            let mut cut = 0u64;
            for _ in 0..ROUNDS {
                let a = s.send(true);
                assert_eq!(a.status, 200, "{}", a.text());
                if api.text(&a, true) == EXPECTED {
                    continue;
                }
                cut += 1;
                assert!(api.ends_with_error_event(&a), "{}", a.text());
                let delivered = api.text(&a, true);
                assert!(EXPECTED.starts_with(&delivered), "{}", a.text());
            }
            assert_eq!(cut, s.a_requests(), "every stream a started was cut, once");
            assert_eq!(s.a_requests() + s.b_requests(), ROUNDS as u64);
            let records = s.gw.usage_records(ROUNDS);
            assert!(records.iter().all(|r| r["attempts"] == 1), "{records:?}");
            let errors = records.iter().filter(|r| r["error"].is_string()).count();
            assert_eq!(errors as u64, cut);
        }
    }
}

#[test]
fn a_long_retry_after_is_passed_to_the_client_and_a_short_one_waited_out() {
    let s = setup(
        Api::OpenAi,
        Upstream::Emulator(&[
            ("x-emulator-status", "429"),
            ("x-emulator-retry-after", "30"),
        ]),
        false,
        "retries = 2",
    );
    let a = s.send(false);
    assert_eq!(a.status, 429);
    assert_eq!(a.header("retry-after"), Some("30"));
    assert_eq!(s.a_requests(), 1, "a long Retry-After is not waited out");

    let s = setup(
        Api::OpenAi,
        status_429_retry_after_short(),
        false,
        "retries = 1",
    );
    let started = Instant::now();
    let a = s.send(false);
    assert_eq!(a.status, 429);
    assert!(started.elapsed() >= Duration::from_secs(1), "waited 1 s");
    assert_eq!(s.a_requests(), 2, "then tried the same deployment again");
}

#[test]
fn other_client_errors_are_answered_at_once_and_not_retried() {
    let s = setup(
        Api::OpenAi,
        Upstream::Emulator(&[("x-emulator-status", "400")]),
        true,
        "retries = 3",
    );
    for _ in 0..ROUNDS {
        let a = s.send(false);
        // the first pick decides: a answers 400 (passed on), b answers 200
        assert!(a.status == 400 || a.status == 200, "{}", a.text());
    }
    assert_eq!(s.a_requests() + s.b_requests(), ROUNDS as u64);
}

#[test]
fn the_deadline_bounds_all_attempts_together() {
    // three stalled deployments with a 600 ms first-byte timeout each would take 1.8 s
    let stall = FaultyServer::start(Misbehave::Stall);
    let gw = Gateway::start_with(&format!(
        r#"
[providers.s]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{port}/v1"
first_byte_timeout_ms = 600

[models."slow"]
deployments = [{{ provider = "s" }}]
retries = 2
retry_non_stream_timeouts = true
deadline_ms = 900
"#,
        port = stall.port
    ));
    let started = Instant::now();
    let a = gw.post("/v1/chat/completions", &chat("slow", false));
    let took = started.elapsed();
    assert_eq!(a.status, 504, "{}", a.text());
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(took >= Duration::from_millis(850), "took {took:?}");
    assert_eq!(
        stall.requests(),
        2,
        "the second attempt was cut short by the deadline"
    );
}
