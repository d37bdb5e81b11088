//! The settings only Vertex AI providers have: `project`, `region`, `credentials_file_env`
//! and `publisher`, and the default `base_url` the region gives.
//!
//! The service-account key file is read and its key parsed here, when the config is read
//! (and on every reload), so a missing or malformed file is a problem with its line rather
//! than a failure on the first request; no problem quotes the file's content.

use std::path::Path;

use super::file::{FileProvider, FileProviderKind, FilePublisher};
use super::Validator;
use crate::providers::vertex::account::ServiceAccount;
use crate::providers::vertex::token::TokenCache;
use crate::providers::vertex::{self, Publisher, Vertex};

/// Where a Vertex provider's key file is named when `credentials_file_env` is not set:
/// the variable Google's own libraries read.
pub const DEFAULT_CREDENTIALS_ENV: &str = "GOOGLE_APPLICATION_CREDENTIALS";

impl Validator<'_> {
    /// Provider `name`'s Vertex settings: required (with their lines) on kind `vertex`,
    /// refused on any other. `used`: the provider serves models, so its key file must be
    /// there.
    pub(super) fn vertex(
        &mut self,
        name: &str,
        p: &FileProvider,
        env: &dyn Fn(&str) -> Option<String>,
        used: bool,
    ) -> Option<Vertex> {
        let field = |f: &str| format!("providers.{name}.{f}");
        if *p.kind.get_ref() != FileProviderKind::Vertex {
            let only = "only providers of kind \"vertex\" take it";
            if let Some(v) = &p.project {
                self.problem(v, &field("project"), only);
            }
            // a region is refused with Bedrock's settings (which take one too)
            if let Some(v) = &p.credentials_file_env {
                self.problem(v, &field("credentials_file_env"), only);
            }
            if let Some(v) = &p.publisher {
                self.problem(v, &field("publisher"), only);
            }
            return None;
        }
        if let Some(v) = &p.api_key_env {
            self.problem(
                v,
                &field("api_key_env"),
                "kind \"vertex\" signs with a service account: name its key file's variable \
                 in `credentials_file_env` (default GOOGLE_APPLICATION_CREDENTIALS)",
            );
        }
        let project = self.vertex_name(name, p, "project", p.project.as_ref(), "my-project");
        let region = self.vertex_name(name, p, "region", p.region.as_ref(), "us-east5");
        let var = p
            .credentials_file_env
            .as_ref()
            .map_or(DEFAULT_CREDENTIALS_ENV, |v| v.get_ref().as_str());
        let path = env(var).filter(|v| !v.is_empty());
        let account = match path {
            None if !used => None,
            None => {
                let message = format!(
                    "environment variable {var} is not set (provider `{name}` serves models): \
                     it names the service account's key file"
                );
                match &p.credentials_file_env {
                    Some(v) => self.problem(v, &field("credentials_file_env"), message),
                    None => self.problem(&p.kind, &field("credentials_file_env"), message),
                }
                None
            }
            Some(path) => match ServiceAccount::from_file(Path::new(&path)) {
                Ok(account) => Some(account),
                Err(e) => {
                    let message = format!("the key file named by {var}: {e}");
                    match &p.credentials_file_env {
                        Some(v) => self.problem(v, &field("credentials_file_env"), message),
                        None => self.problem(&p.kind, &field("credentials_file_env"), message),
                    }
                    None
                }
            },
        };
        Some(Vertex {
            project: project?,
            region: region?,
            publisher: p.publisher.as_ref().map(|v| match v.get_ref() {
                FilePublisher::Google => Publisher::Google,
                FilePublisher::Anthropic => Publisher::Anthropic,
            }),
            account: account?,
            tokens: TokenCache::default(),
        })
    }

    /// A required Vertex name (`project`, `region`), checked to fit a path segment.
    fn vertex_name(
        &mut self,
        name: &str,
        p: &FileProvider,
        setting: &str,
        value: Option<&toml::Spanned<String>>,
        example: &str,
    ) -> Option<String> {
        let field = format!("providers.{name}.{setting}");
        match value {
            Some(v) if vertex::valid_name(v.get_ref()) => Some(v.get_ref().clone()),
            Some(v) => {
                self.problem(
                    v,
                    &field,
                    format!(
                        "`{}` is not a Google Cloud {setting} (letters, digits, `-`, `_`)",
                        v.get_ref()
                    ),
                );
                None
            }
            None => {
                self.problem(
                    &p.kind,
                    &field,
                    format!("missing: kind \"vertex\" needs its {setting} (like \"{example}\")"),
                );
                None
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::config::Config;
    use crate::providers::ProviderKind;

    pub(crate) const VERTEX: &str = r#"
[server]
listen = "127.0.0.1:8080"

[providers.vertex-us]
kind = "vertex"
project = "my-project"
region = "us-east5"

[models."gemini-v"]
provider = "vertex-us"
upstream_model = "gemini-2.5-flash"
"#;

    /// A key file with a throwaway key from openssl (none is committed).
    pub(crate) fn key_file() -> std::path::PathBuf {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .unwrap();
        let file = serde_json::json!({
            "type": "service_account",
            "private_key": String::from_utf8(out.stdout).unwrap(),
            "client_email": "gw@my-project.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        // one file per call: tests calling this in parallel must not read each other's writes
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "cheapai-vertex-config-unit-{}-{call}.json",
            std::process::id()
        ));
        std::fs::write(&path, file.to_string()).unwrap();
        path
    }

    #[test]
    fn the_region_names_the_endpoint_and_the_key_file_comes_from_the_environment() {
        let path = key_file().display().to_string();
        let env = |name: &str| (name == "GOOGLE_APPLICATION_CREDENTIALS").then(|| path.clone());
        let c = Config::parse(VERTEX, "t.toml", &env).unwrap();
        let p = &c.providers[0];
        assert_eq!(p.kind, ProviderKind::Vertex);
        assert_eq!(p.upstream.host, "us-east5-aiplatform.googleapis.com");
        assert!(p.upstream.tls);
        let v = p.vertex.as_ref().unwrap();
        assert_eq!(
            (v.project.as_str(), v.region.as_str()),
            ("my-project", "us-east5")
        );
        assert_eq!(v.account.token_uri, "https://oauth2.googleapis.com/token");

        let global = VERTEX.replace("us-east5", "global");
        let c = Config::parse(&global, "t.toml", &env).unwrap();
        assert_eq!(c.providers[0].upstream.host, "aiplatform.googleapis.com");

        // another variable, named in the config
        let named = VERTEX.replace(
            "region = \"us-east5\"\n",
            "region = \"us-east5\"\ncredentials_file_env = \"VERTEX_KEY\"\npublisher = \"anthropic\"\n",
        );
        let env = |name: &str| (name == "VERTEX_KEY").then(|| path.clone());
        let c = Config::parse(&named, "t.toml", &env).unwrap();
        assert_eq!(
            c.providers[0].vertex_publisher("gemini-2.5-flash"),
            Some(crate::providers::vertex::Publisher::Anthropic)
        );
    }

    #[test]
    fn vertex_settings_are_required_there_and_refused_elsewhere_by_line() {
        let path = key_file().display().to_string();
        let env = |name: &str| (name == "GOOGLE_APPLICATION_CREDENTIALS").then(|| path.clone());
        let bare = VERTEX
            .replace("project = \"my-project\"\n", "")
            .replace("region = \"us-east5\"\n", "");
        let e = Config::parse(&bare, "t.toml", &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.toml:6: providers.vertex-us.project: missing"),
            "{e}"
        );
        assert!(
            e.contains("t.toml:6: providers.vertex-us.region: missing"),
            "{e}"
        );

        let bad = VERTEX.replace("us-east5", "evil.com/x");
        let e = Config::parse(&bad, "t.toml", &env).unwrap_err().to_string();
        assert!(
            e.contains("t.toml:8: providers.vertex-us.region: `evil.com/x`"),
            "{e}"
        );

        let keyed = VERTEX.replace(
            "kind = \"vertex\"\n",
            "kind = \"vertex\"\napi_key_env = \"K\"\n",
        );
        let e = Config::parse(&keyed, "t.toml", &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("providers.vertex-us.api_key_env: kind \"vertex\" signs"),
            "{e}"
        );

        let elsewhere = VERTEX.replace(
            "kind = \"vertex\"\n",
            "kind = \"gemini\"\nbase_url = \"https://g.example\"\n",
        );
        let e = Config::parse(&elsewhere, "t.toml", &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.toml:8: providers.vertex-us.project: only providers of kind \"vertex\""),
            "{e}"
        );

        let no_url = VERTEX
            .replace("kind = \"vertex\"\n", "kind = \"gemini\"\n")
            .replace("project = \"my-project\"\n", "")
            .replace("region = \"us-east5\"\n", "");
        let e = Config::parse(&no_url, "t.toml", &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.toml:5: providers.vertex-us.base_url: missing"),
            "{e}"
        );
    }
}
