//! OpenAI-format providers in passthrough: what reaches the provider, and what comes back.

mod common;

use common::*;
use serde_json::{json, Value};

fn header<'a>(record: &'a Value, name: &str) -> Vec<&'a str> {
    record["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|pair| {
            pair[0]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .filter_map(|pair| pair[1].as_str())
        .collect()
}

fn sent_body(record: &Value) -> Value {
    serde_json::from_str(record["body"].as_str().unwrap_or_default()).unwrap_or(Value::Null)
}

#[test]
fn provider_gets_its_own_key_and_never_the_clients() {
    let gw = Gateway::start();
    for auth in [
        ("authorization", format!("Bearer {KEY}")),
        ("x-api-key", KEY.to_string()),
    ] {
        let a = gw.request(
            "POST",
            "/v1/chat/completions",
            &[
                (auth.0, &auth.1),
                ("x-stainless-lang", "python"),
                ("openai-organization", "org-client"),
            ],
            chat("gpt-4o", false).as_bytes(),
        );
        assert_eq!(a.status, 200, "{}", a.text());
        let record = gw.upstream_request(&a);
        assert_eq!(
            header(&record, "authorization"),
            vec![format!("Bearer {PROVIDER_KEY}")]
        );
        assert!(header(&record, "x-api-key").is_empty());
        assert!(header(&record, "openai-organization").is_empty());
        assert_eq!(
            header(&record, "x-stainless-lang"),
            vec!["python"],
            "other client headers pass"
        );
        assert_eq!(
            header(&record, "host"),
            vec![format!("127.0.0.1:{}", gw.emu_port)]
        );
        let all = record.to_string();
        assert!(!all.contains(KEY), "client key reached the provider: {all}");
        // and the provider key never comes back to the client
        assert!(!a.text().contains(PROVIDER_KEY));
        assert!(!format!("{:?}", a.headers).contains(PROVIDER_KEY));
    }
}

#[test]
fn json_and_stream_answers_are_forwarded_byte_for_byte() {
    let gw = Gateway::start();
    let stream_with_usage = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    for (body, headers) in [
        (chat("gpt-4o", false), vec![]),
        (stream_with_usage.to_string(), vec![]),
        (
            stream_with_usage.to_string(),
            vec![("x-emulator-fragment", "1")],
        ),
    ] {
        let a = gw.post_with("/v1/chat/completions", &headers, &body);
        assert_eq!(a.status, 200, "{}", a.text());
        let record = gw.upstream_exchange(&a);
        assert_eq!(record["body"], body.as_str(), "request passes unchanged");
        assert_eq!(record["response_bytes"], a.body.len(), "{body}");
        assert_eq!(record["response_sha256"], sha256_hex(&a.body), "{body}");
        if body.contains("\"stream\":true") {
            assert_eq!(a.header("content-type"), Some("text/event-stream"));
            assert!(a.text().ends_with("data: [DONE]\n\n"));
        } else {
            assert_eq!(
                a.header("content-length"),
                Some(a.body.len().to_string().as_str())
            );
        }
    }
}

/// A stream whose client did not ask for usage: the gateway asks the provider for it (to
/// meter the request) and removes exactly that one chunk; every other byte is the provider's.
#[test]
fn usage_chunk_is_requested_upstream_and_removed_for_the_client() {
    let gw = Gateway::start();
    let a = gw.post("/v1/chat/completions", &chat("gpt-4o", true));
    assert_eq!(a.status, 200);
    let record = gw.upstream_exchange(&a);
    assert_eq!(sent_body(&record)["stream_options"]["include_usage"], true);
    assert!(!a.text().contains("\"choices\":[]"), "{}", a.text());
    assert!(a.text().ends_with("data: [DONE]\n\n"));
    // the provider sent exactly the client's bytes plus one usage event
    let extra = record["response_bytes"].as_u64().unwrap_or_default() - a.body.len() as u64;
    assert!((100..1000).contains(&extra), "removed {extra} bytes");
}

#[test]
fn request_body_reaches_the_provider_unchanged_but_for_the_renamed_model() {
    let gw = Gateway::start();
    let body = r#"{"input": ["a", "b"],   "model":"text-embedding-3", "encoding_format":"float"}"#;
    let a = gw.post("/v1/embeddings", body);
    assert_eq!(a.status, 200, "{}", a.text());
    let record = gw.upstream_request(&a);
    assert_eq!(
        record["body"],
        r#"{"input": ["a", "b"],   "model":"text-embedding-3-small", "encoding_format":"float"}"#
    );
    assert_eq!(record["path"], "/v1/embeddings");

    let a = gw.post("/v1/chat/completions", &chat("gpt-4o", false));
    let record = gw.upstream_request(&a);
    assert_eq!(
        record["body"],
        chat("gpt-4o", false),
        "no rename: identical body"
    );
}

#[test]
fn base_url_path_prefix_is_kept() {
    let gw = Gateway::start_with(
        r#"
[providers.prefixed]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{EMU}/api/v1/"
[models."prefixed-model"]
provider = "prefixed"
upstream_model = "llama-3"
"#,
    );
    let a = gw.post(
        "/v1/chat/completions?ignored=1",
        &chat("prefixed-model", false),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let record = gw.upstream_request(&a);
    assert_eq!(record["path"], "/api/v1/chat/completions");
    assert_eq!(sent_body(&record)["model"], "llama-3");
    assert!(
        header(&record, "authorization").is_empty(),
        "provider without a key sends none"
    );
}

#[test]
fn embeddings_take_a_string_or_an_array() {
    let gw = Gateway::start();
    let one = gw
        .post(
            "/v1/embeddings",
            r#"{"model":"text-embedding-3","input":"hello"}"#,
        )
        .json();
    assert_eq!(one["object"], "list");
    assert_eq!(one["data"].as_array().map(Vec::len), Some(1));
    assert!(one["data"][0]["embedding"]
        .as_array()
        .is_some_and(|v| !v.is_empty()));
    let many = gw
        .post(
            "/v1/embeddings",
            r#"{"model":"text-embedding-3","input":["a","b","c"]}"#,
        )
        .json();
    let data = many["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(data.len(), 3);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["index"], i);
    }
    assert!(many["usage"]["prompt_tokens"]
        .as_u64()
        .is_some_and(|t| t > 0));
}

#[test]
fn models_lists_only_what_the_key_may_use() {
    let gw = Gateway::start();
    let list = |key: &str| {
        let auth = format!("Bearer {key}");
        let a = gw.request("GET", "/v1/models", &[("authorization", &auth)], b"");
        assert_eq!(a.status, 200);
        assert!(a.header("x-request-id").is_some());
        let v = a.json();
        assert_eq!(v["object"], "list");
        v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                assert_eq!(m["object"], "model");
                m["id"].as_str().unwrap_or_default().to_string()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(KEY),
        [
            "claude-3-5-sonnet",
            "gpt-4o",
            "gpt-4o-mini",
            "text-embedding-3"
        ]
    );
    assert_eq!(list(LIMITED_KEY), ["gpt-4o"]);
    let auth = format!("Bearer {KEY}");
    let one = gw
        .request("GET", "/v1/models/gpt-4o", &[("authorization", &auth)], b"")
        .json();
    assert_eq!(
        one,
        json!({"id": "gpt-4o", "object": "model", "created": one["created"], "owned_by": "cheapai"})
    );
}

#[test]
fn provider_account_headers_do_not_reach_the_client() {
    let gw = Gateway::start();
    let a = gw.post("/v1/chat/completions", &chat("gpt-4o", false));
    assert_eq!(a.status, 200);
    for name in a.headers.keys() {
        assert!(!name.starts_with("x-ratelimit-"), "{name}");
        assert!(
            name != "openai-organization" && name != "set-cookie",
            "{name}"
        );
    }
    let upstream_id = gw.upstream_request(&a);
    assert!(a
        .header("x-request-id")
        .is_some_and(|id| id.starts_with("req_")));
    assert_eq!(
        header(&upstream_id, "x-request-id"),
        vec![a.header("x-request-id").unwrap_or_default()]
    );
}
