//! What a finished request leaves for operators besides its usage record: the access log
//! line (text or JSON), the end of its spans, and the time-per-output-token metric.

use std::sync::Arc;
use std::time::Instant;

use pingora::protocols::http::ServerSession;

use super::ctx::RequestCtx;
use super::outcome::Outcome;
use super::Gateway;
use crate::config::LogFormat;
use crate::endpoint::Endpoint;
use crate::metrics;
use crate::telemetry::access::{self, Client, Summary};
use crate::telemetry::logger::ACCESS;
use crate::telemetry::trace::{self, RequestTrace};
use crate::telemetry::Telemetry;
use crate::usage::UsageRecord;

/// What the bookkeeping settled before the access line: the status sent, the usage record
/// (none for a request refused by the gateway's limits) and the route's metric series.
#[derive(Clone, Copy)]
pub(super) struct Ended<'a> {
    pub status: u16,
    pub record: Option<&'a UsageRecord>,
    pub series: &'a metrics::Series,
}

/// How a gateway reports requests: set once at start.
#[derive(Debug, Default)]
pub struct Observability {
    /// The trace pipeline, when `[telemetry] otlp_endpoint` is set.
    pub telemetry: Option<Arc<Telemetry>>,
    pub log_format: LogFormat,
}

impl Gateway {
    /// Opens the request's span (tracing on only).
    pub(super) fn trace_start(&self, session: &ServerSession, ctx: &mut RequestCtx) {
        if let Some(t) = &self.observability.telemetry {
            ctx.trace = Some(RequestTrace::start(t, session.req_header()));
        }
    }

    /// Writes the access line, ends the spans and observes the time per output token.
    pub(super) fn observe(
        &self,
        session: &ServerSession,
        ctx: &RequestCtx,
        outcome: &Outcome,
        trace: Option<RequestTrace>,
        ended: &Ended<'_>,
    ) {
        let Ended {
            status,
            record,
            series,
        } = *ended;
        let ended = Instant::now();
        let route = outcome.model.as_ref().map_or("-", |m| m.name.as_str());
        if let (true, Some(first), Some(r)) = (ctx.stream, outcome.first_byte_at, record) {
            // the generation after the first token, per token that followed it
            if r.completion_tokens > 1 && outcome.error.is_none() {
                let per_token =
                    ended.duration_since(first).as_secs_f64() / (r.completion_tokens - 1) as f64;
                series.per_output_token().observe(per_token);
            }
        }
        let json = self.observability.log_format == LogFormat::Json;
        if !json && trace.is_none() {
            return text_line(session, ctx, outcome, status, record, route);
        }
        let method = session.req_header().method.as_str();
        let summary = Summary {
            request_id: &ctx.request_id,
            method,
            endpoint: ctx.endpoint.as_ref(),
            key_id: ctx.key_id.as_deref(),
            requested_model: ctx.requested_model.as_deref(),
            route,
            upstream_model: &outcome.upstream_model,
            provider: outcome.provider.as_deref(),
            status,
            stream: ctx.stream,
            attempts: outcome.attempts,
            usage: record,
            duration: ended.duration_since(ctx.started),
            ttfb: outcome.first_byte_at.map(|t| t.duration_since(ctx.started)),
            error: outcome.error.as_ref(),
            client_gone: outcome.client_gone,
            reasoning_dropped: outcome.reasoning_dropped,
        };
        let trace_id = trace.as_ref().map(RequestTrace::trace_id);
        if let Some(trace) = trace {
            trace.finish(&summary);
        }
        if !json {
            return text_line(session, ctx, outcome, status, record, route);
        }
        let header = session.req_header();
        let client = Client {
            trace_id: trace_id.or_else(|| trace::client_trace_id(header)),
            addr: session.client_addr().map(ToString::to_string),
            user_agent: header
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
        };
        log::info!(target: ACCESS, "{}", access::json_line(&summary, &client));
    }
}

/// Today's text access line.
fn text_line(
    session: &ServerSession,
    ctx: &RequestCtx,
    outcome: &Outcome,
    status: u16,
    record: Option<&UsageRecord>,
    route: &str,
) {
    log::info!(
        target: ACCESS,
        "{} {} {} status={} key={} model={} route={} provider={} attempts={} stream={} ms={} ttfb_ms={} tokens={}/{} error={}{}{}",
        ctx.request_id,
        session.req_header().method,
        ctx.endpoint.as_ref().map_or("-", Endpoint::label),
        status,
        ctx.key_id.as_deref().unwrap_or("-"),
        crate::text::escape_for_log(record.map_or("-", |r| r.model.as_str())),
        route,
        outcome.provider.as_ref().map_or("-", |p| p.name.as_str()),
        outcome.attempts,
        ctx.stream,
        ctx.started.elapsed().as_millis(),
        outcome.first_byte_at
            .map(|t| t.duration_since(ctx.started).as_millis().to_string())
            .unwrap_or_else(|| "-".into()),
        record.map_or(0, |r| r.prompt_tokens),
        record.map_or(0, |r| r.completion_tokens),
        outcome.error.as_ref().map_or("-", |e| e.kind.label()),
        if outcome.client_gone { " client_gone" } else { "" },
        if outcome.reasoning_dropped { " reasoning_dropped" } else { "" },
    );
}
