//! A Vertex provider's requests: the publisher's path for the model and, for Claude, the
//! body Vertex takes. The answers are the publisher's own format, read by the Gemini and
//! Anthropic translators (or passed through to Anthropic clients).

use super::{claude_body, Publisher};
use crate::error::{ErrorKind, GatewayError};
use crate::providers::cloud_betas::{self, Cloud};
use crate::providers::{Provider, ProviderKind, UpstreamRequest};

impl Provider {
    /// The publisher of `upstream_model` on this provider (`None` on other kinds).
    pub(crate) fn vertex_publisher(&self, upstream_model: &str) -> Option<Publisher> {
        let vertex = self.vertex.as_ref()?;
        Some(Publisher::of(upstream_model, vertex.publisher))
    }

    /// The kind whose route table row serves `upstream_model`: on Vertex, its publisher's
    /// format (Claude → Anthropic, Gemini → Gemini); any other provider's own kind.
    pub(crate) fn route_kind(&self, upstream_model: &str) -> ProviderKind {
        match self.vertex_publisher(upstream_model) {
            Some(Publisher::Anthropic) => ProviderKind::Anthropic,
            Some(Publisher::Google) => ProviderKind::Gemini,
            None => self.kind,
        }
    }

    /// A Claude request on Vertex from a Messages body (which still names `model`):
    /// `:rawPredict`, or `:streamRawPredict` when the body streams, with the client's
    /// `betas` Vertex offers as `anthropic-beta`.
    pub(crate) fn vertex_claude(
        &self,
        body: &[u8],
        upstream_model: &str,
        stream: bool,
        betas: &[String],
    ) -> Result<UpstreamRequest, GatewayError> {
        let vertex = self.vertex.as_ref().ok_or_else(not_vertex)?;
        let method = Publisher::Anthropic.method(stream);
        let path = vertex.path(&self.upstream, Publisher::Anthropic, upstream_model, method);
        let mut request = self.request(path, claude_body(body)?);
        let offered = cloud_betas::offered(Cloud::Vertex, betas);
        if !offered.is_empty() {
            request.headers.push(("anthropic-beta", offered.join(",")));
        }
        Ok(request)
    }

    /// A Gemini method's path on Vertex (`None` on other kinds).
    pub(crate) fn vertex_gemini_path(&self, upstream_model: &str, method: &str) -> Option<String> {
        let vertex = self.vertex.as_ref()?;
        Some(vertex.path(&self.upstream, Publisher::Google, upstream_model, method))
    }
}

fn not_vertex() -> GatewayError {
    GatewayError::new(
        ErrorKind::Internal,
        "a Vertex request on a provider without Vertex settings",
    )
}
