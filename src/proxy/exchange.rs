//! The upstream exchange: the gateway sends the request to the provider itself, over
//! Pingora's pooled connector, and streams the answer to the client.
//!
//! Driving the exchange here (instead of Pingora's proxy phase) is what lets bodies of any
//! size through: Pingora's proxy replays a body read before routing only up to 64 KiB. It
//! also makes failover a loop over attempts ([`super::failover`]), since the body is in hand.

use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use pingora::upstreams::peer::Peer;
use pingora::{Error, ErrorType};

use super::ctx::RequestCtx;
use super::h1_answer::H1Answer;
pub use super::outcome::Finished;
use super::provider_answer::ProviderAnswer;
use super::relay;
use super::transport::upstream_failure;
use super::wire;
use crate::error::GatewayError;
use crate::providers::peer::UpstreamPeer;
use crate::providers::pools::{Connection, Pools};
use crate::providers::{Provider, Timeouts, UpstreamRequest};
use crate::telemetry::trace::RequestTrace;

/// Largest upstream error body read before it is turned into the client's error.
const MAX_ERROR_BODY: usize = 1024 * 1024;
/// Fresh connections tried when a pooled one turns out to be closed by the provider.
const STALE_CONNECTION_RETRIES: usize = 2;

/// One attempt: sends the request to `provider` and streams its answer to the client. An
/// `Err` means nothing reached the client, so the failover loop may try again elsewhere;
/// failures after the first byte are recorded in `ctx.outcome.error` and handled here.
pub async fn attempt(
    pools: &Pools,
    provider: &Provider,
    timeouts: &Timeouts,
    mut request: UpstreamRequest,
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
) -> Result<Finished, GatewayError> {
    let translator = request.translator.take();
    // Boxed, and so freed once the response header is in: dialing, TLS and writing the request
    // are the largest states of the exchange (~9 KB), and a future keeps the size of its
    // largest state for as long as it lives, which is a whole stream.
    let (mut up, peer) = Box::pin(send(
        pools,
        provider,
        timeouts,
        session.req_header(),
        &request,
        ctx,
    ))
    .await?;
    // the request is sent: its body (a translated one can be hundreds of KB) is not kept for
    // the length of the answer
    let content_type = request.content_type;
    drop(request);
    let status = up.status();
    if let Some(trace) = ctx.trace.as_mut() {
        trace.attempt_status(status);
    }
    if status >= 400 {
        up.set_read_timeout(timeouts.idle);
        // boxed: reading an error answer (and pooling its connection) is ~4 KB of state that
        // the attempt would otherwise keep through every successful stream
        return Err(Box::pin(read_error(pools, up, &peer, provider)).await);
    }
    let upstream = relay::Upstream {
        pools,
        answer: up,
        peer: &peer,
        provider,
    };
    relay::relay(upstream, translator, content_type, session, ctx).await
}

/// Connects (trying each of the provider's addresses in turn until one takes the
/// connection), writes the request and reads the response header.
async fn send(
    pools: &Pools,
    provider: &Provider,
    timeouts: &Timeouts,
    client: &RequestHeader,
    request: &UpstreamRequest,
    ctx: &RequestCtx,
) -> Result<(ProviderAnswer, UpstreamPeer), GatewayError> {
    let mut peers = provider.upstream.peers(timeouts).await?;
    let traceparent = ctx.trace.as_ref().map(RequestTrace::traceparent);
    let mut attempt = 0;
    let mut address = 0;
    loop {
        let peer = &peers[address];
        let (up, reused) = match provider.upstream.session(pools, peer, timeouts).await {
            Ok(session) => session,
            Err(e) if is_connect_failure(&e) && address + 1 < peers.len() => {
                log::debug!(
                    "{} provider {} address {} failed ({e}); trying the next",
                    ctx.request_id,
                    provider.name,
                    peer
                );
                address += 1;
                continue;
            }
            Err(e) => return Err(upstream_failure(provider, &e, "connecting")),
        };
        if !reused {
            if let Some(addr) = peer.0.address().as_inet() {
                provider.upstream.connected_to(addr);
            }
        }
        let head = wire::Head {
            provider,
            client,
            request,
            request_id: &ctx.request_id,
            traceparent: traceparent.as_deref(),
        };
        // what the connection negotiated (ALPN) decides the head's form
        let head = match &up {
            Connection::Http2(_) => wire::WireHead::H2(head.request_header(request.body.len())?),
            Connection::Http1(_) => wire::WireHead::H1(head.serialize(request.body.len())?),
        };
        let head_request = request.method == http::Method::HEAD;
        let written = write_and_read_header(up, head, request.body.clone(), head_request, timeouts);
        match written.await {
            Ok(up) => return Ok((up, peers.swap_remove(address))),
            Err(e) if reused && attempt < STALE_CONNECTION_RETRIES && !is_timeout(&e) => {
                log::debug!(
                    "{} pooled connection failed ({e}); retrying",
                    ctx.request_id
                );
                attempt += 1;
            }
            Err(e) => return Err(upstream_failure(provider, &e, "waiting for the answer")),
        }
    }
}

async fn write_and_read_header(
    up: Connection,
    head: wire::WireHead,
    body: Bytes,
    head_request: bool,
    timeouts: &Timeouts,
) -> pingora::Result<ProviderAnswer> {
    match wire::write_request(up, head, body, timeouts.first_byte).await? {
        Connection::Http1(stream) => {
            let answer = H1Answer::read(stream, head_request, Some(timeouts.first_byte)).await?;
            Ok(ProviderAnswer::Http1(answer))
        }
        Connection::Http2(mut up) => loop {
            up.read_response_header().await?;
            match up.response_header().map(|h| h.status.as_u16()) {
                Some(100..=199) => continue,
                Some(_) => return Ok(ProviderAnswer::Http2(up)),
                None => {
                    return Error::e_explain(ErrorType::InvalidHTTPHeader, "no response header")
                }
            }
        },
    }
}

/// Reads an error answer (bounded) and turns it into the client's error.
async fn read_error(
    pools: &Pools,
    mut up: ProviderAnswer,
    peer: &UpstreamPeer,
    provider: &Provider,
) -> GatewayError {
    let status = match up.status() {
        0 => 502,
        status => status,
    };
    let retry_after = up
        .header()
        .and_then(|h| h.headers.get(http::header::RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut body = BytesMut::new();
    let mut complete = false;
    while body.len() <= MAX_ERROR_BODY {
        match up.read_body().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => {
                complete = true;
                break;
            }
            Err(_) => break,
        }
        if up.done() {
            complete = true;
            break;
        }
    }
    if complete {
        up.release(pools, peer).await;
    }
    let mut e = provider.upstream_error(status, &body);
    e.retry_after = retry_after;
    e
}

/// A failure to open a connection to one address (another address may still take it).
fn is_connect_failure(e: &Error) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectTimedout
            | ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::SocketError
    )
}

fn is_timeout(e: &Error) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectTimedout
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout
            | ErrorType::TLSHandshakeTimedout
    )
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use async_trait::async_trait;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use std::time::Duration;

    use super::*;
    use crate::providers::dns::Resolve;
    use crate::providers::upstream::Upstream;
    use crate::providers::ProviderKind;

    /// A resolver with a fixed answer.
    #[derive(Debug)]
    struct Fixed(Vec<SocketAddr>);

    #[async_trait]
    impl Resolve for Fixed {
        async fn lookup(&self, _host: &str, _port: u16) -> std::io::Result<Vec<SocketAddr>> {
            Ok(self.0.clone())
        }
    }

    /// A server that answers every request on its connections with `200 ok`.
    async fn answering_server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut seen = Vec::new();
                    while let Ok(n) = conn.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            seen.clear();
                            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if conn.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn every_resolved_address_is_tried_until_one_takes_the_connection() {
        let live = answering_server().await;
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let timeouts = Timeouts {
            connect: Duration::from_millis(500),
            first_byte: Duration::from_secs(2),
            idle: Duration::from_secs(2),
        };
        let upstream = Upstream::parse("http://provider.test/v1")
            .unwrap()
            .with_resolver(Arc::new(Fixed(vec![closed, live])));
        let provider = Provider::new(
            "p".into(),
            ProviderKind::OpenAiCompatible,
            upstream,
            None,
            timeouts,
            Default::default(),
            false,
        );
        let request = UpstreamRequest {
            method: http::Method::POST,
            path: "/v1/chat/completions".into(),
            body: Bytes::from_static(b"{}"),
            headers: Vec::new(),
            default_headers: Vec::new(),
            dropped_header_prefixes: &[],
            translator: None,
            translator_job: None,
            content_type: None,
            reasoning_dropped: false,
        };
        let client = RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
        let ctx = RequestCtx::new();
        let pools = Pools::new();
        let (up, peer) = send(&pools, &provider, &timeouts, &client, &request, &ctx)
            .await
            .unwrap();
        assert_eq!(up.status(), 200);
        assert_eq!(peer.0.address().as_inet(), Some(&live));
        // the address that took the connection is tried first from then on
        let peers = provider.upstream.peers(&timeouts).await.unwrap();
        assert_eq!(peers[0].0.address().as_inet(), Some(&live));
    }
}
