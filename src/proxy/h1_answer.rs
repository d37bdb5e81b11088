//! A provider's HTTP/1.1 answer, read on the pooled stream with httparse (the parser Pingora's
//! own client uses), not with Pingora's client session.
//!
//! Why: an open stream keeps its answer's reader for as long as the provider streams, and
//! Pingora's HTTP/1 client session keeps, for that whole time, the raw header's 4 KiB buffer,
//! the parsed header with a second, case-preserving map, and a 64 KiB body buffer (~4.7 KB of
//! it resident). Here the header is parsed into one map, its buffer is dropped once parsed,
//! and between two reads a stream that waits holds no buffer at all: a read that expects to
//! wait goes through a small buffer in the future, and only one that found its buffer full
//! reads the next straight into a large one.
//!
//! Framing follows RFC 9112 §6.3: no body after `HEAD`, 1xx, 204 and 304; chunked when
//! chunked is the last transfer coding; any other transfer coding, or neither a coding nor a
//! length, is read until the provider closes. The connection is reusable only when the body
//! ended by its framing, nothing was read past it, and the provider did not ask to close.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::protocols::Stream;
use pingora::{Error, ErrorType, OrErr, Result};
use tokio::io::AsyncReadExt;

/// Header lines parsed at most (Pingora's client takes as many).
const MAX_HEADERS: usize = 256;
/// Largest answer header accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The header's first read; it grows by as much while the header is incomplete.
const HEAD_READ: usize = 4 * 1024;
/// A read that expects to wait (the last one did not fill its buffer): it goes through this
/// many bytes inside the reading future, so a waiting stream holds no buffer of its own.
const WAITING_READ: usize = 1024;
/// A read that follows a full one, or of a body of known length: straight into a buffer this
/// large (Pingora's body reads are as large).
const BULK_READ: usize = 64 * 1024;
/// Longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Most trailer bytes accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

/// Where reading the body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Bytes left of a body of known length.
    Length(u64),
    /// Before a chunk's size line.
    ChunkSize,
    /// Bytes left of the current chunk.
    ChunkData(u64),
    /// The CRLF that ends a chunk's data.
    ChunkEnd,
    /// After the last chunk: trailer lines (skipped), read so far, until the empty line.
    Trailers(usize),
    /// Until the provider closes the connection.
    UntilClose,
    /// The body is complete.
    Done,
}

/// A provider's answer on an HTTP/1.1 connection, its header read.
pub struct H1Answer {
    stream: Stream,
    header: ResponseHeader,
    framing: Framing,
    /// Bytes read from the stream and not handed out yet; usually none between reads.
    buffered: BytesMut,
    /// The last read filled its buffer: more is probably ready.
    more_ready: bool,
    read_timeout: Option<Duration>,
    /// The connection may carry another request once the body is complete.
    keepalive: bool,
}

impl H1Answer {
    /// Reads the answer's header (skipping 1xx interim answers) from `stream`, on which the
    /// request was just written; `head` says the request was a `HEAD` (no body follows).
    pub async fn read(mut stream: Stream, head: bool, timeout: Option<Duration>) -> Result<Self> {
        let mut buf = BytesMut::with_capacity(HEAD_READ);
        loop {
            if let Some((len, parsed)) = parse_head(&buf)? {
                buf.advance(len);
                if parsed.header.status.is_informational() {
                    continue;
                }
                let framing = framing(&parsed.header, head)?;
                return Ok(Self {
                    // what arrived after the header, in a buffer of its own size: the
                    // header's buffer is not kept for the length of the body
                    more_ready: buf.len() >= WAITING_READ,
                    buffered: BytesMut::from(&buf[..]),
                    stream,
                    keepalive: parsed.keepalive && framing != Framing::UntilClose,
                    header: parsed.header,
                    framing,
                    read_timeout: timeout,
                });
            }
            if buf.len() >= MAX_HEAD {
                return Error::e_explain(
                    ErrorType::InvalidHTTPHeader,
                    "the provider's answer header is too large",
                );
            }
            buf.reserve(HEAD_READ);
            if with_timeout(timeout, stream.read_buf(&mut buf)).await? == 0 {
                return Error::e_explain(
                    ErrorType::ConnectionClosed,
                    "the provider closed the connection before its answer's header",
                );
            }
        }
    }

    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The body is complete.
    pub fn done(&self) -> bool {
        self.framing == Framing::Done
    }

    /// The longest wait for each read from now on.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// The connection, when it may carry another request: the body read to its end by its
    /// framing, nothing past it, and no `Connection: close`.
    pub fn into_reusable(self) -> Option<Stream> {
        (self.done() && self.keepalive && self.buffered.is_empty()).then_some(self.stream)
    }

    /// The next piece of the body; `None` once it is complete. Safe to drop while waiting:
    /// nothing read is lost.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.framing {
                Framing::Done => return Ok(None),
                Framing::UntilClose => {
                    if self.buffered.is_empty() && self.fill().await? == 0 {
                        self.framing = Framing::Done;
                        return Ok(None);
                    }
                    let all = self.buffered.len();
                    return Ok(Some(self.take(all)));
                }
                Framing::Length(left) | Framing::ChunkData(left) => {
                    let what = match self.framing {
                        Framing::Length(_) => "the body its length announced",
                        _ => "a chunk",
                    };
                    self.fill_if_empty(what).await?;
                    let n = self.buffered.len().min(clamp(left));
                    self.framing = match (self.framing, left - n as u64) {
                        (Framing::Length(_), 0) => Framing::Done,
                        (Framing::Length(_), left) => Framing::Length(left),
                        (_, 0) => Framing::ChunkEnd,
                        (_, left) => Framing::ChunkData(left),
                    };
                    return Ok(Some(self.take(n)));
                }
                Framing::ChunkSize => match httparse::parse_chunk_size(&self.buffered) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        self.buffered.advance(len);
                        self.framing = match size {
                            0 => Framing::Trailers(0),
                            size => Framing::ChunkData(size),
                        };
                    }
                    Ok(httparse::Status::Partial) if self.buffered.len() > MAX_CHUNK_LINE => {
                        return bad_chunk("a chunk's size line is too long")
                    }
                    Ok(httparse::Status::Partial) => self.fill_more("a chunk's size line").await?,
                    Err(_) => return bad_chunk("a chunk's size line is malformed"),
                },
                Framing::ChunkEnd => {
                    if self.buffered.len() < 2 {
                        self.fill_more("a chunk").await?;
                        continue;
                    }
                    if &self.buffered[..2] != b"\r\n" {
                        return bad_chunk("a chunk's data is longer than its size");
                    }
                    self.buffered.advance(2);
                    self.framing = Framing::ChunkSize;
                }
                Framing::Trailers(seen) => match self.buffered.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        let line_is_empty = self.buffered[..end].iter().all(|&b| b == b'\r');
                        self.buffered.advance(end + 1);
                        self.framing = if line_is_empty {
                            Framing::Done
                        } else {
                            Framing::Trailers(seen + end + 1)
                        };
                    }
                    None if seen + self.buffered.len() > MAX_TRAILERS => {
                        return bad_chunk("the trailers after the last chunk are too large")
                    }
                    None => self.fill_more("the trailers").await?,
                },
            }
        }
    }

    /// The first `n` buffered bytes; the buffer itself is let go of once empty, so that a
    /// waiting stream keeps no allocation alive.
    fn take(&mut self, n: usize) -> Bytes {
        let piece = self.buffered.split_to(n).freeze();
        if self.buffered.is_empty() {
            self.buffered = BytesMut::new();
        }
        piece
    }

    /// Reads when nothing is buffered; the provider closing first is a truncated body.
    async fn fill_if_empty(&mut self, what: &str) -> Result<()> {
        if self.buffered.is_empty() {
            self.fill_more(what).await?;
        }
        Ok(())
    }

    /// Reads more; the provider closing first is a truncated body.
    async fn fill_more(&mut self, what: &str) -> Result<()> {
        if self.fill().await? == 0 {
            return Error::e_explain(
                ErrorType::ConnectionClosed,
                format!("the provider closed the connection before the end of {what}"),
            );
        }
        Ok(())
    }

    /// One read from the stream, appended to what is buffered; 0 when the provider closed.
    /// A read that expects to wait goes through a small buffer inside this future, so that
    /// no allocation is held while the provider is silent.
    async fn fill(&mut self) -> Result<usize> {
        // a body of known length is sent at once: read it in bulk
        let bulk = matches!(self.framing, Framing::Length(_));
        if bulk || self.more_ready || !self.buffered.is_empty() {
            if self.buffered.capacity() - self.buffered.len() < WAITING_READ {
                self.buffered.reserve(BULK_READ);
            }
            let room = self.buffered.capacity() - self.buffered.len();
            let read = self.stream.read_buf(&mut self.buffered);
            let n = with_timeout(self.read_timeout, read).await?;
            self.more_ready = n == room;
            return Ok(n);
        }
        let mut small = [0u8; WAITING_READ];
        let read = self.stream.read(&mut small);
        let n = with_timeout(self.read_timeout, read).await?;
        self.more_ready = n == small.len();
        self.buffered.extend_from_slice(&small[..n]);
        Ok(n)
    }
}

/// A parsed answer header and whether its connection may be kept.
struct Parsed {
    header: ResponseHeader,
    keepalive: bool,
}

/// The answer header at the start of `buf`, with its length; `None` while incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Parsed)>> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut lines);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Error::e_explain(
                ErrorType::InvalidHTTPHeader,
                format!("the provider's answer header is malformed ({e})"),
            )
        }
    };
    let code = response.code.unwrap_or(0);
    let http11 = response.version == Some(1);
    let mut header = ResponseHeader::build_no_case(code, Some(response.headers.len()))?;
    header.set_version(if http11 {
        http::Version::HTTP_11
    } else {
        http::Version::HTTP_10
    });
    let mut close = !http11;
    // the values are slices of one copy of the head: one allocation rather than one per
    // value, and the client's header, which repeats most of them, clones them by count
    let head = Bytes::copy_from_slice(&buf[..len]);
    for line in response.headers.iter() {
        let name = http::HeaderName::from_bytes(line.name.as_bytes())
            .or_err(ErrorType::InvalidHTTPHeader, "a header name of the answer")?;
        let value = http::HeaderValue::from_maybe_shared(slice_of(&head, buf, line.value)?)
            .or_err(ErrorType::InvalidHTTPHeader, "a header value of the answer")?;
        if name == http::header::CONNECTION {
            for token in line.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    close = false;
                }
            }
        }
        header.append_header(name, value)?;
    }
    Ok(Some((
        len,
        Parsed {
            header,
            keepalive: !close,
        },
    )))
}

/// The bytes of `head` (a copy of the start of `buf`) where `part` (a slice of `buf`) is.
fn slice_of(head: &Bytes, buf: &[u8], part: &[u8]) -> Result<Bytes> {
    if part.is_empty() {
        // httparse points an empty value into `buf` too; an empty one needs no slice
        return Ok(Bytes::new());
    }
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if end <= head.len() => Ok(head.slice(start..end)),
        _ => Error::e_explain(
            ErrorType::InvalidHTTPHeader,
            "a header value outside the head",
        ),
    }
}

/// How the body of an answer with `header` ends (RFC 9112 §6.3).
fn framing(header: &ResponseHeader, head_request: bool) -> Result<Framing> {
    let status = header.status.as_u16();
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Done);
    }
    let codings = header.headers.get_all(http::header::TRANSFER_ENCODING);
    if codings.iter().next().is_some() {
        // the last coding decides: chunked ends by itself, anything else at the close
        let last = codings
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .rfind(|c| !c.is_empty());
        return Ok(match last {
            Some(c) if c.eq_ignore_ascii_case(b"chunked") => Framing::ChunkSize,
            _ => Framing::UntilClose,
        });
    }
    let mut length = None;
    for value in header.headers.get_all(http::header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let parsed = std::str::from_utf8(part.trim_ascii())
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok());
            match (parsed, length) {
                (None, _) => {
                    return Error::e_explain(
                        ErrorType::InvalidHTTPHeader,
                        "the answer's Content-Length is not a number",
                    )
                }
                (Some(n), Some(seen)) if n != seen => {
                    return Error::e_explain(
                        ErrorType::InvalidHTTPHeader,
                        "the answer has two different Content-Lengths",
                    )
                }
                (Some(n), _) => length = Some(n),
            }
        }
    }
    Ok(match length {
        Some(0) => Framing::Done,
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// A body length as a buffer length (what is buffered is never more than `usize`).
fn clamp(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Pingora's own name for this failure.
const INVALID_CHUNK: ErrorType = ErrorType::new("InvalidChunk");

fn bad_chunk<T>(what: &str) -> Result<T> {
    Error::e_explain(
        INVALID_CHUNK,
        format!("the provider's chunked body is malformed: {what}"),
    )
}

/// `read`, failing with a read timeout after `timeout`.
async fn with_timeout(
    timeout: Option<Duration>,
    read: impl std::future::Future<Output = std::io::Result<usize>>,
) -> Result<usize> {
    let read = match timeout {
        Some(t) => tokio::time::timeout(t, read).await.map_err(|_| {
            Error::explain(ErrorType::ReadTimedout, "reading the provider's answer")
        })?,
        None => read.await,
    };
    read.or_err(ErrorType::ReadError, "reading the provider's answer")
}

#[cfg(test)]
#[path = "h1_answer_tests.rs"]
mod tests;
