//! JSON Schema (OpenAI tools' `parameters`, `response_format.json_schema.schema`) → the
//! OpenAPI 3.0 subset Gemini's `Schema` accepts; Gemini rejects a request with any other key.
//!
//! Kept: `type`, `format`, `title`, `description`, `nullable`, `enum`, `properties`,
//! `required`, `items`, `anyOf`, `propertyOrdering`, `minItems`, `maxItems`, `minProperties`,
//! `maxProperties`, `minLength`, `maxLength`, `pattern`, `minimum`, `maximum`, `default`,
//! `example`. Rewritten: local `$ref`s (`#/$defs/…`, `#/definitions/…`) are inlined (a recursive
//! one is a 400: Gemini cannot express it); `allOf` members are merged into their parent;
//! `oneOf` → `anyOf`; `const` → a one-value `enum`; `type: [T, "null"]` and an `anyOf` member
//! `{"type":"null"}` → `nullable: true`; a missing `type` is inferred from `properties`/`items`/
//! string `enum`. Dropped (Gemini rejects them): `$schema`, `$id`, `$defs`, `definitions`,
//! `$comment`, `additionalProperties`, `strict`, `examples`, `not`, `if`/`then`/`else`,
//! `patternProperties`, `unevaluatedProperties`, `dependencies`, `exclusiveMinimum`,
//! `exclusiveMaximum`, `multipleOf`, `uniqueItems`, `contentEncoding`, `readOnly`, …; also a
//! `format` Gemini does not know for the type (strings keep only `enum`/`date-time`), and an
//! `enum` with non-string values (Gemini's enums are strings).

use std::cell::Cell;

use serde_json::{Map, Value};

use crate::error::GatewayError;

/// Keys copied as they are (after their sub-schemas are cleaned).
const KEPT: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "properties",
    "required",
    "items",
    "anyOf",
    "propertyOrdering",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "default",
    "example",
];

/// How deep `$ref` inlining and nesting may go before the schema is called recursive.
const MAX_DEPTH: usize = 64;

/// Most schema nodes one cleaning may produce: `$ref`s that each reference another twice
/// would otherwise inline exponentially many copies.
const MAX_NODES: usize = 20_000;

/// Cleans `schema`; `param` names the request field in a 400.
pub(super) fn clean(schema: &Value, param: &str) -> Result<Value, GatewayError> {
    Cleaner {
        root: schema,
        param,
        nodes: Cell::new(0),
    }
    .node(schema, 0)
}

/// Whether a cleaned schema is an object without properties: Gemini rejects one as function
/// `parameters` ("properties: should be non-empty for OBJECT type"), so it is left out.
pub(super) fn is_empty_object(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("object")
        && schema
            .get("properties")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
}

struct Cleaner<'a> {
    root: &'a Value,
    param: &'a str,
    nodes: Cell<usize>,
}

impl Cleaner<'_> {
    fn error(&self, message: &str) -> GatewayError {
        GatewayError::invalid(self.param, format!("`{}`: {message}", self.param))
    }

    fn node(&self, node: &Value, depth: usize) -> Result<Value, GatewayError> {
        if depth > MAX_DEPTH {
            return Err(self.error("the schema is recursive or nests too deep for this model"));
        }
        self.nodes.set(self.nodes.get() + 1);
        if self.nodes.get() > MAX_NODES {
            return Err(self.error("the schema is too large once its `$ref`s are inlined"));
        }
        let Value::Object(map) = node else {
            // `true` (any value) has no Gemini form: an unconstrained schema is the nearest.
            return Ok(Value::Object(Map::new()));
        };
        let mut out = Map::new();
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            let target = self.resolve(reference)?;
            if let Value::Object(resolved) = self.node(target, depth + 1)? {
                out = resolved;
            }
        }
        for member in map
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Value::Object(cleaned) = self.node(member, depth + 1)? {
                merge(&mut out, cleaned);
            }
        }
        for key in KEPT {
            let Some(value) = map.get(*key) else { continue };
            let value = match *key {
                "properties" => self.properties(value, depth)?,
                "items" => self.node(value, depth + 1)?,
                "anyOf" => self.list(value, depth)?,
                _ => value.clone(),
            };
            out.insert((*key).to_string(), value);
        }
        if let (None, Some(one_of)) = (map.get("anyOf"), map.get("oneOf")) {
            out.insert("anyOf".into(), self.list(one_of, depth)?);
        }
        if let (None, Some(constant)) = (map.get("enum"), map.get("const")) {
            out.insert("enum".into(), Value::Array(vec![constant.clone()]));
        }
        fix_types(&mut out);
        Ok(Value::Object(out))
    }

    fn properties(&self, value: &Value, depth: usize) -> Result<Value, GatewayError> {
        let Value::Object(props) = value else {
            return Ok(Value::Object(Map::new()));
        };
        let mut out = Map::with_capacity(props.len());
        for (name, schema) in props {
            out.insert(name.clone(), self.node(schema, depth + 1)?);
        }
        Ok(Value::Object(out))
    }

    fn list(&self, value: &Value, depth: usize) -> Result<Value, GatewayError> {
        let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
        items
            .iter()
            .map(|s| self.node(s, depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    }

    fn resolve(&self, reference: &str) -> Result<&Value, GatewayError> {
        let pointer = reference.strip_prefix('#').ok_or_else(|| {
            self.error("only local `$ref`s (#/$defs/…) can be sent to this model")
        })?;
        self.root
            .pointer(pointer)
            .ok_or_else(|| self.error(&format!("`$ref` {reference} points nowhere")))
    }
}

/// `allOf` merge: properties and required lists are joined, other keys keep the first value.
fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match (key.as_str(), into.get_mut(&key), value) {
            ("properties", Some(Value::Object(have)), Value::Object(add)) => have.extend(add),
            ("required", Some(Value::Array(have)), Value::Array(add)) => {
                for name in add {
                    if !have.contains(&name) {
                        have.push(name);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// Nullable forms, inferred types, and the `format`/`enum` values Gemini rejects.
fn fix_types(out: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = out.get("type") {
        let nullable = types.iter().any(|t| t == "null");
        let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        out.remove("type");
        match rest.as_slice() {
            [] => {}
            [one] => {
                out.insert("type".into(), one.clone());
            }
            many => {
                let any: Vec<Value> = many
                    .iter()
                    .map(|t| Value::Object(Map::from_iter([("type".to_string(), t.clone())])))
                    .collect();
                out.insert("anyOf".into(), Value::Array(any));
            }
        }
        if nullable {
            out.insert("nullable".into(), true.into());
        }
    }
    if let Some(Value::Array(any)) = out.get_mut("anyOf") {
        let before = any.len();
        any.retain(|s| s.get("type").and_then(Value::as_str) != Some("null"));
        if any.len() < before {
            out.insert("nullable".into(), true.into());
        }
        if let Some(Value::Array(any)) = out.get("anyOf") {
            if let [Value::Object(only)] = any.as_slice() {
                let only = only.clone();
                out.remove("anyOf");
                merge(out, only);
            }
        }
    }
    if let Some(Value::Array(values)) = out.get("enum") {
        if !values.iter().all(Value::is_string) {
            out.remove("enum");
        }
    }
    if !out.contains_key("type") && !out.contains_key("anyOf") {
        let inferred = if out.contains_key("properties") {
            Some("object")
        } else if out.contains_key("items") {
            Some("array")
        } else if out.contains_key("enum") {
            Some("string")
        } else {
            None
        };
        if let Some(t) = inferred {
            out.insert("type".into(), t.into());
        }
    }
    let ty = out.get("type").and_then(Value::as_str).unwrap_or("");
    let format_ok = match (ty, out.get("format").and_then(Value::as_str)) {
        (_, None) => true,
        ("string", Some(f)) => matches!(f, "enum" | "date-time"),
        ("number", Some(f)) => matches!(f, "float" | "double"),
        ("integer", Some(f)) => matches!(f, "int32" | "int64"),
        _ => false,
    };
    if !format_ok {
        out.remove("format");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cleaned(schema: Value) -> Value {
        clean(&schema, "tools").unwrap()
    }

    #[test]
    fn rejected_keywords_are_stripped() {
        assert_eq!(
            cleaned(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "x", "type": "object",
                "additionalProperties": false, "properties": {
                    "n": {"type": "integer", "exclusiveMinimum": 0, "multipleOf": 2, "minimum": 1},
                    "tags": {"type": "array", "items": {"type": "string", "format": "email"},
                             "uniqueItems": true, "minItems": 1},
                    "when": {"type": "string", "format": "date-time", "examples": ["2024"]}},
                "required": ["n"]})),
            json!({"type": "object", "properties": {
                "n": {"type": "integer", "minimum": 1},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "when": {"type": "string", "format": "date-time"}},
                "required": ["n"]})
        );
    }

    #[test]
    fn refs_are_inlined_and_nullable_forms_rewritten() {
        // What pydantic emits for `class A(BaseModel): b: Optional[B]; c: Literal["x"]`.
        let schema = json!({
            "$defs": {"B": {"title": "B", "type": "object", "properties": {"v": {"type": ["string", "null"]}}}},
            "type": "object", "title": "A",
            "properties": {"b": {"anyOf": [{"$ref": "#/$defs/B"}, {"type": "null"}], "default": null},
                           "c": {"const": "x"},
                           "d": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                           "e": {"allOf": [{"$ref": "#/$defs/B"}], "description": "an e"}},
            "required": ["b", "c"]});
        let b = json!({"title": "B", "type": "object", "properties": {"v": {"type": "string", "nullable": true}}});
        let mut b_nullable = b.clone();
        b_nullable["nullable"] = true.into();
        b_nullable["default"] = Value::Null;
        let mut e = b.clone();
        e["description"] = "an e".into();
        assert_eq!(
            cleaned(schema),
            json!({"type": "object", "title": "A", "required": ["b", "c"], "properties": {
                "b": b_nullable,
                "c": {"type": "string", "enum": ["x"]},
                "d": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "e": e}})
        );
    }

    #[test]
    fn recursive_refs_are_a_400() {
        let schema = json!({"$defs": {"Node": {"type": "object", "properties": {
            "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
            "$ref": "#/$defs/Node"});
        let e = clean(&schema, "response_format").unwrap_err();
        assert_eq!(
            (e.status(), e.param.as_deref()),
            (400, Some("response_format"))
        );
        let e = clean(&json!({"$ref": "https://x/s.json"}), "tools").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tools"));
        // Each level references the next twice: 2^16 copies if inlined blindly.
        let mut defs = Map::new();
        for level in 0..16 {
            let next = format!("#/$defs/L{}", level + 1);
            defs.insert(
                format!("L{level}"),
                json!({"type": "object", "properties": {
                "a": {"$ref": next}, "b": {"$ref": next}}}),
            );
        }
        defs.insert("L16".into(), json!({"type": "string"}));
        let schema = json!({"$defs": defs, "$ref": "#/$defs/L0"});
        let e = clean(&schema, "tools").unwrap_err();
        assert!(e.message.contains("too large"), "{}", e.message);
    }

    #[test]
    fn non_string_enums_are_dropped_and_types_inferred() {
        assert_eq!(
            cleaned(json!({"type": "integer", "enum": [1, 2]})),
            json!({"type": "integer"})
        );
        assert_eq!(
            cleaned(json!({"enum": ["a"]})),
            json!({"type": "string", "enum": ["a"]})
        );
        assert_eq!(
            cleaned(json!({"properties": {"a": true}})),
            json!({"type": "object", "properties": {"a": {}}})
        );
        assert!(is_empty_object(&cleaned(
            json!({"type": "object", "properties": {}})
        )));
        assert!(is_empty_object(&cleaned(json!({"type": "object"}))));
        assert!(!is_empty_object(&cleaned(
            json!({"type": "object", "properties": {"a": {"type": "string"}}})
        )));
    }
}
