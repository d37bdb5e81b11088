//! The upstream request on the wire: its head serialized straight from the client's header
//! and the provider's rules, and written together with the body.
//!
//! Pingora's HTTP/1 client takes a `RequestHeader` (a header map plus a map of name cases,
//! built header by header) and flushes it before the body is written, so a request cost two
//! `sendto`s and a header map built only to be serialized. Every request the gateway sends has
//! its body in hand, so it writes `request line + headers + body` in one write on the pooled
//! stream and reads the answer with a fresh Pingora session on that stream (what that session
//! would remember of the request only matters for HEAD and upgrades, which are never sent).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::{Error, ErrorType, OrErr};
use tokio::io::AsyncWriteExt;

use crate::error::{ErrorKind, GatewayError};
use crate::providers::pools::Connection;
use crate::providers::{Provider, UpstreamRequest};

/// Bodies up to this size are copied behind the head so both leave in one write; larger
/// ones are written after it (the copy would cost more than the extra send).
const COALESCE_LIMIT: usize = 64 * 1024;

/// Message framing and hop-by-hop headers: they describe one connection, so neither a
/// request nor an answer carries them across the gateway (each side is framed anew).
pub(super) const FRAMING_AND_HOP_BY_HOP: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Client request headers never sent upstream besides [`FRAMING_AND_HOP_BY_HOP`]: the
/// client's credentials, headers that tie the request to the client's own account or
/// address, `expect` (answered by the gateway), and `accept-encoding` so answers arrive
/// uncompressed and readable by the gateway.
const REQUEST_HEADERS_DROPPED: &[&str] = &[
    "host",
    "expect",
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "x-goog-api-key",
    "cookie",
    "accept-encoding",
    "openai-organization",
    "openai-project",
    "forwarded",
    "x-forwarded-for",
    "x-real-ip",
];

/// What goes into the head of one upstream request.
pub struct Head<'a> {
    pub provider: &'a Provider,
    pub client: &'a RequestHeader,
    pub request: &'a UpstreamRequest,
    pub request_id: &'a str,
    /// The attempt's span, in place of any `traceparent` the client sent.
    pub traceparent: Option<&'a str>,
}

impl Head<'_> {
    /// `METHOD path HTTP/1.1`, the client's own headers minus [`FRAMING_AND_HOP_BY_HOP`] and
    /// [`REQUEST_HEADERS_DROPPED`],
    /// other APIs' headers and every header set below; then the provider's host, auth and
    /// defaults (a default only where the client sent none), the content type, the body's
    /// length, the request id and the trace context.
    ///
    /// Client headers arrive parsed (no line breaks in them); what the gateway adds itself —
    /// the path, the provider's host and credentials — is checked here, as Pingora's own
    /// serializer would, so a bad byte in config can never split the request.
    pub fn serialize(&self, body_len: usize) -> Result<BytesMut, GatewayError> {
        self.check()?;
        let request = self.request;
        let mut out = BytesMut::with_capacity(512 + 64 * self.client.headers.len());
        out.put_slice(request.method.as_str().as_bytes());
        out.put_slice(b" ");
        out.put_slice(request.path.as_bytes());
        out.put_slice(b" HTTP/1.1\r\n");
        self.each_header(body_len, |name, value| header(&mut out, name, value));
        out.put_slice(b"\r\n");
        Ok(out)
    }

    /// The same request as a header for an HTTP/2 stream: the same headers, the host as the
    /// `:authority` of an `https` URI.
    pub fn request_header(&self, body_len: usize) -> Result<Box<RequestHeader>, GatewayError> {
        self.check()?;
        let request = self.request;
        let upstream = &self.provider.upstream;
        let scheme = if upstream.tls { "https" } else { "http" };
        let uri = format!("{scheme}://{}{}", upstream.authority, request.path);
        // Pingora's HTTP/2 session keeps this header for as long as the stream lasts: no case
        // map (HTTP/2 names are lowercase on the wire) and no room beyond what it holds.
        let mut count = 0;
        self.each_header(body_len, |name, _| count += usize::from(name != "host"));
        let mut head = RequestHeader::build_no_case(request.method.clone(), b"/", Some(count))
            .map_err(|e| GatewayError::internal("building the HTTP/2 request", e))?;
        let uri: http::Uri = uri
            .parse()
            .map_err(|e| GatewayError::internal("building the HTTP/2 request URI", e))?;
        head.set_uri(uri);
        let mut failed = None;
        self.each_header(body_len, |name, value| {
            if name == "host" || failed.is_some() {
                return;
            }
            if let Err(e) = head.append_header(name.to_string(), value) {
                failed = Some(e);
            }
        });
        match failed {
            Some(e) => Err(GatewayError::internal("building the HTTP/2 request", e)),
            None => Ok(Box::new(head)),
        }
    }

    /// What [`Self::serialize`] checks before writing anything: the path and what the
    /// gateway adds from config.
    fn check(&self) -> Result<(), GatewayError> {
        let request = self.request;
        if request.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(unwritable("request path"));
        }
        let authority = self.provider.upstream.authority.as_bytes();
        if breaks_line(authority)
            || request
                .headers
                .iter()
                .any(|(_, v)| breaks_line(v.as_bytes()))
        {
            return Err(unwritable("provider host or credential"));
        }
        Ok(())
    }

    /// Every header of the request, in order, to `emit` (see [`Self::serialize`]).
    fn each_header(&self, body_len: usize, mut emit: impl FnMut(&str, &[u8])) {
        let request = self.request;
        let authority = self.provider.upstream.authority.as_bytes();
        let replaced = |name: &str| {
            request.headers.iter().any(|(n, _)| *n == name)
                || name == "x-request-id"
                || (name == "traceparent" && self.traceparent.is_some())
                || (name == "content-type" && request.content_type.is_some())
        };
        let forwarded = |name: &str| {
            !FRAMING_AND_HOP_BY_HOP.contains(&name)
                && !REQUEST_HEADERS_DROPPED.contains(&name)
                && !request
                    .dropped_header_prefixes
                    .iter()
                    .any(|p| name.starts_with(p))
        };
        let client_sent = |name: &str| forwarded(name) && self.client.headers.contains_key(name);
        for (name, value) in self.client.headers.iter() {
            let name = name.as_str();
            if forwarded(name) && !replaced(name) {
                emit(name, value.as_bytes());
            }
        }
        emit("host", authority);
        for (name, value) in &request.headers {
            emit(name, value.as_bytes());
        }
        for (name, value) in &request.default_headers {
            let set = request.headers.iter().any(|(n, _)| n == name) || client_sent(name);
            if !set {
                emit(name, value.as_bytes());
            }
        }
        if request.content_type.is_some() || !client_sent("content-type") {
            emit("content-type", b"application/json");
        }
        emit(
            "content-length",
            itoa::Buffer::new().format(body_len).as_bytes(),
        );
        emit("x-request-id", self.request_id.as_bytes());
        if let Some(traceparent) = self.traceparent {
            emit("traceparent", traceparent.as_bytes());
        }
    }
}

/// The head of one upstream request, as the session it goes out on takes it.
pub enum WireHead {
    /// Serialized, written with the body in one write.
    H1(BytesMut),
    /// A header for a new stream of a (possibly shared) HTTP/2 connection.
    H2(Box<RequestHeader>),
}

/// A byte that would end a header line early.
fn breaks_line(value: &[u8]) -> bool {
    value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

fn unwritable(what: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::Internal,
        format!("upstream request not writable: {what} holds a control character"),
    )
}

fn header(out: &mut BytesMut, name: &str, value: &[u8]) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Writes the head and the body to the provider, returning the connection to read the
/// answer on (an HTTP/2 session with its read and write timeouts set to `timeout`, the time
/// allowed for the first byte).
pub async fn write_request(
    up: Connection,
    head: WireHead,
    body: Bytes,
    timeout: Duration,
) -> pingora::Result<Connection> {
    let (mut stream, head) = match (up, head) {
        (Connection::Http1(stream), WireHead::H1(head)) => (stream, head),
        (Connection::Http2(mut session), WireHead::H2(head)) => {
            let HttpSession::H2(h2) = session.as_mut() else {
                return Error::e_explain(ErrorType::InternalError, "an HTTP/2 head for HTTP/1");
            };
            h2.write_request_header(head, body.is_empty())?;
            if !body.is_empty() {
                h2.write_request_body(body, true).await?;
            }
            session.set_write_timeout(Some(timeout));
            session.set_read_timeout(Some(timeout));
            return Ok(Connection::Http2(session));
        }
        _ => {
            return Error::e_explain(
                ErrorType::InternalError,
                "the request head was made for another HTTP version",
            )
        }
    };
    let write = async {
        if body.len() <= COALESCE_LIMIT {
            let mut wire = head;
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
    Ok(Connection::Http1(stream))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::providers::ProviderKind;
    use crate::routing::BreakerConfig;

    fn request(headers: Vec<(&'static str, String)>, path: &str) -> UpstreamRequest {
        UpstreamRequest {
            method: http::Method::POST,
            path: path.into(),
            body: Bytes::from_static(b"{}"),
            headers,
            default_headers: vec![("anthropic-version", "2023-06-01")],
            dropped_header_prefixes: &["x-goog-"],
            translator: None,
            translator_job: None,
            content_type: None,
            reasoning_dropped: false,
        }
    }

    fn client(headers: &[(&'static str, &str)]) -> RequestHeader {
        let mut h = RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
        for (name, value) in headers {
            h.append_header(*name, *value).unwrap();
        }
        h
    }

    #[test]
    fn head_keeps_client_headers_and_sets_the_gateways() {
        let provider = Provider::for_tests("p", ProviderKind::OpenAi, BreakerConfig::default());
        let client = client(&[
            ("authorization", "Bearer cai-client"),
            ("x-custom", "1"),
            ("x-goog-api-key", "client-gemini-key"),
            ("anthropic-version", "2024-01-01"),
            ("x-request-id", "client-id"),
            ("traceparent", "00-client"),
        ]);
        let request = request(vec![("authorization", "Bearer sk-p".into())], "/v1/chat");
        let head = Head {
            provider: &provider,
            client: &client,
            request: &request,
            request_id: "req-1",
            traceparent: Some("00-gateway"),
        };
        let head = String::from_utf8(head.serialize(2).unwrap().to_vec()).unwrap();
        assert_eq!(
            head,
            "POST /v1/chat HTTP/1.1\r\nx-custom: 1\r\nanthropic-version: 2024-01-01\r\n\
             host: 127.0.0.1:1\r\nauthorization: Bearer sk-p\r\n\
             content-type: application/json\r\ncontent-length: 2\r\n\
             x-request-id: req-1\r\ntraceparent: 00-gateway\r\n\r\n"
        );
    }

    #[test]
    fn a_line_break_in_what_the_gateway_adds_is_refused() {
        let provider = Provider::for_tests("p", ProviderKind::OpenAi, BreakerConfig::default());
        let client = client(&[]);
        let bad_key = request(
            vec![("authorization", "Bearer k\r\nx-evil: 1".into())],
            "/v1",
        );
        let bad_path = request(Vec::new(), "/v1/models/a b");
        for request in [&bad_key, &bad_path] {
            let head = Head {
                provider: &provider,
                client: &client,
                request,
                request_id: "req-1",
                traceparent: None,
            };
            assert!(head.serialize(2).is_err());
        }
    }
}
