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
    let failure = match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::TLSHandshakeTimedout => Failure::ConnectTimeout,
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => Failure::FirstByteTimeout,
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::ConnectProxyFailure
        | ErrorType::TLSHandshakeFailure
        | ErrorType::InvalidCert
        | ErrorType::SocketError
        | ErrorType::BindError => Failure::Connect,
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError => {
            Failure::Reset
        }
        _ => Failure::Malformed,
    };
    let (kind, message) = match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::TLSHandshakeTimedout => (
            ErrorKind::UpstreamTimeout,
            format!(
                "provider {} did not accept a connection within {} ms",
                provider.name,
                t.connect.as_millis()
            ),
        ),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout if during == "streaming the answer" => (
            ErrorKind::UpstreamTimeout,
            format!(
                "provider {} sent nothing for {} ms while streaming",
                provider.name,
                t.idle.as_millis()
            ),
        ),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => (
            ErrorKind::UpstreamTimeout,
            format!(
                "provider {} did not answer within {} ms",
                provider.name,
                t.first_byte.as_millis()
            ),
        ),
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::ConnectProxyFailure
        | ErrorType::TLSHandshakeFailure
        | ErrorType::InvalidCert
        | ErrorType::SocketError
        | ErrorType::BindError => (
            ErrorKind::UpstreamUnreachable,
            format!(
                "provider {} is unreachable ({})",
                provider.name,
                e.etype().as_str()
            ),
        ),
        _ => (
            ErrorKind::UpstreamProtocol,
            format!(
                "provider {} failed while {during} ({})",
                provider.name,
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
