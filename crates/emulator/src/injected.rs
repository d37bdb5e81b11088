//! Answers that replace the route's when a fault asks for one: the error of
//! `x-emulator-status` (with `x-emulator-retry-after`) and the unparsable 200 of
//! `x-emulator-malformed`. Kept apart from the router so the pure routing stays readable.

use bytes::Bytes;
use serde_json::Value;

use super::faults::{Faults, Malformed};
use super::{anthropic, azure, bedrock, gemini, openai, Reply, ReplyBody, Request, Wire};

/// Events in a malformed stream: more than one, so a client that skips one bad event still
/// meets another.
const GARBAGE_EVENTS: usize = 3;

/// The answer a fault puts in place of the route's, or None when no fault replaces it.
/// A status fault wins over a malformed answer (it is an error, not a broken success).
pub(super) fn reply(req: &Request, faults: &Faults, wire: Wire) -> Option<Reply> {
    let Some(status) = faults.status else {
        return faults.malformed.map(|kind| malformed_reply(kind, wire));
    };
    let model = serde_json::from_slice::<Value>(req.body)
        .ok()
        .and_then(|v| v.get("model")?.as_str().map(str::to_string));
    let (model, raw) = (model.as_deref(), faults.error_body.as_deref());
    let mut reply = match wire {
        Wire::OpenAi => openai::fault_reply(status, model, raw),
        Wire::Azure => azure::fault_reply(status, model, raw),
        Wire::Anthropic => anthropic::fault_reply(status, model, raw),
        Wire::Bedrock => bedrock::fault_reply(status, raw),
        Wire::Gemini => gemini::fault_reply(status, req.path, raw),
    };
    if let Some(secs) = faults.retry_after {
        set_retry_after(&mut reply, secs);
    }
    Some(reply)
}

/// `retry-after: secs` in place of the format's default; OpenAI's millisecond twin, when
/// present, is kept consistent so a client reading either sees the same wait.
fn set_retry_after(reply: &mut Reply, secs: u64) {
    let had_ms = reply.headers.iter().any(|(n, _)| *n == "retry-after-ms");
    reply
        .headers
        .retain(|(n, _)| *n != "retry-after" && *n != "retry-after-ms");
    reply.headers.push(("retry-after", secs.to_string()));
    if had_ms {
        let ms = secs.saturating_mul(1000).to_string();
        reply.headers.push(("retry-after-ms", ms));
    }
}

/// A 200 answer that does not parse, shaped like the start of the format's real answer so
/// only a parser (not a status or content-type check) can tell it is broken.
fn malformed_reply(kind: Malformed, wire: Wire) -> Reply {
    match kind {
        Malformed::Json => {
            let (content_type, body) = match wire {
                Wire::OpenAi | Wire::Azure => (
                    "application/json",
                    r#"{"id":"chatcmpl-emulator","object":"chat.completion","choices":["#,
                ),
                Wire::Anthropic | Wire::Bedrock => (
                    "application/json",
                    r#"{"id":"msg_emulator","type":"message","role":"assistant","content":["#,
                ),
                Wire::Gemini => (
                    "application/json; charset=UTF-8",
                    r#"{"candidates":[{"content":{"parts":["#,
                ),
            };
            Reply {
                status: 200,
                headers: Vec::new(),
                body: ReplyBody::Full {
                    content_type,
                    bytes: Bytes::from_static(body.as_bytes()),
                },
            }
        }
        Malformed::Sse => {
            let (event, error): (&'static [u8], fn(u64) -> Bytes) = match wire {
                Wire::OpenAi | Wire::Azure => {
                    (b"data: {not json}\n\n", |_| openai::stream_error_event())
                }
                Wire::Anthropic => (b"event: message_start\ndata: {not json}\n\n", |_| {
                    anthropic::stream_error_event()
                }),
                // bytes that are no event-stream frame (its prelude's CRC fails)
                Wire::Bedrock => (
                    b"\x00\x00\x00\x20\x00\x00\x00\x00not an event-stream frame",
                    bedrock::stream_error_event,
                ),
                Wire::Gemini => (b"data: {not json}\r\n\r\n", gemini::sse_error),
            };
            let events = vec![Bytes::from_static(event); GARBAGE_EVENTS];
            let content_type = match wire {
                Wire::Bedrock => "application/vnd.amazon.eventstream",
                _ => "text/event-stream",
            };
            Reply::stream_with(content_type, events, error)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use http::HeaderMap;

    const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

    fn injected(path: &str, faults: &Faults) -> Option<Reply> {
        let headers = HeaderMap::new();
        let req = Request {
            method: "POST",
            path,
            query: "",
            headers: &headers,
            body: CHAT.as_bytes(),
        };
        reply(&req, faults, Wire::of(path))
    }

    fn header<'a>(reply: &'a Reply, name: &str) -> Vec<&'a str> {
        let found = reply.headers.iter().filter(|(n, _)| *n == name);
        found.map(|(_, v)| v.as_str()).collect()
    }

    fn full(reply: &Reply) -> (&'static str, &[u8]) {
        match &reply.body {
            ReplyBody::Full {
                content_type,
                bytes,
            } => (content_type, bytes),
            ReplyBody::Stream { .. } => panic!("expected a whole body"),
        }
    }

    const PATHS: [&str; 3] = [
        "/v1/chat/completions",
        "/v1/messages",
        "/v1beta/models/g:generateContent",
    ];

    #[test]
    fn no_fault_no_replacement() {
        for path in PATHS {
            assert!(injected(path, &Faults::default()).is_none());
        }
    }

    #[test]
    fn status_529_is_a_5xx_error_in_every_format() {
        let f = Faults {
            status: Some(529),
            ..Faults::default()
        };
        let kinds = ["server_error", "overloaded_error", "INTERNAL"];
        for (path, kind) in PATHS.into_iter().zip(kinds) {
            let reply = injected(path, &f).unwrap();
            assert_eq!(reply.status, 529, "{path}");
            let v: Value = serde_json::from_slice(full(&reply).1).unwrap();
            let got = v["error"]["type"]
                .as_str()
                .or(v["error"]["status"].as_str());
            assert_eq!(got, Some(kind), "{path}: {v}");
        }
    }

    #[test]
    fn retry_after_header_replaces_the_default() {
        let f = Faults {
            status: Some(429),
            retry_after: Some(7),
            ..Faults::default()
        };
        for path in PATHS {
            let reply = injected(path, &f).unwrap();
            assert_eq!(
                (reply.status, header(&reply, "retry-after")),
                (429, vec!["7"])
            );
        }
        let openai = injected(PATHS[0], &f).unwrap();
        assert_eq!(header(&openai, "retry-after-ms"), ["7000"]);
        let f = Faults {
            status: Some(500),
            retry_after: Some(2),
            ..Faults::default()
        };
        let reply = injected(PATHS[0], &f).unwrap();
        assert_eq!(header(&reply, "retry-after"), ["2"]);
        assert!(header(&reply, "retry-after-ms").is_empty());
        let f = Faults {
            retry_after: Some(2),
            ..Faults::default()
        };
        assert!(
            injected(PATHS[0], &f).is_none(),
            "retry-after needs a status"
        );
    }

    #[test]
    fn malformed_json_is_a_cut_off_200() {
        let f = Faults {
            malformed: Some(Malformed::Json),
            ..Faults::default()
        };
        for path in PATHS {
            let reply = injected(path, &f).unwrap();
            let (content_type, bytes) = full(&reply);
            assert_eq!(reply.status, 200);
            assert!(content_type.starts_with("application/json"));
            assert!(bytes.starts_with(b"{\""));
            assert!(serde_json::from_slice::<Value>(bytes).is_err(), "{path}");
        }
        let f = Faults {
            status: Some(503),
            ..f
        };
        assert_eq!(injected(PATHS[0], &f).unwrap().status, 503, "status wins");
    }

    #[test]
    fn malformed_sse_is_garbage_events() {
        let f = Faults {
            malformed: Some(Malformed::Sse),
            ..Faults::default()
        };
        for path in PATHS {
            let reply = injected(path, &f).unwrap();
            let (content_type, events, _) = reply.stream_parts();
            assert_eq!((reply.status, content_type), (200, "text/event-stream"));
            assert_eq!(events.len(), GARBAGE_EVENTS);
            for event in events {
                let text = std::str::from_utf8(event).unwrap();
                let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                assert!(serde_json::from_str::<Value>(data).is_err(), "{path}");
                assert!(text.ends_with("\n\n") || text.ends_with("\r\n\r\n"));
            }
        }
    }
}
