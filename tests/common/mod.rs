//! Integration-test harness: the real gateway and the provider emulator, in-process, on free
//! loopback ports, plus a small HTTP helper that returns status, headers and body for every
//! answer (errors included).
// Each test binary uses a different part of the harness; test code may panic on failure.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cheapai_emulator::Emulator;
use cheapai_gateway::config::Config;
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub mod binary;
pub mod emulator;
pub mod faulty;
pub mod postgres;
pub mod tls;
pub mod vertex_account;

/// The client key every test uses (the config stores only its hash).
pub const KEY: &str = "cai-test-key-0001";
/// A key limited to `gpt-4o`.
pub const LIMITED_KEY: &str = "cai-test-limited-0002";
/// What the gateway sends to the provider instead of the client key.
pub const PROVIDER_KEY: &str = "sk-provider-secret-9f8e7d";
/// The admin API token (`Authorization: Bearer` on the admin listener).
pub const ADMIN_TOKEN: &str = "admin-secret-token";

/// A running gateway + emulator; shut down when dropped.
pub struct Gateway {
    pub url: String,
    pub admin_url: String,
    pub emu_url: String,
    pub emu_port: u16,
    pub emulator: Emulator,
    /// A second, independent emulator (`{EMU2}` in the extra config): another deployment.
    pub emu2_port: u16,
    pub emulator2: Emulator,
    shutdown: Option<tokio::sync::oneshot::Sender<ShutdownSignal>>,
    thread: Option<JoinHandle<()>>,
}

/// Any free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A loopback port that refuses connections: nothing listens on port 1, and no free-port pick
/// can return it (it is below the ephemeral range), so no other test's server can start on it
/// while a test counts on it being refused (a released free port could be taken meanwhile).
pub fn refused_port() -> u16 {
    1
}

/// `N` distinct free loopback ports: all bound at once, then released. Picking them one by
/// one can return the same port twice, and Pingora's listeners (SO_REUSEPORT) would then
/// share it, each taking some of the other's connections.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("no free port: {e}")))
        .collect();
    std::array::from_fn(|i| {
        listeners[i]
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no port: {e}"))
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The base config: one OpenAI-compatible provider `emu` (the emulator) with short timeouts,
/// the catalog models, a full key and a limited key. `{EMU}` in `extra` is replaced by the
/// emulator's port.
pub fn config_text(gw: u16, admin: u16, emu: u16, extra: &str) -> String {
    config_text_with(gw, admin, emu, 0, extra)
}

/// [`config_text`], with `{EMU2}` in `extra` replaced by a second emulator's port.
pub fn config_text_with(gw: u16, admin: u16, emu: u16, emu2: u16, extra: &str) -> String {
    config_text_full(gw, admin, emu, emu2, "", extra)
}

/// The ledger directory last made for each gateway port, for reading its records later.
static LEDGER_DIRS: std::sync::LazyLock<Mutex<HashMap<u16, PathBuf>>> =
    std::sync::LazyLock::new(Mutex::default);

/// A new directory for gateway `gw`'s usage ledger (its spool and its SQLite file), never
/// made before: gateways never share a spool, nor find an earlier one's records. A test
/// process starts many gateways and the OS hands freed ports out again, so the port alone
/// does not make a name unique; a counter does. [`ledger_records`] finds it by the port.
pub fn ledger_dir(gw: u16) -> PathBuf {
    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("cheapai-ledger-{}-{gw}-{n}", std::process::id()));
    LEDGER_DIRS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(gw, dir.clone());
    dir
}

/// The `[usage]` table of gateway `gw`: its spool and SQLite ledger in a fresh
/// [`ledger_dir`].
pub fn usage_table(gw: u16) -> String {
    let dir = ledger_dir(gw);
    format!(
        "[usage]\nspool_dir = \"{}\"\nstore = \"sqlite:{}\"\n",
        dir.join("spool").display(),
        dir.join("usage.db").display()
    )
}

/// Every record in the SQLite ledger of gateway `gw` (its process may have stopped).
pub fn ledger_records(gw: u16) -> Vec<cheapai_gateway::usage::UsageRecord> {
    records_in(&cheapai_gateway::ledger::StoreConfig::Sqlite {
        path: LEDGER_DIRS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&gw)
            .unwrap_or_else(|| panic!("no gateway on port {gw} had a ledger"))
            .join("usage.db"),
    })
}

/// Every record in a ledger, read page by page.
pub fn records_in(
    store: &cheapai_gateway::ledger::StoreConfig,
) -> Vec<cheapai_gateway::usage::UsageRecord> {
    use cheapai_gateway::ledger::{self, RecordQuery};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let ledger = ledger::open(store, 400)
            .await
            .expect("the test ledger opens");
        let (mut all, mut after) = (Vec::new(), None);
        loop {
            let query = RecordQuery {
                key_id: None,
                model: None,
                from_ms: 0,
                to_ms: u64::MAX,
                limit: ledger::MAX_PAGE,
                after,
            };
            let page = ledger.records(&query).await.expect("a page");
            all.extend(page.records);
            match page.next {
                Some(next) => after = Some(next),
                None => return all,
            }
        }
    })
}

/// [`config_text_with`], with `server_extra` lines added to `[server]`.
pub fn config_text_full(
    gw: u16,
    admin: u16,
    emu: u16,
    emu2: u16,
    server_extra: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[server]
{server_extra}
listen = "127.0.0.1:{gw}"
admin_listen = "127.0.0.1:{admin}"
threads = 1
max_body_bytes = 10485760
grace_period_seconds = 1
graceful_shutdown_timeout_seconds = 1
admin_token_env = "TEST_ADMIN_TOKEN"

[providers.emu]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{emu}/v1"
api_key_env = "TEST_PROVIDER_KEY"
connect_timeout_ms = 500
first_byte_timeout_ms = 1500
idle_timeout_ms = 800

[models."gpt-4o"]
provider = "emu"
price = {{ input = 2.5, output = 10.0 }}

[models."gpt-4o-mini"]
provider = "emu"

[models."claude-3-5-sonnet"]
provider = "emu"

[models."text-embedding-3"]
provider = "emu"
upstream_model = "text-embedding-3-small"

[[keys]]
name = "test"
sha256 = "{key}"

[[keys]]
name = "limited"
sha256 = "{limited}"
models = ["gpt-4o"]
{usage}
{extra}
"#,
        key = sha256_hex(KEY.as_bytes()),
        limited = sha256_hex(LIMITED_KEY.as_bytes()),
        // a test that sets its own `[usage]` keeps it
        usage = if extra.contains("[usage]") {
            String::new()
        } else {
            usage_table(gw)
        },
        extra = extra
            .replace("{EMU2}", &emu2.to_string())
            .replace("{EMU}", &emu.to_string()),
    )
}

pub(crate) struct TestSignal(
    tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<ShutdownSignal>>>,
);

#[async_trait]
impl ShutdownSignalWatch for TestSignal {
    async fn recv(&self) -> ShutdownSignal {
        let rx = self.0.lock().await.take();
        match rx {
            Some(rx) => rx.await.unwrap_or(ShutdownSignal::FastShutdown),
            None => std::future::pending().await,
        }
    }
}

impl Gateway {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// Starts gateway and emulator with the base config plus `extra` TOML.
    pub fn start_with(extra: &str) -> Self {
        Self::start_with_server("", extra)
    }

    /// [`Self::start_with`], with `server_extra` lines in `[server]`.
    pub fn start_with_server(server_extra: &str, extra: &str) -> Self {
        Self::start_full(server_extra, extra, &[])
    }

    /// [`Self::start_with`] with more environment variables for the config (a ledger URL).
    pub fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Self {
        Self::start_full("", extra, env)
    }

    fn start_full(server_extra: &str, extra: &str, env: &[(&str, &str)]) -> Self {
        Self::start_on(free_ports(), server_extra, extra, env)
    }

    /// [`Self::start_with_env`] on these ports (`[gateway, admin, emulator, emulator 2]`,
    /// from [`free_ports`]), for a test whose files must name the emulator before it starts
    /// (a service-account key file's `token_uri`).
    pub fn start_on(
        ports: [u16; 4],
        server_extra: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let [gw, admin, emu, emu2] = ports;
        let text = config_text_full(gw, admin, emu, emu2, server_extra, extra);
        let config = Config::parse(&text, "test.toml", &|name| match name {
            "TEST_PROVIDER_KEY" => Some(PROVIDER_KEY.to_string()),
            "TEST_ADMIN_TOKEN" => Some(ADMIN_TOKEN.to_string()),
            _ => env
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string()),
        })
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let emulator = Emulator::new();
        let mut server = cheapai_gateway::build_server(config).expect("server builds");
        server.add_service(emulator.clone().service(&format!("127.0.0.1:{emu}")));
        let emulator2 = Emulator::new();
        server.add_service(emulator2.clone().service(&format!("127.0.0.1:{emu2}")));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let signal = TestSignal(tokio::sync::Mutex::new(Some(rx)));
        let thread = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(signal),
            })
        });
        for port in [gw, admin, emu, emu2] {
            wait_for_port(port);
        }
        Self {
            url: format!("http://127.0.0.1:{gw}"),
            admin_url: format!("http://127.0.0.1:{admin}"),
            emu_url: format!("http://127.0.0.1:{emu}"),
            emu_port: emu,
            emulator,
            emu2_port: emu2,
            emulator2,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// The admin listener's `/metrics` text.
    pub fn scrape(&self) -> String {
        ureq::get(&format!("{}/metrics", self.admin_url))
            .call()
            .expect("metrics")
            .into_string()
            .expect("metrics text")
    }

    /// `/metrics` once `ready` holds for it, or as it is at `timeout` (the caller's
    /// assertions then say what is missing). The request counters move in the
    /// bookkeeping, after the answer is sent, and some series move in background writers.
    pub fn scrape_until(&self, timeout: Duration, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.scrape();
            if ready(&text) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// POST a JSON body with the test key.
    pub fn post(&self, path: &str, body: &str) -> Answer {
        self.request(
            "POST",
            path,
            &[("authorization", &format!("Bearer {KEY}"))],
            body.as_bytes(),
        )
    }

    /// POST with the test key and extra headers (e.g. emulator fault injection).
    pub fn post_with(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let auth = format!("Bearer {KEY}");
        let mut all = vec![("authorization", auth.as_str())];
        all.extend_from_slice(headers);
        self.request("POST", path, &all, body.as_bytes())
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut req =
            ureq::request(method, &format!("{}{path}", self.url)).timeout(Duration::from_secs(30));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = if method == "GET" {
            req.call()
        } else {
            req.send_bytes(body)
        };
        Answer::from(result)
    }

    /// The test key's usage records (newest first), once `n` are there (the usage writer
    /// batches for a few milliseconds).
    pub fn usage_records(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let a = self.request(
                "GET",
                "/v1/usage?limit=1000",
                &[("authorization", &format!("Bearer {KEY}"))],
                b"",
            );
            assert_eq!(a.status, 200, "{}", a.text());
            let records = a.json()["data"].as_array().cloned().unwrap_or_default();
            if records.len() >= n || Instant::now() > deadline {
                return records;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The usage record of the request behind `answer` (by its `x-request-id`), once written.
    pub fn usage_record_of(&self, answer: &Answer) -> Value {
        let id = answer
            .header("x-request-id")
            .expect("x-request-id")
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let records = self.usage_records(1);
            if let Some(r) = records.into_iter().find(|r| r["request_id"] == id.as_str()) {
                return r;
            }
            assert!(Instant::now() < deadline, "no usage record for {id}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The emulator's record of the request behind `answer`, once the emulator has finished
    /// writing its answer (the client may read the last byte before the emulator records it).
    pub fn upstream_exchange(&self, answer: &Answer) -> Value {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let record = self.upstream_request(answer);
            if record["response_finished"] == true || Instant::now() > deadline {
                return record;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the emulator recorded for request `seq` (the `x-emulator-seq` of an answer).
    pub fn upstream_request(&self, answer: &Answer) -> Value {
        Self::upstream_request_on(&self.emulator, answer)
    }

    /// [`Self::upstream_request`] on `emulator` (`emulator2`: the second deployment).
    pub fn upstream_request_on(emulator: &Emulator, answer: &Answer) -> Value {
        let seq: u64 = answer
            .header("x-emulator-seq")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("answer has no x-emulator-seq: {answer:?}"));
        emulator
            .record(seq)
            .unwrap_or_else(|| panic!("emulator has no record {seq}"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(ShutdownSignal::FastShutdown);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends signal `name` (`TERM`, `HUP`, `INT`…) to process `pid`, as an operator would with
/// `kill`; panics when it cannot be sent.
pub fn signal(pid: u32, name: &str) {
    let sent = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -{name} {pid}");
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A whole HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl From<Result<ureq::Response, ureq::Error>> for Answer {
    fn from(result: Result<ureq::Response, ureq::Error>) -> Self {
        let response = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|n| {
                response
                    .header(&n)
                    .map(|v| (n.to_ascii_lowercase(), v.to_string()))
            })
            .collect();
        let mut body = Vec::new();
        let _ = response.into_reader().take(64 << 20).read_to_end(&mut body);
        Self {
            status,
            headers,
            body,
        }
    }
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `data:` payloads of an SSE body, in order.
    pub fn sse_data(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("data: ").map(str::to_string))
            .collect()
    }
}

/// A chat request body for `model`.
/// The value of header `name` in an emulator record, if it was sent.
pub fn sent_header<'a>(record: &'a Value, name: &str) -> Option<&'a str> {
    record["headers"]
        .as_array()?
        .iter()
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].as_str())
}

/// Asserts a Responses answer completed: a stream with its `response.completed` event, a
/// JSON answer with `text` as its first output's text.
pub fn assert_responses_completed(answer: &Answer, stream: bool, text: &str) {
    assert_eq!(answer.status, 200, "{}", answer.text());
    if stream {
        let events = answer.text();
        assert!(events.contains("event: response.completed"), "{events}");
    } else {
        assert_eq!(answer.json()["output"][0]["content"][0]["text"], text);
    }
}

/// The tool the provider suites call: `get_weather(city)`, as OpenAI chat's `tools`.
pub fn weather_tools() -> Value {
    serde_json::json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}])
}

/// An OpenAI chat request for `model` that the emulator answers with a `get_weather` call.
pub fn weather_chat(model: &str, stream: bool) -> String {
    serde_json::json!({"model": model, "tools": weather_tools(), "stream": stream,
                       "messages": [{"role": "user", "content": "Weather in Paris?"}]})
    .to_string()
}

/// The same question as an Anthropic Messages request, with the tool in Anthropic's shape.
pub fn weather_messages(model: &str) -> String {
    let parameters = &weather_tools()[0]["function"]["parameters"];
    serde_json::json!({"model": model, "max_tokens": 64,
        "tools": [{"name": "get_weather", "input_schema": parameters}],
        "messages": [{"role": "user", "content": "Weather in Paris?"}]})
    .to_string()
}

/// An Anthropic Messages request for `model` asking for a short answer.
pub fn messages(model: &str, stream: bool) -> String {
    serde_json::json!({"model": model, "max_tokens": 64, "stream": stream,
                       "messages": [{"role": "user", "content": "Say hello"}]})
    .to_string()
}

pub fn chat(model: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello"}],
    })
    .to_string()
}

/// A loopback address whose connect never completes: a listener with a backlog of one that
/// is never accepted from, filled until the kernel starts dropping SYNs. Keep the returned
/// guard alive for as long as the address must stay unanswering.
pub fn blackhole() -> (u16, impl Drop) {
    struct Guard(
        Vec<TcpStream>,
        Option<tokio::net::TcpListener>,
        tokio::runtime::Runtime,
    );
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.clear();
            let _guard = self.2.enter();
            self.1.take();
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        socket.listen(1).expect("listen")
    });
    let addr = listener.local_addr().expect("addr");
    let mut fillers = Vec::new();
    while let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
        fillers.push(s);
        assert!(fillers.len() < 64, "backlog never filled");
    }
    (addr.port(), Guard(fillers, Some(listener), rt))
}

/// Sends raw bytes on a new connection to `port` and returns the stream.
pub fn raw_connect(port: u16, request: &[u8]) -> TcpStream {
    use std::io::Write;
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(request).expect("write");
    s
}

impl Gateway {
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }
}

/// A real `redis-server` on a free loopback port, killed when dropped.
pub struct RedisServer {
    pub port: u16,
    /// `requirepass`, when the server asks for one.
    password: Option<String>,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A server that requires `password` (`requirepass`).
    pub fn with_password(password: &str) -> Self {
        Self::start_with(Some(password.to_string()))
    }

    fn start_with(password: Option<String>) -> Self {
        let mut server = Self {
            port: free_port(),
            password,
            child: None,
        };
        server.restart();
        server
    }

    /// The URL a client connects with (the password in it, when there is one).
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Starts (again) on the same port, empty.
    pub fn restart(&mut self) {
        let mut args = vec![
            "--port".to_string(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
        ];
        if let Some(p) = &self.password {
            args.extend(["--requirepass".to_string(), p.clone()]);
        }
        let child = std::process::Command::new("redis-server")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/setup installs it)");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs a command with redis-cli and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = std::process::Command::new("redis-cli");
        command.args(["-p", &self.port.to_string()]);
        if let Some(p) = &self.password {
            command.args(["-a", p, "--no-auth-warning"]);
        }
        let out = command.args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of the Prometheus sample whose name and labels contain every one of `parts`.
pub fn metric_sample(text: &str, parts: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `KEY`'s usage listing on `gateway` once its newest record is `request_id`'s: records reach
/// the history through a batching writer, so this polls (3 s at most).
pub fn usage_listing_with(gateway: &Gateway, request_id: &str) -> Value {
    let auth = format!("Bearer {KEY}");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let usage = gateway
            .request("GET", "/v1/usage", &[("authorization", &auth)], b"")
            .json();
        // the page and the totals are two reads: wait until both include the record
        if usage["data"][0]["request_id"] == request_id
            && usage["totals"]["requests"].as_u64().unwrap_or(0) > 0
        {
            return usage;
        }
        assert!(
            Instant::now() < deadline,
            "record {request_id} never listed: {usage}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
