//! A Converse answer → chat values (docs/translation.md F2): the wire types the JSON answer and
//! the stream share, the mappings (stop reason, usage), and the translator of a whole answer.
//!
//! `{output: {message: {role, content: [{text} | {toolUse: {toolUseId, name, input}} |
//! {reasoningContent: {reasoningText: {text, signature?}}}]}}, stopReason, usage: {inputTokens,
//! outputTokens, totalTokens, cacheReadInputTokens?, cacheWriteInputTokens?}, metrics}` →
//! one choice: the texts joined as `content` (`null` beside tool calls when there is none),
//! each `toolUse` a tool call with its own id and `input` as the arguments' JSON text, the
//! reasoning as `reasoning_content` (and, when signed, as a thinking block the next turn
//! sends back). Dropped: `metrics`, `additionalModelResponseFields`, `trace`, other blocks
//! (guard content, citations).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::Stamp;
use crate::error::GatewayError;
use crate::providers::chat::{
    ChatChoice, ChatCompletion, ChatMessage, ChatSink, ChatToolCall, ChatUsage,
    PromptTokensDetails, ThinkingBlock,
};
use crate::providers::errors::protocol_error;
use crate::providers::events::{Buffered, WholeTranslator};

// ---------------------------------------------------------------- wire types (read only)

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ConverseResponse {
    output: Output,
    stop_reason: Option<String>,
    usage: Option<Usage>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Output {
    message: Option<Message>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Message {
    content: Vec<Block>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Block {
    text: Option<String>,
    tool_use: Option<ToolUse>,
    reasoning_content: Option<Reasoning>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ToolUse {
    tool_use_id: String,
    name: String,
    input: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Reasoning {
    reasoning_text: Option<ReasoningText>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ReasoningText {
    text: String,
    signature: Option<String>,
}

/// Converse's `usage` (the JSON answer's, and the stream's `metadata` event's).
#[derive(Deserialize, Default, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    cache_read_input_tokens: u64,
    cache_write_input_tokens: u64,
}

// ---------------------------------------------------------------- mappings

impl From<Usage> for ChatUsage {
    /// Converse counts cache reads and writes apart from `inputTokens`; chat's
    /// `prompt_tokens` includes both (the writes also named, as they are billed apart).
    fn from(u: Usage) -> Self {
        // saturating: the counts come from the network
        let prompt = u
            .input_tokens
            .saturating_add(u.cache_read_input_tokens)
            .saturating_add(u.cache_write_input_tokens);
        Self {
            prompt_tokens: prompt,
            completion_tokens: u.output_tokens,
            total_tokens: Some(prompt.saturating_add(u.output_tokens)),
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: Some(u.cache_read_input_tokens),
            }),
            completion_tokens_details: None,
            cache_creation_input_tokens: (u.cache_write_input_tokens > 0)
                .then_some(u.cache_write_input_tokens),
            cache_creation: None,
        }
    }
}

/// Converse's `stopReason` → chat's `finish_reason`: `end_turn` and `stop_sequence` → `stop`,
/// `tool_use` → `tool_calls`, `max_tokens` → `length`, `guardrail_intervened` and
/// `content_filtered` → `content_filter`; a reason added later → `stop`.
pub(super) fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "tool_use" => "tool_calls",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

/// A `toolUse`'s `input` as chat's `arguments` text (an absent input is `{}`).
pub(super) fn arguments(input: Option<Value>) -> String {
    match input {
        Some(Value::Null) | None => "{}".to_string(),
        Some(input) => input.to_string(),
    }
}

// ---------------------------------------------------------------- the whole answer

/// Converts a whole Converse answer and hands it to its sink.
pub(super) struct JsonTranslator<S> {
    client_model: String,
    stamp: Stamp,
    sink: S,
}

impl<S> JsonTranslator<S> {
    pub(super) fn new(client_model: &str, stamp: Stamp, sink: S) -> Buffered<Self> {
        Buffered::new(Self {
            client_model: client_model.to_string(),
            stamp,
            sink,
        })
    }

    fn convert(&self, response: ConverseResponse) -> ChatCompletion {
        let mut text = String::new();
        let mut reasoning = String::new();
        let mut thinking_blocks = Vec::new();
        let mut tool_calls = Vec::new();
        let blocks = response.output.message.map(|m| m.content);
        for block in blocks.into_iter().flatten() {
            if let Some(t) = block.text {
                text.push_str(&t);
            } else if let Some(call) = block.tool_use {
                tool_calls.push(ChatToolCall::function(
                    None,
                    call.tool_use_id,
                    call.name,
                    arguments(call.input),
                ));
            } else if let Some(r) = block.reasoning_content.and_then(|r| r.reasoning_text) {
                reasoning.push_str(&r.text);
                if let Some(signature) = r.signature {
                    thinking_blocks.push(ThinkingBlock::Thinking {
                        thinking: r.text,
                        signature,
                    });
                }
            }
        }
        let content = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
        let mut message = ChatMessage::assistant(content, tool_calls);
        message.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
        message.thinking_blocks = thinking_blocks;
        let finish = finish_reason(response.stop_reason.as_deref().unwrap_or("end_turn"));
        let mut completion = ChatCompletion::new(
            self.stamp.id.clone(),
            self.stamp.created,
            self.client_model.clone(),
        );
        completion.choices = vec![ChatChoice {
            index: 0,
            message,
            logprobs: None,
            finish_reason: Some(Cow::Borrowed(finish)),
        }];
        completion.usage = Some(response.usage.unwrap_or_default().into());
        completion
    }
}

impl<S: ChatSink> WholeTranslator for JsonTranslator<S> {
    fn whole(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let response: ConverseResponse = serde_json::from_slice(body).map_err(|e| {
            protocol_error(format!(
                "Bedrock sent a Converse answer that could not be read: {e}"
            ))
        })?;
        let completion = self.convert(response);
        self.sink.whole(completion, out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::providers::chat::OpenAiWriter;
    use crate::providers::translator_testing::run;

    fn translate(answer: Value) -> Value {
        let mut t = JsonTranslator::new("nova-pro", Stamp::fixed(), OpenAiWriter);
        let (out, result) = run(&mut t, &[answer.to_string().as_bytes()]);
        result.unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_text_answer_with_its_usage() {
        let out = translate(json!({
            "output": {"message": {"role": "assistant", "content": [
                {"text": "Hello"}, {"text": " there"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 25,
                      "cacheReadInputTokens": 6, "cacheWriteInputTokens": 4},
            "metrics": {"latencyMs": 321}
        }));
        assert_eq!(
            out,
            json!({"id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000,
                "model": "nova-pro",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there",
                    "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 22, "completion_tokens": 3, "total_tokens": 25,
                    "prompt_tokens_details": {"cached_tokens": 6},
                    "cache_creation_input_tokens": 4}})
        );
    }

    #[test]
    fn tool_calls_and_reasoning() {
        let out = translate(json!({
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "Need weather.", "signature": "s1"}}},
                {"toolUse": {"toolUseId": "tooluse_abc", "name": "get_weather",
                             "input": {"city": "Paris"}}}]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 30, "outputTokens": 9, "totalTokens": 39}
        }));
        let choice = &out["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        assert_eq!(choice["message"]["reasoning_content"], "Need weather.");
        assert_eq!(
            choice["message"]["thinking_blocks"],
            json!([{"type": "thinking", "thinking": "Need weather.", "signature": "s1"}])
        );
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([{"id": "tooluse_abc", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])
        );
        assert_eq!(out["usage"]["prompt_tokens"], 30);
    }

    #[test]
    fn stop_reasons() {
        for (converse, chat) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("tool_use", "tool_calls"),
            ("max_tokens", "length"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
            ("something_new", "stop"),
        ] {
            assert_eq!(finish_reason(converse), chat);
        }
    }

    #[test]
    fn an_unreadable_answer_is_a_protocol_error() {
        let mut t = JsonTranslator::new("m", Stamp::fixed(), OpenAiWriter);
        let (_, result) = run(&mut t, &[b"{\"output\":"]);
        assert_eq!(
            result.unwrap_err().kind,
            crate::error::ErrorKind::UpstreamProtocol
        );
    }
}
