//! The helpers both sides share, and the OpenAI → Anthropic → OpenAI round trip.

use serde_json::{json, Value};

use super::*;

// ---- helpers --------------------------------------------------------------------------------

#[test]
fn tool_ids_keep_only_safe_characters() {
    assert_eq!(sanitize_tool_id("call_AbC-9"), "call_AbC-9");
    assert_eq!(sanitize_tool_id("fc:1.2/é"), "fc_1_2__");
    let id = synthesize_tool_id();
    assert!(id.starts_with("toolu_") && sanitize_tool_id(&id) == id);
}

// ---- round trip: OpenAI → Anthropic → OpenAI ------------------------------------------------

#[test]
fn openai_to_anthropic_to_openai_keeps_messages_and_tools() {
    let original = json!({
        "model": "alias",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
            {"role": "user", "content": [
                {"type": "text", "text": "And this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "max_tokens": 300,
        "temperature": 0.5,
        "stop": ["END"],
        "user": "u1",
    });
    let original_chat =
        crate::providers::chat::ChatRequest::parse(original.to_string().as_bytes()).unwrap();
    let anthropic =
        upstream::request::from_chat(&original_chat, "claude", upstream::cache::PromptCache::Off)
            .unwrap();
    let back: Value =
        serde_json::to_value(client::request::to_chat(&anthropic, "gpt").unwrap()).unwrap();
    assert_eq!(back["model"], "gpt");
    assert_eq!(
        back["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
            {"role": "user", "content": [
                {"type": "text", "text": "And this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
        ])
    );
    assert_eq!(back["tools"], original["tools"]);
    assert_eq!(back["tool_choice"], "required");
    assert_eq!(back["parallel_tool_calls"], false);
    for key in ["max_tokens", "temperature", "stop", "user"] {
        assert_eq!(back[key], original[key], "{key}");
    }
}
