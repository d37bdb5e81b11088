//! The container credentials endpoint ECS tasks and EKS Pod Identity give a pod:
//! `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (under `http://169.254.170.2`) or
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with the token of
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (re-read at every fetch: the agent rotates it)
//! or `AWS_CONTAINER_AUTHORIZATION_TOKEN` as its `Authorization` header.

use serde::Deserialize;

use super::{expiry, FETCH_TIMEOUT};
use crate::providers::bedrock::credentials::AwsCredentials;
use crate::secret::Secret;

/// The ECS agent's address, under which `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` lives.
const ECS_ENDPOINT: &str = "http://169.254.170.2";

/// Where the endpoint is and what proves the pod may ask it.
#[derive(Debug)]
pub struct Container {
    pub uri: String,
    pub token: Option<Token>,
}

/// The container endpoint's `Authorization` value.
#[derive(Debug)]
pub enum Token {
    Value(Secret),
    /// A file holding it, read at every fetch.
    File(String),
}

impl Container {
    /// The endpoint the environment (`var`, empty values already removed) names, none when
    /// it names none, or why the one it names cannot be used.
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Option<Result<Self, String>> {
        let uri = match (
            var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
            var("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        ) {
            (Some(relative), _) => format!("{ECS_ENDPOINT}{relative}"),
            (None, Some(full)) => full,
            (None, None) => return None,
        };
        if !uri.starts_with("http://") {
            return Some(Err(format!(
                "the container credentials endpoint `{}` must be plain http:// (the ECS \
                 agent's and EKS Pod Identity's are)",
                crate::secret::redact_url(&uri)
            )));
        }
        let token = match (
            var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
            var("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        ) {
            (Some(file), _) => Some(Token::File(file)),
            (None, Some(value)) => Some(Token::Value(Secret::new(value))),
            (None, None) => None,
        };
        Some(Ok(Self { uri, token }))
    }

    /// One fetch from the endpoint. Errors quote neither the token nor the answer.
    pub fn fetch(&self) -> Result<AwsCredentials, String> {
        let mut request = ureq::get(&self.uri).timeout(FETCH_TIMEOUT);
        match &self.token {
            Some(Token::Value(value)) => request = request.set("authorization", value.expose()),
            Some(Token::File(path)) => {
                let value = std::fs::read_to_string(path)
                    .map_err(|e| format!("reading the token file {path}: {e}"))?;
                request = request.set("authorization", value.trim());
            }
            None => {}
        }
        let shown = crate::secret::redact_url(&self.uri);
        let answer = request.call().map_err(|e| match e {
            ureq::Error::Status(status, _) => format!("{shown} answered {status}"),
            ureq::Error::Transport(t) => format!("{shown}: {}", t.kind()),
        })?;
        let body = answer
            .into_string()
            .map_err(|e| format!("reading the answer of {shown}: {e}"))?;
        let parsed: ContainerCredentials = serde_json::from_str(&body)
            .map_err(|_| format!("{shown} answered something other than credentials"))?;
        let expires = match parsed.expiration {
            None => None,
            Some(text) => Some(expiry(&text, &shown)?),
        };
        Ok(AwsCredentials {
            access_key_id: parsed.access_key_id,
            secret_access_key: Secret::new(parsed.secret_access_key),
            session_token: parsed.token.map(Secret::new),
            expires,
        })
    }
}

/// The container endpoint's answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerCredentials {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
    expiration: Option<String>,
}
