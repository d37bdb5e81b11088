//! `[telemetry]` and `[log]`: where traces go and how the access log is written.

use std::time::Duration;

use super::file::{FileConfig, FileLogFormat};
use super::Validator;

/// The OpenTelemetry batch processor's own default delay.
const DEFAULT_EXPORT_DELAY_MS: u64 = 5_000;

/// Traces are exported when this is set (`[telemetry] otlp_endpoint`).
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// OTLP/HTTP base URL, without a trailing slash.
    pub otlp_endpoint: String,
    /// `service.name` of every span.
    pub service_name: String,
    /// How long a finished span may wait for its batch to be sent.
    pub export_delay: Duration,
    /// Share of the traces the gateway starts that are recorded and exported; a trace a
    /// client started keeps the client's decision (`traceparent`'s sampled flag).
    pub sample_ratio: f64,
}

impl TelemetryConfig {
    /// Where spans are sent: `{otlp_endpoint}/v1/traces`.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.otlp_endpoint)
    }
}

/// The access log's format: today's text line, or one JSON object per line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Validator<'_> {
    /// `[telemetry]`: `None` (no exporter at all) unless `otlp_endpoint` is set.
    pub(super) fn telemetry(&mut self, raw: &FileConfig) -> Option<TelemetryConfig> {
        let t = raw.telemetry.as_ref()?;
        let endpoint = t.otlp_endpoint.as_ref()?;
        let sample_ratio = match &t.sample_ratio {
            None => 1.0,
            Some(r) if (0.0..=1.0).contains(r.get_ref()) => *r.get_ref(),
            Some(r) => {
                self.problem(r, "telemetry.sample_ratio", "must be between 0.0 and 1.0");
                1.0
            }
        };
        let url = endpoint.get_ref().trim_end_matches('/');
        if url.parse::<http::Uri>().is_err() || !url.starts_with("http://") {
            self.problem(
                endpoint,
                "telemetry.otlp_endpoint",
                "must be an http:// URL (an OpenTelemetry Collector's OTLP/HTTP port, e.g. http://127.0.0.1:4318); \
                 https is not supported: run a collector next to the gateway",
            );
            return None;
        }
        Some(TelemetryConfig {
            otlp_endpoint: url.to_string(),
            service_name: t
                .service_name
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "cheapai-gateway".to_string()),
            export_delay: Duration::from_millis(
                t.export_delay_ms.unwrap_or(DEFAULT_EXPORT_DELAY_MS).max(1),
            ),
            sample_ratio,
        })
    }
}

/// `[log] format`, text unless set.
pub(super) fn log_format(raw: &FileConfig) -> LogFormat {
    match raw.log.as_ref().and_then(|l| l.format) {
        Some(FileLogFormat::Json) => LogFormat::Json,
        Some(FileLogFormat::Text) | None => LogFormat::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const BASE: &str = "[server]\nlisten = \"127.0.0.1:8080\"\n";

    fn parse(extra: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(&format!("{BASE}{extra}"), "t.toml", &|_| None)
    }

    #[test]
    fn off_and_text_unless_configured() {
        let c = parse("").unwrap();
        assert_eq!(c.telemetry, None);
        assert_eq!(c.log_format, LogFormat::Text);
        // a [telemetry] table without an endpoint is off too
        let c = parse("[telemetry]\nservice_name = \"x\"\n").unwrap();
        assert_eq!(c.telemetry, None);
    }

    #[test]
    fn an_endpoint_turns_traces_on_with_defaults() {
        let c = parse(
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318/\"\n[log]\nformat = \"json\"\n",
        )
        .unwrap();
        let t = c.telemetry.unwrap();
        assert_eq!(t.traces_url(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(t.service_name, "cheapai-gateway");
        assert_eq!(t.export_delay, Duration::from_secs(5));
        assert_eq!(t.sample_ratio, 1.0);
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_values_are_named_with_their_line() {
        let e = parse("[telemetry]\notlp_endpoint = \"https://collector:4318\"\n").unwrap_err();
        assert!(
            e.0[0].starts_with("t.toml:4: telemetry.otlp_endpoint"),
            "{e}"
        );
        let e = parse("[telemetry]\notlp_endpoint = \"127.0.0.1:4318\"\n").unwrap_err();
        assert!(e.0[0].contains("http://"), "{e}");
        let e = parse("[telemetry]\notlp_endpoint = \"http://c:4318\"\nsample_ratio = 1.5\n")
            .unwrap_err();
        assert!(
            e.0[0].starts_with("t.toml:5: telemetry.sample_ratio"),
            "{e}"
        );
        let e = parse("[log]\nformat = \"xml\"\n").unwrap_err();
        assert!(e.to_string().contains("t.toml:4"), "{e}");
    }
}
