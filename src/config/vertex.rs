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
    /// Provider `name`'s base URL: `base_url`, or on kind `vertex` without one, its region's
    /// endpoint. `None` (with a problem) when neither is there.
    pub(super) fn base_url(&mut self, name: &str, p: &FileProvider) -> Option<String> {
        if let Some(url) = &p.base_url {
            return Some(url.get_ref().clone());
        }
        let region = p.region.as_ref().map(|r| r.get_ref().as_str());
        match (*p.kind.get_ref(), region) {
            (FileProviderKind::Vertex, Some(region)) if vertex::valid_name(region) => {
                Some(vertex::base_url(region))
            }
            // the region's own problem is reported by `vertex`
            (FileProviderKind::Vertex, _) => None,
            _ => {
                self.problem(&p.kind, &format!("providers.{name}.base_url"), "missing");
                None
            }
        }
    }

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
            if let Some(v) = &p.region {
                self.problem(v, &field("region"), only);
            }
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
