//! A provider's answer whose header has been read, over either HTTP version: read on
//! HTTP/1.1 by the gateway itself ([`super::h1_answer`]), on HTTP/2 by Pingora's session.

use std::time::Duration;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::Peer;

use super::h1_answer::H1Answer;
use crate::providers::peer::UpstreamPeer;
use crate::providers::pools::Pools;

/// How long a connection may wait in its pool for the next request.
const POOLED_IDLE: Duration = Duration::from_secs(60);

/// The HTTP/1.1 answer, nearly every one, lives inline; the HTTP/2 session is boxed.
#[allow(clippy::large_enum_variant)]
pub enum ProviderAnswer {
    Http1(H1Answer),
    /// Boxed, as in [`crate::providers::pools::Connection`].
    Http2(Box<HttpSession>),
}

impl ProviderAnswer {
    pub fn header(&self) -> Option<&ResponseHeader> {
        match self {
            Self::Http1(answer) => Some(answer.header()),
            Self::Http2(session) => session.response_header(),
        }
    }

    /// The answer's status; 0 when there is no header (which the exchange never hands on).
    pub fn status(&self) -> u16 {
        self.header().map_or(0, |h| h.status.as_u16())
    }

    /// The next piece of the body; `None` once it is complete.
    pub async fn read_body(&mut self) -> pingora::Result<Option<Bytes>> {
        match self {
            Self::Http1(answer) => answer.read_body().await,
            Self::Http2(session) => session.read_response_body().await,
        }
    }

    /// The body is complete.
    pub fn done(&mut self) -> bool {
        match self {
            Self::Http1(answer) => answer.done(),
            Self::Http2(session) => session.response_done(),
        }
    }

    pub fn set_read_timeout(&mut self, timeout: Duration) {
        match self {
            Self::Http1(answer) => answer.set_read_timeout(Some(timeout)),
            Self::Http2(session) => session.set_read_timeout(Some(timeout)),
        }
    }

    /// The connection back to its pool when it may carry another request (else closed).
    pub async fn release(self, pools: &Pools, peer: &UpstreamPeer) {
        match self {
            Self::Http1(answer) => {
                if let Some(stream) = answer.into_reusable() {
                    pools
                        .http1
                        .release_stream(stream, peer.reuse_hash(), Some(POOLED_IDLE));
                }
            }
            Self::Http2(session) => {
                pools
                    .http2
                    .release_http_session(*session, peer, Some(POOLED_IDLE))
                    .await
            }
        }
    }
}
