//! Config validation: every problem reported with its line, the deployments and patterns
//! forms, and the defaults they get.

use super::*;

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:9464"

[providers.openai]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"

[models."gpt-4o"]
provider = "openai"
upstream_model = "gpt-4o-2024-08-06"
price = { input = 2.50, output = 10.00 }
limits = { rpm = 500 }
fallbacks = ["gpt-4o-mini"]

[models."gpt-4o-mini"]
provider = "openai"

[[keys]]
name = "demo"
sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
"#;

fn env(name: &str) -> Option<String> {
    (name == "OPENAI_API_KEY").then(|| "sk-test".to_string())
}

#[tokio::test]
async fn good_config_builds_catalog_and_keys() {
    let c = Config::parse(GOOD, "t.toml", &env).unwrap();
    let m = c.catalog.get("gpt-4o").unwrap();
    assert_eq!(
        m.deployments[0].upstream_model.as_deref(),
        Some("gpt-4o-2024-08-06")
    );
    assert_eq!(m.price.input, 2_500_000);
    assert_eq!(m.price.cached_input, 2_500_000);
    assert_eq!(m.limits.rpm, Some(500));
    assert_eq!(c.catalog.routes(m).len(), 2);
    assert_eq!(c.providers[0].api_key.as_ref().unwrap().expose(), "sk-test");
    assert_eq!(c.server.max_body_bytes, 10 * 1024 * 1024);
    assert!(c.keys.verify("password").await.unwrap().is_some());
}

#[test]
fn missing_env_var_is_named_with_its_line() {
    let e = Config::parse(GOOD, "t.toml", &|_| None).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert!(
        e.0[0].starts_with("t.toml:9: providers.openai.api_key_env"),
        "{e}"
    );
    assert!(e.0[0].contains("OPENAI_API_KEY"), "{e}");
}

#[test]
fn every_semantic_problem_is_reported_with_line() {
    let bad = GOOD
        .replace(
            "provider = \"openai\"\nupstream",
            "provider = \"nope\"\nupstream",
        )
        .replace("5e8848", "zz")
        .replace("https://api.openai.com/v1", "ftp://x");
    let e = Config::parse(&bad, "t.toml", &env).unwrap_err();
    let all = e.to_string();
    assert!(all.contains("t.toml:8: providers.openai.base_url"), "{all}");
    assert!(
        all.contains("t.toml:12: models.\"gpt-4o\".provider: unknown provider `nope`"),
        "{all}"
    );
    assert!(all.contains("t.toml:23: keys[0].sha256"), "{all}");
}

#[test]
fn unknown_field_and_bad_kind_name_the_line() {
    let e = Config::parse(
        &GOOD
            .replace("threads", "x")
            .replace("admin_listen", "admin_lisen"),
        "t.toml",
        &env,
    )
    .unwrap_err();
    assert!(e.0[0].starts_with("t.toml:4:"), "{e}");
    assert!(e.0[0].contains("admin_lisen"), "{e}");
    let e = Config::parse(
        &GOOD.replace("kind = \"openai\"", "kind = \"foo\""),
        "t.toml",
        &env,
    )
    .unwrap_err();
    assert!(e.0[0].starts_with("t.toml:7:"), "{e}");
}

fn models(extra: &str) -> Result<Config, ConfigError> {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:8080"

[providers.a]
kind = "openai"
base_url = "https://a.example/v1"

[providers.b]
kind = "anthropic"
base_url = "https://b.example"
breaker = {{ failures = 2, open_ms = 500 }}
{extra}"#
    );
    Config::parse(&text, "t.toml", &|_| None)
}

#[test]
fn deployments_weights_retries_and_breakers() {
    let c = models(
        r#"
[models."duo"]
deployments = [
  { provider = "a", upstream_model = "x-2024", weight = 1 },
  { provider = "b", weight = 3 },
]
fallbacks = ["solo"]

[models."solo"]
provider = "a"
retries = 2
deadline_ms = 5000
retry_non_stream_timeouts = true
"#,
    )
    .unwrap();
    let duo = c.catalog.get("duo").unwrap();
    assert_eq!(duo.deployments.len(), 2);
    assert_eq!(duo.deployments[0].upstream_model.as_deref(), Some("x-2024"));
    assert_eq!(duo.deployments[1].weight, 3);
    assert_eq!(duo.retry.retries, 1, "default: every deployment once");
    assert_eq!(duo.retry.deadline, Duration::from_secs(120));
    assert!(!duo.retry.retry_non_stream_timeouts);
    let solo = c.catalog.get("solo").unwrap();
    assert_eq!(solo.retry.retries, 2);
    assert_eq!(solo.retry.deadline, Duration::from_secs(5));
    assert!(solo.retry.retry_non_stream_timeouts);
    assert_eq!(c.catalog.routes(duo).len(), 2);
}

#[test]
fn provider_and_deployments_together_is_an_error_with_its_line() {
    let e = models(
        r#"
[models."both"]
provider = "a"
deployments = [{ provider = "b" }]
"#,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("t.toml:15: models.\"both\".provider: set either `provider`"),
        "{e}"
    );
}

#[test]
fn bad_deployments_patterns_and_fallbacks_are_reported() {
    let e = models(
        r#"
[models."none"]
price = { input = 1.0, output = 1.0 }

[models."empty"]
deployments = []

[models."w0"]
deployments = [{ provider = "a", weight = 0 }, { provider = "nope" }]

[models."mid*dle"]
provider = "a"

[models."claude-*"]
provider = "b"

[models."f"]
provider = "a"
fallbacks = ["claude-*", "missing"]
retries = 99
"#,
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "models.\"none\".provider: missing: set `provider` or `deployments`",
        "models.\"empty\".deployments: list 1 to 64 deployments",
        "models.\"w0\".deployments[0].weight: must be at least 1",
        "models.\"w0\".provider: unknown provider `nope`",
        "models.\"mid*dle\".name: a pattern is a prefix followed by one `*`",
        "models.\"f\".fallbacks: `claude-*` is not an exact model name",
        "models.\"f\".fallbacks: `missing` is not an exact model name",
        "models.\"f\".retries: at most 10",
    ] {
        assert!(e.contains(expected), "missing {expected:?} in:\n{e}");
    }
}

#[test]
fn a_bad_breaker_is_reported() {
    let e = models(
        r#"
[providers.c]
kind = "openai"
base_url = "https://c.example/v1"
breaker = { failures = 0, open_ms = 10 }
"#,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("providers.c.breaker: `failures` and `open_ms` must be at least 1"),
        "{e}"
    );
}

#[test]
fn patterns_resolve_and_the_shipped_configs_are_valid() {
    let c = models(
        r#"
[models."claude-*"]
provider = "b"
price = { input = 10.0, output = 50.0 }

[models."claude-opus-4-8"]
provider = "b"
"#,
    )
    .unwrap();
    assert_eq!(
        c.catalog.resolve("claude-opus-4-8").unwrap().name,
        "claude-opus-4-8"
    );
    assert_eq!(
        c.catalog.resolve("claude-haiku-9").unwrap().name,
        "claude-*"
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let default = Config::load(&root.join("conf/gateway.toml")).unwrap();
    for name in [
        "claude-opus-4-8",
        "claude-opus-5-5",
        "gpt-6.1-sol",
        "gemini-4-argon",
    ] {
        assert_eq!(default.catalog.resolve(name).unwrap().name, name);
    }
    for (name, route) in [
        ("claude-sonnet-9", "claude-*"),
        ("gpt-7", "gpt-*"),
        ("o5-mini", "o*"),
        ("gemini-9-ultra", "gemini-*"),
        ("gemini-embedding-9", "gemini-embedding-*"),
        ("text-embedding-4-large", "text-embedding-*"),
    ] {
        assert_eq!(default.catalog.resolve(name).unwrap().name, route, "{name}");
    }
    // every variable set, the Vertex service account's key file a real one
    let key_file = super::vertex::tests::key_file();
    let env = |name: &str| match name {
        "GOOGLE_APPLICATION_CREDENTIALS" => Some(key_file.display().to_string()),
        _ => Some("set".to_string()),
    };
    let text = std::fs::read_to_string(root.join("conf/production.example.toml")).unwrap();
    Config::parse(&text, "production.example.toml", &env).unwrap();
}

#[test]
fn stored_responses_are_kept_30_days_unless_told_otherwise() {
    let days = |d: u64| Some(Duration::from_secs(d * 86_400));
    let c = Config::parse(GOOD, "t.toml", &env).unwrap();
    assert_eq!(c.usage.responses_retention, days(30));
    let with = |usage: &str| Config::parse(&format!("{GOOD}\n[usage]\n{usage}\n"), "t.toml", &env);
    assert_eq!(
        with("responses_retention_days = 7")
            .unwrap()
            .usage
            .responses_retention,
        days(7)
    );
    assert_eq!(
        with("store_responses = false")
            .unwrap()
            .usage
            .responses_retention,
        None
    );
    let e = with("responses_retention_days = 0").unwrap_err();
    assert!(e.0[0].contains("usage.responses_retention_days"), "{e}");
}

const AZURE: &str = r#"
[server]
listen = "127.0.0.1:8080"

[providers.azure-eu]
kind = "azure"
base_url = "https://my-resource.openai.azure.com"
api_key_env = "AZURE_OPENAI_API_KEY"
api_version = "2025-04-01-preview"

[models."gpt-4o-azure"]
provider = "azure-eu"
upstream_model = "gpt-4o-eu"
"#;

fn azure_env(name: &str) -> Option<String> {
    (name == "AZURE_OPENAI_API_KEY").then(|| "azure-key".to_string())
}

#[test]
fn azure_takes_its_api_version() {
    let c = Config::parse(AZURE, "t.toml", &azure_env).unwrap();
    let p = &c.providers[0];
    assert_eq!(p.kind, ProviderKind::Azure);
    assert_eq!(p.api_version.as_deref(), Some("2025-04-01-preview"));
    // Responses go through chat unless the operator says the deployments serve them
    assert!(!p.native_responses);
    assert_eq!(
        p.openai_path("/chat/completions", "gpt-4o-eu"),
        "/openai/deployments/gpt-4o-eu/chat/completions?api-version=2025-04-01-preview"
    );
}

#[test]
fn azure_api_version_is_required_and_refused_elsewhere_by_line() {
    let missing = AZURE.replace("api_version = \"2025-04-01-preview\"\n", "");
    let e = Config::parse(&missing, "t.toml", &azure_env).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert!(
        e.0[0].starts_with("t.toml:7: providers.azure-eu.api_version: missing"),
        "{e}"
    );

    let bad = AZURE.replace("2025-04-01-preview", "2025-04-01&x=1");
    let e = Config::parse(&bad, "t.toml", &azure_env).unwrap_err();
    assert!(
        e.0[0].starts_with("t.toml:9: providers.azure-eu.api_version: `2025-04-01&x=1`"),
        "{e}"
    );

    let elsewhere = GOOD.replace(
        "api_key_env = \"OPENAI_API_KEY\"\n",
        "api_key_env = \"OPENAI_API_KEY\"\napi_version = \"2024-10-21\"\n",
    );
    let e = Config::parse(&elsewhere, "t.toml", &env).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert!(
        e.0[0].starts_with("t.toml:10: providers.openai.api_version: only providers of kind"),
        "{e}"
    );
}
