//! Putting back the signed reasoning a chat client dropped (see [`crate::thinking`]), before
//! the request is translated for an Anthropic model.

use bytes::Bytes;
use serde_json::Value;

use crate::providers::chat::THINKING_BLOCKS;
use crate::thinking::ThinkingStore;

/// The chat `body` with the kept reasoning put back into its last tool-calling assistant
/// message, when reasoning is asked for, that message lacks it, and the gateway kept it for
/// this key; `None` otherwise (the body goes as it is).
pub(super) async fn restore(store: &ThinkingStore, key_id: &str, body: &Bytes) -> Option<Bytes> {
    let has = |needle: &str| memchr::memmem::find(body, needle.as_bytes()).is_some();
    if !has("\"reasoning_effort\"") || !has("\"tool_calls\"") || has(THINKING_BLOCKS) {
        return None;
    }
    let mut request: serde_json::Map<String, Value> = serde_json::from_slice(body).ok()?;
    let effort = request.get("reasoning_effort").and_then(Value::as_str);
    if effort.is_none_or(|e| e == "none") {
        return None;
    }
    let messages = request.get_mut("messages")?.as_array_mut()?;
    let role = |m: &Value| m.get("role").and_then(Value::as_str).map(str::to_owned);
    let last_assistant = messages
        .iter()
        .rposition(|m| role(m).as_deref() == Some("assistant"))?;
    let message = messages.get_mut(last_assistant)?;
    let call_id = message
        .get("tool_calls")?
        .as_array()?
        .first()?
        .get("id")?
        .as_str()?
        .to_string();
    let blocks = store.restore(key_id, &call_id).await?;
    message
        .as_object_mut()?
        .insert(THINKING_BLOCKS.into(), Value::Array(blocks));
    serde_json::to_vec(&request).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool_loop(effort: &str) -> Bytes {
        Bytes::from(
            json!({"model": "claude", "reasoning_effort": effort, "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "toolu_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "toolu_9", "content": "sunny"}]})
            .to_string(),
        )
    }

    #[tokio::test]
    async fn the_kept_reasoning_goes_back_into_the_calling_message_of_the_same_key_only() {
        let store = ThinkingStore::new(None);
        let blocks = json!([{"type": "thinking", "thinking": "t", "signature": "s"}]);
        store.keep("k_a", "toolu_9", &blocks.to_string()).await;
        let restored = restore(&store, "k_a", &tool_loop("high")).await.unwrap();
        let restored: Value = serde_json::from_slice(&restored).unwrap();
        assert_eq!(restored["messages"][1]["thinking_blocks"], blocks);
        assert_eq!(restored["messages"][1]["tool_calls"][0]["id"], "toolu_9");
        assert!(restore(&store, "k_b", &tool_loop("high")).await.is_none());
        assert!(restore(&store, "k_a", &tool_loop("none")).await.is_none());
    }
}
