//! Which key made each response a provider stores for the gateway.
//!
//! With native Responses passthrough (`store: true`, the API's default) conversations live
//! in the operator's single provider account: any key that learned a `resp_…` id could
//! continue, read or delete another tenant's conversation. The gateway records the key (and
//! the provider) of every stored response as its answer passes, and answers any use of an id
//! another key made, or one it never saw, as the API answers an unknown id: 404.
//!
//! Kept in process (bounded) and, with Redis, in Redis as well (`cai:resp:{id}`, expiring with
//! the provider's own retention), so every instance knows every response. The record is
//! written before the answer that carries the id is complete, so a follow-up sent the moment
//! it ends finds it.

use std::sync::Arc;
use std::time::Duration;

use crate::expiring::ExpiringRecords;
use crate::state::{Redis, StateError};

/// How long a stored response stays continuable: OpenAI keeps them 30 days.
pub const RETENTION: Duration = Duration::from_secs(30 * 86_400);
/// Most ownership records kept in process (the rest are in Redis, when configured).
const IN_PROCESS: usize = 100_000;

/// Who made a stored response, and where it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub key_id: String,
    /// The provider (config name) that stores it.
    pub provider: String,
}

/// The ownership records, by response id.
#[derive(Debug)]
pub struct ResponseOwners(ExpiringRecords);

impl ResponseOwners {
    pub fn new(redis: Option<Arc<Redis>>) -> Self {
        Self(ExpiringRecords::new(
            "response owner",
            "cai:resp:",
            IN_PROCESS,
            redis,
        ))
    }

    /// Records that `owner` made the stored response `id`.
    pub async fn record(&self, id: &str, owner: Owner) {
        let value = format!("{} {}", owner.key_id, owner.provider);
        self.0.put(id, value, RETENTION).await;
    }

    /// Who made `id`; `None` when no instance recorded it (or it has expired).
    pub async fn owner(&self, id: &str) -> Result<Option<Owner>, StateError> {
        Ok(self.0.get(id).await?.and_then(|v| {
            let (key_id, provider) = v.split_once(' ')?;
            Some(Owner {
                key_id: key_id.to_string(),
                provider: provider.to_string(),
            })
        }))
    }

    /// The response was deleted at its provider.
    pub async fn forget(&self, id: &str) {
        self.0.remove(id).await;
    }
}

/// The id of a stored response in its answer: the `id` of a Responses object, or of the
/// `response` in a stream's first events (`response.created`). Only ids of the usual shape
/// are taken (they become a Redis key and part of an upstream path).
pub fn response_id(answer: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Object {
        id: Option<String>,
        response: Option<Box<Object>>,
    }
    let object = |json: &[u8]| serde_json::from_slice::<Object>(json).ok();
    let found = if answer.starts_with(b"{") {
        object(answer).and_then(|o| o.id)
    } else {
        answer
            .split(|b| *b == b'\n')
            .filter_map(|line| line.strip_prefix(b"data:"))
            .filter_map(|data| object(data.trim_ascii()))
            .find_map(|o| o.response.and_then(|r| r.id))
    };
    found.filter(|id| crate::endpoint::is_response_id(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_json_answers_and_the_first_stream_events() {
        assert_eq!(
            response_id(br#"{"id":"resp_abc123","object":"response","output":[]}"#).as_deref(),
            Some("resp_abc123")
        );
        let stream = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_s1\",\"status\":\"in_progress\"},\"sequence_number\":0}\n\n";
        assert_eq!(response_id(stream).as_deref(), Some("resp_s1"));
        assert_eq!(response_id(br#"{"id":"resp_../../x"}"#), None);
        assert_eq!(response_id(b"event: ping\ndata: {}\n\n"), None);
    }

    #[tokio::test]
    async fn owners_are_known_in_process_without_redis() {
        let owners = ResponseOwners::new(None);
        assert_eq!(owners.owner("resp_1").await.unwrap(), None);
        let owner = Owner {
            key_id: "k_a".into(),
            provider: "openai".into(),
        };
        owners.record("resp_1", owner.clone()).await;
        assert_eq!(owners.owner("resp_1").await.unwrap(), Some(owner));
        owners.forget("resp_1").await;
        assert_eq!(owners.owner("resp_1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn every_instance_knows_an_owner_through_redis() {
        let server = crate::state::tests::redis_server();
        let redis = || Arc::new(Redis::new(&server.1, Duration::from_secs(2)).unwrap());
        let (a, b) = (
            ResponseOwners::new(Some(redis())),
            ResponseOwners::new(Some(redis())),
        );
        let owner = Owner {
            key_id: "k_a".into(),
            provider: "openai".into(),
        };
        a.record("resp_2", owner.clone()).await;
        assert_eq!(b.owner("resp_2").await.unwrap(), Some(owner));
        a.forget("resp_2").await;
        assert_eq!(b.owner("resp_2").await.unwrap(), None);
    }
}
