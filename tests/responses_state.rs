//! Stateful Responses on a translated model across instances: the gateway keeps each stored
//! response in the usage ledger's store, so two instances sharing one PostgreSQL serve one
//! conversation between them, a follow-up sent to the other instance the moment an answer
//! ends finds it, another key's id is 404 everywhere, and a response past its retention is
//! gone. (The SDK suite covers each provider kind and the API's shapes on one instance.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::postgres::TestPostgres;
use common::*;
use serde_json::{json, Value};

const OTHER_KEY: &str = "cai-other-tenant-0007";

/// An instance on the shared ledger, with a second tenant's key; `usage_extra` goes in
/// `[usage]`.
fn instance(ledger: &TestPostgres, usage_extra: &str) -> Gateway {
    let extra = format!(
        "[usage]\nspool_dir = \"{}\"\npostgres_url_env = \"TEST_LEDGER_URL\"\n{usage_extra}\n\
         [[keys]]\nname = \"other\"\nsha256 = \"{}\"\n",
        ledger_dir(free_port()).join("spool").display(),
        sha256_hex(OTHER_KEY.as_bytes())
    );
    Gateway::start_with_env(&extra, &[("TEST_LEDGER_URL", &ledger.url())])
}

fn as_key(gw: &Gateway, key: &str, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let body = body.map(Value::to_string).unwrap_or_default();
    gw.request(
        method,
        path,
        &[("authorization", &format!("Bearer {key}"))],
        body.as_bytes(),
    )
}

fn ask(input: &str, previous: Option<&str>, stream: bool) -> Value {
    let mut body = json!({"model": "gpt-4o", "input": input, "stream": stream});
    if let Some(p) = previous {
        body["previous_response_id"] = json!(p);
    }
    body
}

/// The final response object of a JSON or streamed answer.
fn response_of(a: &Answer) -> Value {
    assert_eq!(a.status, 200, "{}", a.text());
    if a.header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream"))
    {
        let last: Value = serde_json::from_str(a.sse_data().last().unwrap()).unwrap();
        assert_eq!(last["type"], "response.completed", "{last}");
        return last["response"].clone();
    }
    a.json()
}

/// The (role, content) turns the provider received for `answer`.
fn turns(gw: &Gateway, answer: &Answer) -> Vec<(String, String)> {
    let body = match gw.upstream_request(answer)["body"].clone() {
        Value::String(text) => serde_json::from_str(&text).unwrap(),
        body => body,
    };
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn assert_not_found(a: &Answer, what: &str) {
    assert_eq!(a.status, 404, "{what}: {}", a.text());
    assert_eq!(a.json()["error"]["type"], "invalid_request_error", "{what}");
}

#[test]
fn instances_sharing_the_store_continue_each_others_responses_at_once() {
    let ledger = TestPostgres::start_new();
    let (a, b) = (instance(&ledger, ""), instance(&ledger, ""));
    for stream in [false, true] {
        let first = response_of(&as_key(
            &a,
            KEY,
            "POST",
            "/v1/responses",
            Some(&ask("hi", None, stream)),
        ));
        let id = first["id"].as_str().unwrap().to_string();
        assert_eq!(first["store"], true);
        let answer_text = first["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_string();

        // the other instance, the moment the answer ended
        let follow = as_key(
            &b,
            KEY,
            "POST",
            "/v1/responses",
            Some(&ask("go on", Some(&id), stream)),
        );
        let second = response_of(&follow);
        assert_eq!(second["previous_response_id"], id.as_str());
        assert_eq!(
            turns(&b, &follow),
            [
                ("user".into(), "hi".into()),
                ("assistant".into(), answer_text),
                ("user".into(), "go on".into())
            ]
        );

        let path = format!("/v1/responses/{id}");
        let read = as_key(&b, KEY, "GET", &path, None);
        assert_eq!(read.status, 200, "{}", read.text());
        assert_eq!(read.json()["id"], id.as_str());
        assert_eq!(read.json()["output"], first["output"]);

        // another key: 404 on both instances, and nothing reaches a provider
        let before = (
            a.emulator.requests_received(),
            b.emulator.requests_received(),
        );
        for gw in [&a, &b] {
            assert_not_found(&as_key(gw, OTHER_KEY, "GET", &path, None), "read");
            assert_not_found(&as_key(gw, OTHER_KEY, "DELETE", &path, None), "delete");
            let stolen = as_key(
                gw,
                OTHER_KEY,
                "POST",
                "/v1/responses",
                Some(&ask("x", Some(&id), false)),
            );
            assert_not_found(&stolen, "continue");
            assert_eq!(stolen.json()["error"]["param"], "previous_response_id");
        }
        assert_eq!(
            (
                a.emulator.requests_received(),
                b.emulator.requests_received()
            ),
            before
        );

        // deleted on one instance, gone on the other
        let deleted = as_key(&b, KEY, "DELETE", &path, None);
        assert_eq!(deleted.status, 200, "{}", deleted.text());
        assert_eq!(
            deleted.json(),
            json!({"id": id, "object": "response", "deleted": true})
        );
        assert_not_found(&as_key(&a, KEY, "GET", &path, None), "after delete");
        let orphan = as_key(
            &a,
            KEY,
            "POST",
            "/v1/responses",
            Some(&ask("x", Some(&id), false)),
        );
        assert_not_found(&orphan, "continue after delete");
    }
}

#[test]
fn a_response_is_kept_for_its_retention_then_gone() {
    let ledger = TestPostgres::start_new();
    let gw = instance(&ledger, "responses_retention_days = 2");
    let first = response_of(&as_key(
        &gw,
        KEY,
        "POST",
        "/v1/responses",
        Some(&ask("hi", None, false)),
    ));
    let id = first["id"].as_str().unwrap();
    let kept = ledger.psql(
        "ledger",
        &format!("SELECT expires_ms - created_ms FROM stored_responses WHERE id = '{id}'"),
    );
    assert_eq!(
        kept.trim(),
        (2 * 86_400_000u64).to_string(),
        "kept two days"
    );

    // its time passes
    ledger.psql(
        "ledger",
        &format!("UPDATE stored_responses SET expires_ms = created_ms WHERE id = '{id}'"),
    );
    let path = format!("/v1/responses/{id}");
    assert_not_found(&as_key(&gw, KEY, "GET", &path, None), "read after expiry");
    let late = as_key(
        &gw,
        KEY,
        "POST",
        "/v1/responses",
        Some(&ask("x", Some(id), false)),
    );
    assert_not_found(&late, "continue after expiry");
}

#[test]
fn with_stored_responses_off_nothing_is_kept_and_store_true_is_refused() {
    let ledger = TestPostgres::start_new();
    let gw = instance(&ledger, "store_responses = false");
    let unstored = response_of(&as_key(
        &gw,
        KEY,
        "POST",
        "/v1/responses",
        Some(&ask("hi", None, false)),
    ));
    assert_eq!(unstored["store"], false);
    let mut asked = ask("hi", None, false);
    asked["store"] = json!(true);
    let refused = as_key(&gw, KEY, "POST", "/v1/responses", Some(&asked));
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.json()["error"]["param"], "store");
    // the ledger's schema is made when it is first reached, which nothing here waits on:
    // both requests' usage records in it say it has been
    assert_eq!(gw.usage_records(2).len(), 2);
    let count = ledger.psql("ledger", "SELECT count(*) FROM stored_responses");
    assert_eq!(count.trim(), "0");
}

#[test]
fn with_the_store_down_answers_still_arrive_and_continuations_say_try_again() {
    let mut ledger = TestPostgres::start_new();
    let gw = instance(&ledger, "");
    let kept = response_of(&as_key(
        &gw,
        KEY,
        "POST",
        "/v1/responses",
        Some(&ask("hi", None, false)),
    ));
    let id = kept["id"].as_str().unwrap().to_string();
    ledger.stop();

    // the answer is delivered whole; its response could not be kept, and that is counted
    let lost = response_of(&as_key(
        &gw,
        KEY,
        "POST",
        "/v1/responses",
        Some(&ask("hi", None, true)),
    ));
    assert_eq!(lost["status"], "completed");
    let metrics = gw.scrape();
    assert!(
        metrics
            .lines()
            .any(|l| l == "cheapai_responses_not_stored_total 1"),
        "{metrics}"
    );
    // a continuation cannot be served without its state: 503 with Retry-After, not a 404
    let later = as_key(
        &gw,
        KEY,
        "POST",
        "/v1/responses",
        Some(&ask("go on", Some(&id), false)),
    );
    assert_eq!(later.status, 503, "{}", later.text());
    assert!(later.header("retry-after").is_some());
    let read = as_key(&gw, KEY, "GET", &format!("/v1/responses/{id}"), None);
    assert_eq!(read.status, 503, "{}", read.text());

    // back up: the conversation goes on
    ledger.start();
    let follow = as_key(
        &gw,
        KEY,
        "POST",
        "/v1/responses",
        Some(&ask("go on", Some(&id), false)),
    );
    assert_eq!(response_of(&follow)["previous_response_id"], id.as_str());
}
