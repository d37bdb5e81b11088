//! `cheapai-emulator`: the provider emulator in a process of its own (the load bench's
//! upstream, and a stand-in provider for trying the gateway by hand).

use std::process::ExitCode;

use clap::Parser;
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
    server.add_service(cheapai_emulator::Emulator::new().service(&cli.listen));
    log::info!("provider emulator listening on {}", cli.listen);
    server.run_forever()
}
