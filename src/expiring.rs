//! Short records every instance must see: kept in process (bounded, oldest out first) and, with
//! Redis, in Redis as well, each expiring after its lifetime. What the gateway remembers on a
//! client's behalf between two requests (who made a stored response, the signed reasoning a
//! chat client dropped) lives here.
//!
//! A record is written before the answer it comes from is complete, so a follow-up sent the
//! moment that answer ends finds it on this instance; other instances read Redis.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::state::{Redis, StateError};

/// Records under one Redis key prefix.
pub struct ExpiringRecords {
    /// What the records are, for Redis errors and logs ("response owner").
    what: &'static str,
    /// Redis key prefix (`cai:resp:`).
    prefix: &'static str,
    /// Most records kept in process.
    capacity: usize,
    local: Mutex<Local>,
    redis: Option<Arc<Redis>>,
}

#[derive(Default)]
struct Local {
    by_key: HashMap<String, (String, Instant)>,
    order: VecDeque<String>,
}

impl std::fmt::Debug for ExpiringRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExpiringRecords({})", self.what)
    }
}

impl ExpiringRecords {
    pub fn new(
        what: &'static str,
        prefix: &'static str,
        capacity: usize,
        redis: Option<Arc<Redis>>,
    ) -> Self {
        Self {
            what,
            prefix,
            capacity,
            local: Mutex::default(),
            redis,
        }
    }

    /// Keeps `value` under `key` for `lifetime`. A Redis failure is logged: this instance
    /// still has the record, other instances will not find it.
    pub async fn put(&self, key: &str, value: String, lifetime: Duration) {
        if let Some(redis) = &self.redis {
            let mut set = redis::cmd("SET");
            set.arg(format!("{}{key}", self.prefix))
                .arg(&value)
                .arg("EX")
                .arg(lifetime.as_secs().max(1));
            if let Err(e) = redis.command::<()>(self.what, set).await {
                log::warn!("keeping a {}: {e}", self.what);
            }
        }
        if let Ok(mut local) = self.local.lock() {
            let Local { by_key, order } = &mut *local;
            by_key.insert(key.to_string(), (value, Instant::now() + lifetime));
            order.push_back(key.to_string());
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    by_key.remove(&old);
                }
            }
        }
    }

    /// The record under `key`; `None` when no instance kept it or it has expired.
    pub async fn get(&self, key: &str) -> Result<Option<String>, StateError> {
        let known = self.local.lock().ok().and_then(|l| {
            l.by_key
                .get(key)
                .filter(|(_, until)| Instant::now() < *until)
                .map(|(v, _)| v.clone())
        });
        if known.is_some() {
            return Ok(known);
        }
        let Some(redis) = &self.redis else {
            return Ok(None);
        };
        redis
            .command(self.what, redis::Cmd::get(format!("{}{key}", self.prefix)))
            .await
    }

    /// Forgets the record under `key` everywhere.
    pub async fn remove(&self, key: &str) {
        if let Ok(mut local) = self.local.lock() {
            local.by_key.remove(key);
        }
        if let Some(redis) = &self.redis {
            let del = redis::Cmd::del(format!("{}{key}", self.prefix));
            if let Err(e) = redis.command::<i64>(self.what, del).await {
                log::warn!("forgetting a {}: {e}", self.what);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_expire_and_the_oldest_leave_first() {
        let records = ExpiringRecords::new("test record", "cai:test:", 2, None);
        records.put("a", "1".into(), Duration::from_secs(60)).await;
        records.put("gone", "x".into(), Duration::ZERO).await;
        assert_eq!(records.get("a").await.unwrap().as_deref(), Some("1"));
        assert_eq!(records.get("gone").await.unwrap(), None);
        records.put("b", "2".into(), Duration::from_secs(60)).await;
        // capacity 2: "a" was the oldest
        assert_eq!(records.get("a").await.unwrap(), None);
        assert_eq!(records.get("b").await.unwrap().as_deref(), Some("2"));
        records.remove("b").await;
        assert_eq!(records.get("b").await.unwrap(), None);
    }
}
