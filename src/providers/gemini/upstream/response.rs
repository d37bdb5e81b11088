//! Gemini `GenerateContentResponse` → chat completion (docs/translation.md C2): the wire types
//! both directions share with `stream`, the mappings (finish reason, usage, tool calls,
//! logprobs) into typed chat values, and the non-streaming translator, which hands its
//! completion to a [`ChatSink`] (the OpenAI client's writer, or another client format's side).
//!
//! `thought: true` parts (the thought summaries `includeThoughts` asks for) become
//! `reasoning_content`. Dropped: `executableCode`/`codeExecutionResult`/`inlineData` output parts,
//! `safetyRatings`, `citationMetadata`, `groundingMetadata`, `modelVersion` (the client sees the
//! model name it asked for) and the thought signatures of non-call parts (optional to echo).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::{embedded_error, protocol_error, tool_call_id, Stamp};
use crate::error::GatewayError;
use crate::providers::chat::{
    ChatChoice, ChatCompletion, ChatLogprobs, ChatMessage, ChatSink, ChatToolCall, ChatUsage,
    CompletionTokensDetails, OpenAiWriter, PromptTokensDetails, TokenLogprob, TopLogprob,
};
use crate::providers::events::{Buffered, WholeTranslator};
use crate::providers::ResponseTranslator;

mod stream;

// ---------------------------------------------------------------------------------------------
// Gemini wire types (only what is read)
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct GenerateContentResponse {
    pub candidates: Vec<Candidate>,
    pub prompt_feedback: Option<PromptFeedback>,
    pub usage_metadata: Option<UsageMetadata>,
    pub response_id: Option<String>,
    /// Set when a stream event is a Google error object instead of a response.
    pub error: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Candidate {
    pub content: Option<Content>,
    pub finish_reason: Option<String>,
    pub index: Option<u32>,
    pub logprobs_result: Option<LogprobsResult>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Content {
    pub parts: Vec<Part>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Part {
    pub text: Option<String>,
    pub thought: bool,
    pub function_call: Option<FunctionCall>,
    pub thought_signature: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct FunctionCall {
    pub name: String,
    pub args: Option<Value>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct UsageMetadata {
    pub prompt_token_count: u64,
    pub candidates_token_count: u64,
    pub thoughts_token_count: u64,
    pub cached_content_token_count: u64,
    pub tool_use_prompt_token_count: u64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct PromptFeedback {
    pub block_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct LogprobsResult {
    pub top_candidates: Vec<TopCandidates>,
    pub chosen_candidates: Vec<LogprobCandidate>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct TopCandidates {
    pub candidates: Vec<LogprobCandidate>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct LogprobCandidate {
    pub token: String,
    pub log_probability: f64,
}

// ---------------------------------------------------------------------------------------------
// OpenAI output types and the mappings
// ---------------------------------------------------------------------------------------------

impl From<UsageMetadata> for ChatUsage {
    /// `prompt_tokens` also counts `toolUsePromptTokenCount` (tool-use prompt tokens are billed
    /// as input, docs/translation.md C2), `completion_tokens` counts thoughts (OpenAI's includes
    /// reasoning), and the total is their sum: Gemini's `totalTokenCount` is the same number
    /// when present and is missing from early stream events.
    fn from(u: UsageMetadata) -> Self {
        // saturating: the counts come from the network (found by fuzzing)
        let prompt = u
            .prompt_token_count
            .saturating_add(u.tool_use_prompt_token_count);
        let completion = u
            .candidates_token_count
            .saturating_add(u.thoughts_token_count);
        Self {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: Some(prompt.saturating_add(completion)),
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: Some(u.cached_content_token_count),
            }),
            completion_tokens_details: Some(CompletionTokensDetails {
                reasoning_tokens: Some(u.thoughts_token_count),
            }),
            cache_creation: None,
            cache_creation_input_tokens: None,
        }
    }
}

/// The `n`th call of the answer, with its synthesized id and `args` as a JSON string (`index`
/// is set by the stream, which alone sends it).
pub(super) fn tool_call(
    call: FunctionCall,
    signature: Option<&str>,
    nonce: &str,
    n: usize,
) -> ChatToolCall {
    let arguments = match call.args {
        Some(args @ Value::Object(_)) => args.to_string(),
        _ => "{}".to_string(),
    };
    let id = tool_call_id(nonce, n, signature);
    ChatToolCall::function(None, id, call.name, arguments)
}

/// A candidate's `logprobsResult` as chat `logprobs`.
pub(super) fn logprobs(result: LogprobsResult) -> ChatLogprobs {
    let mut tops = result.top_candidates.into_iter();
    let content = result
        .chosen_candidates
        .into_iter()
        .map(|chosen| TokenLogprob {
            bytes: chosen.token.as_bytes().to_vec(),
            logprob: chosen.log_probability,
            top_logprobs: tops
                .next()
                .map(|t| t.candidates)
                .unwrap_or_default()
                .into_iter()
                .map(|c| TopLogprob {
                    bytes: c.token.as_bytes().to_vec(),
                    logprob: c.log_probability,
                    token: c.token,
                })
                .collect(),
            token: chosen.token,
        })
        .collect();
    ChatLogprobs { content }
}

/// Gemini `finishReason` → OpenAI `finish_reason`. `STOP` with function calls is `tool_calls`
/// (Gemini says `STOP` either way); the safety family is `content_filter`; everything else,
/// including `MALFORMED_FUNCTION_CALL` and values added later, is `stop`.
pub(super) fn finish_reason(reason: &str, saw_tool_call: bool) -> &'static str {
    match reason {
        "STOP" if saw_tool_call => "tool_calls",
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ => "stop",
    }
}

// ---------------------------------------------------------------------------------------------
// Non-streaming conversion
// ---------------------------------------------------------------------------------------------

/// Translator for a Gemini answer → OpenAI chat completion (`stream == false`) or chunk stream
/// ending with `data: [DONE]` (`stream == true`, Gemini SSE in: see `stream` for the event
/// mapping).
///
/// candidates → choices (by candidate `index`); text parts → `content`; `functionCall` parts →
/// `tool_calls` with ids `call_<random>_<n>` (see the module docs for why not a bare counter, and
/// how thought signatures ride along) and `arguments` = the JSON string of `args` (sent whole, in
/// one fragment, in streams); `finishReason` → `finish_reason` (`STOP` → `stop`, or
/// `tool_calls` when calls were emitted; `MAX_TOKENS` → `length`; `SAFETY`, `RECITATION`,
/// `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII`, `IMAGE_SAFETY` → `content_filter`; any other →
/// `stop`; a complete non-streaming answer without one → `stop`); `usageMetadata` →
/// `usage` (prompt = prompt + tool-use prompt tokens, completion = candidates + thoughts,
/// `cached_tokens`, `reasoning_tokens`). Thought parts are dropped. `model` is `client_model`.
/// The stream ends with the usage-only chunk (`choices: []`), and every other chunk has
/// `"usage": null`: usage is always asked of a translated upstream, and the meter removes it
/// for clients that did not ask. A blocked prompt (`promptFeedback.blockReason`, no
/// candidates) is one choice with empty content and `content_filter`. The values go to `sink`
/// ([`OpenAiWriter`] for an OpenAI client).
pub fn to_chat<S: ChatSink + 'static>(
    stream: bool,
    client_model: &str,
    sink: S,
) -> Box<dyn ResponseTranslator> {
    let stamp = Stamp::fresh();
    if stream {
        Box::new(stream::StreamTranslator::with_sink(
            client_model,
            true,
            stamp,
            sink,
        ))
    } else {
        Box::new(JsonTranslator::with_sink(client_model, stamp, sink))
    }
}

/// Converts the whole answer and hands it to its sink.
pub(super) struct JsonTranslator<S = OpenAiWriter> {
    client_model: String,
    stamp: Stamp,
    sink: S,
}

impl JsonTranslator {
    /// For an OpenAI client, with a fixed time (and ids) to compare output with.
    #[cfg(test)]
    pub fn new(client_model: &str, stamp: Stamp) -> Buffered<Self> {
        Self::with_sink(client_model, stamp, OpenAiWriter)
    }
}

impl<S> JsonTranslator<S> {
    pub fn with_sink(client_model: &str, stamp: Stamp, sink: S) -> Buffered<Self> {
        Buffered::new(Self {
            client_model: client_model.to_string(),
            stamp,
            sink,
        })
    }

    fn convert(&self, response: GenerateContentResponse) -> ChatCompletion {
        let mut calls = 0;
        let mut choices: Vec<ChatChoice> = response
            .candidates
            .into_iter()
            .enumerate()
            .map(|(pos, candidate)| {
                let mut text = String::new();
                let mut thoughts = String::new();
                let mut tool_calls = Vec::new();
                let parts = candidate.content.map(|c| c.parts).unwrap_or_default();
                for part in parts {
                    if part.thought {
                        thoughts.push_str(part.text.as_deref().unwrap_or(""));
                    } else if let Some(call) = part.function_call {
                        let signature = part.thought_signature.as_deref();
                        tool_calls.push(tool_call(call, signature, &self.stamp.nonce, calls));
                        calls += 1;
                    } else if let Some(t) = part.text {
                        text.push_str(&t);
                    }
                }
                let reason = candidate.finish_reason.as_deref().unwrap_or("STOP");
                let finish = finish_reason(reason, !tool_calls.is_empty());
                let content = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
                let mut message = ChatMessage::assistant(content, tool_calls);
                message.reasoning_content = (!thoughts.is_empty()).then_some(thoughts);
                ChatChoice {
                    index: candidate.index.unwrap_or(pos as u32),
                    message,
                    logprobs: candidate.logprobs_result.map(logprobs),
                    finish_reason: Some(Cow::Borrowed(finish)),
                }
            })
            .collect();
        choices.sort_by_key(|c| c.index);
        let blocked = response
            .prompt_feedback
            .and_then(|f| f.block_reason)
            .is_some();
        if choices.is_empty() && blocked {
            choices.push(ChatChoice {
                index: 0,
                message: ChatMessage::assistant(Some(String::new()), Vec::new()),
                logprobs: None,
                finish_reason: Some(Cow::Borrowed("content_filter")),
            });
        }
        let id = self.stamp.completion_id(response.response_id.as_deref());
        let mut completion = ChatCompletion::new(id, self.stamp.created, self.client_model.clone());
        completion.choices = choices;
        completion.usage = Some(response.usage_metadata.unwrap_or_default().into());
        completion
    }
}

impl<S: ChatSink> WholeTranslator for JsonTranslator<S> {
    fn whole(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let response: GenerateContentResponse =
            serde_json::from_slice(body).map_err(|e| protocol_error("an answer", e))?;
        if let Some(error) = &response.error {
            return Err(embedded_error(error, body));
        }
        let completion = self.convert(response);
        self.sink.whole(completion, out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn huge_usage_counts_saturate_instead_of_overflowing() {
        // fuzz crash: "attempt to add with overflow" (wrapping to a small count in release)
        let u: UsageMetadata = serde_json::from_value(json!({
            "promptTokenCount": u64::MAX, "toolUsePromptTokenCount": 1,
            "candidatesTokenCount": u64::MAX, "thoughtsTokenCount": 1,
        }))
        .unwrap();
        let usage = ChatUsage::from(u);
        assert_eq!(usage.prompt_tokens, u64::MAX);
        assert_eq!(usage.total_tokens, Some(u64::MAX));
    }

    fn stamp() -> Stamp {
        Stamp {
            created: 1_700_000_000,
            nonce: "n0".into(),
        }
    }

    fn translate(body: Value) -> Value {
        let mut t = JsonTranslator::new("my-gemini", stamp());
        let bytes = body.to_string().into_bytes();
        let mut out = Vec::new();
        for chunk in bytes.chunks(7) {
            t.push(chunk, &mut out).unwrap();
        }
        assert!(out.is_empty());
        t.finish(&mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn usage_meta() -> Value {
        json!({"promptTokenCount": 15, "candidatesTokenCount": 6, "totalTokenCount": 41,
               "thoughtsTokenCount": 20, "cachedContentTokenCount": 4, "toolUsePromptTokenCount": 0})
    }

    #[test]
    fn text_answer_becomes_a_chat_completion() {
        let v = translate(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "thinking about it", "thought": true}, {"text": "It is "}, {"text": "21°C."}]},
                "finishReason": "STOP", "index": 0, "safetyRatings": []}],
            "usageMetadata": usage_meta(), "modelVersion": "gemini-2.5-flash", "responseId": "abc"}));
        assert_eq!(
            v,
            json!({"id": "chatcmpl-abc", "object": "chat.completion", "created": 1_700_000_000,
                   "model": "my-gemini",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "It is 21°C.",
                                                        "reasoning_content": "thinking about it", "refusal": null},
                                "logprobs": null, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 15, "completion_tokens": 26, "total_tokens": 41,
                             "prompt_tokens_details": {"cached_tokens": 4},
                             "completion_tokens_details": {"reasoning_tokens": 20}}})
        );
    }

    #[test]
    fn function_calls_become_tool_calls() {
        let v = translate(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "now"}}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": usage_meta()}));
        let choice = &v["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([{"id": "call_n0_0__thought__c2ln", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                   {"id": "call_n0_1", "type": "function", "function": {"name": "now", "arguments": "{}"}}])
        );
        assert_eq!(v["id"], "chatcmpl-n0");
    }

    #[test]
    fn candidates_become_choices_by_index() {
        let v = translate(json!({"candidates": [
            {"content": {"parts": [{"text": "B"}]}, "finishReason": "MAX_TOKENS", "index": 1},
            {"content": {"parts": [{"text": "A"}]}, "finishReason": "STOP", "index": 0}]}));
        assert_eq!(v["choices"][0]["index"], 0);
        assert_eq!(v["choices"][0]["message"]["content"], "A");
        assert_eq!(v["choices"][1]["message"]["content"], "B");
        assert_eq!(v["choices"][1]["finish_reason"], "length");
        assert_eq!(v["usage"]["total_tokens"], 0);
    }

    #[test]
    fn every_finish_reason_maps() {
        let cases = [
            ("STOP", "stop"),
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("BLOCKLIST", "content_filter"),
            ("PROHIBITED_CONTENT", "content_filter"),
            ("SPII", "content_filter"),
            ("IMAGE_SAFETY", "content_filter"),
            ("MALFORMED_FUNCTION_CALL", "stop"),
            ("LANGUAGE", "stop"),
            ("OTHER", "stop"),
            ("FINISH_REASON_UNSPECIFIED", "stop"),
            ("SOMETHING_NEW", "stop"),
        ];
        for (gemini, openai) in cases {
            let v = translate(json!({"candidates": [{"finishReason": gemini, "index": 0}]}));
            assert_eq!(v["choices"][0]["finish_reason"], openai, "{gemini}");
            // A candidate blocked for safety has no content at all.
            assert_eq!(v["choices"][0]["message"]["content"], "", "{gemini}");
        }
        assert_eq!(finish_reason("STOP", true), "tool_calls");
        assert_eq!(finish_reason("MAX_TOKENS", true), "length");
    }

    #[test]
    fn blocked_prompt_is_content_filter() {
        let v = translate(
            json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
                                 "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}),
        );
        assert_eq!(
            v["choices"],
            json!([{"index": 0, "message": {"role": "assistant", "content": "", "refusal": null},
                    "logprobs": null, "finish_reason": "content_filter"}])
        );
        assert_eq!(v["usage"]["prompt_tokens"], 7);
    }

    #[test]
    fn tool_use_prompt_tokens_count_as_prompt() {
        let v = translate(json!({"candidates": [], "usageMetadata": {
            "promptTokenCount": 10, "toolUsePromptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 18}}));
        assert_eq!(v["usage"]["prompt_tokens"], 15);
        assert_eq!(v["usage"]["total_tokens"], 18);
    }

    #[test]
    fn logprobs_result_becomes_logprobs() {
        let v = translate(
            json!({"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP",
            "logprobsResult": {
                "topCandidates": [{"candidates": [{"token": "Hi", "logProbability": -0.5}, {"token": "Yo", "logProbability": -1.5}]}],
                "chosenCandidates": [{"token": "Hi", "logProbability": -0.5}]}}]}),
        );
        assert_eq!(
            v["choices"][0]["logprobs"],
            json!({"content": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": [
                {"token": "Hi", "logprob": -0.5, "bytes": [72, 105]},
                {"token": "Yo", "logprob": -1.5, "bytes": [89, 111]}]}]})
        );
    }

    #[test]
    fn error_bodies_and_garbage_are_errors() {
        let mut t = JsonTranslator::new("m", stamp());
        let mut out = Vec::new();
        t.push(
            br#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#,
            &mut out,
        )
        .unwrap();
        let e = t.finish(&mut out).unwrap_err();
        assert_eq!((e.status(), e.message.as_str()), (503, "overloaded"));
        let mut t = JsonTranslator::new("m", stamp());
        t.push(b"{\"candidates\": [", &mut out).unwrap();
        assert_eq!(t.finish(&mut out).unwrap_err().status(), 502);
        assert!(out.is_empty());
    }

    #[test]
    fn public_constructor_makes_random_ids() {
        let body = json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]},
                                           "finishReason": "STOP"}]}).to_string();
        let mut ids = Vec::new();
        for _ in 0..2 {
            let mut t = to_chat(false, "m", OpenAiWriter);
            let mut out = Vec::new();
            t.push(body.as_bytes(), &mut out).unwrap();
            t.finish(&mut out).unwrap();
            let v: Value = serde_json::from_slice(&out).unwrap();
            ids.push(
                v["choices"][0]["message"]["tool_calls"][0]["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        assert!(
            ids[0].starts_with("call_") && ids[0].ends_with("_0"),
            "{}",
            ids[0]
        );
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn other_clients_get_what_the_byte_chain_gave() {
        use crate::providers::anthropic::client::response::{self as anthropic, ToAnthropic};
        use crate::providers::responses::client::response::{self as responses, ToResponses};
        use crate::providers::responses::client::Echo;
        use crate::providers::translator_testing::typed_chain_matches_bytes;
        let answer = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "It is "}, {"text": "21°C."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
                "finishReason": "STOP", "index": 0}],
            "usageMetadata": usage_meta(), "responseId": "abc"})
        .to_string();
        let out = typed_chain_matches_bytes(
            || {
                Box::new(JsonTranslator::with_sink(
                    "m",
                    stamp(),
                    ToAnthropic::new("c"),
                ))
            },
            Box::new(JsonTranslator::new("m", stamp())),
            anthropic::from_chat(false, "c"),
            answer.as_bytes(),
        );
        let message: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(message["content"][1]["id"], "call_n0_0");
        let out = typed_chain_matches_bytes(
            || {
                let sink = ToResponses::new("c", Echo::default());
                Box::new(JsonTranslator::with_sink("m", stamp(), sink))
            },
            Box::new(JsonTranslator::new("m", stamp())),
            responses::from_chat(false, "c", Echo::default()),
            answer.as_bytes(),
        );
        let response: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(response["output"][0]["content"][0]["text"], "It is 21°C.");
    }
}
