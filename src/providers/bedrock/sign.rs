//! SigV4 on a provider request, by the `aws-sigv4` crate (the AWS SDKs' own signer).
//!
//! Signed: the method, the path as it goes on the wire, the `host` header and the body's
//! SHA-256, plus the `x-amz-date` and (temporary credentials) `x-amz-security-token` headers
//! the signer adds. Nothing else is signed, so a client header the gateway forwards can
//! never break a signature.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use super::credentials::AwsCredentials;
use crate::error::GatewayError;

/// What is signed of one request.
pub struct Signable<'a> {
    pub method: &'a str,
    /// `Host`: the host, and the port when it is not the scheme's default.
    pub authority: &'a str,
    /// The path and query as sent (already percent-encoded).
    pub path: &'a str,
    pub body: &'a [u8],
}

/// Where and when a request is signed.
pub struct Scope<'a> {
    pub region: &'a str,
    /// The signing name: `bedrock` for Bedrock's runtime.
    pub service: &'a str,
    pub time: SystemTime,
}

/// The headers that sign `request` with `credentials` (`authorization`, `x-amz-date`,
/// `x-amz-security-token` when they have a session token). Errors name no credential.
pub fn headers(
    request: &Signable<'_>,
    credentials: &AwsCredentials,
    scope: &Scope<'_>,
) -> Result<Vec<(&'static str, String)>, GatewayError> {
    let failed = |e: &dyn std::fmt::Display| GatewayError::internal("signing the AWS request", e);
    let identity = Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.expose(),
        credentials
            .session_token
            .as_ref()
            .map(|t| t.expose().to_string()),
        credentials.expires,
        "cheapai-gateway",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(scope.time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let uri = format!("https://{}{}", request.authority, request.path);
    let signable = SignableRequest::new(
        request.method,
        uri,
        [("host", request.authority)].into_iter(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| failed(&e))?
        .into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name(), h.value().to_string()))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::secret::Secret;

    fn example(session_token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            session_token: session_token.map(|t| Secret::new(t.into())),
            expires: None,
        }
    }

    fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// AWS's SigV4 test suite, `get-vanilla`: `GET /` on example.amazonaws.com at
    /// 2015-08-30T12:36:00Z, service `service` in us-east-1, signs to AWS's published value.
    #[test]
    fn the_get_vanilla_vector() {
        let request = Signable {
            method: "GET",
            authority: "example.amazonaws.com",
            path: "/",
            body: b"",
        };
        let scope = Scope {
            region: "us-east-1",
            service: "service",
            time: UNIX_EPOCH + Duration::from_secs(1_440_938_160),
        };
        let headers = headers(&request, &example(None), &scope).unwrap();
        assert_eq!(header(&headers, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            header(&headers, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        assert_eq!(header(&headers, "x-amz-security-token"), None);
    }

    #[test]
    fn a_session_token_is_sent_and_signed() {
        let request = Signable {
            method: "POST",
            authority: "bedrock-runtime.us-east-1.amazonaws.com",
            path: "/model/anthropic.claude-sonnet-4-5-v1%3A0/invoke",
            body: b"{}",
        };
        let scope = Scope {
            region: "us-east-1",
            service: "bedrock",
            time: SystemTime::now(),
        };
        let headers = headers(&request, &example(Some("token-1")), &scope).unwrap();
        assert_eq!(header(&headers, "x-amz-security-token"), Some("token-1"));
        let auth = header(&headers, "authorization").unwrap();
        assert!(
            auth.contains("SignedHeaders=host;x-amz-date;x-amz-security-token"),
            "{auth}"
        );
        assert!(!auth.contains("wJalr"), "{auth}");
    }
}
