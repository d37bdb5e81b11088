//! Bedrock's streamed answer (`application/vnd.amazon.eventstream`) back into Anthropic's
//! SSE events, for the Anthropic translators or, for an Anthropic client, as they are.
//!
//! The framing is AWS's binary event stream, decoded by `aws-smithy-eventstream` (the AWS
//! SDKs' decoder, CRCs checked) in [`Frames`], which Converse's stream reads too; [`event`]
//! tells an event from an exception for both. A `chunk` event's payload is `{"bytes":"<base64>"}`, the
//! base64 of one Anthropic stream event's JSON; Bedrock adds
//! `amazon-bedrock-invocationMetrics` to the last one (`message_stop`), which passes along:
//! the usage the gateway records is Anthropic's own (`message_start` and `message_delta`),
//! the same numbers. An `exception` frame (`:exception-type` such as `throttlingException`)
//! ends the stream with the error it names.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use base64::Engine;
use bytes::BytesMut;
use serde_json::Value;

use super::upstream_status;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::errors::protocol_error;
use crate::providers::ResponseTranslator;

/// AWS's event-stream framing undone: bytes in at any border, whole messages out. Both of
/// Bedrock's streams (InvokeModel's chunks, Converse's events) read their frames through it.
#[derive(Default)]
pub(crate) struct Frames {
    decoder: MessageFrameDecoder,
    pending: BytesMut,
}

impl Frames {
    /// The next upstream bytes.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
    }

    /// The next whole message, `None` until one is complete; a frame whose prelude or CRC
    /// does not check is a protocol error.
    pub(crate) fn next(&mut self) -> Result<Option<Message>, GatewayError> {
        let frame = self
            .decoder
            .decode_frame(&mut self.pending)
            .map_err(|e| protocol_error(format!("unreadable Bedrock stream frame: {e}")))?;
        Ok(match frame {
            DecodedFrame::Incomplete => None,
            DecodedFrame::Complete(message) => Some(message),
        })
    }

    /// Whether the body ended inside a frame.
    pub(crate) fn cut(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// What one message says: an event (its `:event-type` and JSON payload), or, for an
/// `exception` or `error` message, the failure it reports.
pub(crate) fn event(message: &Message) -> Result<(String, &[u8]), GatewayError> {
    let header = |name: &str| {
        message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str().to_string())
    };
    match header(":message-type").as_deref() {
        Some("event") => Ok((
            header(":event-type").unwrap_or_default(),
            message.payload().as_ref(),
        )),
        Some("exception") => {
            let kind = header(":exception-type").unwrap_or_default();
            Err(exception(&kind, message.payload()))
        }
        Some("error") => {
            let code = header(":error-code").unwrap_or_default();
            let text = header(":error-message").unwrap_or_default();
            Err(GatewayError::new(
                ErrorKind::UpstreamStatus(500),
                format!("Bedrock stream error {code}: {text}"),
            ))
        }
        _ => Err(protocol_error(
            "a Bedrock stream frame without a known :message-type",
        )),
    }
}

/// Decodes the event stream and hands each Anthropic event, as SSE, to `inner` (or to the
/// client as is when there is no inner translator).
pub struct EventStream {
    frames: Frames,
    inner: Option<Box<dyn ResponseTranslator>>,
    /// The stream ended in an exception; nothing more is read.
    failed: bool,
    /// `message_stop` arrived: a stream that ends without it was cut.
    stopped: bool,
}

impl EventStream {
    pub fn new(inner: Option<Box<dyn ResponseTranslator>>) -> Self {
        Self {
            frames: Frames::default(),
            inner,
            failed: false,
            stopped: false,
        }
    }

    /// One decoded frame: its Anthropic event to the output, or the error it reports.
    fn frame(&mut self, message: &Message, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let (kind, payload) = event(message)?;
        // other event types carry nothing a client reads
        if kind != "chunk" {
            return Ok(());
        }
        let event = chunk_event(payload)?;
        self.stopped |= event["type"] == "message_stop";
        let sse = sse_event(&event)?;
        match self.inner.as_mut() {
            Some(inner) => inner.push(&sse, out),
            None => {
                out.extend_from_slice(&sse);
                Ok(())
            }
        }
    }
}

impl ResponseTranslator for EventStream {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.failed {
            return Ok(());
        }
        self.frames.push(chunk);
        while let Some(message) = self.frames.next()? {
            if let Err(e) = self.frame(&message, out) {
                self.failed = true;
                return Err(e);
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.failed {
            return Ok(());
        }
        if self.frames.cut() {
            return Err(protocol_error("the Bedrock stream ended inside a frame"));
        }
        match self.inner.as_mut() {
            // the Anthropic translators know a cut stream themselves
            Some(inner) => inner.finish(out),
            None if self.stopped => Ok(()),
            None => Err(protocol_error(
                "the Bedrock stream ended before message_stop",
            )),
        }
    }

    fn take_reasoning(&mut self) -> Option<crate::providers::TurnReasoning> {
        self.inner.as_mut()?.take_reasoning()
    }
}

/// A `chunk` payload's Anthropic event (the JSON its `bytes` hold).
fn chunk_event(payload: &[u8]) -> Result<Value, GatewayError> {
    let chunk: Value = serde_json::from_slice(payload)
        .map_err(|e| protocol_error(format!("a Bedrock chunk that is not JSON: {e}")))?;
    let encoded = chunk["bytes"]
        .as_str()
        .ok_or_else(|| protocol_error("a Bedrock chunk without `bytes`"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| protocol_error(format!("a Bedrock chunk's bytes are not base64: {e}")))?;
    serde_json::from_slice(&decoded)
        .map_err(|e| protocol_error(format!("a Bedrock chunk's event is not JSON: {e}")))
}

/// `event: {type}\ndata: {json}\n\n`, as Anthropic's own API streams it.
fn sse_event(event: &Value) -> Result<Vec<u8>, GatewayError> {
    let kind = event["type"]
        .as_str()
        .ok_or_else(|| protocol_error("a Bedrock chunk's event has no `type`"))?;
    let data = serde_json::to_string(event)
        .map_err(|e| GatewayError::internal("writing a Bedrock event", e))?;
    Ok(format!("event: {kind}\ndata: {data}\n\n").into_bytes())
}

/// The error an `exception` frame reports: its status by type, its `message`.
fn exception(kind: &str, payload: &[u8]) -> GatewayError {
    let status = match kind {
        "throttlingException" => 429,
        "validationException" => 400,
        "serviceUnavailableException" => 503,
        "modelTimeoutException" => 504,
        _ => 500,
    };
    let message = serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("Bedrock stream {kind}"));
    upstream_status(status, message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue};
    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::providers::chat::OpenAiWriter;
    use crate::providers::translator_testing::{events, same_at_every_split};

    fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let headers = headers
            .iter()
            .map(|(n, v)| Header::new(n.to_string(), HeaderValue::String(v.to_string().into())))
            .collect();
        let message = Message::new_from_parts(headers, Bytes::copy_from_slice(payload));
        let mut out = Vec::new();
        write_message_to(&message, &mut out).unwrap();
        out
    }

    fn chunk(event: Value) -> Vec<u8> {
        let bytes = base64::engine::general_purpose::STANDARD.encode(event.to_string());
        frame(
            &[
                (":event-type", "chunk"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            json!({ "bytes": bytes }).to_string().as_bytes(),
        )
    }

    fn claude_stream() -> Vec<u8> {
        let mut all = Vec::new();
        for event in [
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                "role": "assistant", "model": "claude", "content": [],
                "usage": {"input_tokens": 7, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "Hi there"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 2}}),
            json!({"type": "message_stop", "amazon-bedrock-invocationMetrics":
                {"inputTokenCount": 7, "outputTokenCount": 2}}),
        ] {
            all.extend(chunk(event));
        }
        all
    }

    #[test]
    fn frames_become_anthropic_events_at_every_split() {
        let input = claude_stream();
        let (out, result) = same_at_every_split(|| Box::new(EventStream::new(None)), &input);
        result.unwrap();
        let events = events(&out);
        let names: Vec<_> = events.iter().map(|(e, _)| e.clone().unwrap()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 7);
        assert_eq!(events[4].1["usage"]["output_tokens"], 2);
    }

    #[test]
    fn frames_feed_the_anthropic_translators() {
        let input = claude_stream();
        let make = || -> Box<dyn ResponseTranslator> {
            let inner = crate::providers::anthropic::upstream::response::to_chat(
                true,
                "claude-sonnet-4-5",
                OpenAiWriter,
            );
            Box::new(EventStream::new(Some(inner)))
        };
        let (out, result) = same_at_every_split(make, &input);
        result.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Hi there"), "{text}");
        assert!(text.contains("data: [DONE]"), "{text}");
    }

    #[test]
    fn an_exception_frame_ends_the_stream_with_its_status() {
        let mut input = chunk(json!({"type": "message_start", "message": {"id": "m",
            "usage": {"input_tokens": 1, "output_tokens": 1}}}));
        input.extend(frame(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"Too many requests, please wait before trying again."}"#,
        ));
        let (out, result) = same_at_every_split(|| Box::new(EventStream::new(None)), &input);
        let error = result.unwrap_err();
        assert_eq!(error.status(), 429);
        assert!(
            error.message.contains("Too many requests"),
            "{}",
            error.message
        );
        assert!(String::from_utf8(out).unwrap().contains("message_start"));
    }

    #[test]
    fn a_stream_cut_inside_a_frame_is_a_protocol_error() {
        let input = claude_stream();
        let cut = &input[..input.len() - 3];
        let (_, result) = same_at_every_split(|| Box::new(EventStream::new(None)), cut);
        assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
        // whole frames, but the last event never came
        let whole_frames = {
            let mut all = Vec::new();
            for event in [
                json!({"type": "message_start", "message": {"id": "m", "usage": {}}}),
                json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
            ] {
                all.extend(chunk(event));
            }
            all
        };
        let (_, result) = same_at_every_split(|| Box::new(EventStream::new(None)), &whole_frames);
        assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
        let mut corrupt = claude_stream();
        corrupt[20] ^= 0xff;
        let (_, result) = same_at_every_split(|| Box::new(EventStream::new(None)), &corrupt);
        assert_eq!(result.unwrap_err().kind, ErrorKind::UpstreamProtocol);
    }
}
