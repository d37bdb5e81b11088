//! Which provider failures are worth another attempt, and how long to wait before one.
//!
//! Retryable: the provider could not be reached or dropped the connection before the client
//! got a byte, it did not answer in time, its stream broke the protocol before its first
//! byte reached the client, or it answered 408, 429, 500, 502, 503, 504 or 529. Any other
//! 4xx is about the request itself and goes back to the client at once, as does anything
//! after a byte reached the client. Two failures happen after the provider may already have
//! billed the answer, and are retried only where the model allows it: a non-streaming
//! request that timed out waiting for its answer, and a whole answer that arrived but could
//! not be read or translated.

use std::time::Duration;

use rand::Rng;

/// First backoff before the same deployment is tried again; doubled per retry.
const BASE_BACKOFF: Duration = Duration::from_millis(100);
/// Longest backoff between two attempts on the same deployment.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The longest `Retry-After` the gateway waits out itself before trying the same deployment
/// again. A longer one is the provider asking for real patience: that deployment is not
/// retried for this request, and the client gets the provider's `Retry-After` if nothing
/// else answers.
pub const LONGEST_HONOURED_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Refused or unreachable: nothing was sent.
    Connect,
    /// The TLS handshake failed (an untrusted or mismatched certificate): nothing was sent.
    Tls,
    /// The connection was not accepted in time: nothing was sent.
    ConnectTimeout,
    /// The request was sent, no answer header came in time.
    FirstByteTimeout,
    /// The connection was closed or reset before the answer was complete.
    Reset,
    /// The answer broke the protocol or its format (bad framing, malformed SSE).
    Malformed,
    /// A whole answer arrived with a success status, and so was billed, but could not be
    /// read or translated.
    Unreadable,
    /// The provider answered this error status.
    Status(u16),
}

impl Failure {
    /// Whether another attempt may hide this failure from the client. A first-byte timeout
    /// of a non-streaming request is retried only when the model allows it (the provider may
    /// still be generating, and billing, the answer), and so is an unreadable whole answer
    /// (the provider billed it; sending the request again bills it twice).
    pub fn retryable(self, stream: bool, resend: Resend) -> bool {
        match self {
            Self::Connect | Self::Tls | Self::ConnectTimeout | Self::Reset | Self::Malformed => {
                true
            }
            Self::FirstByteTimeout => stream || resend.non_stream_timeouts,
            Self::Unreadable => resend.unreadable_answers,
            Self::Status(status) => retryable_status(status),
        }
    }

    /// The metric label (`reason`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::ConnectTimeout => "connect_timeout",
            Self::FirstByteTimeout => "first_byte_timeout",
            Self::Reset => "reset",
            Self::Malformed => "malformed",
            Self::Unreadable => "unreadable",
            Self::Status(408) => "status_408",
            Self::Status(429) => "status_429",
            Self::Status(500) => "status_500",
            Self::Status(502) => "status_502",
            Self::Status(503) => "status_503",
            Self::Status(504) => "status_504",
            Self::Status(529) => "status_529",
            Self::Status(s) if s >= 500 => "status_5xx",
            Self::Status(_) => "status_4xx",
        }
    }

    /// Whether this failure says something about the provider's health (and so counts
    /// toward opening its circuit). A 4xx other than 408/429 is the client's fault.
    pub fn counts_against_provider(self) -> bool {
        self.retryable(true, Resend::ALWAYS)
    }
}

/// What a model lets the gateway send again although the provider may have billed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resend {
    /// A non-streaming request whose answer did not start in time
    /// (`retry_non_stream_timeouts`).
    pub non_stream_timeouts: bool,
    /// A whole answer that could not be read or translated (`retry_unreadable_answers`).
    pub unreadable_answers: bool,
}

impl Resend {
    /// Both: for questions about the provider's health rather than about a request.
    pub const ALWAYS: Self = Self {
        non_stream_timeouts: true,
        unreadable_answers: true,
    };
}

/// 408, 429, 500, 502, 503, 504 and Anthropic's 529 "overloaded".
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504 | 529)
}

/// The wait before retry number `retry` (1-based) on a deployment already tried: exponential
/// from [`BASE_BACKOFF`], capped at [`MAX_BACKOFF`], with "equal jitter" (half fixed, half
/// random) so that clients that failed together do not come back together.
pub fn backoff(retry: u32, rng: &mut impl Rng) -> Duration {
    let exp = BASE_BACKOFF.saturating_mul(1u32 << retry.saturating_sub(1).min(16));
    let capped = exp.min(MAX_BACKOFF);
    let half = capped / 2;
    half + half.mul_f64(rng.gen::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn which_failures_retry() {
        let never = Resend::default();
        for s in [408, 429, 500, 502, 503, 504, 529] {
            assert!(Failure::Status(s).retryable(false, never), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422, 501] {
            assert!(!Failure::Status(s).retryable(true, Resend::ALWAYS), "{s}");
        }
        assert!(Failure::Connect.retryable(false, never));
        assert!(Failure::Reset.retryable(false, never));
        assert!(Failure::Malformed.retryable(false, never));
        assert!(Failure::FirstByteTimeout.retryable(true, never));
        assert!(!Failure::FirstByteTimeout.retryable(false, never));
        let timeouts = Resend {
            non_stream_timeouts: true,
            ..never
        };
        assert!(Failure::FirstByteTimeout.retryable(false, timeouts));
        // a billed answer is sent again only where the model allows it
        assert!(!Failure::Unreadable.retryable(true, never));
        assert!(!Failure::Unreadable.retryable(false, timeouts));
        let unreadable = Resend {
            unreadable_answers: true,
            ..never
        };
        assert!(Failure::Unreadable.retryable(false, unreadable));
        assert!(!Failure::Status(400).counts_against_provider());
        assert!(Failure::FirstByteTimeout.counts_against_provider());
        assert!(Failure::Unreadable.counts_against_provider());
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let first = backoff(1, &mut rng);
            assert!(first >= Duration::from_millis(50) && first <= BASE_BACKOFF);
            let third = backoff(3, &mut rng);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = backoff(30, &mut rng);
            assert!(late >= MAX_BACKOFF / 2 && late <= MAX_BACKOFF);
        }
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(Failure::Status(418).label(), "status_4xx");
        assert_eq!(Failure::Status(599).label(), "status_5xx");
        assert_eq!(Failure::Status(529).label(), "status_529");
    }
}
