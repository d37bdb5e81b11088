//! The container image's entrypoint, run on the host. No container builder here can pull
//! the Dockerfile's base images (the network reaches only package registries), so this test
//! does what the image would: it parses the Dockerfile's final stage, runs the release binary
//! with exactly its ENTRYPOINT + CMD arguments, the config the image ships
//! (deploy/gateway.toml, listeners moved to free loopback ports) at the stand-in of its
//! in-image path, the image's WORKDIR as a scratch directory, a real redis-server where
//! compose has its `redis` service and a real PostgreSQL where it has its `postgres` (the
//! usage ledger); then a client talks to it as to the container.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

/// The demo key of the shipped config (README, conf/gateway.toml).
const DEMO_KEY: &str = "cai-demo-local-only-0001";
/// Where the shipped config reads the usage ledger's URL from (compose sets it).
const LEDGER_URL_ENV: &str = "CHEAPAI_LEDGER_URL";

/// What the final stage of the Dockerfile says.
#[derive(Debug, Default)]
struct Image {
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    /// in-image path → source (`--from=stage:path`, or a path in the build context)
    copies: BTreeMap<String, String>,
    workdir: String,
    volumes: Vec<String>,
    user: String,
    expose: Vec<u16>,
}

/// Parses the last stage of a Dockerfile: continuation lines joined, comments dropped.
fn parse_dockerfile(text: &str) -> Image {
    let joined = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let lines: Vec<&str> = joined.lines().map(str::trim).collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM");
    let mut image = Image::default();
    let exec_form = |arg: &str| -> Vec<String> {
        serde_json::from_str(arg).unwrap_or_else(|e| panic!("not exec form ({e}): {arg}"))
    };
    for line in &lines[last_from + 1..] {
        let Some((instr, arg)) = line.split_once(' ') else {
            continue;
        };
        let arg = arg.trim();
        match instr {
            "ENTRYPOINT" => image.entrypoint = exec_form(arg),
            "CMD" => image.cmd = exec_form(arg),
            "WORKDIR" => image.workdir = arg.to_string(),
            "VOLUME" => image.volumes.extend(exec_form(arg)),
            "USER" => image.user = arg.to_string(),
            "EXPOSE" => image.expose = arg.split_whitespace().map(|p| p.parse().unwrap()).collect(),
            "COPY" => {
                let words: Vec<&str> = arg.split_whitespace().collect();
                let from = words
                    .iter()
                    .find_map(|w| w.strip_prefix("--from="))
                    .map(|stage| format!("{stage}:"));
                let paths: Vec<&str> = words
                    .iter()
                    .filter(|w| !w.starts_with("--"))
                    .copied()
                    .collect();
                let [src, dest] = paths[..] else {
                    panic!("COPY with one source and one destination: {line}")
                };
                image.copies.insert(
                    dest.to_string(),
                    format!("{}{src}", from.unwrap_or_default()),
                );
            }
            _ => {}
        }
    }
    image
}

#[test]
fn dockerfile_parses_into_the_image_contract() {
    let image = parse_dockerfile(&read("Dockerfile"));
    let argv: Vec<&str> = image
        .entrypoint
        .iter()
        .chain(&image.cmd)
        .map(String::as_str)
        .collect();
    assert_eq!(
        argv,
        [
            "/usr/local/bin/cheapai-gateway",
            "run",
            "--config",
            "/etc/cheapai/gateway.toml"
        ]
    );
    assert_eq!(
        image
            .copies
            .get("/etc/cheapai/gateway.toml")
            .map(String::as_str),
        Some("deploy/gateway.toml")
    );
    assert!(image.copies["/usr/local/bin/cheapai-gateway"].starts_with("builder:"));
    assert_eq!(image.expose, [8080, 9464]);
    // the usage spool lives in the working directory: it must outlive the container
    assert!(
        image.volumes.contains(&image.workdir),
        "WORKDIR {} is not a VOLUME: {:?}",
        image.workdir,
        image.volumes
    );
    assert!(
        !image.user.is_empty() && image.user != "root" && !image.user.starts_with('0'),
        "runs as root: {:?}",
        image.user
    );
    let docker = read("Dockerfile");
    assert!(docker.contains("AS builder") && docker.contains("cmake"));
    let ignore = read(".dockerignore");
    for entry in ["target/", ".git/", "fuzz/"] {
        assert!(ignore.lines().any(|l| l == entry), ".dockerignore: {entry}");
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The gateway process; killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `port` to accept, failing early (with the log) if the process exits.
fn wait_for(process: &mut Process, port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = process.0.try_wait() {
            panic!(
                "gateway exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `text` with `from` replaced by `to`, which must occur.
fn replace_present(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the shipped config has no {from:?}");
    text.replace(from, to)
}

#[test]
fn image_entrypoint_with_the_shipped_config_serves_a_chat_and_keeps_state_in_redis() {
    let image = parse_dockerfile(&read("Dockerfile"));
    let redis = RedisServer::start();
    let ledger = postgres::TestPostgres::start_new();
    let [gw, admin, emu] = free_ports();

    // The image's files, on the host.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let root = std::env::temp_dir().join(format!("cheapai-image-{}-{nanos}", std::process::id()));
    let workdir = root.join(image.workdir.trim_start_matches('/'));
    std::fs::create_dir_all(&workdir).unwrap();
    let mut host_paths: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (dest, src) in &image.copies {
        if src.contains(':') {
            continue; // from the builder stage: the binary, below
        }
        let mut text = read(src);
        if src == "deploy/gateway.toml" {
            // the ports the image EXPOSEs are the ones the config listens on
            for port in &image.expose {
                assert!(text.contains(&format!("\"0.0.0.0:{port}\"")), "{port}");
            }
            text = replace_present(&text, "\"0.0.0.0:8080\"", &format!("\"127.0.0.1:{gw}\""));
            text = replace_present(&text, "\"0.0.0.0:9464\"", &format!("\"127.0.0.1:{admin}\""));
            text = replace_present(&text, "127.0.0.1:8089", &format!("127.0.0.1:{emu}"));
            text = replace_present(&text, "redis://redis:6379", &redis.url());
            // the ledger's URL comes from the environment, as compose gives it
            assert!(
                text.contains(&format!("postgres_url_env = \"{LEDGER_URL_ENV}\"")),
                "the shipped config's ledger is not in {LEDGER_URL_ENV}"
            );
        }
        let host = root.join(dest.trim_start_matches('/'));
        std::fs::create_dir_all(host.parent().unwrap()).unwrap();
        std::fs::write(&host, text).unwrap();
        host_paths.insert(dest.clone(), host);
    }
    let (program, args) = image.entrypoint.split_first().expect("an ENTRYPOINT");
    assert!(
        image.copies[program].starts_with("builder:"),
        "the entrypoint is the built binary"
    );
    let args: Vec<PathBuf> = args
        .iter()
        .chain(&image.cmd)
        .map(|a| {
            host_paths
                .get(a)
                .cloned()
                .unwrap_or_else(|| PathBuf::from(a))
        })
        .collect();

    let log = root.join("gateway.log");
    let mut process = Process(
        Command::new(env!("CARGO_BIN_EXE_cheapai-gateway"))
            .args(&args)
            .current_dir(&workdir)
            .env("CHEAPAI_ADMIN_TOKEN", "deploy-test-admin")
            .env(LEDGER_URL_ENV, ledger.url())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(root.join("gateway.err")).unwrap())
            .spawn()
            .expect("the release binary runs"),
    );
    let err_log = root.join("gateway.err");
    for port in [gw, admin] {
        wait_for(&mut process, port, &err_log);
    }

    let post = |body: &str| -> Answer {
        ureq::post(&format!("http://127.0.0.1:{gw}/v1/chat/completions"))
            .set("authorization", &format!("Bearer {DEMO_KEY}"))
            .timeout(Duration::from_secs(30))
            .send_string(body)
            .into()
    };
    let answer = post(&chat("gpt-4o", false));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let content = answer.json()["choices"][0]["message"]["content"].clone();
    assert!(content.as_str().is_some_and(|c| !c.is_empty()), "{content}");
    let streamed = post(&chat("claude-sonnet-4-5", true));
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    assert_eq!(
        streamed.sse_data().last().map(String::as_str),
        Some("[DONE]")
    );

    // The admin listener answers as Prometheus and a load balancer would ask it.
    let get = |path: &str| -> Answer {
        ureq::get(&format!("http://127.0.0.1:{admin}{path}"))
            .call()
            .into()
    };
    assert_eq!(get("/health").status, 200);
    assert_eq!(get("/ready").status, 200);
    let metrics = get("/metrics").text();
    assert!(
        metrics.contains("cheapai_requests_total{") && metrics.contains("model=\"gpt-4o\""),
        "{metrics}"
    );

    // The usage records went through the spool in the WORKDIR to the PostgreSQL ledger, and
    // the limits' state to Redis.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let usage: Answer = ureq::get(&format!("http://127.0.0.1:{gw}/v1/usage"))
            .set("authorization", &format!("Bearer {DEMO_KEY}"))
            .call()
            .into();
        assert_eq!(usage.status, 200, "{}", usage.text());
        let records = usage.json()["data"].as_array().map_or(0, Vec::len);
        if records == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{records} usage records: {}",
            usage.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stored = ledger.psql("ledger", "SELECT count(*) FROM ledger_records");
    assert_eq!(stored, "2", "records in PostgreSQL");
    assert!(
        workdir.join("usage-spool").join("0").is_dir(),
        "no usage spool in the working directory"
    );
    let keys: u64 = redis.cli(&["DBSIZE"]).trim().parse().unwrap();
    assert!(keys > 0, "nothing in Redis");

    // The shipped config logs JSON lines (what a container's log collector reads): every
    // stderr line is a JSON object, and the chat has its access line.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stderr = std::fs::read_to_string(&err_log).unwrap();
        // whole lines only: the last one may be mid-write
        let complete = stderr.rfind('\n').map_or("", |end| &stderr[..end]);
        let lines: Vec<serde_json::Value> = complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if lines
            .iter()
            .any(|l| l["model"] == "gpt-4o" && l["status"] == 200)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no access line for the chat:\n{stderr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    drop(process);
    let _ = std::fs::remove_dir_all(&root);
}
