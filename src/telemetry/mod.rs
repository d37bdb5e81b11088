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

use async_trait::async_trait;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::TelemetryConfig;

/// How long one export may take before the batch is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Spans held while the collector is slow; past this, new spans are dropped.
const MAX_QUEUE: usize = 8192;

/// The running trace pipeline: a tracer for request spans, and the provider that batches
/// and exports them.
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
        let provider = SdkTracerProvider::builder()
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

    /// The background service that sends what is queued when the server shuts down.
    pub fn flusher(self: &Arc<Self>, grace_period: Duration) -> Flusher {
        Flusher {
            telemetry: self.clone(),
            grace_period,
        }
    }
}

/// Exports the queued spans at shutdown: once at the signal, and again (closing the
/// pipeline) after the grace period, when the last requests have ended. On a thread of its
/// own: both calls block, and the runtimes are being torn down meanwhile.
pub struct Flusher {
    telemetry: Arc<Telemetry>,
    grace_period: Duration,
}

#[async_trait]
impl BackgroundService for Flusher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // an error means the sender is gone: the server is stopping either way
        let _ = shutdown.changed().await;
        let telemetry = self.telemetry.clone();
        let grace = self.grace_period;
        let spawned = std::thread::Builder::new()
            .name("otlp-flush".into())
            .spawn(move || {
                if let Err(e) = telemetry.provider.force_flush() {
                    log::warn!("trace export at shutdown: {e}");
                }
                std::thread::sleep(grace);
                if let Err(e) = telemetry.provider.shutdown() {
                    log::debug!("trace pipeline shutdown: {e}");
                }
            });
        if let Err(e) = spawned {
            log::warn!("trace flush at shutdown not started: {e}");
        }
    }
}

/// Sets the log format and, when `[telemetry]` names an endpoint, starts the trace pipeline
/// and its flush at shutdown. `None`: tracing is off and nothing of it runs.
pub fn install(
    config: Option<&TelemetryConfig>,
    log_format: crate::config::LogFormat,
    grace_period: Duration,
    server: &mut pingora::server::Server,
) -> pingora::Result<Option<Arc<Telemetry>>> {
    logger::set_json(log_format == crate::config::LogFormat::Json);
    let Some(t) = config else {
        return Ok(None);
    };
    let telemetry = Telemetry::start(t)
        .map_err(|e| pingora::Error::explain(pingora::ErrorType::InternalError, e))?;
    let grace = grace_period;
    server.add_service(pingora::services::background::background_service(
        "trace flush",
        telemetry.flusher(grace),
    ));
    log::info!("traces to {} as service {}", t.traces_url(), t.service_name);
    Ok(Some(telemetry))
}
