//! Anthropic's beta features on Bedrock: Bedrock takes them as `anthropic_beta` in the body,
//! not as the `anthropic-beta` header, and refuses a whole request naming one it does not
//! offer ("invalid beta flag"). Clients such as Claude Code send Anthropic-only betas
//! (`claude-code-20250219`, `oauth-2025-04-20`, `prompt-caching-scope-…`) with every
//! request, so only the betas Bedrock documents for Claude pass, under Bedrock's name for
//! them; the others are left out, as the Anthropic SDK's own Bedrock client and peer gateways
//! do.

/// A client's beta name and Bedrock's name for it.
const ON_BEDROCK: &[(&str, &str)] = &[
    // tool search is its own beta on Bedrock
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

/// Bedrock's names for the client's betas it offers, each once, in the client's order.
pub fn on_bedrock(client: &[String]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for name in client {
        let found = ON_BEDROCK.iter().find(|(asked, _)| asked == name);
        if let Some((_, bedrock)) = found {
            if !out.contains(bedrock) {
                out.push(bedrock);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_betas_bedrock_offers_pass_under_its_names() {
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
            on_bedrock(&claude_code),
            [
                "interleaved-thinking-2025-05-14",
                "tool-search-tool-2025-10-19",
                "context-1m-2025-08-07"
            ]
        );
        assert!(on_bedrock(&[]).is_empty());
        assert!(on_bedrock(&["claude-code-20250219".to_string()]).is_empty());
    }
}
