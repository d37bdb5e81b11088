//! Where a Bedrock provider's AWS credentials come from, and keeping them fresh.
//!
//! Sources, in the order the AWS SDKs' default chain tries them:
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, for temporary
//!    credentials, `AWS_SESSION_TOKEN` (read once, as the config is);
//! 2. web identity, what EKS gives a pod through IAM roles for service accounts:
//!    `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`, exchanged with STS
//!    ([`web_identity`]);
//! 3. the container endpoint ECS tasks and EKS Pod Identity give a pod
//!    ([`container`]).
//!
//! A source other than the environment is read by a thread of its own, never by a request:
//! first at once, then again before the credentials expire (five minutes before, or half
//! their lifetime when that is shorter), and after a failure with a growing pause. Requests
//! read the latest credentials from the [`CredentialCache`]; the thread ends once the
//! provider is gone (a reload that replaced it).

pub mod container;
pub mod web_identity;

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use crate::providers::bedrock::credentials::{AwsCredentials, CredentialCache};
use crate::secret::Secret;

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
    /// A role assumed with the pod's web identity token.
    WebIdentity(web_identity::WebIdentity),
    /// The container credentials endpoint.
    Container(container::Container),
}

impl Source {
    /// The first source the environment (`env`) configures, or why there is none; `region`
    /// is the provider's, STS's region when the environment names none.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>, region: &str) -> Result<Self, String> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            return Ok(Self::Static(AwsCredentials {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
                expires: None,
            }));
        }
        if let Some(web) = web_identity::WebIdentity::from_env(&var, region) {
            return web.map(Self::WebIdentity);
        }
        if let Some(container) = container::Container::from_env(&var) {
            return container.map(Self::Container);
        }
        Err(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and \
             AWS_SESSION_TOKEN for temporary ones), or AWS_WEB_IDENTITY_TOKEN_FILE and \
             AWS_ROLE_ARN (EKS service accounts), or run where \
             AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or AWS_CONTAINER_CREDENTIALS_FULL_URI \
             names the container credentials endpoint"
                .into(),
        )
    }

    /// The cache a provider signs from, kept filled from this source; `provider` names it
    /// in log lines.
    pub fn start(self, provider: &str) -> Arc<CredentialCache> {
        match self {
            Self::Static(credentials) => Arc::new(CredentialCache::with(credentials)),
            Self::WebIdentity(source) => {
                keep_fresh(provider, "STS (web identity)", move || source.fetch())
            }
            Self::Container(source) => {
                keep_fresh(provider, "the container endpoint", move || source.fetch())
            }
        }
    }
}

/// A cache filled by a thread that calls `fetch` until the cache is dropped; `from` names
/// the source in log lines.
fn keep_fresh(
    provider: &str,
    from: &'static str,
    fetch: impl Fn() -> Result<AwsCredentials, String> + Send + 'static,
) -> Arc<CredentialCache> {
    let cache = Arc::new(CredentialCache::default());
    let weak = Arc::downgrade(&cache);
    let provider = provider.to_string();
    let spawned = std::thread::Builder::new()
        .name("aws-credentials".into())
        .spawn(move || refresh(&weak, &provider, from, &fetch));
    if let Err(e) = spawned {
        log::error!("could not start the AWS credentials thread: {e}");
    }
    cache
}

/// Fetches into the cache until it is dropped.
fn refresh(
    cache: &Weak<CredentialCache>,
    provider: &str,
    from: &str,
    fetch: &dyn Fn() -> Result<AwsCredentials, String>,
) {
    let mut retry = Duration::from_secs(1);
    loop {
        let Some(current) = cache.upgrade() else {
            return;
        };
        let pause = match fetch() {
            Ok(credentials) => {
                retry = Duration::from_secs(1);
                let pause = refresh_in(credentials.expires, SystemTime::now());
                // no part of the credentials in the log, not even the key's id
                log::info!(
                    "provider {provider}: AWS credentials from {from}, next fetch in {}s",
                    pause.as_secs()
                );
                current.set(credentials);
                pause
            }
            Err(e) => {
                log::warn!("provider {provider}: fetching AWS credentials from {from}: {e}");
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

/// An RFC 3339 expiry as AWS writes them (`2026-12-07T11:00:00Z`); `shown` names where it
/// came from in the error.
fn expiry(text: &str, shown: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{shown}: an unreadable Expiration `{text}`: {e}"))
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
        let Source::Static(c) = Source::from_env(&env, "us-east-1").unwrap() else {
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
        let Source::Container(container::Container { uri, token }) =
            Source::from_env(&env, "us-east-1").unwrap()
        else {
            panic!("not container");
        };
        assert_eq!(uri, "http://169.254.170.2/v2/credentials/x");
        assert!(matches!(token, Some(container::Token::Value(_))));
        let env = env_of(&[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/v1/credentials",
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/var/run/token"),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored"),
        ]);
        let Source::Container(container::Container { token, .. }) =
            Source::from_env(&env, "us-east-1").unwrap()
        else {
            panic!("not container");
        };
        assert!(matches!(token, Some(container::Token::File(f)) if f == "/var/run/token"));
        let https = env_of(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://x/creds")]);
        assert!(Source::from_env(&https, "us-east-1").is_err());
        assert!(Source::from_env(&env_of(&[]), "us-east-1")
            .unwrap_err()
            .contains("AWS_ACCESS_KEY_ID"));
    }

    #[test]
    fn web_identity_comes_before_the_container_endpoint() {
        let env = env_of(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/eks/token"),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gateway"),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/v1",
            ),
        ]);
        let Source::WebIdentity(web) = Source::from_env(&env, "eu-west-3").unwrap() else {
            panic!("not web identity");
        };
        assert_eq!(web.token_file, "/var/run/secrets/eks/token");
        assert_eq!(web.role_arn, "arn:aws:iam::123456789012:role/gateway");
        // STS in the provider's region when the environment names none
        assert_eq!(web.endpoint, "https://sts.eu-west-3.amazonaws.com");
        assert!(web.session_name.starts_with("cheapai-gateway-"));
        let env = env_of(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gateway"),
            ("AWS_REGION", "us-west-2"),
            ("AWS_ROLE_SESSION_NAME", "pod-7"),
        ]);
        let Source::WebIdentity(web) = Source::from_env(&env, "eu-west-3").unwrap() else {
            panic!("not web identity");
        };
        assert_eq!(web.endpoint, "https://sts.us-west-2.amazonaws.com");
        assert_eq!(web.session_name, "pod-7");
        let no_role = env_of(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")]);
        assert!(Source::from_env(&no_role, "us-east-1")
            .unwrap_err()
            .contains("AWS_ROLE_ARN"));
        let clear = env_of(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gateway"),
            ("AWS_ENDPOINT_URL_STS", "http://sts.example.com"),
        ]);
        assert!(Source::from_env(&clear, "us-east-1")
            .unwrap_err()
            .contains("https://"));
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
