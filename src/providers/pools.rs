//! The gateway's pooled connections to providers, by HTTP version.
//!
//! HTTP/2 goes through Pingora's HTTP connector, whose pool multiplexes streams over shared
//! connections. HTTP/1.1 streams come from Pingora's transport connector and go back to it
//! after a complete answer: the gateway reads those answers itself (`src/proxy/h1_answer.rs`
//! says why), and Pingora's HTTP/1 pool only takes back its own client sessions.

use pingora::connectors::http::Connector;
use pingora::connectors::TransportConnector;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::Stream;

/// The pools every provider's connections come from.
pub struct Pools {
    /// HTTP/2 sessions (and the HTTP/1.1 connections made when a provider declines HTTP/2).
    pub http2: Connector,
    /// HTTP/1.1 streams.
    pub http1: TransportConnector,
}

impl Pools {
    pub fn new() -> Self {
        Self {
            http2: Connector::new(None),
            http1: TransportConnector::new(None),
        }
    }
}

impl Default for Pools {
    fn default() -> Self {
        Self::new()
    }
}

/// A connection to a provider, ready for a request.
pub enum Connection {
    Http1(Stream),
    /// An HTTP/2 session (one stream of a possibly shared connection), boxed: Pingora's
    /// session type is sized for its HTTP/1 variant (~470 bytes).
    Http2(Box<HttpSession>),
}

impl From<HttpSession> for Connection {
    fn from(session: HttpSession) -> Self {
        match session {
            HttpSession::H1(h1) => Connection::Http1(h1.into_inner()),
            other => Connection::Http2(Box::new(other)),
        }
    }
}
