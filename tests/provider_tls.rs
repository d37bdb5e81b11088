//! Providers over TLS: a provider behind a TLS front signed by a private CA (`ca_file`),
//! reached over HTTP/2 (the default over TLS: many streams on one connection, one connection for a
//! cold burst) and over HTTP/1.1 (`http2 = false`);
//! answers, streams and large bodies on both; a provider whose certificate is not trusted
//! fails as a TLS failure, in the client's error, the log and the metrics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::emulator::StandaloneEmulator;
use common::tls::TestCa;
use common::*;
use serde_json::{json, Value};

/// The emulator serving plain HTTP and, on the second port, HTTPS with `ca`'s certificate.
fn tls_provider(ca: &TestCa) -> (StandaloneEmulator, u16) {
    let (cert, key) = ca.issue("localhost");
    let [plain, tls] = free_ports();
    let emulator = StandaloneEmulator::start_with_tls(plain, Some((tls, &cert, &key)));
    (emulator, tls)
}

fn config(tls_port: u16, ca: &TestCa) -> String {
    let ca_file = ca.ca_file().display().to_string();
    let provider = |name: &str, lines: &str| {
        format!(
            "[providers.{name}]\nkind = \"openai_compatible\"\n\
             base_url = \"https://localhost:{tls_port}/v1\"\napi_key_env = \"TEST_PROVIDER_KEY\"\n\
             {lines}\n\n[models.\"{name}\"]\nprovider = \"{name}\"\nupstream_model = \"gpt-4o\"\n\n"
        )
    };
    [
        // HTTP/2 is the default over TLS
        provider("over-h2", &format!("ca_file = \"{ca_file}\"")),
        provider(
            "over-h1",
            &format!("http2 = false\nca_file = \"{ca_file}\""),
        ),
        provider("untrusted", ""),
    ]
    .concat()
}

fn chat_body(model: &str, stream: bool, content: &str) -> String {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]})
        .to_string()
}

/// What the TLS-fronted emulator recorded for `answer`.
fn recorded(provider: &StandaloneEmulator, answer: &Answer) -> Value {
    let seq: u64 = answer.header("x-emulator-seq").unwrap().parse().unwrap();
    provider.emulator.record(seq).unwrap()
}

/// Established connections from this process to `port` (the gateway's upstream side).
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!(":{port:04X} ");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3
                && format!("{} ", &cols[2][cols[2].len() - 5..]) == remote
                && cols[3] == "01"
        })
        .count()
}

#[test]
fn answers_streams_and_large_bodies_over_http2_and_http1() {
    let ca = TestCa::new("provider");
    let (provider, tls_port) = tls_provider(&ca);
    let gw = Gateway::start_with(&config(tls_port, &ca));
    for (model, version) in [("over-h2", "HTTP/2.0"), ("over-h1", "HTTP/1.1")] {
        let a = gw.post("/v1/chat/completions", &chat_body(model, false, "hi"));
        assert_eq!(a.status, 200, "{model}: {}", a.text());
        assert_eq!(
            a.json()["choices"][0]["message"]["content"],
            "Hello world1 world2 world3 world4"
        );
        let seen = recorded(&provider, &a);
        assert_eq!(seen["http_version"], version, "{model}");
        let auth = seen["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == "authorization")
            .map(|h| h[1].clone());
        assert_eq!(
            auth,
            Some(json!(format!("Bearer {PROVIDER_KEY}"))),
            "{model}"
        );

        let s = gw.post("/v1/chat/completions", &chat_body(model, true, "hi"));
        assert_eq!(s.status, 200, "{model} stream: {}", s.text());
        let data = s.sse_data();
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{model}");
        assert_eq!(recorded(&provider, &s)["http_version"], version);

        // a body far past one HTTP/2 flow-control window arrives whole
        let big = "x".repeat(3 << 20);
        let body = chat_body(model, false, &big);
        let a = gw.post("/v1/chat/completions", &body);
        assert_eq!(a.status, 200, "{model} large: {}", a.text());
        let seen = recorded(&provider, &a);
        assert!(seen["body_bytes"].as_u64().unwrap() > 3 << 20, "{seen}");
    }
}

/// Sends `count` streams of `model` together, each open for over a second, and returns the
/// most connections to `tls_port` open at once while they ran.
fn peak_connections(gw: &Gateway, tls_port: u16, model: &'static str, count: usize) -> usize {
    let url = format!("{}/v1/chat/completions", gw.url);
    let start = std::sync::Arc::new(std::sync::Barrier::new(count));
    let streams: Vec<_> = (0..count)
        .map(|_| {
            let (url, start) = (url.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                ureq::post(&url)
                    .set("authorization", &format!("Bearer {KEY}"))
                    .set("x-emulator-chunk-delay-ms", "300")
                    .send_string(&chat_body(model, true, "hi"))
                    .map(|r| r.into_string().unwrap_or_default())
            })
        })
        .collect();
    let mut open = 0;
    while !streams.iter().all(|s| s.is_finished()) {
        open = open.max(connections_to(tls_port));
        std::thread::sleep(Duration::from_millis(20));
    }
    for s in streams {
        let body = s.join().unwrap().unwrap();
        assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    }
    open
}

#[test]
fn concurrent_streams_share_one_http2_connection_from_a_cold_start() {
    let ca = TestCa::new("multiplex");
    let (_provider, tls_port) = tls_provider(&ca);
    let gw = Gateway::start_with(&config(tls_port, &ca));
    // to a provider the gateway has no connection to yet: the first stream dials, the others
    // wait for its connection (before, each dialed its own: 32 connections)
    let cold = peak_connections(&gw, tls_port, "over-h2", 32);
    assert_eq!(
        cold, 1,
        "a cold burst of 32 streams opened {cold} connections"
    );
    // and again, on the connection now pooled
    let warm = peak_connections(&gw, tls_port, "over-h2", 32);
    assert_eq!(warm, 1, "32 streams on a warm pool used {warm} connections");
    let h1 = peak_connections(&gw, tls_port, "over-h1", 16);
    assert!(h1 >= 16, "16 streams over HTTP/1.1 used {h1} connections");
}

#[test]
fn an_untrusted_provider_certificate_is_a_tls_failure() {
    let ca = TestCa::new("untrusted");
    let (provider, tls_port) = tls_provider(&ca);
    let gw = Gateway::start_with(&config(tls_port, &ca));
    let before = provider.emulator.requests_received();
    let a = gw.post("/v1/chat/completions", &chat_body("untrusted", false, "hi"));
    assert_eq!(a.status, 502, "{}", a.text());
    let message = a.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("TLS handshake"), "{message}");
    assert_eq!(
        provider.emulator.requests_received(),
        before,
        "nothing was sent"
    );
    let metrics = gw.scrape();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("cheapai_upstream_attempts_total")
                && l.contains("outcome=\"tls\"")
                && l.contains("provider=\"untrusted\"")),
        "no TLS failure in the metrics:\n{metrics}"
    );
}

#[test]
fn a_bad_ca_file_or_http2_without_tls_is_a_config_error() {
    let ca = TestCa::new("bad-ca");
    let not_pem = ca.dir.join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let extra = format!(
        "[providers.bad]\nkind = \"openai_compatible\"\nbase_url = \"https://localhost:1/v1\"\n\
         ca_file = \"{}\"\n\n[providers.plain]\nkind = \"openai_compatible\"\n\
         base_url = \"http://localhost:1/v1\"\nhttp2 = true\n",
        not_pem.display()
    );
    let text = config_text(free_port(), free_port(), free_port(), &extra);
    let e = cheapai_gateway::config::Config::parse(&text, "gw.toml", &|_| Some("x".into()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("providers.bad.ca_file"), "{e}");
    assert!(e.contains("holds no PEM certificate"), "{e}");
    assert!(e.contains("providers.plain.http2"), "{e}");
}
