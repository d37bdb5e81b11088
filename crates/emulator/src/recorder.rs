//! The bounded log of received requests, so tests can check what the gateway sent
//! upstream (`GET /_emulator/requests/{seq}`, `Emulator::record`).

use pingora::http::RequestHeader;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::CONTROL_PREFIX;

/// How many recent requests `GET /_emulator/requests/{seq}` can still return.
pub const RECORD_CAPACITY: usize = 256;
/// Bodies up to this size are kept as text in the record; larger ones only as hash + size.
pub const RECORD_BODY_LIMIT: usize = 65_536;

/// One received request, as `GET /_emulator/requests/{seq}` returns it.
#[derive(Debug, Serialize)]
pub(super) struct Record {
    pub(super) seq: u64,
    method: String,
    /// `HTTP/1.1` or `HTTP/2.0`: how the gateway reached the provider.
    http_version: String,
    /// Path with query string.
    path: String,
    /// `[name, value]` pairs in received order; names lower-case (as HTTP/2 and
    /// `http::HeaderMap` spell them), repeated names grouped; values UTF-8 lossy.
    headers: Vec<[String; 2]>,
    pub(super) body_bytes: usize,
    pub(super) body_sha256: String,
    /// The body as UTF-8 (lossy) when it is at most 64 KiB, else null.
    body: Option<String>,
    /// What the emulator sent back, filled in when the answer ends (see [`Sent`]).
    #[serde(flatten)]
    response: Mutex<Option<ResponseOutcome>>,
}

/// The answer as it left the emulator: tests compare it with what the client received
/// (byte-identical passthrough) and see whether it was cut (client gone, injected drop).
#[derive(Debug, Clone, Serialize)]
pub(super) struct ResponseOutcome {
    response_bytes: usize,
    response_sha256: String,
    /// Every byte of the answer, terminator included, was written.
    response_complete: bool,
    /// Writing ended (completed, failed or dropped on purpose).
    response_finished: bool,
}

/// Running count and hash of the response body bytes written for one request.
#[derive(Default)]
pub(super) struct Sent {
    bytes: usize,
    hasher: Sha256,
}

impl Sent {
    pub(super) fn add(&mut self, data: &[u8]) {
        self.bytes += data.len();
        self.hasher.update(data);
    }
}

impl Record {
    /// Stores how the answer ended.
    pub(super) fn finish(&self, sent: Sent, complete: bool) {
        let outcome = ResponseOutcome {
            response_bytes: sent.bytes,
            response_sha256: hex::encode(sent.hasher.finalize()),
            response_complete: complete,
            response_finished: true,
        };
        if let Ok(mut slot) = self.response.lock() {
            *slot = Some(outcome);
        }
    }
}

/// The bounded request log shared by every connection.
#[derive(Default)]
pub(super) struct Recorder {
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
    pub(super) fn record(&self, req: &RequestHeader, body: &[u8]) -> Arc<Record> {
        let uri = &req.uri;
        let record = Arc::new(Record {
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed) + 1,
            method: req.method.as_str().to_string(),
            http_version: format!("{:?}", req.version),
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
            response: Mutex::new(None),
        });
        let mut log = self.lock();
        if log.len() >= RECORD_CAPACITY {
            log.pop_front();
        }
        log.push_back(record.clone());
        record
    }

    pub(super) fn get(&self, seq: u64) -> Option<Arc<Record>> {
        self.lock().iter().rev().find(|r| r.seq == seq).cloned()
    }

    pub(super) fn last(&self) -> Option<Arc<Record>> {
        let log = self.lock();
        let app = log.iter().filter(|r| !r.path.starts_with(CONTROL_PREFIX));
        app.max_by_key(|r| r.seq).cloned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build(method, path.as_bytes(), None).unwrap();
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
    }

    #[test]
    fn recorder_keeps_the_last_256() {
        let rec = Recorder::default();
        let big = vec![b'x'; RECORD_BODY_LIMIT + 1];
        let first = rec.record(
            &request("POST", "/v1/x?q=1", &[("X-A", "1"), ("b", "2")]),
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
        let second = rec.record(&request("POST", "/v1/y", &[]), &big);
        assert_eq!(second.body, None);
        assert_eq!(second.body_bytes, RECORD_BODY_LIMIT + 1);
        rec.record(&request("GET", "/_emulator/requests/2", &[]), b"");
        assert_eq!(
            rec.last().map(|r| r.seq),
            Some(2),
            "control requests are not 'last'"
        );
        for _ in 0..RECORD_CAPACITY {
            rec.record(&request("GET", "/v1/models", &[]), b"");
        }
        assert!(rec.get(1).is_none());
        assert_eq!(rec.get(4).map(|r| r.seq), Some(4));
        assert_eq!(rec.lock().len(), RECORD_CAPACITY);
    }
}
