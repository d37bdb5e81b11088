//! The admin listener: health and readiness, Prometheus metrics, and the operator API.
//!
//! Served on its own address (`server.admin_listen`, loopback by default) so operational
//! endpoints are never reachable through the public API port. `/admin/*` also needs the
//! admin token (`Authorization: Bearer …`, from the variable named by `admin_token_env`).

use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::metrics;
use crate::secret::Secret;
use crate::usage::api::{usage_json, UsageQuery};
use crate::usage::sink::UsageStore;

/// The admin HTTP app.
pub struct Admin {
    token: Option<Secret>,
    history: Arc<dyn UsageStore>,
}

impl Admin {
    pub fn new(token: Option<Secret>, history: Arc<dyn UsageStore>) -> Self {
        Self { token, history }
    }

    fn authorized(&self, session: &ServerSession) -> Result<(), (u16, serde_json::Value)> {
        let Some(token) = &self.token else {
            return Err((
                403,
                json!({"error": {"message": "the admin API is disabled: set server.admin_token_env", "type": "permission_error"}}),
            ));
        };
        let presented = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Compare hashes so the comparison time says nothing about the token.
        let matches = presented
            .is_some_and(|p| crate::auth::hash_key(p) == crate::auth::hash_key(token.expose()));
        if matches {
            Ok(())
        } else {
            Err((
                401,
                json!({"error": {"message": "missing or wrong admin token", "type": "authentication_error"}}),
            ))
        }
    }

    async fn route(&self, session: &ServerSession) -> (u16, &'static str, Vec<u8>) {
        let header = session.req_header();
        let path = header.uri.path();
        let json_answer = |status: u16, v: serde_json::Value| {
            (status, "application/json", v.to_string().into_bytes())
        };
        match path {
            "/health" | "/ready" => json_answer(200, json!({"status": "ok"})),
            "/metrics" => (200, "text/plain; version=0.0.4", metrics::render()),
            "/admin/usage" => {
                if let Err((status, body)) = self.authorized(session) {
                    return json_answer(status, body);
                }
                let query = header.uri.query();
                let key = query
                    .unwrap_or_default()
                    .split('&')
                    .find_map(|p| p.strip_prefix("key="))
                    .filter(|k| !k.is_empty());
                let Some(key) = key else {
                    return json_answer(
                        400,
                        json!({"error": {"message": "`key` (a key id, k_…) is required", "type": "invalid_request_error", "param": "key"}}),
                    );
                };
                let q = match UsageQuery::parse(query) {
                    Ok(q) => q,
                    Err(e) => {
                        return json_answer(
                            400,
                            json!({"error": {"message": e.message, "type": "invalid_request_error", "param": e.param}}),
                        )
                    }
                };
                match usage_json(self.history.as_ref(), key, q).await {
                    Ok(v) => json_answer(200, v),
                    Err(e) => json_answer(
                        500,
                        json!({"error": {"message": e, "type": "server_error"}}),
                    ),
                }
            }
            _ => json_answer(
                404,
                json!({"error": {"message": "not found", "type": "invalid_request_error"}}),
            ),
        }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let (status, content_type, body) = self.route(session).await;
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}
