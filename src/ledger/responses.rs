//! Responses the gateway stores itself: the conversation state of the Responses API
//! (`store`, `previous_response_id`, `GET`/`DELETE /v1/responses/{id}`, `…/input_items`) for
//! models it translates, which store nothing upstream.
//!
//! They live in the usage ledger's store (SQLite or PostgreSQL) beside the records, so every
//! instance sharing the store sees every response the moment it is written: the gateway
//! writes a response before the bytes that end its answer go out, so a follow-up sent the
//! instant the answer ends finds it. Every read names the key: another key's response is
//! absent, exactly as an unknown id is.

use async_trait::async_trait;

use super::LedgerError;

/// Most responses a conversation chain is followed through (`previous_response_id` links):
/// far past any real agent session, and a bound on what one request can make the store read.
pub const MAX_CHAIN: usize = 1000;

/// One stored response: what its request added to the conversation and what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// `resp_…`, made by the gateway.
    pub id: String,
    /// The key that made it: the only one that may read, continue or delete it.
    pub key_id: String,
    /// The response it continued, if any.
    pub previous_id: Option<String>,
    /// Unix milliseconds.
    pub created_ms: u64,
    /// Unix milliseconds after which it is gone (reads skip it, retention deletes it).
    pub expires_ms: u64,
    /// This request's input items, as a JSON array (each with an `id`).
    pub input: String,
    /// The response object as the client received it (its `output` included), as JSON.
    pub response: String,
}

#[async_trait]
pub trait ResponseStore: Send + Sync {
    /// Stores a response (one with the same id is replaced).
    async fn put_response(&self, response: &StoredResponse) -> Result<(), LedgerError>;
    /// The key's response `id`, unless it expired by `now_ms`.
    async fn response(
        &self,
        key_id: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<StoredResponse>, LedgerError>;
    /// The conversation that ends with the key's response `id`: it and the responses it
    /// continues, oldest first, at most [`MAX_CHAIN`] of them (the newest kept). `None` when
    /// `id` itself is absent, expired or another key's; the chain stops early at a link that
    /// is (a deleted or expired earlier turn), as the API's own does.
    async fn conversation(
        &self,
        key_id: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<Vec<StoredResponse>>, LedgerError>;
    /// Deletes the key's response `id`; whether there was one (unexpired) to delete.
    async fn delete_response(
        &self,
        key_id: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<bool, LedgerError>;
    /// Deletes every response expired by `now_ms`; how many.
    async fn purge_responses(&self, now_ms: u64) -> Result<u64, LedgerError>;
}
