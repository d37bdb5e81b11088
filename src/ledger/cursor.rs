//! The paging cursor: where the previous page ended, in the order pages are read (newest
//! first by timestamp, then by packed request id, both descending). The next page starts
//! strictly after it, so records with equal timestamps are neither skipped nor repeated.
//!
//! Opaque to clients: base64url (no padding) of the timestamp (8 bytes, big-endian) and the
//! 16-byte packed id, 32 characters, safe in a query string as is.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::LedgerError;

/// The position of the last record of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub timestamp_ms: i64,
    pub id: [u8; 16],
}

const LEN: usize = 24;

impl Cursor {
    pub fn encode(&self) -> String {
        let mut raw = [0u8; LEN];
        raw[..8].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        raw[8..].copy_from_slice(&self.id);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Reads a cursor made by [`Self::encode`]; anything else is [`LedgerError::BadCursor`].
    pub fn decode(text: &str) -> Result<Self, LedgerError> {
        let raw = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| LedgerError::BadCursor("not base64url".into()))?;
        if raw.len() != LEN {
            return Err(LedgerError::BadCursor(format!(
                "{} bytes, not {LEN}",
                raw.len()
            )));
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[..8]);
        let timestamp_ms = i64::from_be_bytes(ts);
        if timestamp_ms < 0 {
            return Err(LedgerError::BadCursor("negative timestamp".into()));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&raw[8..]);
        Ok(Self { timestamp_ms, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_url_safe() {
        let c = Cursor {
            timestamp_ms: 1_733_000_000_123,
            id: [0xfb; 16],
        };
        let text = c.encode();
        assert_eq!(text.len(), 32);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(Cursor::decode(&text), Ok(c));
    }

    #[test]
    fn anything_else_is_a_bad_cursor() {
        let good = Cursor {
            timestamp_ms: 5,
            id: [1; 16],
        }
        .encode();
        let negative = URL_SAFE_NO_PAD.encode([0xffu8; LEN]);
        for bad in [
            "",
            "not a cursor",
            &good[..31],
            &format!("{good}AA"),
            &good.replace('A', "+"),
            &negative,
        ] {
            assert!(
                matches!(Cursor::decode(bad), Err(LedgerError::BadCursor(_))),
                "{bad:?}"
            );
        }
    }
}
