//! A Responses answer the gateway is about to store (see `super::conversation`): what the
//! relay needs to write it once the answer's response object has passed.

use std::sync::Arc;
use std::time::Duration;

use crate::ledger::StoredResponse;
use crate::metrics;
use crate::providers::responses::stored;
use crate::usage::ledger::LedgerHandle;

/// What the relay needs to store a translated answer as a response: everything but the
/// response object, which it reads from the answer.
pub struct PendingTurn {
    ledger: Arc<LedgerHandle>,
    key_id: String,
    previous_id: Option<String>,
    /// This request's input items (JSON array).
    input: String,
    retention: Duration,
}

impl std::fmt::Debug for PendingTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingTurn")
            .field("key_id", &self.key_id)
            .field("previous_id", &self.previous_id)
            .field("input_bytes", &self.input.len())
            .finish_non_exhaustive()
    }
}

impl PendingTurn {
    pub fn new(
        ledger: Arc<LedgerHandle>,
        key_id: String,
        previous_id: Option<String>,
        input: String,
        retention: Duration,
    ) -> Self {
        Self {
            ledger,
            key_id,
            previous_id,
            input,
            retention,
        }
    }

    /// Stores the answer's response object, when `answer` holds it (the JSON answer, or the
    /// stream batch with its terminal event). Awaited before those bytes go out, so a
    /// follow-up sent the moment the answer ends finds it. Returns whether it was found: the
    /// turn is done then.
    pub async fn store_from(&self, answer: &[u8], stream: bool, request_id: &str) -> bool {
        let Some((id, response)) = stored::final_object(answer, stream) else {
            return false;
        };
        let now = crate::clock::unix_ms();
        let record = StoredResponse {
            id,
            key_id: self.key_id.clone(),
            previous_id: self.previous_id.clone(),
            created_ms: now,
            expires_ms: now
                .saturating_add(u64::try_from(self.retention.as_millis()).unwrap_or(u64::MAX)),
            input: self.input.clone(),
            response,
        };
        let written = match self.ledger.get().await {
            Ok(ledger) => ledger.put_response(&record).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            metrics::RESPONSES_NOT_STORED.inc();
            log::error!(
                "request {request_id}: response {} not stored, a continuation of it will be 404: {e}",
                record.id
            );
        }
        true
    }
}
