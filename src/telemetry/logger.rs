//! The process's logger: env_logger's filter (`RUST_LOG`) and text format, or, once
//! `[log] format = "json"` is loaded, one JSON object per line on stderr. In JSON mode the
//! access log's records (target `access`) are JSON already and are written as they are;
//! every other record becomes `{"time","level","target","message"}`, so the whole stream
//! parses line by line.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use log::{Log, Metadata, Record};

/// Set once from the config; read per record.
static JSON: AtomicBool = AtomicBool::new(false);

/// The target of access log records.
pub const ACCESS: &str = "access";

/// Switches every log line to JSON (`[log] format = "json"`).
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether log lines are JSON.
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

struct Logger(env_logger::Logger);

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.0.matches(record) {
            return;
        }
        if !is_json() {
            return self.0.log(record);
        }
        let mut line = if record.target() == ACCESS {
            record.args().to_string()
        } else {
            serde_json::json!({
                "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            })
            .to_string()
        };
        line.push('\n');
        // one write per line: lines from several threads never interleave
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Installs the logger (`RUST_LOG` filters, `info` by default). Text until [`set_json`].
pub fn init() {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Logger(inner))).is_ok() {
        log::set_max_level(max);
    }
}
