//! The framing side of every translator, written once: an [`EventTranslator`] says what one
//! upstream event becomes and what the end of the stream does; [`Events`] frames the upstream
//! bytes into events (at any chunk border) and hands them over in order. A whole answer's
//! [`WholeTranslator`] gets all of it at once from [`Buffered`].

use crate::error::GatewayError;
use crate::providers::{ResponseTranslator, TurnReasoning};
use crate::sse::{SseEvent, SseParser};

/// A stream translator that works event by event.
pub(crate) trait EventTranslator: Send + Sync {
    /// One complete upstream event; appends whatever it makes for the client to `out`.
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<(), GatewayError>;
    /// The upstream stream ended (its last event was handed over before): closes the client's
    /// stream, or fails when the upstream was cut short.
    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError>;
    /// See [`ResponseTranslator::take_reasoning`].
    fn take_reasoning(&mut self) -> Option<TurnReasoning> {
        None
    }
}

/// An [`EventTranslator`] behind the SSE framing of its upstream's bytes.
pub(crate) struct Events<T> {
    parser: SseParser,
    /// Events framed and not yet handed over (kept to reuse its allocation).
    pending: Vec<SseEvent>,
    translator: T,
}

impl<T> Events<T> {
    pub(crate) fn new(translator: T) -> Self {
        Self {
            parser: SseParser::default(),
            pending: Vec::new(),
            translator,
        }
    }

    /// Hands every framed event over, in order; after a failure the rest are dropped.
    fn hand_over(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError>
    where
        T: EventTranslator,
    {
        let translator = &mut self.translator;
        self.pending
            .drain(..)
            .try_for_each(|event| translator.event(&event, out))
    }
}

/// A translator of a whole (non-streamed) answer, which it can only read complete.
pub(crate) trait WholeTranslator: Send + Sync {
    /// The whole upstream body; appends the client's answer to `out`.
    fn whole(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<(), GatewayError>;
    /// See [`ResponseTranslator::take_reasoning`].
    fn take_reasoning(&mut self) -> Option<TurnReasoning> {
        None
    }
}

/// A [`WholeTranslator`] behind the buffering of its upstream's bytes.
pub(crate) struct Buffered<T> {
    body: Vec<u8>,
    translator: T,
}

impl<T> Buffered<T> {
    pub(crate) fn new(translator: T) -> Self {
        Self {
            body: Vec::new(),
            translator,
        }
    }
}

impl<T: WholeTranslator> ResponseTranslator for Buffered<T> {
    fn push(&mut self, chunk: &[u8], _out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.body.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.translator.whole(&self.body, out)
    }

    fn take_reasoning(&mut self) -> Option<TurnReasoning> {
        self.translator.take_reasoning()
    }
}

impl<T: EventTranslator> ResponseTranslator for Events<T> {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.parser.push(chunk, &mut self.pending);
        self.hand_over(out)
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.parser.finish(&mut self.pending);
        self.hand_over(out)?;
        self.translator.end(out)
    }

    fn take_reasoning(&mut self) -> Option<TurnReasoning> {
        self.translator.take_reasoning()
    }
}
