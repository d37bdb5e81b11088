//! How a request's exchange ended, as the hooks that follow it need to know.

/// How the exchange ended, when it did not end with an error response.
pub enum Finished {
    /// The answer (or an SSE error event) was delivered and the response is complete.
    Complete,
    /// The client went away, or the body broke after its header was sent: the downstream
    /// connection must be dropped, not finished.
    Abort,
}
