//! Signatures on the reasoning state the emulator hands out (Anthropic's thinking
//! `signature` and `redacted_thinking.data`, Gemini's `thoughtSignature`), so that the
//! emulator can tell, when a client sends that state back, whether it came back unmodified.
//!
//! A signature is HMAC-SHA256 over the signed bytes with [`SIGNING_KEY`], standard base64
//! (padded). The key is a constant, the same in every emulator process and instance, so a
//! signature one emulator instance hands out verifies on another (a test that fails a
//! conversation over from one deployment to another keeps working), and answers are
//! deterministic. Nothing here builds a signature for a caller: tests get signatures only
//! from answers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The HMAC key of every emulator signature (a constant: see the module doc), one SHA-256
/// block long so it is used as is.
const SIGNING_KEY: &[u8; 64] = b"cheapai-emulator reasoning-state signature key, fixed, version 1";

/// Length of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

fn mac_over(signed: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new(SIGNING_KEY.into());
    mac.update(signed);
    mac
}

/// base64(HMAC-SHA256(key, signed)).
pub(crate) fn sign(signed: &[u8]) -> String {
    STANDARD.encode(mac_over(signed).finalize().into_bytes())
}

/// True when `signature` is [`sign`]`(signed)` (constant-time comparison of the tag).
pub(crate) fn verify(signed: &[u8], signature: &str) -> bool {
    STANDARD
        .decode(signature)
        .is_ok_and(|tag| mac_over(signed).verify_slice(&tag).is_ok())
}

/// An opaque token carrying `payload`: base64(payload ‖ HMAC-SHA256(key, payload)).
pub(crate) fn seal(payload: &[u8]) -> String {
    let tag = mac_over(payload).finalize().into_bytes();
    STANDARD.encode([payload, tag.as_slice()].concat())
}

/// True when `token` is [`seal`] of some payload, i.e. it was not altered.
pub(crate) fn unseal_verifies(token: &str) -> bool {
    let Ok(bytes) = STANDARD.decode(token) else {
        return false;
    };
    let Some(split) = bytes.len().checked_sub(TAG_LEN) else {
        return false;
    };
    let (payload, tag) = bytes.split_at(split);
    mac_over(payload).verify_slice(tag).is_ok()
}

/// Words of the user's text a reasoning text quotes.
const ABOUT_WORDS: usize = 5;

/// The deterministic reasoning text of both formats: `"Thinking about: "` + the first 5
/// words of `user_text` (single spaces), or `"Thinking about the request"` when it has none.
pub(crate) fn thinking_about(user_text: &str) -> String {
    let words: Vec<&str> = user_text.split_whitespace().take(ABOUT_WORDS).collect();
    if words.is_empty() {
        "Thinking about the request".to_string()
    } else {
        format!("Thinking about: {}", words.join(" "))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_over_the_signed_bytes() {
        let sig = sign(b"Thinking about: hi");
        assert_eq!(sig.len(), 44, "32 bytes, padded base64");
        assert!(verify(b"Thinking about: hi", &sig));
        assert!(!verify(b"Thinking about: hi!", &sig));
        let mut tampered = sig.clone().into_bytes();
        tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
        assert!(!verify(
            b"Thinking about: hi",
            &String::from_utf8(tampered).unwrap()
        ));
        assert!(!verify(b"Thinking about: hi", "not base64!"));
        assert!(!verify(b"Thinking about: hi", ""));
    }

    #[test]
    fn reasoning_text_quotes_the_first_five_words() {
        assert_eq!(thinking_about(" a  b c d e f"), "Thinking about: a b c d e");
        assert_eq!(thinking_about(" "), "Thinking about the request");
    }

    #[test]
    fn sealed_tokens_verify_until_altered() {
        let token = seal(b"redacted");
        assert!(unseal_verifies(&token));
        let mut bytes = STANDARD.decode(&token).unwrap();
        bytes[0] ^= 1;
        assert!(!unseal_verifies(&STANDARD.encode(&bytes)));
        assert!(
            !unseal_verifies(&STANDARD.encode([0u8; 8])),
            "shorter than a tag"
        );
        assert!(!unseal_verifies("%%%"));
    }
}
