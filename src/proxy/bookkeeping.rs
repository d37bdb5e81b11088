//! A finished request's bookkeeping, from its [`Outcome`], once: the error detail for
//! operators, the request metrics, the access line and spans, the usage record (spooled for
//! the ledger) and the settlement of what its limits reserved.

use std::sync::LazyLock;

use pingora::protocols::http::ServerSession;

use super::app::final_status;
use super::ctx::RequestCtx;
use super::observe::Ended;
use super::outcome::Outcome;
use super::Gateway;
use crate::endpoint::Endpoint;
use crate::metrics;
use crate::usage::pricing;

impl Gateway {
    /// Everything owed a request once it is answered, in this order: the record first
    /// (metrics and the access line name its tokens), settlement only for a recorded request
    /// (a refused one reserved nothing).
    pub(super) async fn account(
        &self,
        session: &ServerSession,
        ctx: &mut RequestCtx,
        mut outcome: Outcome,
    ) {
        let status = final_status(session).unwrap_or(0);
        if let Some(detail) = outcome.error.as_ref().and_then(|e| e.detail.as_deref()) {
            log::error!("{} {}", ctx.request_id, detail);
        }
        let record = self.usage_record(ctx, &mut outcome, status).await;
        let trace = ctx.trace.take();
        // bounded labels: the catalog entry (a pattern, not every name it matched)
        let model_label = outcome.model.as_ref().map_or("-", |m| m.name.as_str());
        let provider_label = outcome.provider.as_ref().map_or("-", |p| p.name.as_str());
        let endpoint_label = ctx.endpoint.as_ref().map_or("-", Endpoint::label);
        metrics::REQUESTS
            .with_label_values(&[
                model_label,
                provider_label,
                endpoint_label,
                &metrics::status_label(status),
            ])
            .inc();
        let series = route_series(&outcome);
        series.duration.observe(ctx.started.elapsed().as_secs_f64());
        if let Some(first) = outcome.first_byte_at {
            series
                .first_token()
                .observe(first.duration_since(ctx.started).as_secs_f64());
        }
        if let Some(e) = outcome.error.as_ref().filter(|e| e.kind.is_upstream()) {
            metrics::UPSTREAM_ERRORS
                .with_label_values(&[provider_label, e.kind.label()])
                .inc();
        }
        let ended = Ended {
            status,
            record: record.as_ref(),
            series,
        };
        self.observe(session, ctx, &outcome, trace, &ended);
        if let Some(record) = record {
            series.prompt_tokens.inc_by(record.prompt_tokens);
            series.completion_tokens.inc_by(record.completion_tokens);
            series.cached_tokens.inc_by(record.cached_tokens);
            series.cost_usd.inc_by(pricing::usd(record.cost_micro_usd));
            metrics::USAGE_RECORDS.inc();
            if let Some((claim, decision)) = ctx.limit.take() {
                let tokens = record.prompt_tokens + record.completion_tokens;
                self.limiter
                    .settle(&claim, &decision, tokens, record.cost_micro_usd)
                    .await;
            }
            crate::usage::ledger::spool_record(&self.spool, &record);
        }
    }
}

/// The metric series of the deployment that served (or last failed) the request; a request
/// refused before routing has neither model nor provider, and is labelled `-`, `-`.
fn route_series(outcome: &Outcome) -> &metrics::Series {
    static UNROUTED: LazyLock<metrics::RouteSeries> = LazyLock::new(Default::default);
    let routed = outcome
        .model
        .as_ref()
        .and_then(|m| Some((m, m.deployments.get(outcome.deployment)?)));
    match routed {
        Some((model, deployment)) => deployment
            .metrics
            .get(&model.name, &deployment.provider.name),
        None => UNROUTED.get("-", "-"),
    }
}
