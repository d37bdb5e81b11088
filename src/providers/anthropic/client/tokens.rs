//! Input-token estimate for `POST /v1/messages/count_tokens` on models not served by Anthropic
//! (Claude Code calls it to manage its context window).
//!
//! Claude's tokenizer is not public, so text is counted with OpenAI's o200k_base, which lands
//! within a few percent of it on English and code. Fixed costs are added where the real count
//! has them; content whose size the gateway cannot see (images, PDFs) counts a flat amount.

use serde_json::Value;

use crate::error::GatewayError;
use crate::providers::json::{array, field, parse_object};
use crate::usage::estimate::{self, Encoding};

/// Per-message framing (role marker and separators), as in OpenAI's published chat counting.
const PER_MESSAGE_TOKENS: u64 = 4;
/// The assistant-turn priming every request carries.
const REPLY_PRIMING_TOKENS: u64 = 3;
/// Per tool definition, for its framing around name, description and schema.
const PER_TOOL_TOKENS: u64 = 8;
/// The system prompt Anthropic adds when tools are present (346 tokens per its tool-use
/// pricing table for current models with `auto`/`none` choice).
const TOOL_SYSTEM_PROMPT_TOKENS: u64 = 346;
/// An image of unknown size: about what Anthropic charges for a 1.15-megapixel image (its
/// largest unscaled size, width × height / 750).
const IMAGE_TOKENS: u64 = 1600;
/// A PDF or other non-text document: one page's worth (text plus page image).
const DOCUMENT_TOKENS: u64 = 2000;

fn count(text: &str) -> u64 {
    estimate::tokens(Encoding::O200k, text)
}

/// Input-token estimate for `POST /v1/messages/count_tokens` when the model is not served by
/// Anthropic: system + messages (text, tool_use input JSON, tool_result content) + tool
/// definitions, counted with o200k_base, plus the fixed overheads documented on the constants
/// above: 4 per message, 3 for the reply, 8 per tool and 346 for the tool system prompt, 1600
/// per image and 2000 per non-text document.
pub fn estimate(body: &[u8]) -> Result<u64, GatewayError> {
    let req = parse_object(body)?;
    let messages = array(field(&req, "messages"), "messages")?;
    let mut total = REPLY_PRIMING_TOKENS;
    match field(&req, "system") {
        Some(Value::String(s)) => total += PER_MESSAGE_TOKENS + count(s),
        Some(Value::Array(blocks)) => {
            total += PER_MESSAGE_TOKENS + blocks.iter().map(block_tokens).sum::<u64>()
        }
        _ => {}
    }
    for message in messages {
        total += PER_MESSAGE_TOKENS + content_tokens(message.get("content"));
    }
    if let Some(tools) = field(&req, "tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
    {
        total += TOOL_SYSTEM_PROMPT_TOKENS;
        for tool in tools {
            let text = |key: &str| tool.get(key).and_then(Value::as_str).map_or(0, count);
            let schema = tool
                .get("input_schema")
                .map_or(0, |s| count(&s.to_string()));
            total += PER_TOOL_TOKENS + text("name") + text("description") + schema;
        }
    }
    Ok(total)
}

/// A message's (or a tool result's) content: a string or blocks.
fn content_tokens(content: Option<&Value>) -> u64 {
    match content {
        Some(Value::String(s)) => count(s),
        Some(Value::Array(blocks)) => blocks.iter().map(block_tokens).sum(),
        _ => 0,
    }
}

/// One content block. Earlier turns' thinking is not counted: Anthropic strips it from the
/// context of later turns.
fn block_tokens(block: &Value) -> u64 {
    let text = |key: &str| block.get(key).and_then(Value::as_str).map_or(0, count);
    match block.get("type").and_then(Value::as_str) {
        Some("text") => text("text"),
        Some("tool_use" | "server_tool_use") => {
            text("name") + block.get("input").map_or(0, |i| count(&i.to_string()))
        }
        Some("tool_result") => content_tokens(block.get("content")),
        Some("image") => IMAGE_TOKENS,
        Some("document") => match block.get("source") {
            Some(source) if source.get("type").and_then(Value::as_str) == Some("text") => {
                source.get("data").and_then(Value::as_str).map_or(0, count)
            }
            _ => DOCUMENT_TOKENS,
        },
        _ => 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn token_estimate_counts_text_tools_and_overheads() {
        let plain = json!({"model": "m", "messages": [{"role": "user", "content": "hello world"}]});
        // "hello world" is 2 o200k tokens; + 4 per message + 3 reply priming.
        assert_eq!(estimate(plain.to_string().as_bytes()).unwrap(), 9);

        let rich = json!({
            "model": "m",
            "system": [{"type": "text", "text": "hello world", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hello world"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "long thoughts", "signature": "s"},
                    {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "hello world"}]},
            ],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        });
        let n = estimate(rich.to_string().as_bytes()).unwrap();
        let text = tokens_of("hello world");
        let expected = 3
            + (4 + text)
            + (4 + text + 1600)
            + (4 + tokens_of("f") + tokens_of(r#"{"a":1}"#))
            + (4 + text)
            + (346 + 8 + tokens_of("f") + tokens_of(r#"{"type":"object"}"#));
        assert_eq!(n, expected);
    }

    fn tokens_of(text: &str) -> u64 {
        tiktoken::get_encoding("o200k_base").unwrap().count(text) as u64
    }

    #[test]
    fn token_estimate_rejects_bodies_without_messages() {
        let e = estimate(br#"{"model":"m"}"#).unwrap_err();
        assert_eq!((e.status(), e.param.as_deref()), (400, Some("messages")));
        assert_eq!(estimate(b"[]").unwrap_err().status(), 400);
    }
}
