//! A usage record in the stores' narrow column types, shared by SQLite and PostgreSQL so both
//! accept and refuse exactly the same records.
//!
//! Counts get the narrowest SQL integer that holds every real value (an `int4` token count
//! allows 2 billion tokens per request, an `int2` status every HTTP status); a record beyond
//! them is refused as bad input naming its request id and the field, never truncated. The
//! four booleans and "has a ttft" share one `int2` of flags, so no column is ever NULL and
//! PostgreSQL rows need no null bitmap.

use super::request_id::PackedId;
use super::LedgerError;
use crate::usage::UsageRecord;

pub const FLAG_STREAM: i16 = 1;
pub const FLAG_CLIENT_DISCONNECTED: i16 = 2;
pub const FLAG_ESTIMATED: i16 = 4;
/// `ttft_ms` holds a value (else it is 0 and the record's `ttft_ms` is `None`).
pub const FLAG_HAS_TTFT: i16 = 8;
/// The request id is foreign: its text is in `rid_text` (else `rid_text` is empty and the
/// id is `req_` + the hex of `rid`). A flag rather than a NULL text, so rows stay NULL-free.
pub const FLAG_FOREIGN_ID: i16 = 16;
/// The record's `reasoning_dropped`.
pub const FLAG_REASONING_DROPPED: i16 = 32;

/// The columns of one record, its strings still as names (each store turns them into its
/// dictionary ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    pub timestamp_ms: i64,
    pub id: PackedId,
    pub key: &'a str,
    pub model: &'a str,
    pub provider: &'a str,
    pub endpoint: &'a str,
    pub error: Option<&'a str>,
    pub status: i16,
    pub attempts: i16,
    pub flags: i16,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub cached_tokens: i32,
    pub cache_write_tokens: i32,
    pub cost_micro_usd: i64,
    pub duration_ms: i32,
    pub ttft_ms: i32,
}

impl<'a> Row<'a> {
    pub fn from_record(r: &'a UsageRecord) -> Result<Self, LedgerError> {
        let field = |name: &str| {
            LedgerError::BadInput(format!(
                "record {}: {name} is out of the stored range",
                r.request_id
            ))
        };
        let flag = |on: bool, bit: i16| if on { bit } else { 0 };
        let id = PackedId::pack(&r.request_id);
        Ok(Self {
            timestamp_ms: i64::try_from(r.timestamp_ms).map_err(|_| field("timestamp_ms"))?,
            key: &r.key_id,
            model: &r.model,
            provider: &r.provider,
            endpoint: &r.endpoint,
            error: r.error.as_deref(),
            status: i16::try_from(r.status).map_err(|_| field("status"))?,
            attempts: i16::try_from(r.attempts).map_err(|_| field("attempts"))?,
            flags: flag(r.stream, FLAG_STREAM)
                | flag(r.client_disconnected, FLAG_CLIENT_DISCONNECTED)
                | flag(r.estimated, FLAG_ESTIMATED)
                | flag(r.reasoning_dropped, FLAG_REASONING_DROPPED)
                | flag(r.ttft_ms.is_some(), FLAG_HAS_TTFT)
                | flag(id.foreign.is_some(), FLAG_FOREIGN_ID),
            prompt_tokens: i32::try_from(r.prompt_tokens).map_err(|_| field("prompt_tokens"))?,
            completion_tokens: i32::try_from(r.completion_tokens)
                .map_err(|_| field("completion_tokens"))?,
            cached_tokens: i32::try_from(r.cached_tokens).map_err(|_| field("cached_tokens"))?,
            cache_write_tokens: i32::try_from(r.cache_write_tokens)
                .map_err(|_| field("cache_write_tokens"))?,
            cost_micro_usd: i64::try_from(r.cost_micro_usd).map_err(|_| field("cost_micro_usd"))?,
            duration_ms: i32::try_from(r.duration_ms).map_err(|_| field("duration_ms"))?,
            ttft_ms: i32::try_from(r.ttft_ms.unwrap_or(0)).map_err(|_| field("ttft_ms"))?,
            id,
        })
    }

    /// The `rid_text` column: a foreign id's text, else empty.
    pub fn id_text(&self) -> &str {
        self.id.foreign.as_deref().unwrap_or("")
    }
}

/// A stored row read back, its dictionary ids already turned into names by the query.
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub timestamp_ms: i64,
    pub id_bytes: [u8; 16],
    pub id_text: String,
    pub key: String,
    pub model: String,
    pub provider: String,
    pub endpoint: String,
    pub error: Option<String>,
    pub status: i16,
    pub attempts: i16,
    pub flags: i16,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub cached_tokens: i32,
    pub cache_write_tokens: i32,
    pub cost_micro_usd: i64,
    pub duration_ms: i32,
    pub ttft_ms: i32,
}

impl StoredRow {
    /// The record as it was inserted. Every stored value passed [`Row::from_record`], so the
    /// widening conversions cannot fail; a negative value (only a hand-edited table holds
    /// one) reads as 0.
    pub fn into_record(self) -> UsageRecord {
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        let id = PackedId {
            bytes: self.id_bytes,
            foreign: (self.flags & FLAG_FOREIGN_ID != 0).then_some(self.id_text),
        };
        UsageRecord {
            request_id: id.unpack(),
            key_id: self.key,
            model: self.model,
            provider: self.provider,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            endpoint: self.endpoint,
            prompt_tokens: u(self.prompt_tokens.into()),
            completion_tokens: u(self.completion_tokens.into()),
            cached_tokens: u(self.cached_tokens.into()),
            cache_write_tokens: u(self.cache_write_tokens.into()),
            cost_micro_usd: u(self.cost_micro_usd),
            status: u16::try_from(self.status).unwrap_or(0),
            duration_ms: u(self.duration_ms.into()),
            ttft_ms: (self.flags & FLAG_HAS_TTFT != 0).then(|| u(self.ttft_ms.into())),
            stream: self.flags & FLAG_STREAM != 0,
            client_disconnected: self.flags & FLAG_CLIENT_DISCONNECTED != 0,
            estimated: self.flags & FLAG_ESTIMATED != 0,
            reasoning_dropped: self.flags & FLAG_REASONING_DROPPED != 0,
            error: self.error,
            timestamp_ms: u(self.timestamp_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> UsageRecord {
        UsageRecord {
            request_id: "req_0123456789abcdef0123456789abcdef".into(),
            key_id: "k_1".into(),
            model: "gpt-4o".into(),
            provider: "openai".into(),
            attempts: 2,
            endpoint: "chat_completions".into(),
            prompt_tokens: 1000,
            completion_tokens: 20,
            cached_tokens: 300,
            cache_write_tokens: 7,
            cost_micro_usd: 123_456,
            status: 200,
            duration_ms: 900,
            ttft_ms: Some(0),
            stream: true,
            client_disconnected: false,
            estimated: true,
            reasoning_dropped: false,
            error: None,
            timestamp_ms: 1_733_000_000_000,
        }
    }

    fn round_trip(r: &UsageRecord) -> UsageRecord {
        let row = Row::from_record(r).unwrap_or_else(|e| panic!("{e}"));
        StoredRow {
            timestamp_ms: row.timestamp_ms,
            id_bytes: row.id.bytes,
            id_text: row.id_text().to_string(),
            key: row.key.into(),
            model: row.model.into(),
            provider: row.provider.into(),
            endpoint: row.endpoint.into(),
            error: row.error.map(str::to_string),
            status: row.status,
            attempts: row.attempts,
            flags: row.flags,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            cached_tokens: row.cached_tokens,
            cache_write_tokens: row.cache_write_tokens,
            cost_micro_usd: row.cost_micro_usd,
            duration_ms: row.duration_ms,
            ttft_ms: row.ttft_ms,
        }
        .into_record()
    }

    #[test]
    fn every_field_round_trips() {
        let r = sample();
        assert_eq!(round_trip(&r), r);
        let other = UsageRecord {
            ttft_ms: None,
            stream: false,
            client_disconnected: true,
            estimated: false,
            reasoning_dropped: true,
            error: Some("upstream_timeout".into()),
            request_id: "imported-7".into(),
            ..sample()
        };
        assert_eq!(round_trip(&other), other);
    }

    #[test]
    fn values_beyond_the_columns_are_bad_input() {
        let cases: [fn(&mut UsageRecord); 4] = [
            |r| r.prompt_tokens = u64::from(u32::MAX),
            |r| r.timestamp_ms = u64::MAX,
            |r| r.attempts = 40_000,
            |r| r.ttft_ms = Some(1 << 40),
        ];
        for set in cases {
            let mut r = sample();
            set(&mut r);
            match Row::from_record(&r) {
                Err(LedgerError::BadInput(m)) => assert!(m.contains(&r.request_id), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
