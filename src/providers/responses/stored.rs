//! The Responses API's conversation state, for the models the gateway translates: what a
//! stored response keeps (its request's input items and the response object the client got),
//! the request that continues one (`previous_response_id` → the whole conversation in
//! `input`), and the `input_items` list. Pure functions on the stored JSON texts: the store is
//! the ledger's (`crate::ledger::responses`), the plumbing is the proxy's.
//!
//! A continuation is expanded before translation, so every upstream side sees a stateless
//! request exactly as a client that sends the whole conversation (Codex) makes it: the earlier
//! turns' input items, then their output items (messages, function calls and the reasoning
//! items whose `encrypted_content` carries the provider's signed reasoning), then the new
//! input. `instructions` are not carried over, as the API documents.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::error::GatewayError;
use crate::ids::random_hex;
use crate::providers::json::{field, parse_object};

/// Most bytes a continued conversation may hold (its stored turns, before the new input):
/// beyond any model's context, and a bound on what one request makes the gateway build.
pub const MAX_HISTORY_BYTES: usize = 64 << 20;

/// The items a request adds to the conversation: `input` as items (a string is one user
/// message), each with the `id` the `input_items` list shows (made up where the client sent
/// none), as a JSON array.
pub fn input_items(body: &[u8]) -> Result<String, GatewayError> {
    let req = parse_object(body)?;
    let items = match field(&req, "input") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => vec![json!({
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        })],
        Some(Value::Array(items)) => items.clone(),
        Some(_) => {
            return Err(GatewayError::invalid(
                "input",
                "`input` must be a string or an array of items",
            ))
        }
    };
    let items: Vec<Value> = items.into_iter().map(as_listed).collect();
    serde_json::to_string(&items).map_err(|e| GatewayError::internal("encoding input items", e))
}

/// An input item as the `input_items` list shows it: with its `type` (a bare `{role,
/// content}` is a message), a message's text content as a part (`input_text`, or
/// `output_text` for the assistant), and an `id`.
fn as_listed(mut item: Value) -> Value {
    let Some(object) = item.as_object_mut() else {
        return item;
    };
    if !object.contains_key("type") && object.contains_key("role") {
        object.insert("type".into(), "message".into());
    }
    if let Some(Value::String(text)) = object.get("content") {
        let part = match object.get("role").and_then(Value::as_str) {
            Some("assistant") => "output_text",
            _ => "input_text",
        };
        let content = json!([{"type": part, "text": text}]);
        object.insert("content".into(), content);
    }
    if !object.get("id").is_some_and(Value::is_string) {
        let prefix = match object.get("type").and_then(Value::as_str) {
            Some("message") => "msg",
            Some("function_call_output" | "custom_tool_call_output") => "fco",
            _ => "item",
        };
        object.insert("id".into(), format!("{prefix}_{}", random_hex()).into());
    }
    item
}

/// One stored response as its texts: its request's input items (a JSON array) and the
/// response object (JSON).
#[derive(Debug, Clone, Copy)]
pub struct Turn<'a> {
    pub input: &'a str,
    pub response: &'a str,
}

/// The conversation a chain of stored responses (oldest first) holds: each one's input items,
/// then its output items.
pub fn history(chain: &[Turn<'_>]) -> Result<Vec<Value>, GatewayError> {
    #[derive(Deserialize)]
    struct Output {
        #[serde(default)]
        output: Vec<Value>,
    }
    let size: usize = chain.iter().map(|r| r.input.len() + r.response.len()).sum();
    if size > MAX_HISTORY_BYTES {
        return Err(GatewayError::invalid(
            "previous_response_id",
            format!(
                "the conversation is too long to continue ({size} bytes stored, at most \
                 {MAX_HISTORY_BYTES}); start a new one"
            ),
        ));
    }
    let mut items = Vec::new();
    for stored in chain {
        let corrupt = |e| GatewayError::internal("reading a stored response", e);
        let input: Vec<Value> = serde_json::from_str(stored.input).map_err(corrupt)?;
        let output: Output = serde_json::from_str(stored.response).map_err(corrupt)?;
        items.extend(input);
        items.extend(output.output);
    }
    Ok(items)
}

/// The body of a request that continues a stored conversation: `input` is the conversation
/// then the request's own input, and `previous_response_id` is gone (the request is whole).
pub fn continued(body: &[u8], history: Vec<Value>) -> Result<Vec<u8>, GatewayError> {
    let mut req: Map<String, Value> = parse_object(body)?;
    let own: Vec<Value> = serde_json::from_str(&input_items(body)?)
        .map_err(|e| GatewayError::internal("reading input items", e))?;
    let mut input = history;
    input.extend(own);
    req.insert("input".into(), Value::Array(input));
    req.remove("previous_response_id");
    serde_json::to_vec(&req).map_err(|e| GatewayError::internal("encoding the request", e))
}

/// The response object that ends an answer the client got, with its id: the JSON answer
/// itself, or the `response` of a stream's terminal event (`response.completed`,
/// `response.incomplete`, `response.failed`) in `events`. `None` until it comes.
pub fn final_object(answer: &[u8], stream: bool) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Terminal<'a> {
        #[serde(borrow)]
        response: &'a RawValue,
    }
    #[derive(Deserialize)]
    struct Object {
        id: String,
    }
    let object: &[u8] = if stream {
        let data = [
            b"event: response.completed\ndata: ".as_slice(),
            b"event: response.incomplete\ndata: ",
            b"event: response.failed\ndata: ",
        ]
        .iter()
        .find_map(|marker| {
            let at = memchr::memmem::find(answer, marker)? + marker.len();
            let rest = &answer[at..];
            Some(&rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())])
        })?;
        serde_json::from_slice::<Terminal>(data)
            .ok()?
            .response
            .get()
            .as_bytes()
    } else {
        answer
    };
    let id = serde_json::from_slice::<Object>(object).ok()?.id;
    let text = std::str::from_utf8(object).ok()?.to_string();
    Some((id, text))
}

/// The `input_items` list of a stored response (OpenAI's query: `limit` 1–100, default 20;
/// `order` `desc` (default) or `asc`; `after` an item id).
pub fn input_items_page(input: &str, query: Option<&str>) -> Result<Value, GatewayError> {
    let mut limit = 20usize;
    let mut ascending = false;
    let mut after: Option<String> = None;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|l| (1..=100).contains(l))
                    .ok_or_else(|| {
                        GatewayError::invalid("limit", "`limit` must be an integer from 1 to 100")
                    })?;
            }
            "order" => {
                ascending = match value.as_ref() {
                    "asc" => true,
                    "desc" => false,
                    _ => {
                        return Err(GatewayError::invalid(
                            "order",
                            "`order` must be `asc` or `desc`",
                        ))
                    }
                }
            }
            "after" => after = Some(value.into_owned()),
            _ => {}
        }
    }
    let mut items: Vec<Value> = serde_json::from_str(input)
        .map_err(|e| GatewayError::internal("reading a stored response", e))?;
    if !ascending {
        items.reverse();
    }
    let id_of = |item: &Value| item.get("id").and_then(Value::as_str).map(str::to_string);
    let start = match &after {
        Some(after) => items
            .iter()
            .position(|item| id_of(item).as_deref() == Some(after))
            .map(|at| at + 1)
            .ok_or_else(|| {
                GatewayError::invalid("after", format!("no input item with id '{after}'"))
            })?,
        None => 0,
    };
    let rest = items.get(start..).unwrap_or_default();
    let page: Vec<Value> = rest.iter().take(limit).cloned().collect();
    Ok(json!({
        "object": "list",
        "data": page,
        "first_id": page.first().and_then(id_of),
        "last_id": page.last().and_then(id_of),
        "has_more": rest.len() > limit,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "stored_tests.rs"]
mod tests;
