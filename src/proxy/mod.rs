//! The request path: [`Gateway::serve`] runs it step by step for every request that
//! [`app`] (the Pingora server app) reads.

mod answer_model;
mod app;
pub use app::GatewayApp;
mod body;
mod bookkeeping;
mod claims;
mod conversation;
pub mod ctx;
pub mod exchange;
mod failover;
mod h1_answer;
mod models;
mod observe;
pub mod outcome;
mod provider_answer;
mod reasoning;
mod record;
mod relay;
mod stored;
mod transport;
mod turn;
mod vertex_token;
mod wire;

use std::sync::Arc;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;

use crate::auth::{presented_key, KeyInfo};
use crate::catalog::Model;
use crate::config::ClientTimeouts;
use crate::endpoint::Endpoint;
use crate::error::{ErrorKind, GatewayError};
use crate::limits::inflight::KeyInflight;
use crate::limits::Limiter;
use crate::metrics;
use crate::providers::pools::Pools;
use crate::reload::Live;
use crate::reload::LiveHandle;
use crate::request::{peek, Peeked};
use crate::spool::Spool;
use crate::text;
use crate::usage::api::{usage_json, UsageQuery};
use crate::usage::ledger::LedgerHandle;
use ctx::RequestCtx;
use exchange::Finished;

/// The gateway's request handler, shared by every worker thread.
pub struct Gateway {
    /// Catalog, providers and static keys: swapped whole on reload; a request loads them
    /// once and keeps them to its end.
    live: LiveHandle,
    max_body_bytes: usize,
    client_timeouts: ClientTimeouts,
    pools: Pools,
    /// Where every request's usage record is appended first.
    spool: Spool,
    /// The usage ledger, read by `/v1/usage`.
    ledger: Arc<LedgerHandle>,
    limiter: Limiter,
    /// Concurrent requests of keys with `max_inflight`, in this instance.
    key_inflight: Arc<KeyInflight>,
    /// Unix time the catalog was loaded: the `created` of every listed model.
    loaded_at: u64,
    /// Traces and the access log's format.
    observability: observe::Observability,
    /// Which key made each response a provider stores.
    owners: Arc<crate::ownership::ResponseOwners>,
    /// Signed reasoning kept for chat clients that drop it.
    thinking: Arc<crate::thinking::ThinkingStore>,
    /// How long the Responses conversations of translated models are kept in the ledger's
    /// store; `None`: they are not (see `conversation`).
    responses_retention: Option<std::time::Duration>,
}

impl Gateway {
    pub fn new(
        live: LiveHandle,
        max_body_bytes: usize,
        client_timeouts: ClientTimeouts,
        spool: Spool,
        ledger: Arc<LedgerHandle>,
        limiter: Limiter,
    ) -> Self {
        Self {
            live,
            max_body_bytes,
            client_timeouts,
            pools: Pools::new(),
            spool,
            ledger,
            limiter,
            key_inflight: Arc::default(),
            loaded_at: crate::clock::unix_secs(),
            observability: observe::Observability::default(),
            owners: Arc::new(crate::ownership::ResponseOwners::new(None)),
            thinking: Arc::new(crate::thinking::ThinkingStore::new(None)),
            responses_retention: None,
        }
    }

    /// Keeps the Responses conversations of translated models for `retention` (`None`: not
    /// at all, and `store: true` on those models is refused).
    pub fn with_stored_responses(mut self, retention: Option<std::time::Duration>) -> Self {
        self.responses_retention = retention;
        self
    }

    /// Keeps the reasoning chat clients drop in `thinking` (shared through Redis, when set).
    pub fn with_thinking_store(mut self, thinking: Arc<crate::thinking::ThinkingStore>) -> Self {
        self.thinking = thinking;
        self
    }

    /// Keeps the owners of stored responses in `owners` (shared through Redis, when set).
    pub fn with_response_owners(mut self, owners: Arc<crate::ownership::ResponseOwners>) -> Self {
        self.owners = owners;
        self
    }

    /// Traces requests to `telemetry` (when set), writes the access log in `log_format`,
    /// and counts the upstream pool's discarded connections in `/metrics`.
    pub fn with_observability(
        mut self,
        telemetry: Option<Arc<crate::telemetry::Telemetry>>,
        log_format: crate::config::LogFormat,
    ) -> Self {
        metrics::watch_upstream_pool(self.pools.http1.unexpected_data_connection_counter());
        metrics::watch_upstream_pool(self.pools.http2.unexpected_data_connection_counter());
        self.observability = observe::Observability {
            telemetry,
            log_format,
        };
        self
    }

    /// Steps 1–7 of the request path. An `Err` is rendered by `app`'s `refuse`.
    async fn serve(
        &self,
        session: &mut ServerSession,
        ctx: &mut RequestCtx,
    ) -> Result<Finished, GatewayError> {
        session.set_write_timeout(Some(self.client_timeouts.write));
        let header = session.req_header();
        let endpoint = Endpoint::route(&header.method, header.uri.path())?;
        ctx.dialect = endpoint.dialect(header.headers.contains_key("anthropic-version"));
        ctx.endpoint = Some(endpoint.clone());
        if endpoint == Endpoint::Root {
            // no key needed: it says only that this is the gateway and it is up
            let body = match session.req_header().method {
                http::Method::HEAD => Bytes::new(),
                _ => Bytes::from_static(br#"{"status":"ok","service":"cheapai-gateway"}"#),
            };
            return write_json(session, ctx, 200, body, None).await;
        }
        let key = self.authenticate(session).await?;
        ctx.key_id = Some(key.id.clone());
        if let Some(max) = key.max_inflight {
            let slot = self.key_inflight.try_enter(&key.id, max).ok_or_else(|| {
                metrics::RATE_LIMITED.with_label_values(&["inflight"]).inc();
                GatewayError {
                    retry_after: Some(1),
                    ..GatewayError::new(
                        ErrorKind::RateLimited,
                        format!("this key already has {max} requests in flight (max_inflight)"),
                    )
                }
            })?;
            ctx.inflight_slot = Some(slot);
        }

        match &endpoint {
            Endpoint::Models => return self.list_models(session, ctx, &key).await,
            Endpoint::Usage => {
                let query = UsageQuery::parse(session.req_header().uri.query())?;
                let ledger = self.ledger.get().await.map_err(|e| GatewayError {
                    detail: Some(e.to_string()),
                    retry_after: Some(1),
                    ..GatewayError::new(
                        ErrorKind::StateUnavailable,
                        "the usage history is unavailable; try again shortly",
                    )
                })?;
                let body = usage_json(ledger.as_ref(), Some(&key.id), &query).await?;
                return write_json(session, ctx, 200, body.to_string().into(), None).await;
            }
            Endpoint::Model(id) => return self.show_model(session, ctx, &key, id).await,
            Endpoint::StoredResponse(rest) => {
                return Box::pin(self.stored_response(session, ctx, &key, rest)).await
            }
            Endpoint::Root => {}
            Endpoint::ChatCompletions
            | Endpoint::Responses
            | Endpoint::Embeddings
            | Endpoint::Messages => {
                if self.spool.is_full() {
                    // nothing is served that could not be billed: the usage ledger is down
                    // long enough to fill the spool (see README "Usage ledger")
                    return Err(GatewayError {
                        retry_after: Some(5),
                        ..GatewayError::new(
                            ErrorKind::StateUnavailable,
                            "usage recording is unavailable (the usage spool is full); try again shortly",
                        )
                    });
                }
            }
            Endpoint::CountTokens => {}
        }

        let (body, peeked, live, model) = match self.admit(session, ctx, &key, &endpoint).await {
            Ok(admitted) => admitted,
            Err(refusal) => return Err(self.count_refusal(&key, refusal).await),
        };
        let model = &model;
        // Boxed: both read the conversation stores (Redis or the ledger), whose futures would
        // otherwise set the size of this one, which lives as long as the answer (4 and 3 KB
        // against 2 KB for the failover loop's).
        let owner = Box::pin(self.check_continuation(&peeked, &key, model)).await?;
        let (body, peeked) =
            Box::pin(self.prepare_turn(ctx, &key, model, (body, peeked), owner.is_some())).await?;
        let betas = session.req_header().headers.get_all("anthropic-beta");
        let peeked = peeked.with_betas(betas.iter().map(|v| v.as_bytes()));
        let job = failover::Job {
            endpoint: &endpoint,
            body: &body,
            peeked: &peeked,
            key: &key,
        };
        self.claim_limits(ctx, &job, model).await?;
        // fallbacks the key may not use are skipped
        let mut routes = live.catalog.routes(model);
        routes.retain(|m| Arc::ptr_eq(m, model) || key.allows(&m.name));
        self.forward(session, ctx, &job, routes, owner.as_ref())
            .await
    }

    /// Reads and checks the body of a model request and finds its catalog entry: the steps
    /// whose refusals ([`Self::count_refusal`]) count against the key's request rate.
    async fn admit(
        &self,
        session: &mut ServerSession,
        ctx: &mut RequestCtx,
        key: &KeyInfo,
        endpoint: &Endpoint,
    ) -> Result<(Bytes, Peeked, Arc<Live>, Arc<Model>), GatewayError> {
        let body = self.read_body(session).await?;
        ctx.body = body.clone();
        let peeked = peek(endpoint, &body)?;
        ctx.stream = peeked.stream;
        ctx.include_usage = peeked.include_usage;
        // what records, logs and spans keep of the name: bounded, whatever the client sent
        let shown = text::bounded_name(&peeked.model);
        ctx.requested_model = Some(shown.clone());
        if peeked.model.len() > text::MAX_CLIENT_NAME {
            return Err(GatewayError::invalid(
                "model",
                format!(
                    "`model` is longer than {} bytes: `{shown}`",
                    text::MAX_CLIENT_NAME
                ),
            ));
        }
        let live = self.live.load_full();
        let model = live
            .catalog
            .resolve(&peeked.model)
            .cloned()
            .ok_or_else(|| GatewayError {
                param: Some("model".into()),
                ..GatewayError::new(
                    ErrorKind::ModelNotFound,
                    format!("The model `{shown}` does not exist"),
                )
            })?;
        if !key.allows(&peeked.model) {
            return Err(GatewayError::new(
                ErrorKind::ModelNotAllowed,
                format!("this API key may not use the model `{shown}`"),
            ));
        }
        Ok((body, peeked, live, model))
    }

    async fn authenticate(&self, session: &ServerSession) -> Result<Arc<KeyInfo>, GatewayError> {
        let presented = presented_key(session.req_header()).ok_or_else(|| {
            GatewayError::new(
                ErrorKind::InvalidKey,
                "You didn't provide an API key. Send it as `Authorization: Bearer cai-...` or `x-api-key`.",
            )
        })?;
        self.live
            .load_full()
            .keys
            .verify(presented)
            .await
            .map_err(|e| {
                log::warn!("key lookup: {e}");
                GatewayError::new(
                    ErrorKind::StateUnavailable,
                    "the key store is unavailable; try again shortly",
                )
            })?
            .ok_or_else(|| GatewayError::new(ErrorKind::InvalidKey, "Incorrect API key provided."))
    }
}

/// Writes a complete JSON response with the request id (and `Retry-After` when given).
pub(crate) async fn write_json(
    session: &mut ServerSession,
    ctx: &RequestCtx,
    status: u16,
    body: Bytes,
    error: Option<&GatewayError>,
) -> Result<Finished, GatewayError> {
    let header = (|| -> pingora::Result<ResponseHeader> {
        let mut h = ResponseHeader::build_no_case(status, Some(8))?;
        h.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        h.insert_header(http::header::CONTENT_LENGTH, body.len())?;
        h.insert_header("x-request-id", ctx.request_id.as_str())?;
        let rate_headers = match error {
            Some(e) if !e.rate_limit_headers.is_empty() => &e.rate_limit_headers,
            _ => &ctx.rate_headers,
        };
        for (name, value) in rate_headers {
            h.insert_header(*name, value.as_str())?;
        }
        if let Some(seconds) = error.and_then(|e| e.retry_after) {
            h.insert_header(http::header::RETRY_AFTER, seconds)?;
            h.insert_header("retry-after-ms", seconds * 1000)?;
        }
        if error.is_some_and(|e| e.kind == ErrorKind::QuotaExceeded) {
            // retrying cannot help until an operator raises the budget
            h.insert_header("x-should-retry", "false")?;
        }
        Ok(h)
    })()
    .map_err(|e| GatewayError::internal("writing the response header", e))?;
    crate::drain::close_if_draining(session);
    let written = session
        .write_response_header(Box::new(header))
        .await
        .is_ok()
        && session.write_response_body(body, true).await.is_ok();
    Ok(if written {
        Finished::Complete
    } else {
        Finished::Abort
    })
}
