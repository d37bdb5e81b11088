//! The settings of kind `bedrock` (AWS Bedrock): `region`, the base URL it implies, and the
//! AWS credentials the provider signs with (from the environment, see
//! [`crate::aws_credentials`]).

use toml::Spanned;

use super::file::{FileProvider, FileProviderKind};
use super::Validator;
use crate::aws_credentials::Source;
use crate::providers::bedrock::{valid_region, Bedrock};

impl Validator<'_> {
    /// Provider `name`'s Bedrock signing setup: kind `bedrock` requires a `region` and AWS
    /// credentials (`used`: the provider serves models, so missing credentials are a problem
    /// then); other kinds refuse `region`.
    pub(super) fn bedrock(
        &mut self,
        name: &str,
        table: &Spanned<FileProvider>,
        used: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Bedrock> {
        let p = table.get_ref();
        let field = |f: &str| format!("providers.{name}.{f}");
        let kind = *p.kind.get_ref();
        if kind != FileProviderKind::Bedrock {
            // Vertex's region is checked with its other settings
            if let Some(region) = p
                .region
                .as_ref()
                .filter(|_| kind != FileProviderKind::Vertex)
            {
                self.problem(
                    region,
                    &field("region"),
                    "only providers of kind \"bedrock\" or \"vertex\" take a region",
                );
            }
            return None;
        }
        if let Some(var) = &p.api_key_env {
            self.problem(
                var,
                &field("api_key_env"),
                "kind \"bedrock\" signs with AWS credentials (AWS_ACCESS_KEY_ID, … or the \
                 container endpoint), not a key",
            );
        }
        let region = match &p.region {
            Some(region) if valid_region(region.get_ref()) => region.get_ref().clone(),
            Some(region) => {
                self.problem(
                    region,
                    &field("region"),
                    format!(
                        "`{}` is not an AWS region (like \"us-east-1\")",
                        region.get_ref()
                    ),
                );
                return None;
            }
            None => {
                self.problem(
                    table,
                    &field("region"),
                    "missing: kind \"bedrock\" needs the AWS region it calls (like \"us-east-1\")",
                );
                return None;
            }
        };
        let source = match Source::from_env(env, &region) {
            Ok(source) => source,
            Err(e) if used => {
                self.problem(table, &field("kind"), e);
                return None;
            }
            Err(_) => return None,
        };
        Some(Bedrock {
            region,
            credentials: source.start(name),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::SystemTime;

    use crate::config::Config;
    use crate::providers::ProviderKind;

    const BEDROCK: &str = r#"
[server]
listen = "127.0.0.1:8080"

[providers.bedrock-us]
kind = "bedrock"
region = "us-east-1"

[models."claude-sonnet-4-5"]
provider = "bedrock-us"
upstream_model = "anthropic.claude-sonnet-4-5-v1:0"
"#;

    fn aws_env(name: &str) -> Option<String> {
        match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIDTEST".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("test-secret".into()),
            "AWS_SESSION_TOKEN" => Some("test-token".into()),
            _ => None,
        }
    }

    #[test]
    fn the_region_names_the_endpoint_and_the_environment_the_credentials() {
        let c = Config::parse(BEDROCK, "t.toml", &aws_env).unwrap();
        let p = &c.providers[0];
        assert_eq!(p.kind, ProviderKind::Bedrock);
        assert_eq!(p.upstream.host, "bedrock-runtime.us-east-1.amazonaws.com");
        assert!(p.upstream.tls);
        let bedrock = p.bedrock.as_ref().unwrap();
        assert_eq!(bedrock.region, "us-east-1");
        let credentials = bedrock.credentials.usable(SystemTime::now()).unwrap();
        assert_eq!(credentials.access_key_id, "AKIDTEST");
        assert_eq!(
            credentials.session_token.as_ref().unwrap().expose(),
            "test-token"
        );
        // a base_url (a proxy, the emulator) replaces the regional endpoint
        let proxied = BEDROCK.replace(
            "region = \"us-east-1\"\n",
            "region = \"us-east-1\"\nbase_url = \"http://127.0.0.1:9\"\n",
        );
        let c = Config::parse(&proxied, "t.toml", &aws_env).unwrap();
        assert_eq!(c.providers[0].upstream.authority, "127.0.0.1:9");
    }

    #[test]
    fn region_and_credentials_are_required_by_line() {
        let missing = BEDROCK.replace("region = \"us-east-1\"\n", "");
        let e = Config::parse(&missing, "t.toml", &aws_env).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(
            e.0[0].contains("providers.bedrock-us.region: missing"),
            "{e}"
        );
        let bad = BEDROCK.replace("us-east-1", "US East");
        let e = Config::parse(&bad, "t.toml", &aws_env).unwrap_err();
        assert!(
            e.0[0].starts_with("t.toml:7: providers.bedrock-us.region: `US East`"),
            "{e}"
        );
        let e = Config::parse(BEDROCK, "t.toml", &|_| None).unwrap_err();
        assert!(e.0[0].contains("no AWS credentials"), "{e}");
        // a provider that serves no model needs none yet
        let unused = BEDROCK.split("[models").next().unwrap();
        let c = Config::parse(unused, "t.toml", &|_| None).unwrap();
        assert!(c.providers[0].bedrock.is_none());
    }

    #[test]
    fn only_bedrock_takes_a_region_and_every_other_kind_a_base_url() {
        let openai = r#"
[server]
listen = "127.0.0.1:8080"

[providers.openai]
kind = "openai"
region = "us-east-1"
"#;
        let e = Config::parse(openai, "t.toml", &aws_env).unwrap_err();
        let all = e.to_string();
        assert!(all.contains("providers.openai.base_url: missing"), "{all}");
        let with_url = openai.replace("region", "base_url = \"https://api.openai.com/v1\"\nregion");
        let e = Config::parse(&with_url, "t.toml", &aws_env).unwrap_err();
        assert!(
            e.0[0].starts_with("t.toml:8: providers.openai.region: only providers of kind"),
            "{e}"
        );
    }
}
