//! What a ledger call can fail with, sorted by what the caller should do about it: the
//! shipper retries [`LedgerError::Unavailable`], the HTTP layer answers 400 for
//! [`LedgerError::BadInput`] and [`LedgerError::BadCursor`], and everything else is logged.
//!
//! Every message is safe to log: a PostgreSQL URL is named only with its password removed
//! (see `postgres::connect::redacted`), and no message quotes a record's content beyond its
//! request id.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerError {
    /// The store cannot be reached right now (connection refused or lost, no answer within
    /// the deadline, the server shutting down): the same call may succeed later.
    Unavailable(String),
    /// The call's arguments or a record cannot be stored or answered as given (a limit out of
    /// range, a count too large for its column): sending it again will fail again.
    BadInput(String),
    /// A paging cursor that this ledger did not make (the HTTP layer answers 400).
    BadCursor(String),
    /// The store answered with an error that is neither of the above (a schema problem, a
    /// full disk): logged and counted, retried by the shipper like `Unavailable`.
    Store(String),
}

impl LedgerError {
    /// Whether sending the same call again may succeed (everything but bad input).
    pub fn is_retryable(&self) -> bool {
        matches!(self, LedgerError::Unavailable(_) | LedgerError::Store(_))
    }
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerError::Unavailable(m) => write!(f, "ledger unavailable: {m}"),
            LedgerError::BadInput(m) => write!(f, "bad ledger input: {m}"),
            LedgerError::BadCursor(m) => write!(f, "bad usage cursor: {m}"),
            LedgerError::Store(m) => write!(f, "ledger store error: {m}"),
        }
    }
}

impl std::error::Error for LedgerError {}
