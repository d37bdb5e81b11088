//! The ledger's commands on the real binary: `migrate` applies the schema once, and
//! `usage import` loads an old JSONL billing log idempotently, whose records the gateway then
//! lists like its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::binary::Binary;
use common::*;
use serde_json::json;

fn run(args: &[&str], config: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cheapai-gateway"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("TEST_PROVIDER_KEY", PROVIDER_KEY)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A record of the key the test config knows, as the former JSONL log wrote them.
fn logged(n: u64, now_ms: u64) -> String {
    let key_id = cheapai_gateway::auth::key_id(&sha256_hex(KEY.as_bytes()));
    json!({
        "request_id": format!("req_import_{n}"), "key_id": key_id, "model": "gpt-4o",
        "provider": "emu", "attempts": 1, "endpoint": "chat_completions",
        "prompt_tokens": 5, "completion_tokens": 5, "cached_tokens": 0,
        "cost_micro_usd": 63, "status": 200, "duration_ms": 4, "ttft_ms": 2,
        "stream": false, "client_disconnected": false, "estimated": false, "error": null,
        "timestamp_ms": now_ms - n * 1000,
    })
    .to_string()
}

#[test]
fn migrate_then_import_an_old_jsonl_log_twice_and_list_it() {
    let dir = std::env::temp_dir().join(format!("cheapai-ledger-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let usage = format!(
        "[usage]\nspool_dir = \"{}\"\nstore = \"sqlite:{}\"\n",
        dir.join("spool").display(),
        dir.join("usage.db").display()
    );
    let [gw, admin, emu] = free_ports();
    let config = dir.join("gateway.toml");
    std::fs::write(&config, config_text(gw, admin, emu, &usage)).unwrap();

    let (ok, text) = run(&["migrate"], &config);
    assert!(ok, "{text}");
    assert!(text.contains("applied"), "{text}");
    let (ok, text) = run(&["migrate"], &config);
    assert!(ok && text.contains("up to date"), "{text}");

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let log = dir.join("usage.jsonl");
    let lines = [
        logged(1, now_ms),
        "{not a record".into(),
        logged(2, now_ms),
        String::new(),
    ];
    std::fs::write(&log, lines.join("\n")).unwrap();
    let log_arg = log.to_str().unwrap();
    let (ok, text) = run(&["usage", "import", log_arg], &config);
    assert!(ok, "{text}");
    assert!(
        text.contains("2 records new in the ledger, 1 malformed"),
        "{text}"
    );
    assert!(text.contains("line 2:"), "{text}");
    let (ok, text) = run(&["usage", "import", log_arg], &config);
    assert!(ok, "{text}");
    assert!(text.contains("0 records new in the ledger"), "{text}");

    // the gateway lists them as the key's own
    let bin = Binary::start("ledger-cli", &usage.replace("spool\"", "spool-gw\""));
    let listed = ureq::get(&format!("{}/v1/usage", bin.url))
        .set("authorization", &format!("Bearer {KEY}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert!(listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["request_id"] == "req_import_1"));
    assert_eq!(listed["totals"]["requests"], 2, "{listed}");
    assert_eq!(listed["totals"]["cost_micro_usd"], 126, "{listed}");
}
