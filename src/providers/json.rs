//! JSON helpers shared by the translators.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ErrorKind, GatewayError};

/// A client request body as a JSON object, or a 400 saying why not.
pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, GatewayError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "the request body must be a JSON object",
        )),
        Err(e) => Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            format!("the request body is not valid JSON: {e}"),
        )),
    }
}

/// A field of a JSON object, with `null` read as absent (SDKs send explicit nulls, and every
/// format treats them as missing).
pub(crate) fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

/// `value` as an array, or a 400 naming `name` when it is absent or anything else.
pub(crate) fn array<'a>(value: Option<&'a Value>, name: &str) -> Result<&'a [Value], GatewayError> {
    value
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| GatewayError::invalid(name, format!("`{name}` must be an array")))
}

/// The items of an optional array: none when `value` is absent, a 400 naming `name` when it
/// is not an array.
pub(crate) fn items<'a>(value: Option<&'a Value>, name: &str) -> Result<&'a [Value], GatewayError> {
    match value {
        None => Ok(&[]),
        value => array(value, name),
    }
}

/// Serializes a value the gateway built itself (it cannot fail on the gateway's own values;
/// should it, the request fails as the gateway's error, not the client's).
pub(crate) fn to_bytes(value: &impl Serialize) -> Result<Vec<u8>, GatewayError> {
    serde_json::to_vec(value).map_err(|e| GatewayError::internal("encoding JSON", e))
}
