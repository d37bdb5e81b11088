//! Google Gemini's native wire format. The gateway only ever talks to Gemini ([`upstream`]):
//! no client speaks it, so there is no client side.

pub mod upstream;

pub use upstream::upstream_error;
