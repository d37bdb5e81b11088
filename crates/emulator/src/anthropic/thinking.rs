//! Extended thinking as the Messages API enforces it: the reasoning blocks an answer opens
//! with, and the rules on the thinking blocks a request sends back. Coding agents loop
//! over tools with thinking on, and the API requires the signed blocks back unmodified;
//! the emulator enforces that so the gateway's tests can prove the state round-trips.
//!
//! # Answers (`thinking: {"type":"enabled",…}`; any other `thinking` is off)
//! * The content opens with `{"type":"thinking","thinking":TEXT,"signature":SIG}`, before the
//!   text / tool_use block. TEXT is `"Thinking about the tool result"` when the last message
//!   is a user turn holding a `tool_result` block, else `"Thinking about: "` + the first 5
//!   words of the last user message's text (string content or `text` blocks), or
//!   `"Thinking about the request"` when it has none. SIG = base64(HMAC-SHA256(TEXT)) with
//!   the emulator's constant key ([`crate::signing`]).
//! * `x-emulator-redacted-thinking: 1` (thinking enabled only): the content opens with
//!   `{"type":"redacted_thinking","data":DATA}` before the thinking block; DATA =
//!   base64(`"redacted_thinking\n"` + TEXT ‖ its HMAC tag), opaque and tamper-evident.
//! * Stream, per reasoning block at its index: `content_block_start` with
//!   `{"type":"thinking","thinking":"","signature":""}`, one `thinking_delta` per word of
//!   TEXT (`"Thinking"`, `" about:"`, …; they concatenate to TEXT), one `signature_delta`,
//!   `content_block_stop`; a redacted block is `content_block_start` with the whole block,
//!   then `content_block_stop`. `ping` follows the first `content_block_start`; the text /
//!   tool_use block comes next at the following index.
//! * Tokens: each reasoning block adds W = words(TEXT) to `output_tokens` (the redacted one
//!   hides a thought of the same length). Nothing changes when thinking is off.
//!
//! # Checks ([`check`], 400 `invalid_request_error`, the API's wording)
//! * Every `thinking` block of an assistant message (any position: earlier turns' blocks are
//!   accepted, as the API ignores them, but still verified) must carry a `signature` that
//!   verifies over its `thinking` text exactly; a `redacted_thinking` block's `data` must
//!   verify: else ``messages.{i}.content.{j}: Invalid `signature` in `thinking` block``
//!   (`redacted_thinking` for that type).
//! * Thinking enabled, final message a user turn holding `tool_result` blocks: the last
//!   assistant message before it must start with a `thinking` or `redacted_thinking` block.
//! * Thinking off: a final assistant message (prefill) may not contain one.

use serde_json::Value;

use crate::signing::{seal, sign, thinking_about, unseal_verifies, verify};

/// The reasoning an answer opens with (see the module doc).
pub struct Reasoning {
    pub text: String,
    pub signature: String,
    /// DATA of the `redacted_thinking` block, when the request asked for one.
    pub redacted: Option<String>,
    /// What the reasoning blocks add to `output_tokens`.
    pub output_tokens: u64,
}

/// True when the request turns extended thinking on.
fn enabled(req: &Value) -> bool {
    let kind = req.get("thinking").and_then(|t| t.get("type"));
    kind.and_then(Value::as_str) == Some("enabled")
}

fn block_type(b: &Value) -> Option<&str> {
    b.get("type").and_then(Value::as_str)
}

fn has_type(content: Option<&Value>, kind: &str) -> bool {
    let blocks = content.and_then(Value::as_array);
    blocks.is_some_and(|b| b.iter().any(|b| block_type(b) == Some(kind)))
}

fn role(m: &Value) -> Option<&str> {
    m.get("role").and_then(Value::as_str)
}

/// TEXT for this request (module doc).
fn thinking_text(messages: &[Value]) -> String {
    let last = messages.last();
    if last.is_some_and(|m| role(m) == Some("user") && has_type(m.get("content"), "tool_result")) {
        return "Thinking about the tool result".to_string();
    }
    let last_user = messages.iter().rev().find(|m| role(m) == Some("user"));
    let text = match last_user.and_then(|m| m.get("content")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            let texts = blocks.iter().filter(|b| block_type(b) == Some("text"));
            let texts = texts.filter_map(|b| b.get("text").and_then(Value::as_str));
            texts.collect::<Vec<_>>().join(" ")
        }
        _ => String::new(),
    };
    thinking_about(&text)
}

/// The reasoning of the answer to `req`, or None when thinking is off; `redacted` is the
/// `x-emulator-redacted-thinking` fault.
pub fn reasoning(req: &Value, redacted: bool) -> Option<Reasoning> {
    if !enabled(req) {
        return None;
    }
    let messages = req.get("messages").and_then(Value::as_array);
    let text = thinking_text(messages.map_or(&[], Vec::as_slice));
    let words = text.split_whitespace().count() as u64;
    let redacted = redacted.then(|| seal(format!("redacted_thinking\n{text}").as_bytes()));
    Some(Reasoning {
        signature: sign(text.as_bytes()),
        output_tokens: words * (1 + u64::from(redacted.is_some())),
        redacted,
        text,
    })
}

/// The stream's `thinking_delta` pieces: one per word, concatenating to `text`.
pub fn thinking_pieces(text: &str) -> Vec<String> {
    let words = text.split_whitespace().enumerate();
    let piece = |(i, w): (usize, &str)| {
        if i == 0 {
            w.to_string()
        } else {
            format!(" {w}")
        }
    };
    words.map(piece).collect()
}

/// The module doc's checks on the (already shape-checked) `messages`, as the API's message.
pub fn check(req: &Value, messages: &[Value]) -> Result<(), String> {
    for (i, m) in messages.iter().enumerate() {
        let blocks = m.get("content").and_then(Value::as_array);
        if role(m) != Some("assistant") {
            continue;
        }
        for (j, b) in blocks.into_iter().flatten().enumerate() {
            let text = |k: &str| b.get(k).and_then(Value::as_str);
            let valid = match block_type(b) {
                Some("thinking") => text("thinking")
                    .zip(text("signature"))
                    .is_some_and(|(t, s)| verify(t.as_bytes(), s)),
                Some("redacted_thinking") => text("data").is_some_and(unseal_verifies),
                _ => continue,
            };
            if !valid {
                let kind = block_type(b).unwrap_or_default();
                return Err(format!(
                    "messages.{i}.content.{j}: Invalid `signature` in `{kind}` block"
                ));
            }
        }
    }
    let Some((last, earlier)) = messages.split_last() else {
        return Ok(());
    };
    let reasoning_block =
        |b: &Value| matches!(block_type(b), Some("thinking" | "redacted_thinking"));
    if !enabled(req) {
        let blocks = last.get("content").and_then(Value::as_array);
        let found = blocks.and_then(|b| b.iter().position(reasoning_block));
        return match found {
            Some(j) if role(last) == Some("assistant") => Err(format!(
                "messages.{}.content.{j}: When thinking is disabled, an `assistant` message in \
                 the final position cannot contain `thinking`. To use thinking blocks, enable \
                 `thinking` in your request.",
                earlier.len()
            )),
            _ => Ok(()),
        };
    }
    if role(last) != Some("user") || !has_type(last.get("content"), "tool_result") {
        return Ok(());
    }
    let Some(i) = earlier.iter().rposition(|m| role(m) == Some("assistant")) else {
        return Ok(());
    };
    let first = match earlier[i].get("content") {
        Some(Value::Array(blocks)) => blocks.first().map(|b| block_type(b).unwrap_or_default()),
        _ => Some("text"),
    };
    match first {
        Some("thinking" | "redacted_thinking") | None => Ok(()),
        Some(found) => Err(format!(
            "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found \
             `{found}`. When `thinking` is enabled, a final `assistant` message must start with \
             a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` \
             blocks). We recommend you include thinking blocks from previous turns. To avoid \
             this requirement, disable `thinking`. Please consult our documentation at \
             https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::{route, PromptCache};
    use crate::faults::Faults;
    use crate::{ReplyBody, Request};
    use http::HeaderMap;
    use serde_json::{json, Value};

    const THINKING: &str = "thinking";

    /// Posts `body` to `/v1/messages` (with `x-emulator-redacted-thinking: 1` when
    /// `redacted`): (status, JSON body or the stream's (event, data) pairs as an array).
    fn post(body: &Value, redacted: bool) -> (u16, Value) {
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-version", "2023-06-01".parse().unwrap());
        if redacted {
            headers.insert("x-emulator-redacted-thinking", "1".parse().unwrap());
        }
        let bytes = body.to_string();
        let req = Request {
            method: "POST",
            path: "/v1/messages",
            query: "",
            headers: &headers,
            body: bytes.as_bytes(),
        };
        let reply = route(
            &req,
            &Faults::from_headers(&headers),
            &PromptCache::default(),
        );
        let v = match &reply.body {
            ReplyBody::Full { bytes, .. } => serde_json::from_slice(bytes).unwrap(),
            ReplyBody::Stream { events, .. } => events
                .iter()
                .map(|e| {
                    let text = std::str::from_utf8(e)
                        .unwrap()
                        .strip_suffix("\n\n")
                        .unwrap();
                    let (name, data) = text.split_once('\n').unwrap();
                    let name = name.strip_prefix("event: ").unwrap();
                    let data: Value =
                        serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                    json!([name, data])
                })
                .collect(),
        };
        (reply.status, v)
    }

    fn tools() -> Value {
        json!([{"name": "get_weather", "input_schema": {"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
    }

    /// A thinking request with these messages (and the weather tool).
    fn request(messages: Value) -> Value {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 2048, "tools": tools(),
            "thinking": {"type": "enabled", "budget_tokens": 1024}, "messages": messages})
    }

    fn first_turn() -> Value {
        json!([{"role": "user", "content": "What is the weather in Paris today, please?"}])
    }

    /// The tool loop's continuation: the first answer's content back, then a tool result.
    fn continuation(assistant_content: Value) -> Value {
        let id = assistant_content
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "tool_use")
            .map_or(json!("toolu_x"), |b| b["id"].clone());
        let mut messages = first_turn().as_array().unwrap().clone();
        messages.push(json!({"role": "assistant", "content": assistant_content}));
        messages.push(json!({"role": "user", "content": [{"type": "tool_result",
            "tool_use_id": id, "content": "21 C"}]}));
        request(Value::Array(messages))
    }

    fn error_message(answer: &(u16, Value)) -> &str {
        assert_eq!(answer.0, 400, "{}", answer.1);
        assert_eq!(answer.1["error"]["type"], "invalid_request_error");
        answer.1["error"]["message"].as_str().unwrap()
    }

    #[test]
    fn answer_opens_with_a_signed_thinking_block_that_round_trips() {
        let (status, v) = post(&request(first_turn()), false);
        assert_eq!(status, 200);
        let content = v["content"].as_array().unwrap();
        assert_eq!(content.len(), 2);
        let thinking = &content[0];
        assert_eq!(thinking["type"], THINKING);
        assert_eq!(
            thinking["thinking"],
            "Thinking about: What is the weather in"
        );
        assert_eq!(
            thinking.as_object().unwrap().len(),
            3,
            "type, thinking, signature"
        );
        assert_eq!(content[1]["type"], "tool_use");
        // N = 5 fragments of the input + W = 7 thinking words
        assert_eq!(v["usage"]["output_tokens"], 5 + 7);
        let (status, next) = post(&continuation(v["content"].clone()), false);
        assert_eq!(status, 200, "{next}");
        assert_eq!(
            next["content"][0]["thinking"],
            "Thinking about the tool result"
        );
        assert_eq!(next["content"][1]["type"], "text");
        assert_eq!(next["usage"]["output_tokens"], 5 + 5);
    }

    #[test]
    fn tampered_thinking_text_or_signature_is_refused() {
        let (_, v) = post(&request(first_turn()), false);
        let mut text = v["content"].clone();
        text[0]["thinking"] = json!("Thinking about: What is the weather in?");
        assert_eq!(
            error_message(&post(&continuation(text), false)),
            "messages.1.content.0: Invalid `signature` in `thinking` block"
        );
        let mut signature = v["content"].clone();
        let sig = signature[0]["signature"].as_str().unwrap().to_string();
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        signature[0]["signature"] = json!(format!("{flipped}{}", &sig[1..]));
        let refused = post(&continuation(signature.clone()), false);
        assert!(error_message(&refused).starts_with("messages.1.content.0: Invalid `signature`"));
        signature[0].as_object_mut().unwrap().remove("signature");
        assert!(error_message(&post(&continuation(signature), false)).contains("`thinking` block"));
    }

    #[test]
    fn tool_loop_continuation_without_thinking_is_refused() {
        let (_, v) = post(&request(first_turn()), false);
        let without: Vec<Value> = v["content"].as_array().unwrap()[1..].to_vec();
        let msg = error_message(&post(&continuation(Value::Array(without)), false)).to_string();
        assert_eq!(
            msg,
            "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found \
             `tool_use`. When `thinking` is enabled, a final `assistant` message must start \
             with a thinking block (preceeding the lastmost set of `tool_use` and \
             `tool_result` blocks). We recommend you include thinking blocks from previous \
             turns. To avoid this requirement, disable `thinking`. Please consult our \
             documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
        );
        // the same history with thinking off is fine
        let mut off = continuation(Value::Array(v["content"].as_array().unwrap()[1..].to_vec()));
        off.as_object_mut().unwrap().remove("thinking");
        assert_eq!(post(&off, false).0, 200);
    }

    #[test]
    fn earlier_turns_thinking_is_accepted_but_verified() {
        let (_, first) = post(&request(first_turn()), false);
        let (_, second) = post(&continuation(first["content"].clone()), false);
        let mut messages = continuation(first["content"].clone())["messages"].clone();
        let list = messages.as_array_mut().unwrap();
        list.push(json!({"role": "assistant", "content": second["content"].clone()}));
        list.push(json!({"role": "user", "content": "thanks, and tomorrow?"}));
        let (status, third) = post(&request(messages.clone()), false);
        assert_eq!(status, 200, "{third}");
        assert_eq!(
            third["content"][0]["thinking"],
            "Thinking about: thanks, and tomorrow?"
        );
        // also with thinking off: earlier turns may keep their thinking blocks
        let mut off = request(messages.clone());
        off.as_object_mut().unwrap().remove("thinking");
        assert_eq!(post(&off, false).0, 200);
        messages[3]["content"][0]["thinking"] = json!("edited");
        assert_eq!(
            error_message(&post(&request(messages), false)),
            "messages.3.content.0: Invalid `signature` in `thinking` block"
        );
    }

    #[test]
    fn thinking_in_a_final_assistant_message_needs_thinking_on() {
        let (_, v) = post(&request(first_turn()), false);
        let mut messages = first_turn();
        let thinking = v["content"][0].clone();
        messages
            .as_array_mut()
            .unwrap()
            .push(json!({"role": "assistant",
            "content": [{"type": "text", "text": "Let me see."}, thinking]}));
        let mut off = request(messages.clone());
        off.as_object_mut().unwrap().remove("thinking");
        assert_eq!(
            error_message(&post(&off, false)),
            "messages.1.content.1: When thinking is disabled, an `assistant` message in the \
             final position cannot contain `thinking`. To use thinking blocks, enable \
             `thinking` in your request."
        );
        assert_eq!(post(&request(messages), false).0, 200);
    }

    #[test]
    fn redacted_thinking_opens_the_answer_and_must_come_back_intact() {
        let (_, v) = post(&request(first_turn()), true);
        let content = v["content"].as_array().unwrap();
        assert_eq!(content.len(), 3);
        assert_eq!(content[0]["type"], "redacted_thinking");
        assert_eq!(content[0].as_object().unwrap().len(), 2, "type and data");
        assert_eq!(content[1]["type"], THINKING);
        assert_eq!(v["usage"]["output_tokens"], 5 + 7 + 7);
        let (status, _) = post(&continuation(v["content"].clone()), false);
        assert_eq!(status, 200);
        // only the redacted block before the tool use satisfies the rule too
        let redacted_only = json!([content[0].clone(), content[2].clone()]);
        assert_eq!(post(&continuation(redacted_only), false).0, 200);
        let mut tampered = v["content"].clone();
        let data = tampered[0]["data"].as_str().unwrap().to_string();
        tampered[0]["data"] = json!(format!("AAAA{}", &data[4..]));
        assert_eq!(
            error_message(&post(&continuation(tampered), false)),
            "messages.1.content.0: Invalid `signature` in `redacted_thinking` block"
        );
        // the header does nothing without thinking
        let mut off = request(first_turn());
        off.as_object_mut().unwrap().remove("thinking");
        let (_, plain) = post(&off, true);
        assert_eq!(plain["content"].as_array().unwrap().len(), 1);
        assert_eq!(plain["usage"]["output_tokens"], 5);
    }

    #[test]
    fn stream_event_order_and_shapes() {
        let mut req = request(first_turn());
        req["stream"] = json!(true);
        req.as_object_mut().unwrap().remove("tools");
        let (_, ev) = post(&req, false);
        let ev = ev.as_array().unwrap();
        let names: Vec<&str> = ev.iter().map(|e| e[0].as_str().unwrap()).collect();
        let mut want = vec!["message_start", "content_block_start", "ping"];
        want.extend(["content_block_delta"; 7 + 1]);
        want.extend(["content_block_stop", "content_block_start"]);
        want.extend(["content_block_delta"; 5]);
        want.extend(["content_block_stop", "message_delta", "message_stop"]);
        assert_eq!(names, want);
        for e in ev {
            assert_eq!(e[1]["type"], e[0], "type equals the event name");
        }
        assert_eq!(
            ev[1][1],
            json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
        );
        let thinking: String = ev[3..10]
            .iter()
            .map(|e| {
                assert_eq!(e[1]["index"], 0);
                assert_eq!(e[1]["delta"].as_object().unwrap().len(), 2);
                assert_eq!(e[1]["delta"]["type"], "thinking_delta");
                e[1]["delta"]["thinking"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(thinking, "Thinking about: What is the weather in");
        let signature = &ev[10][1];
        assert_eq!(signature["index"], 0);
        assert_eq!(signature["delta"]["type"], "signature_delta");
        assert_eq!(ev[11][1], json!({"type": "content_block_stop", "index": 0}));
        assert_eq!(
            ev[12][1],
            json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "text", "text": ""}})
        );
        assert!(ev[13..18].iter().all(|e| e[1]["index"] == 1));
        assert_eq!(ev[18][1], json!({"type": "content_block_stop", "index": 1}));
        assert_eq!(ev[19][1]["usage"]["output_tokens"], 5 + 7);
        // the streamed block round-trips like the JSON one
        let block = json!({"type": "thinking", "thinking": thinking,
            "signature": signature["delta"]["signature"]});
        let tool_use = json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather",
            "input": {"city": "Paris"}});
        assert_eq!(post(&continuation(json!([block, tool_use])), false).0, 200);
    }

    #[test]
    fn redacted_block_streams_whole_before_the_thinking_block() {
        let mut req = request(first_turn());
        req["stream"] = json!(true);
        let (_, ev) = post(&req, true);
        let ev = ev.as_array().unwrap();
        let start = &ev[1][1];
        assert_eq!(start["index"], 0);
        assert_eq!(start["content_block"]["type"], "redacted_thinking");
        assert!(start["content_block"]["data"].as_str().unwrap().len() > 40);
        assert_eq!(ev[2][0], "ping");
        assert_eq!(ev[3][1], json!({"type": "content_block_stop", "index": 0}));
        assert_eq!(ev[4][1]["index"], 1);
        assert_eq!(ev[4][1]["content_block"]["type"], "thinking");
        let tool_start = ev
            .iter()
            .find(|e| e[1]["content_block"]["type"] == "tool_use");
        assert_eq!(tool_start.unwrap()[1]["index"], 2);
    }
}
