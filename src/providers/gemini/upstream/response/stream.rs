//! Gemini SSE (`streamGenerateContent?alt=sse`) → chat chunks for a [`ChatSink`]
//! (docs/translation.md C3), which for an OpenAI client writes the `chat.completion.chunk`
//! stream described here.
//!
//! Each Gemini event is a whole `GenerateContentResponse` with only the new parts. Per choice:
//! the first sight of a candidate sends `delta: {"role":"assistant","content":""}`; thought
//! parts → `delta.reasoning_content`; text parts → `delta.content`, consecutive ones in one event joined; a `functionCall`
//! part arrives complete and is sent as one `tool_calls` delta with its id, name and whole
//! `arguments`; `finishReason` → `delta: {}` + the mapped `finish_reason`. `usageMetadata` is
//! kept (the last one wins) and sent as the `choices: []` chunk iff `include_usage`, which also
//! puts `"usage": null` on every other chunk, as OpenAI does. The end of the HTTP body sends
//! `data: [DONE]` (Gemini sends no sentinel).
//!
//! A Gemini event that is an error object becomes one OpenAI `data: {"error":{…}}` event and
//! ends the translation: nothing else, not even `[DONE]`, follows (the client's SDK raises on
//! the error). A body that ends without any `finishReason` sends what it had, the usage chunk
//! if asked for and known, and `[DONE]`, but no invented `finish_reason`: a missing one is how
//! the client can tell the answer was cut.

use super::{finish_reason, logprobs, tool_call, GenerateContentResponse, UsageMetadata};
use crate::error::GatewayError;
use crate::providers::chat::{
    ChatChunk, ChatChunkChoice, ChatDelta, ChatLogprobs, ChatSink, ChatUsage, OpenAiWriter,
};
use crate::providers::events::{EventTranslator, Events};
use crate::providers::gemini::upstream::{embedded_error, protocol_error, Stamp};
use crate::sse::SseEvent;

/// Gemini SSE in, chat chunks out.
pub(super) struct StreamTranslator<S = OpenAiWriter> {
    sink: S,
    stamp: Stamp,
    client_model: String,
    include_usage: bool,
    /// `chatcmpl-<responseId>`, set by the first event.
    id: Option<String>,
    /// The choices seen so far, by candidate index.
    choices: Vec<ChoiceState>,
    /// Tool calls sent so far, over all choices: numbers the synthesized ids.
    calls: usize,
    usage: Option<UsageMetadata>,
    /// An error event was sent: the rest of the body is ignored.
    failed: bool,
}

struct ChoiceState {
    index: u32,
    /// Tool calls of this choice: their delta `index`, and `tool_calls` as finish reason.
    tool_calls: usize,
}

impl StreamTranslator {
    /// For an OpenAI client, with a fixed time (and ids) to compare output with.
    #[cfg(test)]
    pub fn new(client_model: &str, include_usage: bool, stamp: Stamp) -> Events<Self> {
        Self::with_sink(client_model, include_usage, stamp, OpenAiWriter)
    }
}

impl<S: ChatSink> StreamTranslator<S> {
    pub fn with_sink(
        client_model: &str,
        include_usage: bool,
        stamp: Stamp,
        sink: S,
    ) -> Events<Self> {
        Events::new(Self {
            sink,
            stamp,
            client_model: client_model.to_string(),
            include_usage,
            id: None,
            choices: Vec::new(),
            calls: 0,
            usage: None,
            failed: false,
        })
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let data = data.trim();
        if self.failed || data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let response: GenerateContentResponse =
            serde_json::from_str(data).map_err(|e| protocol_error("a stream event", e))?;
        if let Some(error) = &response.error {
            let error = embedded_error(error, data.as_bytes());
            self.failed = true;
            return self
                .sink
                .chunk(ChatChunk::error(error.openai_object()), out);
        }
        if self.id.is_none() {
            self.id = Some(self.stamp.completion_id(response.response_id.as_deref()));
        }
        if let Some(usage) = response.usage_metadata {
            self.usage = Some(usage);
        }
        if response.candidates.is_empty() {
            if response
                .prompt_feedback
                .and_then(|f| f.block_reason)
                .is_some()
            {
                self.choice(0, out)?;
                self.write(out, ChatChunkChoice::finish(0, "content_filter"))?;
            }
            return Ok(());
        }
        for (pos, candidate) in response.candidates.into_iter().enumerate() {
            let index = candidate.index.unwrap_or(pos as u32);
            let slot = self.choice(index, out)?;
            let mut logprobs = candidate.logprobs_result.map(logprobs);
            let mut text = String::new();
            let parts = candidate.content.map(|c| c.parts).unwrap_or_default();
            for part in parts {
                if part.thought {
                    self.flush_text(out, index, &mut text, &mut logprobs)?;
                    if let Some(thought) = part.text.filter(|t| !t.is_empty()) {
                        let delta = ChatDelta::reasoning(thought);
                        self.write(out, ChatChunkChoice::delta(index, delta))?;
                    }
                } else if let Some(call) = part.function_call {
                    self.flush_text(out, index, &mut text, &mut logprobs)?;
                    let signature = part.thought_signature.as_deref();
                    let mut call = tool_call(call, signature, &self.stamp.nonce, self.calls);
                    call.index = Some(self.choices[slot].tool_calls);
                    self.calls += 1;
                    self.choices[slot].tool_calls += 1;
                    let delta = ChatDelta::tool_call(call);
                    self.write(out, ChatChunkChoice::delta(index, delta))?;
                } else if let Some(t) = part.text {
                    text.push_str(&t);
                }
            }
            self.flush_text(out, index, &mut text, &mut logprobs)?;
            if let Some(reason) = candidate.finish_reason {
                let reason = finish_reason(&reason, self.choices[slot].tool_calls > 0);
                self.write(out, ChatChunkChoice::finish(index, reason))?;
            }
        }
        Ok(())
    }

    /// The slot of choice `index`, sending its role delta when it is new.
    fn choice(&mut self, index: u32, out: &mut Vec<u8>) -> Result<usize, GatewayError> {
        if let Some(slot) = self.choices.iter().position(|c| c.index == index) {
            return Ok(slot);
        }
        self.choices.push(ChoiceState {
            index,
            tool_calls: 0,
        });
        self.write(out, ChatChunkChoice::delta(index, ChatDelta::start()))?;
        Ok(self.choices.len() - 1)
    }

    fn flush_text(
        &mut self,
        out: &mut Vec<u8>,
        index: u32,
        text: &mut String,
        logprobs: &mut Option<ChatLogprobs>,
    ) -> Result<(), GatewayError> {
        if text.is_empty() {
            return Ok(());
        }
        let choice = ChatChunkChoice {
            logprobs: logprobs.take(),
            ..ChatChunkChoice::delta(index, ChatDelta::content(std::mem::take(text)))
        };
        self.write(out, choice)
    }

    /// A chunk of one choice.
    fn write(&mut self, out: &mut Vec<u8>, choice: ChatChunkChoice) -> Result<(), GatewayError> {
        self.write_chunk(out, vec![choice], None)
    }

    /// A chunk; with `include_usage`, every chunk has `usage` (`null` but on the last one).
    fn write_chunk(
        &mut self,
        out: &mut Vec<u8>,
        choices: Vec<ChatChunkChoice>,
        usage: Option<ChatUsage>,
    ) -> Result<(), GatewayError> {
        let id = self.id.as_deref().unwrap_or(&self.stamp.nonce);
        let mut chunk = ChatChunk::new(id, self.stamp.created, &self.client_model, choices);
        chunk.usage = self.include_usage.then_some(usage);
        self.sink.chunk(chunk, out)
    }
}

impl<S: ChatSink> EventTranslator for StreamTranslator<S> {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.on_event(&event.data, out)
    }

    /// The usage chunk when asked for and known, then `[DONE]`; nothing after an error.
    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if !self.failed {
            if let (true, Some(usage)) = (self.include_usage, self.usage) {
                self.write_chunk(out, Vec::new(), Some(usage.into()))?;
            }
            self.sink.done(out)?;
        }
        self.sink.end(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::providers::ResponseTranslator;
    use serde_json::{json, Value};

    /// A recorded `gemini-2.5-flash` stream (CRLF framing, as Google sends it): a thought
    /// summary, three text events (one with non-ASCII text, so cuts fall inside characters),
    /// then a function call with its thought signature, the finish reason and the final usage.
    const RECORDED: &str = concat!(
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"**Checking the forecast**\\n\\nThe user wants the weather in Paris.\",\"thought\": true}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 42,\"totalTokenCount\": 42,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 42}]},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"Il0taoSYJ5Cez7IPr4-1cA\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Let me\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 42,\"totalTokenCount\": 44},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"Il0taoSYJ5Cez7IPr4-1cA\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" look up the weather\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 42,\"totalTokenCount\": 48},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"Il0taoSYJ5Cez7IPr4-1cA\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" in Paris — één moment ☀️.\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 42,\"totalTokenCount\": 60},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"Il0taoSYJ5Cez7IPr4-1cA\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"get_weather\",\"args\": {\"unit\": \"celsius\",\"city\": \"Paris\"}},\"thoughtSignature\": \"CiQBcsjafA==\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 42,\"candidatesTokenCount\": 31,\"totalTokenCount\": 121,\"thoughtsTokenCount\": 48,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 42}]},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"Il0taoSYJ5Cez7IPr4-1cA\"}\r\n\r\n",
    );

    fn stamp() -> Stamp {
        Stamp {
            created: 1_700_000_000,
            nonce: "n0".into(),
        }
    }

    fn translator(include_usage: bool) -> Events<StreamTranslator> {
        StreamTranslator::new("my-gemini", include_usage, stamp())
    }

    /// Feeds `pieces` in order and returns the whole output.
    fn run<'a>(include_usage: bool, pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
        let mut t = translator(include_usage);
        let mut out = Vec::new();
        for piece in pieces {
            t.push(piece, &mut out).unwrap();
        }
        t.finish(&mut out).unwrap();
        out
    }

    /// The output split into its `data:` payloads, each parsed (`[DONE]` kept as a string).
    fn events(out: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(out).unwrap();
        assert!(text.ends_with("\n\n"), "{text}");
        text.split_terminator("\n\n")
            .map(|e| {
                let data = e.strip_prefix("data: ").unwrap();
                serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_string()))
            })
            .collect()
    }

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "chatcmpl-Il0taoSYJ5Cez7IPr4-1cA", "object": "chat.completion.chunk",
               "created": 1_700_000_000, "model": "my-gemini",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
               "usage": null})
    }

    fn expected() -> Vec<Value> {
        vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(
                json!({"reasoning_content": "**Checking the forecast**\n\nThe user wants the weather in Paris."}),
                Value::Null,
            ),
            chunk(json!({"content": "Let me"}), Value::Null),
            chunk(json!({"content": " look up the weather"}), Value::Null),
            chunk(
                json!({"content": " in Paris — één moment ☀️."}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_n0_0__thought__CiQBcsjafA", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}}]}),
                Value::Null,
            ),
            chunk(json!({}), "tool_calls".into()),
            json!({"id": "chatcmpl-Il0taoSYJ5Cez7IPr4-1cA", "object": "chat.completion.chunk",
                   "created": 1_700_000_000, "model": "my-gemini", "choices": [],
                   "usage": {"prompt_tokens": 42, "completion_tokens": 79, "total_tokens": 121,
                             "prompt_tokens_details": {"cached_tokens": 0},
                             "completion_tokens_details": {"reasoning_tokens": 48}}}),
            json!("[DONE]"),
        ]
    }

    #[test]
    fn recorded_stream_translates_to_the_expected_chunks() {
        let out = run(true, [RECORDED.as_bytes()]);
        assert_eq!(events(&out), expected());
    }

    #[test]
    fn every_chunk_border_gives_the_same_output() {
        let bytes = RECORDED.as_bytes();
        let whole = run(true, [bytes]);
        for cut in 0..=bytes.len() {
            let out = run(true, [&bytes[..cut], &bytes[cut..]]);
            assert_eq!(out, whole, "cut at {cut}");
        }
        let out = run(true, bytes.chunks(1));
        assert_eq!(out, whole, "byte by byte");
    }

    #[test]
    fn events_are_emitted_as_soon_as_complete() {
        let first_event_end = RECORDED.find("\r\n\r\n").unwrap() + 4;
        let mut t = translator(true);
        let mut out = Vec::new();
        // The event is complete at its blank line, not before.
        t.push(&RECORDED.as_bytes()[..first_event_end - 2], &mut out)
            .unwrap();
        assert!(out.is_empty());
        t.push(
            &RECORDED.as_bytes()[first_event_end - 2..first_event_end],
            &mut out,
        )
        .unwrap();
        // the role, then the thought summary as reasoning
        assert_eq!(events(&out), expected()[..2]);
    }

    #[test]
    fn without_include_usage_there_is_no_usage_anywhere() {
        let out = run(false, [RECORDED.as_bytes()]);
        let got = events(&out);
        let mut want = expected();
        want.remove(7);
        for chunk in want.iter_mut().filter(|c| c.is_object()) {
            chunk.as_object_mut().unwrap().remove("usage");
        }
        assert_eq!(got, want);
    }

    #[test]
    fn mid_stream_error_becomes_an_openai_error_event() {
        let stream = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]},\"index\":0}],\"responseId\":\"r\"}\n\n",
            "data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\n\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"ignored\"}]},\"index\":0}]}\n\n",
        );
        let got = events(&run(false, [stream.as_bytes()]));
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[1]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(
            got[2],
            json!({"error": {"message": "The model is overloaded.", "type": "server_error",
                             "param": null, "code": "server_is_overloaded"}})
        );
    }

    #[test]
    fn a_stream_without_finish_reason_gets_no_fake_finish() {
        let stream = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hal\"}]}}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":1},\"responseId\":\"r\"}";
        let got = events(&run(true, [stream.as_bytes()]));
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null()));
        assert_eq!(got[1]["choices"][0]["delta"]["content"], "Hal");
        assert_eq!(got[2]["usage"]["total_tokens"], 4);
        assert_eq!(got[3], "[DONE]");
        assert_eq!(events(&run(true, [&b""[..]])), vec![json!("[DONE]")]);
    }

    #[test]
    fn blocked_prompt_streams_content_filter() {
        let stream = "data: {\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\"},\"usageMetadata\":{\"promptTokenCount\":9,\"totalTokenCount\":9},\"responseId\":\"b\"}\r\n\r\n";
        let got = events(&run(false, [stream.as_bytes()]));
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(got[1]["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(got[2], "[DONE]");
    }

    #[test]
    fn candidates_stream_as_separate_choices() {
        let stream = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"A\"}]},\"index\":0},{\"content\":{\"parts\":[{\"text\":\"B\"},{\"text\":\"b\"}]},\"index\":1}]}\n\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{}}}]},\"finishReason\":\"STOP\",\"index\":1},{\"finishReason\":\"MAX_TOKENS\",\"index\":0}]}\n\n",
        );
        let got = events(&run(false, [stream.as_bytes()]));
        let summary: Vec<(u64, Value, Value)> = got[..got.len() - 1]
            .iter()
            .map(|c| {
                let ch = &c["choices"][0];
                (
                    ch["index"].as_u64().unwrap(),
                    ch["delta"].clone(),
                    ch["finish_reason"].clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, json!({"role": "assistant", "content": ""}), Value::Null),
                (0, json!({"content": "A"}), Value::Null),
                (1, json!({"role": "assistant", "content": ""}), Value::Null),
                (1, json!({"content": "Bb"}), Value::Null),
                (
                    1,
                    json!({"tool_calls": [{"index": 0, "id": "call_n0_0", "type": "function",
                                            "function": {"name": "f", "arguments": "{}"}}]}),
                    Value::Null
                ),
                (1, json!({}), json!("tool_calls")),
                (0, json!({}), json!("length")),
            ]
        );
        assert!(got[0]
            .get("id")
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("chatcmpl-n0"));
    }

    #[test]
    fn garbage_event_is_a_protocol_error() {
        let mut t = translator(false);
        let e = t
            .push(b"data: {not json}\n\n", &mut Vec::new())
            .unwrap_err();
        assert_eq!(e.status(), 502);
    }

    /// Streams that end every way: completed, failed mid-stream, cut before a finish reason.
    fn streams() -> [&'static str; 3] {
        [
            RECORDED,
            concat!(
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]},\"index\":0}],\"responseId\":\"r\"}\n\n",
                "data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\n\n",
            ),
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hal\"}]}}],\"responseId\":\"r\"}\n\n",
        ]
    }

    #[test]
    fn an_anthropic_client_gets_what_the_byte_chain_gave() {
        use crate::providers::anthropic::client::response::{from_chat, ToAnthropic};
        use crate::providers::translator_testing::{events, typed_chain_matches_bytes};
        for input in streams() {
            let out = typed_chain_matches_bytes(
                || {
                    let sink = ToAnthropic::new("client");
                    Box::new(StreamTranslator::with_sink("m", true, stamp(), sink))
                },
                Box::new(StreamTranslator::new("m", true, stamp())),
                from_chat(true, "client"),
                input.as_bytes(),
            );
            assert_eq!(events(&out)[0].0.as_deref(), Some("message_start"));
        }
    }

    #[test]
    fn a_responses_client_gets_what_the_byte_chain_gave() {
        use crate::providers::responses::client::response::{from_chat, ToResponses};
        use crate::providers::responses::client::Echo;
        use crate::providers::translator_testing::{events, typed_chain_matches_bytes};
        for input in streams() {
            let out = typed_chain_matches_bytes(
                || {
                    let sink = ToResponses::new("client", Echo::default());
                    Box::new(StreamTranslator::with_sink("m", true, stamp(), sink))
                },
                Box::new(StreamTranslator::new("m", true, stamp())),
                from_chat(true, "client", Echo::default()),
                input.as_bytes(),
            );
            assert_eq!(events(&out)[0].0.as_deref(), Some("response.created"));
        }
    }
}
