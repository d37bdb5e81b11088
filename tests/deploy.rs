//! deploy/ and the container: the Grafana dashboard and the Prometheus rules query only
//! metrics a real gateway exposes, promtool accepts and unit-tests the rules, the dashboard
//! has the panels an operator looks for, and the image's entrypoint command (parsed from the
//! Dockerfile) serves a chat with the config the image ships. No container builder can pull a
//! base image on this machine, so the entrypoint runs on the host: the release binary with the
//! Dockerfile's exact arguments, the shipped config at its in-image path's stand-in, its
//! working directory, a real redis-server where compose has its `redis` service and a real
//! PostgreSQL where it has its `postgres` (tests/deploy_container.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/grafana/cheapai.json")).expect("dashboard is JSON")
}

/// A fresh scratch directory under the system's temp dir.
fn scratch_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "cheapai-deploy-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Every PromQL string of the dashboard: panel targets' `expr` and the template variables'
/// queries.
fn dashboard_queries(v: &Value) -> Vec<String> {
    fn walk(v: &Value, in_templating: bool, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, val) in m {
                    match (k.as_str(), val) {
                        ("expr", Value::String(s)) => out.push(s.clone()),
                        ("query" | "definition", Value::String(s)) if in_templating => {
                            out.push(s.clone())
                        }
                        _ => walk(val, in_templating || k == "templating", out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, in_templating, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, false, &mut out);
    out
}

/// The `cheapai_*` identifiers in a text (a PromQL expression, a rules file).
fn cheapai_names(text: &str) -> BTreeSet<String> {
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let bytes = text.as_bytes();
    let mut names = BTreeSet::new();
    let mut from = 0;
    while let Some(pos) = text[from..].find("cheapai_") {
        let start = from + pos;
        let mut end = start;
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        if start == 0 || !ident(bytes[start - 1]) {
            names.insert(text[start..end].to_string());
        }
        from = end;
    }
    names
}

/// Metric families of a Prometheus text exposition: name → type.
fn families(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

/// Whether a queried series name is exposed: a family itself, or the `_bucket`, `_sum` or
/// `_count` series of a histogram (`_sum`/`_count` of a summary).
fn exposed(name: &str, families: &BTreeMap<String, String>) -> bool {
    if families.contains_key(name) {
        return true;
    }
    [
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram", "summary"][..]),
        ("_count", &["histogram", "summary"][..]),
    ]
    .iter()
    .any(|(suffix, kinds)| {
        name.strip_suffix(suffix)
            .and_then(|base| families.get(base))
            .is_some_and(|kind| kinds.contains(&kind.as_str()))
    })
}

#[test]
fn name_extraction_and_suffix_handling() {
    let names = cheapai_names(
        "histogram_quantile(0.9, sum by (le) (rate(cheapai_a_seconds_bucket{x=\"y\"}[5m]))) \
         / xcheapai_not_this + cheapai_b_total",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["cheapai_a_seconds_bucket", "cheapai_b_total"]
    );
    let fams = families(
        "# TYPE cheapai_a_seconds histogram\n# TYPE cheapai_b_total counter\n\
         # TYPE cheapai_c_count counter\n",
    );
    assert!(exposed("cheapai_a_seconds_bucket", &fams));
    assert!(exposed("cheapai_a_seconds_count", &fams));
    assert!(exposed("cheapai_c_count", &fams), "a counter named *_count");
    assert!(
        !exposed("cheapai_b_bucket", &fams),
        "no histogram cheapai_b"
    );
    assert!(
        !exposed("cheapai_b_total_bucket", &fams),
        "a counter has no buckets"
    );
    assert!(!exposed("cheapai_missing", &fams));
}

/// A key with one request per minute, to get a 429 from the limits.
const SLOW_KEY: &str = "cai-test-deploy-slow-0003";

/// The value of an unlabelled sample (0 when absent).
fn sample(exposition: &str, name: &str) -> f64 {
    metric_sample(exposition, &[&format!("{name} ")]).unwrap_or(0.0)
}

#[test]
fn every_metric_in_the_dashboard_and_the_alerts_is_exposed_by_a_live_gateway() {
    // The ledger's store is unreachable at first, for real: its SQLite file's directory is
    // a regular file, which no one (root included) can create a database under. Deliveries
    // fail and records wait in the spool; once the file is gone, the next retry creates the
    // directory and ships them.
    let dir = scratch_dir("live");
    let blocker = dir.join("store");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let extra = format!(
        r#"
[usage]
spool_dir = "{spool}"
store = "sqlite:{db}"

[models."gpt-retry"]
provider = "emu"
retries = 1

[[keys]]
name = "slow"
sha256 = "{slow}"
limits = {{ rpm = 1 }}
"#,
        spool = dir.join("spool").display(),
        db = blocker.join("usage.db").display(),
        slow = sha256_hex(SLOW_KEY.as_bytes())
    );
    let gw = Gateway::start_with(&extra);
    let ok = gw.post("/v1/chat/completions", &chat("gpt-4o", false));
    assert_eq!(ok.status, 200, "{}", ok.text());
    let stream = gw.post_with(
        "/v1/chat/completions",
        &[("x-emulator-chunks", "8")],
        &chat("gpt-4o", true),
    );
    assert_eq!(stream.status, 200, "{}", stream.text());
    // a provider 500, retried once on the same deployment, then answered as 500
    let failed = gw.post_with(
        "/v1/chat/completions",
        &[("x-emulator-status", "500")],
        &chat("gpt-retry", false),
    );
    assert_eq!(failed.status, 500, "{}", failed.text());
    // the provider refusing the gateway's own key
    let refused = gw.post_with(
        "/v1/chat/completions",
        &[("x-emulator-status", "401")],
        &chat("gpt-4o", false),
    );
    assert_eq!(refused.status, 502, "{}", refused.text());
    let auth = format!("Bearer {SLOW_KEY}");
    let body = chat("gpt-4o", false);
    let statuses: Vec<u16> = (0..2)
        .map(|_| {
            gw.request(
                "POST",
                "/v1/chat/completions",
                &[("authorization", &auth)],
                body.as_bytes(),
            )
            .status
        })
        .collect();
    assert_eq!(statuses, [200, 429]);

    // The store is unreachable: deliveries fail, the records wait and age.
    // Five records: every request but the one the gateway's own limit refused.
    let stuck = gw.scrape_until(Duration::from_secs(10), |text| {
        sample(text, "cheapai_usage_spool_records_appended_total") >= 5.0
            && sample(text, "cheapai_usage_ship_failures_total") >= 1.0
            && sample(text, "cheapai_usage_ship_lag_seconds") > 0.0
    });
    let spooled = sample(&stuck, "cheapai_usage_spool_records_appended_total");
    assert_eq!(spooled, 5.0, "{stuck}");
    assert!(
        sample(&stuck, "cheapai_usage_ship_failures_total") >= 1.0,
        "{stuck}"
    );
    assert!(
        sample(&stuck, "cheapai_usage_ship_lag_seconds") > 0.0,
        "{stuck}"
    );
    assert!(
        sample(&stuck, "cheapai_usage_spool_unshipped_bytes") > 0.0,
        "{stuck}"
    );
    assert_eq!(
        sample(&stuck, "cheapai_usage_ship_records_total"),
        0.0,
        "{stuck}"
    );

    // The store comes back: everything spooled is shipped, and nothing waits.
    std::fs::remove_file(&blocker).unwrap();
    let exposition = gw.scrape_until(Duration::from_secs(20), |text| {
        sample(text, "cheapai_usage_ship_records_total") >= spooled
            && sample(text, "cheapai_usage_spool_unshipped_bytes") == 0.0
            && sample(text, "cheapai_usage_ship_lag_seconds") == 0.0
    });
    assert_eq!(
        sample(&exposition, "cheapai_usage_ship_records_total"),
        sample(&exposition, "cheapai_usage_spool_records_appended_total"),
        "{exposition}"
    );
    assert_eq!(
        sample(&exposition, "cheapai_usage_spool_unshipped_bytes"),
        0.0
    );
    assert_eq!(sample(&exposition, "cheapai_usage_ship_lag_seconds"), 0.0);
    assert!(sample(&exposition, "cheapai_usage_spool_fsync_seconds_count") >= 1.0);
    // and the store holds them
    let listed: Answer = ureq::get(&format!("{}/admin/usage?limit=1000", gw.admin_url))
        .set("authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .call()
        .into();
    assert_eq!(listed.status, 200, "{}", listed.text());
    let listed = listed.json();
    assert_eq!(
        listed["data"].as_array().map(Vec::len),
        Some(spooled as usize),
        "{listed}"
    );
    // The labelled family of disk errors: every operation's series from the start, at 0
    // (nothing failed on this disk).
    for op in ["open", "write", "fsync", "truncate", "read", "checkpoint"] {
        let series = format!("cheapai_usage_spool_disk_errors_total{{op=\"{op}\"}} ");
        assert_eq!(
            metric_sample(&exposition, &[&series]),
            Some(0.0),
            "{series}\n{exposition}"
        );
    }
    let fams = families(&exposition);

    let mut used: BTreeMap<String, &str> = BTreeMap::new();
    for q in dashboard_queries(&dashboard()) {
        for name in cheapai_names(&q) {
            used.insert(name, "deploy/grafana/cheapai.json");
        }
    }
    let rules = read("deploy/prometheus/alerts.yml");
    for name in cheapai_names(&rules) {
        used.insert(name, "deploy/prometheus/alerts.yml");
    }
    assert!(used.len() >= 15, "too few metrics found: {used:?}");
    let missing: Vec<String> = used
        .iter()
        .filter(|(name, _)| !exposed(name, &fams))
        .map(|(name, file)| format!("{name} ({file})"))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not in /metrics: {missing:?}\nfamilies: {:?}",
        fams.keys().collect::<Vec<_>>()
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo_file("."))
        .output()
        .expect("promtool runs (scripts/setup installs the prometheus package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The alert names of a rules file, in order.
fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn promtool_checks_the_rules_and_fires_each_alert_in_the_rule_tests() {
    let checked = promtool(&["check", "rules", "deploy/prometheus/alerts.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "deploy/prometheus/alerts_test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // prometheus.yml parses and its rule_files resolve (relative to the file, as in compose)
    promtool(&["check", "config", "deploy/prometheus/prometheus.yml"]);

    let alerts = alert_names(&read("deploy/prometheus/alerts.yml"));
    for wanted in [
        "CheapaiGatewayDown",
        "CheapaiHighErrorRate",
        "CheapaiHighLatency",
        "CheapaiRedisErrors",
        "CheapaiUsageSpoolFull",
        "CheapaiUsageShippingLagging",
        "CheapaiUsageShippingStalled",
        "CheapaiUsageShipFailures",
        "CheapaiUsageSpoolDiskErrors",
        "CheapaiUsageSpoolCorruptFrames",
        "CheapaiUsageRecordsRefused",
        "CheapaiUsageRecordsRejected",
        "CheapaiCircuitOpen",
        "CheapaiProviderAuthFailures",
    ] {
        assert!(alerts.iter().any(|a| a == wanted), "{wanted} missing");
    }
    // promtool passes a test file that never mentions an alert: check that each one has a
    // firing case (with expected labels) in the first test and a quiet case in the second.
    let tests = read("deploy/prometheus/alerts_test.yml");
    let (firing, quiet) = tests
        .split_once("\n  - name: ")
        .and_then(|(_, rest)| rest.split_once("\n  - name: "))
        .expect("two tests: firing, then quiet");
    for alert in &alerts {
        let case = firing
            .split("alertname: ")
            .find(|c| c.starts_with(&format!("{alert}\n")))
            .unwrap_or_else(|| panic!("{alert}: no firing case"));
        assert!(case.contains("exp_labels"), "{alert}: fires nothing");
        assert!(
            quiet.contains(&format!("alertname: {alert}, exp_alerts: []")),
            "{alert}: no quiet case"
        );
    }
}

#[test]
fn dashboard_queries_are_valid_promql() {
    // Each query as a recording rule: `promtool check rules` parses every expression.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let queries = dashboard_queries(&dashboard());
    for (i, q) in queries.iter().enumerate() {
        if q.starts_with("label_values(") {
            continue; // a Grafana function, not PromQL
        }
        let promql = q
            .replace("$__rate_interval", "5m")
            .replace("$__range", "1h")
            .replace("$job", ".*")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&promql).unwrap()
        ));
    }
    let dir = scratch_dir("promql");
    let file = dir.join("dashboard_rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = promtool(&["check", "rules", file.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn dashboard_has_the_operator_panels_on_a_templated_prometheus() {
    let d = dashboard();
    assert_eq!(d["uid"], "cheapai-gateway");
    let vars = d["templating"]["list"].as_array().expect("variables");
    let ds = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(ds["query"], "prometheus");
    let ds_ref = format!("${{{}}}", ds["name"].as_str().unwrap());

    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().expect("id")), "duplicate id");
        assert!(p["gridPos"]["w"].as_u64().is_some(), "{}", p["title"]);
        if p["type"] == "row" {
            continue;
        }
        // no hard-coded datasource: every panel and target follows the variable
        assert_eq!(p["datasource"]["uid"], ds_ref.as_str(), "{}", p["title"]);
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], ds_ref.as_str(), "{}", p["title"]);
        }
    }
    let panel = |title: &str| -> Vec<String> {
        let p = panels
            .iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("no panel {title:?}"));
        p["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["expr"].as_str().unwrap().to_string())
            .collect()
    };
    let quantiles = |title: &str, metric: &str| {
        let exprs = panel(title);
        for q in ["0.5", "0.95", "0.99"] {
            assert!(
                exprs
                    .iter()
                    .any(|e| e.contains(&format!("histogram_quantile({q},"))
                        && e.contains(&format!("{metric}_bucket"))),
                "{title}: no p{q} of {metric}"
            );
        }
    };
    quantiles(
        "Request latency p50 / p95 / p99",
        "cheapai_request_duration_seconds",
    );
    quantiles(
        "Time to first token p50 / p95 / p99",
        "cheapai_time_to_first_token_seconds",
    );
    quantiles(
        "Time per output token p50 / p95 / p99",
        "cheapai_time_per_output_token_seconds",
    );
    let uses = |title: &str, needles: &[&str]| {
        let exprs = panel(title).join("\n");
        for n in needles {
            assert!(exprs.contains(n), "{title}: {n} missing in {exprs}");
        }
    };
    uses(
        "Requests by model and provider",
        &["cheapai_requests_total", "by (model, provider)"],
    );
    uses(
        "Errors by model and provider",
        &["cheapai_requests_total", "5..", "by (model, provider"],
    );
    uses("Error ratio (5xx)", &["5..", " / "]);
    uses(
        "Tokens per second by model",
        &["cheapai_tokens_total", "model"],
    );
    uses(
        "Cost per hour by model (USD)",
        &["cheapai_cost_usd_total", "model"],
    );
    uses("Rate-limited requests", &["cheapai_rate_limited_total"]);
    uses("In-flight requests", &["cheapai_inflight_requests"]);
    uses(
        "In-flight requests per provider",
        &["cheapai_upstream_inflight", "provider"],
    );
    uses(
        "Upstream attempts by provider and outcome",
        &["cheapai_upstream_attempts_total"],
    );
    uses(
        "Upstream retries by provider and reason",
        &["cheapai_upstream_retries_total"],
    );
    uses("Circuit state by provider", &["cheapai_circuit_state"]);
    uses("Redis errors", &["cheapai_redis_errors_total"]);
    uses(
        "Usage records per second",
        &[
            "cheapai_usage_records_total",
            "cheapai_usage_spool_records_appended_total",
            "cheapai_usage_ship_records_total",
        ],
    );
    uses(
        "Usage spool unshipped bytes",
        &["cheapai_usage_spool_unshipped_bytes"],
    );
    uses("Usage ship lag", &["cheapai_usage_ship_lag_seconds"]);
    uses(
        "Usage ship failures",
        &["cheapai_usage_ship_failures_total"],
    );
    uses("Usage spool full", &["cheapai_usage_spool_full"]);
    uses(
        "Usage records refused, rejected or corrupt",
        &[
            "cheapai_usage_spool_records_refused_total",
            "cheapai_usage_records_rejected_total",
            "cheapai_usage_spool_corrupt_frames_total",
        ],
    );
    uses(
        "Usage spool disk errors by operation",
        &["cheapai_usage_spool_disk_errors_total", "by (op)"],
    );
    uses(
        "Usage spool fsync p50 / p99",
        &["cheapai_usage_spool_fsync_seconds_bucket"],
    );
    uses("Gateway up", &["up{"]);
}

#[test]
fn compose_and_provisioning_point_at_files_that_exist() {
    let compose = read("deploy/compose.yaml");
    for service in ["gateway:", "redis:", "postgres:", "prometheus:", "grafana:"] {
        assert!(
            compose.contains(&format!("\n  {service}\n")),
            "service {service}"
        );
    }
    // every bind mount's host side, relative to deploy/
    let mounts: Vec<&str> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- ./"))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert!(mounts.len() >= 3, "{mounts:?}");
    for m in mounts {
        assert!(repo_file("deploy").join(m).exists(), "deploy/{m} missing");
    }
    assert!(compose.contains("./grafana/cheapai.json:"));
    assert!(compose.contains("./grafana/provisioning:/etc/grafana/provisioning"));
    assert!(compose.contains("./prometheus:/etc/prometheus"));
    let datasource = read("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert!(datasource.contains("type: prometheus"));
    assert!(datasource.contains("url: http://prometheus:9090"));
    let dashboards = read("deploy/grafana/provisioning/dashboards/cheapai.yml");
    assert!(dashboards.contains("path: /var/lib/grafana/dashboards"));
    // Prometheus scrapes the gateway service on the admin port of the shipped config.
    let prometheus = read("deploy/prometheus/prometheus.yml");
    let config = read("deploy/gateway.toml");
    assert!(config.contains("admin_listen = \"0.0.0.0:9464\""));
    assert!(prometheus.contains("targets: [\"gateway:9464\"]"));
    assert!(prometheus.contains("metrics_path: /metrics"));
    // The gateway's usage ledger is compose's PostgreSQL, through the variable the shipped
    // config names, and its spool (in the working directory) is on a volume.
    assert!(config.contains("postgres_url_env = \"CHEAPAI_LEDGER_URL\""));
    assert!(
        compose.contains("CHEAPAI_LEDGER_URL: postgres://cheapai:")
            && compose.contains("@postgres:5432/cheapai"),
        "compose gives the gateway no ledger URL"
    );
    assert!(compose.contains("- gateway-data:/var/lib/cheapai"));
    assert!(compose.contains("- postgres-data:/var/lib/postgresql/data"));
}

#[test]
fn shipped_config_is_the_default_catalog_and_loads() {
    let shipped = read("deploy/gateway.toml");
    let default = read("conf/gateway.toml");
    let from = |t: &str| -> String {
        let at = t
            .find("\n[providers.emulator]")
            .expect("[providers.emulator]");
        t[at..].to_string()
    };
    assert!(
        from(&shipped) == from(&default),
        "deploy/gateway.toml: from [providers.emulator] on, copy conf/gateway.toml"
    );
    // with the ledger's URL in the environment, as compose sets it
    let config = cheapai_gateway::config::Config::parse(&shipped, "deploy/gateway.toml", &|var| {
        (var == "CHEAPAI_LEDGER_URL").then(|| "postgres://cheapai:pw@postgres:5432/cheapai".into())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        config.usage.store,
        cheapai_gateway::ledger::StoreConfig::Postgres { .. }
    ));
    assert_eq!(
        config.usage.spool_dir,
        Path::new("usage-spool"),
        "relative to WORKDIR"
    );
}
