//! Token estimates with a real BPE tokenizer, for answers whose provider reported no usage
//! (a cut stream, a client that left) and for count_tokens on non-Anthropic models.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

/// Tokens added per message for role and framing (OpenAI's documented chat overhead).
const PER_MESSAGE_OVERHEAD: u64 = 4;
/// Longest text run through the tokenizer; beyond it a count is bytes / 4. 2 MiB is about
/// half a million tokens, past every model's context window, where precision buys nothing
/// and a tokenizer pass costs a core for a good part of a second.
pub(crate) const MAX_TOKENIZED_BYTES: usize = 2 * 1024 * 1024;

fn o200k() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref()
}

fn cl100k() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::cl100k_base().ok()).as_ref()
}

/// The encoding of a model family: o200k for the GPT-4o/4.1/5 and o-series, cl100k for
/// everything else (older GPTs, and an approximation for Claude and Gemini, whose
/// tokenizers are not public).
fn encoding_for(model: &str) -> Option<&'static CoreBPE> {
    let m = model.to_ascii_lowercase();
    let o200k_family = m.starts_with("gpt-4o")
        || m.starts_with("gpt-4.1")
        || m.starts_with("gpt-5")
        || m.starts_with("chatgpt-4o")
        || (m.starts_with('o') && m.chars().nth(1).is_some_and(|c| c.is_ascii_digit()));
    if o200k_family {
        o200k()
    } else {
        cl100k()
    }
}

/// Tokens in `text` for `model`'s encoding (0 for empty text; bytes / 4 beyond
/// [`MAX_TOKENIZED_BYTES`]). CPU-heavy on large texts: call it through [`super::offload`] on
/// the request path.
pub fn count(model: &str, text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    if text.len() > MAX_TOKENIZED_BYTES {
        return (text.len() as u64).div_ceil(4);
    }
    match encoding_for(model) {
        Some(bpe) => bpe.encode_with_special_tokens(text).len() as u64,
        None => (text.len() as u64).div_ceil(4),
    }
}

/// Prompt tokens of an OpenAI or Anthropic request body: every message's text (string
/// contents, text parts, tool call arguments and results), the system prompt and tool
/// definitions, plus a per-message overhead.
pub fn prompt_tokens(model: &str, body: &[u8]) -> u64 {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return 0;
    };
    let mut text = String::new();
    collect_text(&v["system"], &mut text);
    let messages = v["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for m in messages {
        collect_text(&m["content"], &mut text);
        for call in m["tool_calls"].as_array().into_iter().flatten() {
            collect_text(&call["function"]["arguments"], &mut text);
        }
    }
    if !v["tools"].is_null() {
        text.push_str(&v["tools"].to_string());
    }
    collect_text(&v["input"], &mut text);
    count(model, &text) + PER_MESSAGE_OVERHEAD * messages.len() as u64
}

/// Appends the human text inside a content value: a string, or the `text`/`content`/`input`
/// of content blocks, recursively.
fn collect_text(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_text(i, out)),
        serde_json::Value::Object(o) => {
            for key in ["text", "content", "partial_json"] {
                if let Some(x) = o.get(key) {
                    collect_text(x, out);
                }
            }
            if let Some(input) = o.get("input") {
                out.push_str(&input.to_string());
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_the_model_family_encoding() {
        assert_eq!(count("gpt-4o", "hello world"), 2);
        assert_eq!(count("gpt-4", "hello world"), 2);
        assert_eq!(count("gpt-4o", ""), 0);
        assert!(
            count(
                "claude-3-5-sonnet",
                "The quick brown fox jumps over the lazy dog"
            ) >= 9
        );
    }

    #[test]
    fn huge_texts_are_estimated_from_their_size() {
        let text = "ab ".repeat(MAX_TOKENIZED_BYTES / 3 + 1);
        assert_eq!(count("gpt-4o", &text), (text.len() as u64).div_ceil(4));
    }

    #[test]
    fn prompt_covers_system_messages_parts_and_tools() {
        let openai = br#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"hello world"}]}]}"#;
        let n = prompt_tokens("gpt-4o", openai);
        assert_eq!(n, count("gpt-4o", "Be brief.\nhello world\n") + 8);
        let anthropic = br#"{"system":[{"type":"text","text":"Be brief."}],"messages":[{"role":"user","content":"hello world"}],"tools":[{"name":"get_weather","input_schema":{}}]}"#;
        assert!(prompt_tokens("claude-3-5-sonnet", anthropic) > n - 8);
    }
}
