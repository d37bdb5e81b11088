//! The settings of kind `bedrock` (AWS Bedrock): `region`, the base URL it implies, and the
//! AWS credentials the provider signs with (from the environment, see
//! [`crate::aws_credentials`]).

use toml::Spanned;

use super::file::{FileProvider, FileProviderKind};
use super::Validator;
use crate::aws_credentials::Source;
use crate::providers::bedrock::{default_base_url, valid_region, Bedrock};

impl Validator<'_> {
    /// Provider `name`'s base URL: `base_url` as written; on kind `bedrock` without one, its
    /// region's endpoint. `None` (with a problem) when there is none.
    pub(super) fn base_url(&mut self, name: &str, table: &Spanned<FileProvider>) -> Option<String> {
        let p = table.get_ref();
        if let Some(url) = &p.base_url {
            return Some(url.get_ref().clone());
        }
        if p.kind == FileProviderKind::Bedrock {
            // the region's own problem is reported by `bedrock`
            return p
                .region
                .as_ref()
                .map(|r| r.get_ref())
                .filter(|r| valid_region(r))
                .map(|r| default_base_url(r));
        }
        self.problem(
            table,
            &format!("providers.{name}.base_url"),
            "missing: the provider's URL (like \"https://api.openai.com/v1\")",
        );
        None
    }

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
        if p.kind != FileProviderKind::Bedrock {
            if let Some(region) = &p.region {
                self.problem(
                    region,
                    &field("region"),
                    "only providers of kind \"bedrock\" take a region",
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
        let source = match Source::from_env(env) {
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
