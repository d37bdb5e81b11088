//! Two gateway instances on a real three-node Redis Cluster (`redis-server --cluster-enabled
//! yes`, joined by `redis-cli --cluster create`): limits, run-time keys, budgets and usage
//! history are shared as on one Redis, batches that span keys go out per slot, and a node
//! that dies and comes back costs bounded latency, then shared state resumes without a
//! gateway restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cheapai_gateway::limits::redis::{spend_key, window_key, RedisLimits};
use cheapai_gateway::limits::LimitStore;
use cheapai_gateway::state::Redis;
use common::*;
use serde_json::{json, Value};

/// One cluster node: its data port, its cluster bus port (given explicitly: the default,
/// port + 10000, may be past 65535 for a high free port) and its own directory.
struct Node {
    port: u16,
    bus: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--cluster-port", &self.bus.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            .args(["--cluster-config-file", "nodes.conf"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/setup installs it)");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs (scripts/setup installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Three masters (no replicas) on loopback, each in a temp directory; killed and removed on
/// drop.
struct Cluster {
    nodes: Vec<Node>,
}

impl Cluster {
    fn start() -> Self {
        let ports = free_ports::<6>();
        let nodes: Vec<Node> = (0..3)
            .map(|i| {
                let dir = std::env::temp_dir().join(format!(
                    "cai-cluster-{}-{}",
                    std::process::id(),
                    ports[i]
                ));
                std::fs::create_dir_all(&dir).unwrap();
                Node {
                    port: ports[i],
                    bus: ports[i + 3],
                    dir,
                    child: None,
                }
            })
            .collect();
        let mut cluster = Self { nodes };
        for n in &mut cluster.nodes {
            n.start();
        }
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok();
        cluster
    }

    /// Waits until every node says the cluster is up and agrees on all 16384 slots.
    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.nodes.iter().all(|n| {
            let info = n.cli(&["CLUSTER", "INFO"]);
            info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
        }) {
            assert!(Instant::now() < deadline, "cluster never became ok");
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("\"redis://127.0.0.1:{}\"", n.port))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The node holding `key` (the others answer MOVED).
    fn owner_of(&mut self, key: &str) -> &mut Node {
        let at = self
            .nodes
            .iter()
            .position(|n| n.cli(&["EXISTS", key]).trim() == "1")
            .unwrap_or_else(|| panic!("no node holds {key}"));
        &mut self.nodes[at]
    }

    /// A command through any node, following redirections.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-c", "-p", &self.nodes[0].port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
            let _ = std::fs::remove_dir_all(&n.dir);
        }
    }
}

const LIMITED: &str = "cai-cluster-rpm";
const BUDGET: &str = "cai-cluster-budget";

/// Two instances on the cluster, sharing one PostgreSQL usage ledger (as instances of one
/// deployment do); `extra` is added to both.
fn pair(
    cluster: &Cluster,
    ledger: &common::postgres::TestPostgres,
    extra: &str,
) -> (Gateway, Gateway) {
    let url = ledger.url();
    let state = format!(
        "[state]\nredis_cluster = [{}]\ntimeout_ms = 200\nkey_cache_ttl_ms = 300\n{extra}",
        cluster.urls()
    );
    let start = |gw: u16| {
        let usage = format!(
            "[usage]\nspool_dir = \"{}\"\npostgres_url_env = \"TEST_LEDGER_URL\"\n",
            ledger_dir(gw).join("spool").display()
        );
        Gateway::start_with_env(&format!("{state}{usage}"), &[("TEST_LEDGER_URL", &url)])
    };
    (start(free_port()), start(free_port()))
}

fn keys_config() -> String {
    format!(
        "[[keys]]\nname = \"rpm\"\nsha256 = \"{}\"\nlimits = {{ rpm = 20 }}\n\n\
         [[keys]]\nname = \"budget\"\nsha256 = \"{}\"\nbudget_usd = 0.0001\n",
        sha256_hex(LIMITED.as_bytes()),
        sha256_hex(BUDGET.as_bytes())
    )
}

fn post_as(gw: &Gateway, key: &str, body: &str) -> Answer {
    let auth = format!("Bearer {key}");
    gw.request(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        body.as_bytes(),
    )
}

fn admin(gw: &Gateway, method: &str, path: &str, body: Option<Value>) -> Answer {
    let url = format!("{}{path}", gw.admin_url);
    let req = ureq::request(method, &url).set("authorization", &format!("Bearer {ADMIN_TOKEN}"));
    Answer::from(match body {
        Some(b) => req.send_string(&b.to_string()),
        None => req.call(),
    })
}

fn id_of(client_key: &str) -> String {
    cheapai_gateway::auth::key_id(&sha256_hex(client_key.as_bytes()))
}

#[test]
fn two_instances_on_a_cluster_share_limits_keys_budgets_and_usage() {
    let cluster = Cluster::start();
    let ledger = common::postgres::TestPostgres::start_new();
    let (a, b) = pair(&cluster, &ledger, &keys_config());
    let gateways = Arc::new([a, b]);

    // exactly 20 of 60 at rpm = 20, spread over both instances
    let handles: Vec<_> = (0..6)
        .map(|t| {
            let gws = gateways.clone();
            thread::spawn(move || {
                (0..10)
                    .map(|i| post_as(&gws[(t + i) % 2], LIMITED, &chat("gpt-4o", false)).status)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let statuses: Vec<u16> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 20);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 40);
    let [a, b] = &*gateways;

    // a key created through A's admin API works on B, is listed there, and its disabling
    // and deletion (several slots: record, id index, list) reach both
    let created = admin(
        a,
        "POST",
        "/admin/keys",
        Some(json!({"name": "on-cluster", "models": ["gpt-4o"]})),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json();
    let secret = created["key"].as_str().expect("secret").to_string();
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(post_as(b, &secret, &chat("gpt-4o", false)).status, 200);
    let listed = admin(b, "GET", "/admin/keys", None).json();
    assert!(
        listed["data"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k["id"] == id.as_str()),
        "{listed}"
    );
    let disabled = admin(
        b,
        "POST",
        &format!("/admin/keys/{id}/disable"),
        Some(json!({})),
    );
    assert_eq!(disabled.status, 200);
    thread::sleep(Duration::from_millis(400)); // key_cache_ttl_ms = 300
    for gw in [a, b] {
        assert_eq!(post_as(gw, &secret, &chat("gpt-4o", false)).status, 401);
    }
    assert_eq!(
        admin(a, "DELETE", &format!("/admin/keys/{id}"), None).status,
        200
    );
    assert_eq!(
        admin(b, "DELETE", &format!("/admin/keys/{id}"), None).status,
        404
    );

    // a budget of 100 micro-USD: 63 spent on A, 63 reserved-then-spent on B, then both refuse
    let spend = spend_key(&id_of(BUDGET));
    let spent = |micro_usd: &str| {
        let deadline = Instant::now() + Duration::from_secs(3);
        while cluster.cli(&["GET", &spend]).trim() != micro_usd {
            assert!(Instant::now() < deadline, "spend never reached {micro_usd}");
            thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(post_as(a, BUDGET, &chat("gpt-4o", false)).status, 200);
    spent("63");
    assert_eq!(post_as(b, BUDGET, &chat("gpt-4o", false)).status, 200);
    spent("126");
    for gw in [a, b] {
        let refused = post_as(gw, BUDGET, &chat("gpt-4o", false));
        assert_eq!(refused.status, 429, "{}", refused.text());
        assert_eq!(refused.json()["error"]["code"], "insufficient_quota");
    }

    // usage history written by A is read on B, with its totals
    let answer = a.post("/v1/chat/completions", &chat("gpt-4o", false));
    assert_eq!(answer.status, 200);
    let request_id = answer
        .header("x-request-id")
        .unwrap_or_default()
        .to_string();
    let usage = usage_listing_with(b, &request_id);
    assert_eq!(usage["totals"]["requests"], 1, "{usage}");
    assert_eq!(usage["totals"]["cost_micro_usd"], 63, "{usage}");
}

#[tokio::test]
async fn settlements_spanning_many_keys_are_written_per_slot() {
    let cluster = Cluster::start();
    let nodes: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("redis://127.0.0.1:{}", n.port))
        .collect();
    let redis = Arc::new(Redis::cluster(&nodes, Duration::from_secs(2)).unwrap());
    let keys: Vec<String> = (0..40).map(|i| format!("k_batch{i}")).collect();

    // token settlements of 40 keys, flushed together
    let limits = RedisLimits::new(redis.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for k in &keys {
        let claim = cheapai_gateway::limits::Claim {
            key_id: k.clone(),
            model: "gpt-4o".into(),
            rpm: Some(100),
            tpm: Some(100_000),
            reserve: 50,
            budget_micro_usd: None,
            reserve_micro_usd: 0,
            reservation_id: format!("r-{k}"),
        };
        let decision = limits.acquire(&claim, now).await.unwrap();
        assert_eq!(decision.denied_by, None);
        limits
            .settle(k, "gpt-4o", decision.bucket, -40)
            .await
            .unwrap();
    }
    limits.flush().await.unwrap();
    for k in &keys {
        let total = cluster.cli(&["HGET", &window_key(k, "gpt-4o"), "t"]);
        assert_eq!(total.trim(), "10", "{k}");
    }
}

#[test]
fn a_dead_node_costs_bounded_latency_then_shared_limits_resume() {
    let mut cluster = Cluster::start();
    let extra = format!(
        "[[keys]]\nname = \"rpm\"\nsha256 = \"{}\"\nlimits = {{ rpm = 1000 }}\n",
        sha256_hex(LIMITED.as_bytes())
    );
    let ledger = common::postgres::TestPostgres::start_new();
    let (a, _b) = pair(&cluster, &ledger, &extra);
    assert_eq!(post_as(&a, LIMITED, &chat("gpt-4o", false)).status, 200);
    let window = window_key(&id_of(LIMITED), "gpt-4o");
    cluster.owner_of(&window).kill();

    // the slot's node is gone (and soon the whole cluster reports itself down): requests
    // still pass on per-instance limits, each within the Redis deadline's bound
    for _ in 0..5 {
        let started = Instant::now();
        let answer = post_as(&a, LIMITED, &chat("gpt-4o", false));
        assert_eq!(answer.status, 200, "allow: per-instance limits take over");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        thread::sleep(Duration::from_millis(300));
    }

    // the node comes back with its cluster config (and no data): the same gateway counts
    // in the shared window again
    for n in &mut cluster.nodes {
        if n.child.is_none() {
            n.start();
        }
    }
    cluster.wait_ok();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert_eq!(post_as(&a, LIMITED, &chat("gpt-4o", false)).status, 200);
        if !cluster.cli(&["HGET", &window, "r"]).trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never used the cluster again"
        );
        thread::sleep(Duration::from_millis(200));
    }
}
