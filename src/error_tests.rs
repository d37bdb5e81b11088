//! A provider refusing the gateway's own credentials or account, in each provider format:
//! the client gets the gateway's 502, never the provider's text.

use super::*;
use crate::providers::{anthropic, gemini, openai, Provider, ProviderKind};

/// What a provider's error text may carry of the operator's key.
const LEAK: &str = "sk-prov****9f8e";

fn provider(name: &str, kind: ProviderKind) -> Provider {
    Provider::for_tests(name, kind, Default::default())
}

/// The gateway's own 502 in both dialects, with none of `provider_text`.
fn assert_gateway_502(e: &GatewayError, provider_text: &str, case: &str) {
    assert_eq!(e.status(), 502, "{case}: {e}");
    assert_eq!(e.kind.label(), "provider_auth", "{case}");
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        assert_eq!(e.status_for(dialect), 502, "{case} {dialect:?}");
        let body = String::from_utf8(e.body(dialect).to_vec()).unwrap();
        assert!(!body.contains(LEAK), "{case} {dialect:?}: {body}");
        assert!(!body.contains(provider_text), "{case} {dialect:?}: {body}");
        assert!(body.contains("operator"), "{case} {dialect:?}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        match dialect {
            Dialect::OpenAi => assert_eq!(v["error"]["code"], "provider_auth_failed", "{case}"),
            Dialect::Anthropic => assert_eq!(v["error"]["type"], "api_error", "{case}"),
        }
    }
}

#[test]
fn openai_credential_and_billing_refusals_are_the_gateways_502() {
    let text = format!("Incorrect API key provided: {LEAK}. You can find your API key at x.");
    let json = |status: u16, kind: &str, code: &str| {
        let body = serde_json::json!({"error": {"message": text, "type": kind, "param": null, "code": code}});
        (status, body.to_string())
    };
    let cases = [
        json(401, "invalid_request_error", "invalid_api_key"),
        json(
            403,
            "request_forbidden",
            "unsupported_country_region_territory",
        ),
        json(429, "insufficient_quota", "insufficient_quota"),
        json(402, "invalid_request_error", "billing_not_active"),
        (401, text.clone()),
    ];
    for (status, body) in cases {
        let case = format!("openai {status} {body}");
        assert_gateway_502(
            &openai::upstream_error("openai", status, body.as_bytes()),
            &text,
            &case,
        );
        let p = provider("unit-openai", ProviderKind::OpenAi);
        let e = p.upstream_error(status, body.as_bytes());
        assert!(e.passthrough.is_none(), "{case}: never forwarded verbatim");
        assert_gateway_502(&e, &text, &case);
        assert_eq!(
            e.provider_failure(),
            Some(crate::routing::Failure::Status(status)),
            "{case}: failover sees the provider's status as before"
        );
    }
    // other errors keep today's behaviour
    let rate = br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    let e = provider("unit-openai", ProviderKind::OpenAi).upstream_error(429, rate);
    assert_eq!((e.status(), e.passthrough.is_some()), (429, true));
    let missing = br#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
    assert_eq!(openai::upstream_error("openai", 404, missing).status(), 404);
}

#[test]
fn anthropic_credential_and_billing_refusals_are_the_gateways_502() {
    let text = format!("invalid x-api-key {LEAK}");
    let error = |kind: &str, message: &str| {
        serde_json::json!({"type": "error", "error": {"type": kind, "message": message}})
            .to_string()
    };
    let credit = "Your credit balance is too low to access the Anthropic API.";
    let cases = [
        (401, error("authentication_error", &text), text.as_str()),
        (403, error("permission_error", &text), text.as_str()),
        (402, error("billing_error", &text), text.as_str()),
        (400, error("billing_error", &text), text.as_str()),
        (400, error("invalid_request_error", credit), credit),
        (401, text.clone(), text.as_str()),
    ];
    for (status, body, provider_text) in cases {
        let case = format!("anthropic {status} {body}");
        let e = anthropic::upstream_error("anthropic", status, body.as_bytes());
        assert_gateway_502(&e, provider_text, &case);
        let e = provider("unit-anthropic", ProviderKind::Anthropic)
            .upstream_error(status, body.as_bytes());
        assert!(e.passthrough.is_none(), "{case}: never forwarded verbatim");
        assert_gateway_502(&e, provider_text, &case);
    }
    let overloaded = error("overloaded_error", "Overloaded");
    let e = provider("unit-anthropic", ProviderKind::Anthropic)
        .upstream_error(529, overloaded.as_bytes());
    assert_eq!(e.status_for(Dialect::Anthropic), 529, "forwarded as before");
    let bad = error("invalid_request_error", "max_tokens: field required");
    assert_eq!(
        anthropic::upstream_error("anthropic", 400, bad.as_bytes()).status(),
        400
    );
}

#[test]
fn gemini_credential_refusals_are_the_gateways_502() {
    let text = format!("API key not valid. Please pass a valid API key. {LEAK}");
    let google = |code: u16, status: &str, reason: Option<&str>| {
        let details = reason.map_or_else(Vec::new, |r| {
            vec![serde_json::json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": r})]
        });
        serde_json::json!({"error": {"code": code, "message": text, "status": status, "details": details}})
            .to_string()
    };
    let cases = [
        (
            400,
            google(400, "INVALID_ARGUMENT", Some("API_KEY_INVALID")),
        ),
        (401, google(401, "UNAUTHENTICATED", None)),
        (403, google(403, "PERMISSION_DENIED", None)),
    ];
    for (status, body) in cases {
        let case = format!("gemini {status} {body}");
        assert_gateway_502(
            &gemini::upstream_error("gemini", status, body.as_bytes()),
            &text,
            &case,
        );
        let e =
            provider("unit-gemini", ProviderKind::Gemini).upstream_error(status, body.as_bytes());
        assert_gateway_502(&e, &text, &case);
    }
    let quota = google(429, "RESOURCE_EXHAUSTED", None);
    assert_eq!(
        gemini::upstream_error("gemini", 429, quota.as_bytes()).status(),
        429
    );
}

#[test]
fn refusals_are_counted_per_provider() {
    let body = br#"{"error":{"message":"bad key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
    provider("unit-counted", ProviderKind::OpenAi).upstream_error(401, body);
    provider("unit-counted", ProviderKind::OpenAi).upstream_error(403, body);
    let text = String::from_utf8(crate::metrics::render()).unwrap();
    assert!(
        text.contains("cheapai_provider_auth_failures_total{provider=\"unit-counted\"} 2"),
        "{text}"
    );
}
