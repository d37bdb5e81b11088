//! Where a Bedrock provider's AWS credentials come from, and keeping them fresh.
//!
//! Sources, in the order the AWS SDKs' default chain tries them:
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, for temporary
//!    credentials, `AWS_SESSION_TOKEN` (read once, as the config is);
//! 2. the container endpoint ECS tasks and EKS Pod Identity give a pod:
//!    `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (under `http://169.254.170.2`) or
//!    `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with the token of
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (re-read at every fetch: the agent rotates it)
//!    or `AWS_CONTAINER_AUTHORIZATION_TOKEN` as its `Authorization` header.
//!
//! A container source is read by a thread of its own, never by a request: first at once,
//! then again before the credentials expire (five minutes before, or half their lifetime
//! when that is shorter), and after a failure with a growing pause. Requests read the
//! latest credentials from the [`CredentialCache`]; the thread ends once the provider is
//! gone (a reload that replaced it).

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::providers::bedrock::credentials::{AwsCredentials, CredentialCache};
use crate::secret::Secret;

/// The ECS agent's address, under which `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` lives.
const ECS_ENDPOINT: &str = "http://169.254.170.2";
/// How long before expiry credentials are fetched again (the AWS SDKs' margin).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// How often credentials without an expiry are fetched again.
const REFRESH_UNDATED: Duration = Duration::from_secs(3600);
/// The longest pause between two failed fetches.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(60);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A source of AWS credentials, as the environment names it.
#[derive(Debug)]
pub enum Source {
    /// Fixed credentials from the environment.
    Static(AwsCredentials),
    /// The container credentials endpoint.
    Container { uri: String, token: Option<Token> },
}

/// The container endpoint's `Authorization` value.
#[derive(Debug)]
pub enum Token {
    Value(Secret),
    /// A file holding it, read at every fetch.
    File(String),
}

impl Source {
    /// The first source the environment (`env`) configures, or why there is none.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            return Ok(Self::Static(AwsCredentials {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
                expires: None,
            }));
        }
        let uri = match (
            var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
            var("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        ) {
            (Some(relative), _) => format!("{ECS_ENDPOINT}{relative}"),
            (None, Some(full)) => full,
            (None, None) => {
                return Err("no AWS credentials: set AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or run \
                     where AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or \
                     AWS_CONTAINER_CREDENTIALS_FULL_URI names the container credentials endpoint"
                    .into())
            }
        };
        if !uri.starts_with("http://") {
            return Err(format!(
                "the container credentials endpoint `{}` must be plain http:// (the ECS \
                 agent's and EKS Pod Identity's are)",
                crate::secret::redact_url(&uri)
            ));
        }
        let token = match (
            var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
            var("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        ) {
            (Some(file), _) => Some(Token::File(file)),
            (None, Some(value)) => Some(Token::Value(Secret::new(value))),
            (None, None) => None,
        };
        Ok(Self::Container { uri, token })
    }

    /// The cache a provider signs from, kept filled from this source; `provider` names it
    /// in log lines.
    pub fn start(self, provider: &str) -> Arc<CredentialCache> {
        match self {
            Self::Static(credentials) => Arc::new(CredentialCache::with(credentials)),
            Self::Container { uri, token } => {
                let cache = Arc::new(CredentialCache::default());
                let weak = Arc::downgrade(&cache);
                let provider = provider.to_string();
                let spawned = std::thread::Builder::new()
                    .name("aws-credentials".into())
                    .spawn(move || refresh(&weak, &provider, &uri, token.as_ref()));
                if let Err(e) = spawned {
                    log::error!("could not start the AWS credentials thread: {e}");
                }
                cache
            }
        }
    }
}

/// Fetches into the cache until it is dropped.
fn refresh(cache: &Weak<CredentialCache>, provider: &str, uri: &str, token: Option<&Token>) {
    let mut retry = Duration::from_secs(1);
    loop {
        let Some(current) = cache.upgrade() else {
            return;
        };
        let pause = match fetch(uri, token) {
            Ok(credentials) => {
                retry = Duration::from_secs(1);
                let pause = refresh_in(credentials.expires, SystemTime::now());
                // no part of the credentials in the log, not even the key's id
                log::info!(
                    "provider {provider}: AWS credentials from the container endpoint, next \
                     fetch in {}s",
                    pause.as_secs()
                );
                current.set(credentials);
                pause
            }
            Err(e) => {
                log::warn!("provider {provider}: fetching AWS container credentials: {e}");
                let pause = retry;
                retry = (retry * 2).min(MAX_RETRY_PAUSE);
                pause
            }
        };
        drop(current);
        std::thread::sleep(pause);
    }
}

/// How long to wait before fetching credentials that expire at `expires` again.
fn refresh_in(expires: Option<SystemTime>, now: SystemTime) -> Duration {
    let Some(expires) = expires else {
        return REFRESH_UNDATED;
    };
    let left = expires.duration_since(now).unwrap_or_default();
    let margin = REFRESH_MARGIN.min(left / 2);
    (left - margin).max(Duration::from_millis(500))
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

/// One fetch from the container endpoint. Errors quote neither the token nor the answer.
fn fetch(uri: &str, token: Option<&Token>) -> Result<AwsCredentials, String> {
    let mut request = ureq::get(uri).timeout(FETCH_TIMEOUT);
    match token {
        Some(Token::Value(value)) => request = request.set("authorization", value.expose()),
        Some(Token::File(path)) => {
            let value = std::fs::read_to_string(path)
                .map_err(|e| format!("reading the token file {path}: {e}"))?;
            request = request.set("authorization", value.trim());
        }
        None => {}
    }
    let shown = crate::secret::redact_url(uri);
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
        Some(text) => Some(
            humantime::parse_rfc3339_weak(&text)
                .map_err(|e| format!("{shown}: an unreadable Expiration `{text}`: {e}"))?,
        ),
    };
    Ok(AwsCredentials {
        access_key_id: parsed.access_key_id,
        secret_access_key: Secret::new(parsed.secret_access_key),
        session_token: parsed.token.map(Secret::new),
        expires,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_environment_comes_first() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cret"),
            ("AWS_SESSION_TOKEN", "tok"),
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/x",
            ),
        ]);
        let Source::Static(c) = Source::from_env(&env).unwrap() else {
            panic!("not static");
        };
        assert_eq!(c.access_key_id, "AKID");
        assert_eq!(c.session_token.unwrap().expose(), "tok");
    }

    #[test]
    fn the_container_endpoint_and_its_token() {
        let env = env_of(&[
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/x",
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "t"),
        ]);
        let Source::Container { uri, token } = Source::from_env(&env).unwrap() else {
            panic!("not container");
        };
        assert_eq!(uri, "http://169.254.170.2/v2/credentials/x");
        assert!(matches!(token, Some(Token::Value(_))));
        let env = env_of(&[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/v1/credentials",
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/var/run/token"),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored"),
        ]);
        let Source::Container { token, .. } = Source::from_env(&env).unwrap() else {
            panic!("not container");
        };
        assert!(matches!(token, Some(Token::File(f)) if f == "/var/run/token"));
        let https = env_of(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://x/creds")]);
        assert!(Source::from_env(&https).is_err());
        assert!(Source::from_env(&env_of(&[]))
            .unwrap_err()
            .contains("AWS_ACCESS_KEY_ID"));
    }

    #[test]
    fn credentials_are_fetched_before_they_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = now + Duration::from_secs(3600);
        assert_eq!(refresh_in(Some(hour), now), Duration::from_secs(3300));
        let short = now + Duration::from_secs(4);
        assert_eq!(refresh_in(Some(short), now), Duration::from_secs(2));
        assert_eq!(refresh_in(Some(now), now), Duration::from_millis(500));
        assert_eq!(refresh_in(None, now), REFRESH_UNDATED);
    }
}
