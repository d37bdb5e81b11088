//! Writing the upstream request: header and body in one write.
//!
//! Pingora's HTTP/1 client flushes the request header before the body is written, so a
//! request costs two `sendto`s, and on loopback each send runs the whole receive path of the
//! other side. Every request the gateway sends has its body in hand, so over HTTP/1 it
//! serializes the header with Pingora's own serializer, appends the body and writes both at
//! once on the pooled stream, then reads the answer with a fresh session on that stream (the
//! state Pingora's session keeps about the request only matters for HEAD and upgrades, which
//! the gateway never sends).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::v1::client::{http_req_header_to_wire, HttpSession as Http1};
use pingora::{Error, ErrorType, OrErr};
use tokio::io::AsyncWriteExt;

use crate::providers::peer::UpstreamPeer;

/// Bodies up to this size are copied behind the header so both leave in one write; larger
/// ones are written after it (the copy would cost more than the extra send).
const COALESCE_LIMIT: usize = 64 * 1024;

/// Writes `header` and `body` to the provider, returning the session to read the answer on
/// (its read and write timeouts set to `timeout`, the time allowed for the first byte).
pub async fn write_request(
    up: HttpSession,
    header: RequestHeader,
    body: Bytes,
    peer: &UpstreamPeer,
    timeout: Duration,
) -> pingora::Result<HttpSession> {
    let h1 = match up {
        HttpSession::H1(h1) => h1,
        mut other => {
            other.set_write_timeout(Some(timeout));
            other.set_read_timeout(Some(timeout));
            other.write_request_header(Box::new(header)).await?;
            other.write_request_body(body, true).await?;
            other.finish_request_body().await?;
            return Ok(other);
        }
    };
    let head = http_req_header_to_wire(&header).ok_or_else(|| {
        Error::explain(
            ErrorType::InvalidHTTPHeader,
            "request line or headers not writable as HTTP/1.1",
        )
    })?;
    let mut stream = h1.into_inner();
    let write = async {
        if body.len() <= COALESCE_LIMIT {
            let mut wire = BytesMut::with_capacity(head.len() + body.len());
            wire.extend_from_slice(&head);
            wire.extend_from_slice(&body);
            stream.write_all(&wire).await?;
        } else {
            stream.write_all(&head).await?;
            stream.write_all(&body).await?;
        }
        stream.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(result) => result.or_err(ErrorType::WriteError, "writing the request")?,
        Err(_) => {
            return Error::e_explain(ErrorType::WriteTimedout, "writing the request (timeout)")
        }
    }
    let mut session = HttpSession::H1(Http1::new_with_options(stream, peer));
    session.set_write_timeout(Some(timeout));
    session.set_read_timeout(Some(timeout));
    Ok(session)
}
