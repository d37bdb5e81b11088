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

use crate::keys::{self, KeyBackend, StoredKey};
use crate::metrics;
use crate::reload::LiveHandle;
use crate::routing::{self, CircuitState, Health};
use crate::secret::Secret;
use crate::spool::Spool;
use crate::usage::api::{usage_json, UsageQuery};
use crate::usage::ledger::LedgerHandle;

/// The admin HTTP app.
pub struct Admin {
    token: Option<Secret>,
    ledger: Arc<LedgerHandle>,
    /// This process's usage spool: readiness fails while it is full.
    spool: Spool,
    keys: Arc<dyn KeyBackend>,
    /// The live config: its providers, for circuit states in `/ready` and `/metrics`
    /// (those of the last reload).
    live: LiveHandle,
}

/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// `POST /admin/keys` body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    limits: Option<NewLimits>,
    budget_usd: Option<f64>,
    /// Unix seconds.
    expires_at: Option<u64>,
    /// Concurrent requests per gateway instance.
    max_inflight: Option<u32>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLimits {
    rpm: Option<u64>,
    tpm: Option<u64>,
}

type Answer = (u16, &'static str, Vec<u8>);

fn json_answer(status: u16, v: serde_json::Value) -> Answer {
    (status, "application/json", v.to_string().into_bytes())
}

fn error(status: u16, kind: &str, message: impl std::fmt::Display) -> Answer {
    json_answer(
        status,
        json!({"error": {"message": message.to_string(), "type": kind}}),
    )
}

/// A key as the admin API shows it (never the secret, never the hash).
fn key_view(k: &StoredKey) -> serde_json::Value {
    json!({
        "id": k.id,
        "name": k.name,
        "models": k.models,
        "limits": {"rpm": k.rpm, "tpm": k.tpm},
        "budget_usd": k.budget_micro_usd.map(crate::usage::pricing::usd),
        "expires_at": k.expires_at,
        "max_inflight": k.max_inflight,
        "disabled": k.disabled,
        "created_at": k.created_at,
    })
}

impl Admin {
    pub fn new(
        token: Option<Secret>,
        ledger: Arc<LedgerHandle>,
        spool: Spool,
        keys: Arc<dyn KeyBackend>,
        live: LiveHandle,
    ) -> Self {
        Self {
            token,
            ledger,
            spool,
            keys,
            live,
        }
    }

    /// Every deployment of the live catalog once (entries that share a deployment share its
    /// state): its provider, its name and its state.
    fn deployments(&self) -> Vec<(String, String, Arc<Health>)> {
        let live = self.live.load();
        let mut seen: Vec<(String, String, Arc<Health>)> = Vec::new();
        for model in live.catalog.all() {
            for d in &model.deployments {
                if !seen.iter().any(|(_, _, h)| Arc::ptr_eq(h, &d.health)) {
                    seen.push((
                        d.provider.name.clone(),
                        model.deployment_name(d).to_string(),
                        d.health.clone(),
                    ));
                }
            }
        }
        seen
    }

    /// `/ready`: 200 while the gateway serves, with the providers one of whose deployments
    /// has its circuit open (or probing), and those deployments. It stays 200 when some are:
    /// every instance sees the same providers, so a load balancer gains nothing by taking this
    /// one out; the lists are for operators.
    fn ready(&self) -> Answer {
        let now = routing::now_ms();
        let mut providers: Vec<String> = Vec::new();
        let mut deployments: Vec<String> = Vec::new();
        for (provider, name, health) in self.deployments() {
            if health.breaker.state(now) != CircuitState::Closed {
                deployments.push(format!("{provider}/{name}"));
                if !providers.contains(&provider) {
                    providers.push(provider);
                }
            }
        }
        providers.sort();
        deployments.sort();
        // a full spool means this instance refuses billable requests: out of the pool
        let (status, state) = match self.spool.is_full() {
            true => (503, "usage_spool_full"),
            false => (200, "ok"),
        };
        json_answer(
            status,
            json!({"status": state, "open_circuits": providers, "open_deployments": deployments}),
        )
    }

    /// Brings the circuit and upstream in-flight gauges up to date (an open circuit turns
    /// half-open by the clock, with no event to update a gauge), then renders every metric.
    fn metrics(&self) -> Vec<u8> {
        let now = routing::now_ms();
        let mut per_provider: std::collections::BTreeMap<String, (CircuitState, u64)> = self
            .live
            .load()
            .providers
            .iter()
            .map(|p| (p.name.clone(), (CircuitState::Closed, 0)))
            .collect();
        for (provider, name, health) in self.deployments() {
            let state = health.breaker.state(now);
            metrics::DEPLOYMENT_CIRCUIT_STATE
                .with_label_values(&[&provider, &name])
                .set(state.gauge());
            let entry = per_provider
                .entry(provider)
                .or_insert((CircuitState::Closed, 0));
            entry.0 = worse(entry.0, state);
            entry.1 = entry.1.saturating_add(health.inflight());
        }
        for (provider, (state, inflight)) in per_provider {
            metrics::CIRCUIT_STATE
                .with_label_values(&[&provider])
                .set(state.gauge());
            metrics::UPSTREAM_INFLIGHT
                .with_label_values(&[&provider])
                .set(i64::try_from(inflight).unwrap_or(i64::MAX));
        }
        metrics::render()
    }

    async fn create_key(&self, session: &mut ServerSession) -> Answer {
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_ADMIN_BODY => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => return error(413, "invalid_request_error", "body too large"),
                Ok(None) => break,
                Err(e) => return error(400, "invalid_request_error", e),
            }
        }
        let new: NewKey = match serde_json::from_slice(&body) {
            Ok(n) => n,
            Err(e) => {
                return error(
                    400,
                    "invalid_request_error",
                    format!("invalid key request: {e}"),
                )
            }
        };
        if new.name.trim().is_empty() {
            return error(400, "invalid_request_error", "`name` must not be empty");
        }
        let budget_micro_usd = match new.budget_usd {
            Some(b) if !(b.is_finite() && b >= 0.0) => {
                return error(400, "invalid_request_error", "`budget_usd` must be >= 0")
            }
            Some(b) => Some((b * 1e6).round() as u64),
            None => None,
        };
        let secret = keys::new_secret();
        let sha256 = crate::auth::hash_key(&secret);
        let limits = new.limits.unwrap_or(NewLimits {
            rpm: None,
            tpm: None,
        });
        let stored = StoredKey {
            id: keys::id_for(&sha256),
            sha256,
            name: new.name,
            models: new.models.unwrap_or_else(|| vec!["*".into()]),
            rpm: limits.rpm,
            tpm: limits.tpm,
            budget_micro_usd,
            expires_at: new.expires_at,
            max_inflight: new.max_inflight,
            disabled: false,
            created_at: crate::clock::unix_secs(),
        };
        if let Err(e) = self.keys.insert(&stored).await {
            return error(503, "server_error", e);
        }
        let mut view = key_view(&stored);
        view["key"] = json!(secret);
        json_answer(201, view)
    }

    async fn keys_route(&self, session: &mut ServerSession, method: &str, rest: &str) -> Answer {
        let result = match (
            method,
            rest.trim_matches('/')
                .split('/')
                .collect::<Vec<_>>()
                .as_slice(),
        ) {
            ("POST", [""]) => return self.create_key(session).await,
            ("GET", [""]) => self.keys.list().await.map(|keys| {
                json_answer(
                    200,
                    json!({"data": keys.iter().map(key_view).collect::<Vec<_>>()}),
                )
            }),
            ("POST", [id, action @ ("disable" | "enable")]) => self
                .keys
                .set_disabled(id, *action == "disable")
                .await
                .map(|found| match found {
                    true => json_answer(200, json!({"id": id, "disabled": *action == "disable"})),
                    false => error(404, "not_found_error", format!("no key {id}")),
                }),
            ("DELETE", [id]) => self.keys.delete(id).await.map(|found| match found {
                true => json_answer(200, json!({"id": id, "deleted": true})),
                false => error(404, "not_found_error", format!("no key {id}")),
            }),
            _ => Ok(error(404, "not_found_error", "not found")),
        };
        result.unwrap_or_else(|e| error(503, "server_error", e))
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

    async fn route(&self, session: &mut ServerSession) -> Answer {
        let header = session.req_header();
        let path = header.uri.path().to_string();
        let method = header.method.as_str().to_string();
        let query = header.uri.query().map(str::to_string);
        match path.as_str() {
            "/health" => return json_answer(200, json!({"status": "ok"})),
            "/ready" => return self.ready(),
            "/metrics" => return (200, "text/plain; version=0.0.4", self.metrics()),
            _ => {}
        }
        let Some(admin_path) = path.strip_prefix("/admin/") else {
            return error(404, "not_found_error", "not found");
        };
        if let Err((status, body)) = self.authorized(session) {
            return json_answer(status, body);
        }
        match admin_path
            .split_once('/')
            .map_or(admin_path, |(first, _)| first)
        {
            "usage" => self.usage(query.as_deref()).await,
            "keys" => {
                let rest = admin_path
                    .strip_prefix("keys")
                    .unwrap_or_default()
                    .to_string();
                self.keys_route(session, &method, &rest).await
            }
            _ => error(404, "not_found_error", "not found"),
        }
    }

    /// `/admin/usage`: one key's records and totals (`key=k_…`), or every key's.
    async fn usage(&self, query: Option<&str>) -> Answer {
        let q = match UsageQuery::parse(query) {
            Ok(q) => q,
            Err(e) => return error(400, "invalid_request_error", e.message),
        };
        let ledger = match self.ledger.get().await {
            Ok(l) => l,
            Err(e) => {
                log::warn!("admin usage: {e}");
                return error(503, "server_error", "the usage ledger is unavailable");
            }
        };
        match usage_json(ledger.as_ref(), q.key.as_deref(), &q).await {
            Ok(v) => json_answer(200, v),
            Err(e) => {
                if let Some(detail) = &e.detail {
                    log::warn!("admin usage: {detail}");
                }
                let status = e.status();
                error(status, "invalid_request_error", e.message)
            }
        }
    }
}

/// The worse of two circuit states for a provider's summary: open beats probing beats closed.
fn worse(a: CircuitState, b: CircuitState) -> CircuitState {
    let rank = |s: CircuitState| match s {
        CircuitState::Closed => 0,
        CircuitState::HalfOpen => 1,
        CircuitState::Open => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
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
