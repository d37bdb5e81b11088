//! The usage history in Redis, shared by every instance: a stream per key capped at
//! `history_per_key` (`XADD cai:usage:{k_…} MAXLEN ~ N`), plus per-day totals per key
//! (`cai:usage:{k_…}:day:YYYYMMDD`, a hash of requests, tokens and micro-USD, and the same
//! per model as `m:{model}:{field}`), kept [`KEEP_DAYS`] days. One pipeline per batch; a
//! read is one `XREVRANGE` of the page and one pipeline of the day hashes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::sink::{Page, UsageStore};
use super::totals::{
    add_field, day_of, days_touched, model_field, Sums, Totals, DAY_MS, KEEP_DAYS,
};
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

fn stream_key(key_id: &str) -> String {
    format!("cai:usage:{{{key_id}}}")
}

fn day_key(key_id: &str, day: &str) -> String {
    format!("cai:usage:{{{key_id}}}:day:{day}")
}

/// `YYYYMMDD` (UTC) of a day number (days since 1970-01-01).
fn day_name(day: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(day.saturating_mul(DAY_MS));
    humantime::format_rfc3339_seconds(t).to_string()[..10].replace('-', "")
}

/// `YYYYMMDD` (UTC) of a Unix-millisecond time.
fn day(timestamp_ms: u64) -> String {
    day_name(day_of(timestamp_ms))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[async_trait]
impl UsageStore for RedisHistory {
    async fn append(&self, batch: &[UsageRecord]) -> Result<(), String> {
        let mut pipe = redis::pipe();
        // per-day totals are summed per batch first: one HINCRBY per field, key and day (and
        // model), not per record
        let mut totals: HashMap<(String, String), Totals> = HashMap::new();
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
            totals
                .entry((r.key_id.clone(), day(r.timestamp_ms)))
                .or_default()
                .add_record(r);
        }
        for ((key_id, day), t) in &totals {
            let key = day_key(key_id, day);
            for (field, n) in Sums::FIELDS.iter().zip(t.total.values()) {
                pipe.cmd("HINCRBY").arg(&key).arg(*field).arg(n).ignore();
            }
            for (model, sums) in &t.by_model {
                for (field, n) in Sums::FIELDS.iter().zip(sums.values()) {
                    let field = model_field(model, field);
                    pipe.cmd("HINCRBY").arg(&key).arg(field).arg(n).ignore();
                }
            }
            pipe.cmd("EXPIRE")
                .arg(&key)
                .arg(KEEP_DAYS * 86_400)
                .ignore();
        }
        self.redis
            .pipeline::<()>("usage write", pipe)
            .await
            .map_err(|e| e.to_string())
    }

    /// One `XREVRANGE … COUNT limit+1` over the stream ids of the range: ids are the times
    /// the records were stored, within milliseconds of their own timestamps, which are
    /// checked again. Only the first `limit` entries are parsed; the one past them only
    /// says whether there are more.
    async fn query(
        &self,
        key_id: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Page, String> {
        if to_ms <= from_ms || limit == 0 {
            return Ok(Page::default());
        }
        let end = if to_ms == u64::MAX {
            "+".to_string()
        } else {
            // ids of milliseconds before `to` (an id with only the time means every sequence)
            (to_ms - 1).to_string()
        };
        let start = if from_ms == 0 {
            "-".to_string()
        } else {
            from_ms.to_string()
        };
        let read =
            redis::Cmd::xrevrange_count(stream_key(key_id), end, start, limit.saturating_add(1));
        let entries: Vec<(String, Vec<(String, String)>)> = self
            .redis
            .command("usage read", read)
            .await
            .map_err(|e| e.to_string())?;
        let has_more = entries.len() > limit;
        let records = entries
            .into_iter()
            .take(limit)
            .filter_map(|(_, fields)| {
                fields
                    .into_iter()
                    .find(|(f, _)| f == "record")
                    .and_then(|(_, json)| serde_json::from_str::<UsageRecord>(&json).ok())
            })
            .filter(|r| r.timestamp_ms >= from_ms && r.timestamp_ms < to_ms)
            .collect();
        Ok(Page { records, has_more })
    }

    /// One pipeline of `HGETALL` over the day hashes the range touches, within the days
    /// Redis keeps (at most [`KEEP_DAYS`] + 2 hashes, whatever the range).
    async fn totals(&self, key_id: &str, from_ms: u64, to_ms: u64) -> Result<Totals, String> {
        let mut totals = Totals::default();
        let Some((first, last)) = days_touched(from_ms, to_ms) else {
            return Ok(totals);
        };
        let today = day_of(now_ms());
        let (first, last) = (
            first.max(today.saturating_sub(KEEP_DAYS)),
            last.min(today + 1),
        );
        if first > last {
            return Ok(totals);
        }
        let mut pipe = redis::pipe();
        for d in first..=last {
            pipe.cmd("HGETALL").arg(day_key(key_id, &day_name(d)));
        }
        let days: Vec<HashMap<String, u64>> = self
            .redis
            .pipeline("usage totals", pipe)
            .await
            .map_err(|e| e.to_string())?;
        for day in &days {
            for (field, n) in day {
                add_field(&mut totals, field, *n);
            }
        }
        Ok(totals)
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
