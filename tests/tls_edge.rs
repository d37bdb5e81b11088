//! TLS on the client listener, on the real binary: HTTPS with a private CA, HTTP/2 and
//! HTTP/1.1 chosen by ALPN (answers and streams on both), a client that does not trust the
//! certificate refused, and SIGHUP re-reading the certificate while a connection made with
//! the old one keeps working. Clients are `curl` and `openssl s_client`, as an operator checks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::binary::Binary;
use common::tls::TestCa;
use common::*;

fn chat_body(stream: bool) -> String {
    format!(
        r#"{{"model":"gpt-4o","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
    )
}

/// `curl` to the gateway over HTTPS: (exit code, body, the HTTP version it used).
fn curl(gw: &Binary, ca: &TestCa, version: &str, body: &str) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-N", version, "--cacert"])
        .arg(ca.ca_file())
        .args(["-w", "\n%{http_version}", "-H"])
        .arg(format!("authorization: Bearer {KEY}"))
        .args(["-H", "content-type: application/json", "-d", body])
        .arg(format!("{}/v1/chat/completions", gw.url))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, used) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (
        out.status.code().unwrap_or(-1),
        body.to_string(),
        used.to_string(),
    )
}

/// The common name of the certificate a new connection to the gateway gets.
fn served_name(gw: &Binary, ca: &TestCa) -> String {
    let port = gw.url.rsplit(':').next().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername localhost -CAfile {} \
             -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -subject",
            ca.ca_file().display()
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn https_serves_both_http_versions_by_alpn_streams_included() {
    let ca = TestCa::new("alpn");
    ca.issue("gateway-one");
    let gw = Binary::start_full("tls-alpn", &ca.server_lines(), "", &[]);
    for (asked, expected) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let (code, body, used) = curl(&gw, &ca, asked, &chat_body(false));
        assert_eq!((code, used.as_str()), (0, expected), "{asked}: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            answer["choices"][0]["message"]["content"],
            "Hello world1 world2 world3 world4"
        );
        let (code, body, used) = curl(&gw, &ca, asked, &chat_body(true));
        assert_eq!(
            (code, used.as_str()),
            (0, expected),
            "{asked} stream: {body}"
        );
        let events: Vec<&str> = body.lines().filter(|l| l.starts_with("data: ")).collect();
        assert!(events.len() > 3, "{body}");
        assert_eq!(events.last(), Some(&"data: [DONE]"), "{body}");
    }
    // a client that does not trust the CA gets no answer (curl's "peer certificate" failure)
    let untrusted = Command::new("curl")
        .args(["-sS", "-o", "/dev/null"])
        .arg(format!("{}/", gw.url))
        .output()
        .unwrap();
    assert_eq!(untrusted.status.code(), Some(60), "{untrusted:?}");
    // and plain HTTP on the TLS port is not served
    let port = gw.url.rsplit(':').next().unwrap();
    let plain = Command::new("curl")
        .args(["-sS", "-m", "5", &format!("http://127.0.0.1:{port}/")])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("cheapai-gateway"));
}

#[test]
fn sighup_rereads_the_certificate_and_open_connections_keep_working() {
    let ca = TestCa::new("reload");
    ca.issue("gateway-one");
    let gw = Binary::start_full("tls-reload", &ca.server_lines(), "", &[]);
    assert_eq!(served_name(&gw, &ca), "subject=CN = gateway-one");

    // a connection made with the first certificate, left open
    let port = gw.url.rsplit(':').next().unwrap().to_string();
    let mut open = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "-servername",
            "localhost",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(ca.ca_file())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    ca.issue("gateway-two");
    signal(&gw, "HUP");
    gw.line_with("TLS certificate reloaded from");
    let deadline = Instant::now() + Duration::from_secs(5);
    while served_name(&gw, &ca) != "subject=CN = gateway-two" {
        assert!(
            Instant::now() < deadline,
            "new connections never got the new certificate"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // the old connection still answers
    let body = chat_body(false);
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    open.stdin
        .as_mut()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let mut answer = String::new();
    open.stdout
        .as_mut()
        .unwrap()
        .read_to_string(&mut answer)
        .unwrap();
    let _ = open.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("Hello world1"), "{answer}");

    // a broken certificate on reload changes nothing
    std::fs::write(ca.dir.join("tls.crt"), "not a certificate").unwrap();
    signal(&gw, "HUP");
    gw.line_with("TLS certificate reload failed, still serving the previous one");
    assert_eq!(served_name(&gw, &ca), "subject=CN = gateway-two");
}

#[test]
fn a_certificate_that_does_not_load_is_a_config_error_with_its_line() {
    let ca = TestCa::new("config");
    let (cert, _) = ca.issue("gateway-one");
    let other = TestCa::new("config-other");
    let (_, foreign_key) = other.issue("someone-else");
    let cases = [
        (
            cert.display().to_string(),
            "/nonexistent/tls.key".to_string(),
            "cannot read",
        ),
        (
            cert.display().to_string(),
            foreign_key.display().to_string(),
            "does not fit",
        ),
    ];
    for (cert_file, key_file, expected) in cases {
        let text = config_text_full(
            free_port(),
            free_port(),
            free_port(),
            0,
            &format!("tls = {{ cert_file = \"{cert_file}\", key_file = \"{key_file}\" }}"),
            "",
        );
        let e =
            cheapai_gateway::config::Config::parse(&text, "gw.toml", &|_| Some("x".to_string()))
                .unwrap_err()
                .to_string();
        assert!(e.contains("gw.toml:3: server.tls"), "{e}");
        assert!(e.contains(expected), "{expected} not in {e}");
        assert!(!e.contains("PRIVATE KEY"), "{e}");
    }
}

fn signal(gw: &Binary, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
