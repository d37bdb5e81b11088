//! Reading what the gateway needs from a request body without building a JSON tree.
//!
//! The body is forwarded as it came, so only `model`, `stream` and the shape of the required
//! fields are looked at. `serde_json` still checks the whole document's syntax while skipping
//! the rest, and the position of `model` is kept so a rename is one splice.

use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::endpoint::Endpoint;
use crate::error::GatewayError;

/// What the router needs from a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peeked {
    /// The catalog name the client asked for.
    pub model: String,
    /// `"stream": true`.
    pub stream: bool,
    /// `"stream_options": {"include_usage": true}` (OpenAI clients).
    pub include_usage: bool,
    /// The output cap the client set (`max_completion_tokens`, else `max_tokens`).
    pub max_tokens: Option<u64>,
    /// The stored response a Responses request continues (`previous_response_id`).
    pub previous_response_id: Option<String>,
    /// `store` as the client set it (a Responses request is stored unless it says `false`).
    pub store: Option<bool>,
    /// The client asked for reasoning (`reasoning_effort`, Responses' `reasoning`,
    /// Anthropic's `thinking`): translators may then ask the provider for more output.
    pub reasoning: bool,
    /// The `anthropic-beta` names the client sent (headers, not body: set by the proxy with
    /// [`Peeked::with_betas`]), for providers that take them in the body (Bedrock).
    pub anthropic_betas: Vec<String>,
    /// Byte range of the `model` value (quotes included) in the body.
    model_span: Range<usize>,
    /// Byte range of the `stream_options` value (`null` included) when the body has the
    /// field: the upstream body edits it in place rather than adding a second one.
    stream_options_span: Option<Range<usize>>,
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    stream: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    /// Any value, `null` included: serde reads a present `null` as an absent `Option`, and
    /// then the upstream body would get a second `stream_options` beside the client's.
    #[serde(borrow, default, deserialize_with = "present")]
    stream_options: Option<&'a RawValue>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
    #[serde(borrow)]
    reasoning_effort: Option<&'a RawValue>,
    #[serde(borrow)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow)]
    thinking: Option<&'a RawValue>,
    previous_response_id: Option<serde_json::Value>,
    store: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// A field that is present, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Checks the body of a model endpoint and returns its routing fields. Errors are 400s that
/// name the field (`param`), as OpenAI's are.
pub fn peek(endpoint: &Endpoint, body: &[u8]) -> Result<Peeked, GatewayError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| GatewayError::invalid("body", format!("request body is not UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Err(GatewayError::invalid(
            "body",
            "request body is empty; send a JSON object",
        ));
    }
    // serde's derived reader would also take an array of the fields in order (found by
    // fuzzing): a request body is an object
    if !text.trim_start().starts_with('{') {
        return Err(GatewayError::invalid(
            "body",
            "request body is not a JSON object",
        ));
    }
    let fields: Fields = serde_json::from_str(text).map_err(|e| {
        GatewayError::invalid(
            "body",
            format!("request body is not a valid JSON object: {e}"),
        )
    })?;
    let model_raw = fields
        .model
        .ok_or_else(|| GatewayError::invalid("model", "you must provide a model parameter"))?;
    let model: String = serde_json::from_str(model_raw.get())
        .map_err(|_| GatewayError::invalid("model", "`model` must be a string"))?;
    if model.is_empty() {
        return Err(GatewayError::invalid("model", "`model` must not be empty"));
    }
    let stream = match fields.stream.map(RawValue::get) {
        None | Some("null") | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(GatewayError::invalid(
                "stream",
                "`stream` must be a boolean",
            ))
        }
    };
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::CountTokens => {
            let messages = fields.messages.ok_or_else(|| {
                GatewayError::invalid("messages", "you must provide a messages parameter")
            })?;
            if !messages.get().starts_with('[') {
                return Err(GatewayError::invalid(
                    "messages",
                    "`messages` must be an array of message objects",
                ));
            }
        }
        Endpoint::Embeddings => {
            let input = fields.input.ok_or_else(|| {
                GatewayError::invalid("input", "you must provide an input parameter")
            })?;
            if !(input.get().starts_with('"') || input.get().starts_with('[')) {
                return Err(GatewayError::invalid(
                    "input",
                    "`input` must be a string or an array",
                ));
            }
            if stream {
                return Err(GatewayError::invalid("stream", "embeddings cannot stream"));
            }
        }
        Endpoint::Responses => {
            let input = fields.input.ok_or_else(|| {
                GatewayError::invalid("input", "you must provide an input parameter")
            })?;
            if !(input.get().starts_with('"') || input.get().starts_with('[')) {
                return Err(GatewayError::invalid(
                    "input",
                    "`input` must be a string or an array of input items",
                ));
            }
        }
        Endpoint::Models
        | Endpoint::Model(_)
        | Endpoint::Usage
        | Endpoint::Root
        | Endpoint::StoredResponse(_) => {}
    }
    let span = |raw: &RawValue| {
        let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        start..start + raw.get().len()
    };
    let include_usage = match fields.stream_options.map(RawValue::get) {
        None | Some("null") => false,
        Some(raw) => serde_json::from_str::<StreamOptions>(raw)
            .map_err(|_| {
                GatewayError::invalid(
                    "stream_options",
                    "`stream_options` must be an object such as {\"include_usage\": true}",
                )
            })?
            .include_usage
            .unwrap_or(false),
    };
    let previous_response_id = match fields.previous_response_id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(id)) if id.len() <= crate::text::MAX_CLIENT_NAME => Some(id),
        Some(_) => {
            return Err(GatewayError::invalid(
                "previous_response_id",
                format!(
                    "`previous_response_id` must be a response id (a string of at most {} bytes)",
                    crate::text::MAX_CLIENT_NAME
                ),
            ))
        }
    };
    let store = match fields.store {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(b),
        Some(_) => return Err(GatewayError::invalid("store", "`store` must be a boolean")),
    };
    Ok(Peeked {
        previous_response_id,
        store,
        model,
        stream,
        include_usage,
        max_tokens: fields
            .max_completion_tokens
            .or(fields.max_tokens)
            .or(fields.max_output_tokens),
        reasoning: [fields.reasoning_effort, fields.reasoning, fields.thinking]
            .iter()
            .any(|f| f.is_some_and(|v| v.get() != "null")),
        anthropic_betas: Vec::new(),
        model_span: span(model_raw),
        stream_options_span: fields.stream_options.map(span),
    })
}

/// The most `anthropic-beta` names a request's peek keeps (Anthropic has a few dozen).
const MAX_BETAS: usize = 32;
/// The longest `anthropic-beta` name kept (real ones are under 40 bytes).
const MAX_BETA_NAME: usize = 64;

impl Peeked {
    /// This peek with the `anthropic-beta` names of `headers` (each header a comma-separated
    /// list), bounded: at most 32 names, none longer than 64 bytes kept.
    pub fn with_betas<'a>(mut self, headers: impl Iterator<Item = &'a [u8]>) -> Self {
        self.anthropic_betas = headers
            .flat_map(|value| value.split(|b| *b == b','))
            .filter_map(|name| std::str::from_utf8(name).ok())
            .map(str::trim)
            .filter(|name| !name.is_empty() && name.len() <= MAX_BETA_NAME)
            .take(MAX_BETAS)
            .map(str::to_string)
            .collect();
        self
    }

    /// The body with `model` replaced by `name`; every other byte is kept. Returns the body
    /// itself (no copy) when the name is unchanged.
    pub fn with_model(&self, body: &Bytes, name: &str) -> Bytes {
        if name == self.model {
            return body.clone();
        }
        let quoted = serde_json::Value::from(name).to_string();
        let mut out = Vec::with_capacity(body.len() + quoted.len());
        out.extend_from_slice(&body[..self.model_span.start]);
        out.extend_from_slice(quoted.as_bytes());
        out.extend_from_slice(&body[self.model_span.end..]);
        Bytes::from(out)
    }
}

impl Peeked {
    /// The body for an OpenAI-format provider, with `upstream_model` and, for a stream whose
    /// client did not ask for usage, `stream_options.include_usage` turned on so the gateway
    /// can meter it (the extra chunk is removed before the client sees it). Without a
    /// `stream_options` field it is inserted after the opening brace; with one (`null`
    /// included) its value is replaced in place, keeping its other options, so the body
    /// always has exactly one. Every other byte is kept.
    pub fn for_openai_upstream(&self, body: &Bytes, upstream_model: &str) -> Bytes {
        if !self.stream || self.include_usage {
            return self.with_model(body, upstream_model);
        }
        let Some(options) = self.stream_options_span.clone() else {
            let renamed = self.with_model(body, upstream_model);
            let Some(open) = renamed.iter().position(|b| *b == b'{') else {
                return renamed;
            };
            let field = br#""stream_options":{"include_usage":true},"#;
            let mut out = Vec::with_capacity(renamed.len() + field.len());
            out.extend_from_slice(&renamed[..=open]);
            out.extend_from_slice(field);
            out.extend_from_slice(&renamed[open + 1..]);
            return Bytes::from(out);
        };
        let usage_on = with_usage_on(&body[options.clone()]);
        let model = serde_json::Value::from(upstream_model).to_string();
        let mut edits = [
            (self.model_span.clone(), model.into_bytes()),
            (options, usage_on),
        ];
        edits.sort_by_key(|(range, _)| range.start);
        let mut out = Vec::with_capacity(body.len() + 32);
        let mut at = 0;
        for (range, value) in edits {
            out.extend_from_slice(&body[at..range.start]);
            out.extend_from_slice(&value);
            at = range.end;
        }
        out.extend_from_slice(&body[at..]);
        Bytes::from(out)
    }
}

/// A `stream_options` value (an object, or `null`) with `include_usage` set to true and
/// its other options kept.
fn with_usage_on(raw: &[u8]) -> Vec<u8> {
    let mut options = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(raw)
        .unwrap_or_default();
    options.insert("include_usage".into(), serde_json::Value::Bool(true));
    serde_json::to_vec(&options).unwrap_or_else(|_| br#"{"include_usage":true}"#.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<Peeked, GatewayError> {
        peek(&Endpoint::ChatCompletions, body.as_bytes())
    }

    #[test]
    fn betas_from_every_header_bounded() {
        let p = peek(&Endpoint::Messages, br#"{"model":"m","messages":[]}"#).unwrap();
        let long = "x".repeat(65);
        let headers: [&[u8]; 3] = [
            b"claude-code-20250219, context-1m-2025-08-07",
            b",interleaved-thinking-2025-05-14,",
            long.as_bytes(),
        ];
        let p = p.with_betas(headers.into_iter());
        assert_eq!(
            p.anthropic_betas,
            [
                "claude-code-20250219",
                "context-1m-2025-08-07",
                "interleaved-thinking-2025-05-14"
            ]
        );
        let many = "b,".repeat(100);
        let p = p.with_betas(std::iter::once(many.as_bytes()));
        assert_eq!(p.anthropic_betas.len(), 32);
    }

    #[test]
    fn an_array_of_the_fields_is_not_a_request() {
        // fuzz crash: serde's derived reader took this as {model, stream, messages, …}
        let e = chat(r#"["m",true,[],null,null,null,null,null]"#).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.message, "request body is not a JSON object");
    }

    #[test]
    fn reads_model_and_stream() {
        let p = chat(r#"{"model":"gpt-4o","stream":true,"messages":[]}"#).unwrap();
        assert_eq!(p.model, "gpt-4o");
        assert!(p.stream);
        assert!(
            !chat(r#"{"model":"m","messages":[],"stream":null}"#)
                .unwrap()
                .stream
        );
    }

    #[test]
    fn each_bad_input_names_its_param() {
        let cases = [
            ("", "body"),
            ("{\"model\":", "body"),
            ("[1,2]", "body"),
            (r#"{"messages":[]}"#, "model"),
            (r#"{"model":7,"messages":[]}"#, "model"),
            (r#"{"model":"m"}"#, "messages"),
            (r#"{"model":"m","messages":"hi"}"#, "messages"),
            (r#"{"model":"m","messages":[],"stream":"yes"}"#, "stream"),
            (r#"{"model":"m","model":"n","messages":[]}"#, "body"),
        ];
        for (body, param) in cases {
            let e = chat(body).unwrap_err();
            assert_eq!(e.status(), 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
    }

    #[test]
    fn embeddings_take_string_or_array() {
        for body in [
            r#"{"model":"e","input":"x"}"#,
            r#"{"model":"e","input":["a","b"]}"#,
        ] {
            assert!(peek(&Endpoint::Embeddings, body.as_bytes()).is_ok());
        }
        let e = peek(&Endpoint::Embeddings, br#"{"model":"e","input":3}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input"));
    }

    #[test]
    fn rename_splices_only_the_model_value() {
        let body = Bytes::from_static(
            br#"{ "messages": [{"role":"user","content":"model"}], "model" : "gpt-4o", "x":1}"#,
        );
        let p = peek(&Endpoint::ChatCompletions, &body).unwrap();
        let renamed = p.with_model(&body, "gpt-4o-2024-08-06");
        assert_eq!(
            &renamed[..],
            br#"{ "messages": [{"role":"user","content":"model"}], "model" : "gpt-4o-2024-08-06", "x":1}"#
        );
        assert_eq!(p.with_model(&body, "gpt-4o").as_ptr(), body.as_ptr());
    }

    #[test]
    fn usage_is_requested_for_streams_that_did_not_ask() {
        let body = Bytes::from_static(br#"{"model":"a","stream":true,"messages":[]}"#);
        let p = peek(&Endpoint::ChatCompletions, &body).unwrap();
        assert_eq!(
            &p.for_openai_upstream(&body, "b")[..],
            br#"{"stream_options":{"include_usage":true},"model":"b","stream":true,"messages":[]}"#
        );
        let body = Bytes::from_static(
            br#"{"model":"a","stream":true,"stream_options":{"include_usage":false},"messages":[]}"#,
        );
        let p = peek(&Endpoint::ChatCompletions, &body).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&p.for_openai_upstream(&body, "a")).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        for untouched in [
            r#"{"model":"a","stream":false,"messages":[]}"#,
            r#"{"model":"a","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#,
        ] {
            let body = Bytes::from(untouched);
            let p = peek(&Endpoint::ChatCompletions, &body).unwrap();
            assert_eq!(p.for_openai_upstream(&body, "a"), body);
        }
    }

    #[test]
    fn null_stream_options_becomes_the_one_usage_request() {
        let body = Bytes::from_static(
            br#"{"model":"a","stream":true,"stream_options":null,"messages":[]}"#,
        );
        let p = peek(&Endpoint::ChatCompletions, &body).unwrap();
        assert!(!p.include_usage, "null asks for nothing");
        assert_eq!(
            &p.for_openai_upstream(&body, "b")[..],
            br#"{"model":"b","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#
        );
    }

    #[test]
    fn stream_options_are_edited_in_place_and_keep_their_other_fields() {
        let body = Bytes::from_static(
            br#"{"messages":[], "stream_options" : {"include_obfuscation":false,"include_usage":false}, "model":"a","stream":true}"#,
        );
        let p = peek(&Endpoint::ChatCompletions, &body).unwrap();
        assert_eq!(
            &p.for_openai_upstream(&body, "gpt-4o-2024-08-06")[..],
            br#"{"messages":[], "stream_options" : {"include_obfuscation":false,"include_usage":true}, "model":"gpt-4o-2024-08-06","stream":true}"#
        );
        let body =
            Bytes::from_static(br#"{"model":"a","stream_options":{},"stream":true,"messages":[]}"#);
        let p = peek(&Endpoint::ChatCompletions, &body).unwrap();
        assert_eq!(
            &p.for_openai_upstream(&body, "a")[..],
            br#"{"model":"a","stream_options":{"include_usage":true},"stream":true,"messages":[]}"#
        );
    }

    #[test]
    fn escaped_model_names_are_decoded_and_rewritten_safely() {
        let body = Bytes::from_static(br#"{"model":"gpt\u002d4o","messages":[]}"#);
        let p = peek(&Endpoint::ChatCompletions, &body).unwrap();
        assert_eq!(p.model, "gpt-4o");
        let renamed = p.with_model(&body, "a\"b");
        let v: serde_json::Value = serde_json::from_slice(&renamed).unwrap();
        assert_eq!(v["model"], "a\"b");
    }
}
