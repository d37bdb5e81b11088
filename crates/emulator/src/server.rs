//! The Pingora side: reads a request, records it, and writes the answer in pieces, which
//! streaming and fault injection need (`ServeHttp` can only return a whole body).

use async_trait::async_trait;
use bytes::Bytes;
use log::debug;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::faults::{Faults, MAX_DELAY_MS};
use super::recorder::{Record, Sent};
use super::{route, Emulator, Reply, ReplyBody, Request, Wire, CONTROL_PREFIX};

/// Largest request body read; a bigger one gets 413 and the connection is closed.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

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
async fn write_event(
    session: &mut ServerSession,
    event: Bytes,
    faults: &Faults,
    sent: &mut Sent,
) -> bool {
    if faults.fragment && event.len() > 1 {
        let mid = event.len() / 2;
        if !send(session, sent, event.slice(..mid), false).await {
            return false;
        }
        sleep_ms(faults.fragment_delay_ms).await;
        return send(session, sent, event.slice(mid..), false).await;
    }
    send(session, sent, event, false).await
}

/// Writes body bytes and counts them into `sent`; false when the write failed.
async fn send(session: &mut ServerSession, sent: &mut Sent, data: Bytes, end: bool) -> bool {
    let ok = session.write_response_body(data.clone(), end).await.is_ok();
    if ok {
        sent.add(&data);
    }
    ok
}

async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Holds a started answer open without writing (`x-emulator-stall-after`) until the client
/// leaves or [`MAX_DELAY_MS`] pass: watching the client ends the task with the connection,
/// so stalled answers do not pile up behind a test that gave up on them.
async fn stall(session: &mut ServerSession) {
    let wait = Duration::from_millis(MAX_DELAY_MS);
    // Any outcome (client closed, sent more bytes, or time up) ends the stall.
    let _ = tokio::time::timeout(wait, session.read_body_or_idle(true)).await;
}

/// Writes `reply`; returns false when the connection must not be reused.
async fn write_reply(
    session: &mut ServerSession,
    reply: Reply,
    wire: Wire,
    record: &Record,
    faults: &Faults,
    started: Instant,
    sent: &mut Sent,
) -> bool {
    let Reply {
        status,
        mut headers,
        body,
    } = reply;
    let Ok(mut resp) = ResponseHeader::build(status, Some(12)) else {
        return false;
    };
    headers.push(("x-emulator-seq", record.seq.to_string()));
    headers.push(("x-emulator-body-bytes", record.body_bytes.to_string()));
    headers.push(("x-emulator-body-sha256", record.body_sha256.clone()));
    for (name, value) in wire.provider_headers(started.elapsed().as_millis()) {
        if !headers.iter().any(|(n, _)| *n == name) {
            headers.push((name, value));
        }
    }
    match &body {
        ReplyBody::Full {
            content_type,
            bytes,
        } => {
            headers.push(("content-type", content_type.to_string()));
            headers.push(("content-length", bytes.len().to_string()));
        }
        ReplyBody::Stream { content_type, .. } => {
            headers.push(("content-type", content_type.to_string()));
            headers.push(("cache-control", "no-cache".to_string()));
            headers.push(("transfer-encoding", "chunked".to_string()));
        }
    }
    for (name, value) in headers {
        if resp.insert_header(name, value).is_err() {
            return false;
        }
    }
    if session.write_response_header(Box::new(resp)).await.is_err() {
        return false;
    }
    let (events, error_event) = match body {
        ReplyBody::Full { bytes, .. } => return send(session, sent, bytes, true).await,
        ReplyBody::Stream { events, error, .. } => (events, error),
    };
    if !faults.paces_events() {
        // Nothing to observe between events: one write, as a fast provider's burst
        // arrives (and so the emulator is not the bottleneck of a load test).
        let burst = Bytes::from(events.concat());
        return send(session, sent, burst, true).await;
    }
    let total = events.len() as u64;
    for (i, event) in (0u64..).zip(events) {
        if faults.drop_after == Some(i) {
            return false;
        }
        if i > 0 {
            sleep_ms(faults.chunk_delay_ms).await;
        }
        if faults.stream_error_after == Some(i) {
            return write_event(session, error_event(i), faults, sent).await
                && send(session, sent, Bytes::new(), true).await;
        }
        if faults.stall_after == Some(i) {
            stall(session).await;
            return false;
        }
        if faults.cut_mid_event == Some(i) {
            // An empty write would read as the end of the body; a 1-byte event has no half.
            let half = event.slice(..event.len() / 2);
            if !half.is_empty() {
                send(session, sent, half, false).await;
            }
            return false;
        }
        if !write_event(session, event, faults, sent).await {
            return false;
        }
    }
    if faults.drop_after == Some(total) || faults.cut_mid_event.is_some_and(|n| n >= total) {
        return false;
    }
    if faults.stall_after.is_some_and(|n| n >= total) {
        stall(session).await;
        return false;
    }
    send(session, sent, Bytes::new(), true).await
}

impl Emulator {
    /// Reads, records and answers one request; false when the connection must be dropped.
    async fn serve(&self, session: &mut ServerSession) -> bool {
        let started = Instant::now();
        if !session.req_header().uri.path().starts_with(CONTROL_PREFIX) {
            self.received.fetch_add(1, Ordering::Relaxed);
        }
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
        let path = req.uri.path();
        let wire = Wire::of(path);
        let faults = if path.starts_with(CONTROL_PREFIX) {
            Faults::default()
        } else {
            self.faults.for_request(&req.headers)
        };
        // HTTP/2 names the host in `:authority`, which servers treat as the Host header
        // (RFC 9113, 8.3.1); the routes (SigV4's signed `host` among them) read it there
        let with_host;
        let headers = match (req.headers.contains_key("host"), req.uri.authority()) {
            (false, Some(authority)) => {
                let mut headers = req.headers.clone();
                if let Ok(value) = http::HeaderValue::from_str(authority.as_str()) {
                    headers.insert(http::header::HOST, value);
                }
                with_host = headers;
                &with_host
            }
            _ => &req.headers,
        };
        let reply = if body.complete {
            let request = Request {
                method: req.method.as_str(),
                path,
                query: req.uri.query().unwrap_or(""),
                headers,
                body: &body.bytes,
            };
            route(
                &request,
                &faults,
                &self.recorder,
                &self.stored,
                &self.prompt_cache,
                &self.aws,
                &self.vertex,
            )
        } else {
            session.set_keepalive(None);
            wire.too_large_reply(&format!("Request body larger than {MAX_BODY_BYTES} bytes."))
        };
        sleep_ms(faults.delay_ms).await;
        if faults.drop_before_header() {
            record.finish(Sent::default(), false);
            return false;
        }
        let mut sent = Sent::default();
        let reusable =
            write_reply(session, reply, wire, &record, &faults, started, &mut sent).await;
        record.finish(sent, reusable);
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
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::Value;
    use sha2::{Digest, Sha256};
    use std::io::{Read, Write};
    use std::net::TcpStream;

    const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

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

    /// An emulator serving on a free loopback port; stopped when dropped.
    struct Running {
        addr: String,
        emulator: Emulator,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        handle: Option<std::thread::JoinHandle<()>>,
    }

    impl Running {
        fn start() -> Self {
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
            Running {
                addr,
                emulator,
                stop: Some(tx),
                handle: Some(handle),
            }
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(tx) = self.stop.take() {
                let _ = tx.send(());
            }
            if let Some(handle) = self.handle.take() {
                let _ = handle.join();
            }
        }
    }

    #[test]
    fn serves_streams_faults_and_records_over_tcp() {
        let running = Running::start();
        let (addr, emulator) = (running.addr.as_str(), &running.emulator);
        let stream = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let post = "POST /v1/chat/completions HTTP/1.1\r\nhost: x";

        // JSON with Content-Length and the x-emulator-* headers
        let raw = exchange(addr, post, CHAT);
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        let sha = hex::encode(Sha256::digest(CHAT.as_bytes()));
        assert!(text.contains(&format!("x-emulator-body-sha256: {sha}")));
        assert!(text.contains(&format!("x-emulator-body-bytes: {}", CHAT.len())));
        assert!(text.contains("content-length: "));

        // a plain stream is one burst: 8 events (role, 5 content, finish, [DONE]) in one chunk
        let (head, chunks, ended) = dechunk(&exchange(addr, post, stream));
        assert!(head.contains("transfer-encoding: chunked") && ended);
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            String::from_utf8_lossy(&chunks[0])
                .matches("data: ")
                .count(),
            8
        );

        // fragmented stream: the same 8 events in 16 chunks, reassembling to whole events
        let raw = exchange(addr, &format!("{post}\r\nx-emulator-fragment: 1"), stream);
        let (head, chunks, ended) = dechunk(&raw);
        assert!(head.contains("content-type: text/event-stream") && ended);
        assert_eq!(chunks.len(), 16);
        let joined = String::from_utf8(chunks.concat()).unwrap();
        assert_eq!(joined.matches("data: ").count(), 8);
        assert!(joined.ends_with("data: [DONE]\n\n"));

        // drop after 2 events: no terminating chunk
        let raw = exchange(addr, &format!("{post}\r\nx-emulator-drop-after: 2"), stream);
        let (_, chunks, ended) = dechunk(&raw);
        assert_eq!((chunks.len(), ended), (2, false));

        // drop before the header
        assert!(exchange(addr, &format!("{post}\r\nx-emulator-drop-after: 0"), CHAT).is_empty());

        // the recorder, over HTTP and through the handle
        let seq = emulator.last_record().unwrap()["seq"].as_u64().unwrap();
        let raw = exchange(
            addr,
            &format!("GET /_emulator/requests/{seq} HTTP/1.1\r\nhost: x"),
            "",
        );
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("\"x-emulator-drop-after\",\"0\""), "{text}");
        assert_eq!(emulator.record(1).unwrap()["body"], CHAT);

        // Anthropic: its headers instead of OpenAI's, and its error event mid-stream
        let msgs =
            "POST /v1/messages?beta=true HTTP/1.1\r\nhost: x\r\nanthropic-version: 2023-06-01";
        let body = r#"{"model":"c","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let raw = exchange(
            addr,
            &format!("{msgs}\r\nx-emulator-stream-error-after: 3"),
            body,
        );
        let (head, chunks, ended) = dechunk(&raw);
        assert!(head.contains("request-id: req_011") && !head.contains("openai-version"));
        assert!(head.contains("anthropic-ratelimit-requests-limit: 4000"));
        assert!(head.contains("content-type: text/event-stream") && ended);
        let joined = String::from_utf8(chunks.concat()).unwrap();
        assert_eq!(joined.matches("event: ").count(), 4);
        assert!(joined.starts_with("event: message_start\n"));
        assert!(joined.ends_with("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"));

        // Gemini: a JSON-array stream cut by an error still parses as one array
        let gen = "POST /v1beta/models/g:streamGenerateContent HTTP/1.1\r\nhost: x";
        let body = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;
        let raw = exchange(
            addr,
            &format!("{gen}\r\nx-emulator-stream-error-after: 2"),
            body,
        );
        let (head, chunks, ended) = dechunk(&raw);
        assert!(head.contains("content-type: application/json; charset=UTF-8") && ended);
        assert!(head.contains("server-timing: gfet4t7; dur=") && !head.contains("request-id"));
        let v: serde_json::Value = serde_json::from_slice(&chunks.concat()).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
        assert_eq!(v[2]["error"]["status"], "UNAVAILABLE");
    }

    /// Reads what arrives on `s` until the server closes it or it stays quiet for `quiet`;
    /// true when it was closed.
    fn read_until_quiet(s: &mut TcpStream, quiet: Duration, out: &mut Vec<u8>) -> bool {
        s.set_read_timeout(Some(quiet)).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    /// Waits until the emulator has finished its answer to request `seq`.
    fn finished(emulator: &Emulator, seq: u64) -> bool {
        for _ in 0..300 {
            if emulator.record(seq).unwrap()["response_finished"] == true {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn instance_faults_counts_cuts_stalls_and_malformed_over_tcp() {
        let running = Running::start();
        let (addr, emulator) = (running.addr.as_str(), &running.emulator);
        let stream = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let post = "POST /v1/chat/completions HTTP/1.1\r\nhost: x";
        assert_eq!(emulator.requests_received(), 0);

        // cut mid-event: 2 whole events, half of the third, no terminating chunk
        let raw = exchange(
            addr,
            &format!("{post}\r\nx-emulator-cut-mid-event: 2"),
            stream,
        );
        let (_, chunks, ended) = dechunk(&raw);
        assert_eq!((chunks.len(), ended), (3, false));
        let third = String::from_utf8_lossy(&chunks[2]).into_owned();
        assert!(
            third.starts_with("data: {") && !third.ends_with("\n\n"),
            "{third}"
        );

        // stall after 1 event: the header and one event, then silence (no close) ...
        let mut s = TcpStream::connect(addr).unwrap();
        let req = format!(
            "{post}\r\nx-emulator-stall-after: 1\r\ncontent-length: {}\r\n\r\n{stream}",
            stream.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        assert!(!read_until_quiet(
            &mut s,
            Duration::from_millis(300),
            &mut out
        ));
        let (head, chunks, ended) = dechunk(&out);
        assert!(head.starts_with("HTTP/1.1 200") && !ended);
        assert_eq!(chunks.len(), 1);
        let seq = emulator.last_record().unwrap()["seq"].as_u64().unwrap();
        assert_eq!(
            emulator.record(seq).unwrap()["response_finished"],
            Value::Null
        );
        // ... until the client leaves, which ends the stall
        drop(s);
        assert!(finished(emulator, seq), "the stall ends with the client");

        // instance-wide faults: every request gets them, a request header overrides them
        emulator.set_faults(&[
            ("x-emulator-status", "529"),
            ("x-emulator-retry-after", "3"),
        ]);
        let raw = exchange(addr, "POST /v1/messages HTTP/1.1\r\nhost: x", "{}");
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 529"), "{text}");
        assert!(text.contains("retry-after: 3\r\n") && text.contains("overloaded_error"));
        let raw = exchange(addr, &format!("{post}\r\nx-emulator-status: 503"), CHAT);
        assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 503"));
        // control requests stay fault-free and uncounted
        let raw = exchange(addr, "GET /_emulator/requests/last HTTP/1.1\r\nhost: x", "");
        assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"));
        emulator.set_faults(&[]);
        let raw = exchange(addr, post, CHAT);
        assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"));

        // malformed JSON: a 200 with a correct Content-Length and a body that does not parse
        let raw = exchange(addr, &format!("{post}\r\nx-emulator-malformed: json"), CHAT);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        assert!(serde_json::from_str::<Value>(body).is_err());

        // malformed SSE: garbage events, ended cleanly
        let raw = exchange(
            addr,
            &format!("{post}\r\nx-emulator-malformed: sse"),
            stream,
        );
        let (head, chunks, ended) = dechunk(&raw);
        assert!(head.contains("content-type: text/event-stream") && ended);
        assert_eq!(
            String::from_utf8(chunks.concat()).unwrap(),
            "data: {not json}\n\n".repeat(3)
        );

        assert_eq!(emulator.requests_received(), 7);
    }
}
