//! The gateway as a Pingora server app: each request's header is read here, `answer` runs
//! the request path, `refuse` is the one place an error becomes a response, and the
//! bookkeeping ([`super::bookkeeping`]) writes the one log line and usage record.
//!
//! Why not Pingora's `ProxyHttp`: the gateway answers every request itself (it translates,
//! meters and fails over, so it never hands a request to Pingora's proxy loop), and the proxy
//! loop's per-request state machine, sized for its cache, retries and upstream phases, held
//! about 17 KB of every open stream's memory that the gateway never used past its first
//! state. Pingora's HTTP/1 and HTTP/2 sessions, listeners and TLS are used as before.
//!
//! HTTP/1 connections, nearly all of them, are served by [`GatewayApp`]'s own keep-alive
//! loop in a task of their own, so a connection's whole state is one allocation sized for the
//! gateway's request path. Pingora's listener spawns each connection as a task sized for its
//! TLS handshake (~9 KB, plain connections too), and its generic loop ([`HttpServerApp`]'s)
//! is a second allocation of ~6.5 KB, sized for its HTTP/2 handshake: kept, both would live
//! as long as every open stream. HTTP/2 connections (by ALPN) still go through Pingora's
//! loop, which multiplexes their streams.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use pingora::ErrorType;

use super::ctx::RequestCtx;
use super::exchange::Finished;
use super::{write_json, Gateway};
use crate::error::GatewayError;

/// The client listener's app (see the module's documentation).
pub struct GatewayApp(Arc<Gateway>);

impl GatewayApp {
    pub fn new(gateway: Gateway) -> Self {
        Self(Arc::new(gateway))
    }
}

#[async_trait]
impl ServerApp for GatewayApp {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return ServerApp::process_new(&self.0, stream, shutdown).await;
        }
        // The connection moves to a task of its own, and Pingora's ends here: Pingora's
        // per-connection task is sized for its TLS handshake (~9 KB, plain connections
        // too) and would otherwise live, unused, as long as the connection.
        let gateway = Arc::clone(&self.0);
        let shutdown = shutdown.clone();
        tokio::spawn(async move { serve_http1(&gateway, stream, &shutdown).await });
        None
    }
}

/// An HTTP/1 connection's keep-alive loop, until the client or the gateway closes it.
async fn serve_http1(gateway: &Gateway, stream: Stream, shutdown: &ShutdownWatch) {
    let mut session = ServerSession::new_http1(stream);
    // Pingora's own HTTP/1 loop's keep-alive: 60 s idle, none once stopping
    session.set_keepalive((!*shutdown.borrow()).then_some(60));
    while let Some(reused) = gateway.serve_request(session, shutdown).await {
        let (stream, settings) = reused.consume();
        session = ServerSession::new_http1(stream);
        if let Some(settings) = settings {
            settings.apply_to_session(&mut session);
        }
    }
}

/// HTTP/2 streams, each a request, from Pingora's connection loop.
#[async_trait]
impl HttpServerApp for Gateway {
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        self.serve_request(session, shutdown).await
    }
}

impl Gateway {
    /// Reads one request and answers it; the connection back when it may carry another.
    async fn serve_request(
        &self,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if !read_request_header(&mut session, shutdown).await {
            return None;
        }
        if *shutdown.borrow() {
            // the listener is closing: this answer is the connection's last
            session.set_keepalive(None);
        }
        let mut ctx = RequestCtx::new();
        let reusable = self.answer(&mut session, &mut ctx).await;
        let outcome = std::mem::take(&mut ctx.outcome);
        self.account(&session, &mut ctx, outcome).await;
        if !reusable {
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&session);
        session
            .finish()
            .await
            .ok()
            .flatten()
            .map(|stream| ReusedHttpStream::from_reusable_stream(stream, settings))
    }

    /// Runs the request path; whether the connection may carry another request.
    async fn answer(&self, session: &mut ServerSession, ctx: &mut RequestCtx) -> bool {
        self.trace_start(session, ctx);
        crate::drain::close_if_draining(session);
        match self.serve(session, ctx).await {
            Ok(Finished::Complete) => true,
            // the answer began and cannot be completed: closing the connection is what tells
            // the client its body is truncated
            Ok(Finished::Abort) => false,
            Err(e) => {
                let reusable = self.refuse(session, ctx, &e).await;
                ctx.outcome.error = Some(e);
                reusable
            }
        }
    }

    /// The one place an error becomes a response, in the client's dialect; whether the
    /// connection may carry another request. An answer already begun cannot be replaced:
    /// the connection is closed instead, so the client sees it cut, not completed.
    async fn refuse(
        &self,
        session: &mut ServerSession,
        ctx: &RequestCtx,
        error: &GatewayError,
    ) -> bool {
        if final_status(session).is_some() {
            return false;
        }
        let mut error = error.clone();
        let status = error.status_for(ctx.dialect);
        if status >= 500 && error.passthrough.is_none() {
            // what failed, in the gateway's words, and the id an operator finds it by
            error.message = format!("{} (request id {})", error.message, ctx.request_id);
        }
        let body = error.body(ctx.dialect);
        let written = write_json(session, ctx, status, body, Some(&error)).await;
        // after a 413 the rest of the oversized body may still be on the wire
        matches!(written, Ok(Finished::Complete)) && status != 413
    }
}

/// Reads the next request's header. False when there is nothing to answer: the client closed
/// the connection, its header was malformed (a bare 400, there being no dialect to answer
/// in yet), it asked for `CONNECT` (405: the gateway tunnels nothing), or the server is
/// stopping while the connection waits idle between requests.
async fn read_request_header(session: &mut ServerSession, shutdown: &ShutdownWatch) -> bool {
    let mut stopping = shutdown.clone();
    let read = tokio::select! {
        // a request already received is served even while stopping
        biased;
        read = session.read_request() => read,
        Ok(_) = stopping.wait_for(|stop| *stop) => return false,
    };
    match read {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            log::debug!("reading a request header: {}", e.etype().as_str());
            if matches!(e.etype(), ErrorType::InvalidHTTPHeader) {
                // the connection is closed after it either way
                let _ = session.respond_error(400).await;
            }
            session.shutdown().await;
            return false;
        }
    }
    if session.req_header().method == http::Method::CONNECT {
        let _ = session.respond_error(405).await;
        session.shutdown().await;
        return false;
    }
    true
}

/// The status of the response header sent to the client, ignoring `100 Continue`.
pub(super) fn final_status(session: &ServerSession) -> Option<u16> {
    session
        .response_written()
        .map(|r| r.status.as_u16())
        .filter(|s| *s >= 200)
}
