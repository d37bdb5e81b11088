//! Azure OpenAI: OpenAI's wire format (bodies, answers, streams, errors) on Azure's URLs.
//!
//! What differs from an OpenAI-format host is only where a request goes and how it is
//! signed, so Azure shares the OpenAI adapter and the chat translators, and this module
//! holds the difference: a model is a *deployment* named in the path, every request carries
//! the `api-version` query parameter the operator chose, and the key goes in `api-key` (the
//! provider request is built in `Provider::request`).
//!
//! Paths (Azure's data-plane inference reference), under the resource's `base_url`:
//! - `/openai/deployments/{deployment}/chat/completions?api-version=V`
//! - `/openai/deployments/{deployment}/embeddings?api-version=V`
//! - `/openai/responses?api-version=V` and `/openai/responses/{id}…?api-version=V` for a
//!   provider with `native_responses = true` (the Responses API names the deployment in the
//!   body's `model`, as OpenAI's does); by default Responses requests are translated to chat
//!   completions, which every deployment in every region serves.

use super::upstream::Upstream;

/// The upstream path of an OpenAI operation (`suffix`: `/chat/completions`, `/embeddings`,
/// `/responses` or `/responses/{rest}`) on an Azure resource, for `deployment`.
pub fn path(upstream: &Upstream, api_version: &str, suffix: &str, deployment: &str) -> String {
    let operation = if suffix == "/responses" || suffix.starts_with("/responses/") {
        format!("/openai{suffix}")
    } else {
        format!("/openai/deployments/{}{suffix}", segment(deployment))
    };
    let join = if operation.contains('?') { '&' } else { '?' };
    upstream.path(&format!("{operation}{join}api-version={api_version}"))
}

/// A deployment name as one path segment: Azure's names are letters, digits, `-`, `_` and
/// `.`; anything else (a name from a pattern route, say) is percent-encoded so it can never
/// reach another path or the query.
fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `version` can stand in a query string as written: Azure's versions are dates
/// with an optional `-preview` (`2024-10-21`, `2025-04-01-preview`) or `v1`/`preview`.
pub fn valid_api_version(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= 64
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_paths_carry_the_api_version() {
        let u = Upstream::parse("https://my-resource.openai.azure.com").unwrap();
        let v = "2025-04-01-preview";
        assert_eq!(
            path(&u, v, "/chat/completions", "gpt-4o-eu"),
            "/openai/deployments/gpt-4o-eu/chat/completions?api-version=2025-04-01-preview"
        );
        assert_eq!(
            path(&u, v, "/embeddings", "emb.small_1"),
            "/openai/deployments/emb.small_1/embeddings?api-version=2025-04-01-preview"
        );
        assert_eq!(
            path(&u, v, "/responses", "ignored"),
            "/openai/responses?api-version=2025-04-01-preview"
        );
        assert_eq!(
            path(&u, v, "/responses/resp_1/input_items", "ignored"),
            "/openai/responses/resp_1/input_items?api-version=2025-04-01-preview"
        );
        // a base URL with a path (a proxy in front of the resource) keeps it
        let u = Upstream::parse("http://127.0.0.1:9/azure/").unwrap();
        assert_eq!(
            path(&u, "2024-10-21", "/chat/completions", "d"),
            "/azure/openai/deployments/d/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn a_deployment_name_stays_one_segment() {
        let u = Upstream::parse("https://r.openai.azure.com").unwrap();
        assert_eq!(
            path(&u, "v1", "/chat/completions", "a/../b?x=1 c"),
            "/openai/deployments/a%2F..%2Fb%3Fx%3D1%20c/chat/completions?api-version=v1"
        );
        assert_eq!(segment("claude:1@2"), "claude%3A1%402");
    }

    #[test]
    fn api_versions_that_fit_a_query() {
        for good in ["2024-10-21", "2025-04-01-preview", "v1", "preview"] {
            assert!(valid_api_version(good), "{good}");
        }
        for bad in ["", "2024 10", "x&y=1", "a#b", "é"] {
            assert!(!valid_api_version(bad), "{bad}");
        }
    }
}
