//! `api_version`, the one setting only Azure OpenAI providers have.
//!
//! There is no default: Azure's dated versions each change what a deployment accepts and
//! answers (fields, tools, the Responses API), and they retire on Azure's schedule, so the
//! operator names the version the deployments were tested with, and the gateway never moves
//! it under them.

use super::file::{FileProvider, FileProviderKind};
use super::Validator;
use crate::providers::azure::valid_api_version;

impl Validator<'_> {
    /// Provider `name`'s `api_version`: required (with its line) for kind `azure`, refused
    /// on any other kind, and checked to fit a query string as written.
    pub(super) fn api_version(&mut self, name: &str, p: &FileProvider) -> Option<String> {
        let field = format!("providers.{name}.api_version");
        match (&p.api_version, *p.kind.get_ref() == FileProviderKind::Azure) {
            (Some(version), true) if valid_api_version(version.get_ref()) => {
                Some(version.get_ref().clone())
            }
            (Some(version), true) => {
                self.problem(
                    version,
                    &field,
                    format!(
                        "`{}` is not an Azure API version (like \"2024-10-21\" or \
                         \"2025-04-01-preview\")",
                        version.get_ref()
                    ),
                );
                None
            }
            (None, true) => {
                let message = "missing: kind \"azure\" needs the API version its deployments \
                               answer (like \"2024-10-21\"); there is no default";
                match &p.base_url {
                    Some(url) => self.problem(url, &field, message),
                    None => self.problem(&p.kind, &field, message),
                }
                None
            }
            (Some(version), false) => {
                self.problem(
                    version,
                    &field,
                    "only providers of kind \"azure\" take an API version",
                );
                None
            }
            (None, false) => None,
        }
    }
}
