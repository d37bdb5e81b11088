//! A wrapper for credentials so they cannot end up in logs by accident.

use std::fmt;

/// A secret string (a provider API key, the admin token).
///
/// `Debug` and `Display` print `*****`, so a config dump, a `{:?}` in a log line or a panic
/// message never shows the value; the only way to read it is [`Secret::expose`], which makes
/// every use greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value read from the environment.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The raw value, for the one place that must send it (an upstream auth header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

/// What replaces a password or token wherever a text names a credential.
pub const REDACTED: &str = "***";

/// A URL as it may appear in an error or a log line: the password of its user info
/// (`redis://user:pass@host`, `postgres://u:p@h/db`) and the values of query parameters that
/// carry credentials (`?password=…`) replaced by `***`. A user name alone is kept (it says
/// which account, not how to get in) unless it is the only credential (`redis://secret@host`
/// is a password in Redis URLs). A text that is not a URL comes back as a fixed placeholder,
/// since whatever it holds cannot be told apart from a secret.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return "<unparsable URL>".to_string();
    };
    if url.password().is_some() {
        // set_password fails only on URLs that cannot have credentials, which have none
        let _ = url.set_password(Some(REDACTED));
    } else if !url.username().is_empty() && url.scheme().starts_with("redis") {
        let _ = url.set_username(REDACTED);
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let value = if is_credential_name(&k) {
                    REDACTED.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// Query parameter names that carry credentials in the URL schemes the gateway reads.
fn is_credential_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "secret", "token", "key", "auth", "sslpassword"]
        .iter()
        .any(|c| name.contains(c))
}

/// The credentials a URL carries (its password, a Redis user name used as the password,
/// credential query values), for [`scrub`]: a library's own error text may quote the URL
/// it was given, or a part of it.
pub fn credentials_in_url(raw: &str) -> Vec<String> {
    let Ok(url) = url::Url::parse(raw) else {
        return vec![raw.to_string()];
    };
    let mut found = Vec::new();
    if let Some(p) = url.password() {
        found.push(p.to_string());
        if let Ok(decoded) = urlencoding_decode(p) {
            found.push(decoded);
        }
    } else if !url.username().is_empty() && url.scheme().starts_with("redis") {
        found.push(url.username().to_string());
    }
    found.extend(
        url.query_pairs()
            .filter(|(k, _)| is_credential_name(k))
            .map(|(_, v)| v.into_owned()),
    );
    found.retain(|s| !s.is_empty());
    found
}

/// Percent-decodes a URL component (a password may hold `%40` for `@`).
fn urlencoding_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes: Vec<u8> = url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8(bytes)
}

/// `text` with every occurrence of each of `secrets` replaced by `***`: the last line of
/// defence for error texts of libraries (a Redis or PostgreSQL client) that may quote what
/// they were configured with.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("sk-live-123".into());
        assert_eq!(format!("{s:?}"), "*****");
        assert_eq!(format!("{s}"), "*****");
        assert_eq!(s.expose(), "sk-live-123");
    }

    #[test]
    fn urls_lose_their_passwords_and_credential_parameters() {
        assert_eq!(
            redact_url("redis://:hunter2@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("rediss://app:hunter2@redis.internal:6380"),
            "rediss://app:***@redis.internal:6380"
        );
        // a Redis URL with only a user name carries the password there
        assert_eq!(
            redact_url("redis://hunter2@10.0.0.1:6379"),
            "redis://***@10.0.0.1:6379"
        );
        assert_eq!(
            redact_url("postgres://ledger:p%40ss@db:5432/usage?sslmode=require&password=x1"),
            "postgres://ledger:***@db:5432/usage?sslmode=require&password=***"
        );
        assert_eq!(redact_url("redis://127.0.0.1/0"), "redis://127.0.0.1/0");
        assert_eq!(redact_url("not a url :hunter2"), "<unparsable URL>");
    }

    #[test]
    fn scrub_removes_every_credential_of_a_url() {
        let secrets = credentials_in_url("postgres://ledger:p%40ss@db/usage?password=x1y2");
        assert!(secrets.contains(&"p@ss".to_string()), "{secrets:?}");
        let text = "connect to postgres://ledger:p%40ss@db/usage failed: p@ss and x1y2";
        let clean = scrub(text, &secrets);
        assert!(
            !clean.contains("p@ss") && !clean.contains("x1y2"),
            "{clean}"
        );
        assert!(!clean.contains("p%40ss"), "{clean}");
    }
}
