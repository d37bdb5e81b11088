//! A provider emulator on its own Pingora server, for tests whose gateway runs as a separate
//! process (so the emulator must outlive a gateway restart or upgrade).

use std::thread::JoinHandle;

use cheapai_emulator::Emulator;
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
        let emulator = Emulator::new();
        let mut server = Server::new(None).expect("emulator server");
        server.bootstrap();
        server.add_service(emulator.clone().service(&format!("127.0.0.1:{port}")));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let signal = TestSignal(tokio::sync::Mutex::new(Some(rx)));
        let thread = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(signal),
            })
        });
        wait_for_port(port);
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
