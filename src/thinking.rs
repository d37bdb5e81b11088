//! Signed reasoning kept for chat clients that drop it.
//!
//! Anthropic requires the signed thinking of an answer back, unchanged, on the next turn of a
//! tool loop. A chat client that sends the assistant message back as it received it carries it
//! in `thinking_blocks`; most agent frameworks rebuild the message from the stream's deltas
//! (content and tool calls only) and lose it. So when a Claude answer with tool calls reaches a
//! chat client, the gateway keeps its signed blocks for [`LIFETIME`], under the key that asked
//! and the turn's first tool call id (clients keep the calls in order), and puts them back into
//! the assistant message whose first call has that id on the next turn: one record per turn,
//! however many calls it made. Never across keys: the key is part of every record's name.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::expiring::ExpiringRecords;
use crate::state::Redis;

/// How long a turn's signed reasoning is kept: an agent's tools run seconds to minutes between
/// two turns.
pub const LIFETIME: Duration = Duration::from_secs(3600);
/// Records kept in process (the rest are in Redis, when configured).
const IN_PROCESS: usize = 20_000;
/// The largest reasoning kept (its JSON): a longer one is not kept, and that turn goes on with
/// reasoning off, as for a client that dropped it.
pub const MAX_BYTES: usize = 256 * 1024;
/// Longest tool call id looked up or kept (provider ids are far shorter).
const MAX_CALL_ID: usize = 256;

/// The kept reasoning, by key id and tool call id.
#[derive(Debug)]
pub struct ThinkingStore(ExpiringRecords);

impl ThinkingStore {
    pub fn new(redis: Option<Arc<Redis>>) -> Self {
        Self(ExpiringRecords::new(
            "kept reasoning",
            "cai:think:",
            IN_PROCESS,
            redis,
        ))
    }

    /// Keeps `blocks` (a JSON array of thinking blocks) for the turn whose first tool call is
    /// `call_id`. Returns false when they were too large to keep.
    pub async fn keep(&self, key_id: &str, call_id: &str, blocks: &str) -> bool {
        if blocks.len() > MAX_BYTES || call_id.len() > MAX_CALL_ID {
            return false;
        }
        let name = record_name(key_id, call_id);
        self.0.put(&name, blocks.to_string(), LIFETIME).await;
        true
    }

    /// The blocks kept for the turn whose first tool call is `call_id`, asked by `key_id`. A Redis failure is
    /// logged and read as nothing kept (the turn goes on without reasoning).
    pub async fn restore(&self, key_id: &str, call_id: &str) -> Option<Vec<Value>> {
        if call_id.len() > MAX_CALL_ID {
            return None;
        }
        let kept = match self.0.get(&record_name(key_id, call_id)).await {
            Ok(kept) => kept?,
            Err(e) => {
                log::warn!("restoring kept reasoning: {e}");
                return None;
            }
        };
        match serde_json::from_str(&kept) {
            Ok(Value::Array(blocks)) => Some(blocks),
            _ => None,
        }
    }
}

/// `{key}:{call}`: the key's hash tag keeps a key's records in one Redis Cluster slot, as every
/// other per-key record.
fn record_name(key_id: &str, call_id: &str) -> String {
    format!("{{{key_id}}}:{call_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn kept_reasoning_is_found_by_its_key_and_call_only() {
        let store = ThinkingStore::new(None);
        let blocks = json!([{"type": "thinking", "thinking": "t", "signature": "s"}]);
        assert!(store.keep("k_a", "toolu_1", &blocks.to_string()).await);
        assert_eq!(
            store.restore("k_a", "toolu_1").await,
            blocks.as_array().cloned()
        );
        assert_eq!(store.restore("k_b", "toolu_1").await, None, "another key");
        assert_eq!(store.restore("k_a", "toolu_3").await, None);
        let huge = "x".repeat(MAX_BYTES + 1);
        assert!(!store.keep("k_a", "toolu_4", &huge).await);
        assert_eq!(store.restore("k_a", "toolu_4").await, None);
    }
}
