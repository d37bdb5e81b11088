//! Client-supplied text made safe to keep: cut to a bound before it is stored, logged,
//! traced or used in a key, and escaped where a line-oriented log would let it forge lines.

use std::borrow::Cow;
use std::fmt::Write;

/// Longest client-supplied name (a requested model, a response id) the gateway keeps in a
/// usage record, a log line, a span or a Redis key. Real model names are under 100 bytes;
/// a longer one is refused before it is routed, and what is recorded of it is cut here.
pub const MAX_CLIENT_NAME: usize = 256;

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// [`cut`] to [`MAX_CLIENT_NAME`], owned, with `…` appended when something was cut so that a
/// reader knows the name is not whole.
pub fn bounded_name(s: &str) -> String {
    let kept = cut(s, MAX_CLIENT_NAME);
    if kept.len() == s.len() {
        s.to_string()
    } else {
        format!("{kept}…")
    }
}

/// `s` with control characters, whitespace and backslashes escaped (`\n`, `\x1b`, `\x20`,
/// `\\`), so that a client's text in a space-separated log line can neither start a new
/// line nor pose as another field. Text without them is borrowed as is.
pub fn escape_for_log(s: &str) -> Cow<'_, str> {
    let needs = |c: char| c.is_control() || c.is_whitespace() || c == '\\';
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if needs(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(cut("abc", 10), "abc");
        assert_eq!(cut("abcdef", 3), "abc");
        // 'é' is two bytes: a cut in its middle drops it whole
        assert_eq!(cut("aé", 2), "a");
        let long = "m".repeat(2 << 20);
        assert_eq!(bounded_name(&long).len(), MAX_CLIENT_NAME + "…".len());
        assert!(bounded_name(&long).ends_with('…'));
        assert_eq!(bounded_name("gpt-4o"), "gpt-4o");
    }

    #[test]
    fn log_escapes_cannot_start_a_line_or_a_field() {
        assert!(matches!(escape_for_log("gpt-4o"), Cow::Borrowed(_)));
        assert_eq!(
            escape_for_log("x\nreq_1 POST status=200\u{1b}[2J\\ \u{2028}"),
            "x\\nreq_1\\x20POST\\x20status=200\\x1b[2J\\\\\\x20\\u{2028}"
        );
    }
}
