//! Identifiers the gateway makes up: request ids (time-ordered, see [`request_id`]), and
//! message and tool ids for translated answers (random when the upstream sent none, made safe
//! from the upstream's otherwise).
//!
//! Random bits come from the thread-local generator (ChaCha, seeded from the OS), as 32 hex
//! digits: unique across instances without coordination, and no `getrandom` syscall per id
//! (one per request showed in `strace` under load). Secrets (`keys::new_secret`) come from
//! the OS generator directly.

/// 32 random hex digits.
pub fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A new request id: `req_` and the 32 hex digits of a UUIDv7 (RFC 9562): the Unix time in
/// milliseconds, then 74 random bits. The usage ledgers keep every id in a unique index; a
/// random id lands on a random leaf page of it, so each record dirtied a page of its own (in
/// SQLite's WAL and checkpoints, in PostgreSQL's WAL as full-page images), while ids that grow
/// with time are appended at the index's end. Still unique across instances without
/// coordination (74 random bits within a millisecond), and no `getrandom` syscall per id.
pub fn request_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let id =
        uuid::Builder::from_unix_timestamp_millis(millis, &rand::random::<[u8; 10]>()).into_uuid();
    format!("req_{}", id.simple())
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

    /// The ledgers keep request ids in a unique index (SQLite and PostgreSQL): ids that grow
    /// with time land at the index's end, random ones on a random page each.
    #[test]
    fn request_ids_grow_with_time_and_keep_their_shape() {
        let mut made = Vec::new();
        for _ in 0..20 {
            made.push(super::request_id());
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        for id in &made {
            let digits = id.strip_prefix("req_").expect("prefix");
            assert_eq!(digits.len(), 32, "{id}");
            assert!(digits
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        }
        let mut sorted = made.clone();
        sorted.sort();
        assert_eq!(
            sorted, made,
            "ids made 2 ms apart sort in the order they were made"
        );
        assert_ne!(super::request_id(), super::request_id());
    }
}
