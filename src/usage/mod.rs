//! Usage accounting: token counts read from answers ([`meter`]), their price
//! ([`pricing`]), the tokenizer estimate when a provider reports none ([`estimate`]), and the
//! per-key history ([`sink`] writes it, [`api`] reads it).

pub mod api;
pub mod estimate;
pub mod meter;
pub mod offload;
pub mod pricing;
pub mod redis_history;
pub mod sink;

use serde::{Deserialize, Serialize};

/// Tokens of one request. `prompt` includes `cached` (OpenAI's convention).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
}

/// The billing record of one request: what the usage history, the JSONL log and the usage
/// API hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub request_id: String,
    pub key_id: String,
    /// The model that served: the name the client asked for, or the fallback model's name
    /// when a fallback served.
    pub model: String,
    /// The provider of the deployment that served (or was tried last); `-` when none was.
    pub provider: String,
    /// Upstream attempts made for this request (1 without retries; 0 when none was made).
    #[serde(default)]
    pub attempts: u32,
    pub endpoint: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    /// Integer micro-USD, so sums are exact.
    pub cost_micro_usd: u64,
    pub status: u16,
    pub duration_ms: u64,
    /// Time to first byte of the answer reaching the client.
    pub ttft_ms: Option<u64>,
    pub stream: bool,
    pub client_disconnected: bool,
    /// Token counts come from the gateway's tokenizer, not from the provider.
    pub estimated: bool,
    /// Error label, when the request failed.
    pub error: Option<String>,
    /// Unix time in milliseconds when the request ended.
    pub timestamp_ms: u64,
}
