//! One Claude model served by three deployments: Anthropic's API, AWS Bedrock and Google
//! Vertex AI, each on an emulator instance of its own. Whichever one fails (503s), every
//! request still answers, through OpenAI chat and Anthropic messages clients, JSON and
//! streams, with one usage record naming a healthy deployment; the failing one was tried.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cheapai_emulator::{Emulator, BEDROCK_ACCESS_KEY_ID, BEDROCK_SECRET_ACCESS_KEY};
use common::emulator::StandaloneEmulator;
use common::vertex_account::account;
use common::*;

/// Providers `anthropic` ({EMU}), `bedrock-us` ({EMU2}) and `vertex-us` (the third emulator,
/// `{VERTEX}`), and one model per provider that prefers it (weight 100 against 1 and 1), so
/// that the failing provider is the first one tried.
const CONFIG: &str = r#"
[providers.anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:{EMU}"
api_key_env = "TEST_PROVIDER_KEY"

[providers.bedrock-us]
kind = "bedrock"
region = "us-east-1"
base_url = "http://127.0.0.1:{EMU2}"

[providers.vertex-us]
kind = "vertex"
project = "my-project"
region = "us-east5"
base_url = "http://127.0.0.1:{VERTEX}"
credentials_file_env = "TEST_VERTEX_CREDENTIALS"
"#;

/// The three deployments of the Claude model, `first` weighted to be tried first.
fn model(first: &str) -> String {
    let weight = |p: &str| if p == first { 100 } else { 1 };
    format!(
        r#"
[models."claude-first-{first}"]
price = {{ input = 3.0, output = 15.0 }}
deployments = [
  {{ provider = "anthropic", upstream_model = "claude-sonnet-4-5", weight = {} }},
  {{ provider = "bedrock-us", upstream_model = "anthropic.claude-sonnet-4-5-v1:0", weight = {} }},
  {{ provider = "vertex-us", upstream_model = "claude-sonnet-4-5@20250929", weight = {} }},
]
"#,
        weight("anthropic"),
        weight("bedrock-us"),
        weight("vertex-us")
    )
}

const PROVIDERS: [&str; 3] = ["anthropic", "bedrock-us", "vertex-us"];

#[test]
fn a_claude_model_on_three_clouds_answers_every_request_while_one_fails() {
    let vertex_port = free_port();
    let vertex = StandaloneEmulator::start(vertex_port);
    let dir = std::env::temp_dir().join(format!(
        "cheapai-clouds-{}-{vertex_port}",
        std::process::id()
    ));
    let service_account = account(
        &dir,
        "gateway",
        &format!("http://127.0.0.1:{vertex_port}/token"),
    );
    vertex
        .emulator
        .trust_vertex_key(&service_account.public_pem)
        .unwrap();
    let config =
        CONFIG.replace("{VERTEX}", &vertex_port.to_string()) + &PROVIDERS.map(model).concat();
    let gw = Gateway::start_with_env(
        &config,
        &[
            ("AWS_ACCESS_KEY_ID", BEDROCK_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", BEDROCK_SECRET_ACCESS_KEY),
            (
                "TEST_VERTEX_CREDENTIALS",
                service_account.key_file.to_str().unwrap(),
            ),
        ],
    );
    let emulators: [&Emulator; 3] = [&gw.emulator, &gw.emulator2, &vertex.emulator];
    // the requests answered so far (the usage listing holds every phase's)
    let mut answered = 0;

    for (failing, emulator) in PROVIDERS.iter().zip(emulators) {
        emulator.set_faults(&[("x-emulator-status", "503")]);
        let model = format!("claude-first-{failing}");
        let mut ids = Vec::new();
        for stream in [false, true] {
            let a = gw.post("/v1/chat/completions", &chat(&model, stream));
            assert_eq!(a.status, 200, "{failing} failing, chat: {}", a.text());
            let text = a.text();
            assert!(text.contains("Hello"), "{failing} failing, chat: {text}");
            ids.push(a.header("x-request-id").unwrap().to_string());

            let a = gw.post_with(
                "/v1/messages",
                &[("anthropic-version", "2023-06-01")],
                &messages(&model, stream),
            );
            assert_eq!(a.status, 200, "{failing} failing, messages: {}", a.text());
            assert!(
                a.text().contains("Hello"),
                "{failing} failing: {}",
                a.text()
            );
            ids.push(a.header("x-request-id").unwrap().to_string());
        }
        answered += ids.len();
        let records = gw.usage_records(answered);
        let mut retried = 0;
        for id in &ids {
            let mine: Vec<_> = records.iter().filter(|r| r["request_id"] == *id).collect();
            assert_eq!(mine.len(), 1, "one record per request: {records:?}");
            let served = mine[0]["provider"].as_str().unwrap();
            assert_ne!(served, *failing, "{failing} failing served {id}");
            assert!(PROVIDERS.contains(&served), "{served}");
            assert!(
                mine[0]["cost_micro_usd"].as_u64().unwrap() > 0,
                "{:?}",
                mine[0]
            );
            retried += usize::from(mine[0]["attempts"].as_u64().unwrap() > 1);
        }
        assert!(
            retried > 0,
            "no request tried the failing {failing} first: {records:?}"
        );
        emulator.set_faults(&[]);
    }
}
