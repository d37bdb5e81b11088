//! Google Gemini API (Generative Language API `v1beta`) as the emulator speaks it:
//! routing, errors, headers, models and the prompt-token
//! rule here; `generateContent` / `streamGenerateContent` / `countTokens` in [`generate`],
//! thought parts and thought signatures (given out and enforced) in [`thought`],
//! embeddings in [`embed`]. Responses are camelCase; requests are read camelCase or
//! snake_case ([`field`]).
//!
//! # Routes
//! `POST …/models/{model}:{action}` with action `generateContent`,
//! `streamGenerateContent` (SSE with `alt=sse` in the query, else a JSON array),
//! `countTokens`, `embedContent`, `batchEmbedContents` (any prefix, `{model}` from the
//! path); `GET …/v1beta/models` and `GET …/v1beta/models/{id}`. Unknown action → 404
//! `NOT_FOUND`, wrong method → 405, body not JSON → 400 `INVALID_ARGUMENT`.
//!
//! **No key check**: the real API answers a request without `x-goog-api-key`, `?key=` or
//! OAuth with 403 `PERMISSION_DENIED`, but the gateway's offline config talks to the
//! emulator without secrets, so keys are only recorded; test auth errors with
//! `x-emulator-status: 401`/`403`, or the real "API key not valid" 400 (`ErrorInfo` reason
//! `API_KEY_INVALID`) through `x-emulator-error-body`.
//!
//! # Prompt tokens (tests compute expected values from this)
//! P = (3 + words of `systemInstruction.parts[].text` when present) + Σ over `contents` of
//! (3 + words), where a content's words are the whitespace-separated words of every
//! `parts[].text` plus those of every string inside `functionResponse.response`; other
//! parts and `tools` count 0. A 1:1 translation of an OpenAI chat request (system message →
//! `systemInstruction`) gets the same count as on the OpenAI route.
//!
//! # Errors and headers
//! `{"error":{"code","message","status"[,"details"]}}`, content type
//! `application/json; charset=UTF-8` like every Gemini JSON answer. Status names
//! ([`status_name`]): 400 `INVALID_ARGUMENT`, 401 `UNAUTHENTICATED`, 403
//! `PERMISSION_DENIED`, 404 `NOT_FOUND`, 409 `ABORTED`, 429 `RESOURCE_EXHAUSTED`, 499
//! `CANCELLED`, 500 `INTERNAL`, 501 `UNIMPLEMENTED`, 503 `UNAVAILABLE`, 504
//! `DEADLINE_EXCEEDED`; other 4xx `INVALID_ARGUMENT`, other 5xx `INTERNAL`. A fault 429
//! carries a per-minute `QuotaFailure` and a `RetryInfo` with
//! `retryDelay: "1s"` (no `retry-after` header, like the real API). Every answer carries
//! Google's `server`, `server-timing`, `vary` and `x-*-options` headers; no rate-limit
//! headers (the real API sends none).

mod embed;
mod generate;
mod thought;

use serde::Serialize;
use serde_json::{json, Value};

use super::{Reply, ReplyBody, Request};

pub use generate::sse_error;

/// Content type of every Gemini JSON answer (and of the JSON-array stream).
const JSON: &str = "application/json; charset=UTF-8";
/// Model named in error messages when the path has none.
const DEFAULT_MODEL: &str = "gemini-2.5-flash";
/// Methods of the generative models / the embedding model in the models list.
const GENERATE: &[&str] = &[
    "generateContent",
    "countTokens",
    "createCachedContent",
    "batchGenerateContent",
];
const EMBED: &[&str] = &[
    "embedContent",
    "countTextTokens",
    "countTokens",
    "asyncBatchEmbedContent",
];
/// `(id, displayName, inputTokenLimit, outputTokenLimit, supportedGenerationMethods)`.
type ModelRow = (
    &'static str,
    &'static str,
    u64,
    u64,
    &'static [&'static str],
);
const MODELS: &[ModelRow] = &[
    (
        "gemini-2.5-flash",
        "Gemini 2.5 Flash",
        1_048_576,
        65_536,
        GENERATE,
    ),
    (
        "gemini-2.5-pro",
        "Gemini 2.5 Pro",
        1_048_576,
        65_536,
        GENERATE,
    ),
    (
        "gemini-2.0-flash",
        "Gemini 2.0 Flash",
        1_048_576,
        8_192,
        GENERATE,
    ),
    (
        "gemini-3-pro-preview",
        "Gemini 3 Pro Preview",
        1_048_576,
        65_536,
        GENERATE,
    ),
    (
        "gemini-embedding-001",
        "Gemini Embedding 001",
        2_048,
        1,
        EMBED,
    ),
];

// ---------------------------------------------------------------- wire types

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: u16,
    message: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Model<'a> {
    name: String,
    display_name: &'a str,
    input_token_limit: u64,
    output_token_limit: u64,
    supported_generation_methods: &'a [&'a str],
}

#[derive(Serialize)]
struct ModelList<'a> {
    models: Vec<Model<'a>>,
}

/// A JSON answer with Gemini's content type.
fn json<T: Serialize + ?Sized>(status: u16, body: &T) -> Reply {
    let mut reply = Reply::json(status, body);
    if let ReplyBody::Full { content_type, .. } = &mut reply.body {
        if *content_type == "application/json" {
            *content_type = JSON;
        }
    }
    reply
}

/// `v[camel]`, or `v[snake_case(camel)]` (the REST layer accepts both spellings).
fn field<'a>(v: &'a Value, camel: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| {
        let mut snake = String::with_capacity(camel.len() + 4);
        for c in camel.chars() {
            if c.is_ascii_uppercase() {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        }
        v.get(snake)
    })
}

// ---------------------------------------------------------------- routing

/// What a Gemini path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    List,
    Get(&'a str),
    Action { model: &'a str, action: &'a str },
}

fn target(path: &str) -> Option<Target<'_>> {
    let (prefix, last) = path.rsplit_once('/')?;
    if prefix.ends_with("/models") {
        if let Some((model, action)) = last.split_once(':') {
            return Some(Target::Action { model, action });
        }
        if prefix.ends_with("/v1beta/models") && !last.is_empty() {
            return Some(Target::Get(last));
        }
    }
    path.ends_with("/v1beta/models").then_some(Target::List)
}

/// True for the paths this module answers.
pub fn serves(path: &str) -> bool {
    target(path).is_some()
}

/// Answers a request on one of [`serves`]'s paths (faults are handled by the caller).
pub fn route(req: &Request, chunks: usize) -> Reply {
    let wrong_method = || {
        let msg = format!("Method {} is not allowed for {}.", req.method, req.path);
        error_reply(405, &msg)
    };
    let (model, action) = match target(req.path) {
        Some(Target::Action { model, action }) => (model, action),
        Some(Target::List) if req.method == "GET" => return models_reply(),
        Some(Target::Get(id)) if req.method == "GET" => return model_reply(id),
        Some(_) => return wrong_method(),
        None => return error_reply(404, "Method not found."),
    };
    if req.method != "POST" {
        return wrong_method();
    }
    let sse = req.query.split('&').any(|p| p == "alt=sse");
    let Ok(body) = serde_json::from_slice::<Value>(req.body) else {
        return error_reply(400, "Invalid JSON payload received. Unexpected token.");
    };
    match action {
        "generateContent" => generate::generate_reply(&body, model, chunks, None),
        "streamGenerateContent" => generate::generate_reply(&body, model, chunks, Some(sse)),
        "countTokens" => generate::count_tokens_reply(&body),
        "embedContent" => embed::embed_reply(&body),
        "batchEmbedContents" => embed::batch_embed_reply(&body, model),
        _ => error_reply(404, "Method not found."),
    }
}

// ---------------------------------------------------------------- prompt tokens

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Words of every string anywhere inside `v`.
fn string_words(v: &Value) -> u64 {
    match v {
        Value::String(s) => words(s),
        Value::Array(a) => a.iter().map(string_words).sum(),
        Value::Object(o) => o.values().map(string_words).sum(),
        _ => 0,
    }
}

/// Words of one `Content` (see the module doc).
fn content_words(content: &Value) -> u64 {
    let parts = field(content, "parts").and_then(Value::as_array);
    let part_words = |p: &Value| {
        let text = p.get("text").and_then(Value::as_str).map_or(0, words);
        let response = field(p, "functionResponse").and_then(|r| r.get("response"));
        text + response.map_or(0, string_words)
    };
    parts.into_iter().flatten().map(part_words).sum()
}

/// Prompt tokens P of a generate request (see the module doc).
fn prompt_tokens(req: &Value) -> u64 {
    let system = field(req, "systemInstruction")
        .filter(|s| !s.is_null())
        .map_or(0, |s| 3 + content_words(s));
    let contents = field(req, "contents").and_then(Value::as_array);
    system
        + contents
            .into_iter()
            .flatten()
            .map(|c| 3 + content_words(c))
            .sum::<u64>()
}

// ---------------------------------------------------------------- errors and headers

/// Google's canonical status name for an HTTP status (module doc).
pub fn status_name(status: u16) -> &'static str {
    match status {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if s >= 500 => "INTERNAL",
        _ => "INVALID_ARGUMENT",
    }
}

fn error_body(status: u16, message: &str, details: Vec<Value>) -> ErrorBody<'_> {
    ErrorBody {
        error: ErrorDetail {
            code: status,
            message,
            status: status_name(status),
            details,
        },
    }
}

/// A Gemini error answer with the status name for `status`.
pub fn error_reply(status: u16, message: &str) -> Reply {
    json(status, &error_body(status, message, Vec::new()))
}

/// The error asked for with `x-emulator-status`, like the real API's for that status (the
/// model comes from the path); `raw_body` (`x-emulator-error-body`) replaces the body.
pub fn fault_reply(status: u16, path: &str, raw_body: Option<&str>) -> Reply {
    let model = match target(path) {
        Some(Target::Action { model, .. } | Target::Get(model)) => model,
        _ => DEFAULT_MODEL,
    };
    let not_found = format!(
        "models/{model} is not found for API version v1beta, or is not supported for \
         generateContent. Call ListModels to see the list of available models and their \
         supported methods."
    );
    let (message, details) = match status {
        401 => (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential.",
            Vec::new(),
        ),
        403 => ("The caller does not have permission", Vec::new()),
        404 => (not_found.as_str(), Vec::new()),
        429 => (
            "You exceeded your current quota, please check your plan and billing details. For \
             more information on this error, head to: \
             https://ai.google.dev/gemini-api/docs/rate-limits.",
            vec![
                json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{
                        "quotaMetric":
                            "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": "10"}]}),
                json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}),
            ],
        ),
        503 => (
            "The model is overloaded. Please try again later.",
            Vec::new(),
        ),
        504 => (
            "Deadline expired before operation could complete.",
            Vec::new(),
        ),
        s if s >= 500 => (
            "An internal error has occurred. Please retry or report in \
             https://developers.generativeai.google/guide/troubleshooting",
            Vec::new(),
        ),
        _ => ("Request contains an invalid argument.", Vec::new()),
    };
    let mut reply = json(status, &error_body(status, message, details));
    if let Some(raw) = raw_body {
        reply.set_raw_body(raw);
    }
    reply
}

/// The error object a stream carries when the model fails after the 200 header.
fn stream_error_json() -> Vec<u8> {
    let body = error_body(
        503,
        "The model is overloaded. Please try again later.",
        Vec::new(),
    );
    // Serializing this plain struct cannot fail; an empty object keeps the event valid.
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
}

/// What generativelanguage.googleapis.com sends on every answer.
pub fn provider_headers(elapsed_ms: u128) -> Vec<(&'static str, String)> {
    vec![
        ("vary", "Origin, X-Origin, Referer".to_string()),
        ("server", "scaffolding on HTTPServer2".to_string()),
        ("server-timing", format!("gfet4t7; dur={elapsed_ms}")),
        ("x-xss-protection", "0".to_string()),
        ("x-frame-options", "SAMEORIGIN".to_string()),
        ("x-content-type-options", "nosniff".to_string()),
    ]
}

// ---------------------------------------------------------------- models

fn model((id, display, input, output, methods): &ModelRow) -> Model<'static> {
    Model {
        name: format!("models/{id}"),
        display_name: display,
        input_token_limit: *input,
        output_token_limit: *output,
        supported_generation_methods: methods,
    }
}

/// `GET …/v1beta/models`: the fixed [`MODELS`] list, one page (no `nextPageToken`).
fn models_reply() -> Reply {
    let models = MODELS.iter().map(model).collect();
    json(200, &ModelList { models })
}

/// `GET …/v1beta/models/{id}`: one of [`MODELS`], else 404 `NOT_FOUND`.
fn model_reply(id: &str) -> Reply {
    let id = id.strip_prefix("models/").unwrap_or(id);
    match MODELS.iter().find(|m| m.0 == id) {
        Some(row) => json(200, &model(row)),
        None => fault_reply(404, &format!("/v1beta/models/{id}"), None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use http::HeaderMap;

    /// (status, content type, JSON) of a full answer.
    pub(super) fn body(reply: &Reply) -> (u16, &'static str, Value) {
        match &reply.body {
            ReplyBody::Full {
                content_type,
                bytes,
            } => (
                reply.status,
                content_type,
                serde_json::from_slice(bytes).unwrap(),
            ),
            ReplyBody::Stream { .. } => panic!("expected a JSON body"),
        }
    }

    fn call(method: &str, target: &str, body: &str) -> Reply {
        let headers = HeaderMap::new();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let req = Request {
            method,
            path,
            query,
            headers: &headers,
            body: body.as_bytes(),
        };
        route(&req, 5)
    }

    #[test]
    fn targets() {
        let action = |model, action| Some(Target::Action { model, action });
        assert_eq!(
            target("/v1beta/models/gemini-2.5-flash:generateContent"),
            action("gemini-2.5-flash", "generateContent")
        );
        assert_eq!(
            target("/gemini/v1/models/m:embedContent"),
            action("m", "embedContent")
        );
        assert_eq!(target("/v1beta/models"), Some(Target::List));
        assert_eq!(target("/v1beta/models/m"), Some(Target::Get("m")));
        for other in [
            "/v1/models",
            "/v1/models/gpt-4o",
            "/v1beta/openai/models",
            "/v1beta/x",
        ] {
            assert_eq!(target(other), None, "{other}");
        }
    }

    #[test]
    fn prompt_token_rule() {
        let req = json!({
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "contents": [
                {"role": "user", "parts": [{"text": "hi there"}, {"inlineData": {}}]},
                {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": "b"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f",
                    "response": {"result": "21 C", "n": 3}}}]}]});
        // system 3+2, user 3+2, model 3+0, user 3+2
        assert_eq!(prompt_tokens(&req), 18);
        let snake = json!({"system_instruction": {"parts": [{"text": "a"}]}, "contents": []});
        assert_eq!(prompt_tokens(&snake), 4);
    }

    #[test]
    fn errors_follow_the_status_table() {
        let table = [
            (400, "INVALID_ARGUMENT"),
            (401, "UNAUTHENTICATED"),
            (403, "PERMISSION_DENIED"),
            (404, "NOT_FOUND"),
            (409, "ABORTED"),
            (413, "INVALID_ARGUMENT"),
            (429, "RESOURCE_EXHAUSTED"),
            (500, "INTERNAL"),
            (502, "INTERNAL"),
            (503, "UNAVAILABLE"),
            (504, "DEADLINE_EXCEEDED"),
        ];
        for (status, name) in table {
            let (code, ct, v) = body(&fault_reply(
                status,
                "/v1beta/models/g:generateContent",
                None,
            ));
            assert_eq!((code, ct), (status, JSON));
            assert_eq!(v["error"]["code"], status);
            assert_eq!(v["error"]["status"], name, "{status}");
            assert!(!v["error"]["message"].as_str().unwrap().is_empty());
        }
        let (_, _, v) = body(&fault_reply(429, "/v1beta/models/g:generateContent", None));
        let details = v["error"]["details"].as_array().unwrap();
        assert_eq!(details[1]["retryDelay"], "1s");
        assert_eq!(details[0]["violations"][0]["quotaDimensions"]["model"], "g");
        let (_, _, v) = body(&fault_reply(404, "/v1beta/models/g:generateContent", None));
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("models/g is not found"));
        assert!(v["error"].get("details").is_none());
    }

    #[test]
    fn routing_errors() {
        let (status, _, v) = body(&call("POST", "/v1beta/models/g:nope", "{}"));
        assert_eq!(
            (status, v["error"]["status"].as_str()),
            (404, Some("NOT_FOUND"))
        );
        let (status, _, _) = body(&call("GET", "/v1beta/models/g:generateContent", ""));
        assert_eq!(status, 405);
        let (status, _, _) = body(&call("POST", "/v1beta/models", "{}"));
        assert_eq!(status, 405);
        let (status, _, v) = body(&call("POST", "/v1beta/models/g:generateContent", "{oops"));
        assert_eq!(
            (status, v["error"]["status"].as_str()),
            (400, Some("INVALID_ARGUMENT"))
        );
    }

    #[test]
    fn models_list_and_lookup() {
        let (status, ct, v) = body(&call("GET", "/v1beta/models", ""));
        assert_eq!((status, ct), (200, JSON));
        assert_eq!(
            v["models"][0],
            json!({"name": "models/gemini-2.5-flash", "displayName": "Gemini 2.5 Flash",
                "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
                "supportedGenerationMethods": GENERATE})
        );
        assert!(v.get("nextPageToken").is_none());
        let (status, _, v) = body(&call("GET", "/v1beta/models/gemini-embedding-001", ""));
        assert_eq!(
            (status, v["name"].as_str()),
            (200, Some("models/gemini-embedding-001"))
        );
        let (status, _, v) = body(&call("GET", "/v1beta/models/gemini-3-pro-preview", ""));
        assert_eq!(
            (status, v["displayName"].as_str()),
            (200, Some("Gemini 3 Pro Preview"))
        );
        let (status, _, v) = body(&call("GET", "/v1beta/models/nope", ""));
        assert_eq!(
            (status, v["error"]["status"].as_str()),
            (404, Some("NOT_FOUND"))
        );
    }
}
