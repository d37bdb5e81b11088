//! Google Vertex AI as the emulator speaks it: the two publishers' model paths behind OAuth2
//! bearer tokens, and the token endpoint that issues them for a service account's signed
//! assertion.
//!
//! | method | path (any prefix) | answer |
//! |---|---|---|
//! | POST | `/token` | OAuth2 JWT-bearer grant: `{"access_token","expires_in","token_type":"Bearer"}` |
//! | POST | `/v1/projects/{p}/locations/{r}/publishers/google/models/{m}:generateContent`, `:streamGenerateContent` | Gemini's answers ([`super::gemini`]) |
//! | POST | `/v1/projects/{p}/locations/{r}/publishers/anthropic/models/{m}:rawPredict`, `:streamRawPredict` | Anthropic's Messages answers ([`super::anthropic`]) |
//!
//! **Token endpoint**: `grant_type` must be `urn:ietf:params:oauth:grant-type:jwt-bearer`
//! (else 400 `unsupported_grant_type`); the `assertion` must be an RS256 JWT whose signature
//! verifies against the trusted service account's public key, unexpired, with `iss`, an
//! `aud` ending in `/token` and a `scope` holding `cloud-platform` (else 400 `invalid_grant`,
//! as Google answers). The public key is set with [`super::Emulator::trust_vertex_key`], or
//! read from the PEM file named by `CHEAPAI_EMULATOR_VERTEX_PUBLIC_KEY`; without one every
//! assertion is refused. Tokens live 3600 s unless
//! [`super::Emulator::set_vertex_token_lifetime`] says otherwise (a test sees a refresh).
//!
//! **Model paths**: `Authorization: Bearer` must carry a token an emulator issued (signed
//! with the emulator's constant key, so every instance honours every other's) that has not
//! expired (else 401 `UNAUTHENTICATED`, Google's envelope), checked before any fault.
//! Claude's body must carry `"anthropic_version": "vertex-2023-10-16"` and no `model` (the
//! path names it), and `:streamRawPredict` must come with `"stream": true` and
//! `:rawPredict` without it (else Anthropic's 400); the answer echoes the path's model.
//! Faults answer in the publisher's format (Claude's are Anthropic-shaped, as Vertex
//! forwards them).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use http::HeaderValue;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

use super::anthropic::{self, PromptCache};

/// The `anthropic-beta` values Vertex AI's Claude takes (tool search under its cloud name).
const BETAS: &[&str] = &[
    "tool-search-tool-2025-10-19",
    "computer-use-2025-01-24",
    "computer-use-2025-11-24",
    "interleaved-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "web-search-2025-03-05",
    "compact-2026-01-12",
];
use super::faults::Faults;
use super::gemini;
use super::{signing, unix_now, Reply, Request};

/// The body version Vertex requires of Claude requests.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";
/// The variable naming a PEM public key to trust when none was set in process.
pub const PUBLIC_KEY_ENV: &str = "CHEAPAI_EMULATOR_VERTEX_PUBLIC_KEY";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const DEFAULT_LIFETIME_SECS: u64 = 3600;

/// The token endpoint's state: the trusted key, the lifetime of new tokens, the tokens given.
#[derive(Default)]
pub struct Auth {
    key: RwLock<Option<DecodingKey>>,
    lifetime_secs: AtomicU64,
    issued: AtomicU64,
}

impl Auth {
    /// Trusts assertions signed by the private half of `public_pem` (SPKI or PKCS#1 PEM).
    pub fn trust(&self, public_pem: &[u8]) -> Result<(), String> {
        let key = DecodingKey::from_rsa_pem(public_pem).map_err(|e| format!("{e}"))?;
        if let Ok(mut slot) = self.key.write() {
            *slot = Some(key);
        }
        Ok(())
    }

    pub fn set_lifetime(&self, lifetime: Duration) {
        self.lifetime_secs
            .store(lifetime.as_secs().max(1), Ordering::Relaxed);
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    fn lifetime(&self) -> u64 {
        match self.lifetime_secs.load(Ordering::Relaxed) {
            0 => DEFAULT_LIFETIME_SECS,
            secs => secs,
        }
    }

    /// The trusted key: the one set in process, else the file `PUBLIC_KEY_ENV` names.
    fn key(&self) -> Option<DecodingKey> {
        if let Some(key) = self.key.read().ok().and_then(|k| k.clone()) {
            return Some(key);
        }
        let path = std::env::var(PUBLIC_KEY_ENV).ok()?;
        let pem = std::fs::read(path).ok()?;
        self.trust(&pem).ok()?;
        self.key.read().ok().and_then(|k| k.clone())
    }
}

/// A token: `ya29.emulator.{expiry, Unix s}.{signature of the expiry}`. Signed with the
/// emulator's constant key ([`signing`]), so any instance honours any instance's tokens (a
/// provider's token endpoint and its deployments may be different instances).
fn issue(expiry: u64) -> String {
    let expiry = expiry.to_string();
    let signature = signing::sign(expiry.as_bytes());
    format!("ya29.emulator.{expiry}.{signature}")
}

/// Whether `token` was issued by an emulator and has not expired.
fn valid(token: &str) -> bool {
    let Some((expiry, signature)) = token
        .strip_prefix("ya29.emulator.")
        .and_then(|rest| rest.split_once('.'))
    else {
        return false;
    };
    signing::verify(expiry.as_bytes(), signature)
        && expiry.parse::<u64>().is_ok_and(|e| unix_now() < e)
}

/// Whether `path` is the token endpoint.
pub fn is_token_path(path: &str) -> bool {
    path.ends_with("/token")
}

/// The publisher segment of a Vertex model path (`google`, `anthropic`), or None.
pub fn publisher(path: &str) -> Option<&str> {
    if !path.contains("/projects/") || !path.contains("/locations/") {
        return None;
    }
    let (_, rest) = path.split_once("/publishers/")?;
    let (publisher, rest) = rest.split_once('/')?;
    rest.starts_with("models/").then_some(publisher)
}

/// The claims the token endpoint reads.
#[derive(Deserialize)]
struct Claims {
    iss: String,
    scope: String,
    aud: String,
}

/// Answers a token request.
pub fn token_reply(req: &Request, auth: &Auth) -> Reply {
    let oauth_error = |error: &str, description: &str| {
        Reply::json(
            400,
            &json!({"error": error, "error_description": description}),
        )
    };
    if req.method != "POST" {
        return oauth_error("invalid_request", "Method not allowed.");
    }
    let form = String::from_utf8_lossy(req.body);
    let field = |name: &str| {
        form.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| percent_decode(v))
    };
    if field("grant_type").as_deref() != Some(GRANT_TYPE) {
        return oauth_error("unsupported_grant_type", "Invalid grant_type: ");
    }
    let Some(assertion) = field("assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let Some(key) = auth.key() else {
        return oauth_error("invalid_grant", "Invalid JWT Signature.");
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    let claims = match jsonwebtoken::decode::<Claims>(&assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind as K;
            let description = match e.kind() {
                K::ExpiredSignature => "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
                _ => "Invalid JWT Signature.",
            };
            return oauth_error("invalid_grant", description);
        }
    };
    if claims.iss.is_empty() || !claims.aud.ends_with("/token") {
        return oauth_error("invalid_grant", "Invalid JWT: Failed audience check.");
    }
    if !claims
        .scope
        .contains("https://www.googleapis.com/auth/cloud-platform")
    {
        return oauth_error(
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let lifetime = auth.lifetime();
    let token = issue(unix_now() + lifetime);
    auth.issued.fetch_add(1, Ordering::Relaxed);
    Reply::json(
        200,
        &json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}),
    )
}

/// Vertex's 401 for a model call without a live token this emulator issued, or None.
pub fn refusal(req: &Request) -> Option<Reply> {
    let token = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if token.is_some_and(valid) {
        return None;
    }
    Some(gemini::error_reply(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, \
         login cookie or other valid authentication credential. See \
         https://developers.google.com/identity/sign-in/web/devconsole-project.",
    ))
}

/// Answers a Claude call (`…/publishers/anthropic/models/{model}:{action}`) as Anthropic's
/// Messages API would, after Vertex's own checks of the body.
pub fn claude(req: &Request, faults: &Faults, cache: &PromptCache) -> Reply {
    let invalid = |message: &str| anthropic::error_reply(400, "invalid_request_error", message);
    if req.method != "POST" {
        return anthropic::error_reply(405, "invalid_request_error", "Method not allowed");
    }
    let Some((model, action)) = req
        .path
        .rsplit_once('/')
        .and_then(|(_, last)| last.split_once(':'))
    else {
        return gemini::error_reply(404, "Method not found.");
    };
    let stream = match action {
        "rawPredict" => false,
        "streamRawPredict" => true,
        _ => return gemini::error_reply(404, "Method not found."),
    };
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(req.body) else {
        return invalid("There was an error parsing the body of your request: invalid JSON");
    };
    if body.contains_key("model") {
        return invalid("model: Extra inputs are not permitted");
    }
    if body.get("anthropic_version").and_then(Value::as_str) != Some(ANTHROPIC_VERSION) {
        return invalid("anthropic_version: Input should be 'vertex-2023-10-16'");
    }
    if body.get("stream").and_then(Value::as_bool).unwrap_or(false) != stream {
        return invalid(if stream {
            "streamRawPredict needs \"stream\": true"
        } else {
            "rawPredict answers whole: \"stream\": true belongs on streamRawPredict"
        });
    }
    // Vertex refuses the request for a beta it does not offer
    let betas = req
        .headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    if let Some(unknown) = betas.filter(|b| !b.is_empty()).find(|b| !BETAS.contains(b)) {
        return invalid(&format!("Unexpected value(s) `{unknown}` for the `anthropic-beta` header. Please consult our documentation at docs.anthropic.com or try again without the header."));
    }
    body.remove("anthropic_version");
    body.insert("model".to_string(), Value::String(model.to_string()));
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut headers = req.headers.clone();
    headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    let messages = Request {
        path: "/v1/messages",
        headers: &headers,
        body: &bytes,
        ..*req
    };
    anthropic::route(&messages, faults, cache)
}

/// `%XX` and `+` decoded (an `application/x-www-form-urlencoded` value).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vertex_paths_name_their_publisher() {
        let p =
            "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-x@1:rawPredict";
        assert_eq!(publisher(p), Some("anthropic"));
        let g = "/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-flash:generateContent";
        assert_eq!(publisher(g), Some("google"));
        assert_eq!(publisher("/v1beta/models/g:generateContent"), None);
        assert_eq!(
            publisher("/x/publishers/google/models/g:embedContent"),
            None
        );
        assert!(is_token_path("/token"));
        assert!(!is_token_path("/v1/chat/completions"));
    }

    #[test]
    fn tokens_verify_until_they_expire() {
        let live = issue(unix_now() + 60);
        assert!(valid(&live));
        assert!(!valid(&issue(unix_now() - 1)));
        let forged = live.replacen("ya29.emulator.", "ya29.emulator.9", 1);
        assert!(!valid(&forged));
        assert!(!valid("ya29.other"));
    }

    #[test]
    fn form_values_are_decoded() {
        assert_eq!(
            percent_decode("urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
            GRANT_TYPE
        );
        assert_eq!(percent_decode("a+b%2"), "a b%2");
    }
}
