//! AWS STS's `AssumeRoleWithWebIdentity`, what an EKS pod's service account trades its
//! projected token for: `POST /` with a form body (`Action`, `Version`, `RoleArn`,
//! `RoleSessionName`, `WebIdentityToken`), unsigned, answered in the query protocol's XML.
//!
//! Rules enforced as STS documents them: the action and version must be known
//! (`InvalidAction`), the role an IAM role ARN and the session name 2–64 of
//! `[\w+=,.@-]` (`ValidationError`), the token one the identity provider vouches for — here
//! one a test accepted with [`Aws::accept_web_identity_tokens`] (`InvalidIdentityToken`).
//! The credentials handed out are temporary: Bedrock's routes accept them until they expire
//! ([`Aws::keys`]), then refuse them with `ExpiredTokenException`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::bedrock::Keys;
use crate::{Reply, Request};

/// The STS API version the emulator speaks.
const VERSION: &str = "2011-06-15";
/// The XML namespace of STS's answers.
const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// AWS's identity side: the keys Bedrock accepts and the STS that hands out temporary ones.
pub struct Aws {
    pub keys: Keys,
    /// Web identity tokens the identity provider vouches for.
    tokens: Mutex<Vec<String>>,
    /// How long the credentials handed out live (STS's default: one hour).
    lifetime: Mutex<Duration>,
    issued: AtomicU64,
}

impl Default for Aws {
    fn default() -> Self {
        Self {
            keys: Keys::default(),
            tokens: Mutex::new(Vec::new()),
            lifetime: Mutex::new(Duration::from_secs(3600)),
            issued: AtomicU64::new(0),
        }
    }
}

impl Aws {
    /// STS accepts exactly these web identity tokens from now on.
    pub fn accept_web_identity_tokens(&self, tokens: &[&str]) {
        if let Ok(mut held) = self.tokens.lock() {
            *held = tokens.iter().map(|t| t.to_string()).collect();
        }
    }

    /// How long the credentials STS hands out from now on live.
    pub fn set_lifetime(&self, lifetime: Duration) {
        if let Ok(mut held) = self.lifetime.lock() {
            *held = lifetime;
        }
    }

    /// How many credentials STS has handed out.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }
}

/// Whether `req` is a call to STS's query API.
pub fn serves(req: &Request) -> bool {
    req.method == "POST"
        && req.path == "/"
        && req
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// STS's answer to one call.
pub fn reply(req: &Request, aws: &Aws) -> Reply {
    let form: Vec<(String, String)> = form_urlencoded::parse(req.body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let action = field("Action").unwrap_or("");
    if action != "AssumeRoleWithWebIdentity" || field("Version") != Some(VERSION) {
        return error(
            400,
            "InvalidAction",
            &format!(
                "Could not find operation {action} for version {}",
                field("Version").unwrap_or("NO_VERSION_SPECIFIED")
            ),
        );
    }
    let role = field("RoleArn").unwrap_or("");
    if !is_role_arn(role) {
        return error(400, "ValidationError", "Request ARN is invalid");
    }
    let session = field("RoleSessionName").unwrap_or("");
    let session_ok = (2..=64).contains(&session.len())
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if !session_ok {
        return error(
            400,
            "ValidationError",
            "1 validation error detected: Value at 'roleSessionName' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*",
        );
    }
    let token = field("WebIdentityToken").unwrap_or("");
    let vouched = aws
        .tokens
        .lock()
        .map(|held| held.iter().any(|t| t == token))
        .unwrap_or(false);
    if token.is_empty() || !vouched {
        return error(
            400,
            "InvalidIdentityToken",
            "Couldn't retrieve verification key from your identity provider,  please \
             reference AssumeRoleWithWebIdentity documentation for requirements",
        );
    }
    let n = aws.issued.fetch_add(1, Ordering::Relaxed) + 1;
    let lifetime = aws.lifetime.lock().map(|l| *l).unwrap_or_default();
    let expires = SystemTime::now() + lifetime;
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let id = format!("ASIAEMULATOR{n:08}");
    let secret = format!("sts-secret-{nonce}");
    let session_token = format!("sts-session-{n}-{nonce}");
    aws.keys
        .add_temporary(&id, &secret, &session_token, expires);
    let expiration = humantime::format_rfc3339_seconds(expires);
    let xml = format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="{NAMESPACE}">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:emulator:gateway</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>{role}/{session}</Arn>
      <AssumedRoleId>AROAEMULATOR:{session}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{session_token}</SessionToken>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <Expiration>{expiration}</Expiration>
      <AccessKeyId>{id}</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.emulator/id/EMULATOR</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>{}</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#,
        uuid::Uuid::new_v4()
    );
    xml_reply(200, xml)
}

/// `arn:aws:iam::{12 digits}:role/{path and name}` (other partitions too).
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn, partition, "iam", "", account, resource] = parts.as_slice() else {
        return false;
    };
    *arn == "arn"
        && partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.strip_prefix("role/").is_some_and(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-/".contains(&b))
        })
}

/// STS's error answer (the query protocol's `ErrorResponse`).
fn error(status: u16, code: &str, message: &str) -> Reply {
    let kind = if status < 500 { "Sender" } else { "Receiver" };
    let xml = format!(
        r#"<ErrorResponse xmlns="{NAMESPACE}">
  <Error>
    <Type>{kind}</Type>
    <Code>{code}</Code>
    <Message>{message}</Message>
  </Error>
  <RequestId>{}</RequestId>
</ErrorResponse>"#,
        uuid::Uuid::new_v4()
    );
    xml_reply(status, xml)
}

fn xml_reply(status: u16, xml: String) -> Reply {
    let mut reply = Reply::json(status, &serde_json::Value::Null);
    reply.set_full("text/xml", bytes::Bytes::from(xml));
    reply
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn role_arns() {
        assert!(is_role_arn("arn:aws:iam::123456789012:role/gateway"));
        assert!(is_role_arn(
            "arn:aws-cn:iam::123456789012:role/team/gateway"
        ));
        for bad in [
            "",
            "arn:aws:iam::123:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:role/",
        ] {
            assert!(!is_role_arn(bad), "{bad}");
        }
    }
}
