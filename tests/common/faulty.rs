//! A misbehaving HTTP/1.1 upstream on a real loopback socket: it reads each request whole,
//! then stalls, resets or closes instead of answering properly — the transport failures the
//! in-process emulator (a well-behaved Pingora server) cannot produce, for testing the
//! gateway's retries and circuit breakers.
//!
//! Plain std threads: one accept loop plus one thread per connection, every blocking read
//! bounded by [`POLL`] so each thread sees the stop flag and the server's `Drop` can join
//! them all (a leaked thread holding a socket would hang the test binary or the gateway).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How the server fails each request, after reading it whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehave {
    /// Never answers; holds the connection open until the server is dropped (or the client
    /// closes it).
    Stall,
    /// Resets the connection (RST, `SO_LINGER` 0) without a response byte.
    ResetBeforeHeader,
    /// Sends a 200 header declaring [`DECLARED_BODY_LEN`] bytes of JSON, then
    /// [`PARTIAL_BODY_LEN`] bytes of it, then resets the connection.
    ResetMidBody,
    /// Closes the connection normally (FIN) without a response byte.
    CloseBeforeHeader,
}

/// The `content-length` a [`Misbehave::ResetMidBody`] answer declares.
pub const DECLARED_BODY_LEN: usize = 500;
/// The body bytes a [`Misbehave::ResetMidBody`] answer sends before the reset.
pub const PARTIAL_BODY_LEN: usize = 100;
/// The start of a chat completion; its first [`PARTIAL_BODY_LEN`] bytes are sent.
const PARTIAL_BODY: &str = concat!(
    r#"{"id":"chatcmpl-faulty","object":"chat.completion","created":1700000000,"#,
    r#""model":"faulty","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"#,
);

/// How long a blocked read waits before looking at the stop flag again.
const POLL: Duration = Duration::from_millis(20);
/// Pause between the partial answer and the reset, so the client reads the header and the
/// partial body before the RST arrives (then the failure is mid-body, not before the header).
const BEFORE_RESET: Duration = Duration::from_millis(100);
/// Largest request header read; the gateway never sends more.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    connections: AtomicU64,
    requests: AtomicU64,
}

/// A running misbehaving upstream on `127.0.0.1:port`; stopped (every thread joined, every
/// socket closed) when dropped.
pub struct FaultyServer {
    pub port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl FaultyServer {
    /// Binds a free loopback port and serves `mode` on a background thread.
    pub fn start(mode: Misbehave) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("local addr").port();
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            std::thread::spawn(move || accept_loop(listener, mode, &shared))
        };
        Self {
            port,
            shared,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:{port}`, for a provider's `base_url` (append the path prefix).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests whose header was read to the end so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: TcpListener, mode: Misbehave, shared: &Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                workers.push(std::thread::spawn(move || serve(stream, mode, &shared)));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL / 4),
            Err(_) => std::thread::sleep(POLL),
        }
        workers.retain(|w| !w.is_finished());
    }
    // Refuse new connections first, then wait for the open ones to close.
    drop(listener);
    for worker in workers {
        let _ = worker.join();
    }
}

/// Reads one request, then misbehaves as `mode` says.
fn serve(mut stream: TcpStream, mode: Misbehave, shared: &Shared) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    if stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let Some((head_len, mut buf)) = read_head(&mut stream, &shared.stop) else {
        return;
    };
    shared.requests.fetch_add(1, Ordering::SeqCst);
    if !read_body(&mut stream, &shared.stop, head_len, &mut buf) {
        return;
    }
    match mode {
        Misbehave::Stall => {
            // Discard anything more the client sends; end only when it closes or on stop.
            let mut scratch = [0u8; 4096];
            while read_some(&mut stream, &shared.stop, &mut scratch).is_some() {}
        }
        Misbehave::ResetBeforeHeader => reset(stream),
        Misbehave::ResetMidBody => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 content-length: {DECLARED_BODY_LEN}\r\n\r\n"
            );
            let mut answer = head.into_bytes();
            answer.extend_from_slice(&PARTIAL_BODY.as_bytes()[..PARTIAL_BODY_LEN]);
            if stream
                .write_all(&answer)
                .and_then(|()| stream.flush())
                .is_ok()
            {
                std::thread::sleep(BEFORE_RESET);
            }
            reset(stream);
        }
        Misbehave::CloseBeforeHeader => {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Closes with an RST instead of a FIN: `SO_LINGER` 0, then close. (tokio's `TcpSocket`
/// wraps the fd without a runtime; socket2 is not a direct dependency.)
fn reset(stream: TcpStream) {
    let socket = tokio::net::TcpSocket::from_std_stream(stream);
    let _ = socket.set_zero_linger();
    drop(socket);
}

/// One read; None when the client closed, the read failed, or the server is stopping.
fn read_some(stream: &mut TcpStream, stop: &AtomicBool, buf: &mut [u8]) -> Option<usize> {
    loop {
        match stream.read(buf) {
            Ok(0) => return None,
            Ok(n) => return Some(n),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if stop.load(Ordering::SeqCst) {
                    return None;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Reads until the end of the request header: (header length with its blank line, every
/// byte read so far, which may include body bytes).
fn read_head(stream: &mut TcpStream, stop: &AtomicBool) -> Option<(usize, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            return Some((at + 4, buf));
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = read_some(stream, stop, &mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads the rest of the body as the header frames it (content-length or chunked); false
/// when the client went away first.
fn read_body(
    stream: &mut TcpStream,
    stop: &AtomicBool,
    head_len: usize,
    buf: &mut Vec<u8>,
) -> bool {
    let head = String::from_utf8_lossy(&buf[..head_len]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix(':'))
            .map(str::trim)
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut chunk = [0u8; 8192];
    loop {
        let body = &buf[head_len..];
        let done = if chunked {
            chunked_end(body)
        } else {
            body.len() >= length
        };
        if done {
            return true;
        }
        let Some(n) = read_some(stream, stop, &mut chunk) else {
            return false;
        };
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// True when `body` holds a whole chunked body (the last chunk and the trailer's blank line).
fn chunked_end(mut body: &[u8]) -> bool {
    loop {
        let Some(line_end) = find(body, b"\r\n") else {
            return false;
        };
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return true; // not chunked after all: nothing more to wait for
        };
        body = &body[line_end + 2..];
        if size == 0 {
            // Trailer fields (usually none), each a line, then a blank line.
            return body.starts_with(b"\r\n") || find(body, b"\r\n\r\n").is_some();
        }
        if body.len() < size + 2 {
            return false;
        }
        body = &body[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
