//! Streaming a provider's answer to the client: as it is (passthrough), or through a
//! translator into the client's format (whole JSON, or event by event).
//!
//! Upstream chunks that are already readable are gathered into one client write (Pingora
//! flushes every write), so a burst of events costs a few syscalls, while a paced stream
//! still reaches the client event by event.

use std::future::Future;
use std::task::Poll;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::Error;
use serde::de::IgnoredAny;

use super::answer_model;
use super::ctx::RequestCtx;
use super::outcome::Finished;
use super::provider_answer::ProviderAnswer;
use super::transport::upstream_failure;
use super::wire::FRAMING_AND_HOP_BY_HOP;
use crate::dialect::Dialect;
use crate::endpoint::Endpoint;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::peer::UpstreamPeer;
use crate::providers::pools::Pools;
use crate::providers::{Provider, ResponseTranslator};
use crate::sse::EventFramer;
use crate::usage::meter::{AnswerFormat, Meter};

/// Most bytes gathered from already-readable upstream chunks into one client write.
const MAX_COALESCE: usize = 64 * 1024;
/// Largest non-streaming answer read whole before it is sent.
const MAX_WHOLE_BODY: usize = 64 * 1024 * 1024;

/// Provider response headers never shown to clients besides [`FRAMING_AND_HOP_BY_HOP`]:
/// facts about the gateway's provider account (its rate limits, organisation, cookies,
/// request ids) and about the provider's servers.
const RESPONSE_HEADERS_DROPPED: &[&str] = &[
    "set-cookie",
    "x-request-id",
    "request-id",
    "openai-organization",
    "openai-project",
    "anthropic-organization-id",
    "server",
    "alt-svc",
    "via",
    "cf-ray",
    "cf-cache-status",
    "apim-request-id",
    "azureml-model-session",
];
/// Azure's `x-ms-*` name the resource's region, deployment and request ids; AWS's
/// `x-amzn-*` the request id and Bedrock's own latency and token counts.
const RESPONSE_HEADER_PREFIXES_DROPPED: &[&str] =
    &["x-ratelimit-", "anthropic-ratelimit-", "x-ms-", "x-amzn-"];

/// The provider side of an exchange whose response header has been read.
pub struct Upstream<'a> {
    pub pools: &'a Pools,
    pub answer: ProviderAnswer,
    pub peer: &'a UpstreamPeer,
    pub provider: &'a Provider,
}

impl Upstream<'_> {
    /// The connection goes back to the pool (only after a complete answer). Boxed: releasing
    /// an HTTP/2 session is ~3 KB of Pingora's state, which a stream's future would hold from
    /// its first byte (an HTTP/1.1 stream's release is a plain call).
    async fn release(self) {
        Box::pin(self.answer.release(self.pools, self.peer)).await;
    }
}

/// One read of the upstream body: what arrived, and how reading ended.
struct Batch {
    data: Option<Bytes>,
    /// The upstream body is complete.
    eos: bool,
    /// Reading failed after `data` (which is still delivered first).
    error: Option<Box<Error>>,
}

/// Reads the upstream body in batches while watching the client.
struct BodyReader {
    pieces: Vec<Bytes>,
    watch_client: bool,
}

impl BodyReader {
    fn new() -> Self {
        Self {
            pieces: Vec::new(),
            watch_client: true,
        }
    }

    /// Waits for the next chunk, then takes whatever else is already readable (never waiting
    /// for more). `None` = the client went away.
    async fn next(
        &mut self,
        up: &mut ProviderAnswer,
        session: &mut ServerSession,
    ) -> Option<Batch> {
        let first = loop {
            tokio::select! {
                biased;
                read = up.read_body() => break read,
                watched = session.read_body_or_idle(true), if self.watch_client => {
                    if watched.is_err() {
                        return None;
                    }
                    self.watch_client = false;
                }
            }
        };
        let first = match first {
            Ok(chunk) => chunk,
            Err(e) => {
                return Some(Batch {
                    data: None,
                    eos: false,
                    error: Some(e),
                })
            }
        };
        let mut eos = first.is_none() || up.done();
        let mut total = first.as_ref().map_or(0, Bytes::len);
        self.pieces.clear();
        self.pieces.extend(first);
        let mut error = None;
        while !eos && total < MAX_COALESCE {
            match ready_now(up.read_body()).await {
                None => break,
                Some(Err(e)) => {
                    error = Some(e);
                    break;
                }
                Some(Ok(chunk)) => {
                    eos = chunk.is_none() || up.done();
                    if let Some(chunk) = chunk {
                        total += chunk.len();
                        self.pieces.push(chunk);
                    }
                }
            }
        }
        Some(Batch {
            data: concat(&mut self.pieces, total),
            eos,
            error,
        })
    }
}

/// Streams a successful answer to the client, translated when `translator` is set. An
/// `Err` means nothing was written yet, so the failover loop may still try elsewhere: a
/// whole answer is read before its header goes out, and a stream's header waits for the
/// stream's first bytes.
pub async fn relay(
    mut up: Upstream<'_>,
    translator: Option<Box<dyn ResponseTranslator>>,
    content_type: Option<&'static str>,
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
) -> Result<Finished, GatewayError> {
    up.answer.set_read_timeout(up.provider.timeouts.idle);
    let streamed = match content_type {
        Some(t) => t == "text/event-stream",
        None => content_type_of(upstream_header(&up)?).starts_with("text/event-stream"),
    };
    let format = match ctx.endpoint {
        Some(Endpoint::Responses) => AnswerFormat::Responses,
        _ => AnswerFormat::from(ctx.dialect),
    };
    ctx.outcome.meter = Some(Meter::new(format, streamed, !ctx.include_usage));
    // Boxed, each sized to its own state (see the attempt's box in the failover loop).
    if !streamed {
        return Box::pin(whole(up, translator, content_type, session, ctx)).await;
    }
    let header = client_header(upstream_header(&up)?, ctx, content_type, None)?;
    Box::pin(stream(up, translator, header, session, ctx)).await
}

/// A whole (non-streaming) answer: read to the end, translated when the client speaks
/// another format, checked, then sent with its length in one go. Until the last byte is in,
/// nothing was sent, so a provider that fails mid-answer, or answers JSON that does not
/// parse, is still an error the failover loop can hide.
async fn whole(
    mut up: Upstream<'_>,
    mut translator: Option<Box<dyn ResponseTranslator>>,
    content_type: Option<&'static str>,
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
) -> Result<Finished, GatewayError> {
    let mut pieces = Vec::new();
    let mut translated = Vec::new();
    let mut received = 0usize;
    let mut reader = BodyReader::new();
    loop {
        let Some(batch) = reader.next(&mut up.answer, session).await else {
            ctx.outcome.client_gone = true;
            return Ok(Finished::Abort);
        };
        if let Some(data) = batch.data {
            received += data.len();
            if received > MAX_WHOLE_BODY {
                return Err(GatewayError::new(
                    ErrorKind::UpstreamProtocol,
                    format!(
                        "provider {} answered more than {MAX_WHOLE_BODY} bytes",
                        up.provider.name
                    ),
                ));
            }
            match translator.as_mut() {
                Some(t) => t
                    .push(&data, &mut translated)
                    .map_err(|e| unreadable(up.provider, e))?,
                None => pieces.push(data),
            }
        }
        if let Some(e) = batch.error {
            return Err(upstream_failure(up.provider, &e, "reading the answer"));
        }
        if batch.eos {
            break;
        }
    }
    let body = match translator.as_mut() {
        Some(t) => {
            t.finish(&mut translated)
                .map_err(|e| unreadable(up.provider, e))?;
            keep_reasoning(ctx, t.as_mut()).await;
            keep_turn(ctx, &translated, false).await;
            let body = Bytes::from(translated);
            if let Some(meter) = ctx.outcome.meter.as_mut() {
                meter.read_answer(&body);
            }
            body
        }
        None => {
            let body = concat(&mut pieces, received).unwrap_or_default();
            let is_json = content_type_of(upstream_header(&up)?).contains("json");
            // the meter's usage parse is also the check that the answer is whole JSON
            let mut well_formed = || match ctx.outcome.meter.as_mut() {
                Some(meter) => meter.read_answer(&body),
                None => serde_json::from_slice::<IgnoredAny>(&body).is_ok(),
            };
            if is_json && !well_formed() {
                return Err(GatewayError::new(
                    ErrorKind::UpstreamUnreadable,
                    format!("provider {} answered malformed JSON", up.provider.name),
                ));
            }
            body
        }
    };
    let body = match answer_model::rename_to(ctx) {
        Some(name) => answer_model::whole(body, name),
        None => body,
    };
    record_owner(ctx, &body).await;
    let header = client_header(upstream_header(&up)?, ctx, content_type, Some(body.len()))?;
    up.release().await;
    if !write_header(session, ctx, header).await || !write_body(session, ctx, body).await {
        return Ok(Finished::Abort);
    }
    Ok(end_body(session, ctx).await)
}

/// A whole answer's translation or parse failure: the provider answered with a success
/// status, so it billed the answer, and the failover loop must not ask again unless the
/// model allows it. A provider error found inside the answer keeps its own kind.
fn unreadable(provider: &Provider, e: GatewayError) -> GatewayError {
    if e.kind != ErrorKind::UpstreamProtocol {
        return e;
    }
    log::warn!(
        "provider {} answered a whole answer the gateway cannot read: {}",
        provider.name,
        e.message
    );
    GatewayError {
        kind: ErrorKind::UpstreamUnreadable,
        failure: Some(crate::routing::Failure::Unreadable),
        ..e
    }
}

/// A streamed answer, byte for byte or translated event by event as it arrives. Passthrough
/// events go out whole, so a failure mid-stream can end them with an error event. The
/// header goes out with the first bytes for the client: a provider that fails before that
/// is an `Err`, which the failover loop may still hide.
async fn stream(
    mut up: Upstream<'_>,
    mut translator: Option<Box<dyn ResponseTranslator>>,
    header: ResponseHeader,
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
) -> Result<Finished, GatewayError> {
    let mut header = Some(header);
    let mut framer = EventFramer::default();
    let mut reader = BodyReader::new();
    let mut translated = Vec::new();
    loop {
        let Some(batch) = reader.next(&mut up.answer, session).await else {
            ctx.outcome.client_gone = true;
            return Ok(Finished::Abort);
        };
        let mut failure = batch
            .error
            .map(|e| upstream_failure(up.provider, &e, "streaming the answer"));
        let mut out = match (translator.as_mut(), batch.data) {
            (Some(t), data) => {
                translated.clear();
                let pushed = match &data {
                    Some(d) => t.push(d, &mut translated),
                    None => Ok(()),
                };
                let done = pushed.and_then(|()| match batch.eos && failure.is_none() {
                    true => t.finish(&mut translated),
                    false => Ok(()),
                });
                if let Err(e) = done {
                    failure = Some(e);
                }
                keep_reasoning(ctx, t.as_mut()).await;
                keep_turn(ctx, &translated, true).await;
                (!translated.is_empty()).then(|| Bytes::copy_from_slice(&translated))
            }
            (None, Some(d)) => framer.push(d),
            (None, None) => None,
        };
        if batch.eos && failure.is_none() && translator.is_none() {
            out = join(out, framer.finish());
        }
        // Before the first byte goes out, a passthrough stream whose first event does not
        // parse is still a failure the failover loop can hide; later ones reach the client.
        // (Only the first: a burst can bring the whole answer at once, and parsing all of it
        // here would double the work of a stream for what the client's parser sees anyway.)
        if header.is_some() && translator.is_none() && failure.is_none() {
            if let Some(events) = out.as_ref().filter(|o| !first_data_is_json(o)) {
                log::debug!(
                    "malformed first events: {:?}",
                    String::from_utf8_lossy(events)
                );
                failure = Some(GatewayError::new(
                    ErrorKind::UpstreamProtocol,
                    format!("provider {} streamed malformed events", up.provider.name),
                ));
                out = None;
            }
        }
        if let Some(out) = out {
            // the first events out: `message_start` names the model the client asked for
            let rename = header.is_some().then(|| answer_model::rename_to(ctx));
            let out = match rename.flatten() {
                Some(name) => answer_model::first_events(out, name),
                None => out,
            };
            record_owner(ctx, &out).await;
            if ctx.outcome.error.is_none() && carries_error_event(&out, ctx) {
                // the provider's own error event reaches the client as it is; the record
                // and the circuit still learn of the failure
                ctx.outcome.error = Some(GatewayError::new(
                    ErrorKind::UpstreamProtocol,
                    format!(
                        "provider {} ended the stream with an error event",
                        up.provider.name
                    ),
                ));
            }
            if let Some(h) = header.take() {
                if !write_header(session, ctx, h).await {
                    return Ok(Finished::Abort);
                }
            }
            if !write_body(session, ctx, out).await {
                return Ok(Finished::Abort);
            }
        }
        if let Some(error) = failure {
            if header.is_some() {
                return Err(error);
            }
            return Ok(fail_mid_stream(session, ctx, error).await);
        }
        if batch.eos {
            break;
        }
    }
    up.release().await;
    if let Some(h) = header.take() {
        if !write_header(session, ctx, h).await {
            return Ok(Finished::Abort);
        }
    }
    Ok(end_body(session, ctx).await)
}

/// Records the key of the response a provider stores, once its id shows in the answer (the
/// JSON object, or a stream's first events): before those bytes go out, so a follow-up sent
/// the moment the answer ends finds the record.
async fn record_owner(ctx: &mut RequestCtx, answer: &[u8]) {
    if ctx.record_owner.is_none() {
        return;
    }
    let Some(id) = crate::ownership::response_id(answer) else {
        return;
    };
    if let Some((owners, owner)) = ctx.record_owner.take() {
        // boxed: a store's write is large state that a stream would hold from its start
        Box::pin(owners.record(&id, owner)).await;
    }
}

/// Keeps a turn's signed reasoning for a chat client that may drop it, once the translator has
/// it whole: before the bytes that end the turn go out, so the next turn finds it.
async fn keep_reasoning(ctx: &mut RequestCtx, translator: &mut dyn ResponseTranslator) {
    if ctx.keep_reasoning.is_none() {
        return;
    }
    let Some(turn) = translator.take_reasoning() else {
        return;
    };
    if let Some((store, key_id)) = ctx.keep_reasoning.take() {
        // boxed, as the owner's record above
        if !Box::pin(store.keep(&key_id, &turn.first_call, &turn.blocks)).await {
            log::info!(
                "request {}: the turn's reasoning ({} bytes) is too large to keep",
                ctx.request_id,
                turn.blocks.len()
            );
        }
    }
}

/// Stores a translated answer as the response the client's request asked to keep, once the
/// answer's response object is in `answer`: before those bytes go out (see
/// `super::conversation`).
async fn keep_turn(ctx: &mut RequestCtx, answer: &[u8], stream: bool) {
    let Some(turn) = ctx.pending_turn.as_ref() else {
        return;
    };
    if Box::pin(turn.store_from(answer, stream, &ctx.request_id)).await {
        ctx.pending_turn = None;
    }
}

/// Whether these whole SSE events, in the client's format, hold an error event: OpenAI's
/// `data: {"error":…}`, Anthropic's `event: error`, the Responses API's `response.failed` or
/// `error` event.
fn carries_error_event(events: &[u8], ctx: &RequestCtx) -> bool {
    let markers: &[&[u8]] = match (ctx.dialect, &ctx.endpoint) {
        (_, Some(Endpoint::Responses)) => &[b"event: response.failed", b"event: error"],
        (Dialect::OpenAi, _) => &[b"data: {\"error\""],
        (Dialect::Anthropic, _) => &[b"event: error"],
    };
    markers.iter().any(|marker| {
        events.starts_with(marker)
            || memchr::memmem::find_iter(events, marker).any(|at| at > 0 && events[at - 1] == b'\n')
    })
}

/// Whether the first `data:` payload of these whole SSE events is JSON (or `[DONE]`); true
/// when there is none (comments, keep-alives).
fn first_data_is_json(events: &[u8]) -> bool {
    events
        .split(|b| *b == b'\n')
        .find_map(|line| line.strip_prefix(b"data:"))
        .map(|data| data.trim_ascii())
        .is_none_or(|data| data == b"[DONE]" || serde_json::from_slice::<IgnoredAny>(data).is_ok())
}

/// Two optional pieces of output as one.
fn join(a: Option<Bytes>, b: Option<Bytes>) -> Option<Bytes> {
    match (a, b) {
        (Some(a), Some(b)) => {
            let mut joined = BytesMut::with_capacity(a.len() + b.len());
            joined.extend_from_slice(&a);
            joined.extend_from_slice(&b);
            Some(joined.freeze())
        }
        (a, b) => a.or(b),
    }
}

async fn write_header(
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
    header: ResponseHeader,
) -> bool {
    crate::drain::close_if_draining(session);
    let ok = session
        .write_response_header(Box::new(header))
        .await
        .is_ok();
    ctx.outcome.client_gone |= !ok;
    ok
}

/// Writes answer bytes, after the meter has read them (and removed the usage chunk the
/// client did not ask for).
async fn write_body(session: &mut ServerSession, ctx: &mut RequestCtx, data: Bytes) -> bool {
    let data = match ctx.outcome.meter.as_mut() {
        Some(meter) => meter.process(data),
        None => data,
    };
    if data.is_empty() {
        return true;
    }
    ctx.outcome.first_byte_at.get_or_insert_with(Instant::now);
    let ok = session.write_response_body(data, false).await.is_ok();
    ctx.outcome.client_gone |= !ok;
    ok
}

async fn end_body(session: &mut ServerSession, ctx: &mut RequestCtx) -> Finished {
    if session
        .write_response_body(Bytes::new(), true)
        .await
        .is_ok()
    {
        Finished::Complete
    } else {
        ctx.outcome.client_gone = true;
        Finished::Abort
    }
}

/// The provider failed after the response began. An SSE answer ends with an error event in
/// the client's dialect; any other body cannot be repaired, so the connection is dropped
/// and the client sees a truncated response, not a wrong one.
async fn fail_mid_stream(
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
    error: GatewayError,
) -> Finished {
    let event = match ctx.endpoint {
        Some(Endpoint::Responses) => error.responses_event(),
        _ => error.sse_event(ctx.dialect),
    };
    ctx.outcome.error = Some(error);
    if !write_body(session, ctx, event).await {
        return Finished::Abort;
    }
    end_body(session, ctx).await
}

fn content_type_of(header: &ResponseHeader) -> &str {
    header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The client's response header: the provider's status and headers minus
/// [`FRAMING_AND_HOP_BY_HOP`] and [`RESPONSE_HEADERS_DROPPED`], with the gateway's request id, the translated content type
/// if any, and a Content-Length when the body length is known (else chunked).
fn client_header(
    upstream: &ResponseHeader,
    ctx: &RequestCtx,
    content_type: Option<&'static str>,
    length: Option<usize>,
) -> Result<ResponseHeader, GatewayError> {
    // No case map: the names come from the provider's header map, lowercased already, and
    // Pingora writes the standard ones title-cased; the map would only cost memory for as
    // long as a stream lasts.
    let build = || -> pingora::Result<ResponseHeader> {
        let mut header =
            ResponseHeader::build_no_case(upstream.status, Some(upstream.headers.len() + 2))?;
        for (name, value) in upstream.headers.iter() {
            let name_str = name.as_str();
            let dropped = FRAMING_AND_HOP_BY_HOP.contains(&name_str)
                || RESPONSE_HEADERS_DROPPED.contains(&name_str)
                || RESPONSE_HEADER_PREFIXES_DROPPED
                    .iter()
                    .any(|p| name_str.starts_with(p));
            if !dropped {
                header.append_header(name.clone(), value.clone())?;
            }
        }
        if let Some(content_type) = content_type {
            header.insert_header(http::header::CONTENT_TYPE, content_type)?;
        }
        match length {
            Some(length) => header.insert_header(http::header::CONTENT_LENGTH, length)?,
            None => header.insert_header(http::header::TRANSFER_ENCODING, "chunked")?,
        }
        header.insert_header("x-request-id", ctx.request_id.as_str())?;
        for (name, value) in &ctx.rate_headers {
            header.insert_header(*name, value.as_str())?;
        }
        Ok(header)
    };
    build().map_err(|e| {
        GatewayError::new(
            ErrorKind::UpstreamProtocol,
            format!("provider response header unusable: {e}"),
        )
    })
}

/// The provider's response header, borrowed from its session (copying it would cost a
/// header map per request, held for a whole stream).
fn upstream_header<'a>(up: &'a Upstream<'_>) -> Result<&'a ResponseHeader, GatewayError> {
    up.answer
        .header()
        .ok_or_else(|| GatewayError::new(ErrorKind::UpstreamProtocol, "no response header"))
}

/// One piece is passed on as is; several are joined into one buffer for one write.
fn concat(pieces: &mut Vec<Bytes>, total: usize) -> Option<Bytes> {
    match pieces.len() {
        0 => None,
        1 => pieces.pop(),
        _ => {
            let mut joined = BytesMut::with_capacity(total);
            for piece in pieces.drain(..) {
                joined.extend_from_slice(&piece);
            }
            Some(joined.freeze())
        }
    }
}

/// Polls a future once with the task's real waker: `Some` if it is ready now, `None` if it
/// would wait. (A no-op waker, as in `now_or_never`, would lose the wake-up.)
async fn ready_now<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        Poll::Ready(match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}
