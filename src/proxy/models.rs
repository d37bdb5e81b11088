//! The models listing, answered by the gateway from its catalog in OpenAI's or Anthropic's
//! shape (the latter for clients that send `anthropic-version`).

use std::time::UNIX_EPOCH;

use pingora::protocols::http::ServerSession;
use serde_json::json;

use super::ctx::RequestCtx;
use super::exchange::Finished;
use super::{write_json, Gateway};
use crate::auth::KeyInfo;
use crate::dialect::Dialect;
use crate::error::{ErrorKind, GatewayError};

/// Anthropic's list pagination: `limit` (1..=1000, default 20), `after_id`, `before_id`.
struct AnthropicPage {
    limit: usize,
    after_id: Option<String>,
    before_id: Option<String>,
}

impl AnthropicPage {
    fn parse(query: Option<&str>) -> Result<Self, GatewayError> {
        let mut page = Self {
            limit: 20,
            after_id: None,
            before_id: None,
        };
        for pair in query.unwrap_or_default().split('&') {
            match pair.split_once('=') {
                Some(("limit", v)) => {
                    page.limit = v
                        .parse::<usize>()
                        .ok()
                        .filter(|l| (1..=1000).contains(l))
                        .ok_or_else(|| {
                            GatewayError::invalid("limit", "`limit` must be 1..=1000")
                        })?;
                }
                Some(("after_id", v)) => page.after_id = Some(v.to_string()),
                Some(("before_id", v)) => page.before_id = Some(v.to_string()),
                _ => {}
            }
        }
        Ok(page)
    }

    /// The page of `ids` and whether more lie beyond it in the direction of travel.
    fn select<'a>(&self, ids: &[&'a str]) -> (Vec<&'a str>, bool) {
        let position = |id: &str| ids.iter().position(|x| *x == id);
        match (&self.before_id, &self.after_id) {
            (Some(before), _) => {
                let end = position(before).unwrap_or(0);
                let start = end.saturating_sub(self.limit);
                (ids[start..end].to_vec(), start > 0)
            }
            (None, after) => {
                let start = after.as_deref().and_then(position).map_or(0, |p| p + 1);
                let end = (start + self.limit).min(ids.len());
                (ids[start..end].to_vec(), end < ids.len())
            }
        }
    }
}

impl Gateway {
    pub(super) async fn list_models(
        &self,
        session: &mut ServerSession,
        ctx: &RequestCtx,
        key: &KeyInfo,
    ) -> Result<Finished, GatewayError> {
        let live = self.live.load_full();
        let names: Vec<&str> = live
            .catalog
            .listed()
            .filter(|m| key.allows(&m.name))
            .map(|m| m.name.as_str())
            .collect();
        let body = match ctx.dialect {
            Dialect::OpenAi => {
                let data: Vec<_> = names
                    .iter()
                    .map(|n| self.model_object(n, ctx.dialect))
                    .collect();
                json!({"object": "list", "data": data})
            }
            Dialect::Anthropic => {
                let page = AnthropicPage::parse(session.req_header().uri.query())?;
                let (window, has_more) = page.select(&names);
                let data: Vec<_> = window
                    .iter()
                    .map(|n| self.model_object(n, ctx.dialect))
                    .collect();
                json!({
                    "data": data,
                    "has_more": has_more,
                    "first_id": window.first(),
                    "last_id": window.last(),
                })
            }
        };
        write_json(session, ctx, 200, body.to_string().into(), None).await
    }

    pub(super) async fn show_model(
        &self,
        session: &mut ServerSession,
        ctx: &RequestCtx,
        key: &KeyInfo,
        id: &str,
    ) -> Result<Finished, GatewayError> {
        let live = self.live.load_full();
        match live.catalog.get(id).filter(|m| key.allows(&m.name)) {
            Some(m) => {
                let body = self.model_object(&m.name, ctx.dialect).to_string().into();
                write_json(session, ctx, 200, body, None).await
            }
            None => Err(GatewayError::new(
                ErrorKind::ModelNotFound,
                format!("The model `{id}` does not exist"),
            )),
        }
    }

    /// A catalog model as OpenAI's or Anthropic's models API describes one.
    fn model_object(&self, name: &str, dialect: Dialect) -> serde_json::Value {
        match dialect {
            Dialect::OpenAi => {
                json!({"id": name, "object": "model", "created": self.loaded_at, "owned_by": "cheapai"})
            }
            Dialect::Anthropic => {
                let created = UNIX_EPOCH + std::time::Duration::from_secs(self.loaded_at);
                json!({
                    "type": "model",
                    "id": name,
                    "display_name": name,
                    "created_at": humantime::format_rfc3339_seconds(created).to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_model_pages() {
        let ids = ["a", "b", "c", "d", "e"];
        let page = |q: &str| AnthropicPage::parse(Some(q)).unwrap().select(&ids);
        assert_eq!(page("limit=2"), (vec!["a", "b"], true));
        assert_eq!(page("limit=2&after_id=b"), (vec!["c", "d"], true));
        assert_eq!(page("limit=2&after_id=d"), (vec!["e"], false));
        assert_eq!(page("limit=2&before_id=d"), (vec!["b", "c"], true));
        assert_eq!(page(""), (ids.to_vec(), false));
        assert!(AnthropicPage::parse(Some("limit=0")).is_err());
    }
}
