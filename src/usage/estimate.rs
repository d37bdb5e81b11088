//! Token estimates with a real BPE tokenizer, for answers whose provider reported no usage
//! (a cut stream, a client that left) and for count_tokens on non-Anthropic models.

/// Tokens added per message for role and framing (OpenAI's documented chat overhead).
const PER_MESSAGE_OVERHEAD: u64 = 4;
/// Longest text run through the tokenizer; beyond it a count is bytes / 4. 2 MiB is about
/// half a million tokens, past every model's context window, where precision buys nothing;
/// the cap bounds what one count costs: at this size about 20 ms of a core for prose, 1.5 s
/// for a single word with no spaces (one BPE piece, the costly kind).
const MAX_TOKENIZED_BYTES: usize = 2 * 1024 * 1024;

/// The two BPE encodings the gateway counts with. Each table is built once per process and
/// shared by every caller (cut-stream estimates, count_tokens, Gemini embeddings); see
/// [`super::tokenizers`] for when.
///
/// The `tiktoken` crate is used rather than `tiktoken-rs`: it gives the same tokens (checked on
/// about 19,000 texts, this repository's and multilingual ones), counts 2 MiB of text in about
/// 20 ms where `tiktoken-rs` takes 180-290 ms, and holds its vocabulary in one byte arena with
/// an open-addressing index instead of a map entry and a `Vec` per token, three times over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Encoding {
    /// Every OpenAI model since GPT-4o; the approximation for models whose tokenizer is not
    /// public (Claude, Gemini).
    O200k,
    /// GPT-4 before 4o, GPT-3.5, and OpenAI's text-embedding-3 and ada-002 models.
    Cl100k,
}

/// Tokens in `text` under `encoding`, special-token markers counted as plain text (0 for
/// empty text; bytes / 4 beyond [`MAX_TOKENIZED_BYTES`]). CPU-heavy on large texts: call it
/// through [`super::offload`] on the request path.
pub(crate) fn tokens(encoding: Encoding, text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    match super::tokenizers::table(encoding) {
        Some(bpe) if text.len() <= MAX_TOKENIZED_BYTES => bpe.count(text) as u64,
        _ => (text.len() as u64).div_ceil(4),
    }
}

/// The encoding of a model: cl100k for the families OpenAI built on it (GPT-4 before 4o,
/// GPT-3.5, the text-embedding-3 and ada-002 embeddings), o200k for everything else: every
/// OpenAI model since GPT-4o, and the approximation for models whose tokenizer is not public
/// (Claude, Gemini). So a gateway that serves current models builds one encoding, not two.
pub(crate) fn encoding_for(model: &str) -> Encoding {
    let m = model.to_ascii_lowercase();
    let gpt4_before_4o = m
        .strip_prefix("gpt-4")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'));
    if gpt4_before_4o
        || m.starts_with("gpt-3.5")
        || m.starts_with("text-embedding-3")
        || m.starts_with("text-embedding-ada")
    {
        Encoding::Cl100k
    } else {
        Encoding::O200k
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
