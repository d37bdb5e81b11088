//! One new HTTP/2 connection at a time per provider.
//!
//! Pingora's connector opens a connection for every request that finds no pooled HTTP/2
//! connection with a free stream, and a connection being set up is in no pool. So a burst of
//! requests to a cold provider (the first seconds after a start or a reload, or 2,000 clients
//! arriving together) opened one TLS connection per request: the load bench measured 144 KB
//! per open stream and streams 1.5 s slower than through nginx, where a handful of
//! connections would carry them all. And a request that takes the pooled connection out to
//! open a stream on it hides it from every other request for that moment (Pingora accepts
//! those false negatives), which opens more.
//!
//! So requests to an HTTP/2 provider take their turn: the one that finds no free stream dials,
//! the others wait for the connection it makes and open their streams on it. Taking a stream on
//! a pooled connection is a few microseconds, so the turns cost nothing measurable; a turn
//! waits at most the provider's connect timeout, after which the request dials on its own, as
//! it would have without the gate. A provider that answers HTTP/2's offer with HTTP/1.1 has a
//! connection per request until its HTTP/1.1 connections are pooled: once it has declined,
//! nothing waits, and its pooled HTTP/1.1 connections are taken first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::peer::UpstreamPeer;
use super::pools::{Connection, Pools};

/// The turns of one provider's requests at its HTTP/2 pool (see the module's doc).
#[derive(Debug, Default)]
pub struct DialGate {
    turn: tokio::sync::Mutex<()>,
    /// The provider chose HTTP/1.1 over HTTP/2: its requests no longer take turns.
    speaks_http1: AtomicBool,
}

impl DialGate {
    /// A connection to `peer`, reused or new (the `bool`), after the requests before it have
    /// taken theirs; waiting at most `wait`. Once the provider has declined HTTP/2, its
    /// pooled HTTP/1.1 connections come first.
    pub async fn session(
        &self,
        pools: &Pools,
        peer: &UpstreamPeer,
        wait: Duration,
    ) -> pingora::Result<(Connection, bool)> {
        if self.speaks_http1.load(Ordering::Relaxed) {
            if let Some(stream) = pools.http1.reused_stream(peer).await {
                return Ok((Connection::Http1(stream), true));
            }
            let (session, reused) = pools.http2.get_http_session(peer).await?;
            return Ok((session.into(), reused));
        }
        // past `wait` the request dials on its own: a dial that hangs holds no one else up
        let _turn = tokio::time::timeout(wait, self.turn.lock()).await.ok();
        let (session, reused) = pools.http2.get_http_session(peer).await?;
        let connection = Connection::from(session);
        if matches!(connection, Connection::Http1(_)) {
            self.speaks_http1.store(true, Ordering::Relaxed);
        }
        Ok((connection, reused))
    }
}
