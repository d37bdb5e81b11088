//! AWS Bedrock's runtime as the emulator speaks it: InvokeModel on Anthropic's Messages body
//! for Claude, and the Converse API for any model ([`converse`]), behind SigV4.
//!
//! | method | path (any prefix) | answer |
//! |---|---|---|
//! | POST | `/model/{modelId}/invoke` | Anthropic's message JSON |
//! | POST | `/model/{modelId}/invoke-with-response-stream` | `application/vnd.amazon.eventstream`: one `chunk` event per Anthropic event |
//! | POST | `/model/{modelId}/converse` | Converse's JSON answer |
//! | POST | `/model/{modelId}/converse-stream` | the event stream of Converse's events |
//!
//! Checked first, as AWS does: the `Authorization` header must be a SigV4 signature
//! (`AWS4-HMAC-SHA256 Credential=…`) by a known access key ([`Keys`]; by default
//! [`ACCESS_KEY_ID`] / [`SECRET_ACCESS_KEY`]), with the key's session token in
//! `x-amz-security-token` when it has one, an `x-amz-date` within 5 minutes of now, and a
//! signature that matches the one the `aws-sigv4` crate computes for the same request (the
//! signed headers, the raw path, the body) with the key's secret. Failures are AWS's 403s:
//! `Missing Authentication Token`, `The security token included in the request is
//! invalid.`, `Signature expired: …` and `The request signature we calculated does not
//! match…`.
//!
//! The body must be a JSON object with `"anthropic_version": "bedrock-2023-05-31"` and
//! without `model` or `stream` (Bedrock's 400 `ValidationException` otherwise); it is then
//! answered as Anthropic's `/v1/messages` would answer it for the model of the path (so
//! every deterministic rule of the Anthropic emulator holds). A stream's chunks carry
//! `{"bytes":"<base64 of the event JSON>"}`; the `message_stop` event gains
//! `amazon-bedrock-invocationMetrics` (`inputTokenCount`, `outputTokenCount`, …). Errors are
//! `{"message":…}` with `x-amzn-ErrorType`; a mid-stream failure is an `exception` frame
//! (`:exception-type: internalServerException`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

mod converse;

use super::anthropic::{self, PromptCache};
use super::faults::Faults;
use super::{Reply, ReplyBody, Request};

/// The access key the emulator's Bedrock routes accept by default.
pub const ACCESS_KEY_ID: &str = "AKIDEMULATORBEDROCK";
/// Its secret (tests and the offline config sign with it).
pub const SECRET_ACCESS_KEY: &str = "emulator-bedrock-secret-key";
/// The betas Bedrock's Claude takes in `anthropic_beta` (Bedrock's names: tool search is
/// `tool-search-tool-…` there); any other is "invalid beta flag".
const BETAS: &[&str] = &[
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "computer-use-2025-11-24",
    "token-efficient-tools-2025-02-19",
    "fine-grained-tool-streaming-2025-05-14",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "compact-2026-01-12",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
];

/// The content type of Bedrock's streams.
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";
/// How far `x-amz-date` may be from now.
const MAX_SKEW: Duration = Duration::from_secs(300);

/// One access key Bedrock accepts.
#[derive(Clone)]
struct Key {
    secret: String,
    session_token: Option<String>,
    /// When temporary credentials stop working (`None`: long-term keys).
    expires: Option<SystemTime>,
}

/// The access keys Bedrock accepts, by id.
pub struct Keys(Mutex<HashMap<String, Key>>);

impl Default for Keys {
    fn default() -> Self {
        let key = Key {
            secret: SECRET_ACCESS_KEY.to_string(),
            session_token: None,
            expires: None,
        };
        Self(Mutex::new(HashMap::from([(
            ACCESS_KEY_ID.to_string(),
            key,
        )])))
    }
}

impl Keys {
    /// Accepts exactly these (id, secret, session token) keys from now on.
    pub fn set(&self, keys: &[(&str, &str, Option<&str>)]) {
        let keys = keys
            .iter()
            .map(|(id, secret, token)| {
                let key = Key {
                    secret: secret.to_string(),
                    session_token: token.map(str::to_string),
                    expires: None,
                };
                (id.to_string(), key)
            })
            .collect();
        if let Ok(mut held) = self.0.lock() {
            *held = keys;
        }
    }

    /// Also accepts temporary credentials until `expires` (what STS hands out).
    pub fn add_temporary(&self, id: &str, secret: &str, token: &str, expires: SystemTime) {
        let key = Key {
            secret: secret.to_string(),
            session_token: Some(token.to_string()),
            expires: Some(expires),
        };
        if let Ok(mut held) = self.0.lock() {
            held.insert(id.to_string(), key);
        }
    }

    fn get(&self, id: &str) -> Option<Key> {
        self.0.lock().ok()?.get(id).cloned()
    }
}

/// Whether `path` is one of Bedrock's.
pub fn serves(path: &str) -> bool {
    path.contains("/model/")
        && (path.ends_with("/invoke")
            || path.ends_with("/invoke-with-response-stream")
            || path
                .rsplit_once('/')
                .is_some_and(|(_, operation)| converse::serves(operation)))
}

/// Bedrock's error answer: `{"message"}` with the type in `x-amzn-ErrorType`.
fn error_reply(status: u16, message: &str) -> Reply {
    let kind = match status {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    };
    typed_error(status, kind, message)
}

fn typed_error(status: u16, kind: &str, message: &str) -> Reply {
    let mut reply = Reply::json(status, &json!({ "message": message }));
    reply.headers.push((
        "x-amzn-ErrorType",
        format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
    ));
    reply
}

/// The error asked for with `x-emulator-status`; `raw_body` replaces the body verbatim.
pub fn fault_reply(status: u16, raw_body: Option<&str>) -> Reply {
    let message = match status {
        400 => "Malformed input request, please reformat your input and try again.",
        403 => "You don't have access to the model with the specified model ID.",
        404 => "The provided model identifier is invalid.",
        429 => "Too many requests, please wait before trying again.",
        503 => "Bedrock is unable to process your request.",
        _ => {
            "The system encountered an unexpected error during processing. Try your request again."
        }
    };
    let mut reply = error_reply(status, message);
    if let Some(raw) = raw_body {
        reply.set_raw_body(raw);
    }
    reply
}

/// What Bedrock sends on every answer.
pub fn provider_headers() -> Vec<(&'static str, String)> {
    vec![("x-amzn-RequestId", uuid::Uuid::new_v4().to_string())]
}

// ---------------------------------------------------------------- SigV4

/// AWS's refusal of a request whose signature does not verify, or None.
pub fn refusal(req: &Request, keys: &Keys) -> Option<Reply> {
    verify(req, keys, SystemTime::now()).err()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn forbidden(kind: &str, message: &str) -> Reply {
    typed_error(403, kind, message)
}

fn verify(req: &Request, keys: &Keys, now: SystemTime) -> Result<(), Reply> {
    let missing = || {
        forbidden(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        )
    };
    let auth = header(req.headers, "authorization").ok_or_else(missing)?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .ok_or_else(missing)?;
    let mut scope = rest.split(',').next().unwrap_or("").split('/');
    let (id, _day, region, service) = (
        scope.next().unwrap_or(""),
        scope.next().unwrap_or(""),
        scope.next().unwrap_or(""),
        scope.next().unwrap_or(""),
    );
    let invalid_token = || {
        forbidden(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    };
    let key = keys.get(id).ok_or_else(invalid_token)?;
    if key.session_token.as_deref() != header(req.headers, "x-amz-security-token") {
        return Err(invalid_token());
    }
    if key.expires.is_some_and(|expires| expires <= now) {
        return Err(forbidden(
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ));
    }
    let (secret, token) = (key.secret, key.session_token);
    let mismatch = || {
        forbidden(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        )
    };
    let date = header(req.headers, "x-amz-date").ok_or_else(mismatch)?;
    let signed_at = parse_amz_date(date).ok_or_else(mismatch)?;
    let skew = now
        .duration_since(signed_at)
        .unwrap_or_else(|e| e.duration());
    if skew > MAX_SKEW {
        return Err(forbidden(
            "InvalidSignatureException",
            &format!("Signature expired: {date} is now earlier than the 5 minutes allowed."),
        ));
    }
    if service != "bedrock" {
        return Err(mismatch());
    }
    let signed_names: Vec<&str> = rest
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .split(';')
        .filter(|n| !matches!(*n, "x-amz-date" | "x-amz-security-token"))
        .collect();
    let mut signed = Vec::new();
    for name in signed_names {
        signed.push((name, header(req.headers, name).ok_or_else(mismatch)?));
    }
    let host = header(req.headers, "host").unwrap_or("");
    let target = if req.query.is_empty() {
        req.path.to_string()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    let identity = Credentials::new(id, secret, token, None, "emulator").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(signed_at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| mismatch())?
        .into();
    let signable = SignableRequest::new(
        req.method,
        format!("https://{host}{target}"),
        signed.into_iter(),
        SignableBody::Bytes(req.body),
    )
    .map_err(|_| mismatch())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|_| mismatch())?
        .into_parts();
    let expected = instructions
        .headers()
        .find(|(name, _)| *name == "authorization")
        .map(|(_, value)| value.to_string());
    if expected.as_deref() == Some(auth) {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// `YYYYMMDDTHHMMSSZ` → the time it names (days-from-civil, proleptic Gregorian).
fn parse_amz_date(date: &str) -> Option<SystemTime> {
    let b = date.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| date.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

// ---------------------------------------------------------------- InvokeModel

/// Answers an InvokeModel request (signature already checked, faults handled by the caller).
pub fn route(req: &Request, faults: &Faults, cache: &PromptCache) -> Reply {
    if req.method != "POST" {
        return error_reply(404, "Unknown operation");
    }
    let Some((model, operation)) = req
        .path
        .split_once("/model/")
        .and_then(|(_, rest)| rest.rsplit_once('/'))
    else {
        return error_reply(404, "Unknown operation");
    };
    if converse::serves(operation) {
        return converse::route(req.body, operation, faults);
    }
    let stream = operation == "invoke-with-response-stream";
    let model = percent_decode(model);
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(req.body) else {
        return error_reply(
            400,
            "Malformed input request, please reformat your input and try again.",
        );
    };
    for key in ["model", "stream"] {
        if body.contains_key(key) {
            return error_reply(
                400,
                &format!(
                    "Malformed input request: #: extraneous key [{key}] is not permitted, \
                     please reformat your input and try again."
                ),
            );
        }
    }
    match body.remove("anthropic_version") {
        Some(Value::String(v)) if v == "bedrock-2023-05-31" => {}
        Some(_) => return error_reply(400, "Invalid API version"),
        None => {
            return error_reply(
                400,
                "Malformed input request: #: required key [anthropic_version] not found, \
                 please reformat your input and try again.",
            )
        }
    }
    let betas = match body.remove("anthropic_beta") {
        None => Vec::new(),
        Some(Value::Array(names)) => names,
        Some(_) => {
            return error_reply(
                400,
                "Malformed input request: #/anthropic_beta: expected type: JSONArray",
            )
        }
    };
    // Bedrock refuses the request for a beta it does not offer
    if !betas
        .iter()
        .all(|b| b.as_str().is_some_and(|name| BETAS.contains(&name)))
    {
        return error_reply(400, "invalid beta flag");
    }
    body.insert("model".into(), Value::String(model));
    body.insert("stream".into(), Value::Bool(stream));
    let anthropic_body = Value::Object(body).to_string();
    let mut headers = req.headers.clone();
    headers.insert(
        "anthropic-version",
        http::HeaderValue::from_static("2023-06-01"),
    );
    let names: Vec<&str> = betas.iter().filter_map(Value::as_str).collect();
    if let Ok(value) = http::HeaderValue::from_str(&names.join(",")) {
        if !names.is_empty() {
            headers.insert("anthropic-beta", value);
        }
    }
    let anthropic_request = Request {
        method: "POST",
        path: "/v1/messages",
        query: "",
        headers: &headers,
        body: anthropic_body.as_bytes(),
    };
    from_anthropic(anthropic::route(&anthropic_request, faults, cache))
}

/// `%XX` escapes of a path segment decoded.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = segment
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The Anthropic emulator's answer as Bedrock gives it.
fn from_anthropic(reply: Reply) -> Reply {
    match reply.body {
        ReplyBody::Full { bytes, .. } if reply.status != 200 => {
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| "Malformed input request".to_string());
            error_reply(reply.status, &message)
        }
        ReplyBody::Full { .. } => reply,
        ReplyBody::Stream { events, .. } => {
            let mut frames = Vec::with_capacity(events.len());
            let (mut input, mut output) = (0, 0);
            for event in &events {
                for data in String::from_utf8_lossy(event)
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                {
                    let Ok(mut value) = serde_json::from_str::<Value>(data) else {
                        continue;
                    };
                    if let Some(n) = value["message"]["usage"]["input_tokens"].as_u64() {
                        input = n;
                    }
                    if let Some(n) = value["usage"]["output_tokens"].as_u64() {
                        output = n;
                    }
                    if value["type"] == "message_stop" {
                        value["amazon-bedrock-invocationMetrics"] = json!({
                            "inputTokenCount": input, "outputTokenCount": output,
                            "invocationLatency": 1, "firstByteLatency": 1,
                        });
                    }
                    frames.push(chunk_frame(&value));
                }
            }
            Reply::stream_with(EVENT_STREAM, frames, stream_error_event)
        }
    }
}

/// One encoded event-stream message.
fn frame(headers: &[(&str, &str)], payload: Vec<u8>) -> Bytes {
    let headers = headers
        .iter()
        .map(|(n, v)| Header::new(n.to_string(), HeaderValue::String(v.to_string().into())))
        .collect();
    let message = Message::new_from_parts(headers, payload);
    let mut out = Vec::new();
    match write_message_to(&message, &mut out) {
        Ok(()) => Bytes::from(out),
        Err(e) => Bytes::from(format!("emulator: {e}")),
    }
}

/// A `chunk` event carrying one Anthropic event.
fn chunk_frame(event: &Value) -> Bytes {
    let bytes = base64::engine::general_purpose::STANDARD.encode(event.to_string());
    frame(
        &[
            (":event-type", "chunk"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        json!({ "bytes": bytes }).to_string().into_bytes(),
    )
}

/// The exception frame Bedrock sends when the model fails mid-stream.
pub fn stream_error_event(_: u64) -> Bytes {
    frame(
        &[
            (":exception-type", "internalServerException"),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        br#"{"message":"The system encountered an unexpected error during processing. Try your request again."}"#.to_vec(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_440_938_160
        );
        assert!(parse_amz_date("2015-08-30T12:36:00Z").is_none());
    }

    #[test]
    fn model_ids_are_decoded() {
        assert_eq!(
            percent_decode("anthropic.claude-sonnet-4-5-v1%3A0"),
            "anthropic.claude-sonnet-4-5-v1:0"
        );
    }

    fn signed_request(secret: &str, at: SystemTime, body: &[u8]) -> HeaderMap {
        let identity = Credentials::new(ACCESS_KEY_ID, secret, None, None, "t").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("bedrock")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            "POST",
            "https://h:1/model/m%3A0/invoke",
            [("host", "h:1")].into_iter(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut headers = HeaderMap::new();
        headers.insert("host", "h:1".parse().unwrap());
        for header in instructions.into_parts().0 {
            headers.insert(header.name(), header.value().parse().unwrap());
        }
        headers
    }

    fn check(headers: &HeaderMap, body: &[u8]) -> Result<(), Reply> {
        let req = Request {
            method: "POST",
            path: "/model/m%3A0/invoke",
            query: "",
            headers,
            body,
        };
        verify(&req, &Keys::default(), SystemTime::now())
    }

    fn message(reply: Reply) -> String {
        match reply.body {
            ReplyBody::Full { bytes, .. } => String::from_utf8_lossy(&bytes).into_owned(),
            ReplyBody::Stream { .. } => String::new(),
        }
    }

    #[test]
    fn signatures_are_verified() {
        let now = SystemTime::now();
        let good = signed_request(SECRET_ACCESS_KEY, now, b"{}");
        assert!(check(&good, b"{}").is_ok());
        let wrong = check(&signed_request("wrong", now, b"{}"), b"{}").unwrap_err();
        assert_eq!(wrong.status, 403);
        assert!(message(wrong).contains("signature we calculated does not match"));
        // the body is signed
        assert!(check(&good, b"{ }").is_err());
        let old = now - Duration::from_secs(600);
        let expired = check(&signed_request(SECRET_ACCESS_KEY, old, b"{}"), b"{}").unwrap_err();
        assert!(message(expired).contains("Signature expired"));
        let none = check(&HeaderMap::new(), b"{}").unwrap_err();
        assert!(message(none).contains("Missing Authentication Token"));
    }
}
