//! Concurrent requests per key (`max_inflight`), counted in this instance.
//!
//! Per instance on purpose: a count shared through Redis would need a decrement that
//! survives a crashed instance (leases, expiry), and concurrency is a property of the
//! instance's own sockets and memory, which is what this limit protects. With N instances
//! behind a load balancer a key may hold up to N × `max_inflight`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Requests in flight per key id (only keys with a `max_inflight` are tracked).
#[derive(Debug, Default)]
pub struct KeyInflight {
    counts: Mutex<HashMap<String, u32>>,
}

/// One request's place among its key's in-flight requests; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<KeyInflight>,
    key_id: String,
}

impl KeyInflight {
    /// A slot for `key_id` if it has fewer than `max` requests in flight; `None` otherwise.
    pub fn try_enter(self: &Arc<Self>, key_id: &str, max: u32) -> Option<Slot> {
        let mut counts = self.counts.lock().ok()?;
        let count = counts.entry(key_id.to_string()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            owner: Arc::clone(self),
            key_id: key_id.to_string(),
        })
    }

    /// Requests in flight for `key_id` now.
    pub fn count(&self, key_id: &str) -> u32 {
        self.counts
            .lock()
            .map(|c| c.get(key_id).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.owner.counts.lock() {
            if let Some(count) = counts.get_mut(&self.key_id) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&self.key_id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_n_plus_first_is_refused_until_one_ends() {
        let inflight = Arc::new(KeyInflight::default());
        let a = inflight.try_enter("k", 2).unwrap();
        let _b = inflight.try_enter("k", 2).unwrap();
        assert!(inflight.try_enter("k", 2).is_none());
        assert!(inflight.try_enter("other", 2).is_some(), "per key");
        drop(a);
        assert_eq!(inflight.count("k"), 1);
        assert!(inflight.try_enter("k", 2).is_some());
    }
}
