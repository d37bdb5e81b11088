//! Prompt-cache breakpoints for clients that cannot mark them.
//!
//! Anthropic bills a cached prefix at a tenth of the input price, but only where the request
//! marks `cache_control` breakpoints, and OpenAI chat and Responses clients have no way to
//! say where. Coding agents resend the whole conversation every turn, so for them the gateway
//! marks, at most [`MAX_BREAKPOINTS`]:
//! 1. the end of the system prompt (the last tool when there is none): tools and
//!    instructions, the same every turn;
//! 2. the end of the newest message: this turn's whole prompt, which the next turn reads
//!    (Anthropic finds it up to 20 blocks back from the next turn's own mark);
//! 3. the end of the user turn before the newest message: what the previous turn wrote, still
//!    read when one turn adds more than 20 blocks (many parallel tool results).
//!
//! A request that already carries a `cache_control` anywhere is left as the client marked it.
//! Marks on prefixes shorter than Anthropic's minimum (1,024 tokens; 2,048 on Haiku) are
//! ignored by Anthropic, at no cost.

use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Anthropic's limit of `cache_control` blocks in one request.
const MAX_BREAKPOINTS: usize = 4;

/// Whether the gateway marks cache breakpoints for a model (`prompt_cache` in its config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptCache {
    /// Breakpoints placed as the module doc says, for clients that placed none.
    #[default]
    Auto,
    /// The request goes as the client wrote it.
    Off,
}

/// Adds the breakpoints to an Anthropic Messages body (`tools`, `system`, `messages` as the
/// translator built them), unless the body already has one.
pub fn place_breakpoints(body: &mut Map<String, Value>) {
    if has_breakpoint(body) {
        return;
    }
    let mut marked = 0;
    let mut mark = |block: Option<&mut Value>| {
        if let Some(block) = block.filter(|_| marked < MAX_BREAKPOINTS) {
            block["cache_control"] = json!({"type": "ephemeral"});
            marked += 1;
        }
    };
    let system_end = body
        .get_mut("system")
        .and_then(Value::as_array_mut)
        .and_then(|blocks| blocks.iter_mut().rev().find(|b| cacheable(b)));
    match system_end {
        Some(block) => mark(Some(block)),
        None => mark(
            body.get_mut("tools")
                .and_then(Value::as_array_mut)
                .and_then(|tools| tools.last_mut()),
        ),
    }
    let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
        return;
    };
    let newest = messages.len().checked_sub(1);
    let previous_user = newest.and_then(|newest| {
        messages[..newest]
            .iter()
            .rposition(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    });
    for index in [newest, previous_user].into_iter().flatten() {
        mark(messages.get_mut(index).and_then(last_cacheable_block));
    }
}

/// True when any tool, system block or message block already has a `cache_control`.
fn has_breakpoint(body: &Map<String, Value>) -> bool {
    let marked = |blocks: Option<&Value>| {
        blocks
            .and_then(Value::as_array)
            .is_some_and(|bs| bs.iter().any(|b| b.get("cache_control").is_some()))
    };
    marked(body.get("tools"))
        || marked(body.get("system"))
        || body
            .get("messages")
            .and_then(Value::as_array)
            .is_some_and(|ms| ms.iter().any(|m| marked(m.get("content"))))
}

/// The message's last block that may carry `cache_control`; a string content becomes one
/// text block so that it can.
fn last_cacheable_block(message: &mut Value) -> Option<&mut Value> {
    let content = message.get_mut("content")?;
    if let Value::String(text) = content {
        if text.is_empty() {
            return None;
        }
        *content = json!([{"type": "text", "text": std::mem::take(text)}]);
    }
    content
        .as_array_mut()?
        .iter_mut()
        .rev()
        .find(|b| cacheable(b))
}

/// Anthropic refuses `cache_control` on thinking blocks and on empty text blocks.
fn cacheable(block: &Value) -> bool {
    match block.get("type").and_then(Value::as_str) {
        Some("thinking" | "redacted_thinking") => false,
        Some("text") => block
            .get("text")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty()),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn marks(body: &Map<String, Value>) -> Vec<String> {
        let mut found = Vec::new();
        let mut scan = |place: &str, blocks: Option<&Value>| {
            for (i, b) in blocks
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if b.get("cache_control").is_some() {
                    found.push(format!("{place}[{i}]"));
                }
            }
        };
        scan("tools", body.get("tools"));
        scan("system", body.get("system"));
        for (m, message) in body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            scan(&format!("messages[{m}]"), message.get("content"));
        }
        found
    }

    /// A Codex-shaped turn: instructions, tools, a user request, then tool calls and results.
    fn tool_loop() -> Value {
        json!({
            "tools": [{"name": "shell", "input_schema": {"type": "object"}},
                      {"name": "apply_patch", "input_schema": {"type": "object"}}],
            "system": [{"type": "text", "text": "You are Codex."}],
            "messages": [
                {"role": "user", "content": "fix the build"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "look", "signature": "sig"},
                    {"type": "tool_use", "id": "t1", "name": "shell", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t2", "name": "shell", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t2", "content": "done"},
                    {"type": "text", "text": ""}]},
            ]
        })
    }

    #[test]
    fn a_tool_loop_gets_the_system_the_newest_turn_and_the_previous_user_turn() {
        let mut b = body(tool_loop());
        place_breakpoints(&mut b);
        // the empty text block is skipped; tools are covered by the system prompt's mark
        assert_eq!(marks(&b), ["system[0]", "messages[2][0]", "messages[4][0]"]);
        assert_eq!(
            b["system"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
    }

    #[test]
    fn without_a_system_prompt_the_last_tool_and_a_string_turn_become_blocks() {
        let mut b = body(json!({
            "tools": [{"name": "a"}, {"name": "b"}],
            "messages": [{"role": "user", "content": "hello"}]
        }));
        place_breakpoints(&mut b);
        assert_eq!(marks(&b), ["tools[1]", "messages[0][0]"]);
        assert_eq!(
            b["messages"][0]["content"],
            json!([{"type": "text", "text": "hello", "cache_control": {"type": "ephemeral"}}])
        );
    }

    #[test]
    fn a_client_that_marked_its_own_keeps_them() {
        let mut b = body(tool_loop());
        b["messages"][0]["content"] = json!([{"type": "text", "text": "fix", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]);
        let before = b.clone();
        place_breakpoints(&mut b);
        assert_eq!(b, before);
    }

    #[test]
    fn thinking_is_never_marked_and_nothing_to_mark_is_fine() {
        let mut b = body(json!({"messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]}
        ]}));
        place_breakpoints(&mut b);
        assert_eq!(marks(&b), ["messages[0][0]"]);
        let mut empty = body(json!({"messages": []}));
        place_breakpoints(&mut empty);
        assert!(marks(&empty).is_empty());
    }

    #[test]
    fn the_setting_reads_as_documented() {
        let parse = |s: &str| serde_json::from_str::<PromptCache>(s).ok();
        assert_eq!(parse("\"auto\""), Some(PromptCache::Auto));
        assert_eq!(parse("\"off\""), Some(PromptCache::Off));
        assert_eq!(parse("\"on\""), None);
        assert_eq!(PromptCache::default(), PromptCache::Auto);
    }
}
