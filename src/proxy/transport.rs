//! A provider's transport failure (refused, reset, timed out, malformed) as the client's
//! error, with the failure the failover loop and the circuit breaker read.

use pingora::{Error, ErrorType};

use crate::error::{ErrorKind, GatewayError};
use crate::providers::Provider;
use crate::routing::Failure;

/// A transport failure talking to `provider`, as the client's error: timeouts are 504,
/// everything else (refused, reset, TLS, malformed answer) is 502.
pub(super) fn upstream_failure(provider: &Provider, e: &Error, during: &str) -> GatewayError {
    let t = &provider.timeouts;
    // the failure first (what failover and the breaker read); the client's error follows it
    let failure = match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::TLSHandshakeTimedout => Failure::ConnectTimeout,
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => Failure::FirstByteTimeout,
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::ConnectProxyFailure
        | ErrorType::SocketError
        | ErrorType::BindError => Failure::Connect,
        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert => Failure::Tls,
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError => {
            Failure::Reset
        }
        _ => Failure::Malformed,
    };
    let name = &provider.name;
    let (kind, message) = match failure {
        Failure::ConnectTimeout => (
            ErrorKind::UpstreamTimeout,
            format!(
                "provider {name} did not accept a connection within {} ms",
                t.connect.as_millis()
            ),
        ),
        Failure::FirstByteTimeout if during == "streaming the answer" => (
            ErrorKind::UpstreamTimeout,
            format!(
                "provider {name} sent nothing for {} ms while streaming",
                t.idle.as_millis()
            ),
        ),
        Failure::FirstByteTimeout => (
            ErrorKind::UpstreamTimeout,
            format!(
                "provider {name} did not answer within {} ms",
                t.first_byte.as_millis()
            ),
        ),
        Failure::Connect => (
            ErrorKind::UpstreamUnreachable,
            format!("provider {name} is unreachable ({})", e.etype().as_str()),
        ),
        Failure::Tls => {
            // the reason (an unknown issuer, a name mismatch) is the operator's to read
            log::warn!("provider {name}: TLS handshake failed: {e}");
            (
                ErrorKind::UpstreamUnreachable,
                format!(
                    "provider {name} failed the TLS handshake ({}): its certificate is not \
                     trusted or does not name its host",
                    e.etype().as_str()
                ),
            )
        }
        _ => (
            ErrorKind::UpstreamProtocol,
            format!(
                "provider {name} failed while {during} ({})",
                e.etype().as_str()
            ),
        ),
    };
    log::debug!("upstream failure: {e}");
    GatewayError {
        failure: Some(failure),
        ..GatewayError::new(kind, message)
    }
}
