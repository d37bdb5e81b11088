//! Identifiers the gateway makes up: request ids, and message and tool ids for translated
//! answers (random when the upstream sent none, made safe from the upstream's otherwise).
//!
//! 128 random bits from the thread-local generator (ChaCha, seeded from the OS), as 32 hex
//! digits: unique across instances without coordination, and no `getrandom` syscall per id
//! (one per request showed in `strace` under load). Secrets (`keys::new_secret`) come from
//! the OS generator directly.

/// 32 random hex digits.
pub fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
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

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_32_hex_digits_and_differ() {
        let (a, b) = (super::random_hex(), super::random_hex());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
