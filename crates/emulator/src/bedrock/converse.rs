//! Bedrock's Converse API as the emulator speaks it, for any model id: `POST
//! /model/{modelId}/converse` (JSON) and `/converse-stream` (AWS's event stream), behind the
//! same SigV4 check as InvokeModel (the caller's). The body must keep Converse's rules
//! ([`rules`]; a 400 `ValidationException` `{"message"}` otherwise).
//!
//! Answers, by the emulator's common rules (N = `x-emulator-chunks`, default 5):
//! - text: N chunks (`"Hello"`, `" world1"`, …), `stopReason` `end_turn`; with
//!   `inferenceConfig.maxTokens` M < N, only M chunks and `max_tokens`;
//! - a tool call, when `toolConfig` has tools, unless the last user turn carries a
//!   `toolResult` and the choice is `auto` (or absent): `toolUse` for the `toolChoice.tool`
//!   named (else the first tool) with id `tooluse_<22 chars>` and the example `input` of its
//!   `inputSchema.json`; `stopReason` `tool_use`;
//! - `usage`: `inputTokens` P = (3 + words of `system` texts, when present) + Σ over messages
//!   of (3 + words of their `text` blocks and their `toolResult` texts), `outputTokens` N, M
//!   or K = the call's input pieces (clamp(N, 1, chars of the input JSON)), `totalTokens`
//!   their sum; `metrics.latencyMs`.
//! - The stream: `messageStart`, then `contentBlockDelta`s (text, one per chunk) or a
//!   `contentBlockStart` (`toolUse`) and K `contentBlockDelta`s of partial input JSON, then
//!   `contentBlockStop`, `messageStop` (`stopReason`) and `metadata` (`usage`, `metrics`);
//!   each payload is the event's JSON with AWS's `p` padding. A mid-stream failure is
//!   InvokeModel's `exception` frame.

mod rules;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::{error_reply, frame, stream_error_event, EVENT_STREAM};
use crate::faults::Faults;
use crate::openai::{chunk_text, example_arguments, split_even};
use crate::Reply;

/// Whether `operation` (the path's last segment) is a Converse one.
pub(super) fn serves(operation: &str) -> bool {
    matches!(operation, "converse" | "converse-stream")
}

/// Answers a Converse request for `model` (signature checked, faults handled by the caller).
pub(super) fn route(body: &[u8], operation: &str, faults: &Faults) -> Reply {
    let body = match rules::check(body) {
        Ok(body) => body,
        Err(message) => return error_reply(400, &message),
    };
    let answer = answer(&body, faults.chunks);
    if operation == "converse-stream" {
        Reply::stream_with(EVENT_STREAM, answer.frames(), stream_error_event)
    } else {
        Reply::json(200, &answer.whole())
    }
}

/// What the model answers.
struct Answer {
    /// Text chunks, or the tool call's (id, name, input pieces).
    content: Content,
    stop_reason: &'static str,
    input_tokens: u64,
    output_tokens: u64,
}

enum Content {
    Text(Vec<String>),
    Call {
        id: String,
        name: String,
        pieces: Vec<String>,
    },
}

fn answer(body: &Map<String, Value>, chunks: usize) -> Answer {
    let input_tokens = prompt_tokens(body);
    if let Some((name, input)) = plan_call(body) {
        let pieces = split_even(&input, chunks);
        let id = format!(
            "tooluse_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..22]
        );
        return Answer {
            output_tokens: pieces.len() as u64,
            content: Content::Call { id, name, pieces },
            stop_reason: "tool_use",
            input_tokens,
        };
    }
    let max = body
        .get("inferenceConfig")
        .and_then(|c| c.get("maxTokens"))
        .and_then(Value::as_u64)
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(usize::MAX);
    let n = chunks.min(max);
    Answer {
        content: Content::Text((0..n).map(chunk_text).collect()),
        stop_reason: if n < chunks { "max_tokens" } else { "end_turn" },
        input_tokens,
        output_tokens: n as u64,
    }
}

/// The tool to call and its input JSON, or `None` for a text answer.
fn plan_call(body: &Map<String, Value>) -> Option<(String, String)> {
    let config = body.get("toolConfig")?;
    let specs: Vec<&Value> = config
        .get("tools")?
        .as_array()?
        .iter()
        .filter_map(|t| t.get("toolSpec"))
        .collect();
    let choice = config.get("toolChoice");
    let named = choice
        .and_then(|c| c.get("tool"))
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str);
    let forced = named.is_some() || choice.is_some_and(|c| c.get("any").is_some());
    // like a model, answer in text once a tool's result is in (unless a call is forced)
    let answered = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|b| b.get("toolResult").is_some()));
    if answered && !forced {
        return None;
    }
    let spec = match named {
        Some(n) => specs.iter().find(|s| name_of(s) == Some(n)),
        None => specs.first(),
    }?;
    let schema = spec.get("inputSchema").and_then(|s| s.get("json"));
    Some((name_of(spec)?.to_string(), example_arguments(schema)))
}

fn name_of(spec: &Value) -> Option<&str> {
    spec.get("name").and_then(Value::as_str)
}

/// The module doc's P.
fn prompt_tokens(body: &Map<String, Value>) -> u64 {
    let words = |s: &str| s.split_whitespace().count() as u64;
    let texts = |blocks: &Value| -> u64 {
        let blocks = blocks.as_array().map_or(&[][..], Vec::as_slice);
        blocks
            .iter()
            .map(|b| {
                let own = b.get("text").and_then(Value::as_str).map_or(0, words);
                let result = b
                    .get("toolResult")
                    .and_then(|r| r.get("content"))
                    .and_then(Value::as_array)
                    .map_or(0, |c| {
                        c.iter()
                            .filter_map(|p| p.get("text").and_then(Value::as_str))
                            .map(words)
                            .sum()
                    });
                own + result
            })
            .sum()
    };
    let system = body.get("system").map_or(0, |s| 3 + texts(s));
    let messages: u64 = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, |ms| {
            ms.iter()
                .map(|m| 3 + m.get("content").map_or(0, &texts))
                .sum()
        });
    system + messages
}

impl Answer {
    fn usage(&self) -> Value {
        json!({"inputTokens": self.input_tokens, "outputTokens": self.output_tokens,
            "totalTokens": self.input_tokens + self.output_tokens})
    }

    /// The JSON answer.
    fn whole(&self) -> Value {
        let block = match &self.content {
            Content::Text(chunks) => json!({ "text": chunks.concat() }),
            Content::Call { id, name, pieces } => {
                let input: Value =
                    serde_json::from_str(&pieces.concat()).unwrap_or_else(|_| json!({}));
                json!({"toolUse": {"toolUseId": id, "name": name, "input": input}})
            }
        };
        json!({
            "output": {"message": {"role": "assistant", "content": [block]}},
            "stopReason": self.stop_reason,
            "usage": self.usage(),
            "metrics": {"latencyMs": 1},
        })
    }

    /// The stream's frames.
    fn frames(&self) -> Vec<Bytes> {
        let mut events = vec![("messageStart", json!({"role": "assistant"}))];
        match &self.content {
            Content::Text(chunks) => {
                for chunk in chunks {
                    events.push((
                        "contentBlockDelta",
                        json!({"contentBlockIndex": 0, "delta": {"text": chunk}}),
                    ));
                }
            }
            Content::Call { id, name, pieces } => {
                events.push((
                    "contentBlockStart",
                    json!({"contentBlockIndex": 0,
                        "start": {"toolUse": {"toolUseId": id, "name": name}}}),
                ));
                for piece in pieces {
                    events.push((
                        "contentBlockDelta",
                        json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}}),
                    ));
                }
            }
        }
        events.push(("contentBlockStop", json!({"contentBlockIndex": 0})));
        events.push(("messageStop", json!({"stopReason": self.stop_reason})));
        events.push((
            "metadata",
            json!({"usage": self.usage(), "metrics": {"latencyMs": 1}}),
        ));
        events
            .into_iter()
            .map(|(kind, mut payload)| {
                payload["p"] = "abcdefghijklmnopqrstuvwxyzABCDEFGH".into();
                frame(
                    &[
                        (":event-type", kind),
                        (":content-type", "application/json"),
                        (":message-type", "event"),
                    ],
                    payload.to_string().into_bytes(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn text_answers_count_their_words_and_stop_at_max_tokens() {
        let b = body(json!({"system": [{"text": "Be brief."}],
            "messages": [{"role": "user", "content": [{"text": "Say hello"}]}]}));
        let whole = answer(&b, 5).whole();
        assert_eq!(
            whole["output"]["message"]["content"],
            json!([{"text": "Hello world1 world2 world3 world4"}])
        );
        assert_eq!(whole["stopReason"], "end_turn");
        assert_eq!(
            whole["usage"],
            json!({"inputTokens": 10, "outputTokens": 5, "totalTokens": 15})
        );
        let b = body(json!({"inferenceConfig": {"maxTokens": 2},
            "messages": [{"role": "user", "content": [{"text": "Say hello"}]}]}));
        let whole = answer(&b, 5).whole();
        assert_eq!(whole["stopReason"], "max_tokens");
        assert_eq!(whole["usage"]["outputTokens"], 2);
    }

    #[test]
    fn tools_are_called_until_their_result_is_in() {
        let tools = json!({"tools": [
            {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}},
            {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object",
                "properties": {"city": {"type": "string"}}, "required": ["city"]}}}}]});
        let ask = json!({"role": "user", "content": [{"text": "Weather?"}]});
        let mut config = tools.clone();
        config["toolChoice"] = json!({"tool": {"name": "get_weather"}});
        let b = body(json!({"messages": [ask], "toolConfig": config}));
        let whole = answer(&b, 5).whole();
        assert_eq!(whole["stopReason"], "tool_use");
        let call = &whole["output"]["message"]["content"][0]["toolUse"];
        assert_eq!(call["name"], "get_weather");
        assert_eq!(call["input"], json!({"city": "Paris"}));
        assert!(call["toolUseId"].as_str().unwrap().starts_with("tooluse_"));
        let b = body(json!({"messages": [ask,
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "get_time", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": [{"text": "noon"}]}}]}],
            "toolConfig": tools}));
        assert_eq!(answer(&b, 5).whole()["stopReason"], "end_turn");
    }
}
