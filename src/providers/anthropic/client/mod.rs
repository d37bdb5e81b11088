//! An Anthropic client (Claude Code, the Anthropic SDK) on a model served in another format:
//! its Messages request → OpenAI chat request ([`request`], docs/translation.md D1), the OpenAI
//! chat answer → Anthropic's ([`response`], D2 and D3), and `count_tokens` estimated locally
//! ([`tokens`]) since only Anthropic counts Claude's tokens.

pub mod request;
pub mod response;
pub mod tokens;
