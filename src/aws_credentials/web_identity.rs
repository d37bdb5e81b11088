//! Web identity: the role an EKS pod's service account is annotated with (IAM roles for
//! service accounts), assumed by handing STS the token Kubernetes projects into the pod.
//!
//! `AWS_WEB_IDENTITY_TOKEN_FILE` names the token (re-read at every fetch: the kubelet
//! rotates it), `AWS_ROLE_ARN` the role, `AWS_ROLE_SESSION_NAME` optionally the session.
//! STS is `https://sts.{region}.amazonaws.com` (the regional endpoint, as the SDKs use by
//! default) with `AWS_REGION`, `AWS_DEFAULT_REGION` or else the provider's region, unless
//! `AWS_ENDPOINT_URL_STS` names another. `AssumeRoleWithWebIdentity` is not signed: the
//! token is the proof. Its answer is the query protocol's XML, read with `quick-xml`.
//!
//! The token travels over TLS checked against the system's roots (`SSL_CERT_FILE` and
//! `SSL_CERT_DIR` honoured, as for the providers); plain HTTP only to a loopback address.

use std::sync::Arc;

use pingora::tls::{load_native_certs, ClientConfig, CryptoProvider, RootCertStore};
use serde::Deserialize;

use super::{expiry, FETCH_TIMEOUT};
use crate::providers::bedrock::credentials::AwsCredentials;
use crate::secret::Secret;

/// The STS API version the query names.
const STS_VERSION: &str = "2011-06-15";
/// The longest STS error message quoted in a log line.
const MAX_MESSAGE: usize = 300;

/// A role to assume with a web identity token.
#[derive(Debug)]
pub struct WebIdentity {
    pub token_file: String,
    pub role_arn: String,
    pub session_name: String,
    /// STS's URL.
    pub endpoint: String,
}

impl WebIdentity {
    /// The role the environment (`var`, empty values already removed) names, none when it
    /// names no token file, or why what it names cannot be used.
    pub fn from_env(
        var: &dyn Fn(&str) -> Option<String>,
        region: &str,
    ) -> Option<Result<Self, String>> {
        let token_file = var("AWS_WEB_IDENTITY_TOKEN_FILE")?;
        let Some(role_arn) = var("AWS_ROLE_ARN") else {
            return Some(Err(
                "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not: the role to \
                 assume with the token is missing"
                    .into(),
            ));
        };
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| region.to_string());
        let endpoint = var("AWS_ENDPOINT_URL_STS")
            .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
        if !secure(&endpoint) {
            return Some(Err(format!(
                "AWS_ENDPOINT_URL_STS `{}` must be https:// (plain http:// only on a loopback \
                 address): the web identity token is a credential",
                crate::secret::redact_url(&endpoint)
            )));
        }
        let session_name = var("AWS_ROLE_SESSION_NAME")
            .unwrap_or_else(|| format!("cheapai-gateway-{}", crate::clock::unix_ms()));
        Some(Ok(Self {
            token_file,
            role_arn,
            session_name,
            endpoint,
        }))
    }

    /// One `AssumeRoleWithWebIdentity`. Errors quote neither the token nor the credentials;
    /// STS's own refusal (its code and message) is kept, it is what an operator acts on.
    pub fn fetch(&self) -> Result<AwsCredentials, String> {
        let token = std::fs::read_to_string(&self.token_file).map_err(|e| {
            format!(
                "reading the web identity token file {}: {e}",
                self.token_file
            )
        })?;
        let token = token.trim();
        let shown = crate::secret::redact_url(&self.endpoint);
        let answer = agent()?.post(&self.endpoint).send_form(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", STS_VERSION),
            ("RoleArn", &self.role_arn),
            ("RoleSessionName", &self.session_name),
            ("WebIdentityToken", token),
        ]);
        let body = match answer {
            Ok(answer) => answer
                .into_string()
                .map_err(|e| format!("reading the answer of {shown}: {e}"))?,
            Err(ureq::Error::Status(status, answer)) => {
                let body = answer.into_string().unwrap_or_default();
                return Err(format!(
                    "{shown} refused to assume {} ({status}): {}",
                    self.role_arn,
                    refusal(&body, token)
                ));
            }
            Err(ureq::Error::Transport(t)) => return Err(format!("{shown}: {}", transport(&t))),
        };
        credentials(&body).map_err(|e| format!("{shown}: {e}"))
    }
}

/// Why a request did not get through: not `t`'s own text, which starts with the URL as
/// the environment gave it (credentials in it included).
fn transport(t: &ureq::Transport) -> String {
    let mut reason = t.kind().to_string();
    if let Some(message) = t.message() {
        reason = format!("{reason}: {message}");
    }
    if let Some(source) = std::error::Error::source(t) {
        reason = format!("{reason}: {source}");
    }
    reason
}

/// Whether the token may go to `endpoint`: over TLS, or to this machine.
fn secure(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return endpoint.starts_with("https://");
    };
    ["127.0.0.1", "localhost", "[::1]"].iter().any(|host| {
        rest.strip_prefix(host)
            .is_some_and(|after| after.is_empty() || after.starts_with([':', '/']))
    })
}

/// A blocking HTTPS client trusting the system's roots (and `SSL_CERT_FILE`), on the same
/// rustls and crypto provider as the providers' connections.
fn agent() -> Result<ureq::Agent, String> {
    pingora::tls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default()
        .cloned()
        .ok_or("no TLS crypto provider is installed")?;
    let mut roots = RootCertStore::empty();
    for cert in load_native_certs().map_err(|e| format!("loading the system's roots: {e}"))? {
        // a store may hold certificates that are not usable roots; skip those
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err("the system trusts no root certificate (see SSL_CERT_FILE)".into());
    }
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(ureq::AgentBuilder::new()
        .tls_config(Arc::new(config))
        .timeout(FETCH_TIMEOUT)
        .build())
}

/// STS's answer to `AssumeRoleWithWebIdentity`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    assume_role_with_web_identity_result: AnswerResult,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AnswerResult {
    credentials: StsCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

/// STS's error answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorAnswer {
    error: StsError,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsError {
    code: String,
    message: Option<String>,
}

/// The credentials in a successful answer.
fn credentials(xml: &str) -> Result<AwsCredentials, String> {
    let answer: Answer = quick_xml::de::from_str(xml)
        .map_err(|_| "answered something other than AssumeRoleWithWebIdentity's result")?;
    let c = answer.assume_role_with_web_identity_result.credentials;
    Ok(AwsCredentials {
        expires: Some(expiry(&c.expiration, "STS")?),
        access_key_id: c.access_key_id,
        secret_access_key: Secret::new(c.secret_access_key),
        session_token: Some(Secret::new(c.session_token)),
    })
}

/// STS's reason for a refusal, bounded, without the token should it quote it.
fn refusal(xml: &str, token: &str) -> String {
    let Ok(answer) = quick_xml::de::from_str::<ErrorAnswer>(xml) else {
        return "an answer that is not STS's error".into();
    };
    let code = crate::text::cut(&answer.error.code, MAX_MESSAGE);
    match answer.error.message.filter(|m| !m.is_empty()) {
        // the token out before the message is cut, so no part of it is left
        Some(message) => {
            let message = match token {
                "" => message,
                token => message.replace(token, "[token]"),
            };
            format!("{code}: {}", crate::text::cut(&message, MAX_MESSAGE))
        }
        None => code.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:ai:gateway</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/gateway/cheapai</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:cheapai</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2026-12-07T12:00:23Z</Expiration>
      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EX</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#;

    #[test]
    fn stss_answer_is_read() {
        let c = credentials(ANSWER).unwrap();
        assert_eq!(c.access_key_id, "ASgeIAIOSFODNN7EXAMPLE");
        assert_eq!(
            c.secret_access_key.expose(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
        );
        assert_eq!(
            c.session_token.unwrap().expose(),
            "AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp"
        );
        let expected = humantime::parse_rfc3339("2026-12-07T12:00:23Z").unwrap();
        assert_eq!(c.expires, Some(expected));
        assert!(credentials("<Other/>").is_err());
        assert!(credentials("{}").is_err());
    }

    #[test]
    fn stss_refusal_is_quoted_without_the_token() {
        let xml = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>
    <Message>Token eyJhbGciOi.secret is expired</Message></Error>
  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
</ErrorResponse>"#;
        assert_eq!(
            refusal(xml, "eyJhbGciOi.secret"),
            "InvalidIdentityToken: Token [token] is expired"
        );
        assert_eq!(refusal("<html/>", "t"), "an answer that is not STS's error");
    }

    #[test]
    fn an_unreachable_sts_is_reported_without_the_urls_credentials() {
        let token_file = std::env::temp_dir().join(format!("cheapai-wi-{}", std::process::id()));
        std::fs::write(&token_file, "token").unwrap();
        let web = WebIdentity {
            token_file: token_file.display().to_string(),
            role_arn: "arn:aws:iam::123456789012:role/gateway".into(),
            session_name: "s".into(),
            // port 1: nothing listens there
            endpoint: "http://user:pw-in-url@127.0.0.1:1/".into(),
        };
        let e = web.fetch().unwrap_err();
        assert!(!e.contains("pw-in-url"), "{e}");
        assert!(e.contains("127.0.0.1:1"), "{e}");
        let _ = std::fs::remove_file(&token_file);
    }

    #[test]
    fn the_token_goes_over_tls_or_stays_on_this_machine() {
        for good in [
            "https://sts.us-east-1.amazonaws.com",
            "http://127.0.0.1:4566",
            "http://localhost/",
            "http://[::1]:9000",
        ] {
            assert!(secure(good), "{good}");
        }
        for bad in [
            "http://sts.us-east-1.amazonaws.com",
            "http://127.0.0.1.example.com",
            "http://localhost.evil:80",
            "ftp://x",
        ] {
            assert!(!secure(bad), "{bad}");
        }
    }
}
