//! The usage API over HTTP on the seeded ledger: the real gateway binary, started on the
//! bench's database (its `[usage] postgres_url_env`) with the hot key in `[[keys]]`, answers
//! timed `GET /v1/usage` with the hot key's client key. What a customer's dashboard waits for:
//! the gateway's auth, the ledger's pool and both of its queries (the page and the totals),
//! the JSON, loopback HTTP.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cheapai_gateway::auth::{hash_key, key_id};
use serde_json::Value;

use crate::{percentiles, BenchResult, READS};

/// The hot key's client key: the seed stores the hot key's records under its key id.
pub const HOT_CLIENT_KEY: &str = "cai-ledger-bench-hot-key";
/// The variable the gateway's config names for the database URL.
const URL_ENV: &str = "LEDGER_BENCH_GATEWAY_URL";
/// Pages followed through `next` from the first (100 records each), at most: 90,000
/// records deep, or 90% of the hot key's records when it has fewer (`SMALL=1`).
const WALK_PAGES: usize = 900;
/// Untimed requests first: the gateway's pool connects, its statements get prepared.
const WARM_UP: usize = 20;
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The id the gateway gives the hot key (`k_` and its sha256's first 12 hex digits).
pub fn hot_key_id() -> String {
    key_id(&hash_key(HOT_CLIENT_KEY))
}

/// The gateway binary: `GATEWAY_BIN`, else the release build beside this example's
/// (`target/release/cheapai-gateway`; cargo does not build it for an example).
fn gateway_bin() -> BenchResult<PathBuf> {
    if let Ok(bin) = std::env::var("GATEWAY_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("cheapai-gateway"))
        .filter(|bin| bin.exists())
        .ok_or("the gateway binary is not built: `cargo build --release --bin cheapai-gateway` first, or set GATEWAY_BIN")?;
    Ok(bin)
}

/// A gateway process on the bench's database, stopped (and its directory removed) on drop.
pub struct Gateway {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Gateway {
    /// Starts the gateway with its ledger in the database at `url`, and waits until it
    /// answers the hot key's `/v1/usage`.
    pub fn start(url: &str) -> BenchResult<Self> {
        let bin = gateway_bin()?;
        let (port, admin) = (crate::free_port(), crate::free_port());
        let dir = std::env::temp_dir().join(format!("cheapai-ledger-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
                 threads = 2\n\n[[keys]]\nname = \"hot\"\nsha256 = \"{}\"\n\n\
                 [usage]\nspool_dir = \"{}\"\npostgres_url_env = \"{URL_ENV}\"\n",
                hash_key(HOT_CLIENT_KEY),
                dir.join("spool").display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("gateway.log"))?;
        let child = Command::new(&bin)
            .args(["run", "--config"])
            .arg(&config)
            .env(URL_ENV, url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut gateway = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let agent = agent();
        let deadline = Instant::now() + START_TIMEOUT;
        while get(&agent, &format!("{}/v1/usage?limit=1", gateway.base)).is_err() {
            if let Some(status) = gateway.child.try_wait()? {
                return Err(format!("the gateway exited ({status}): {}", gateway.log()).into());
            }
            if Instant::now() > deadline {
                return Err(
                    format!("the gateway did not answer in time: {}", gateway.log()).into(),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(gateway)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// p50 and p99 (ms) of each read, over HTTP.
pub struct HttpReads {
    pub first: (f64, f64),
    /// Every page of the walk from the first through `next`.
    pub walk: (f64, f64),
    pub walked_pages: usize,
    /// One page, `deep_after` records deep, read [`READS`] times.
    pub deep: (f64, f64),
    pub deep_after: usize,
    pub month: (f64, f64),
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

/// One GET with the hot key; the JSON answer and the milliseconds until its last byte.
fn get(agent: &ureq::Agent, url: &str) -> BenchResult<(Value, f64)> {
    let started = Instant::now();
    let body = agent
        .get(url)
        .set("authorization", &format!("Bearer {HOT_CLIENT_KEY}"))
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?
        .into_string()?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok((serde_json::from_str(&body)?, ms))
}

/// The records in an answer, checked to be the hot key's.
fn records(answer: &Value, hot_key: &str) -> BenchResult<usize> {
    let data = answer["data"]
        .as_array()
        .ok_or("an answer without `data`")?;
    if let Some(other) = data.iter().find(|r| r["key_id"] != hot_key) {
        return Err(format!("a record of another key in the hot key's usage: {other}").into());
    }
    Ok(data.len())
}

/// Times the hot key's first page (limit 100), a walk of up to [`WALK_PAGES`] pages through
/// `next`, the page the walk ended at read again and again, and the month `[from_s, to_s)`'s
/// totals (which must count all `hot` records). Each answer is checked.
pub fn time_reads(gateway: &Gateway, hot: u64, from_s: u64, to_s: u64) -> BenchResult<HttpReads> {
    let agent = agent();
    let hot_key = hot_key_id();
    let usage = format!("{}/v1/usage", gateway.base);
    let first_url = format!("{usage}?limit=100");
    for _ in 0..WARM_UP {
        get(&agent, &first_url)?;
    }

    let mut first = Vec::with_capacity(READS);
    for _ in 0..READS {
        let (answer, ms) = get(&agent, &first_url)?;
        if records(&answer, &hot_key)? != 100 || answer["totals"]["requests"] != hot {
            return Err(format!(
                "first page: {} records, totals {}",
                answer["data"], answer["totals"]
            )
            .into());
        }
        first.push(ms);
    }

    let pages = WALK_PAGES.min(usize::try_from(hot * 9 / 10 / 100).unwrap_or(WALK_PAGES));
    let (mut walk, mut walked) = (Vec::with_capacity(pages), 0);
    let (mut cursor, _) = get(&agent, &first_url)?;
    walked += records(&cursor, &hot_key)?;
    while walk.len() < pages {
        let Some(next) = cursor["next"].as_str() else {
            break;
        };
        let (answer, ms) = get(&agent, &format!("{first_url}&after={next}"))?;
        walked += records(&answer, &hot_key)?;
        walk.push(ms);
        cursor = answer;
    }
    let next = cursor["next"]
        .as_str()
        .ok_or("the walk reached the hot key's last page: seed more records")?
        .to_string();

    let deep_url = format!("{first_url}&after={next}");
    let mut deep = Vec::with_capacity(READS);
    for _ in 0..READS {
        let (answer, ms) = get(&agent, &deep_url)?;
        if records(&answer, &hot_key)? != 100 {
            return Err(format!("deep page: {}", answer["data"]).into());
        }
        deep.push(ms);
    }

    let month_url = format!("{usage}?from={from_s}&to={to_s}");
    let mut month = Vec::with_capacity(READS);
    for _ in 0..READS {
        let (answer, ms) = get(&agent, &month_url)?;
        if answer["totals"]["requests"] != hot {
            return Err(format!("month totals: {}, not {hot} requests", answer["totals"]).into());
        }
        month.push(ms);
    }

    Ok(HttpReads {
        walked_pages: walk.len(),
        first: percentiles(first),
        walk: percentiles(walk),
        deep: percentiles(deep),
        deep_after: walked,
        month: percentiles(month),
    })
}
