//! What translators stamp on the answers they build: creation times and ids.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch: OpenAI's `created`, the Responses API's `created_at`.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `id` with every character outside `[A-Za-z0-9_-]` replaced by `_`: the characters every
/// format's ids allow (Anthropic enforces them on tool ids; clients echo ids back), so an id
/// made from an upstream's is valid everywhere and maps the same way each time.
pub(crate) fn safe_id(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-' => c,
            _ => '_',
        })
        .collect()
}
