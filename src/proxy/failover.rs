//! The failover loop of one client request: ask the plan for the next attempt, wait out its
//! backoff, send it, report the outcome to the provider's circuit, until an answer reaches
//! the client or nothing is left to try. Nothing is ever sent again once a byte reached the
//! client: the relay handles every failure after that point itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::protocols::http::ServerSession;

use super::ctx::RequestCtx;
use super::exchange::{self, Finished};
use super::reasoning;
use super::vertex_token;
use super::Gateway;
use crate::auth::KeyInfo;
use crate::catalog::Model;
use crate::endpoint::Endpoint;
use crate::error::{ErrorKind, GatewayError};
use crate::metrics;
use crate::ownership::Owner;
use crate::providers::{anthropic, Plan as Prepared, Provider, ProviderKind, Timeouts};
use crate::request::Peeked;
use crate::routing::{self, Admission, Next, Pick, Plan};
use crate::usage::offload;

/// What one request brings to each of its attempts.
pub(super) struct Job<'a> {
    pub endpoint: &'a Endpoint,
    pub body: &'a Bytes,
    pub peeked: &'a Peeked,
    pub key: &'a KeyInfo,
}

impl Gateway {
    /// Serves the request from `routes` (the model, then the fallbacks the key may use).
    pub(super) async fn forward(
        &self,
        session: &mut ServerSession,
        ctx: &mut RequestCtx,
        job: &Job<'_>,
        routes: Vec<Arc<Model>>,
        continues: Option<&Owner>,
    ) -> Result<Finished, GatewayError> {
        let deadline = ctx.started + routes[0].retry.deadline;
        let mut plan = Plan::new(routes);
        if let Some(owner) = continues {
            // the conversation lives in that provider's account
            plan.pin_provider(&owner.provider);
        }
        let mut last_error: Option<GatewayError> = None;
        // The failed attempt's provider and reason, counted as a retry once another attempt
        // is actually made (the plan may be exhausted, or the deadline reached, first).
        let mut unretried: Option<(Arc<Provider>, &'static str)> = None;
        // The body with a chat client's dropped reasoning put back, looked up once, for the
        // attempts on Anthropic providers.
        let mut restored: Option<Option<Bytes>> = None;
        loop {
            let pick = match plan.next(routing::now_ms(), &mut rand::thread_rng()) {
                Next::Attempt(pick) => pick,
                Next::Exhausted => break,
                Next::AllOpen(reopens) => return Err(all_open(reopens)),
            };
            let deployment = &pick.model.deployments[pick.deployment];
            let provider = &deployment.provider;
            let breaker = &deployment.health.breaker;
            let switching = ctx
                .outcome
                .model
                .as_ref()
                .is_some_and(|m| !Arc::ptr_eq(m, &pick.model));
            if switching {
                if let Err(e) = self.claim_limits(ctx, job, &pick.model).await {
                    plan.abandon(&pick);
                    last_error = Some(e);
                    continue;
                }
            }
            if !pick.wait.is_zero() {
                if Instant::now() + pick.wait >= deadline {
                    breaker.release(pick.admission);
                    break;
                }
                tokio::time::sleep(pick.wait).await;
            }
            if Instant::now() > deadline {
                breaker.release(pick.admission);
                break;
            }
            let upstream_model = pick
                .model
                .upstream_name(&pick.model.deployments[pick.deployment], &job.peeked.model)
                .to_string();
            if let Some((failed, reason)) = unretried.take() {
                metrics::UPSTREAM_RETRIES
                    .with_label_values(&[&failed.name, reason])
                    .inc();
            }
            ctx.outcome.model = Some(pick.model.clone());
            ctx.outcome.provider = Some(provider.clone());
            ctx.outcome.deployment = pick.deployment;
            ctx.outcome.upstream_model = upstream_model;
            ctx.outcome.attempts = plan.attempts();
            // Claude on Vertex (and on Bedrock) is Anthropic's format as far as reasoning goes
            let kind = provider.route_kind(&ctx.outcome.upstream_model);
            let body = match (kind, job.endpoint) {
                (ProviderKind::Anthropic | ProviderKind::Bedrock, Endpoint::ChatCompletions) => {
                    if restored.is_none() {
                        // boxed, as the attempt is: a Redis read's future stays out of the
                        // state every request carries (see docs/ARCHITECTURE.md)
                        let lookup = reasoning::restore(&self.thinking, &job.key.id, job.body);
                        restored = Some(Box::pin(lookup).await);
                    }
                    restored
                        .as_ref()
                        .and_then(Option::as_ref)
                        .unwrap_or(job.body)
                }
                _ => job.body,
            };
            let mut request = match provider.prepare(
                job.endpoint,
                body,
                job.peeked,
                &ctx.outcome.upstream_model,
                pick.model.prompt_cache,
            ) {
                Ok(Prepared::Upstream(request)) => {
                    if request.reasoning_dropped && !ctx.outcome.reasoning_dropped {
                        ctx.outcome.reasoning_dropped = true;
                        metrics::REASONING_DROPPED
                            .with_label_values(&[&pick.model.name])
                            .inc();
                    }
                    request
                }
                Ok(Prepared::CountTokens) => {
                    breaker.release(pick.admission);
                    return self.count_tokens(session, ctx, job.body).await;
                }
                Err(e) => {
                    breaker.release(pick.admission);
                    return Err(e);
                }
            };
            if let Some(build) = request.translator_job.take() {
                match offload::run(build).await {
                    Some(translator) => request.translator = Some(translator),
                    None => {
                        breaker.release(pick.admission);
                        return Err(GatewayError::new(
                            ErrorKind::Internal,
                            "the answer's token count failed",
                        ));
                    }
                }
            }
            // what is left of the deadline now, after any translator job
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeouts = within(&provider.timeouts, remaining);
            if let Some(trace) = ctx.trace.as_mut() {
                trace.start_attempt(
                    provider,
                    job.endpoint,
                    &ctx.outcome.upstream_model,
                    ctx.outcome.attempts,
                );
            }
            // a response the provider stores is recorded as this key's as its answer passes
            let stored_upstream = *job.endpoint == Endpoint::Responses
                && provider.native_responses
                && job.peeked.store != Some(false);
            ctx.record_owner = stored_upstream.then(|| {
                (
                    Arc::clone(&self.owners),
                    Owner {
                        key_id: job.key.id.clone(),
                        provider: provider.name.clone(),
                    },
                )
            });
            // a chat client's Claude turn keeps its signed reasoning for the next turn
            let chat_on_claude = matches!(kind, ProviderKind::Anthropic | ProviderKind::Bedrock)
                && *job.endpoint == Endpoint::ChatCompletions;
            ctx.keep_reasoning =
                chat_on_claude.then(|| (Arc::clone(&self.thinking), job.key.id.clone()));
            let outcome = {
                let _inflight = deployment.health.enter();
                // Vertex's bearer token, minted or cached per provider (boxed, as below)
                let authorized = Box::pin(vertex_token::authorize(
                    &self.pools.http2,
                    provider,
                    &mut request,
                ))
                .await;
                if let Err(e) = authorized {
                    Err(e)
                } else {
                    // Boxed: an awaited future is stored in its caller's state, and a moved one
                    // twice, so each level of nesting doubled the request's future: 102 KB per
                    // request before the attempt and the relay were boxed, 3.4 KB after.
                    Box::pin(exchange::attempt(
                        &self.pools,
                        provider,
                        &timeouts,
                        request,
                        session,
                        ctx,
                    ))
                    .await
                }
            };
            match outcome {
                Ok(finished) => {
                    // a stream cut after its first byte still speaks against the provider
                    let failure = ctx
                        .outcome
                        .error
                        .as_ref()
                        .and_then(GatewayError::provider_failure);
                    self.report(&pick, failure, ctx.outcome.client_gone);
                    return Ok(finished);
                }
                Err(error) => {
                    if let Some(trace) = ctx.trace.as_mut() {
                        trace.attempt_failed(&error);
                    }
                    let failure = error.provider_failure();
                    self.report(&pick, failure, false);
                    let retryable = failure.is_some_and(|f| {
                        f.retryable(
                            job.peeked.stream,
                            routing::Resend {
                                non_stream_timeouts: pick.model.retry.retry_non_stream_timeouts,
                                unreadable_answers: pick.model.retry.retry_unreadable_answers,
                            },
                        )
                    });
                    if !retryable {
                        return Err(error);
                    }
                    unretried = failure.map(|f| (provider.clone(), f.label()));
                    log::warn!(
                        "{} attempt {} on {} ({}) failed: {}",
                        ctx.request_id,
                        plan.attempts(),
                        provider.name,
                        pick.model.name,
                        error.message
                    );
                    plan.failed(&pick, error.retry_after.map(Duration::from_secs));
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| {
            GatewayError::new(
                ErrorKind::UpstreamTimeout,
                "no provider answered within the request's deadline",
            )
        }))
    }

    /// `count_tokens` answered by the gateway's tokenizer, off the proxy's workers.
    async fn count_tokens(
        &self,
        session: &mut ServerSession,
        ctx: &mut RequestCtx,
        body: &Bytes,
    ) -> Result<Finished, GatewayError> {
        ctx.outcome.attempts = 0; // no provider is asked
        let body = body.clone();
        let tokens = offload::run(move || anthropic::client::tokens::estimate(&body))
            .await
            .ok_or_else(|| GatewayError::new(ErrorKind::Internal, "token count failed"))??;
        let answer = serde_json::json!({ "input_tokens": tokens }).to_string();
        super::write_json(session, ctx, 200, answer.into(), None).await
    }

    /// Tells the deployment's circuit and the metrics how an attempt went.
    fn report(&self, pick: &Pick, failure: Option<routing::Failure>, client_gone: bool) {
        let deployment = &pick.model.deployments[pick.deployment];
        let provider = &deployment.provider;
        let breaker = &deployment.health.breaker;
        let outcome = match failure {
            Some(f) if f.counts_against_provider() => {
                if breaker.record_failure(pick.admission, routing::now_ms()) {
                    log::warn!(
                        "circuit of deployment {}/{} opened after {}",
                        provider.name,
                        pick.model.deployment_name(deployment),
                        f.label()
                    );
                }
                f.label()
            }
            _ if client_gone && pick.admission == Admission::Probe => {
                breaker.release(pick.admission);
                "client_gone"
            }
            other => {
                breaker.record_success(pick.admission);
                other.map_or("ok", routing::Failure::label)
            }
        };
        metrics::UPSTREAM_ATTEMPTS
            .with_label_values(&[&provider.name, outcome])
            .inc();
    }
}

/// The provider's timeouts, none longer than what is left of the request's deadline.
fn within(timeouts: &Timeouts, remaining: Duration) -> Timeouts {
    Timeouts {
        connect: timeouts.connect.min(remaining),
        first_byte: timeouts.first_byte.min(remaining),
        idle: timeouts.idle,
    }
}

/// The answer when every deployment's circuit is open: at once, with when to come back.
fn all_open(reopens: Duration) -> GatewayError {
    GatewayError {
        retry_after: Some(reopens.as_secs_f64().ceil().max(1.0) as u64),
        ..GatewayError::new(
            ErrorKind::CircuitOpen,
            "every provider of this model is failing and temporarily taken out of service; retry later",
        )
    }
}
