//! Every Prometheus metric, defined once. Label values come from bounded sets only (catalog
//! model names, provider names, endpoint labels, status codes, error kinds), never from keys
//! or other user input.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};

use prometheus::{
    exponential_buckets, Counter, CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec,
    IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The registry `/metrics` renders.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// Latency buckets for LLM calls: 5 ms .. ~120 s.
fn latency_buckets() -> Vec<f64> {
    exponential_buckets(0.005, 2.0, 15).unwrap_or_default()
}

pub(crate) fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    if let Err(e) = REGISTRY.register(Box::new(c.clone())) {
        log::error!("metric registration failed: {e}");
    }
    c
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        IntCounterVec::new(Opts::new(name, help).namespace("cheapai"), labels)
            .unwrap_or_else(|_| unreachable_metric()),
    )
}

/// Metric definitions are constants; a failure to build one is a programming error caught
/// by the unit test below, never by a request.
#[allow(clippy::panic)]
pub(crate) fn unreachable_metric() -> ! {
    panic!("invalid metric definition")
}

pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "requests_total",
        "Requests by catalog model, provider, endpoint and final status.",
        &["model", "provider", "endpoint", "status"],
    )
});

pub static TOKENS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "tokens_total",
        "Tokens by model, provider and kind (prompt, completion, cached).",
        &["model", "provider", "kind"],
    )
});

pub static COST_USD: LazyLock<CounterVec> = LazyLock::new(|| {
    register(
        CounterVec::new(
            Opts::new("cost_usd_total", "Billed cost in USD by model.").namespace("cheapai"),
            &["model"],
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

pub static REQUEST_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new("request_duration_seconds", "Whole request duration.")
                .namespace("cheapai")
                .buckets(latency_buckets()),
            &["model", "provider"],
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

pub static TIME_TO_FIRST_TOKEN: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "time_to_first_token_seconds",
                "Time until the first answer byte reached the client.",
            )
            .namespace("cheapai")
            .buckets(latency_buckets()),
            &["model", "provider"],
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

/// Time per output token of streamed answers: the generation after the first token over
/// the tokens that followed it (OpenTelemetry's `gen_ai.server.time_per_output_token`).
pub static TIME_PER_OUTPUT_TOKEN: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "time_per_output_token_seconds",
                "Streamed answers with more than one output token: time from the first answer \
                 byte to the end, divided by the output tokens after the first.",
            )
            .namespace("cheapai")
            // 0.25 ms .. ~4 s per token
            .buckets(exponential_buckets(0.00025, 2.0, 15).unwrap_or_default()),
            &["model", "provider"],
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

/// Upstream attempts under way per provider (the load the balancer weighs); set at scrape.
pub static UPSTREAM_INFLIGHT: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "upstream_inflight",
                "Requests to each provider under way now (sent, answer not yet finished).",
            )
            .namespace("cheapai"),
            &["provider"],
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

pub static UPSTREAM_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "upstream_errors_total",
        "Provider failures by provider and reason.",
        &["provider", "reason"],
    )
});

/// Providers refusing the gateway's own key or account: each one needs the operator (a
/// revoked or mistyped provider key, an unpaid bill), so it gets a counter to alert on.
pub static PROVIDER_AUTH_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "provider_auth_failures_total",
        "Provider answers refusing the gateway's own credentials or account (401, 402, 403, \
         billing or quota), by provider.",
        &["provider"],
    )
});

pub static UPSTREAM_ATTEMPTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "upstream_attempts_total",
        "Upstream attempts by provider and outcome (ok, or the failure's reason).",
        &["provider", "outcome"],
    )
});

pub static UPSTREAM_RETRIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "upstream_retries_total",
        "Failed attempts that were followed by another attempt, by provider and reason.",
        &["provider", "reason"],
    )
});

pub static CIRCUIT_STATE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "circuit_state",
                "Worst circuit breaker state of a provider's deployments: 0 closed, 1 open (one or more), 2 half-open (probing).",
            )
            .namespace("cheapai"),
            &["provider"],
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

pub static DEPLOYMENT_CIRCUIT_STATE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "deployment_circuit_state",
                "Circuit breaker state per deployment (provider and the model name it is asked for): 0 closed, 1 open, 2 half-open.",
            )
            .namespace("cheapai"),
            &["provider", "model"],
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

pub static RATE_LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "rate_limited_total",
        "Requests refused by a limit, by scope.",
        &["scope"],
    )
});

pub static REASONING_DROPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "reasoning_dropped_total",
        "Tool-loop turns that asked for reasoning but went on without it: the provider's signed \
         reasoning of the turn before was neither sent back nor kept by the gateway.",
        &["model"],
    )
});

pub static INFLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::with_opts(
            Opts::new("inflight_requests", "Requests being served now.").namespace("cheapai"),
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

pub static RESPONSES_NOT_STORED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::with_opts(
            Opts::new(
                "responses_not_stored_total",
                "Translated Responses answers the gateway failed to store (the ledger's store \
                 refused or was down): a continuation of them is 404.",
            )
            .namespace("cheapai"),
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

pub static REDIS_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::with_opts(
            Opts::new("redis_errors_total", "Failed or timed-out Redis calls.")
                .namespace("cheapai"),
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

pub static USAGE_REJECTED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::with_opts(
            Opts::new(
                "usage_records_rejected_total",
                "Usage records the store refused as bad input, set aside in the spool \
                 directory's rejected.jsonl instead of stored.",
            )
            .namespace("cheapai"),
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

pub static USAGE_RECORDS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::with_opts(
            Opts::new("usage_records_total", "Usage records produced.").namespace("cheapai"),
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

/// The series a finished request of one deployment (catalog model × provider) records
/// into, looked up once and then kept with the deployment: a request would otherwise hash
/// its labels and search each metric's map about eight times.
#[derive(Default)]
pub struct RouteSeries(OnceLock<Series>);

/// The handles [`RouteSeries`] keeps. The two timing histograms only some requests observe
/// are made on first observation, so that `/metrics` lists no series nothing was measured in.
pub struct Series {
    model: String,
    provider: String,
    pub duration: Histogram,
    first_token: OnceLock<Histogram>,
    per_output_token: OnceLock<Histogram>,
    pub prompt_tokens: IntCounter,
    pub completion_tokens: IntCounter,
    pub cached_tokens: IntCounter,
    pub cost_usd: Counter,
}

impl Series {
    pub fn first_token(&self) -> &Histogram {
        self.first_token.get_or_init(|| {
            TIME_TO_FIRST_TOKEN.with_label_values(&[self.model.as_str(), self.provider.as_str()])
        })
    }

    pub fn per_output_token(&self) -> &Histogram {
        self.per_output_token.get_or_init(|| {
            TIME_PER_OUTPUT_TOKEN.with_label_values(&[self.model.as_str(), self.provider.as_str()])
        })
    }
}

impl RouteSeries {
    /// The series labelled `model` (the catalog entry) and `provider`; the labels are fixed
    /// per deployment, so the first caller's are everyone's.
    pub fn get(&self, model: &str, provider: &str) -> &Series {
        self.0.get_or_init(|| {
            let pair = [model, provider];
            Series {
                model: model.to_string(),
                provider: provider.to_string(),
                duration: REQUEST_DURATION.with_label_values(&pair),
                first_token: OnceLock::new(),
                per_output_token: OnceLock::new(),
                prompt_tokens: TOKENS.with_label_values(&[model, provider, "prompt"]),
                completion_tokens: TOKENS.with_label_values(&[model, provider, "completion"]),
                cached_tokens: TOKENS.with_label_values(&[model, provider, "cached"]),
                cost_usd: COST_USD.with_label_values(&[model]),
            }
        })
    }
}

impl std::fmt::Debug for RouteSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "RouteSeries(resolved)"
        } else {
            "RouteSeries(unused)"
        })
    }
}

/// A status code as a label, without formatting a `String` per request.
pub fn status_label(status: u16) -> std::borrow::Cow<'static, str> {
    static LABELS: LazyLock<Vec<String>> =
        LazyLock::new(|| (0..600).map(|s| s.to_string()).collect());
    match LABELS.get(usize::from(status)) {
        Some(label) => label.as_str().into(),
        None => status.to_string().into(),
    }
}

/// Connectors whose discarded pooled connections `cheapai_upstream_pool_unexpected_data_total`
/// adds up.
static POOL_SOURCES: std::sync::Mutex<Vec<Arc<AtomicU64>>> = std::sync::Mutex::new(Vec::new());

/// The one connection figure Pingora 0.9.1 keeps (it registers no metrics of its own):
/// pooled upstream connections its connector found holding unexpected data and threw away
/// instead of reusing. Read from the connectors' counters at scrape time.
struct PoolDiscards(prometheus::core::Desc);

impl prometheus::core::Collector for PoolDiscards {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.0]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let total: u64 = POOL_SOURCES
            .lock()
            .map(|s| s.iter().map(|c| c.load(Ordering::Relaxed)).sum())
            .unwrap_or_default();
        let mut counter = prometheus::proto::Counter::default();
        counter.set_value(total as f64);
        let mut metric = prometheus::proto::Metric::default();
        metric.set_counter(counter);
        let mut family = prometheus::proto::MetricFamily::default();
        family.set_name(self.0.fq_name.clone());
        family.set_help(self.0.help.clone());
        family.set_field_type(prometheus::proto::MetricType::COUNTER);
        family.set_metric(vec![metric]);
        vec![family]
    }
}

static POOL_DISCARDS: LazyLock<()> = LazyLock::new(|| {
    let desc = prometheus::core::Desc::new(
        "cheapai_upstream_pool_unexpected_data_total".into(),
        "Pooled upstream connections Pingora found holding unexpected data and discarded \
         instead of reusing."
            .into(),
        Vec::new(),
        std::collections::HashMap::new(),
    )
    .unwrap_or_else(|_| unreachable_metric());
    if let Err(e) = REGISTRY.register(Box::new(PoolDiscards(desc))) {
        log::error!("metric registration failed: {e}");
    }
});

/// Adds a connector's discarded pooled connections
/// (`Connector::unexpected_data_connection_counter`) to
/// `cheapai_upstream_pool_unexpected_data_total`.
pub fn watch_upstream_pool(counter: Arc<AtomicU64>) {
    LazyLock::force(&POOL_DISCARDS);
    if let Ok(mut sources) = POOL_SOURCES.lock() {
        sources.push(counter);
    }
}

/// Forces every metric into the registry, so `/metrics` lists them all from the start.
pub fn init() {
    LazyLock::force(&REQUESTS);
    LazyLock::force(&TOKENS);
    LazyLock::force(&COST_USD);
    LazyLock::force(&REQUEST_DURATION);
    LazyLock::force(&TIME_TO_FIRST_TOKEN);
    LazyLock::force(&TIME_PER_OUTPUT_TOKEN);
    LazyLock::force(&UPSTREAM_INFLIGHT);
    LazyLock::force(&POOL_DISCARDS);
    LazyLock::force(&UPSTREAM_ERRORS);
    LazyLock::force(&PROVIDER_AUTH_FAILURES);
    LazyLock::force(&UPSTREAM_ATTEMPTS);
    LazyLock::force(&UPSTREAM_RETRIES);
    LazyLock::force(&CIRCUIT_STATE);
    LazyLock::force(&DEPLOYMENT_CIRCUIT_STATE);
    LazyLock::force(&RATE_LIMITED);
    LazyLock::force(&INFLIGHT);
    LazyLock::force(&REDIS_ERRORS);
    LazyLock::force(&USAGE_REJECTED);
    LazyLock::force(&USAGE_RECORDS);
}

/// The Prometheus text exposition of every metric.
pub fn render() -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&REGISTRY.gather(), &mut out) {
        log::error!("metrics encoding failed: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_defined_and_rendered() {
        init();
        REQUESTS
            .with_label_values(&["gpt-4o", "emu", "chat_completions", "200"])
            .inc();
        let text = String::from_utf8(render()).unwrap();
        for name in [
            "cheapai_requests_total",
            "cheapai_inflight_requests",
            "cheapai_redis_errors_total",
            "cheapai_usage_records_total",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }
}
