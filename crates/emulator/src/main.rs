//! `cheapai-emulator`: the provider emulator in a process of its own (the load bench's
//! upstream, and a stand-in provider for trying the gateway by hand).

use std::process::ExitCode;

use clap::Parser;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;

#[derive(Parser)]
#[command(
    version,
    about = "Provider emulator: OpenAI, Anthropic and Gemini wire formats, with fault injection"
)]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: String,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Also serve HTTPS here (HTTP/2 or HTTP/1.1 by ALPN): a provider behind a TLS front, as
    /// the load bench's TLS phases need. Requires `--tls-cert` and `--tls-key`.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_listen: Option<String>,
    /// PEM certificate chain for `--tls-listen`.
    #[arg(long)]
    tls_cert: Option<String>,
    /// PEM private key for `--tls-listen`.
    #[arg(long)]
    tls_key: Option<String>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let server_conf = ServerConf {
        threads: cli.threads.max(1),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, server_conf);
    server.bootstrap();
    let mut service = cheapai_emulator::Emulator::new().service(&cli.listen);
    if let (Some(listen), Some(cert), Some(key)) = (&cli.tls_listen, &cli.tls_cert, &cli.tls_key) {
        let mut settings = match TlsSettings::intermediate(cert, key) {
            Ok(settings) => settings,
            Err(e) => {
                eprintln!("cheapai-emulator: TLS certificate {cert} or key {key}: {e}");
                return ExitCode::FAILURE;
            }
        };
        settings.enable_h2();
        service.add_tls_with_settings(listen, None, settings);
        log::info!("provider emulator listening on {listen} (TLS)");
    }
    server.add_service(service);
    log::info!("provider emulator listening on {}", cli.listen);
    server.run_forever()
}
