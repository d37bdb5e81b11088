//! Where a Bedrock provider's AWS credentials come from, against the emulator's Bedrock
//! routes (which verify SigV4 and refuse expired temporary keys) and its STS: container
//! credentials that expire and are fetched again, web identity (EKS service accounts)
//! traded with STS over TLS and renewed, and a token STS refuses, logged without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::binary::Binary;
use common::emulator::StandaloneEmulator;
use common::tls::TestCa;
use common::*;
use serde_json::{json, Value};

const MODEL_ID: &str = "anthropic.claude-sonnet-4-5-v1:0";

/// A Bedrock provider on the gateway's own emulator, serving `claude-bedrock`.
const BEDROCK: &str = r#"
[providers.bedrock-a]
kind = "bedrock"
region = "us-east-1"
base_url = "http://127.0.0.1:{EMU}"

[models."claude-bedrock"]
provider = "bedrock-a"
upstream_model = "anthropic.claude-sonnet-4-5-v1:0"
"#;

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

/// A Bedrock provider `bedrock-eks` on the TLS front at `tls` (trusting `ca`), serving
/// `claude-eks`.
fn eks_config(tls: u16, ca: &TestCa) -> String {
    format!(
        "[providers.bedrock-eks]\nkind = \"bedrock\"\nregion = \"us-east-1\"\n\
         base_url = \"https://localhost:{tls}\"\nca_file = \"{}\"\n\n\
         [models.\"claude-eks\"]\nprovider = \"bedrock-eks\"\nupstream_model = \"{MODEL_ID}\"\n",
        ca.ca_file().display()
    )
}

/// The emulator's STS and Bedrock behind one TLS front signed by a test CA (`ca.pem`).
fn aws_over_tls(ca: &TestCa) -> (StandaloneEmulator, u16) {
    let (cert, key) = ca.issue("localhost");
    let [plain, tls] = free_ports();
    let aws = StandaloneEmulator::start_with_tls(plain, Some((tls, &cert, &key)));
    (aws, tls)
}

/// Web identity, as EKS gives a pod (IAM roles for service accounts): the projected token
/// traded with STS over TLS (the test CA trusted as the system's, `SSL_CERT_FILE`) for
/// temporary credentials that sign Bedrock's requests; traded again before they expire with
/// the token file read again (the kubelet rotates it), and neither the token nor any part
/// of the credentials in the log.
#[test]
fn web_identity_credentials_come_from_sts_and_are_renewed_before_they_expire() {
    let ca = TestCa::new("sts");
    let (aws, tls) = aws_over_tls(&ca);
    aws.emulator
        .accept_web_identity_tokens(&["eks-projected-token-1"]);
    aws.emulator.set_sts_lifetime(Duration::from_secs(4));
    let token_file = std::env::temp_dir().join(format!("cheapai-web-identity-{tls}"));
    std::fs::write(&token_file, "eks-projected-token-1\n").unwrap();
    let extra = eks_config(tls, &ca);
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
    let ca = TestCa::new("sts-refused");
    let (aws, tls) = aws_over_tls(&ca);
    let token_file = std::env::temp_dir().join(format!("cheapai-web-identity-{tls}"));
    std::fs::write(&token_file, "eks-token-sts-does-not-know").unwrap();
    let extra = eks_config(tls, &ca);
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
