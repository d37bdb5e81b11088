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
}
