//! The `cheapai-gateway` command: run the gateway, check a config, hash a client key.

use std::path::PathBuf;
use std::process::ExitCode;

use cheapai_gateway::auth::hash_key;
use cheapai_gateway::config::Config;
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: a proxy allocates and frees per request and per chunk,
/// and glibc's malloc/free took ~16% of the gateway's CPU in `perf` under load. Its arenas are
/// committed lazily (set at build time in `.cargo/config.toml`), which keeps peak RSS low.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "LLM API gateway: OpenAI/Anthropic-compatible, routes by model"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default). SIGHUP reloads catalog, providers and keys from the
    /// config file; SIGTERM stops gracefully; SIGQUIT hands the listening sockets to a
    /// process started with `--upgrade`.
    Run {
        #[arg(long, short, default_value = "conf/gateway.toml")]
        config: PathBuf,
        /// Take the listening sockets over from the running gateway (send it SIGQUIT once
        /// this has started; both must name the same `[server] upgrade_sock`).
        #[arg(long, short)]
        upgrade: bool,
    },
    /// Validate a config file, print every problem with its line, and exit.
    CheckConfig {
        #[arg(long, short, default_value = "conf/gateway.toml")]
        config: PathBuf,
    },
    /// Print the SHA-256 of a client key, as `[[keys]].sha256` expects it.
    HashKey { key: String },
    /// Apply the usage ledger's pending migrations (the gateway applies them at start too,
    /// under a lock, so this is for a deploy step that runs before any instance).
    Migrate {
        #[arg(long, short, default_value = "conf/gateway.toml")]
        config: PathBuf,
    },
    /// The usage ledger.
    Usage {
        #[command(subcommand)]
        command: UsageCommand,
    },
}

#[derive(Subcommand)]
enum UsageCommand {
    /// Load a JSONL billing log (one usage record per line, the format of the former
    /// `usage.jsonl_path`) into the ledger; importing a file twice stores each record once.
    Import {
        file: PathBuf,
        #[arg(long, short, default_value = "conf/gateway.toml")]
        config: PathBuf,
    },
}

/// A runtime for the one-shot ledger commands.
fn block_on<T>(work: impl std::future::Future<Output = T>) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(work))
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

/// `migrate`: prints each migration applied.
fn migrate(config: &Config) -> Result<(), String> {
    let applied = block_on(cheapai_gateway::ledger::migrate(&config.usage.store))?
        .map_err(|e| e.to_string())?;
    if applied.is_empty() {
        println!("usage ledger: up to date");
    }
    for name in applied {
        println!("usage ledger: applied {name}");
    }
    Ok(())
}

/// `usage import FILE`: prints what the import did.
fn import(config: &Config, file: &std::path::Path) -> Result<(), String> {
    let usage = &config.usage;
    let report = block_on(async {
        let ledger = cheapai_gateway::ledger::open(&usage.store, usage.retention_days).await?;
        cheapai_gateway::ledger::import_jsonl(ledger.as_ref(), file).await
    })?
    .map_err(|e| e.to_string())?;
    println!(
        "{}: {} lines, {} records new in the ledger, {} malformed",
        file.display(),
        report.lines,
        report.inserted,
        report.malformed
    );
    for (line, why) in &report.malformed_lines {
        println!("  line {line}: {why}");
    }
    Ok(())
}

/// Loads a config for a one-shot command, or says why it cannot (exit 2).
fn with_config(
    path: &std::path::Path,
    run: impl FnOnce(&Config) -> Result<(), String>,
) -> ExitCode {
    match Config::load(path) {
        Err(e) => {
            eprint!("{e}");
            ExitCode::from(2)
        }
        Ok(config) => match run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn main() -> ExitCode {
    cheapai_gateway::allocator::tune();
    // env_logger's filter and text format; JSON lines once `[log] format = "json"` is loaded
    cheapai_gateway::telemetry::logger::init();
    let command = Cli::parse().command.unwrap_or(Command::Run {
        config: PathBuf::from("conf/gateway.toml"),
        upgrade: false,
    });
    match command {
        Command::HashKey { key } => {
            println!("{}", hash_key(&key));
            ExitCode::SUCCESS
        }
        Command::Migrate { config } => with_config(&config, migrate),
        Command::Usage {
            command: UsageCommand::Import { file, config },
        } => with_config(&config, |c| import(c, &file)),
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: ok ({} providers, {} models)",
                    config.display(),
                    c.providers.len(),
                    c.catalog.all().count()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config, upgrade } => {
            let loaded = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{e}");
                    return ExitCode::from(2);
                }
            };
            cheapai_gateway::telemetry::logger::set_json(
                loaded.log_format == cheapai_gateway::config::LogFormat::Json,
            );
            log::info!(
                "listening on {} (admin {}), {} models",
                loaded.server.listen,
                loaded.server.admin_listen.as_deref().unwrap_or("off"),
                loaded.catalog.all().count()
            );
            let start = cheapai_gateway::Start {
                upgrade,
                config_path: Some(config),
                exit_when_drained: true,
            };
            match cheapai_gateway::build_server_with(loaded, start) {
                Ok(server) => {
                    server.run(pingora::server::RunArgs {
                        shutdown_signal: Box::new(cheapai_gateway::drain::Signals),
                    });
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cannot start: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
