//! Where a typed chat answer goes: a [`ChatSink`] turns it into the client's bytes.
//!
//! The upstream side of a translation (Anthropic → chat, Gemini → chat) hands its answer to a
//! sink as typed values; the sink is the client side: [`OpenAiWriter`] for an OpenAI client,
//! or the Anthropic and Responses translators. So a two-format answer (Gemini → Anthropic
//! client) is parsed once and written once, with no OpenAI bytes in between. An OpenAI-format
//! provider's answer is real chat bytes: [`read`] parses them into the same values.

use crate::error::GatewayError;
use crate::providers::errors::{openai_error, protocol_error};
use crate::providers::events::{Buffered, EventTranslator, Events, WholeTranslator};
use crate::providers::ResponseTranslator;
use crate::sse::SseEvent;

use super::response::{ChatChunk, ChatCompletion};

/// The client side of an answer, fed typed chat values.
///
/// A whole answer is one [`whole`](Self::whole) call. A stream is
/// [`chunk`](Self::chunk) calls (a chunk with `error` ends it), [`done`](Self::done) for its
/// `[DONE]`, and [`end`](Self::end) once the upstream body is over, `[DONE]` or not: a sink
/// completes an answer whose finish reason came, and fails one cut before it.
pub trait ChatSink: Send + Sync {
    /// A whole answer; appends the client's body to `out`.
    fn whole(&mut self, answer: ChatCompletion, out: &mut Vec<u8>) -> Result<(), GatewayError>;
    /// The next chunk of a stream; appends whatever client events it completes.
    fn chunk(&mut self, chunk: ChatChunk<'_>, out: &mut Vec<u8>) -> Result<(), GatewayError>;
    /// The stream's `[DONE]`: the answer is complete.
    fn done(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError>;
    /// The upstream body ended.
    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError>;
}

/// The sink of an OpenAI chat client: each value serialized straight into `out` (a JSON body;
/// `data: {…}\n\n` chunks, `data: [DONE]\n\n`).
#[derive(Debug, Default)]
pub struct OpenAiWriter;

/// The whole body of an error chunk: `{"error": {…}}`.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a serde_json::Value,
}

impl ChatSink for OpenAiWriter {
    fn whole(&mut self, answer: ChatCompletion, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        serde_json::to_writer(&mut *out, &answer)
            .map_err(|e| GatewayError::internal("encoding JSON", e))
    }

    fn chunk(&mut self, chunk: ChatChunk<'_>, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        out.extend_from_slice(b"data: ");
        let written = match &chunk.error {
            Some(error) => serde_json::to_writer(&mut *out, &ErrorBody { error }),
            None => serde_json::to_writer(&mut *out, &chunk),
        };
        written.map_err(|e| GatewayError::internal("encoding JSON", e))?;
        out.extend_from_slice(b"\n\n");
        Ok(())
    }

    fn done(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        out.extend_from_slice(b"data: [DONE]\n\n");
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<u8>) -> Result<(), GatewayError> {
        Ok(())
    }
}

/// The translator for an OpenAI-format provider's answer (JSON when `!stream`, SSE ending in
/// `[DONE]` when `stream`): its bytes parsed into chat values for `sink`. An `error` object
/// in a whole answer is the request's failure; in a stream it is handed on and ends it.
pub fn read<S: ChatSink + 'static>(stream: bool, sink: S) -> Box<dyn ResponseTranslator> {
    if stream {
        Box::new(Events::new(ReadChunks {
            sink,
            closed: false,
        }))
    } else {
        Box::new(Buffered::new(ReadCompletion { sink }))
    }
}

/// Hands a whole answer over.
struct ReadCompletion<S> {
    sink: S,
}

impl<S: ChatSink> WholeTranslator for ReadCompletion<S> {
    fn whole(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let completion: ChatCompletion = serde_json::from_slice(body)
            .map_err(|e| protocol_error(format!("unreadable OpenAI-format answer: {e}")))?;
        if let Some(error) = &completion.error {
            return Err(openai_error(error));
        }
        self.sink.whole(completion, out)
    }
}

/// Hands each chunk over as it is framed.
struct ReadChunks<S> {
    sink: S,
    /// `[DONE]` or an error chunk was handed over: the rest of the body is ignored.
    closed: bool,
}

impl<S: ChatSink> EventTranslator for ReadChunks<S> {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.closed {
            return Ok(());
        }
        if event.data.trim() == "[DONE]" {
            self.closed = true;
            return self.sink.done(out);
        }
        let chunk: ChatChunk = serde_json::from_str(&event.data)
            .map_err(|e| protocol_error(format!("unreadable OpenAI-format stream chunk: {e}")))?;
        self.closed = chunk.error.is_some();
        self.sink.chunk(chunk, out)
    }

    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.sink.end(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "sink_tests.rs"]
mod tests;
