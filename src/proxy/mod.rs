//! The Pingora glue: `request_filter` runs the request path step by step, `fail_to_proxy`
//! is the one place an error becomes a response, and `logging` writes the one log line.

pub mod ctx;
pub mod exchange;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::ResponseHeader;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use serde_json::json;

use crate::auth::{presented_key, KeyInfo, KeyStore};
use crate::catalog::Catalog;
use crate::endpoint::Endpoint;
use crate::error::{ErrorKind, GatewayError};
use crate::request::peek;
use ctx::RequestCtx;
use exchange::Finished;

/// The gateway's request handler, shared by every worker thread.
pub struct Gateway {
    catalog: Catalog,
    keys: KeyStore,
    max_body_bytes: usize,
    connector: Connector,
    /// Unix time the catalog was loaded: the `created` of every listed model.
    loaded_at: u64,
}

impl Gateway {
    pub fn new(catalog: Catalog, keys: KeyStore, max_body_bytes: usize) -> Self {
        Self {
            catalog,
            keys,
            max_body_bytes,
            connector: Connector::new(None),
            loaded_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
        }
    }

    /// Steps 1–7 of the request path. An `Err` is rendered by `fail_to_proxy`.
    async fn serve(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Finished, GatewayError> {
        let header = session.req_header();
        let endpoint = Endpoint::route(&header.method, header.uri.path())?;
        ctx.dialect = endpoint.dialect();
        ctx.endpoint = Some(endpoint.clone());
        let key = self.authenticate(session)?;
        ctx.key_id = Some(key.id.clone());

        match &endpoint {
            Endpoint::Models => return self.list_models(session, ctx, &key).await,
            Endpoint::Model(id) => return self.show_model(session, ctx, &key, id).await,
            Endpoint::ChatCompletions | Endpoint::Embeddings => {}
        }

        let body = self.read_body(session).await?;
        let peeked = peek(&endpoint, &body)?;
        ctx.stream = peeked.stream;
        let model = self
            .catalog
            .get(&peeked.model)
            .ok_or_else(|| GatewayError {
                param: Some("model".into()),
                ..GatewayError::new(
                    ErrorKind::ModelNotFound,
                    format!("The model `{}` does not exist", peeked.model),
                )
            })?;
        if !key.allows(&model.name) {
            return Err(GatewayError::new(
                ErrorKind::ModelNotAllowed,
                format!("this API key may not use the model `{}`", model.name),
            ));
        }
        let routes = self.catalog.routes(model);
        exchange::forward(&self.connector, session, ctx, &routes, |route| {
            route.provider.prepare(&endpoint, &body, &peeked, route)
        })
        .await
    }

    fn authenticate(&self, session: &Session) -> Result<Arc<KeyInfo>, GatewayError> {
        let presented = presented_key(session.req_header()).ok_or_else(|| {
            GatewayError::new(
                ErrorKind::InvalidKey,
                "You didn't provide an API key. Send it as `Authorization: Bearer cai-...` or `x-api-key`.",
            )
        })?;
        self.keys
            .verify(presented)
            .ok_or_else(|| GatewayError::new(ErrorKind::InvalidKey, "Incorrect API key provided."))
    }

    /// Reads the whole request body, refusing anything over `max_body_bytes` before reading
    /// it when Content-Length says so, and answering `Expect: 100-continue` (curl waits a
    /// second for it otherwise).
    async fn read_body(&self, session: &mut Session) -> Result<Bytes, GatewayError> {
        let header = session.req_header();
        let too_large = || {
            GatewayError::new(
                ErrorKind::BodyTooLarge,
                format!(
                    "request body is larger than the gateway's limit of {} bytes",
                    self.max_body_bytes
                ),
            )
        };
        let declared = header
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let expects_continue = header
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if declared.is_some_and(|len| len > self.max_body_bytes) {
            // A client waiting for `100 Continue` sends nothing more; any other is already
            // sending, and must be read from for the 413 to reach it.
            if !expects_continue {
                discard_rest_of_body(session, self.max_body_bytes.saturating_mul(4)).await;
            }
            session.set_keepalive(None);
            return Err(too_large());
        }
        if expects_continue {
            session.write_continue_response().await.map_err(|e| {
                GatewayError::new(ErrorKind::InvalidRequest, format!("client connection: {e}"))
            })?;
        }
        let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
        loop {
            let chunk = session.read_request_body().await.map_err(|e| {
                GatewayError::invalid("body", format!("could not read the request body: {e}"))
            })?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > self.max_body_bytes {
                discard_rest_of_body(session, self.max_body_bytes.saturating_mul(4)).await;
                session.set_keepalive(None);
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    async fn list_models(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        key: &KeyInfo,
    ) -> Result<Finished, GatewayError> {
        let data: Vec<_> = self
            .catalog
            .iter()
            .filter(|m| key.allows(&m.name))
            .map(|m| self.model_object(&m.name))
            .collect();
        let body = json!({"object": "list", "data": data});
        write_json(session, ctx, 200, body.to_string().into(), None).await
    }

    async fn show_model(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        key: &KeyInfo,
        id: &str,
    ) -> Result<Finished, GatewayError> {
        match self.catalog.get(id).filter(|m| key.allows(&m.name)) {
            Some(m) => {
                let body = self.model_object(&m.name).to_string().into();
                write_json(session, ctx, 200, body, None).await
            }
            None => Err(GatewayError::new(
                ErrorKind::ModelNotFound,
                format!("The model `{id}` does not exist"),
            )),
        }
    }

    fn model_object(&self, name: &str) -> serde_json::Value {
        json!({"id": name, "object": "model", "created": self.loaded_at, "owned_by": "cheapai"})
    }
}

/// The status of the response header sent to the client, ignoring `100 Continue`.
fn final_status(session: &Session) -> Option<u16> {
    session
        .response_written()
        .map(|r| r.status.as_u16())
        .filter(|s| *s >= 200)
}

/// Reads and drops what is left of an oversized body (up to `limit` bytes), so the 413 is
/// read by the client: closing a socket with unread input makes the kernel reset the
/// connection, and the reset can destroy the answer before the client reads it.
async fn discard_rest_of_body(session: &mut Session, limit: usize) {
    let mut discarded = 0usize;
    while discarded < limit {
        match session.read_request_body().await {
            Ok(Some(chunk)) => discarded += chunk.len(),
            Ok(None) | Err(_) => break,
        }
    }
}

/// Writes a complete JSON response with the request id (and `Retry-After` when given).
async fn write_json(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    body: Bytes,
    retry_after: Option<u64>,
) -> Result<Finished, GatewayError> {
    let header = (|| -> pingora::Result<ResponseHeader> {
        let mut h = ResponseHeader::build(status, Some(4))?;
        h.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        h.insert_header(http::header::CONTENT_LENGTH, body.len())?;
        h.insert_header("x-request-id", ctx.request_id.as_str())?;
        if let Some(seconds) = retry_after {
            h.insert_header(http::header::RETRY_AFTER, seconds)?;
        }
        Ok(h)
    })()
    .map_err(|e| GatewayError::new(ErrorKind::Internal, format!("response header: {e}")))?;
    let written = session
        .write_response_header(Box::new(header), false)
        .await
        .is_ok()
        && session.write_response_body(Some(body), true).await.is_ok();
    Ok(if written {
        Finished::Complete
    } else {
        Finished::Abort
    })
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        match self.serve(session, ctx).await {
            Ok(Finished::Complete) => Ok(true),
            Ok(Finished::Abort) => {
                ctx.abort_downstream = true;
                Error::e_explain(ErrorType::ConnectionClosed, "response cut short")
            }
            Err(e) => {
                let status = e.status();
                ctx.error = Some(e);
                Error::e_explain(ErrorType::HTTPStatus(status), "request refused")
            }
        }
    }

    /// Never reached: every request is answered in `request_filter`.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        Error::e_explain(
            ErrorType::InternalError,
            "requests are served in request_filter",
        )
    }

    /// The one place an error becomes a response, in the client's dialect.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        if ctx.abort_downstream || final_status(session).is_some() {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let error = ctx.error.get_or_insert_with(|| {
            let kind = match e.etype() {
                ErrorType::ReadError | ErrorType::ReadTimedout | ErrorType::InvalidHTTPHeader => {
                    ErrorKind::InvalidRequest
                }
                _ => ErrorKind::Internal,
            };
            GatewayError::new(kind, format!("request failed: {}", e.etype().as_str()))
        });
        let status = error.status();
        let body = error.body(ctx.dialect);
        let retry_after = error.retry_after;
        let written = write_json(session, ctx, status, body, retry_after).await;
        FailToProxy {
            error_code: status,
            can_reuse_downstream: matches!(written, Ok(Finished::Complete)) && status != 413,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _e: &Error) -> bool {
        true // `logging` writes the one line per request
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = final_status(session).unwrap_or(0);
        let model = ctx.model.as_ref();
        log::info!(
            target: "access",
            "{} {} {} status={} key={} model={} provider={} stream={} ms={} ttfb_ms={} error={}{}",
            ctx.request_id,
            session.req_header().method,
            ctx.endpoint.as_ref().map_or("-", Endpoint::label),
            status,
            ctx.key_id.as_deref().unwrap_or("-"),
            model.map_or("-", |m| m.name.as_str()),
            model.map_or("-", |m| m.provider.name.as_str()),
            ctx.stream,
            ctx.started.elapsed().as_millis(),
            ctx.first_byte_at
                .map(|t| t.duration_since(ctx.started).as_millis().to_string())
                .unwrap_or_else(|| "-".into()),
            ctx.error.as_ref().map_or("-", |e| e.kind.label()),
            if ctx.client_gone { " client_gone" } else { "" },
        );
    }
}
