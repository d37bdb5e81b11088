//! OpenAI `/v1/embeddings` on Bedrock's embedding models (Titan Text Embeddings V2, Cohere
//! Embed v3, through InvokeModel) and Vertex AI's (`text-embedding-005`,
//! `gemini-embedding-001`, through `:predict`), against the emulator's routes, which verify
//! the SigV4 signature and the bearer token and enforce each model's documented rules: what
//! goes up the wire, the OpenAI list that comes back (vectors, their size and order, float
//! and base64), one usage record with tokens and price, a 429 failing over to the second
//! deployment, and the refusals (a batch over a model's limit, before anything is sent; a
//! provider's own 400) in OpenAI's shape.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use cheapai_emulator::{
    embedding_vector, titan_normalized, BEDROCK_ACCESS_KEY_ID, BEDROCK_SECRET_ACCESS_KEY,
};
use common::vertex_account::account;
use common::*;
use serde_json::{json, Value};

const CONFIG: &str = r#"
[providers.bedrock-a]
kind = "bedrock"
region = "us-east-1"
base_url = "http://127.0.0.1:{EMU}"

[providers.bedrock-b]
kind = "bedrock"
region = "us-west-2"
base_url = "http://127.0.0.1:{EMU2}"

[providers.vertex-a]
kind = "vertex"
base_url = "http://127.0.0.1:{EMU}"
project = "my-project"
region = "us-central1"
credentials_file_env = "TEST_VERTEX_CREDENTIALS"

[providers.vertex-b]
kind = "vertex"
base_url = "http://127.0.0.1:{EMU2}"
project = "my-project"
region = "europe-west1"
credentials_file_env = "TEST_VERTEX_CREDENTIALS"

[models."titan-embed"]
provider = "bedrock-a"
upstream_model = "amazon.titan-embed-text-v2:0"
price = { input = 0.02, output = 0.0 }

[models."cohere-embed"]
deployments = [
  { provider = "bedrock-a", upstream_model = "cohere.embed-english-v3", weight = 100 },
  { provider = "bedrock-b", upstream_model = "cohere.embed-english-v3", weight = 1 },
]
price = { input = 0.10, output = 0.0 }

[models."text-embedding-005"]
deployments = [
  { provider = "vertex-a", weight = 100 },
  { provider = "vertex-b", weight = 1 },
]
price = { input = 0.10, output = 0.0 }

[models."gemini-embedding-vertex"]
provider = "vertex-a"
upstream_model = "gemini-embedding-001"
price = { input = 0.15, output = 0.0 }

[models."claude-bedrock"]
provider = "bedrock-a"
upstream_model = "anthropic.claude-sonnet-4-5-v1:0"
"#;

const VERTEX_PATH: &str = "/v1/projects/my-project/locations/us-central1/publishers/google/models";

/// A gateway with the Bedrock and Vertex providers, deployment `-a` of each on the first
/// emulator, `-b` on the second; the emulator trusts the service account.
fn start() -> Gateway {
    let ports = free_ports::<4>();
    let dir = std::env::temp_dir().join(format!(
        "cheapai-cloud-embeddings-{}-{}",
        std::process::id(),
        ports[0]
    ));
    let token_uri = format!("http://127.0.0.1:{}/token", ports[2]);
    let service_account = account(&dir, "gateway", &token_uri);
    let gw = Gateway::start_on(
        ports,
        "",
        CONFIG,
        &[
            ("AWS_ACCESS_KEY_ID", BEDROCK_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", BEDROCK_SECRET_ACCESS_KEY),
            (
                "TEST_VERTEX_CREDENTIALS",
                service_account.key_file.to_str().unwrap(),
            ),
        ],
    );
    gw.emulator
        .trust_vertex_key(&service_account.public_pem)
        .unwrap();
    gw
}

fn embed(gw: &Gateway, body: Value) -> Answer {
    gw.post("/v1/embeddings", &body.to_string())
}

/// `n` words, one token each in the emulators' counts.
fn words(n: usize, word: &str) -> String {
    vec![word; n].join(" ")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a vector: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn base64_floats(v: &Value) -> Vec<f32> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The OpenAI list for `model`: `vectors` in order, `tokens` counted.
fn assert_list(answer: &Answer, model: &str, vectors: &[Vec<f32>], tokens: u64) {
    assert_eq!(answer.status, 200, "{}", answer.text());
    let v = answer.json();
    assert_eq!(
        (v["object"].as_str(), v["model"].as_str()),
        (Some("list"), Some(model))
    );
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), vectors.len(), "{v}");
    for (i, (item, expected)) in data.iter().zip(vectors).enumerate() {
        assert_eq!(
            (item["object"].as_str(), item["index"].as_u64()),
            (Some("embedding"), Some(i as u64))
        );
        assert_eq!(&floats(&item["embedding"]), expected, "vector {i}");
    }
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": tokens, "total_tokens": tokens})
    );
}

/// The request reached Bedrock signed for `region` by the test key, at `model_path`; returns
/// the body sent.
fn bedrock_sent(record: &Value, model_path: &str, region: &str) -> Value {
    assert_eq!(
        record["path"],
        format!("/model/{model_path}/invoke"),
        "{record}"
    );
    let auth = sent_header(record, "authorization").unwrap();
    assert!(
        auth.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={BEDROCK_ACCESS_KEY_ID}/"
        )) && auth.contains(&format!("/{region}/bedrock/aws4_request")),
        "{auth}"
    );
    assert!(
        !record.to_string().contains(KEY),
        "client key sent: {record}"
    );
    serde_json::from_str(record["body"].as_str().unwrap()).unwrap()
}

/// The request reached Vertex's `:predict` of `model` with a token from the service account
/// and no other credential; returns the body sent.
fn vertex_sent(record: &Value, model: &str) -> Value {
    assert_eq!(
        record["path"],
        format!("{VERTEX_PATH}/{model}:predict"),
        "{record}"
    );
    let bearer = sent_header(record, "authorization").unwrap_or_default();
    assert!(bearer.starts_with("Bearer ya29.emulator."), "{record}");
    for header in ["x-api-key", "x-goog-api-key", "api-key"] {
        assert_eq!(sent_header(record, header), None, "{header}: {record}");
    }
    assert!(
        !record.to_string().contains(KEY),
        "client key sent: {record}"
    );
    serde_json::from_str(record["body"].as_str().unwrap()).unwrap()
}

/// A 400 in OpenAI's shape naming `param`, whose message says `says`.
fn assert_refused(answer: &Answer, param: Option<&str>, says: &str) {
    assert_eq!(answer.status, 400, "{}", answer.text());
    let error = &answer.json()["error"];
    assert_eq!(error["type"], "invalid_request_error", "{error}");
    assert_eq!(error["param"].as_str(), param, "{error}");
    assert!(error["message"].as_str().unwrap().contains(says), "{error}");
}

#[test]
fn titan_embeds_one_text_signed_with_its_dimensions_usage_and_price() {
    let gw = start();
    let text = words(100, "hello");
    let mut expected = embedding_vector(text.as_bytes(), 256);
    titan_normalized(&mut expected);

    let a = embed(
        &gw,
        json!({"model": "titan-embed", "input": text, "dimensions": 256}),
    );
    assert_list(&a, "titan-embed", &[expected.clone()], 100);
    let body = bedrock_sent(
        &gw.upstream_request(&a),
        "amazon.titan-embed-text-v2%3A0",
        "us-east-1",
    );
    assert_eq!(
        body,
        json!({"inputText": text, "dimensions": 256, "normalize": true})
    );
    let record = gw.usage_record_of(&a);
    assert_eq!(
        (record["provider"].as_str(), record["endpoint"].as_str()),
        (Some("bedrock-a"), Some("embeddings"))
    );
    // Titan's own count (100 tokens) at 0.02 USD per million
    assert_eq!(record["prompt_tokens"], 100, "{record}");
    assert_eq!(record["cost_micro_usd"], 2, "{record}");

    // base64 (the Python SDK's default) carries the same f32 values; an array of one is one text
    let a = embed(
        &gw,
        json!({"model": "titan-embed", "input": [text], "dimensions": 256, "encoding_format": "base64"}),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(base64_floats(&a.json()["data"][0]["embedding"]), expected);
    assert_eq!(gw.usage_records(2).len(), 2, "one record per request");

    // several texts: refused before anything is sent, naming the limit
    let before = gw.emulator.requests_received();
    let a = embed(&gw, json!({"model": "titan-embed", "input": ["a", "b"]}));
    assert_refused(&a, Some("input"), "one text per request");
    assert_eq!(gw.emulator.requests_received(), before);

    // Bedrock refuses the dimensions Titan does not have; its 400 reaches the client
    let a = embed(
        &gw,
        json!({"model": "titan-embed", "input": "x", "dimensions": 300}),
    );
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("#/dimensions: 300"),
        "{}",
        a.text()
    );
    assert_eq!(gw.emulator.requests_received(), before + 1);
}

#[test]
fn cohere_embeds_a_batch_in_order_and_fails_over_on_a_429() {
    let gw = start();
    let texts = ["alpha beta", "gamma", "delta epsilon zeta"];
    let expected: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| embedding_vector(t.as_bytes(), 1024))
        .collect();
    let a = embed(&gw, json!({"model": "cohere-embed", "input": texts}));
    assert_eq!(a.status, 200, "{}", a.text());
    // Cohere's answer carries no count: the gateway counts the texts itself
    let tokens = a.json()["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(tokens >= 6, "{}", a.text());
    assert_list(&a, "cohere-embed", &expected, tokens);
    let body = bedrock_sent(
        &gw.upstream_request(&a),
        "cohere.embed-english-v3",
        "us-east-1",
    );
    assert_eq!(
        body,
        json!({"texts": texts, "input_type": "search_document", "embedding_types": ["float"]})
    );
    assert_eq!(gw.usage_record_of(&a)["prompt_tokens"], tokens);

    // the client's input_type goes along
    let a = embed(
        &gw,
        json!({"model": "cohere-embed", "input": "q", "input_type": "search_query"}),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let body = bedrock_sent(
        &gw.upstream_request(&a),
        "cohere.embed-english-v3",
        "us-east-1",
    );
    assert_eq!(body["input_type"], "search_query");

    // over 96 texts: refused before anything is sent
    let before = gw.emulator.requests_received();
    let many: Vec<String> = (0..97).map(|i| format!("text {i}")).collect();
    let a = embed(&gw, json!({"model": "cohere-embed", "input": many}));
    assert_refused(&a, Some("input"), "at most 96 texts");
    assert_eq!(gw.emulator.requests_received(), before);

    // a throttled region: the other one answers, one record names it
    gw.emulator.set_faults(&[("x-emulator-status", "429")]);
    let a = embed(&gw, json!({"model": "cohere-embed", "input": texts}));
    assert_list(&a, "cohere-embed", &expected, tokens);
    bedrock_sent(
        &Gateway::upstream_request_on(&gw.emulator2, &a),
        "cohere.embed-english-v3",
        "us-west-2",
    );
    let record = gw.usage_record_of(&a);
    assert_eq!(record["provider"], "bedrock-b", "{record}");
    assert_eq!(record["prompt_tokens"], tokens, "{record}");
    let id = a.header("x-request-id").unwrap();
    let mine = gw
        .usage_records(5)
        .into_iter()
        .filter(|r| r["request_id"] == id)
        .count();
    assert_eq!(mine, 1);

    // a chat model has no embeddings
    let a = embed(&gw, json!({"model": "claude-bedrock", "input": "x"}));
    assert_refused(&a, Some("model"), "does not support embeddings");
}

#[test]
fn vertex_predicts_a_batch_with_its_token_counts_and_fails_over_on_a_429() {
    let gw = start();
    let texts = [words(60, "w"), words(40, "x")];
    let expected: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| embedding_vector(t.as_bytes(), 16))
        .collect();
    let a = embed(
        &gw,
        json!({"model": "text-embedding-005", "input": texts, "dimensions": 16, "task_type": "RETRIEVAL_DOCUMENT"}),
    );
    assert_list(&a, "text-embedding-005", &expected, 100);
    let body = vertex_sent(&gw.upstream_request(&a), "text-embedding-005");
    assert_eq!(
        body,
        json!({"instances": [
                {"content": texts[0], "task_type": "RETRIEVAL_DOCUMENT"},
                {"content": texts[1], "task_type": "RETRIEVAL_DOCUMENT"}],
               "parameters": {"autoTruncate": true, "outputDimensionality": 16}})
    );
    // Vertex's token counts (60 + 40) at 0.10 USD per million
    let record = gw.usage_record_of(&a);
    assert_eq!(record["provider"], "vertex-a");
    assert_eq!(
        (
            record["prompt_tokens"].as_u64(),
            record["cost_micro_usd"].as_u64()
        ),
        (Some(100), Some(10)),
        "{record}"
    );

    // gemini-embedding-001 takes one text: its full size back, a batch refused unsent
    let a = embed(
        &gw,
        json!({"model": "gemini-embedding-vertex", "input": "one two", "encoding_format": "base64"}),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        base64_floats(&a.json()["data"][0]["embedding"]),
        embedding_vector(b"one two", 3072)
    );
    assert_eq!(a.json()["usage"]["prompt_tokens"], 2);
    vertex_sent(&gw.upstream_request(&a), "gemini-embedding-001");
    let before = gw.emulator.requests_received();
    let a = embed(
        &gw,
        json!({"model": "gemini-embedding-vertex", "input": ["a", "b"]}),
    );
    assert_refused(&a, Some("input"), "one text per request");
    assert_eq!(gw.emulator.requests_received(), before);

    // Vertex's own 400 (dimensions over the model's size) reaches the client
    let a = embed(
        &gw,
        json!({"model": "text-embedding-005", "input": "x", "dimensions": 4096}),
    );
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("outputDimensionality"),
        "{}",
        a.text()
    );

    // RESOURCE_EXHAUSTED in one region: the other answers, one record names it
    gw.emulator.set_faults(&[("x-emulator-status", "429")]);
    let a = embed(
        &gw,
        json!({"model": "text-embedding-005", "input": texts, "dimensions": 16}),
    );
    assert_list(&a, "text-embedding-005", &expected, 100);
    let record = Gateway::upstream_request_on(&gw.emulator2, &a);
    assert!(
        record["path"]
            .as_str()
            .unwrap()
            .starts_with("/v1/projects/my-project/locations/europe-west1/"),
        "{record}"
    );
    let record = gw.usage_record_of(&a);
    assert_eq!(record["provider"], "vertex-b", "{record}");
    assert_eq!(record["prompt_tokens"], 100);
}
