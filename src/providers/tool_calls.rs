//! OpenAI chat's tool calls as they arrive, and their fragments folded into whole calls.
//!
//! Both translators that turn a chat stream into another dialect (Anthropic Messages, the
//! Responses API) read tool calls the same way: by `index`, with the id and name on the first
//! fragment and the arguments spread over the rest.

use super::chat::ChatToolCall;

/// One streamed call, as far as its fragments have come.
pub struct Call {
    /// The chat `tool_calls` index.
    pub index: usize,
    pub id: String,
    pub name: String,
    /// Argument fragments not yet written (the call's item or block is not open yet).
    pub args: String,
    /// Whether its item or block was opened (and so will be, or was, closed).
    pub emitted: bool,
}

/// Folds a fragment into `calls`: the call it belongs to (found by index, or made), with the
/// first id and name given kept. Returns that call's position and the argument text the
/// fragment carried, which the caller writes or holds.
pub fn absorb(calls: &mut Vec<Call>, fragment: ChatToolCall) -> (usize, String) {
    let id = fragment.id.filter(|id| !id.is_empty());
    let index = match fragment.index {
        Some(index) => index,
        // Hosts that omit `index`: a new id starts a new call, anything else continues.
        None => match (&id, calls.last()) {
            (None, Some(last)) => last.index,
            (Some(id), Some(last)) if *id == last.id => last.index,
            _ => calls.iter().map(|c| c.index + 1).max().unwrap_or(0),
        },
    };
    let (name, args) = match fragment.function {
        Some(f) => (
            f.name.filter(|n| !n.is_empty()),
            f.arguments.unwrap_or_default(),
        ),
        None => (None, String::new()),
    };
    let position = match calls.iter().position(|c| c.index == index) {
        Some(p) => p,
        None => {
            calls.push(Call {
                index,
                id: String::new(),
                name: String::new(),
                args: String::new(),
                emitted: false,
            });
            calls.len() - 1
        }
    };
    let call = &mut calls[position];
    if let (Some(id), true) = (id, call.id.is_empty()) {
        call.id = id;
    }
    if let (Some(name), true) = (name, call.name.is_empty()) {
        call.name = name;
    }
    (position, args)
}
