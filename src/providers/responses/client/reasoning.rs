//! The `encrypted_content` of the reasoning items the gateway gives Responses clients: the
//! provider's signed reasoning (Anthropic's `thinking` and `redacted_thinking` blocks), sealed
//! into one opaque string the client keeps and sends back (Codex does, with `store: false` and
//! `include: ["reasoning.encrypted_content"]`), so the provider gets it back exactly as it was
//! issued, without the gateway keeping any state.
//!
//! The form is `cai1.` + unpadded base64url of the blocks' JSON array. It is not a secret: the
//! blocks are the provider's own and signed by it (the provider refuses a changed one); the
//! prefix tells the gateway's content from OpenAI's own, which it cannot read.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use serde_json::Value;

const PREFIX: &str = "cai1.";

/// The `encrypted_content` for these blocks.
pub fn seal<T: Serialize>(blocks: &[T]) -> String {
    let json = serde_json::to_string(blocks).unwrap_or_else(|_| "[]".to_string());
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
}

/// The blocks sealed in an `encrypted_content`, or `None` when it is not the gateway's (another
/// provider's, or changed on the way).
pub fn open(content: &str) -> Option<Vec<Value>> {
    let encoded = content.strip_prefix(PREFIX)?;
    let json = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    match serde_json::from_slice(&json).ok()? {
        Value::Array(blocks) if blocks.iter().all(Value::is_object) => Some(blocks),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_come_back_as_they_were_sealed_and_nothing_else_opens() {
        let blocks = vec![
            json!({"type": "thinking", "thinking": "a \"quoted\" thought\n", "signature": "c2ln+/="}),
            json!({"type": "redacted_thinking", "data": "ZGF0YQ=="}),
        ];
        let sealed = seal(&blocks);
        assert!(sealed.starts_with("cai1."));
        assert!(sealed[5..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(open(&sealed), Some(blocks));
        // OpenAI's own encrypted reasoning, a changed seal, a non-array
        assert_eq!(open("gAAAAABo-openai-ciphertext"), None);
        assert_eq!(open(&format!("{sealed}!")), None);
        assert_eq!(
            open(&format!("cai1.{}", URL_SAFE_NO_PAD.encode("{}"))),
            None
        );
    }
}
