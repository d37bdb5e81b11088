//! Azure OpenAI as the emulator speaks it: OpenAI's bodies and streams on Azure's paths,
//! behind Azure's key and version checks, with Azure's additions to the answers.
//!
//! | method | path (any prefix) | answer |
//! |---|---|---|
//! | POST | `/openai/deployments/{deployment}/chat/completions?api-version=V` | OpenAI chat, plus Azure's filter results |
//! | POST | `/openai/deployments/{deployment}/embeddings?api-version=V` | OpenAI embeddings |
//! | POST | `/openai/responses?api-version=V` | OpenAI Responses |
//! | GET, DELETE | `/openai/responses/{id}…?api-version=V` | a stored response |
//!
//! Checked first, in Azure's order: the `api-key` header must be [`API_KEY`] (else 401 with
//! Azure's `{"error":{"code":"401","message":…}}`; a bearer token is not a key), then the
//! `api-version` query parameter must be there (else 400). The deployment name is not
//! checked against a list: any name answers, echoing the body's `model`.
//!
//! Azure's answers differ from OpenAI's where its content filter speaks: a chat answer
//! carries `prompt_filter_results` (in a stream, as a first chunk with empty `choices`,
//! `id` and `model`, as Azure sends it) and `content_filter_results` per choice.
//! `x-emulator-content-filter: prompt` answers Azure's 400 `content_filter` refusal;
//! `completion` ends the answer with `finish_reason: "content_filter"`. Injected statuses
//! answer Azure's bodies for 401 and 429 (with `retry-after` and `retry-after-ms`), OpenAI's
//! for the others.

use bytes::Bytes;
use serde_json::{json, Value};

use super::faults::{ContentFilter, Faults};
use super::openai::{self, StoredResponses};
use super::{Reply, ReplyBody, Request};

/// The one key the emulator's Azure routes accept (tests and the offline config use it).
pub const API_KEY: &str = "emulator-azure-key";

/// Whether `path` is one of Azure OpenAI's.
pub fn serves(path: &str) -> bool {
    path.contains("/openai/deployments/")
        || path.ends_with("/openai/responses")
        || path.contains("/openai/responses/")
}

/// Azure's refusal of a request without its key or API version, or None.
pub fn refusal(req: &Request) -> Option<Reply> {
    let key = req.headers.get("api-key").map(|v| v.as_bytes());
    if key != Some(API_KEY.as_bytes()) {
        return Some(Reply::json(
            401,
            &json!({"error": {"code": "401", "message": "Access denied due to invalid \
                subscription key or wrong API endpoint. Make sure to provide a valid key for \
                an active subscription and use a correct regional API endpoint for your \
                resource."}}),
        ));
    }
    let version = req
        .query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "api-version")
        .map(|(_, value)| value);
    if version.is_none_or(str::is_empty) {
        return Some(Reply::json(
            400,
            &json!({"error": {"code": "BadRequest",
                "message": "Missing required query parameter: api-version"}}),
        ));
    }
    None
}

/// Answers an Azure request (key and version already checked): the OpenAI operation its
/// path names, with Azure's filter results.
pub fn route(req: &Request, faults: &Faults, stored: &StoredResponses) -> Reply {
    if faults.content_filter == Some(ContentFilter::Prompt) {
        return content_filter_refusal();
    }
    // `…/openai/deployments/{d}/chat/completions` → `/chat/completions`;
    // `…/openai/responses…` → `/responses…`
    let operation = match req.path.split_once("/openai/deployments/") {
        Some((_, rest)) => rest.find('/').map_or("", |slash| &rest[slash..]),
        None => req
            .path
            .split_once("/openai")
            .map_or(req.path, |(_, rest)| rest),
    };
    let openai_request = Request {
        path: operation,
        ..*req
    };
    let mut reply = openai::route(&openai_request, faults, stored);
    if reply.status == 200 && operation == "/chat/completions" {
        let cut = faults.content_filter == Some(ContentFilter::Completion);
        with_filter_results(&mut reply, cut);
    }
    reply
}

/// The filter's verdict on a prompt or completion that passed: every category safe.
fn passed() -> Value {
    json!({
        "hate": {"filtered": false, "severity": "safe"},
        "self_harm": {"filtered": false, "severity": "safe"},
        "sexual": {"filtered": false, "severity": "safe"},
        "violence": {"filtered": false, "severity": "safe"},
    })
}

/// Adds Azure's `prompt_filter_results` to a chat answer (`cut`: the completion was
/// filtered, so it ends with `content_filter` instead of `stop`).
fn with_filter_results(reply: &mut Reply, cut: bool) {
    let prompt = json!([{"prompt_index": 0, "content_filter_results": passed()}]);
    let finish = |bytes: &[u8]| -> Bytes {
        let text = String::from_utf8_lossy(bytes);
        let text = if cut {
            text.replace(
                r#""finish_reason":"stop""#,
                r#""finish_reason":"content_filter""#,
            )
        } else {
            text.into_owned()
        };
        Bytes::from(text)
    };
    match &mut reply.body {
        ReplyBody::Full { bytes, .. } => {
            // after the opening brace: the answer's other fields keep their order
            let field = format!("\"prompt_filter_results\":{prompt},");
            let mut out = Vec::with_capacity(bytes.len() + field.len());
            out.push(b'{');
            out.extend_from_slice(field.as_bytes());
            out.extend_from_slice(bytes.get(1..).unwrap_or_default());
            *bytes = finish(&out);
        }
        ReplyBody::Stream { events, .. } => {
            let first = json!({"choices": [], "created": 0, "id": "", "model": "",
                               "object": "", "prompt_filter_results": prompt});
            let mut all = vec![Bytes::from(format!("data: {first}\n\n"))];
            all.extend(events.iter().map(|e| finish(e)));
            *events = all;
        }
    }
}

/// Azure's 400 when its content filter refuses the prompt.
fn content_filter_refusal() -> Reply {
    let mut verdict = passed();
    verdict["violence"] = json!({"filtered": true, "severity": "medium"});
    Reply::json(
        400,
        &json!({"error": {
            "message": "The response was filtered due to the prompt triggering Azure \
                OpenAI's content management policy. Please modify your prompt and retry.",
            "type": null,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": verdict,
            },
        }}),
    )
}

/// The error asked for with `x-emulator-status`: Azure's own bodies for 401 and 429,
/// OpenAI's for the rest (Azure relays those from the model service).
pub fn fault_reply(status: u16, model: Option<&str>, raw_body: Option<&str>) -> Reply {
    let mut reply = match status {
        401 => Reply::json(
            401,
            &json!({"error": {"code": "401", "message": "Access denied due to invalid \
                subscription key or wrong API endpoint."}}),
        ),
        429 => {
            let mut reply = Reply::json(
                429,
                &json!({"error": {"code": "429", "message": "Requests to the \
                    ChatCompletions_Create Operation under Azure OpenAI API have exceeded \
                    token rate limit of your current OpenAI S0 pricing tier. Please retry \
                    after 1 second."}}),
            );
            reply.headers.push(("retry-after", "1".to_string()));
            reply.headers.push(("retry-after-ms", "1000".to_string()));
            reply
        }
        _ => return openai::fault_reply(status, model, raw_body),
    };
    if let Some(raw) = raw_body {
        reply.set_raw_body(raw);
    }
    reply
}

/// What an Azure OpenAI resource sends on every answer: its request id, region and the
/// resource's rate-limit state (a gateway must not pass these on to its own clients).
pub fn provider_headers() -> Vec<(&'static str, String)> {
    vec![
        ("apim-request-id", uuid::Uuid::new_v4().to_string()),
        ("x-ms-region", "Sweden Central".to_string()),
        ("x-ms-rai-invoked", "true".to_string()),
        ("azureml-model-session", "d001-20250101000000".to_string()),
        ("x-ratelimit-remaining-requests", "999".to_string()),
        ("x-ratelimit-remaining-tokens", "99000".to_string()),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use http::HeaderMap;

    const CHAT: &str = r#"{"model":"gpt-4o-eu","messages":[{"role":"user","content":"hi"}]}"#;

    fn answer(target: &str, key: Option<&str>, body: &str, faults: &Faults) -> Reply {
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            headers.insert("api-key", key.parse().unwrap());
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let req = Request {
            method: "POST",
            path,
            query,
            headers: &headers,
            body: body.as_bytes(),
        };
        refusal(&req).unwrap_or_else(|| route(&req, faults, &StoredResponses::default()))
    }

    fn json_of(reply: &Reply) -> Value {
        match &reply.body {
            ReplyBody::Full { bytes, .. } => serde_json::from_slice(bytes).unwrap(),
            ReplyBody::Stream { .. } => panic!("a stream"),
        }
    }

    const CHAT_PATH: &str = "/openai/deployments/gpt-4o-eu/chat/completions?api-version=2024-10-21";

    #[test]
    fn key_then_version_are_checked() {
        let f = Faults::default();
        for key in [None, Some("wrong"), Some("Bearer emulator-azure-key")] {
            let reply = answer(CHAT_PATH, key, CHAT, &f);
            assert_eq!(reply.status, 401, "{key:?}");
            assert_eq!(json_of(&reply)["error"]["code"], "401");
        }
        let path = "/openai/deployments/gpt-4o-eu/chat/completions";
        for target in [path.to_string(), format!("{path}?api-version=")] {
            let reply = answer(&target, Some(API_KEY), CHAT, &f);
            assert_eq!(reply.status, 400, "{target}");
            assert!(json_of(&reply)["error"]["message"]
                .as_str()
                .unwrap()
                .contains("api-version"));
        }
    }

    #[test]
    fn chat_carries_the_filter_results() {
        let f = Faults::default();
        let reply = answer(CHAT_PATH, Some(API_KEY), CHAT, &f);
        let v = json_of(&reply);
        assert_eq!(reply.status, 200);
        assert_eq!(v["model"], "gpt-4o-eu");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            v["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"],
            false
        );

        let stream = CHAT.replace("\"messages\"", "\"stream\":true,\"messages\"");
        let reply = answer(CHAT_PATH, Some(API_KEY), &stream, &f);
        let (_, events, _) = reply.stream_parts();
        let first: Value = serde_json::from_slice(&events[0][6..]).unwrap();
        assert_eq!(first["choices"], json!([]));
        assert_eq!(first["id"], "");
        assert!(first["prompt_filter_results"].is_array());
        assert!(events.last().unwrap().starts_with(b"data: [DONE]"));
    }

    #[test]
    fn the_content_filter_refuses_or_cuts() {
        let f = Faults {
            content_filter: Some(ContentFilter::Prompt),
            ..Faults::default()
        };
        let reply = answer(CHAT_PATH, Some(API_KEY), CHAT, &f);
        let v = json_of(&reply);
        assert_eq!(reply.status, 400);
        assert_eq!(v["error"]["code"], "content_filter");
        assert_eq!(
            v["error"]["innererror"]["content_filter_result"]["violence"]["filtered"],
            true
        );
        let f = Faults {
            content_filter: Some(ContentFilter::Completion),
            ..Faults::default()
        };
        let v = json_of(&answer(CHAT_PATH, Some(API_KEY), CHAT, &f));
        assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    }

    #[test]
    fn embeddings_responses_and_faults() {
        let f = Faults::default();
        let emb = r#"{"model":"emb","input":"x"}"#;
        let path = "/openai/deployments/emb/embeddings?api-version=2024-10-21";
        let v = json_of(&answer(path, Some(API_KEY), emb, &f));
        assert_eq!(v["object"], "list");
        let resp = r#"{"model":"gpt-4o-eu","input":"hi"}"#;
        let path = "/openai/responses?api-version=2025-04-01-preview";
        let v = json_of(&answer(path, Some(API_KEY), resp, &f));
        assert_eq!(v["object"], "response");
        assert_eq!(
            fault_reply(429, None, None)
                .headers
                .iter()
                .find(|(n, _)| *n == "retry-after-ms")
                .map(|(_, v)| v.as_str()),
            Some("1000")
        );
        assert_eq!(fault_reply(503, None, None).status, 503);
        assert!(serves("/openai/deployments/d/chat/completions"));
        assert!(!serves("/v1beta/openai/chat/completions"));
    }
}
