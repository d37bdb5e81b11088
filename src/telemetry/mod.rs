//! What an operator sees of the gateway besides metrics: OpenTelemetry traces ([`trace`])
//! exported over OTLP/HTTP, and the access log as text or JSON lines ([`access`], written
//! through [`logger`]).
//!
//! Traces are off unless `[telemetry] otlp_endpoint` is set; then [`Telemetry`] owns the
//! SDK's tracer provider. Its batch processor queues finished spans and exports them from a
//! thread of its own with a blocking HTTP client, so no export work runs on Pingora's
//! runtimes and a slow or absent collector never delays a request (a full queue drops spans).

pub mod access;
pub mod logger;
pub mod trace;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;

use crate::config::TelemetryConfig;

/// How long one export may take before the batch is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Spans held while the collector is slow; past this, new spans are dropped.
const MAX_QUEUE: usize = 8192;

/// The running trace pipeline: a tracer for request spans, and the provider that batches
/// and exports them (and sends what is left when dropped).
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

impl Telemetry {
    /// Builds the OTLP/HTTP (protobuf) exporter for `{otlp_endpoint}/v1/traces` and the
    /// batch processor's thread.
    pub fn start(config: &TelemetryConfig) -> Result<Arc<Self>, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.traces_url())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("OTLP exporter for {}: {e}", config.traces_url()))?;
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(config.export_delay)
            .with_max_queue_size(MAX_QUEUE)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let sampler =
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_span_processor(processor)
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("cheapai-gateway");
        Ok(Arc::new(Self { provider, tracer }))
    }

    pub(crate) fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }
}

impl Telemetry {
    /// Sends the spans still queued now (before an early exit, which runs no destructor).
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            log::debug!("trace pipeline flush: {e}");
        }
    }
}

impl Drop for Telemetry {
    /// Sends the spans still queued. Pingora drops its services when it stops (after the
    /// grace period of a graceful shutdown), so the last requests' spans are not lost.
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            log::debug!("trace pipeline shutdown: {e}");
        }
    }
}

/// Sets the log format and, when `[telemetry]` names an endpoint, starts the trace pipeline.
/// `None`: tracing is off and nothing of it runs.
pub fn install(
    config: Option<&TelemetryConfig>,
    log_format: crate::config::LogFormat,
) -> pingora::Result<Option<Arc<Telemetry>>> {
    logger::set_json(log_format == crate::config::LogFormat::Json);
    let Some(t) = config else {
        return Ok(None);
    };
    let telemetry = Telemetry::start(t)
        .map_err(|e| pingora::Error::explain(pingora::ErrorType::InternalError, e))?;
    log::info!("traces to {} as service {}", t.traces_url(), t.service_name);
    Ok(Some(telemetry))
}
