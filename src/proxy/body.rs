//! Reading the client's request body: bounded by `max_body_bytes`, `Expect: 100-continue`
//! answered, and an oversized body drained so the 413 reaches the client.

use bytes::{Bytes, BytesMut};
use pingora::protocols::http::ServerSession;

use super::Gateway;
use crate::error::{ErrorKind, GatewayError};

impl Gateway {
    /// Reads the whole request body, refusing anything over `max_body_bytes` before reading
    /// it when Content-Length says so, and answering `Expect: 100-continue` (curl waits a
    /// second for it otherwise).
    pub(super) async fn read_body(
        &self,
        session: &mut ServerSession,
    ) -> Result<Bytes, GatewayError> {
        let header = session.req_header();
        let too_large = || {
            GatewayError::new(
                ErrorKind::BodyTooLarge,
                format!(
                    "request body is larger than the gateway's limit of {} bytes",
                    self.max_body_bytes
                ),
            )
        };
        let declared = header
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let expects_continue = header
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if declared.is_some_and(|len| len > self.max_body_bytes) {
            // A client waiting for `100 Continue` sends nothing more; any other is already
            // sending, and must be read from for the 413 to reach it.
            if !expects_continue {
                discard_rest_of_body(session, self.max_body_bytes.saturating_mul(4)).await;
            }
            session.set_keepalive(None);
            return Err(too_large());
        }
        if expects_continue {
            session.write_continue_response().await.map_err(|e| {
                GatewayError::new(ErrorKind::InvalidRequest, format!("client connection: {e}"))
            })?;
        }
        let mut body = BytesMut::with_capacity(declared.unwrap_or(0).min(self.max_body_bytes));
        let limit = self.client_timeouts.body;
        let read = tokio::time::timeout(limit, async {
            loop {
                let chunk = session.read_request_body().await.map_err(|e| {
                    GatewayError::invalid("body", format!("could not read the request body: {e}"))
                })?;
                let Some(chunk) = chunk else { break };
                if body.len() + chunk.len() > self.max_body_bytes {
                    discard_rest_of_body(session, self.max_body_bytes.saturating_mul(4)).await;
                    session.set_keepalive(None);
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(())
        })
        .await;
        match read {
            Ok(Ok(())) => Ok(body.freeze()),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                session.set_keepalive(None);
                Err(GatewayError::new(
                    ErrorKind::ClientTimeout,
                    format!(
                        "the request body did not arrive within {} ms",
                        limit.as_millis()
                    ),
                ))
            }
        }
    }
}

/// Reads and drops what is left of an oversized body (up to `limit` bytes), so the 413 is
/// read by the client: closing a socket with unread input makes the kernel reset the
/// connection, and the reset can destroy the answer before the client reads it.
async fn discard_rest_of_body(session: &mut ServerSession, limit: usize) {
    let mut discarded = 0usize;
    while discarded < limit {
        match session.read_request_body().await {
            Ok(Some(chunk)) => discarded += chunk.len(),
            Ok(None) | Err(_) => break,
        }
    }
}
