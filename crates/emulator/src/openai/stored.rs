//! Responses the emulator keeps, as OpenAI keeps those made with `store: true` (the default):
//! enough to continue one with `previous_response_id` and to answer
//! `GET …/responses/{id}`, `GET …/responses/{id}/input_items` and `DELETE …/responses/{id}`
//! as the API does. Bounded: the oldest go first past [`MAX_STORED`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::{json, Value};

use super::error_reply;
use crate::Reply;

/// Most responses kept (a test run makes far fewer).
const MAX_STORED: usize = 10_000;

/// One stored response and the input items it was made from.
struct Stored {
    response: Value,
    input: Vec<Value>,
}

#[derive(Default)]
pub struct StoredResponses {
    inner: Mutex<(HashMap<String, Stored>, VecDeque<String>)>,
}

impl StoredResponses {
    /// Whether `id` is stored (and so may be continued).
    pub fn has(&self, id: &str) -> bool {
        self.inner.lock().is_ok_and(|g| g.0.contains_key(id))
    }

    /// Keeps a finished response with the request's `input` (a string is one user message).
    pub fn keep(&self, id: &str, response: Value, input: &Value) {
        let input = match input {
            Value::Array(items) => items.clone(),
            Value::String(text) => vec![json!({
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": text}],
            })],
            _ => Vec::new(),
        };
        if let Ok(mut g) = self.inner.lock() {
            let (map, order) = &mut *g;
            map.insert(id.to_string(), Stored { response, input });
            order.push_back(id.to_string());
            while order.len() > MAX_STORED {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }

    /// `GET`, `DELETE` on `…/responses/{id}` and `GET …/responses/{id}/input_items`.
    pub fn route(&self, method: &str, rest: &str) -> Reply {
        let (id, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let Ok(mut g) = self.inner.lock() else {
            return error_reply(500, "emulator state lost", "server_error", None, None);
        };
        let (map, _) = &mut *g;
        let not_found = || {
            error_reply(
                404,
                &format!("Response with id '{id}' not found."),
                "invalid_request_error",
                None,
                None,
            )
        };
        match (method, sub) {
            ("GET", "") => map
                .get(id)
                .map_or_else(not_found, |s| Reply::json(200, &s.response)),
            ("GET", "input_items") => map.get(id).map_or_else(not_found, |s| {
                let first = s.input.first().and_then(|i| i["id"].as_str());
                let last = s.input.last().and_then(|i| i["id"].as_str());
                Reply::json(
                    200,
                    &json!({"object": "list", "data": s.input, "first_id": first,
                            "last_id": last, "has_more": false}),
                )
            }),
            ("DELETE", "") => match map.remove(id) {
                Some(_) => Reply::json(
                    200,
                    &json!({"id": id, "object": "response", "deleted": true}),
                ),
                None => not_found(),
            },
            _ => super::invalid_method_reply(method, &format!("/v1/responses/{rest}")),
        }
    }
}
