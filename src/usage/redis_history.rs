//! The usage history in Redis, shared by every instance: a stream per key capped at
//! `history_per_key` (`XADD cai:usage:{k_…} MAXLEN ~ N`), plus per-day totals per key
//! (`cai:usage:{k_…}:day:YYYYMMDD`, a hash of requests, tokens and micro-USD). One pipeline
//! per batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;

use super::sink::UsageStore;
use super::UsageRecord;
use crate::state::Redis;

/// Usage history kept in Redis.
pub struct RedisHistory {
    redis: Arc<Redis>,
    cap: usize,
}

impl RedisHistory {
    pub fn new(redis: Arc<Redis>, cap: usize) -> Self {
        Self { redis, cap }
    }
}

/// The fields of a per-day totals hash.
const TOTAL_FIELDS: [&str; 5] = [
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_micro_usd",
];

fn stream_key(key_id: &str) -> String {
    format!("cai:usage:{{{key_id}}}")
}

/// `YYYYMMDD` (UTC) of a Unix-millisecond time.
fn day(timestamp_ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(timestamp_ms);
    humantime::format_rfc3339_seconds(t).to_string()[..10].replace('-', "")
}

#[async_trait]
impl UsageStore for RedisHistory {
    async fn append(&self, batch: &[UsageRecord]) -> Result<(), String> {
        let mut pipe = redis::pipe();
        // per-day totals are summed per batch first: one HINCRBY per field and key, not per record
        let mut totals: HashMap<(String, String), [u64; 5]> = HashMap::new();
        for r in batch {
            let json = serde_json::to_string(r).map_err(|e| e.to_string())?;
            pipe.cmd("XADD")
                .arg(stream_key(&r.key_id))
                .arg("MAXLEN")
                .arg("~")
                .arg(self.cap)
                .arg("*")
                .arg("record")
                .arg(json)
                .ignore();
            let t = totals
                .entry((r.key_id.clone(), day(r.timestamp_ms)))
                .or_default();
            for (slot, n) in t.iter_mut().zip([
                1,
                r.prompt_tokens,
                r.completion_tokens,
                r.cached_tokens,
                r.cost_micro_usd,
            ]) {
                *slot += n;
            }
        }
        for ((key_id, day), t) in &totals {
            let key = format!("cai:usage:{{{key_id}}}:day:{day}");
            for (field, n) in TOTAL_FIELDS.iter().zip(t) {
                pipe.cmd("HINCRBY").arg(&key).arg(*field).arg(*n).ignore();
            }
            pipe.cmd("EXPIRE").arg(&key).arg(400 * 86_400).ignore();
        }
        self.redis
            .pipeline::<()>("usage write", pipe)
            .await
            .map_err(|e| e.to_string())
    }

    async fn query(
        &self,
        key_id: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<UsageRecord>, String> {
        let key = stream_key(key_id);
        let end = if to_ms == u64::MAX {
            "+".to_string()
        } else {
            to_ms.to_string()
        };
        let start = if from_ms == 0 {
            "-".to_string()
        } else {
            from_ms.to_string()
        };
        // Stream ids are insertion times, a little after the records' own timestamps:
        // read a margin past `to`, then filter on the record.
        let read = redis::Cmd::xrevrange_count(key, end, start, limit.saturating_add(64));
        let entries: Vec<(String, Vec<(String, String)>)> = self
            .redis
            .command("usage read", read)
            .await
            .map_err(|e| e.to_string())?;
        Ok(entries
            .into_iter()
            .filter_map(|(_, fields)| {
                fields
                    .into_iter()
                    .find(|(f, _)| f == "record")
                    .and_then(|(_, json)| serde_json::from_str::<UsageRecord>(&json).ok())
            })
            .filter(|r| r.timestamp_ms >= from_ms && r.timestamp_ms < to_ms)
            .take(limit)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_is_utc_yyyymmdd() {
        assert_eq!(day(0), "19700101");
        assert_eq!(day(1_795_713_356_000), "20261126");
    }
}
