//! In-process provider emulator: an HTTP server that answers exactly like an
//! OpenAI-compatible provider, records every request it receives, and injects faults
//! on demand, so the gateway's tests (and the offline default config) need no network.
//!
//! Routing matches the path *suffix*, so any base-URL prefix works
//! (`/v1/chat/completions`, `/api/v1/chat/completions`, `/chat/completions`):
//!
//! | method | path suffix | answer |
//! |---|---|---|
//! | POST | `/chat/completions` | chat JSON or SSE ([`openai`] module doc has the rules) |
//! | POST | `/embeddings` | deterministic vectors, float or base64 |
//! | GET | `/models`, `/models/{id}` | fixed model list |
//! | GET | `/_emulator/requests/{seq}` or `/_emulator/requests/last` | a recorded request |
//!
//! Every response carries `x-emulator-seq`, `x-emulator-body-bytes` and
//! `x-emulator-body-sha256` describing the request it answers, so a test can check that
//! the gateway forwarded a body byte for byte. Fault headers are listed in [`faults`].

mod faults;
mod openai;

use async_trait::async_trait;
use bytes::Bytes;
use log::debug;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::services::listening::Service;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use faults::Faults;

/// How many recent requests `GET /_emulator/requests/{seq}` can still return.
const RECORD_CAPACITY: usize = 256;
/// Bodies up to this size are kept as text in the record; larger ones only as hash + size.
const RECORD_BODY_LIMIT: usize = 65_536;
/// Largest request body read; a bigger one gets 413 and the connection is closed.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Path prefix of the emulator's own control endpoints (never fault-injected).
const CONTROL_PREFIX: &str = "/_emulator/";

/// The emulator app. A cheap, cloneable handle to shared state (the request log):
/// keep a clone to inspect recorded requests in-process after moving one into
/// [`Emulator::service`].
#[derive(Clone, Default)]
pub struct Emulator {
    recorder: Arc<Recorder>,
}

impl Emulator {
    /// A fresh emulator with an empty request log (sequence numbers start at 1).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a Pingora listening service on `listen` (e.g. "127.0.0.1:8089").
    pub fn service(self, listen: &str) -> Service<Emulator> {
        let mut service = Service::new("provider emulator".to_string(), self);
        service.add_tcp(listen);
        service
    }

    /// The recorded request `seq` as the same JSON `GET /_emulator/requests/{seq}` returns,
    /// or None once it left the log (only the last 256 are kept).
    pub fn record(&self, seq: u64) -> Option<Value> {
        let record = self.recorder.get(seq)?;
        serde_json::to_value(&*record).ok()
    }

    /// The most recent recorded request that was not a `/_emulator/` control request.
    pub fn last_record(&self) -> Option<Value> {
        let record = self.recorder.last()?;
        serde_json::to_value(&*record).ok()
    }
}

// ---------------------------------------------------------------- replies

/// What a request is answered with; built by pure functions, written by [`write_reply`].
pub(crate) struct Reply {
    pub status: u16,
    /// Extra response headers (framing and `x-emulator-*` headers are added when written).
    pub headers: Vec<(&'static str, String)>,
    pub body: ReplyBody,
}

/// A whole body sent with Content-Length, or SSE events sent chunked one by one.
pub(crate) enum ReplyBody {
    Full {
        content_type: &'static str,
        bytes: Bytes,
    },
    Stream(Vec<Bytes>),
}

impl Reply {
    /// A JSON answer with this status. (Serializing the emulator's own wire structs
    /// cannot fail; if it ever did, the answer is a plain-text 500 saying so.)
    pub fn json<T: Serialize + ?Sized>(status: u16, body: &T) -> Self {
        let (status, content_type, bytes) = match serde_json::to_vec(body) {
            Ok(b) => (status, "application/json", Bytes::from(b)),
            Err(e) => (500, "text/plain", Bytes::from(format!("emulator: {e}"))),
        };
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Full {
                content_type,
                bytes,
            },
        }
    }

    /// A 200 `text/event-stream` answer made of these complete events.
    pub fn stream(events: Vec<Bytes>) -> Self {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: ReplyBody::Stream(events),
        }
    }

    /// Replaces the body (keeps status and headers).
    pub fn set_full(&mut self, content_type: &'static str, bytes: Bytes) {
        self.body = ReplyBody::Full {
            content_type,
            bytes,
        };
    }
}

// ---------------------------------------------------------------- recorder

/// One received request, as `GET /_emulator/requests/{seq}` returns it.
#[derive(Debug, Serialize)]
struct Record {
    seq: u64,
    method: String,
    /// Path with query string.
    path: String,
    /// `[name, value]` pairs in received order; names lower-case (as HTTP/2 and
    /// `http::HeaderMap` spell them), repeated names grouped; values UTF-8 lossy.
    headers: Vec<[String; 2]>,
    body_bytes: usize,
    body_sha256: String,
    /// The body as UTF-8 (lossy) when it is at most 64 KiB, else null.
    body: Option<String>,
}

/// The bounded request log shared by every connection.
#[derive(Default)]
struct Recorder {
    next_seq: AtomicU64,
    log: Mutex<VecDeque<Arc<Record>>>,
}

impl Recorder {
    /// The log, even if a panicking thread poisoned the lock (the data stays valid).
    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<Record>>> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a request and returns its record (with its new sequence number).
    fn record(&self, req: &RequestHeader, body: &[u8]) -> Arc<Record> {
        let uri = &req.uri;
        let record = Arc::new(Record {
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed) + 1,
            method: req.method.as_str().to_string(),
            path: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string()),
            headers: req
                .headers
                .iter()
                .map(|(k, v)| {
                    [
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    ]
                })
                .collect(),
            body_bytes: body.len(),
            body_sha256: hex::encode(Sha256::digest(body)),
            body: (body.len() <= RECORD_BODY_LIMIT)
                .then(|| String::from_utf8_lossy(body).into_owned()),
        });
        let mut log = self.lock();
        if log.len() >= RECORD_CAPACITY {
            log.pop_front();
        }
        log.push_back(record.clone());
        record
    }

    fn get(&self, seq: u64) -> Option<Arc<Record>> {
        self.lock().iter().rev().find(|r| r.seq == seq).cloned()
    }

    fn last(&self) -> Option<Arc<Record>> {
        let log = self.lock();
        let app = log.iter().filter(|r| !r.path.starts_with(CONTROL_PREFIX));
        app.max_by_key(|r| r.seq).cloned()
    }
}

// ---------------------------------------------------------------- routing

/// Chooses the answer for one request (pure apart from reading the recorder).
fn route(method: &str, path: &str, body: &[u8], faults: &Faults, recorder: &Recorder) -> Reply {
    if let Some(which) = path.strip_prefix("/_emulator/requests/") {
        if method != "GET" {
            return openai::invalid_method_reply(method, path);
        }
        let found = match which {
            "last" => recorder.last(),
            n => n.parse().ok().and_then(|seq| recorder.get(seq)),
        };
        return match found {
            Some(record) => Reply::json(200, &*record),
            None => openai::error_reply(
                404,
                "No such recorded request (the log keeps the last 256).",
                "invalid_request_error",
                None,
                None,
            ),
        };
    }
    let json = || serde_json::from_slice::<Value>(body);
    if let Some(status) = faults.status {
        let model = json()
            .ok()
            .and_then(|v| v.get("model")?.as_str().map(str::to_string));
        return openai::fault_reply(status, model.as_deref(), faults.error_body.as_deref());
    }
    let post = |answer: fn(&Value, &Faults) -> Reply| match (method, json()) {
        ("POST", Ok(v)) => answer(&v, faults),
        ("POST", Err(_)) => openai::invalid_json_reply(),
        _ => openai::invalid_method_reply(method, path),
    };
    let get = |answer: &dyn Fn() -> Reply| match method {
        "GET" => answer(),
        _ => openai::invalid_method_reply(method, path),
    };
    if path.ends_with("/chat/completions") {
        post(|v, f| openai::chat_reply(v, f.chunks))
    } else if path.ends_with("/embeddings") {
        post(|v, _| openai::embeddings_reply(v))
    } else if path.ends_with("/models") {
        get(&openai::models_reply)
    } else if let Some((_, id)) = path.split_once("/models/").filter(|(_, id)| !id.is_empty()) {
        get(&|| openai::model_reply(id))
    } else {
        openai::invalid_url_reply(method, path)
    }
}

// ---------------------------------------------------------------- server

/// A request body read to the end, or cut at [`MAX_BODY_BYTES`].
struct Body {
    bytes: Vec<u8>,
    complete: bool,
}

async fn read_body(session: &mut ServerSession) -> pingora::Result<Body> {
    let mut bytes = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_BODY_BYTES {
            return Ok(Body {
                bytes,
                complete: false,
            });
        }
    }
    Ok(Body {
        bytes,
        complete: true,
    })
}

/// Writes one event, in two pieces when asked to (to test event reassembly).
async fn write_event(session: &mut ServerSession, event: Bytes, faults: &Faults) -> bool {
    if faults.fragment && event.len() > 1 {
        let mid = event.len() / 2;
        if session
            .write_response_body(event.slice(..mid), false)
            .await
            .is_err()
        {
            return false;
        }
        sleep_ms(faults.fragment_delay_ms).await;
        return session
            .write_response_body(event.slice(mid..), false)
            .await
            .is_ok();
    }
    session.write_response_body(event, false).await.is_ok()
}

async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Writes `reply`; returns false when the connection must not be reused.
async fn write_reply(
    session: &mut ServerSession,
    reply: Reply,
    record: &Record,
    faults: &Faults,
    started: Instant,
) -> bool {
    let Ok(mut resp) = ResponseHeader::build(reply.status, Some(12)) else {
        return false;
    };
    let mut headers = reply.headers;
    headers.push(("x-emulator-seq", record.seq.to_string()));
    headers.push(("x-emulator-body-bytes", record.body_bytes.to_string()));
    headers.push(("x-emulator-body-sha256", record.body_sha256.clone()));
    headers.push((
        "x-request-id",
        format!("req_{}", uuid::Uuid::new_v4().simple()),
    ));
    headers.push(("openai-version", "2020-10-01".to_string()));
    let ms = started.elapsed().as_millis();
    headers.push(("openai-processing-ms", ms.to_string()));
    let events = match reply.body {
        ReplyBody::Full {
            content_type,
            bytes,
        } => {
            headers.push(("content-type", content_type.to_string()));
            headers.push(("content-length", bytes.len().to_string()));
            Err(bytes)
        }
        ReplyBody::Stream(events) => {
            headers.push(("content-type", "text/event-stream".to_string()));
            headers.push(("cache-control", "no-cache".to_string()));
            headers.push(("transfer-encoding", "chunked".to_string()));
            Ok(events)
        }
    };
    for (name, value) in headers {
        if resp.insert_header(name, value).is_err() {
            return false;
        }
    }
    if session.write_response_header(Box::new(resp)).await.is_err() {
        return false;
    }
    let events = match events {
        Err(bytes) => return session.write_response_body(bytes, true).await.is_ok(),
        Ok(events) => events,
    };
    let total = events.len() as u64;
    for (i, event) in (0u64..).zip(events) {
        if faults.drop_after == Some(i) {
            return false;
        }
        if i > 0 {
            sleep_ms(faults.chunk_delay_ms).await;
        }
        if faults.stream_error_after == Some(i) {
            let sent = write_event(session, openai::stream_error_event(), faults).await;
            return sent
                && session
                    .write_response_body(Bytes::new(), true)
                    .await
                    .is_ok();
        }
        if !write_event(session, event, faults).await {
            return false;
        }
    }
    if faults.drop_after == Some(total) {
        return false;
    }
    session
        .write_response_body(Bytes::new(), true)
        .await
        .is_ok()
}

impl Emulator {
    /// Reads, records and answers one request; false when the connection must be dropped.
    async fn serve(&self, session: &mut ServerSession) -> bool {
        let started = Instant::now();
        let expect = session.req_header().headers.get("expect");
        if expect.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
            && session.write_continue_response().await.is_err()
        {
            return false;
        }
        let body = match read_body(session).await {
            Ok(body) => body,
            Err(e) => {
                debug!("emulator: reading request body failed: {e}");
                return false;
            }
        };
        let req = session.req_header();
        let record = self.recorder.record(req, &body.bytes);
        let path = req.uri.path().to_string();
        let method = req.method.as_str().to_string();
        let faults = if path.starts_with(CONTROL_PREFIX) {
            Faults::default()
        } else {
            Faults::from_headers(&req.headers)
        };
        if faults.drop_before_header() {
            return false;
        }
        let reply = if body.complete {
            route(&method, &path, &body.bytes, &faults, &self.recorder)
        } else {
            session.set_keepalive(None);
            let msg = format!("Request body larger than {MAX_BODY_BYTES} bytes.");
            openai::error_reply(413, &msg, "invalid_request_error", None, None)
        };
        sleep_ms(faults.delay_ms).await;
        let reusable = write_reply(session, reply, &record, &faults, started).await;
        reusable && body.complete
    }
}

/// Follows pingora's own `HttpServerApp` impl for `ServeHttp` (read, keepalive, write,
/// finish) but writes bodies in pieces, which streaming and fault injection need.
#[async_trait]
impl HttpServerApp for Emulator {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match session.read_request().await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                debug!("emulator: reading request header failed: {e}");
                return None;
            }
        }
        session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        if !self.serve(&mut session).await {
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(e) => {
                debug!("emulator: finishing the response failed: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> RequestHeader {
        let mut req = RequestHeader::build(method, path.as_bytes(), None).unwrap();
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        let _ = body;
        req
    }

    fn status_of(method: &str, path: &str, body: &str, faults: &Faults) -> (u16, Value) {
        let reply = route(method, path, body.as_bytes(), faults, &Recorder::default());
        let v = match &reply.body {
            ReplyBody::Full { bytes, .. } => serde_json::from_slice(bytes).unwrap_or(Value::Null),
            ReplyBody::Stream(_) => Value::String("stream".into()),
        };
        (reply.status, v)
    }

    const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

    #[test]
    fn recorder_keeps_the_last_256() {
        let rec = Recorder::default();
        let big = vec![b'x'; RECORD_BODY_LIMIT + 1];
        let first = rec.record(
            &request("POST", "/v1/x?q=1", &[("X-A", "1"), ("b", "2")], b""),
            b"{}",
        );
        assert_eq!(first.seq, 1);
        assert_eq!(first.path, "/v1/x?q=1");
        assert_eq!(
            first.headers,
            [
                ["x-a".to_string(), "1".to_string()],
                ["b".into(), "2".into()]
            ]
        );
        assert_eq!(first.body.as_deref(), Some("{}"));
        assert_eq!(first.body_sha256, hex::encode(Sha256::digest(b"{}")));
        let second = rec.record(&request("POST", "/v1/y", &[], b""), &big);
        assert_eq!(second.body, None);
        assert_eq!(second.body_bytes, RECORD_BODY_LIMIT + 1);
        rec.record(&request("GET", "/_emulator/requests/2", &[], b""), b"");
        assert_eq!(
            rec.last().map(|r| r.seq),
            Some(2),
            "control requests are not 'last'"
        );
        for _ in 0..RECORD_CAPACITY {
            rec.record(&request("GET", "/v1/models", &[], b""), b"");
        }
        assert!(rec.get(1).is_none());
        assert_eq!(rec.get(4).map(|r| r.seq), Some(4));
        assert_eq!(rec.lock().len(), RECORD_CAPACITY);
    }

    #[test]
    fn routes_by_suffix_and_method() {
        let f = Faults::default();
        for prefix in ["/v1", "/api/v1", ""] {
            assert_eq!(
                status_of("POST", &format!("{prefix}/chat/completions"), CHAT, &f).0,
                200
            );
            assert_eq!(status_of("GET", &format!("{prefix}/models"), "", &f).0, 200);
        }
        let emb = r#"{"model":"e","input":"x"}"#;
        assert_eq!(status_of("POST", "/v1/embeddings", emb, &f).0, 200);
        assert_eq!(status_of("GET", "/v1/models/gpt-4o", "", &f).0, 200);
        assert_eq!(status_of("GET", "/v1/models/nope", "", &f).0, 404);
        assert_eq!(status_of("GET", "/v1/chat/completions", "", &f).0, 405);
        assert_eq!(status_of("POST", "/v1/models", "", &f).0, 405);
        let (status, v) = status_of("POST", "/v1/nothing", CHAT, &f);
        assert_eq!(
            (status, v["error"]["type"].as_str()),
            (404, Some("invalid_request_error"))
        );
        assert_eq!(
            status_of("POST", "/v1/chat/completions", "{oops", &f).0,
            400
        );
        assert_eq!(status_of("POST", "/v1/chat/completions", "", &f).0, 400);
    }

    #[test]
    fn fault_status_wins_over_routing() {
        let f = Faults {
            status: Some(429),
            ..Faults::default()
        };
        let (status, v) = status_of("POST", "/v1/chat/completions", "{bad json", &f);
        assert_eq!(status, 429);
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        let (status, v) = status_of("POST", "/v1/chat/completions", CHAT, &f);
        assert_eq!(status, 429);
        assert!(v["error"]["message"].as_str().unwrap().contains(" m "));
    }

    // ------------------------------------------------------------ over a real socket

    struct TestSignal(tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>);

    #[async_trait]
    impl pingora::server::ShutdownSignalWatch for TestSignal {
        async fn recv(&self) -> pingora::server::ShutdownSignal {
            if let Some(rx) = self.0.lock().await.take() {
                let _ = rx.await;
            }
            pingora::server::ShutdownSignal::FastShutdown
        }
    }

    /// Sends one raw request and reads until the server closes the connection.
    fn exchange(addr: &str, head: &str, body: &str) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).unwrap();
        let req = format!(
            "{head}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    /// Splits a response into (head, chunk payloads, saw the terminating 0-chunk).
    fn dechunk(raw: &[u8]) -> (String, Vec<Vec<u8>>, bool) {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, mut rest) = text.split_once("\r\n\r\n").unwrap();
        let mut chunks = Vec::new();
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size, 16).unwrap();
            if n == 0 {
                return (head.to_string(), chunks, true);
            }
            chunks.push(after.as_bytes()[..n].to_vec());
            rest = &after[n + 2..];
        }
        (head.to_string(), chunks, false)
    }

    #[test]
    fn serves_streams_faults_and_records_over_tcp() {
        use pingora::server::{configuration::ServerConf, RunArgs, Server};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let emulator = Emulator::new();
        let mut server = Server::new_with_opt_and_conf(None, ServerConf::default());
        server.bootstrap();
        server.add_service(emulator.clone().service(&addr));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let signal = Box::new(TestSignal(tokio::sync::Mutex::new(Some(rx))));
        let handle = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: signal,
            })
        });
        for _ in 0..200 {
            if TcpStream::connect(&addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let stream = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let post = "POST /v1/chat/completions HTTP/1.1\r\nhost: x";

        // JSON with Content-Length and the x-emulator-* headers
        let raw = exchange(&addr, post, CHAT);
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        let sha = hex::encode(Sha256::digest(CHAT.as_bytes()));
        assert!(text.contains(&format!("x-emulator-body-sha256: {sha}")));
        assert!(text.contains(&format!("x-emulator-body-bytes: {}", CHAT.len())));
        assert!(text.contains("content-length: "));

        // fragmented stream: 8 events (role, 5 content, finish, [DONE]) in 16 chunks, reassembling to whole events
        let raw = exchange(&addr, &format!("{post}\r\nx-emulator-fragment: 1"), stream);
        let (head, chunks, ended) = dechunk(&raw);
        assert!(head.contains("content-type: text/event-stream") && ended);
        assert_eq!(chunks.len(), 16);
        let joined = String::from_utf8(chunks.concat()).unwrap();
        assert_eq!(joined.matches("data: ").count(), 8);
        assert!(joined.ends_with("data: [DONE]\n\n"));

        // drop after 2 events: no terminating chunk
        let raw = exchange(
            &addr,
            &format!("{post}\r\nx-emulator-drop-after: 2"),
            stream,
        );
        let (_, chunks, ended) = dechunk(&raw);
        assert_eq!((chunks.len(), ended), (2, false));

        // drop before the header
        assert!(exchange(&addr, &format!("{post}\r\nx-emulator-drop-after: 0"), CHAT).is_empty());

        // the recorder, over HTTP and through the handle
        let seq = emulator.last_record().unwrap()["seq"].as_u64().unwrap();
        let raw = exchange(
            &addr,
            &format!("GET /_emulator/requests/{seq} HTTP/1.1\r\nhost: x"),
            "",
        );
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("\"x-emulator-drop-after\",\"0\""), "{text}");
        assert_eq!(emulator.record(1).unwrap()["body"], CHAT);

        let _ = tx.send(());
        handle.join().unwrap();
    }
}
