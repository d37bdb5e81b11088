//! AWS Bedrock providers (`kind = "bedrock"`) against the emulator's Bedrock routes, which
//! verify SigV4 as AWS does: what goes up the wire (InvokeModel path, signature headers, the
//! Bedrock body, no client key), every client format through it (JSON and streams in AWS's
//! event-stream framing), tools, usage and price, the betas Bedrock offers in the body, a 429
//! failing over, a wrong secret kept from clients and logs, container credentials that expire
//! and are fetched again, and web identity credentials traded with STS over TLS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use cheapai_emulator::{BEDROCK_ACCESS_KEY_ID, BEDROCK_SECRET_ACCESS_KEY};
use common::binary::Binary;
use common::*;
use serde_json::{json, Value};

const MODEL_ID: &str = "anthropic.claude-sonnet-4-5-v1:0";
const MODEL_PATH: &str = "/model/anthropic.claude-sonnet-4-5-v1%3A0";
/// A secret the emulator does not hold for the access key: it must reach no client or log.
const WRONG_SECRET: &str = "bedrock-wrong-secret-7c2e91";

const BEDROCK: &str = r#"
[providers.bedrock-a]
kind = "bedrock"
region = "us-east-1"
base_url = "http://127.0.0.1:{EMU}"
connect_timeout_ms = 500
first_byte_timeout_ms = 1500
idle_timeout_ms = 800

[providers.bedrock-b]
kind = "bedrock"
region = "us-west-2"
base_url = "http://127.0.0.1:{EMU2}"

[models."claude-bedrock"]
provider = "bedrock-a"
upstream_model = "anthropic.claude-sonnet-4-5-v1:0"
price = { input = 3.0, output = 15.0, cached_input = 0.3 }

[models."claude-two-regions"]
deployments = [
  { provider = "bedrock-a", upstream_model = "anthropic.claude-sonnet-4-5-v1:0", weight = 100 },
  { provider = "bedrock-b", upstream_model = "anthropic.claude-sonnet-4-5-v1:0", weight = 1 },
]
"#;

fn start() -> Gateway {
    Gateway::start_with_env(
        BEDROCK,
        &[
            ("AWS_ACCESS_KEY_ID", BEDROCK_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", BEDROCK_SECRET_ACCESS_KEY),
        ],
    )
}

/// What the emulator received for `answer`: the InvokeModel path, a SigV4 signature by the
/// test key for `region` (which the emulator verified, or it would have refused), no
/// client key, and Bedrock's body (no `model`, no `stream`, Bedrock's `anthropic_version`).
fn assert_sent_to_bedrock(record: &Value, stream: bool, region: &str) -> Value {
    let operation = if stream {
        "invoke-with-response-stream"
    } else {
        "invoke"
    };
    assert_eq!(
        record["path"],
        format!("{MODEL_PATH}/{operation}"),
        "{record}"
    );
    let auth = sent_header(record, "authorization").unwrap();
    assert!(
        auth.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={BEDROCK_ACCESS_KEY_ID}/"
        )),
        "{auth}"
    );
    assert!(
        auth.contains(&format!("/{region}/bedrock/aws4_request")),
        "{auth}"
    );
    assert!(auth.contains("SignedHeaders=host;x-amz-date"), "{auth}");
    assert!(sent_header(record, "x-amz-date").is_some());
    assert_eq!(sent_header(record, "x-api-key"), None);
    assert!(
        !record.to_string().contains(KEY),
        "client key sent: {record}"
    );
    assert!(!record.to_string().contains(BEDROCK_SECRET_ACCESS_KEY));
    let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
    assert!(
        body.get("model").is_none() && body.get("stream").is_none(),
        "{body}"
    );
    body
}

const HELLO: &str = "Hello world1 world2 world3 world4";
const ANTHROPIC: [(&str, &str); 1] = [("anthropic-version", "2023-06-01")];

#[test]
fn chat_json_and_stream_are_signed_invocations_with_usage_and_price() {
    let gw = start();
    for stream in [false, true] {
        let a = gw.post("/v1/chat/completions", &chat("claude-bedrock", stream));
        assert_eq!(a.status, 200, "{}", a.text());
        if stream {
            let data = a.sse_data();
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
            let text: String = data
                .iter()
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter_map(|c| {
                    c["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(String::from)
                })
                .collect();
            assert_eq!(text, HELLO);
        } else {
            let v = a.json();
            assert_eq!(v["choices"][0]["message"]["content"], HELLO);
            assert_eq!(v["model"], "claude-bedrock");
        }
        let record = gw.upstream_request(&a);
        let body = assert_sent_to_bedrock(&record, stream, "us-east-1");
        assert!(
            body["messages"][0].to_string().contains("Say hello"),
            "{body}"
        );
        assert!(body["max_tokens"].as_u64().unwrap() > 0);
        // AWS's request id stays with the operator
        assert_eq!(a.header("x-amzn-requestid"), None);
        let usage = gw.usage_record_of(&a);
        assert_eq!(usage["provider"], "bedrock-a");
        // "Say hello": 3 + 2 words; five text chunks
        assert_eq!(
            (&usage["prompt_tokens"], &usage["completion_tokens"]),
            (&json!(5), &json!(5)),
            "{usage}"
        );
        assert_eq!(usage["estimated"], false);
        // $3 and $15 per million: 5 × 3 + 5 × 15 micro-USD
        assert_eq!(usage["cost_micro_usd"], 90, "{usage}");
    }
}

#[test]
fn anthropic_and_responses_clients_json_and_stream() {
    let gw = start();
    for stream in [false, true] {
        let a = gw.post_with(
            "/v1/messages",
            &ANTHROPIC,
            &messages("claude-bedrock", stream),
        );
        assert_eq!(a.status, 200, "{}", a.text());
        if stream {
            assert_eq!(a.header("content-type"), Some("text/event-stream"));
            let text = a.text();
            assert!(text.starts_with("event: message_start\n"), "{text}");
            assert!(text.contains("event: message_stop"), "{text}");
            assert!(text.contains("world4"), "{text}");
        } else {
            let v = a.json();
            assert_eq!(v["content"][0]["text"], HELLO);
            assert_eq!(v["stop_reason"], "end_turn");
            // Claude's answer as Bedrock gave it, for the model of the path
            assert_eq!(v["model"], MODEL_ID);
        }
        assert_sent_to_bedrock(&gw.upstream_request(&a), stream, "us-east-1");
        let usage = gw.usage_record_of(&a);
        assert_eq!(usage["completion_tokens"], 5, "{usage}");
        assert_eq!(usage["prompt_tokens"], 5, "{usage}");

        let body = json!({"model": "claude-bedrock", "input": "Say hello", "stream": stream});
        let a = gw.post("/v1/responses", &body.to_string());
        assert_responses_completed(&a, stream, HELLO);
        assert_sent_to_bedrock(&gw.upstream_request(&a), stream, "us-east-1");
        assert_eq!(gw.usage_record_of(&a)["completion_tokens"], 5);
    }
    // Bedrock serves no embeddings for Claude
    let a = gw.post(
        "/v1/embeddings",
        &json!({"model": "claude-bedrock", "input": "x"}).to_string(),
    );
    assert_eq!(a.status, 400, "{}", a.text());
}

/// Claude Code sends Anthropic-only betas with every request; Bedrock takes the betas it
/// offers in the body (`anthropic_beta`, under its own names) and refuses the request for any
/// other, so those reach it in the body and the rest nowhere.
#[test]
fn the_betas_bedrock_offers_go_in_the_body_and_the_others_nowhere() {
    let gw = start();
    let betas = "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,\
        advanced-tool-use-2025-11-20, context-1m-2025-08-07";
    for stream in [false, true] {
        let a = gw.post_with(
            "/v1/messages",
            &[
                ("anthropic-version", "2023-06-01"),
                ("anthropic-beta", betas),
            ],
            &messages("claude-bedrock", stream),
        );
        assert_eq!(a.status, 200, "{}", a.text());
        let record = gw.upstream_request(&a);
        let body = assert_sent_to_bedrock(&record, stream, "us-east-1");
        assert_eq!(
            body["anthropic_beta"],
            json!([
                "interleaved-thinking-2025-05-14",
                "tool-search-tool-2025-10-19",
                "context-1m-2025-08-07"
            ]),
            "{body}"
        );
        assert_eq!(sent_header(&record, "anthropic-beta"), None);
    }
    // a request with no beta Bedrock offers names none
    let a = gw.post_with(
        "/v1/messages",
        &[
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "claude-code-20250219"),
        ],
        &messages("claude-bedrock", false),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let body = assert_sent_to_bedrock(&gw.upstream_request(&a), false, "us-east-1");
    assert!(body.get("anthropic_beta").is_none(), "{body}");
}

#[test]
fn tools_reach_claude_on_bedrock_and_come_back() {
    let gw = start();
    for stream in [false, true] {
        let a = gw.post(
            "/v1/chat/completions",
            &weather_chat("claude-bedrock", stream),
        );
        assert_eq!(a.status, 200, "{}", a.text());
        if stream {
            assert!(a.text().contains("get_weather"), "{}", a.text());
            assert!(
                a.text().contains(r#""finish_reason":"tool_calls""#),
                "{}",
                a.text()
            );
        } else {
            let call = &a.json()["choices"][0]["message"]["tool_calls"][0];
            assert_eq!(call["function"]["name"], "get_weather");
            assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
        }
        let sent = assert_sent_to_bedrock(&gw.upstream_request(&a), stream, "us-east-1");
        assert_eq!(sent["tools"][0]["name"], "get_weather");
    }
    let body = weather_messages("claude-bedrock");
    let a = gw.post_with("/v1/messages", &ANTHROPIC, &body);
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    assert_eq!(v["content"][0]["input"], json!({"city": "Paris"}));
}

#[test]
fn a_429_fails_over_to_the_other_region_with_one_record() {
    let gw = start();
    gw.emulator.set_faults(&[("x-emulator-status", "429")]);
    let mut answers = Vec::new();
    for stream in [false, true, false, true] {
        let a = gw.post("/v1/chat/completions", &chat("claude-two-regions", stream));
        assert_eq!(a.status, 200, "{}", a.text());
        let record = Gateway::upstream_request_on(&gw.emulator2, &a);
        assert_sent_to_bedrock(&record, stream, "us-west-2");
        answers.push(a);
    }
    assert!(gw.emulator.requests_received() >= 1, "never tried the 429");
    assert_eq!(gw.emulator2.requests_received(), 4);
    let mut attempts = 0;
    for a in &answers {
        let id = a.header("x-request-id").unwrap();
        let records = gw.usage_records(answers.len());
        let mine: Vec<_> = records.iter().filter(|r| r["request_id"] == id).collect();
        assert_eq!(mine.len(), 1, "{records:?}");
        assert_eq!(mine[0]["provider"], "bedrock-b");
        attempts += mine[0]["attempts"].as_u64().unwrap();
    }
    assert!(
        attempts > 4,
        "no request went to the throttled region first"
    );

    // with no other region, each client gets the 429 in its own dialect
    gw.emulator2.set_faults(&[("x-emulator-status", "429")]);
    let a = gw.post("/v1/chat/completions", &chat("claude-two-regions", false));
    assert_eq!(a.status, 429, "{}", a.text());
    assert!(a.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Too many requests"));
    let a = gw.post_with(
        "/v1/messages",
        &ANTHROPIC,
        &messages("claude-two-regions", true),
    );
    assert_eq!(a.status, 429, "{}", a.text());
    assert_eq!(a.json()["type"], "error");
    assert_eq!(a.json()["error"]["type"], "rate_limit_error");
}

#[test]
fn a_failure_mid_stream_ends_the_stream_in_the_clients_dialect() {
    let gw = start();
    let error_after = [("x-emulator-stream-error-after", "3")];
    let a = gw.post_with(
        "/v1/chat/completions",
        &error_after,
        &chat("claude-bedrock", true),
    );
    assert_eq!(a.status, 200);
    let text = a.text();
    assert!(
        text.contains("unexpected error during processing"),
        "{text}"
    );
    assert!(!text.contains("[DONE]"), "{text}");
    let mut headers = error_after.to_vec();
    headers.extend(ANTHROPIC);
    let a = gw.post_with("/v1/messages", &headers, &messages("claude-bedrock", true));
    let text = a.text();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("event: message_stop"), "{text}");
    // a stream cut between frames ends with an error event too, never as if it were whole
    let mut headers = vec![("x-emulator-drop-after", "3")];
    headers.extend(ANTHROPIC);
    let a = gw.post_with("/v1/messages", &headers, &messages("claude-bedrock", true));
    let text = a.text();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("event: message_stop"), "{text}");
}

#[test]
fn a_wrong_secret_is_the_gateways_502_without_the_secret() {
    let gw = Gateway::start_with_env(
        BEDROCK,
        &[
            ("AWS_ACCESS_KEY_ID", BEDROCK_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", WRONG_SECRET),
        ],
    );
    for stream in [false, true] {
        let a = gw.post("/v1/chat/completions", &chat("claude-bedrock", stream));
        assert_eq!(a.status, 502, "{}", a.text());
        assert_eq!(a.json()["error"]["code"], "provider_auth_failed");
        assert!(!a.text().contains(WRONG_SECRET) && !a.text().contains("signature"));
        let a = gw.post_with(
            "/v1/messages",
            &ANTHROPIC,
            &messages("claude-bedrock", stream),
        );
        assert_eq!(a.status, 502, "{}", a.text());
        assert_eq!(a.json()["error"]["type"], "api_error");
        assert!(!a.text().contains(WRONG_SECRET));
        // a signed request went out and was refused (the emulator checks the signature)
        let record = gw.emulator.last_record().unwrap();
        assert_sent_to_bedrock(&record, stream, "us-east-1");
        let usage = gw.usage_record_of(&a);
        assert_eq!(usage["status"], 502, "{usage}");
        assert!(!usage.to_string().contains(WRONG_SECRET));
    }
}

#[test]
fn a_wrong_secret_never_reaches_the_log() {
    let extra = r#"
[providers.bedrock-local]
kind = "bedrock"
region = "eu-central-1"
base_url = "http://127.0.0.1:{EMU}"

[models."claude-local"]
provider = "bedrock-local"
upstream_model = "anthropic.claude-sonnet-4-5-v1:0"
"#;
    let bin = Binary::start_with_env(
        "bedrock-wrong-secret",
        extra,
        &[
            ("AWS_ACCESS_KEY_ID", BEDROCK_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", WRONG_SECRET),
            ("AWS_SESSION_TOKEN", "session-token-never-logged"),
        ],
    );
    let (status, _) = bin.post(KEY, &[], &chat("claude-local", false));
    assert_eq!(status, 502);
    // the refusal is logged for the operator, without the secret
    let line = bin.line_with("bedrock-local");
    assert!(line.contains("403"), "{line}");
    let lines = bin.lines.lock().unwrap();
    assert!(
        lines
            .iter()
            .all(|l| !l.contains(WRONG_SECRET) && !l.contains("session-token-never-logged")),
        "{lines:?}"
    );
}

/// A container credentials endpoint: answer `n` (from 1) is the key `AKIDROTATE{n}` with
/// secret `secret-{n}` and token `token-{n}`, valid for `lifetime`. Records the
/// `Authorization` each request carried.
fn credentials_endpoint(lifetime: Duration) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut auth = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("authorization:") {
                    auth = v.trim().to_string();
                }
            }
            log.lock().unwrap().push(auth);
            let n = n + 1;
            let expires = humantime::format_rfc3339_seconds(SystemTime::now() + lifetime);
            let body = json!({"AccessKeyId": format!("AKIDROTATE{n}"),
                "SecretAccessKey": format!("secret-{n}"), "Token": format!("token-{n}"),
                "Expiration": expires.to_string()})
            .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn container_credentials_expire_and_are_fetched_again() {
    let (port, seen) = credentials_endpoint(Duration::from_secs(4));
    let uri = format!("http://127.0.0.1:{port}/v2/credentials/task");
    let gw = Gateway::start_with_env(
        BEDROCK,
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-identity-token"),
        ],
    );
    let keys: Vec<(String, String, String)> = (1..=40)
        .map(|n| {
            (
                format!("AKIDROTATE{n}"),
                format!("secret-{n}"),
                format!("token-{n}"),
            )
        })
        .collect();
    let accept = |from: usize| {
        let held: Vec<_> = keys[from - 1..]
            .iter()
            .map(|(i, s, t)| (i.as_str(), s.as_str(), Some(t.as_str())))
            .collect();
        gw.emulator.set_bedrock_keys(&held);
    };
    accept(1);
    // the first fetch runs as the provider is built; wait for it to land
    let deadline = Instant::now() + Duration::from_secs(5);
    let first = loop {
        let a = gw.post("/v1/chat/completions", &chat("claude-bedrock", false));
        if a.status == 200 || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(first.status, 200, "{}", first.text());
    let record = gw.upstream_request(&first);
    let auth = sent_header(&record, "authorization").unwrap();
    let id_of = |auth: &str| -> usize {
        let rest = auth.split("Credential=AKIDROTATE").nth(1).unwrap();
        rest.split('/').next().unwrap().parse().unwrap()
    };
    let used = id_of(auth);
    assert_eq!(
        sent_header(&record, "x-amz-security-token"),
        Some(format!("token-{used}").as_str())
    );

    // those credentials expire in 4 s; the gateway fetches new ones before then, and AWS
    // stops taking the old ones
    std::thread::sleep(Duration::from_secs(3));
    accept(used + 1);
    let a = gw.post("/v1/chat/completions", &chat("claude-bedrock", true));
    assert_eq!(a.status, 200, "{}", a.text());
    let record = gw.upstream_request(&a);
    let later = id_of(sent_header(&record, "authorization").unwrap());
    assert!(later > used, "still signing with AKIDROTATE{used}");
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.iter().all(|a| a == "pod-identity-token"), "{seen:?}");
}

/// The emulator's STS and Bedrock behind one TLS front signed by a test CA (`ca.pem`).
fn aws_over_tls(ca: &common::tls::TestCa) -> (common::emulator::StandaloneEmulator, u16) {
    let (cert, key) = ca.issue("localhost");
    let [plain, tls] = free_ports();
    let aws = common::emulator::StandaloneEmulator::start_with_tls(plain, Some((tls, &cert, &key)));
    (aws, tls)
}

/// Web identity, as EKS gives a pod (IAM roles for service accounts): the projected token
/// traded with STS over TLS (the test CA trusted as the system's, `SSL_CERT_FILE`) for
/// temporary credentials that sign Bedrock's requests; traded again before they expire with
/// the token file read again (the kubelet rotates it), and neither the token nor any part
/// of the credentials in the log.
#[test]
fn web_identity_credentials_come_from_sts_and_are_renewed_before_they_expire() {
    let ca = common::tls::TestCa::new("sts");
    let (aws, tls) = aws_over_tls(&ca);
    aws.emulator
        .accept_web_identity_tokens(&["eks-projected-token-1"]);
    aws.emulator.set_sts_lifetime(Duration::from_secs(4));
    let token_file = std::env::temp_dir().join(format!("cheapai-web-identity-{tls}"));
    std::fs::write(&token_file, "eks-projected-token-1\n").unwrap();
    let extra = format!(
        "[providers.bedrock-eks]\nkind = \"bedrock\"\nregion = \"us-east-1\"\n\
         base_url = \"https://localhost:{tls}\"\nca_file = \"{}\"\n\n\
         [models.\"claude-eks\"]\nprovider = \"bedrock-eks\"\nupstream_model = \"{MODEL_ID}\"\n",
        ca.ca_file().display()
    );
    let sts = format!("https://localhost:{tls}");
    let token_path = token_file.display().to_string();
    let ca_file = ca.ca_file().display().to_string();
    let bin = Binary::start_with_env(
        "bedrock-web-identity",
        &extra,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gateway"),
            ("AWS_ROLE_SESSION_NAME", "cheapai-test"),
            ("AWS_ENDPOINT_URL_STS", &sts),
            ("SSL_CERT_FILE", &ca_file),
        ],
    );
    // the first exchange runs as the provider is built; wait for it to land
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, request_id) = bin.post(KEY, &[], &chat("claude-eks", false));
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{status} {request_id} {:?}",
            bin.lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let signed_by = |record: &Value| -> u64 {
        let auth = sent_header(record, "authorization").unwrap();
        let id = auth.split("Credential=ASIAEMULATOR").nth(1).unwrap();
        id.split('/').next().unwrap().parse().unwrap()
    };
    let first = aws.emulator.last_record().unwrap();
    assert_eq!(signed_by(&first), 1, "{first}");
    let session = sent_header(&first, "x-amz-security-token").unwrap();
    assert!(session.starts_with("sts-session-1-"), "{session}");
    // what STS received: the role, the session name and the token, as a form
    let exchange = (1..=first["seq"].as_u64().unwrap())
        .filter_map(|seq| aws.emulator.record(seq))
        .find(|r| r["path"] == "/")
        .unwrap();
    let form = exchange["body"].as_str().unwrap();
    for field in [
        "Action=AssumeRoleWithWebIdentity",
        "Version=2011-06-15",
        "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fgateway",
        "RoleSessionName=cheapai-test",
        "WebIdentityToken=eks-projected-token-1",
    ] {
        assert!(form.contains(field), "{form}");
    }
    assert_eq!(sent_header(&exchange, "authorization"), None);

    // the kubelet rotates the token; the first credentials expire after 4 s, and Bedrock
    // refuses them from then on
    std::fs::write(&token_file, "eks-projected-token-2\n").unwrap();
    aws.emulator
        .accept_web_identity_tokens(&["eks-projected-token-2"]);
    std::thread::sleep(Duration::from_secs(5));
    for stream in [false, true] {
        let (status, request_id) = bin.post(KEY, &[], &chat("claude-eks", stream));
        assert_eq!(status, 200, "{request_id}");
        let record = aws.emulator.last_record().unwrap();
        assert!(
            signed_by(&record) >= 2,
            "still signing with the first credentials"
        );
    }
    assert!(aws.emulator.sts_credentials_issued() >= 2);
    let lines = bin.lines.lock().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("AWS credentials from STS")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains("eks-projected-token")
            && !l.contains("sts-secret")
            && !l.contains("sts-session")
            && !l.contains("ASIAEMULATOR")),
        "{lines:?}"
    );
    let _ = std::fs::remove_file(&token_file);
}

/// A token STS refuses: the operator's log says why (STS's code and message, not the
/// token), the client gets the gateway's 502 that another deployment could have taken.
#[test]
fn a_refused_web_identity_token_is_logged_with_stss_reason_and_not_the_token() {
    let ca = common::tls::TestCa::new("sts-refused");
    let (aws, tls) = aws_over_tls(&ca);
    let token_file = std::env::temp_dir().join(format!("cheapai-web-identity-{tls}"));
    std::fs::write(&token_file, "eks-token-sts-does-not-know").unwrap();
    let extra = format!(
        "[providers.bedrock-eks]\nkind = \"bedrock\"\nregion = \"us-east-1\"\n\
         base_url = \"https://localhost:{tls}\"\nca_file = \"{}\"\n\n\
         [models.\"claude-eks\"]\nprovider = \"bedrock-eks\"\nupstream_model = \"{MODEL_ID}\"\n",
        ca.ca_file().display()
    );
    let (sts, token_path, ca_file) = (
        format!("https://localhost:{tls}"),
        token_file.display().to_string(),
        ca.ca_file().display().to_string(),
    );
    let bin = Binary::start_with_env(
        "bedrock-web-identity-refused",
        &extra,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gateway"),
            ("AWS_ENDPOINT_URL_STS", &sts),
            ("SSL_CERT_FILE", &ca_file),
        ],
    );
    let line = bin.line_with("InvalidIdentityToken");
    assert!(line.contains("bedrock-eks"), "{line}");
    assert!(
        line.contains("arn:aws:iam::123456789012:role/gateway"),
        "{line}"
    );
    let (status, request_id) = bin.post(KEY, &[], &chat("claude-eks", false));
    assert_eq!(status, 502, "{request_id}");
    let lines = bin.lines.lock().unwrap();
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("eks-token-sts-does-not-know")),
        "{lines:?}"
    );
    assert_eq!(aws.emulator.sts_credentials_issued(), 0);
    let _ = std::fs::remove_file(&token_file);
}
