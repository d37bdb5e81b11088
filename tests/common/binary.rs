//! The real gateway binary, run as a user runs it (`run --config`), with its stderr
//! collected line by line: for what only a separate process shows (its log, its threads,
//! its memory).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

/// The real gateway binary with its stderr collected line by line.
pub struct Binary {
    pub child: Child,
    pub url: String,
    pub admin_url: String,
    /// The config file the process runs with.
    pub config: std::path::PathBuf,
    /// Every stderr line so far.
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    pub fn start(name: &str, extra: &str) -> Self {
        Self::start_with_env(name, extra, &[])
    }

    /// [`Self::start`] with extra environment variables (secrets a config names).
    pub fn start_with_env(name: &str, extra: &str, env: &[(&str, &str)]) -> Self {
        Self::start_full(name, "", extra, env)
    }

    /// [`Self::start_with_env`] with `server_extra` lines in `[server]`; the listener's URL
    /// is `https://localhost:PORT` when they set `tls`.
    pub fn start_full(name: &str, server_extra: &str, extra: &str, env: &[(&str, &str)]) -> Self {
        let [gw, admin, emu] = free_ports();
        let dir = std::env::temp_dir().join(format!("cheapai-logs-{name}-{gw}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("gateway.toml");
        let text = config_text_full(
            gw,
            admin,
            emu,
            0,
            server_extra,
            &format!("[emulator]\nlisten = \"127.0.0.1:{emu}\"\n{extra}"),
        );
        std::fs::write(&config, text).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cheapai-gateway"))
            .args(["run", "--config"])
            .arg(&config)
            .env("TEST_PROVIDER_KEY", PROVIDER_KEY)
            .env("TEST_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        // the proxy, admin and emulator listeners start on their own: wait for each
        wait_for_port(gw);
        wait_for_port(admin);
        wait_for_port(emu);
        let url = match server_extra.contains("tls") {
            true => format!("https://localhost:{gw}"),
            false => format!("http://127.0.0.1:{gw}"),
        };
        Binary {
            child,
            url,
            admin_url: format!("http://127.0.0.1:{admin}"),
            config,
            lines,
        }
    }

    pub fn post(&self, key: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        let mut req = ureq::post(&format!("{}/v1/chat/completions", self.url))
            .set("authorization", &format!("Bearer {key}"));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        match req.send_string(body) {
            Ok(r) => (r.status(), r.header("x-request-id").unwrap().to_string()),
            Err(ureq::Error::Status(s, r)) => (s, r.header("x-request-id").unwrap().to_string()),
            Err(e) => panic!("{e}"),
        }
    }

    /// The first stderr line containing `needle`, once written.
    pub fn line_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            assert!(Instant::now() < deadline, "no log line with {needle}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The JSON access line of request `id`.
    pub fn access(&self, id: &str) -> Value {
        serde_json::from_str(&self.line_with(&format!("\"request_id\":\"{id}\""))).unwrap()
    }

    /// A memory field of the process's `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
    pub fn memory_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {status}"))
    }

    /// Names of the process's threads (`/proc/PID/task/*/comm`).
    pub fn threads(&self) -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim().to_string())
            .collect()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
