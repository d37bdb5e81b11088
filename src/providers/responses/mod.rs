//! OpenAI's Responses API (`POST /v1/responses`). Clients speak it ([`client`]); the gateway
//! never calls a provider's Responses API except to pass a request through unchanged to a host
//! that serves it natively, so there is no upstream side. For the models it translates, the
//! gateway keeps the API's conversation state itself ([`stored`]).

pub mod client;
pub mod stored;
