//! Usage accounting: token counts read from answers ([`meter`]), their price
//! ([`pricing`]), the tokenizer estimate when a provider reports none ([`estimate`]), and the
//! ledger every record goes to ([`ledger`]: the spool, the shipper, the store) and is read
//! from ([`api`]).

pub mod api;
pub mod estimate;
pub mod ledger;
pub mod meter;
pub mod offload;
pub mod pricing;
pub mod spools;
pub mod tokenizers;

use serde::{Deserialize, Serialize};

/// Tokens of one request. `prompt` includes `cached` (OpenAI's convention) and Anthropic's
/// cache writes ([`CacheWrites`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
}

/// The prompt tokens of one request that Anthropic wrote to its prompt cache, by cache
/// lifetime: billed above the input rate (1.25× and 2×), so they are counted apart. They
/// are part of [`Usage::prompt`], never in addition to it. Kept beside `Usage` rather than
/// in it so that a `Usage` built by hand (an estimate) needs no change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheWrites {
    /// Written to the 5-minute cache (Anthropic's default lifetime).
    pub m5: u64,
    /// Written to the 1-hour cache.
    pub h1: u64,
}

impl CacheWrites {
    /// Every cache-write token.
    pub fn total(&self) -> u64 {
        self.m5.saturating_add(self.h1)
    }
}

/// The billing record of one request: what the spool and the ledger hold and the usage API
/// lists.
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
    /// Prompt tokens written to Anthropic's prompt cache (part of `prompt_tokens`, billed at
    /// the cache-write rates).
    #[serde(default)]
    pub cache_write_tokens: u64,
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
    /// The client's earlier reasoning could not go back to the provider (an expired or
    /// dropped thinking block), so the model answered this turn without it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reasoning_dropped: bool,
    /// Error label, when the request failed.
    pub error: Option<String>,
    /// Unix time in milliseconds when the request ended.
    pub timestamp_ms: u64,
}
