//! Zero-downtime changes on the real binary: a graceful upgrade (`run --upgrade`, then
//! SIGQUIT to the running process) and a SIGHUP reload, each while a load generator sends
//! chat requests and streams without pause. Nothing may fail, no stream may be cut, and the
//! model added by the new config answers afterwards. A broken config on reload changes
//! nothing and is logged with its line. The provider is the emulator in a process of its
//! own, so that the gateway's upgrade does not restart it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::emulator::StandaloneEmulator;
use common::{free_ports, sha256_hex, wait_for_port, KEY, PROVIDER_KEY};

const BIN: &str = env!("CARGO_BIN_EXE_cheapai-gateway");
/// What the emulator answers in `chunks` chunks, whole or streamed.
fn content(chunks: usize) -> String {
    (1..chunks).fold("Hello".to_string(), |s, i| format!("{s} world{i}"))
}

/// A child process, killed on drop (a test that fails must not leave a gateway behind).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn signal(&self, name: &str) {
        common::signal(self.0.id(), name);
    }

    /// Waits for the process to exit by itself; its exit code.
    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "process never exited");
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A temp directory with the config file, the logs and the upgrade socket.
struct Setup {
    dir: PathBuf,
    gw: u16,
    admin: u16,
    emu: u16,
    _emulator: StandaloneEmulator,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Setup {
    fn new(name: &str) -> Self {
        let [gw, admin, emu] = free_ports::<3>();
        let dir = std::env::temp_dir().join(format!("cai-{name}-{}-{gw}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let emulator = StandaloneEmulator::start(emu);
        Self {
            dir,
            gw,
            admin,
            emu,
            _emulator: emulator,
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("gateway.toml")
    }

    /// Writes the config: `models` served by the emulator; `threads` worker threads.
    fn write_config(&self, models: &[&str], threads: usize) {
        let mut text = format!(
            r#"[server]
listen = "127.0.0.1:{gw}"
admin_listen = "127.0.0.1:{admin}"
threads = {threads}
grace_period_seconds = 3
graceful_shutdown_timeout_seconds = 1
upgrade_sock = "{sock}"

[usage]
spool_dir = "{spool}"
store = "sqlite:{db}"

[providers.emu]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{emu}/v1"
api_key_env = "TEST_PROVIDER_KEY"

[[keys]]
name = "load"
sha256 = "{hash}"
"#,
            gw = self.gw,
            admin = self.admin,
            emu = self.emu,
            sock = self.dir.join("upgrade.sock").display(),
            // both processes of an upgrade name the same spool: each takes its own slot
            spool = self.dir.join("spool").display(),
            db = self.dir.join("usage.db").display(),
            hash = sha256_hex(KEY.as_bytes()),
        );
        for m in models {
            text.push_str(&format!("\n[models.\"{m}\"]\nprovider = \"emu\"\n"));
        }
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Starts the gateway binary on the config file, its log going to `log`.
    fn gateway(&self, log: &str, upgrade: bool) -> Proc {
        let path = self.config_path();
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config"]).arg(&path);
        if upgrade {
            cmd.arg("--upgrade");
        }
        let child = cmd
            .env("TEST_PROVIDER_KEY", PROVIDER_KEY)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(File::create(self.dir.join(log)).unwrap())
            .spawn()
            .expect("the gateway starts");
        Proc(child)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Polls until `what` holds, or panics with `why` after `within`.
    fn wait_until(&self, within: Duration, why: &str, mut what: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        while !what() {
            assert!(Instant::now() < deadline, "{why}");
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One request, on a connection of its own (an idle keep-alive connection is closed by a
/// process that stops, which a client sees as a failure it must retry; a new connection
/// is never refused: the listening socket itself passes to the new process). `Ok` when the
/// answer is whole and right.
fn ask(port: u16, model: &str, stream: bool) -> Result<(), String> {
    ask_with(port, model, stream, 5, 100)
}

/// [`ask`] with `chunks` chunks, `delay_ms` apart when streamed.
fn ask_with(
    port: u16,
    model: &str,
    stream: bool,
    chunks: usize,
    delay_ms: u64,
) -> Result<(), String> {
    let agent = ureq::AgentBuilder::new()
        .max_idle_connections(0)
        .timeout(Duration::from_secs(20))
        .build();
    let body = format!(
        r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    let answer = agent
        .post(&format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .set("authorization", &format!("Bearer {KEY}"))
        .set("content-type", "application/json")
        // long enough that requests and streams are always in flight when a process stops
        .set("x-emulator-delay-ms", if stream { "0" } else { "150" })
        .set("x-emulator-chunks", &chunks.to_string())
        .set("x-emulator-chunk-delay-ms", &delay_ms.to_string())
        .send_string(&body)
        .map_err(|e| format!("{model} stream={stream}: {e}"))?;
    let text = answer
        .into_string()
        .map_err(|e| format!("{model} stream={stream}: body cut: {e}"))?;
    let got: String = if stream {
        if !text.trim_end().ends_with("data: [DONE]") {
            return Err(format!("stream cut: {text:?}"));
        }
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect()
    } else {
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("not JSON ({e}): {text}"))?;
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    if got == content(chunks) {
        Ok(())
    } else {
        Err(format!("{model} stream={stream}: wrong answer {text:?}"))
    }
}

/// Threads sending chat requests (two) and streams (two) in a loop until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<(usize, Vec<String>)>>,
}

impl Load {
    fn start(port: u16, model: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..4)
            .map(|i| {
                let stop = stop.clone();
                thread::spawn(move || {
                    let (mut total, mut failures) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        total += 1;
                        if let Err(e) = ask(port, model, i % 2 == 1) {
                            failures.push(e);
                        }
                    }
                    (total, failures)
                })
            })
            .collect();
        Self { stop, threads }
    }

    /// Stops the threads; the requests made and the failures.
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut total, mut failures) = (0, Vec::new());
        for t in self.threads {
            let (n, f) = t.join().expect("load thread");
            total += n;
            failures.extend(f);
        }
        (total, failures)
    }
}

/// Reports and checks a load run.
fn no_failures(what: &str, load: Load) {
    let (total, failures) = load.finish();
    eprintln!("{what}: {total} requests, {} failed", failures.len());
    assert!(total > 20, "{what}: too little load ({total} requests)");
    assert!(failures.is_empty(), "{what}: {failures:#?}");
}

#[test]
fn upgrade_under_load_drops_nothing_and_serves_the_new_config() {
    let setup = Setup::new("upgrade");
    setup.write_config(&["gpt-4o"], 2);
    let mut old = setup.gateway("old.log", false);
    wait_for_port(setup.gw);
    let load = Load::start(setup.gw, "gpt-4o");
    thread::sleep(Duration::from_millis(800));
    assert!(
        ask(setup.gw, "gpt-4o-mini", false).is_err(),
        "not yet served"
    );

    // the operator's steps: new config, a new process with --upgrade, SIGQUIT to the old one
    setup.write_config(&["gpt-4o", "gpt-4o-mini"], 2);
    let _new = setup.gateway("new.log", true);
    let sock = setup.dir.join("upgrade.sock");
    setup.wait_until(Duration::from_secs(10), "new process never waited", || {
        sock.exists()
    });
    // a 6.5 s stream on the old process, still running when it stops accepting (5 s after
    // SIGQUIT), which it must finish within its grace period
    let port = setup.gw;
    let long = thread::spawn(move || {
        let started = Instant::now();
        (ask_with(port, "gpt-4o", true, 13, 500), started.elapsed())
    });
    thread::sleep(Duration::from_millis(200));
    old.signal("QUIT");

    // the old process hands its sockets over, finishes what it has in flight and exits
    assert_eq!(old.wait_exit(Duration::from_secs(20)), Some(0));
    let old_log = setup.log("old.log");
    assert!(old_log.contains("listener sockets sent"), "{old_log}");
    let (streamed, took) = long.join().expect("long stream");
    assert_eq!(streamed, Ok(()));
    assert!(took > Duration::from_secs(6), "{took:?}");
    // and it was the old process that finished it, after it stopped accepting
    let (_, after) = old_log
        .split_once("Graceful shutdown started")
        .unwrap_or_else(|| panic!("no graceful shutdown: {old_log}"));
    assert!(
        after
            .lines()
            .any(|l| l.contains("status=200") && l.contains("stream=true")),
        "no stream finished after the old process stopped accepting: {old_log}"
    );
    for _ in 0..10 {
        assert_eq!(ask(setup.gw, "gpt-4o-mini", false), Ok(()));
        assert_eq!(ask(setup.gw, "gpt-4o-mini", true), Ok(()));
    }
    thread::sleep(Duration::from_millis(500));
    no_failures("upgrade", load);
}

#[test]
fn sighup_reload_under_load_drops_nothing_and_a_broken_config_changes_nothing() {
    let setup = Setup::new("reload");
    setup.write_config(&["gpt-4o"], 2);
    let gw = setup.gateway("gw.log", false);
    wait_for_port(setup.gw);
    let load = Load::start(setup.gw, "gpt-4o");
    thread::sleep(Duration::from_millis(1000));
    assert!(
        ask(setup.gw, "gpt-4o-mini", false).is_err(),
        "not yet served"
    );

    // one more model (and a thread count, which only a restart can change)
    setup.write_config(&["gpt-4o", "gpt-4o-mini"], 3);
    gw.signal("HUP");
    setup.wait_until(
        Duration::from_secs(5),
        "the new model never answered",
        || ask(setup.gw, "gpt-4o-mini", false).is_ok(),
    );
    assert_eq!(ask(setup.gw, "gpt-4o-mini", true), Ok(()));
    let log = setup.log("gw.log");
    assert!(log.contains("config reloaded from"), "{log}");
    assert!(
        log.contains("server.threads changed; needs restart"),
        "{log}"
    );

    // a broken file: an unknown provider, named with its line; the running config stays
    let path = setup.config_path();
    let good = std::fs::read_to_string(&path).unwrap();
    let broken = format!("{good}\n[models.\"broken\"]\nprovider = \"nope\"\n");
    let line = broken.lines().count();
    std::fs::write(&path, &broken).unwrap();
    gw.signal("HUP");
    setup.wait_until(Duration::from_secs(5), "no reload error logged", || {
        setup.log("gw.log").contains("config reload failed")
    });
    let log = setup.log("gw.log");
    let expected = format!(
        "{}:{line}: models.\"broken\".provider: unknown provider `nope`",
        path.display()
    );
    assert!(log.contains(&expected), "{expected} not in {log}");
    assert_eq!(ask(setup.gw, "gpt-4o-mini", false), Ok(()));
    assert!(ask(setup.gw, "broken", false).is_err());
    thread::sleep(Duration::from_millis(1000));
    no_failures("reload", load);
}

/// Keep-alive clients through an upgrade: eight threads, each on its own kept-alive
/// connections, sending without pause. From SIGQUIT on, the old process's answers say
/// `Connection: close`, so each client's next request opens a new connection (which the new
/// process, or the old one for its last seconds, takes) instead of going out on one the old
/// process is about to close: not one request fails.
#[test]
fn keep_alive_clients_see_no_failure_through_an_upgrade() {
    use std::sync::atomic::AtomicUsize;
    let setup = Setup::new("keepalive");
    setup.write_config(&["gpt-4o"], 2);
    let mut old = setup.gateway("old.log", false);
    wait_for_port(setup.gw);
    let stop = Arc::new(AtomicBool::new(false));
    let told_to_close = Arc::new(AtomicUsize::new(0));
    let url = format!("http://127.0.0.1:{}/v1/chat/completions", setup.gw);
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (stop, told_to_close, url) = (stop.clone(), told_to_close.clone(), url.clone());
            thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(20))
                    .build();
                let (mut total, mut failures) = (0usize, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    total += 1;
                    let answer = agent
                        .post(&url)
                        .set("authorization", &format!("Bearer {KEY}"))
                        .send_string(
                            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
                        );
                    match answer {
                        Ok(a) => {
                            if a.header("connection") == Some("close") {
                                told_to_close.fetch_add(1, Ordering::Relaxed);
                            }
                            if let Err(e) = a.into_string() {
                                failures.push(format!("body: {e}"));
                            }
                        }
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                (total, failures)
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let _new = setup.gateway("new.log", true);
    let sock = setup.dir.join("upgrade.sock");
    setup.wait_until(Duration::from_secs(10), "new process never waited", || {
        sock.exists()
    });
    old.signal("QUIT");
    assert_eq!(old.wait_exit(Duration::from_secs(20)), Some(0));
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (mut total, mut failures) = (0, Vec::new());
    for c in clients {
        let (n, f) = c.join().expect("client thread");
        total += n;
        failures.extend(f);
    }
    eprintln!(
        "keep-alive upgrade: {total} requests, {} told to close, {} failed",
        told_to_close.load(Ordering::Relaxed),
        failures.len()
    );
    assert!(total > 500, "too little load: {total}");
    assert!(told_to_close.load(Ordering::Relaxed) > 0);
    assert!(failures.is_empty(), "{failures:#?}");
}
