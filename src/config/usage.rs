//! The `[usage]` table: where usage records are spooled, and the ledger they are shipped to.

use std::path::PathBuf;

use super::file::FileConfig;
use super::Validator;
use crate::ledger::StoreConfig;
use crate::secret::Secret;

/// The spool's directory when the config names none (relative to the working directory; the
/// spool is locked, so a second process started from the same directory refuses to start).
pub const DEFAULT_SPOOL_DIR: &str = "usage-spool";
/// The store when the config names none: one SQLite file beside the spool.
pub const DEFAULT_STORE: &str = "sqlite:usage.db";
/// How long records are kept: a little over a year, for a year-on-year invoice dispute.
pub const DEFAULT_RETENTION_DAYS: u32 = 400;
/// How long stored responses stay continuable: OpenAI keeps them 30 days.
pub const DEFAULT_RESPONSES_RETENTION_DAYS: u32 = 30;
/// The spool's cap (about 2.5 million records of ~400 bytes: hours of a busy instance's
/// records while the store is down).
pub const DEFAULT_SPOOL_MAX_MB: u64 = 1024;

/// Where usage records go.
#[derive(Debug, Clone)]
pub struct UsageConfig {
    pub spool_dir: PathBuf,
    /// The spool's cap on unshipped bytes.
    pub spool_max_bytes: u64,
    pub store: StoreConfig,
    pub retention_days: u32,
    /// The Responses API's conversations on translated models, kept in `store` (see
    /// `providers::responses::stored`); `None` when `store_responses = false`.
    pub responses_retention: Option<std::time::Duration>,
}

impl Validator<'_> {
    pub(super) fn usage(
        &mut self,
        raw: &FileConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> UsageConfig {
        let usage = raw.usage.as_ref();
        if let Some(u) = usage {
            let replaced = "was replaced by the usage ledger: `spool_dir` and `store` (or \
                            `postgres_url_env`); load an old JSONL log with `cheapai-gateway \
                            usage import FILE --config …`";
            if let Some(old) = &u.jsonl_path {
                self.problem(old, "usage.jsonl_path", replaced);
            }
            if let Some(old) = &u.history_per_key {
                self.problem(old, "usage.history_per_key", replaced);
            }
        }
        let store = match (
            usage.and_then(|u| u.store.as_ref()),
            usage.and_then(|u| u.postgres_url_env.as_ref()),
        ) {
            (Some(store), Some(_)) => {
                self.problem(
                    store,
                    "usage.store",
                    "set either `store` (SQLite, one instance) or `postgres_url_env` \
                     (PostgreSQL, many instances), not both",
                );
                None
            }
            (None, Some(var)) => match env(var.get_ref()).filter(|v| !v.is_empty()) {
                Some(url) => Some(StoreConfig::Postgres {
                    url: Secret::new(url),
                }),
                None => {
                    self.problem(
                        var,
                        "usage.postgres_url_env",
                        format!("environment variable {} is not set", var.get_ref()),
                    );
                    None
                }
            },
            (Some(store), None) => match store.get_ref().strip_prefix("sqlite:") {
                Some(path) if !path.is_empty() => Some(StoreConfig::Sqlite {
                    path: PathBuf::from(path),
                }),
                // never echoed: a PostgreSQL URL put here would carry its password
                _ => {
                    self.problem(
                        store,
                        "usage.store",
                        "must be `sqlite:PATH`; for PostgreSQL put the URL in an environment \
                         variable and name it in `postgres_url_env`",
                    );
                    None
                }
            },
            (None, None) => None,
        };
        let retention_days = match usage.and_then(|u| u.retention_days.as_ref()) {
            Some(d) if *d.get_ref() == 0 => {
                self.problem(d, "usage.retention_days", "must be at least 1");
                DEFAULT_RETENTION_DAYS
            }
            Some(d) => *d.get_ref(),
            None => DEFAULT_RETENTION_DAYS,
        };
        let responses_days = match usage.and_then(|u| u.responses_retention_days.as_ref()) {
            Some(d) if *d.get_ref() == 0 => {
                self.problem(d, "usage.responses_retention_days", "must be at least 1");
                DEFAULT_RESPONSES_RETENTION_DAYS
            }
            Some(d) => *d.get_ref(),
            None => DEFAULT_RESPONSES_RETENTION_DAYS,
        };
        let responses_retention = usage
            .and_then(|u| u.store_responses)
            .unwrap_or(true)
            .then(|| std::time::Duration::from_secs(u64::from(responses_days) * 86_400));
        let spool_max_mb = match usage.and_then(|u| u.spool_max_mb.as_ref()) {
            Some(m) if *m.get_ref() == 0 => {
                self.problem(m, "usage.spool_max_mb", "must be at least 1");
                DEFAULT_SPOOL_MAX_MB
            }
            Some(m) => *m.get_ref(),
            None => DEFAULT_SPOOL_MAX_MB,
        };
        UsageConfig {
            spool_dir: PathBuf::from(
                usage
                    .and_then(|u| u.spool_dir.as_ref())
                    .map_or(DEFAULT_SPOOL_DIR, |d| d.get_ref().as_str()),
            ),
            spool_max_bytes: spool_max_mb.saturating_mul(1 << 20),
            store: store.unwrap_or_else(|| StoreConfig::Sqlite {
                path: PathBuf::from(DEFAULT_STORE.trim_start_matches("sqlite:")),
            }),
            retention_days,
            responses_retention,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::ledger::StoreConfig;

    fn parse(usage: &str, env: &[(&str, &str)]) -> Result<Config, crate::config::ConfigError> {
        let text = format!("[server]\nlisten = \"127.0.0.1:8080\"\n\n[usage]\n{usage}");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(&text, "t.toml", &move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn sqlite_by_default_postgres_from_the_environment() {
        let c = parse("", &[]).unwrap();
        assert!(
            matches!(&c.usage.store, StoreConfig::Sqlite { path } if path.ends_with("usage.db"))
        );
        assert_eq!(c.usage.retention_days, 400);
        assert_eq!(c.usage.spool_dir.to_str(), Some("usage-spool"));
        let c = parse(
            "postgres_url_env = \"LEDGER_URL\"\nretention_days = 90\n",
            &[("LEDGER_URL", "postgres://u:hunter2@db/usage")],
        )
        .unwrap();
        assert!(
            matches!(&c.usage.store, StoreConfig::Postgres { url } if url.expose().contains("hunter2"))
        );
        assert_eq!(c.usage.retention_days, 90);
    }

    #[test]
    fn both_stores_or_a_url_in_the_file_are_errors_with_their_line() {
        let e = parse(
            "store = \"sqlite:a.db\"\npostgres_url_env = \"LEDGER_URL\"\n",
            &[("LEDGER_URL", "postgres://db")],
        )
        .unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(e.0[0].starts_with("t.toml:5: usage.store"), "{e}");
        assert!(e.0[0].contains("not both"), "{e}");
        let e = parse("store = \"postgres://u:hunter2@db/usage\"\n", &[]).unwrap_err();
        assert!(e.0[0].starts_with("t.toml:5: usage.store"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = parse("postgres_url_env = \"NOPE\"\n", &[]).unwrap_err();
        assert!(e.0[0].contains("NOPE is not set"), "{e}");
        let e = parse("jsonl_path = \"usage.jsonl\"\n", &[]).unwrap_err();
        assert!(e.0[0].contains("usage import"), "{e}");
    }
}
