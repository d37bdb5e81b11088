//! Server-sent-event framing for byte streams.
//!
//! Upstream chunk borders fall anywhere, even mid-line. The exchange forwards SSE answers in
//! whole events, so that when a provider fails mid-stream the gateway can append an error
//! event the client's SDK parses, instead of gluing it onto half an event. Holding back the
//! unfinished tail delays nothing a client could use: a partial event is not deliverable.

use bytes::{Bytes, BytesMut};

/// Cuts a stream of chunks at the last complete event (a blank line) seen so far.
#[derive(Debug, Default)]
pub struct EventFramer {
    pending: BytesMut,
}

impl EventFramer {
    /// Takes the next chunk; returns everything up to and including the last event boundary,
    /// or `None` while no event is complete. A chunk that ends on a boundary with nothing
    /// held back is returned as is, without a copy (the common case).
    pub fn push(&mut self, chunk: Bytes) -> Option<Bytes> {
        if self.pending.is_empty() {
            return match last_boundary(&chunk, 0) {
                Some(end) if end == chunk.len() => Some(chunk),
                Some(end) => {
                    self.pending.extend_from_slice(&chunk[end..]);
                    Some(chunk.slice(..end))
                }
                None => {
                    self.pending.extend_from_slice(&chunk);
                    None
                }
            };
        }
        // A boundary may straddle the old tail and the new chunk, so rescan 3 bytes back.
        let from = self.pending.len().saturating_sub(3);
        self.pending.extend_from_slice(&chunk);
        last_boundary(&self.pending, from).map(|end| self.pending.split_to(end).freeze())
    }

    /// The held-back tail, at the end of a stream that did not end on a blank line.
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.pending.is_empty()).then(|| self.pending.split().freeze())
    }
}

/// The index just past the last blank line in `buf` that ends at or after `from`. A blank line
/// is a line terminator (`\n`, `\r\n` or `\r`) right after another one.
fn last_boundary(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = buf.len();
    while i > from.max(1) {
        i -= 1;
        let ends_blank_line = match buf[i] {
            b'\n' => {
                let before = if buf[i - 1] == b'\r' { i - 1 } else { i };
                before >= 1 && matches!(buf[before - 1], b'\n' | b'\r')
            }
            b'\r' => buf[i - 1] == b'\r' && buf.get(i + 1) != Some(&b'\n'),
            _ => false,
        };
        if ends_blank_line {
            return Some(i + 1);
        }
    }
    None
}

/// One parsed server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if any (Anthropic names every event; OpenAI and Gemini don't).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE parser: bytes in at any chunk border, whole events out. Comments
/// (`: ping`) and `id:`/`retry:` fields are skipped; events without data are dropped, as
/// the SSE spec says.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    last_was_cr: bool,
}

impl SseParser {
    /// Feeds bytes; appends each event completed by them to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        for &b in bytes {
            match b {
                b'\n' if self.last_was_cr => self.last_was_cr = false,
                b'\n' | b'\r' => {
                    self.last_was_cr = b == b'\r';
                    self.end_line(out);
                }
                _ => {
                    self.last_was_cr = false;
                    self.line.push(b);
                }
            }
        }
    }

    /// End of stream: a last event without its blank line still counts.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            self.end_line(out);
        }
        self.dispatch(out);
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        if self.line.is_empty() {
            self.dispatch(out);
            return;
        }
        // the line is read in place (no copy of it unless it is not UTF-8); only a field's
        // value is copied, into the event being built
        let line = std::mem::take(&mut self.line);
        let text = String::from_utf8_lossy(&line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
        drop(text);
        self.line = line;
        self.line.clear();
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if let Some(data) = self.data.take() {
            out.push(SseEvent { event, data });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_yields_the_same_events_at_every_split() {
        let stream = b"event: message_start\ndata: {\"a\":1}\n\n: ping\n\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]\n\n";
        let expected = vec![
            SseEvent {
                event: Some("message_start".into()),
                data: "{\"a\":1}".into(),
            },
            SseEvent {
                event: None,
                data: "x\ny".into(),
            },
            SseEvent {
                event: None,
                data: "[DONE]".into(),
            },
        ];
        for cut in 0..=stream.len() {
            let mut p = SseParser::default();
            let mut out = Vec::new();
            p.push(&stream[..cut], &mut out);
            p.push(&stream[cut..], &mut out);
            p.finish(&mut out);
            assert_eq!(out, expected, "cut {cut}");
        }
    }

    #[test]
    fn parser_flushes_an_unterminated_last_event() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.push(b"data: {\"x\":1}", &mut out);
        assert!(out.is_empty());
        p.finish(&mut out);
        assert_eq!(out[0].data, "{\"x\":1}");
    }

    const STREAM: &[u8] =
        b"data: {\"a\":1}\n\ndata: {\"b\":2}\r\n\r\nevent: x\ndata: y\n\ndata: [DONE]\n\n";

    #[test]
    fn whole_chunks_pass_without_copy() {
        let mut f = EventFramer::default();
        let chunk = Bytes::from_static(STREAM);
        let out = f.push(chunk.clone()).unwrap();
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        assert!(f.finish().is_none(), "nothing held back");
    }

    #[test]
    fn every_split_point_yields_whole_events_and_the_same_bytes() {
        for cut in 0..=STREAM.len() {
            let mut f = EventFramer::default();
            let mut out = Vec::new();
            for part in [&STREAM[..cut], &STREAM[cut..]] {
                if let Some(b) = f.push(Bytes::copy_from_slice(part)) {
                    assert!(
                        b.ends_with(b"\n\n") || b.ends_with(b"\r\n\r\n"),
                        "cut {cut}"
                    );
                    out.extend_from_slice(&b);
                }
            }
            assert!(f.finish().is_none(), "cut {cut}");
            assert_eq!(out, STREAM, "cut {cut}");
        }
    }

    #[test]
    fn byte_by_byte_emits_each_event_once_complete() {
        let mut f = EventFramer::default();
        let mut events = 0;
        for b in STREAM {
            if f.push(Bytes::copy_from_slice(&[*b])).is_some() {
                events += 1;
            }
        }
        assert_eq!(events, 4);
    }

    #[test]
    fn partial_tail_is_held_and_released_by_finish() {
        let mut f = EventFramer::default();
        assert_eq!(
            f.push(Bytes::from_static(b"data: 1\n\ndata: 2")).unwrap(),
            &b"data: 1\n\n"[..]
        );
        assert_eq!(f.finish().unwrap(), &b"data: 2"[..]);
    }
}
