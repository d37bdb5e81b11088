//! Anthropic's beta features on Claude served by a cloud: Bedrock takes them as
//! `anthropic_beta` in the body, Vertex AI as the `anthropic-beta` header, and both refuse a
//! whole request naming a beta they do not offer ("invalid beta flag"). Clients such as
//! Claude Code send Anthropic-only betas (`claude-code-20250219`, `oauth-2025-04-20`,
//! `prompt-caching-scope-…`) with every request, so only the betas each cloud documents for
//! Claude pass, under the cloud's name for them; the others are left out, as the Anthropic
//! SDK's own cloud clients and peer gateways do.

/// The cloud a Claude request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Bedrock,
    Vertex,
}

/// A client's beta name and Bedrock's name for it.
const ON_BEDROCK: &[(&str, &str)] = &[
    // tool search is its own beta on the clouds
    (
        "advanced-tool-use-2025-11-20",
        "tool-search-tool-2025-10-19",
    ),
    ("tool-search-tool-2025-10-19", "tool-search-tool-2025-10-19"),
    ("tool-examples-2025-10-29", "tool-examples-2025-10-29"),
    ("computer-use-2024-10-22", "computer-use-2024-10-22"),
    ("computer-use-2025-01-24", "computer-use-2025-01-24"),
    ("computer-use-2025-11-24", "computer-use-2025-11-24"),
    (
        "token-efficient-tools-2025-02-19",
        "token-efficient-tools-2025-02-19",
    ),
    (
        "fine-grained-tool-streaming-2025-05-14",
        "fine-grained-tool-streaming-2025-05-14",
    ),
    (
        "interleaved-thinking-2025-05-14",
        "interleaved-thinking-2025-05-14",
    ),
    ("output-128k-2025-02-19", "output-128k-2025-02-19"),
    ("context-1m-2025-08-07", "context-1m-2025-08-07"),
    (
        "context-management-2025-06-27",
        "context-management-2025-06-27",
    ),
    ("effort-2025-11-24", "effort-2025-11-24"),
    ("compact-2026-01-12", "compact-2026-01-12"),
];

/// A client's beta name and Vertex AI's name for it.
const ON_VERTEX: &[(&str, &str)] = &[
    (
        "advanced-tool-use-2025-11-20",
        "tool-search-tool-2025-10-19",
    ),
    ("tool-search-tool-2025-10-19", "tool-search-tool-2025-10-19"),
    ("computer-use-2025-01-24", "computer-use-2025-01-24"),
    ("computer-use-2025-11-24", "computer-use-2025-11-24"),
    (
        "interleaved-thinking-2025-05-14",
        "interleaved-thinking-2025-05-14",
    ),
    ("context-1m-2025-08-07", "context-1m-2025-08-07"),
    (
        "context-management-2025-06-27",
        "context-management-2025-06-27",
    ),
    ("web-search-2025-03-05", "web-search-2025-03-05"),
    ("compact-2026-01-12", "compact-2026-01-12"),
];

/// The cloud's names for the client's betas it offers, each once, in the client's order.
pub fn offered(cloud: Cloud, client: &[String]) -> Vec<&'static str> {
    let table = match cloud {
        Cloud::Bedrock => ON_BEDROCK,
        Cloud::Vertex => ON_VERTEX,
    };
    let mut out: Vec<&'static str> = Vec::new();
    for name in client {
        let found = table.iter().find(|(asked, _)| asked == name);
        if let Some((_, cloud_name)) = found {
            if !out.contains(cloud_name) {
                out.push(cloud_name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_betas_the_cloud_offers_pass_under_its_names() {
        let claude_code: Vec<String> = [
            "claude-code-20250219",
            "oauth-2025-04-20",
            "interleaved-thinking-2025-05-14",
            "prompt-caching-scope-2026-01-05",
            "advanced-tool-use-2025-11-20",
            "context-1m-2025-08-07",
            "tool-search-tool-2025-10-19",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            offered(Cloud::Bedrock, &claude_code),
            [
                "interleaved-thinking-2025-05-14",
                "tool-search-tool-2025-10-19",
                "context-1m-2025-08-07"
            ]
        );
        assert!(offered(Cloud::Bedrock, &[]).is_empty());
        assert!(offered(Cloud::Bedrock, &["claude-code-20250219".to_string()]).is_empty());
        // Vertex offers fewer: no fine-grained tool streaming, no effort
        let asked = [
            "fine-grained-tool-streaming-2025-05-14",
            "effort-2025-11-24",
            "web-search-2025-03-05",
        ]
        .map(String::from);
        assert_eq!(offered(Cloud::Vertex, &asked), ["web-search-2025-03-05"]);
        assert_eq!(
            offered(Cloud::Bedrock, &asked),
            [
                "fine-grained-tool-streaming-2025-05-14",
                "effort-2025-11-24"
            ]
        );
    }
}
