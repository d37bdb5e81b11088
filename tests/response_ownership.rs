//! Stored responses belong to the key that made them: on native Responses passthrough a
//! provider keeps every conversation in the operator's one account, so the gateway records
//! each response's key and answers another key's use of the id (continuing it, reading it,
//! deleting it) with a 404 in OpenAI's shape, before anything reaches the provider.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};

const OTHER_KEY: &str = "cai-other-tenant-0004";

/// A native Responses provider (`{PORT}`: the emulator that stores the responses) and a
/// second tenant's key.
fn extra(port: &str) -> String {
    format!(
        r#"
[providers.native]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{port}/v1"
native_responses = true

[models."gpt-resp"]
provider = "native"
upstream_model = "gpt-4o"

[[keys]]
name = "other"
sha256 = "{}"
"#,
        sha256_hex(OTHER_KEY.as_bytes())
    )
}

fn as_key(gw: &Gateway, key: &str, method: &str, path: &str, body: &Value) -> Answer {
    let body = if method == "GET" || method == "DELETE" {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    gw.request(
        method,
        path,
        &[("authorization", &format!("Bearer {key}"))],
        &body,
    )
}

fn ask(input: &str, previous: Option<&str>, stream: bool) -> Value {
    let mut body = json!({"model": "gpt-resp", "input": input, "stream": stream});
    if let Some(p) = previous {
        body["previous_response_id"] = json!(p);
    }
    body
}

/// The response id of a JSON or streamed Responses answer.
fn id_of(a: &Answer) -> String {
    if a.header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream"))
    {
        let created: Value = serde_json::from_str(&a.sse_data()[0]).unwrap();
        return created["response"]["id"].as_str().unwrap().to_string();
    }
    a.json()["id"].as_str().unwrap().to_string()
}

fn assert_not_found(a: &Answer, what: &str) {
    assert_eq!(a.status, 404, "{what}: {}", a.text());
    let e = &a.json()["error"];
    assert!(
        e["message"].as_str().unwrap().contains("not found"),
        "{what}: {e}"
    );
    assert_eq!(e["type"], "invalid_request_error", "{what}: {e}");
}

#[test]
fn another_keys_stored_response_is_404_to_continue_read_or_delete() {
    let gw = Gateway::start_with(&extra("{EMU}"));
    for stream in [false, true] {
        let first = as_key(&gw, KEY, "POST", "/v1/responses", &ask("hi", None, stream));
        assert_eq!(first.status, 200, "{}", first.text());
        let id = id_of(&first);
        let before = gw.emulator.requests_received();

        let stolen = as_key(
            &gw,
            OTHER_KEY,
            "POST",
            "/v1/responses",
            &ask("go on", Some(&id), false),
        );
        assert_not_found(&stolen, "continue");
        assert_eq!(
            stolen.json()["error"]["code"],
            "previous_response_not_found"
        );
        assert_eq!(stolen.json()["error"]["param"], "previous_response_id");
        let path = format!("/v1/responses/{id}");
        assert_not_found(&as_key(&gw, OTHER_KEY, "GET", &path, &Value::Null), "read");
        let items = format!("{path}/input_items");
        assert_not_found(
            &as_key(&gw, OTHER_KEY, "GET", &items, &Value::Null),
            "items",
        );
        assert_not_found(
            &as_key(&gw, OTHER_KEY, "DELETE", &path, &Value::Null),
            "delete",
        );
        assert_eq!(
            gw.emulator.requests_received(),
            before,
            "nothing of another key's reached the provider"
        );

        // the owner continues at once, reads, lists and deletes
        let follow = as_key(
            &gw,
            KEY,
            "POST",
            "/v1/responses",
            &ask("go on", Some(&id), stream),
        );
        assert_eq!(follow.status, 200, "{}", follow.text());
        let read = as_key(&gw, KEY, "GET", &path, &Value::Null);
        assert_eq!(read.status, 200, "{}", read.text());
        assert_eq!(read.json()["id"], id.as_str());
        let listed = as_key(&gw, KEY, "GET", &items, &Value::Null);
        assert_eq!(listed.status, 200, "{}", listed.text());
        assert_eq!(listed.json()["object"], "list");
        let deleted = as_key(&gw, KEY, "DELETE", &path, &Value::Null);
        assert_eq!(deleted.status, 200, "{}", deleted.text());
        assert_eq!(deleted.json()["deleted"], true);
        assert_not_found(
            &as_key(&gw, KEY, "GET", &path, &Value::Null),
            "after delete",
        );
    }
    // an id no instance ever saw is unknown to everyone
    let made_up = as_key(
        &gw,
        KEY,
        "POST",
        "/v1/responses",
        &ask("hi", Some("resp_0123456789abcdef"), false),
    );
    assert_not_found(&made_up, "unknown id");
}

#[test]
fn with_redis_every_instance_knows_who_made_a_response() {
    let redis = RedisServer::start();
    let state = format!("[state]\nredis_url = \"{}\"\n", redis.url());
    let a = Gateway::start_with(&format!("{state}{}", extra("{EMU}")));
    // the second instance reaches the same provider account (the first one's emulator)
    let b = Gateway::start_with(&format!("{state}{}", extra(&a.emu_port.to_string())));
    let first = as_key(&a, KEY, "POST", "/v1/responses", &ask("hi", None, false));
    assert_eq!(first.status, 200, "{}", first.text());
    let id = id_of(&first);
    let follow = as_key(
        &b,
        KEY,
        "POST",
        "/v1/responses",
        &ask("go on", Some(&id), false),
    );
    assert_eq!(follow.status, 200, "{}", follow.text());
    let stolen = as_key(
        &b,
        OTHER_KEY,
        "POST",
        "/v1/responses",
        &ask("x", Some(&id), false),
    );
    assert_not_found(&stolen, "continue on another instance");
    let ttl = redis.cli(&["TTL", &format!("cai:resp:{id}")]);
    let ttl: u64 = ttl.trim().parse().unwrap();
    assert!(
        ttl > 29 * 86_400,
        "kept as long as the provider keeps it: {ttl} s"
    );
}
