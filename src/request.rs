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
    /// Byte range of the `model` value (quotes included) in the body.
    model_span: Range<usize>,
    /// The body has a `stream_options` field.
    has_stream_options: bool,
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
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
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
        Endpoint::Models | Endpoint::Model(_) | Endpoint::Usage | Endpoint::Root => {}
    }
    let start = model_raw.get().as_ptr() as usize - text.as_ptr() as usize;
    let has_stream_options = fields.stream_options.is_some();
    let max_tokens = fields.max_completion_tokens.or(fields.max_tokens);
    Ok(Peeked {
        model,
        stream,
        has_stream_options,
        max_tokens,
        include_usage: fields
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        model_span: start..start + model_raw.get().len(),
    })
}

impl Peeked {
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
    /// can meter it (the extra chunk is removed before the client sees it). Without an
    /// existing `stream_options` the field is inserted after the opening brace and every
    /// other byte is kept; otherwise the body is re-serialised.
    pub fn for_openai_upstream(&self, body: &Bytes, upstream_model: &str) -> Bytes {
        let renamed = self.with_model(body, upstream_model);
        if !self.stream || self.include_usage {
            return renamed;
        }
        if !self.has_stream_options {
            let Some(open) = renamed.iter().position(|b| *b == b'{') else {
                return renamed;
            };
            let field = br#""stream_options":{"include_usage":true},"#;
            let mut out = Vec::with_capacity(renamed.len() + field.len());
            out.extend_from_slice(&renamed[..=open]);
            out.extend_from_slice(field);
            out.extend_from_slice(&renamed[open + 1..]);
            return Bytes::from(out);
        }
        match serde_json::from_slice::<serde_json::Value>(&renamed) {
            Ok(mut v) => {
                v["stream_options"] = serde_json::json!({"include_usage": true});
                Bytes::from(v.to_string())
            }
            Err(_) => renamed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<Peeked, GatewayError> {
        peek(&Endpoint::ChatCompletions, body.as_bytes())
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
    fn escaped_model_names_are_decoded_and_rewritten_safely() {
        let body = Bytes::from_static(br#"{"model":"gpt\u002d4o","messages":[]}"#);
        let p = peek(&Endpoint::ChatCompletions, &body).unwrap();
        assert_eq!(p.model, "gpt-4o");
        let renamed = p.with_model(&body, "a\"b");
        let v: serde_json::Value = serde_json::from_slice(&renamed).unwrap();
        assert_eq!(v["model"], "a\"b");
    }
}
