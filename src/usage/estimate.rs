//! Token estimates with a real BPE tokenizer, for answers whose provider reported no usage
//! (a cut stream, a client that left) and for count_tokens on non-Anthropic models.

/// Tokens added per message for role and framing (OpenAI's documented chat overhead).
const PER_MESSAGE_OVERHEAD: u64 = 4;
/// Longest text run through the tokenizer; beyond it a count is bytes / 4. 2 MiB is about
/// half a million tokens, past every model's context window, where precision buys nothing;
/// the cap bounds what one count costs: at this size about 20 ms of a core for prose, 1.5 s
/// for a single word with no spaces (one BPE piece, the costly kind).
const MAX_TOKENIZED_BYTES: usize = 2 * 1024 * 1024;

use super::tokenizers::table;
pub(crate) use super::tokenizers::{encoding_for, Encoding};

/// Tokens in `text` under `encoding`, special-token markers counted as plain text (0 for
/// empty text; bytes / 4 beyond [`MAX_TOKENIZED_BYTES`]). CPU-heavy on large texts: call it
/// through [`super::offload`] on the request path.
pub(crate) fn tokens(encoding: Encoding, text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    match table(encoding) {
        Some(bpe) if text.len() <= MAX_TOKENIZED_BYTES => bpe.count(text) as u64,
        _ => (text.len() as u64).div_ceil(4),
    }
}

/// Tokens in `text` for `model`'s encoding; see [`tokens`].
pub fn count(model: &str, text: &str) -> u64 {
    tokens(encoding_for(model), text)
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

    /// Counts of OpenAI's reference tokenizer (tiktoken) for texts where the encodings or the
    /// pre-tokenizer's rules differ: CJK, accents and typographic quotes, code with a run of
    /// newlines, whitespace runs before a newline and tabs, and a special-token marker, which
    /// user text carries as plain characters.
    #[test]
    fn counts_match_the_reference_tokenizer() {
        let cases = [
            ("日本語のテキスト、そして中文文本。", 11, 15),
            ("naïve café — “quotes” 1234567 x²", 14, 14),
            ("fn main() {\n    println!(\"hi\");\n}\n\n\n", 10, 10),
            ("  trailing spaces   \n\t\ttabs", 7, 7),
            ("<|endoftext|> is text here", 10, 10),
        ];
        for (text, o200k, cl100k) in cases {
            assert_eq!(tokens(Encoding::O200k, text), o200k, "o200k {text:?}");
            assert_eq!(tokens(Encoding::Cl100k, text), cl100k, "cl100k {text:?}");
        }
    }

    #[test]
    fn cl100k_only_for_the_families_built_on_it() {
        for model in [
            "gpt-4",
            "gpt-4-turbo",
            "gpt-4-0613",
            "GPT-3.5-turbo",
            "text-embedding-3-small",
            "text-embedding-ada-002",
        ] {
            assert_eq!(encoding_for(model), Encoding::Cl100k, "{model}");
        }
        for model in [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-5",
            "gpt-6.2-sol",
            "o3",
            "claude-opus-4-8",
            "gemini-2.5-pro",
            "text-embedding-004",
        ] {
            assert_eq!(encoding_for(model), Encoding::O200k, "{model}");
        }
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
