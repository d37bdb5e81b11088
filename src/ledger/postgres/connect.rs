//! Connections to PostgreSQL: the URL read into a config (and a name for it without the
//! password), the pool, leases that close a connection left in an unknown state, and errors
//! sorted into "unavailable" and the rest.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{
    HookError, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod,
};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::ledger::LedgerError;
use crate::secret::Secret;

/// The per-connection staging table of the COPY path (see `ingest`): a temporary table is
/// private to its session and costs no WAL; `ON COMMIT DELETE ROWS` empties it after each
/// batch. Made once per connection, when the pool opens it.
const CREATE_STAGE: &str = "CREATE TEMP TABLE IF NOT EXISTS ledger_stage (
    ts bigint, cost_micro_usd bigint, key_id integer, model_id integer,
    prompt_tokens integer, completion_tokens integer, cached_tokens integer,
    cache_write_tokens integer, duration_ms integer, ttft_ms integer, provider_id smallint,
    endpoint_id smallint, error_id smallint, status smallint, attempts smallint,
    flags smallint, rid uuid, rid_text text
) ON COMMIT DELETE ROWS";

/// Reads a `postgres://` URL or `key=value` string. The error never quotes the URL.
pub fn parse(url: &Secret, timeout: Duration) -> Result<tokio_postgres::Config, LedgerError> {
    let mut config = tokio_postgres::Config::from_str(url.expose())
        .map_err(|e| LedgerError::BadInput(format!("postgres url (not shown): {e}")))?;
    config.connect_timeout(timeout);
    if config.get_application_name().is_none() {
        config.application_name("cheapai-gateway ledger");
    }
    Ok(config)
}

/// How logs and errors name the database: `postgres://user@host:port/db`, never the
/// password.
pub fn redacted(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            Host::Tcp(h) => format!("{h}:{port}"),
            Host::Unix(dir) => format!("{}:{port}", dir.display()),
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// The pool: at most `size` connections, each with its staging table. A connection found
/// closed when taken is replaced, so PostgreSQL coming back needs no restart.
pub fn pool(config: tokio_postgres::Config, size: usize) -> Result<Pool, LedgerError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .post_create(deadpool_postgres::Hook::async_fn(|client, _| {
            Box::pin(async move {
                client
                    .batch_execute(CREATE_STAGE)
                    .await
                    .map_err(HookError::Backend)
            })
        }))
        .build()
        .map_err(|e| LedgerError::Store(format!("postgres pool: {e}")))
}

/// A pooled connection that goes back to the pool only when [`Lease::release`]d: one
/// dropped midway (an error, the call's deadline) may be inside a transaction or a COPY, so
/// it is closed instead.
pub struct Lease(Option<Object>);

impl Lease {
    pub async fn take(pool: &Pool, name: &str) -> Result<Self, LedgerError> {
        match pool.get().await {
            Ok(object) => Ok(Self(Some(object))),
            Err(e) => Err(pool_error(name, e)),
        }
    }

    pub fn client(&mut self) -> Result<&mut Object, LedgerError> {
        self.0
            .as_mut()
            .ok_or_else(|| LedgerError::Store("postgres connection already released".into()))
    }

    /// Returns the connection to the pool (it is in a clean state).
    pub fn release(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            // detached from the pool; dropping the client closes the connection
            drop(Object::take(object));
        }
    }
}

fn pool_error(name: &str, e: PoolError) -> LedgerError {
    match e {
        PoolError::Backend(e) => error(name, "connect", e),
        PoolError::PostCreateHook(HookError::Backend(e)) => error(name, "connection set-up", e),
        PoolError::PostCreateHook(HookError::Message(m)) => {
            LedgerError::Store(format!("{name} connection set-up: {m}"))
        }
        PoolError::Timeout(_) | PoolError::Closed => {
            LedgerError::Unavailable(format!("{name}: no connection available"))
        }
        PoolError::NoRuntimeSpecified => LedgerError::Store(format!("{name}: {e}")),
    }
}

/// A driver error in words, sorted: the server unreachable, restarting, out of connections
/// or a transaction picked as a deadlock or serialization victim is `Unavailable` (the same
/// call later may succeed); a value it refuses is `BadInput`; the rest is `Store`.
pub fn error(name: &str, what: &str, e: tokio_postgres::Error) -> LedgerError {
    let Some(db) = e.as_db_error() else {
        // no server error: the connection (refused, lost, timed out, authentication), or a
        // conversion between Rust and SQL types, which is a bug of this code
        let text = format!("{name} {what}: {e}");
        let conversion = ["error serializing", "error deserializing", "query returned"]
            .iter()
            .any(|p| e.to_string().starts_with(p));
        return if conversion {
            LedgerError::Store(text)
        } else {
            LedgerError::Unavailable(text)
        };
    };
    let text = format!("{name} {what}: {} ({})", db.message(), db.code().code());
    let code = db.code();
    let class = &code.code()[..2];
    if class == "08"
        || class == "53"
        || class == "57"
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
    {
        LedgerError::Unavailable(text)
    } else if class == "22" {
        LedgerError::BadInput(text)
    } else {
        LedgerError::Store(text)
    }
}

/// Whether an insert failed for want of a partition for one of its rows ("no partition of
/// relation found for row", a check violation).
pub fn is_missing_partition(e: &LedgerError) -> bool {
    matches!(e, LedgerError::Store(m) if m.ends_with(&format!("({})", SqlState::CHECK_VIOLATION.code())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_of_a_database_never_holds_its_password() {
        for url in [
            "postgres://ledger:s3cr3t-pw@db.example:6543/usage",
            "host=db.example port=6543 user=ledger password=s3cr3t-pw dbname=usage",
        ] {
            let config = parse(&Secret::new(url.into()), Duration::from_secs(1)).unwrap();
            let name = redacted(&config);
            assert_eq!(name, "postgres://ledger@db.example:6543/usage");
            assert!(!name.contains("s3cr3t"));
        }
    }

    #[test]
    fn a_bad_url_is_reported_without_quoting_it() {
        let e = parse(
            &Secret::new("postgres://u:s3cr3t-pw@h:notaport/db".into()),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(e, LedgerError::BadInput(_)));
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }
}
