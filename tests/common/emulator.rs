//! A provider emulator on its own Pingora server, for tests whose gateway runs as a separate
//! process (so the emulator must outlive a gateway restart or upgrade).

use std::path::Path;
use std::thread::JoinHandle;

use cheapai_emulator::Emulator;
use pingora::listeners::tls::TlsSettings;
use pingora::server::{RunArgs, Server, ShutdownSignal};

use super::{wait_for_port, TestSignal};

/// An emulator listening on `127.0.0.1:port`; stopped when dropped.
pub struct StandaloneEmulator {
    pub emulator: Emulator,
    shutdown: Option<tokio::sync::oneshot::Sender<ShutdownSignal>>,
    thread: Option<JoinHandle<()>>,
}

impl StandaloneEmulator {
    pub fn start(port: u16) -> Self {
        Self::start_with_tls(port, None)
    }

    /// [`Self::start`], also serving HTTPS (HTTP/2 or HTTP/1.1 by ALPN) on `tls.0` with the
    /// certificate and key files `tls.1` and `tls.2`: a provider behind a TLS front.
    pub fn start_with_tls(port: u16, tls: Option<(u16, &Path, &Path)>) -> Self {
        let emulator = Emulator::new();
        let mut server = Server::new(None).expect("emulator server");
        server.bootstrap();
        let mut service = emulator.clone().service(&format!("127.0.0.1:{port}"));
        if let Some((tls_port, cert, key)) = tls {
            let mut settings =
                TlsSettings::intermediate(&cert.to_string_lossy(), &key.to_string_lossy())
                    .expect("TLS settings");
            settings.enable_h2();
            service.add_tls_with_settings(&format!("127.0.0.1:{tls_port}"), None, settings);
        }
        server.add_service(service);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let signal = TestSignal(tokio::sync::Mutex::new(Some(rx)));
        let thread = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(signal),
            })
        });
        wait_for_port(port);
        if let Some((tls_port, _, _)) = tls {
            wait_for_port(tls_port);
        }
        Self {
            emulator,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for StandaloneEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(ShutdownSignal::FastShutdown);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
