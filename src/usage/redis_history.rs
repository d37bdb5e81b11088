//! The usage history in Redis, shared by every instance: a stream per key capped at
//! `history_per_key` (`XADD cai:usage:{k_…} MAXLEN ~ N`), plus per-day totals per key
//! (`cai:usage:{k_…}:day:YYYYMMDD`, a hash of requests, tokens and micro-USD, and the same
//! per model as `m:{model}:{field}`), kept [`KEEP_DAYS`] days. One pipeline per batch (per slot
//! on a cluster: a key's stream and day hashes share its hash tag); a read is one
//! `XREVRANGE` of the page and one pipeline of the key's day hashes (one slot).

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
        // every command names its key, which carries the key id's hash tag: one pipeline on
        // a single Redis, one per key's slot on a cluster
        let mut commands: Vec<(String, redis::Cmd)> = Vec::new();
        // per-day totals are summed per batch first: one HINCRBY per field, key and day (and
        // model), not per record
        let mut totals: HashMap<(String, String), Totals> = HashMap::new();
        for r in batch {
            let json = serde_json::to_string(r).map_err(|e| e.to_string())?;
            let key = stream_key(&r.key_id);
            let mut xadd = redis::cmd("XADD");
            xadd.arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.cap)
                .arg("*")
                .arg("record")
                .arg(json);
            commands.push((key, xadd));
            totals
                .entry((r.key_id.clone(), day(r.timestamp_ms)))
                .or_default()
                .add_record(r);
        }
        for ((key_id, day), t) in &totals {
            let key = day_key(key_id, day);
            let mut hincr = |field: &str, n: u64| {
                let mut c = redis::cmd("HINCRBY");
                c.arg(&key).arg(field).arg(n);
                commands.push((key.clone(), c));
            };
            for (field, n) in Sums::FIELDS.iter().zip(t.total.values()) {
                hincr(field, n);
            }
            for (model, sums) in &t.by_model {
                for (field, n) in Sums::FIELDS.iter().zip(sums.values()) {
                    hincr(&model_field(model, field), n);
                }
            }
            let mut expire = redis::cmd("EXPIRE");
            expire.arg(&key).arg(KEEP_DAYS * 86_400);
            commands.push((key, expire));
        }
        self.redis
            .per_slot("usage write", commands)
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
