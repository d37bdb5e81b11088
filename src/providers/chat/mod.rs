//! OpenAI chat, the form every translation passes through: a request of any client format
//! becomes a [`ChatRequest`] that the upstream side of any provider format reads, so a request
//! that crosses two formats (an Anthropic client on a Gemini model) is parsed once and
//! serialized once.

mod request;

pub(crate) use request::assistant_message;
pub use request::ChatRequest;
