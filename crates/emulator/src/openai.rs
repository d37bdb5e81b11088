//! OpenAI wire format as the emulator speaks it: errors and models here, chat in
//! [`chat`], the Responses API in [`responses`], embeddings in [`embeddings`].
//!
//! Every function is pure (request JSON in, [`Reply`] out) so the exact bytes the
//! gateway's tests depend on are unit-tested without a socket. Bodies are serialized from
//! private wire structs, so keys come out in the real API's order (serde_json's `Value`
//! would sort them). The deterministic content and usage rules are in [`chat`] and
//! [`embeddings`].

mod chat;
mod embeddings;
mod responses;
mod stored;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::faults::Faults;
use super::{Reply, Request};

pub use chat::{chat_reply, chunk_text, content_text, example_arguments, split_even};
pub use embeddings::{embedding_vector, embeddings_reply};
pub use responses::responses_reply;
pub use stored::StoredResponses;

/// `(id, created)` of the models listed by `GET …/models`.
pub const MODELS: &[(&str, u64)] = &[
    ("gpt-4o", 1_715_367_049),
    ("gpt-4o-mini", 1_721_172_741),
    ("o3-mini", 1_737_146_383),
    ("text-embedding-3-small", 1_705_948_997),
];

// ---------------------------------------------------------------- wire types

/// `{"error":{...}}`, the body of every OpenAI error.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// `{"object":"list","data":[...]}` (models; embeddings add fields of their own).
#[derive(Serialize)]
struct List<T> {
    object: &'static str,
    data: Vec<T>,
}

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

/// Formats one SSE event: `data: <json>\n\n`.
fn sse<T: Serialize>(body: &T) -> Bytes {
    let mut out = b"data: ".to_vec();
    // Serializing these plain structs cannot fail; an empty object keeps the event valid.
    if serde_json::to_writer(&mut out, body).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

// ---------------------------------------------------------------- routing

/// Answers a request on an OpenAI path (by its suffix, so any base-URL prefix works).
pub fn route(req: &Request, faults: &Faults, stored: &StoredResponses) -> Reply {
    let (method, path) = (req.method, req.path);
    let json = || serde_json::from_slice::<Value>(req.body);
    let post = |answer: fn(&Value, &Faults) -> Reply| match method {
        "POST" => match json() {
            Ok(v) => answer(&v, faults),
            Err(_) => invalid_json_reply(),
        },
        _ => invalid_method_reply(method, path),
    };
    let get = |answer: &dyn Fn() -> Reply| match method {
        "GET" => answer(),
        _ => invalid_method_reply(method, path),
    };
    if path.ends_with("/chat/completions") {
        post(|v, f| chat_reply(v, f.chunks))
    } else if path.ends_with("/responses") {
        match (method, json()) {
            ("POST", Ok(v)) => responses_reply(&v, faults.chunks, stored),
            ("POST", Err(_)) => invalid_json_reply(),
            _ => invalid_method_reply(method, path),
        }
    } else if let Some((_, rest)) = path
        .split_once("/responses/")
        .filter(|(_, rest)| !rest.is_empty())
    {
        stored.route(method, rest)
    } else if path.ends_with("/embeddings") {
        post(|v, _| embeddings_reply(v))
    } else if path.ends_with("/models") {
        get(&models_reply)
    } else if let Some((_, id)) = path.split_once("/models/").filter(|(_, id)| !id.is_empty()) {
        get(&|| model_reply(id))
    } else {
        invalid_url_reply(method, path)
    }
}

// ---------------------------------------------------------------- errors

/// An OpenAI error answer: `{"error":{"message","type","param","code"}}`.
pub fn error_reply(
    status: u16,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Reply {
    let error = ErrorDetail {
        message,
        kind,
        param,
        code,
    };
    let mut reply = Reply::json(status, &ErrorBody { error });
    if status == 429 || status == 503 {
        reply.headers.push(("retry-after", "1".to_string()));
        reply.headers.push(("retry-after-ms", "1000".to_string()));
    }
    reply
}

/// The error asked for with `x-emulator-status`, shaped like the real API's for that
/// status; `raw_body` (`x-emulator-error-body`) replaces the body verbatim.
pub fn fault_reply(status: u16, model: Option<&str>, raw_body: Option<&str>) -> Reply {
    let model = model.unwrap_or("gpt-4o");
    let not_found = format!("The model `{model}` does not exist or you do not have access to it.");
    let rate = format!(
        "Rate limit reached for {model} in organization org-emulator on requests per min \
         (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s."
    );
    let (message, kind, code) = match status {
        400 => ("Emulated bad request.", "invalid_request_error", None),
        401 => (
            "Incorrect API key provided: sk-emul***. You can find your API key at \
             https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => (
            "Country, region, or territory not supported",
            "request_forbidden",
            Some("unsupported_country_region_territory"),
        ),
        404 => (
            not_found.as_str(),
            "invalid_request_error",
            Some("model_not_found"),
        ),
        429 => (rate.as_str(), "requests", Some("rate_limit_exceeded")),
        503 => (
            "The engine is currently overloaded, please try again later.",
            "service_unavailable_error",
            Some("server_is_overloaded"),
        ),
        s if s >= 500 => (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        _ => ("Emulated client error.", "invalid_request_error", None),
    };
    let mut reply = error_reply(status, message, kind, None, code);
    if status == 429 {
        reply
            .headers
            .push(("x-ratelimit-limit-requests", "3".to_string()));
        reply
            .headers
            .push(("x-ratelimit-remaining-requests", "0".to_string()));
        reply
            .headers
            .push(("x-ratelimit-reset-requests", "1s".to_string()));
    }
    if let Some(raw) = raw_body {
        reply.set_raw_body(raw);
    }
    reply
}

/// What api.openai.com sends on every answer, including what it says about the caller's
/// account (a gateway must not pass that on to its own clients).
pub fn provider_headers(elapsed_ms: u128) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (
            "x-request-id",
            format!("req_{}", uuid::Uuid::new_v4().simple()),
        ),
        ("openai-version", "2020-10-01".to_string()),
    ];
    for (name, value) in [
        ("openai-organization", "org-emulator"),
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-remaining-requests", "9999"),
        ("x-ratelimit-reset-requests", "6ms"),
        ("set-cookie", "__cf_bm=emulator; path=/; HttpOnly"),
    ] {
        headers.push((name, value.to_string()));
    }
    headers.push(("openai-processing-ms", elapsed_ms.to_string()));
    headers
}

/// 400 for a body that is not JSON (the real API's wording).
pub fn invalid_json_reply() -> Reply {
    error_reply(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't \
         using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was \
         sent was not valid JSON.)",
        "invalid_request_error",
        None,
        None,
    )
}

/// 404 for a path the emulator does not serve.
pub fn invalid_url_reply(method: &str, path: &str) -> Reply {
    let msg = format!("Invalid URL ({method} {path})");
    error_reply(404, &msg, "invalid_request_error", None, None)
}

/// 405 for a known path with the wrong method.
pub fn invalid_method_reply(method: &str, path: &str) -> Reply {
    let msg = format!("Invalid method for URL ({method} {path})");
    error_reply(405, &msg, "invalid_request_error", None, None)
}

/// 400 for a bad parameter.
fn param_error(param: &str, message: &str, code: Option<&str>) -> Reply {
    error_reply(400, message, "invalid_request_error", Some(param), code)
}

/// The event a provider sends when it fails after the 200 header (no `[DONE]` follows).
pub fn stream_error_event() -> Bytes {
    sse(&ErrorBody {
        error: ErrorDetail {
            message: "The server had an error while processing your request. Sorry about that!",
            kind: "server_error",
            param: None,
            code: None,
        },
    })
}

// ---------------------------------------------------------------- models

fn model(id: &str, created: u64) -> Model<'_> {
    Model {
        id,
        object: "model",
        created,
        owned_by: "system",
    }
}

/// `GET …/models`: the fixed [`MODELS`] list.
pub fn models_reply() -> Reply {
    let data = MODELS.iter().map(|(id, c)| model(id, *c)).collect();
    Reply::json(
        200,
        &List {
            object: "list",
            data,
        },
    )
}

/// `GET …/models/{id}`: one of [`MODELS`], else 404 `model_not_found`.
pub fn model_reply(id: &str) -> Reply {
    match MODELS.iter().find(|(m, _)| *m == id) {
        Some((m, c)) => Reply::json(200, &model(m, *c)),
        None => fault_reply(404, Some(id), None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ReplyBody;
    use serde_json::Value;

    fn body(reply: &Reply) -> (String, Value) {
        match &reply.body {
            ReplyBody::Full {
                content_type,
                bytes,
            } => (
                content_type.to_string(),
                serde_json::from_slice(bytes).unwrap_or(Value::Null),
            ),
            ReplyBody::Stream { .. } => panic!("expected a full body"),
        }
    }

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply
            .headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn fault_errors_follow_the_status_table() {
        let table = [
            (400, "invalid_request_error", Value::Null),
            (401, "invalid_request_error", "invalid_api_key".into()),
            (
                403,
                "request_forbidden",
                "unsupported_country_region_territory".into(),
            ),
            (404, "invalid_request_error", "model_not_found".into()),
            (429, "requests", "rate_limit_exceeded".into()),
            (500, "server_error", Value::Null),
            (502, "server_error", Value::Null),
            (
                503,
                "service_unavailable_error",
                "server_is_overloaded".into(),
            ),
            (422, "invalid_request_error", Value::Null),
        ];
        for (status, kind, code) in table {
            let reply = fault_reply(status, Some("gpt-x"), None);
            assert_eq!(reply.status, status);
            let (ct, v) = body(&reply);
            assert_eq!(ct, "application/json");
            let e = &v["error"];
            assert_eq!(e["type"], kind, "{status}");
            assert_eq!(e["code"], code, "{status}");
            assert!(e["param"].is_null() && e.get("param").is_some());
            assert!(!e["message"].as_str().unwrap().is_empty());
            let retry = matches!(status, 429 | 503);
            assert_eq!(header(&reply, "retry-after"), retry.then_some("1"));
            assert_eq!(header(&reply, "retry-after-ms"), retry.then_some("1000"));
        }
        let (_, v) = body(&fault_reply(404, Some("gpt-x"), None));
        assert!(v["error"]["message"].as_str().unwrap().contains("gpt-x"));
    }

    #[test]
    fn raw_error_body_replaces_the_json() {
        let reply = fault_reply(502, None, Some("<html>bad gateway</html>"));
        let ReplyBody::Full {
            content_type,
            bytes,
        } = &reply.body
        else {
            panic!()
        };
        assert_eq!(*content_type, "text/plain; charset=utf-8");
        assert_eq!(&bytes[..], b"<html>bad gateway</html>");
        let reply = fault_reply(500, None, Some("{\"detail\":\"x\"}"));
        assert_eq!(
            body(&reply),
            (
                "application/json".to_string(),
                serde_json::json!({"detail": "x"})
            )
        );
    }

    #[test]
    fn models_list_and_lookup() {
        let (_, v) = body(&models_reply());
        assert_eq!(v["object"], "list");
        assert_eq!(
            v["data"][0],
            serde_json::json!({"id": "gpt-4o", "object": "model",
            "created": 1_715_367_049, "owned_by": "system"})
        );
        assert_eq!(v["data"].as_array().unwrap().len(), MODELS.len());
        assert_eq!(model_reply("gpt-4o-mini").status, 200);
        let missing = model_reply("nope");
        assert_eq!(missing.status, 404);
        assert_eq!(body(&missing).1["error"]["code"], "model_not_found");
    }

    #[test]
    fn stream_error_event_is_one_sse_event() {
        let ev = stream_error_event();
        let text = std::str::from_utf8(&ev).unwrap();
        let payload = text
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        let v: Value = serde_json::from_str(payload).unwrap();
        assert_eq!(v["error"]["type"], "server_error");
    }
}
