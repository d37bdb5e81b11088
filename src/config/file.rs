//! The on-disk TOML schema, exactly as operators write it.
//!
//! Kept apart from the runtime types so the file format can stay stable and strict
//! (`deny_unknown_fields` catches typos) while the runtime side is free to precompute.
//! Fields whose value is checked after parsing are `Spanned`, so an error can name the line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::providers::anthropic::upstream::cache::PromptCache;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: FileServer,
    pub state: Option<FileState>,
    pub usage: Option<FileUsage>,
    pub emulator: Option<FileEmulator>,
    pub telemetry: Option<FileTelemetry>,
    pub log: Option<FileLog>,
    #[serde(default)]
    pub providers: BTreeMap<String, Spanned<FileProvider>>,
    #[serde(default)]
    pub models: BTreeMap<String, Spanned<FileModel>>,
    #[serde(default)]
    pub keys: Vec<FileKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    pub listen: Spanned<String>,
    pub admin_listen: Option<Spanned<String>>,
    pub threads: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub grace_period_seconds: Option<u64>,
    pub graceful_shutdown_timeout_seconds: Option<u64>,
    pub admin_token_env: Option<Spanned<String>>,
    pub deadline_ms: Option<u64>,
    pub client_body_timeout_ms: Option<u64>,
    pub client_write_timeout_ms: Option<u64>,
    /// Unix socket a new process (`run --upgrade`) takes the listening sockets over.
    pub upgrade_sock: Option<String>,
    /// HTTPS on `listen`.
    pub tls: Option<Spanned<FileTls>>,
}

/// `[server] tls = { cert_file, key_file }`: PEM files.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileState {
    pub redis_url: Option<Spanned<String>>,
    /// Seed nodes of a Redis Cluster (instead of `redis_url`).
    pub redis_cluster: Option<Spanned<Vec<Spanned<String>>>>,
    pub timeout_ms: Option<u64>,
    pub on_redis_error: Option<FileOnRedisError>,
    pub key_cache_ttl_ms: Option<u64>,
    /// How long a budget reservation is held when nothing settles it.
    pub reservation_ttl_seconds: Option<Spanned<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOnRedisError {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUsage {
    /// The local write-ahead spool every record lands in first.
    pub spool_dir: Option<Spanned<String>>,
    /// The spool's cap on unshipped records, in MiB.
    pub spool_max_mb: Option<Spanned<u64>>,
    /// `sqlite:PATH`: the embedded store.
    pub store: Option<Spanned<String>>,
    /// The variable holding a PostgreSQL URL (a secret: the file names only the variable).
    pub postgres_url_env: Option<Spanned<String>>,
    pub retention_days: Option<Spanned<u32>>,
    /// Keep the Responses API's conversations for translated models in the store.
    pub store_responses: Option<bool>,
    pub responses_retention_days: Option<Spanned<u32>>,
    /// Removed settings, named only to say what replaced them.
    pub jsonl_path: Option<Spanned<toml::Value>>,
    pub history_per_key: Option<Spanned<toml::Value>>,
}

/// `[telemetry]`: OpenTelemetry traces, off while `otlp_endpoint` is unset.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTelemetry {
    /// OTLP/HTTP base URL; spans go to `{otlp_endpoint}/v1/traces`.
    pub otlp_endpoint: Option<Spanned<String>>,
    pub service_name: Option<String>,
    /// How long finished spans wait to be exported in one batch.
    pub export_delay_ms: Option<u64>,
    /// Share of new traces recorded (0.0 ..= 1.0); a client's sampling decision is kept.
    pub sample_ratio: Option<Spanned<f64>>,
}

/// `[log]`: the access log's format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLog {
    pub format: Option<FileLogFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileLogFormat {
    Text,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEmulator {
    pub listen: Spanned<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileProviderKind {
    Openai,
    OpenaiCompatible,
    Anthropic,
    Gemini,
    Azure,
    Bedrock,
    Vertex,
}

/// Vertex AI's `publisher` setting: which format every model of the provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilePublisher {
    Google,
    Anthropic,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProvider {
    pub kind: Spanned<FileProviderKind>,
    /// Required, except on kinds `bedrock` and `vertex`, whose region names their endpoint.
    pub base_url: Option<Spanned<String>>,
    pub api_key_env: Option<Spanned<String>>,
    pub connect_timeout_ms: Option<u64>,
    pub first_byte_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub breaker: Option<Spanned<FileBreaker>>,
    /// Whether the host serves `/v1/responses` itself (OpenAI does; most compatible hosts
    /// don't): then Responses requests pass through, else they are translated to chat.
    pub native_responses: Option<bool>,
    /// Offer HTTP/2 (by TLS ALPN) and multiplex streams over few connections; default: on for
    /// an `https://` base URL.
    pub http2: Option<bool>,
    /// PEM roots trusted for this provider besides the system's.
    pub ca_file: Option<Spanned<String>>,
    /// Azure OpenAI's `api-version` query parameter: required for kind `azure`, refused on
    /// the others.
    pub api_version: Option<Spanned<String>>,
    /// The region a Bedrock provider calls and signs for, or Vertex AI's region (like
    /// `us-east5` or `global`): required for kinds `bedrock` and `vertex`, refused on the others.
    pub region: Option<Spanned<String>>,
    /// Vertex AI's Google Cloud project (kind `vertex` only, required there).
    pub project: Option<Spanned<String>>,
    /// The variable naming the service-account key file (kind `vertex` only; default
    /// `GOOGLE_APPLICATION_CREDENTIALS`).
    pub credentials_file_env: Option<Spanned<String>>,
    /// Forces the publisher of every model (kind `vertex` only; default: by model name).
    pub publisher: Option<Spanned<FilePublisher>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBreaker {
    pub failures: u32,
    pub open_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileModel {
    /// One deployment (the short form); exclusive with `deployments`.
    pub provider: Option<Spanned<String>>,
    pub upstream_model: Option<Spanned<String>>,
    pub deployments: Option<Spanned<Vec<FileDeployment>>>,
    pub price: Option<FilePrice>,
    pub limits: Option<FileLimits>,
    pub retries: Option<Spanned<u32>>,
    pub deadline_ms: Option<u64>,
    pub retry_non_stream_timeouts: Option<bool>,
    /// Send a request again when its whole answer arrived but could not be read or
    /// translated (the provider billed that answer).
    pub retry_unreadable_answers: Option<bool>,
    /// The most output tokens the model writes: what a request without `max_tokens` may
    /// cost, held against a key's budget until it is settled.
    pub max_output_tokens: Option<Spanned<u64>>,
    /// Prompt-cache breakpoints placed for OpenAI-format clients on Anthropic models.
    pub prompt_cache: Option<PromptCache>,
    #[serde(default)]
    pub fallbacks: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDeployment {
    pub provider: Spanned<String>,
    pub upstream_model: Option<String>,
    pub weight: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePrice {
    pub input: Spanned<f64>,
    pub output: Spanned<f64>,
    pub cached_input: Option<Spanned<f64>>,
    /// Anthropic 5-minute cache writes; default 1.25 × `input`.
    pub cache_write_5m: Option<Spanned<f64>>,
    /// Anthropic 1-hour cache writes; default 2 × `input`.
    pub cache_write_1h: Option<Spanned<f64>>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileKey {
    pub name: Spanned<String>,
    pub sha256: Spanned<String>,
    #[serde(default = "all_models")]
    pub models: Vec<String>,
    pub limits: Option<FileLimits>,
    pub budget_usd: Option<Spanned<f64>>,
    pub max_inflight: Option<u32>,
}

fn all_models() -> Vec<String> {
    vec!["*".to_string()]
}
