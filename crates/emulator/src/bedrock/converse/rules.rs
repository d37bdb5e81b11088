//! The Converse request rules the emulator enforces, in Bedrock's words (each a 400
//! `ValidationException`):
//!
//! - the body is a JSON object of Converse's fields only (`model`, `stream` or any other
//!   key is refused, as Bedrock's strict schema does);
//! - `messages` is a non-empty array; each message has role `user` or `assistant` and a
//!   non-empty `content` array; the first is a user's and roles alternate;
//! - every block is exactly one of `text` (not blank), `image` (`format` png, jpeg, gif or
//!   webp, `source.bytes` base64), `toolUse` (`toolUseId`, `name`, object `input`),
//!   `toolResult` (`toolUseId`, a `content` array of `{text}` or `{json}`),
//!   `reasoningContent`; `toolUse` only in assistant turns, `toolResult` only in user turns;
//! - every `toolResult` answers a `toolUse` of the assistant turn right before it, and every
//!   `toolUse` of an assistant turn is answered in the user turn right after it (when there
//!   is one);
//! - `toolUse`/`toolResult` blocks need a `toolConfig`; its `tools` are a non-empty array of
//!   `toolSpec`s with a `name` and `inputSchema.json` object, and its `toolChoice` is `auto`,
//!   `any` or a declared `tool`;
//! - `system` is an array of `{text}`; `inferenceConfig.maxTokens`, when present, a positive
//!   integer.

use base64::Engine;
use serde_json::{Map, Value};

/// Converse's request fields.
const FIELDS: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "promptVariables",
    "requestMetadata",
    "performanceConfig",
];

type Rule = Result<(), String>;

/// The body's fields when it keeps every rule, else Bedrock's message for the first broken.
pub(super) fn check(body: &[u8]) -> Result<Map<String, Value>, String> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Err("Malformed input request, please reformat your input and try again.".into());
    };
    if let Some(extra) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "Malformed input request: extraneous key [{extra}] is not permitted, please \
             reformat your input and try again."
        ));
    }
    let Some(Value::Array(messages)) = body.get("messages") else {
        return Err(
            "A conversation must start with a user message. Try again with a \
                    conversation that starts with a user message."
                .into(),
        );
    };
    conversation(messages)?;
    let uses_tools = messages.iter().any(|m| {
        blocks(m)
            .iter()
            .any(|b| b.get("toolUse").is_some() || b.get("toolResult").is_some())
    });
    match body.get("toolConfig") {
        Some(config) => tool_config(config)?,
        None if uses_tools => {
            return Err(
                "The toolConfig field must be defined when using toolUse and \
                        toolResult content blocks."
                    .into(),
            )
        }
        None => {}
    }
    if let Some(system) = body.get("system") {
        let texts = system.as_array().is_some_and(|s| {
            s.iter()
                .all(|b| b.get("text").and_then(Value::as_str).is_some())
        });
        if !texts {
            return Err("The system field must be a list of SystemContentBlock objects.".into());
        }
    }
    if let Some(max) = body.get("inferenceConfig").and_then(|c| c.get("maxTokens")) {
        if max.as_u64().is_none_or(|n| n == 0) {
            return Err(
                "1 validation error detected: Value at 'inferenceConfig.maxTokens' failed to \
                 satisfy constraint: Member must have value greater than or equal to 1"
                    .into(),
            );
        }
    }
    Ok(body)
}

fn blocks(message: &Value) -> &[Value] {
    message
        .get("content")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn ids<'a>(message: &'a Value, kind: &str) -> Vec<&'a str> {
    blocks(message)
        .iter()
        .filter_map(|b| b.get(kind)?.get("toolUseId")?.as_str())
        .collect()
}

fn conversation(messages: &[Value]) -> Rule {
    let first_user = "A conversation must start with a user message. Try again with a \
                      conversation that starts with a user message.";
    if messages.is_empty() {
        return Err(first_user.into());
    }
    let mut previous: Option<&str> = None;
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if !matches!(role, "user" | "assistant") {
            return Err(format!(
                "1 validation error detected: Value '{role}' at 'messages.{i}.member.role' \
                 failed to satisfy constraint: Member must satisfy enum value set: \
                 [user, assistant]"
            ));
        }
        if i == 0 && role != "user" {
            return Err(first_user.into());
        }
        if previous == Some(role) {
            return Err(
                "A conversation must alternate between user and assistant roles. \
                        Make sure the conversation alternates between user and assistant \
                        roles and try again."
                    .into(),
            );
        }
        previous = Some(role);
        let content = blocks(message);
        if content.is_empty() {
            return Err(format!(
                "The content field in the Message object at messages.{i} is empty. Add a \
                 ContentBlock object to the content field and try again."
            ));
        }
        for (j, block) in content.iter().enumerate() {
            content_block(block, role, &format!("messages.{i}.content.{j}"))?;
        }
        tool_pairing(messages, i)?;
    }
    Ok(())
}

/// Message `i`'s results answer the assistant turn before it, and that turn's calls are all
/// answered here.
fn tool_pairing(messages: &[Value], i: usize) -> Rule {
    let results = ids(&messages[i], "toolResult");
    let asked = match i.checked_sub(1).map(|p| &messages[p]) {
        Some(previous) => ids(previous, "toolUse"),
        None => Vec::new(),
    };
    if results.len() > asked.len() {
        return Err(format!(
            "The number of toolResult blocks at messages.{i}.content exceeds the number of \
             toolUse blocks of previous turn."
        ));
    }
    if let Some(stray) = results.iter().find(|id| !asked.contains(id)) {
        return Err(format!(
            "The toolUseId {stray} at messages.{i}.content does not match any toolUse block \
             of the previous turn."
        ));
    }
    let unanswered: Vec<&str> = asked
        .iter()
        .filter(|id| !results.contains(id))
        .copied()
        .collect();
    if !unanswered.is_empty() {
        return Err(format!(
            "Expected toolResult blocks at messages.{i}.content for the following Ids: {}",
            unanswered.join(", ")
        ));
    }
    Ok(())
}

fn content_block(block: &Value, role: &str, at: &str) -> Rule {
    let Some(object) = block.as_object().filter(|o| o.len() == 1) else {
        return Err(format!(
            "The ContentBlock object at {at} must set exactly one of its members."
        ));
    };
    let (kind, value) = object.iter().next().ok_or_else(|| at.to_string())?;
    match kind.as_str() {
        "text" => match value.as_str() {
            Some(t) if !t.trim().is_empty() => Ok(()),
            _ => Err(format!(
                "The text field in the ContentBlock object at {at} is blank. Add text to the \
                 text field, and try again."
            )),
        },
        "image" => image(value, at),
        "toolUse" if role == "assistant" => {
            let ok = value.get("toolUseId").and_then(Value::as_str).is_some()
                && value.get("name").and_then(Value::as_str).is_some()
                && value.get("input").is_some_and(Value::is_object);
            ok.then_some(())
                .ok_or_else(|| format!("The toolUse block at {at} is malformed."))
        }
        "toolResult" if role == "user" => {
            let content = value.get("content").and_then(Value::as_array);
            let ok = value.get("toolUseId").and_then(Value::as_str).is_some()
                && content.is_some_and(|c| {
                    c.iter().all(|b| {
                        b.get("text").and_then(Value::as_str).is_some() || b.get("json").is_some()
                    })
                });
            ok.then_some(())
                .ok_or_else(|| format!("The toolResult block at {at} is malformed."))
        }
        "toolUse" | "toolResult" => Err(format!(
            "The {kind} block at {at} is not allowed in a {role} message."
        )),
        "reasoningContent" => Ok(()),
        other => Err(format!(
            "The ContentBlock object at {at} has an unknown member [{other}]."
        )),
    }
}

fn image(value: &Value, at: &str) -> Rule {
    let format = value.get("format").and_then(Value::as_str);
    if !matches!(format, Some("png" | "jpeg" | "gif" | "webp")) {
        return Err(format!(
            "1 validation error detected: Value at '{at}.image.format' failed to satisfy \
             constraint: Member must satisfy enum value set: [png, jpeg, gif, webp]"
        ));
    }
    let bytes = value
        .get("source")
        .and_then(|s| s.get("bytes"))
        .and_then(Value::as_str)
        .filter(|b| base64::engine::general_purpose::STANDARD.decode(b).is_ok());
    bytes
        .map(|_| ())
        .ok_or_else(|| format!("The image source at {at} must carry base64 bytes."))
}

fn tool_config(config: &Value) -> Rule {
    let tools = config.get("tools").and_then(Value::as_array);
    let names: Vec<&str> = tools
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let spec = t.get("toolSpec")?;
            spec.get("inputSchema")?.get("json")?.as_object()?;
            spec.get("name")?.as_str()
        })
        .collect();
    if names.is_empty() || tools.is_some_and(|t| t.len() != names.len()) {
        return Err(
            "The toolConfig field must name tools, each a toolSpec with a name and \
                    an inputSchema.json object."
                .into(),
        );
    }
    match config.get("toolChoice") {
        None => Ok(()),
        Some(choice) if choice.get("auto").is_some() || choice.get("any").is_some() => Ok(()),
        Some(choice) => {
            let name = choice
                .get("tool")
                .and_then(|t| t.get("name"))
                .and_then(Value::as_str);
            match name {
                Some(n) if names.contains(&n) => Ok(()),
                _ => Err("The toolChoice field must be auto, any or a declared tool.".into()),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn verdict(body: Value) -> Result<(), String> {
        check(body.to_string().as_bytes()).map(|_| ())
    }

    fn tools() -> Value {
        json!({"tools": [{"toolSpec": {"name": "get_weather",
            "inputSchema": {"json": {"type": "object"}}}}]})
    }

    fn call(id: &str) -> Value {
        json!({"toolUse": {"toolUseId": id, "name": "get_weather", "input": {}}})
    }

    fn result(id: &str) -> Value {
        json!({"toolResult": {"toolUseId": id, "content": [{"text": "18C"}]}})
    }

    #[test]
    fn a_tool_loop_keeps_the_rules() {
        let body = json!({"messages": [
            {"role": "user", "content": [{"text": "Weather?"}]},
            {"role": "assistant", "content": [call("a"), call("b")]},
            {"role": "user", "content": [result("a"), result("b"), {"text": "Thanks"}]},
        ], "toolConfig": tools(), "system": [{"text": "Be brief."}],
           "inferenceConfig": {"maxTokens": 5}});
        verdict(body).unwrap();
    }

    #[test]
    fn broken_rules_are_refused() {
        let user = |c: Value| json!({"role": "user", "content": [c]});
        let assistant = |c: Value| json!({"role": "assistant", "content": [c]});
        let text = |t: &str| json!({"text": t});
        let cases = [
            (
                json!({"messages": [assistant(text("hi"))]}),
                "start with a user",
            ),
            (
                json!({"messages": [user(text("a")), user(text("b"))]}),
                "alternate",
            ),
            (json!({"messages": [user(text(" "))]}), "blank"),
            (json!({"messages": []}), "start with a user"),
            (
                json!({"model": "m", "messages": [user(text("a"))]}),
                "extraneous key [model]",
            ),
            (
                json!({"messages": [user(text("a")), assistant(call("a")), user(text("b"))],
                    "toolConfig": tools()}),
                "Expected toolResult blocks at messages.2.content for the following Ids: a",
            ),
            (
                json!({"messages": [user(text("a")), assistant(call("a")), user(result("z"))],
                    "toolConfig": tools()}),
                "does not match",
            ),
            (
                json!({"messages": [user(result("a"))], "toolConfig": tools()}),
                "exceeds the number of toolUse blocks",
            ),
            (
                json!({"messages": [user(text("a")), assistant(call("a")), user(result("a"))]}),
                "toolConfig field must be defined",
            ),
            (
                json!({"messages": [user(json!({"image": {"format": "bmp",
                    "source": {"bytes": "AAAA"}}}))]}),
                "image.format",
            ),
            (
                json!({"messages": [user(text("a"))], "toolConfig": {"tools": [{"toolSpec":
                    {"name": "f", "inputSchema": {"json": {}}}}], "toolChoice": {"tool": {"name": "g"}}}}),
                "toolChoice",
            ),
            (
                json!({"messages": [user(text("a"))], "inferenceConfig": {"maxTokens": 0}}),
                "maxTokens",
            ),
        ];
        for (body, expected) in cases {
            let error = verdict(body.clone()).unwrap_err();
            assert!(error.contains(expected), "{body}: {error}");
        }
    }
}
