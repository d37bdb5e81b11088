//! The model an Anthropic client's answer from Claude on a cloud names: the one the client
//! asked for.
//!
//! Claude on Bedrock or Vertex answers in Anthropic's format, naming the model by the cloud's
//! id (`anthropic.claude-sonnet-4-5-v1:0`, `claude-sonnet-4-5@20250929`). Claude Code keeps an
//! answer's thinking blocks in the next turn only when the answer names the model it asked
//! for; otherwise it drops them, and with thinking on the provider then refuses the tool loop
//! ("a final assistant message must start with a thinking block"). So the name in
//! `message_start` (streams) or the message (whole answers) is set to the client's, as the
//! translated answers already do; only that field changes. Anthropic's own answers stay byte
//! for byte: their dated ids are Anthropic's names for the model asked for.

use bytes::Bytes;
use serde_json::Value;

use super::ctx::RequestCtx;
use crate::dialect::Dialect;
use crate::endpoint::Endpoint;
use crate::providers::ProviderKind;

/// The name to give the answer, when it is an Anthropic client's Messages answer from a
/// cloud that knows the model by another name.
pub(super) fn rename_to(ctx: &RequestCtx) -> Option<&str> {
    if ctx.dialect != Dialect::Anthropic || ctx.endpoint != Some(Endpoint::Messages) {
        return None;
    }
    let kind = ctx.outcome.provider.as_ref().map(|p| p.kind);
    if !matches!(kind, Some(ProviderKind::Bedrock | ProviderKind::Vertex)) {
        return None;
    }
    ctx.requested_model
        .as_deref()
        .filter(|asked| *asked != ctx.outcome.upstream_model)
}

/// A whole answer with its message's `model` set to `name` (anything that is not a message
/// object, an error for instance, as it was).
pub(super) fn whole(body: Bytes, name: &str) -> Bytes {
    let Ok(mut message) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    if !set_model(&mut message, name) {
        return body;
    }
    serde_json::to_vec(&message).map_or(body, Bytes::from)
}

/// The first events of a stream with `message_start`'s model set to `name`, when the first
/// event is `message_start` (the rest untouched).
pub(super) fn first_events(events: Bytes, name: &str) -> Bytes {
    let Some(end) = memchr::memmem::find(&events, b"\n\n") else {
        return events;
    };
    let (first, rest) = events.split_at(end);
    let Ok(first) = std::str::from_utf8(first) else {
        return events;
    };
    let mut lines: Vec<String> = first.lines().map(str::to_string).collect();
    let Some(data) = lines.iter_mut().find(|l| l.starts_with("data:")) else {
        return events;
    };
    let Ok(mut event) = serde_json::from_str::<Value>(data["data:".len()..].trim_start()) else {
        return events;
    };
    let renamed = event.get("type").and_then(Value::as_str) == Some("message_start")
        && event.get_mut("message").is_some_and(|m| set_model(m, name));
    if !renamed {
        return events;
    }
    *data = format!("data: {event}");
    let mut out = lines.join("\n").into_bytes();
    out.extend_from_slice(rest);
    Bytes::from(out)
}

/// Sets a message object's `model` to `name`; false when `message` is not one.
fn set_model(message: &mut Value, name: &str) -> bool {
    let is_message = message.get("type").and_then(Value::as_str) == Some("message");
    match message.get_mut("model") {
        Some(model) if is_message && model.is_string() => {
            *model = Value::from(name);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_message_names_the_clients_model() {
        let body = Bytes::from_static(
            br#"{"id":"msg_1","type":"message","role":"assistant","model":"anthropic.claude-sonnet-4-5-v1:0","content":[]}"#,
        );
        let v: Value = serde_json::from_slice(&whole(body, "claude-sonnet-4-5")).unwrap();
        assert_eq!(v["model"], "claude-sonnet-4-5");
        assert_eq!(v["id"], "msg_1");
        let error = Bytes::from_static(br#"{"type":"error","error":{"type":"x"}}"#);
        assert_eq!(whole(error.clone(), "m"), error);
        assert_eq!(whole(Bytes::from_static(b"not json"), "m"), "not json");
    }

    #[test]
    fn only_message_starts_model_changes_in_a_stream() {
        let events = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":\
            {\"id\":\"m\",\"type\":\"message\",\"model\":\"up\",\"content\":[]}}\n\n\
            event: ping\ndata: {\"type\":\"ping\"}\n\n";
        let out = first_events(Bytes::from(events), "asked");
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("event: message_start\ndata: {"), "{text}");
        assert!(text.contains("\"model\":\"asked\""), "{text}");
        assert!(
            text.ends_with("\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n"),
            "{text}"
        );
        // another first event, or a half one, goes as it came
        let ping = Bytes::from_static(b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
        assert_eq!(first_events(ping.clone(), "asked"), ping);
        let half = Bytes::from_static(b"event: message_start\ndata: {\"type\"");
        assert_eq!(first_events(half.clone(), "asked"), half);
    }
}
