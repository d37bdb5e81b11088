//! OpenAI `messages` → Gemini `systemInstruction` parts and `contents` (docs/translation.md C1).
//!
//! Dropped or approximated: `name` on messages; `detail` on images; assistant `refusal` parts
//! and fields; empty text parts (Gemini rejects them); turns left without parts. System and
//! developer messages anywhere in the conversation all go to `systemInstruction`, in order.
//! `input_audio` becomes `inlineData` (`audio/<format>`); `file` parts with `file_data` become
//! `inlineData`, `file_id` is a 400 (an OpenAI file means nothing to Google). A tool message's
//! content becomes the `response` object if it parses as a JSON object, else
//! `{"content": <text>}`, since Gemini requires an object.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::signature_from_id;
use crate::error::GatewayError;
use crate::providers::turns::{call_input, call_name, texts, tool_calls, Turns};

const PARAM: &str = "messages";

/// The converted conversation.
pub(super) struct Converted {
    /// `systemInstruction.parts`.
    pub system: Vec<Value>,
    /// `contents`, with consecutive same-role turns merged.
    pub contents: Vec<Value>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Model,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Model => "model",
        }
    }
}

fn bad(message: String) -> GatewayError {
    GatewayError::invalid(PARAM, message)
}

/// Converts the `messages` array.
pub(super) fn convert(messages: Option<&Value>) -> Result<Converted, GatewayError> {
    let messages = messages
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`messages` must be an array".into()))?;
    let mut system = Vec::new();
    let mut turns = Turns::with_capacity(messages.len());
    // tool_call id → function name, filled as assistant turns go by, so a reused id resolves
    // to its latest call.
    let mut call_names: HashMap<String, String> = HashMap::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("messages[{i}].role is missing")))?;
        let content = message.get("content").filter(|c| !c.is_null());
        let (role, parts) = match role {
            "system" | "developer" => {
                for text in texts(content, i)? {
                    system.push(json!({ "text": text }));
                }
                continue;
            }
            "user" => (Role::User, user_parts(content, i)?),
            "assistant" => (
                Role::Model,
                assistant_parts(message, content, i, &mut call_names)?,
            ),
            "tool" => (
                Role::User,
                vec![tool_response(message, content, i, &call_names)?],
            ),
            other => {
                return Err(bad(format!(
                    "messages[{i}].role `{other}` is not supported for this model"
                )))
            }
        };
        turns.push(role, parts);
    }
    let contents = turns.into_json(|role| role.name(), "parts")?;
    Ok(Converted { system, contents })
}

fn user_parts(content: Option<&Value>, i: usize) -> Result<Vec<Value>, GatewayError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(vec![json!({ "text": s })]),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(bad(format!(
                "messages[{i}].content must be a string or an array"
            )))
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "text" => {
                let text = part
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("messages[{i}]: a text part has no `text`")))?;
                if !text.is_empty() {
                    out.push(json!({ "text": text }));
                }
            }
            "image_url" => {
                let url = match part.get("image_url") {
                    Some(Value::String(url)) => Some(url.as_str()),
                    Some(obj) => obj.get("url").and_then(Value::as_str),
                    None => None,
                };
                let url =
                    url.ok_or_else(|| bad(format!("messages[{i}]: image_url.url is missing")))?;
                out.push(image(url, i)?);
            }
            "input_audio" => {
                let audio = part.get("input_audio");
                let data = audio.and_then(|a| a.get("data")).and_then(Value::as_str);
                let format = audio.and_then(|a| a.get("format")).and_then(Value::as_str);
                let (Some(data), Some(format)) = (data, format) else {
                    return Err(bad(format!(
                        "messages[{i}]: input_audio needs `data` and `format`"
                    )));
                };
                out.push(
                    json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}),
                );
            }
            "file" => out.push(file(part.get("file"), i)?),
            other => {
                return Err(bad(format!(
                    "messages[{i}]: content part type `{other}` is not supported for this model"
                )))
            }
        }
    }
    Ok(out)
}

/// An image URL: a base64 data URL → `inlineData`; an http(s) URL → `fileData` with a MIME type
/// guessed from the extension (Gemini needs one; the gateway does not download the image).
fn image(url: &str, i: usize) -> Result<Value, GatewayError> {
    if url.starts_with("data:") {
        return data_url(url, i);
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(bad(format!(
            "messages[{i}]: an image URL must be a data: URL or an http(s) URL"
        )));
    }
    let mime = guess_mime(url).ok_or_else(|| {
        bad(format!(
            "messages[{i}]: cannot tell the type of image {url}: use a data: URL, or a URL ending \
             in .png, .jpg, .jpeg, .webp, .gif, .heic, .heif or .pdf"
        ))
    })?;
    Ok(json!({ "fileData": { "mimeType": mime, "fileUri": url } }))
}

/// `data:<mime>[;…];base64,<data>` → `inlineData`.
fn data_url(url: &str, i: usize) -> Result<Value, GatewayError> {
    let parsed = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','));
    let Some((meta, data)) = parsed else {
        return Err(bad(format!("messages[{i}]: malformed data URL")));
    };
    let mut fields = meta.split(';');
    let mime = fields.next().unwrap_or("");
    if mime.is_empty() || !fields.any(|f| f == "base64") {
        return Err(bad(format!(
            "messages[{i}]: a data URL must be `data:<mime type>;base64,<data>`"
        )));
    }
    Ok(json!({ "inlineData": { "mimeType": mime, "data": data } }))
}

fn guess_mime(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

fn file(file: Option<&Value>, i: usize) -> Result<Value, GatewayError> {
    match file.and_then(|f| f.get("file_data")).and_then(Value::as_str) {
        Some(data) if data.starts_with("data:") => data_url(data, i),
        Some(data) => {
            // Bare base64: the SDKs' examples send PDFs; trust the filename if it says more.
            let name = file.and_then(|f| f.get("filename")).and_then(Value::as_str);
            let mime = name.and_then(guess_mime).unwrap_or("application/pdf");
            Ok(json!({ "inlineData": { "mimeType": mime, "data": data } }))
        }
        None => Err(bad(format!(
            "messages[{i}]: file parts must carry `file_data`; OpenAI file ids cannot be sent to this model"
        ))),
    }
}

/// An assistant message: its text, then one `functionCall` part per tool call.
fn assistant_parts(
    message: &Value,
    content: Option<&Value>,
    i: usize,
    call_names: &mut HashMap<String, String>,
) -> Result<Vec<Value>, GatewayError> {
    let mut parts: Vec<Value> = texts(content, i)?
        .into_iter()
        .map(|text| json!({ "text": text }))
        .collect();
    for call in tool_calls(message, i)? {
        let name = call_name(call, i)?;
        let args = call_input(call, name, i)?;
        let id = call.get("id").and_then(Value::as_str).unwrap_or("");
        let mut part = json!({ "functionCall": { "name": name, "args": args } });
        // Gemini 3 needs the call's thought signature back: from our id, or from the field
        // Google's own OpenAI-compatible endpoint uses.
        let signature = signature_from_id(id).or_else(|| {
            call.pointer("/extra_content/google/thought_signature")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        if let Some(signature) = signature {
            part["thoughtSignature"] = signature.into();
        }
        if !id.is_empty() {
            call_names.insert(id.to_string(), name.to_string());
        }
        parts.push(part);
    }
    Ok(parts)
}

/// A `tool` message → a `functionResponse` part, named after the call it answers.
fn tool_response(
    message: &Value,
    content: Option<&Value>,
    i: usize,
    call_names: &HashMap<String, String>,
) -> Result<Value, GatewayError> {
    let id = message.get("tool_call_id").and_then(Value::as_str);
    let name = id
        .and_then(|id| call_names.get(id).map(String::as_str))
        .or_else(|| message.get("name").and_then(Value::as_str))
        .ok_or_else(|| {
            bad(format!(
                "messages[{i}].tool_call_id does not match a tool call of an earlier assistant message"
            ))
        })?;
    let text = texts(content, i)?.concat();
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "content": text }),
    };
    Ok(json!({ "functionResponse": { "name": name, "response": response } }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn convert_ok(messages: Value) -> Converted {
        convert(Some(&messages)).unwrap()
    }

    fn contents(messages: Value) -> Value {
        Value::Array(convert_ok(messages).contents)
    }

    fn fails(messages: Value) -> GatewayError {
        let e = convert(Some(&messages)).err().unwrap();
        assert_eq!((e.status(), e.param.as_deref()), (400, Some("messages")));
        e
    }

    #[test]
    fn system_and_developer_become_system_instruction() {
        let c = convert_ok(json!([
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]}
        ]));
        assert_eq!(
            c.system,
            vec![json!({"text": "Be terse."}), json!({"text": "Use French."})]
        );
        assert_eq!(
            Value::Array(c.contents),
            json!([{"role": "user", "parts": [{"text": "hi"}]}])
        );
    }

    #[test]
    fn user_text_becomes_text_parts() {
        assert_eq!(
            contents(json!([{"role": "user", "name": "bob", "content": [
                {"type": "text", "text": "a"}, {"type": "text", "text": ""}, {"type": "text", "text": "b"}]}])),
            json!([{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}])
        );
    }

    #[test]
    fn data_url_image_becomes_inline_data() {
        let c = contents(json!([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K", "detail": "high"}}]}]));
        assert_eq!(
            c[0]["parts"][0],
            json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}})
        );
        fails(
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]),
        );
    }

    #[test]
    fn https_image_becomes_file_data_with_a_guessed_type() {
        let c = contents(json!([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.JPG?size=2"}}]}]));
        assert_eq!(
            c[0]["parts"][0],
            json!({"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?size=2"}})
        );
        let e = fails(json!([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/image"}}]}]));
        assert!(e.message.contains("cannot tell the type"), "{}", e.message);
        fails(
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/a.png"}}]}]),
        );
    }

    #[test]
    fn audio_and_pdf_parts_become_inline_data() {
        let c = contents(json!([{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}}]}]));
        assert_eq!(
            c[0]["parts"],
            json!([{"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
                   {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}])
        );
        fails(
            json!([{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]),
        );
    }

    #[test]
    fn assistant_becomes_model_with_function_calls() {
        let c = contents(json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}]}
        ]));
        assert_eq!(
            c[1],
            json!({"role": "model", "parts": [
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "now", "args": {}}}]})
        );
        fails(json!([{"role": "assistant", "tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": "{not json"}}]}]));
    }

    #[test]
    fn thought_signature_is_restored_from_the_id() {
        let id = super::super::tool_call_id("n", 0, Some("c2lnbmF0dXJl"));
        let c = contents(json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "x", "type": "function", "function": {"name": "g", "arguments": "{}"},
                 "extra_content": {"google": {"thought_signature": "b3RoZXI="}}}]},
            {"role": "tool", "tool_call_id": id, "content": "ok"}
        ]));
        assert_eq!(c[1]["parts"][0]["thoughtSignature"], "c2lnbmF0dXJl");
        assert_eq!(c[1]["parts"][1]["thoughtSignature"], "b3RoZXI=");
        assert_eq!(c[2]["parts"][0]["functionResponse"]["name"], "f");
    }

    #[test]
    fn tool_messages_become_one_user_turn_of_function_responses() {
        let c = contents(json!([
            {"role": "user", "content": "weather and time?"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\":21}"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
            {"role": "user", "content": "thanks"}
        ]));
        assert_eq!(c.as_array().unwrap().len(), 3);
        assert_eq!(
            c[2],
            json!({"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
                {"functionResponse": {"name": "now", "response": {"content": "noon"}}},
                {"text": "thanks"}]})
        );
        let e = fails(json!([{"role": "tool", "tool_call_id": "nope", "content": "x"}]));
        assert!(e.message.contains("tool_call_id"));
    }

    #[test]
    fn a_reused_call_id_resolves_to_the_latest_call() {
        let c = contents(json!([
            {"role": "user", "content": "a"},
            {"role": "assistant", "tool_calls": [{"id": "call_0", "function": {"name": "first", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "1"},
            {"role": "assistant", "tool_calls": [{"id": "call_0", "function": {"name": "second", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "2"}
        ]));
        assert_eq!(c[2]["parts"][0]["functionResponse"]["name"], "first");
        assert_eq!(c[4]["parts"][0]["functionResponse"]["name"], "second");
    }

    #[test]
    fn consecutive_same_role_messages_merge() {
        assert_eq!(
            contents(json!([
                {"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"}, {"role": "assistant", "content": [{"type": "text", "text": "d"}]},
                {"role": "user", "content": ""}, {"role": "user", "content": "e"}
            ])),
            json!([{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
                   {"role": "model", "parts": [{"text": "c"}, {"text": "d"}]},
                   {"role": "user", "parts": [{"text": "e"}]}])
        );
    }

    #[test]
    fn bad_messages_are_400s() {
        fails(json!([{"role": "system", "content": "only a system prompt"}]));
        fails(json!([{"role": "wizard", "content": "x"}]));
        fails(json!([{"content": "x"}]));
        fails(json!([{"role": "user", "content": [{"type": "video", "video": {}}]}]));
        fails(json!([{"role": "user", "content": 5}]));
    }
}
