//! A Google service account's key file, and the RS256 JWT assertion that trades it for an
//! access token at its `token_uri` (Google's OAuth2 JWT bearer flow, RFC 7523).
//!
//! The key is parsed once, when the config is read, so a bad file is a config problem with
//! its line; no message about it ever quotes the file's content (it is a private key).
//! `token_uri` is honoured as the file names it: Google's `https://oauth2.googleapis.com/token`
//! in real files, the emulator's in tests.

use std::path::Path;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::providers::upstream::Upstream;

/// The scope every Vertex AI call needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// How long an assertion is valid: Google's maximum, one hour.
const ASSERTION_LIFETIME_SECS: u64 = 3600;

/// The fields of a service-account key file the token flow reads.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: String,
}

/// The claims of the assertion, as Google's token endpoint reads them.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// A loaded service account: who it is, its signing key, and where its tokens come from.
pub struct ServiceAccount {
    pub client_email: String,
    key: EncodingKey,
    key_id: Option<String>,
    /// `token_uri` as the file has it (the assertion's audience).
    pub token_uri: String,
    /// `token_uri` parsed for the connector: host, port, TLS and the path.
    pub token_endpoint: Upstream,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the key
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Reads and checks the key file at `path`. Errors name the file and what is wrong,
    /// never its content.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        Self::parse(&text).map_err(|e| format!("{shown}: {e}"))
    }

    /// Parses a key file's JSON text.
    pub fn parse(text: &str) -> Result<Self, String> {
        // serde's messages may quote a value (the key): only its position is reported
        let file: KeyFile = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a service-account key file (JSON with client_email, private_key and \
                 token_uri; line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if file.kind.as_deref().is_some_and(|k| k != "service_account") {
            return Err(
                "not a service-account key file (its `type` is not \"service_account\")"
                    .to_string(),
            );
        }
        let key = EncodingKey::from_rsa_pem(file.private_key.as_bytes())
            .map_err(|_| "its private_key is not an RSA private key in PEM form".to_string())?;
        let token_endpoint = Upstream::parse(&file.token_uri)
            .map_err(|e| format!("its token_uri is not usable: {e}"))?;
        Ok(Self {
            client_email: file.client_email,
            key,
            key_id: file.private_key_id,
            token_uri: file.token_uri,
            token_endpoint,
        })
    }

    /// The signed assertion for a token request made at `now` (Unix seconds).
    pub fn assertion(&self, now: u64) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        let claims = Claims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("signing the token assertion failed: {}", kind_name(&e)))
    }

    /// Who the account is and where it gets tokens (not the key).
    pub fn fingerprint(&self) -> String {
        format!("{} {}", self.client_email, self.token_uri)
    }
}

/// The kind of a signing error, without its details.
fn kind_name(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidRsaKey(_) | K::InvalidKeyFormat => "invalid RSA key",
        K::Json(_) => "claims not serializable",
        _ => "signing error",
    }
}
