//! The admin listener: health and readiness for load balancers and orchestrators.
//!
//! Served on its own address (`server.admin_listen`, loopback by default) so that operational
//! endpoints are never reachable through the public API port.

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// The admin HTTP app.
pub struct Admin;

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let (status, body) = match path.as_str() {
            "/health" | "/ready" => (200, r#"{"status":"ok"}"#),
            _ => (404, r#"{"error":"not found"}"#),
        };
        let body = body.as_bytes().to_vec();
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}
